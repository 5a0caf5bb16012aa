//! One member's L-BFGS state: its own history, line search and convergence test.
//!
//! The batched driver asks every running member for the point it wants evaluated next
//! ([`LbfgsState::trial`]), evaluates all of them in one backend call, and hands each member its
//! value and gradient ([`LbfgsState::observe`]). A member that has converged asks for nothing
//! more, so it stops costing work.
//!
//! Minimises f = -objective. Line search: backtracking from a unit step (1 / |g| on the first
//! iteration) until the Armijo condition holds, with safeguarded quadratic interpolation; a
//! failed evaluation (matrix not positive definite) counts as an infinite value. The history is
//! updated only when s^T y > 0, so the inverse Hessian estimate stays positive definite.

use std::collections::VecDeque;

const C1: f64 = 1e-4;
const MAX_BACKTRACKS: usize = 40;

/// Why a member stopped.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Stop {
    Converged,
    MaxIter,
    Failed,
}

#[derive(Debug, Clone)]
pub(crate) struct LbfgsState {
    memory: usize,
    pub u: Vec<f64>,
    pub f: f64,
    pub g: Vec<f64>,
    s_hist: VecDeque<Vec<f64>>,
    y_hist: VecDeque<Vec<f64>>,
    dir: Vec<f64>,
    step: f64,
    gd: f64,
    backtracks: usize,
    pub trial_u: Vec<f64>,
    pub iterations: usize,
    pub stop: Option<Stop>,
    started: bool,
    /// Consecutive accepted steps whose relative decrease was below ftol.
    stalls: usize,
    /// Entries that never move (fixed hyperparameters).
    free: Vec<bool>,
}

impl LbfgsState {
    pub fn new(u0: Vec<f64>, free: Vec<bool>, memory: usize) -> Self {
        let p = u0.len();
        LbfgsState {
            memory,
            trial_u: u0.clone(),
            u: u0,
            f: f64::INFINITY,
            g: vec![0.0; p],
            s_hist: VecDeque::new(),
            y_hist: VecDeque::new(),
            dir: vec![0.0; p],
            step: 1.0,
            gd: 0.0,
            backtracks: 0,
            iterations: 0,
            stop: None,
            started: false,
            stalls: 0,
            free,
        }
    }

    /// The point this member wants evaluated next (None once stopped).
    pub fn trial(&self) -> Option<&[f64]> {
        if self.stop.is_some() {
            None
        } else {
            Some(&self.trial_u)
        }
    }

    /// Takes f and its gradient at the trial point (f = +inf for a failed evaluation). Returns
    /// true when the trial was accepted as the new iterate.
    pub fn observe(&mut self, f: f64, g: &[f64], gtol: f64, ftol: f64, max_iter: usize) -> bool {
        let f = if f.is_finite() && g.iter().all(|v| v.is_finite()) { f } else { f64::INFINITY };
        if !self.started {
            self.started = true;
            if !f.is_finite() {
                self.stop = Some(Stop::Failed);
                return false;
            }
            self.accept_point(f, g);
            if self.grad_norm_inf() <= gtol {
                self.stop = Some(Stop::Converged);
            } else if max_iter == 0 {
                self.stop = Some(Stop::MaxIter);
            } else {
                self.new_direction();
            }
            return true;
        }
        if f <= self.f + C1 * self.step * self.gd {
            // Accept: update the history, test convergence, pick the next direction.
            let s: Vec<f64> = self.trial_u.iter().zip(&self.u).map(|(a, b)| a - b).collect();
            // Fixed coordinates carry no curvature information: their y entry is zero, as
            // their gradient is (see accept_point).
            let y: Vec<f64> =
                g.iter().zip(&self.g).zip(&self.free).map(|((a, b), free)| if *free { a - b } else { 0.0 }).collect();
            let sy = dot(&s, &y);
            if sy > 1e-12 * dot(&s, &s).sqrt() * dot(&y, &y).sqrt() && sy > 0.0 {
                if self.s_hist.len() == self.memory {
                    self.s_hist.pop_front();
                    self.y_hist.pop_front();
                }
                self.s_hist.push_back(s);
                self.y_hist.push_back(y);
            }
            let f_prev = self.f;
            self.accept_point(f, g);
            self.iterations += 1;
            let rel = (f_prev - f) / f_prev.abs().max(f.abs()).max(1.0);
            // A negligible decrease ends the run when it came from an unshortened step, or three
            // times in a row: after one backtracked step, a small decrease says more about the
            // step than the optimum; when every step stalls, the objective is flat to working
            // precision.
            self.stalls = if rel <= ftol { self.stalls + 1 } else { 0 };
            let stalled = rel <= ftol && (self.backtracks == 0 || self.stalls >= 3);
            if self.grad_norm_inf() <= gtol || stalled {
                self.stop = Some(Stop::Converged);
            } else if self.iterations >= max_iter {
                self.stop = Some(Stop::MaxIter);
            } else {
                self.new_direction();
            }
            return true;
        }
        // Backtrack.
        self.backtracks += 1;
        if self.backtracks > MAX_BACKTRACKS || self.step < 1e-20 {
            if !self.s_hist.is_empty() {
                // The quasi-Newton direction failed: retry once along steepest descent.
                self.s_hist.clear();
                self.y_hist.clear();
                self.new_direction();
            } else {
                // No progress possible at working precision: this is the optimum we can reach.
                self.stop = Some(Stop::Converged);
            }
            return false;
        }
        let t = self.step;
        let next = if f.is_finite() {
            // Minimiser of the quadratic through f(0), f'(0) and f(t).
            let denom = 2.0 * (f - self.f - self.gd * t);
            if denom > 0.0 {
                -self.gd * t * t / denom
            } else {
                0.5 * t
            }
        } else {
            0.1 * t
        };
        self.set_step(next.clamp(0.1 * t, 0.5 * t));
        false
    }

    fn accept_point(&mut self, f: f64, g: &[f64]) {
        self.u.clone_from(&self.trial_u);
        self.f = f;
        for (dst, (src, free)) in self.g.iter_mut().zip(g.iter().zip(&self.free)) {
            *dst = if *free { *src } else { 0.0 };
        }
    }

    fn grad_norm_inf(&self) -> f64 {
        self.g.iter().fold(0.0f64, |a, v| a.max(v.abs()))
    }

    /// Two-loop recursion: dir = -H g.
    fn new_direction(&mut self) {
        let k = self.s_hist.len();
        let mut q = self.g.clone();
        let mut alpha = vec![0.0; k];
        for i in (0..k).rev() {
            let rho = 1.0 / dot(&self.y_hist[i], &self.s_hist[i]);
            alpha[i] = rho * dot(&self.s_hist[i], &q);
            axpy(-alpha[i], &self.y_hist[i], &mut q);
        }
        let gamma = if k > 0 {
            dot(&self.s_hist[k - 1], &self.y_hist[k - 1]) / dot(&self.y_hist[k - 1], &self.y_hist[k - 1])
        } else {
            1.0
        };
        for v in q.iter_mut() {
            *v *= gamma;
        }
        for (i, a) in alpha.iter().enumerate() {
            let rho = 1.0 / dot(&self.y_hist[i], &self.s_hist[i]);
            let beta = rho * dot(&self.y_hist[i], &q);
            axpy(a - beta, &self.s_hist[i], &mut q);
        }
        for (d, (qv, free)) in self.dir.iter_mut().zip(q.iter().zip(&self.free)) {
            *d = if *free { -qv } else { 0.0 };
        }
        self.gd = dot(&self.g, &self.dir);
        if self.gd.is_nan() || self.gd >= 0.0 {
            // Not a descent direction: fall back to steepest descent.
            self.s_hist.clear();
            self.y_hist.clear();
            for (d, g) in self.dir.iter_mut().zip(&self.g) {
                *d = -g;
            }
            self.gd = dot(&self.g, &self.dir);
        }
        self.backtracks = 0;
        let first = if k == 0 { 1.0 / self.grad_norm_inf().max(1.0) } else { 1.0 };
        self.set_step(first);
    }

    fn set_step(&mut self, t: f64) {
        self.step = t;
        for i in 0..self.u.len() {
            self.trial_u[i] = self.u[i] + t * self.dir[i];
        }
    }
}

fn dot(a: &[f64], b: &[f64]) -> f64 {
    a.iter().zip(b).map(|(x, y)| x * y).sum()
}

fn axpy(a: f64, x: &[f64], y: &mut [f64]) {
    for (yi, xi) in y.iter_mut().zip(x) {
        *yi += a * xi;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Drives one state on the Rosenbrock function: the driver protocol in miniature.
    #[test]
    fn minimises_rosenbrock() {
        let f = |u: &[f64]| (1.0 - u[0]).powi(2) + 100.0 * (u[1] - u[0] * u[0]).powi(2);
        let g =
            |u: &[f64]| vec![-2.0 * (1.0 - u[0]) - 400.0 * u[0] * (u[1] - u[0] * u[0]), 200.0 * (u[1] - u[0] * u[0])];
        let mut st = LbfgsState::new(vec![-1.2, 1.0], vec![true, true], 10);
        for _ in 0..2000 {
            let Some(u) = st.trial().map(|u| u.to_vec()) else { break };
            st.observe(f(&u), &g(&u), 1e-10, 0.0, 500);
        }
        assert_eq!(st.stop, Some(Stop::Converged));
        assert!((st.u[0] - 1.0).abs() < 1e-6 && (st.u[1] - 1.0).abs() < 1e-6, "{:?}", st.u);
    }

    #[test]
    fn fixed_coordinates_do_not_move() {
        let f = |u: &[f64]| (u[0] - 3.0).powi(2) + (u[1] + 1.0).powi(2);
        let g = |u: &[f64]| vec![2.0 * (u[0] - 3.0), 2.0 * (u[1] + 1.0)];
        let mut st = LbfgsState::new(vec![0.0, 0.5], vec![true, false], 10);
        while let Some(u) = st.trial().map(|u| u.to_vec()) {
            st.observe(f(&u), &g(&u), 1e-10, 0.0, 100);
        }
        assert!((st.u[0] - 3.0).abs() < 1e-8, "{:?} {:?} {}", st.u, st.stop, st.iterations);
        assert_eq!(st.u[1], 0.5);
    }
}
