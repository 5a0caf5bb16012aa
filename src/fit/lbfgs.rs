//! One member's L-BFGS state: its own history, line search and convergence test.
//!
//! The batched driver asks every running member for the point it wants evaluated next
//! ([`LbfgsState::trial`]), evaluates all of them in one backend call, and hands each member its
//! value and gradient ([`LbfgsState::observe`]). A member that has converged asks for nothing
//! more, so it stops costing work.
//!
//! Minimises f = -objective, as scipy's L-BFGS-B does when no bound is active: a memory of 10
//! pairs, H0 = (s^T y / y^T y) I, a first step of 1 / |g|_2 along -g and unit steps after, and
//! a line search for the strong Wolfe conditions (sufficient decrease c1 = 1e-3, curvature
//! c2 = 0.9): a bracketing phase that extrapolates (cubic, between 1.1x and 4x the step) while
//! the slope is still steep, then a zoom with safeguarded cubic interpolation (Nocedal & Wright,
//! algorithms 3.5 and 3.6). A failed evaluation (matrix not positive definite) counts as an
//! infinite value and is bisected away. A pair enters the history only when s^T y > 0, so the
//! inverse Hessian estimate stays positive definite.

use std::collections::VecDeque;

const C1: f64 = 1e-3;
const C2: f64 = 0.9;
/// Evaluations one line search may take before it settles for its best sufficient decrease.
const MAX_LS_EVALS: usize = 30;
/// Largest change of any coordinate in one step (log units for positive hyperparameters).
const MAX_COORD_STEP: f64 = 10.0;

/// Why a member stopped.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Stop {
    Converged,
    MaxIter,
    Failed,
}

/// A point on the search line: step, value, slope, gradient.
#[derive(Debug, Clone)]
struct LinePoint {
    t: f64,
    f: f64,
    dg: f64,
    g: Vec<f64>,
}

#[derive(Debug, Clone)]
enum Phase {
    /// Extrapolating; `prev` is the last point tried (t = 0 at the start).
    Bracket { prev: LinePoint },
    /// A bracket [lo, hi] holds a strong Wolfe point; lo has the least value with sufficient
    /// decrease so far.
    Zoom { lo: LinePoint, hi: LinePoint },
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
    /// Slope g^T d at the start of the line search.
    gd: f64,
    t_max: f64,
    phase: Phase,
    ls_evals: usize,
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
            t_max: f64::INFINITY,
            phase: Phase::Bracket { prev: LinePoint { t: 0.0, f: 0.0, dg: 0.0, g: Vec::new() } },
            ls_evals: 0,
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
    /// true when a new iterate was accepted.
    pub fn observe(&mut self, f: f64, g: &[f64], gtol: f64, ftol: f64, max_iter: usize) -> bool {
        let ok = f.is_finite() && g.iter().all(|v| v.is_finite());
        let f = if ok { f } else { f64::INFINITY };
        let g: Vec<f64> = g.iter().zip(&self.free).map(|(v, free)| if *free && ok { *v } else { 0.0 }).collect();
        if !self.started {
            self.started = true;
            if !ok {
                self.stop = Some(Stop::Failed);
                return false;
            }
            self.u.clone_from(&self.trial_u);
            self.f = f;
            self.g = g;
            if self.grad_norm_inf() <= gtol {
                self.stop = Some(Stop::Converged);
            } else if max_iter == 0 {
                self.stop = Some(Stop::MaxIter);
            } else {
                self.new_direction();
            }
            return true;
        }
        let cur = LinePoint { t: self.step, f, dg: if ok { dot(&g, &self.dir) } else { f64::NAN }, g };
        self.ls_evals += 1;
        let armijo = |p: &LinePoint| p.f <= self.f + C1 * p.t * self.gd;
        let curvature = |p: &LinePoint| p.dg.abs() <= -C2 * self.gd;
        let phase = std::mem::replace(&mut self.phase, Phase::Bracket { prev: cur.clone() });
        let next = match phase {
            Phase::Bracket { prev } => {
                if !armijo(&cur) || (prev.t > 0.0 && cur.f >= prev.f) {
                    Phase::Zoom { lo: prev, hi: cur }
                } else if curvature(&cur) {
                    return self.accept(cur, gtol, ftol, max_iter);
                } else if cur.dg >= 0.0 {
                    Phase::Zoom { lo: cur, hi: prev }
                } else {
                    // Still descending steeply: extrapolate.
                    if cur.t >= self.t_max {
                        return self.accept(cur, gtol, ftol, max_iter);
                    }
                    let guess = cubic_min(&prev, &cur).unwrap_or(4.0 * cur.t);
                    self.set_step(guess.clamp(1.1 * cur.t, 4.0 * cur.t).min(self.t_max));
                    self.phase = Phase::Bracket { prev: cur };
                    return self.out_of_evals(gtol, ftol, max_iter);
                }
            }
            Phase::Zoom { lo, hi } => {
                if !armijo(&cur) || cur.f >= lo.f {
                    Phase::Zoom { lo, hi: cur }
                } else if curvature(&cur) {
                    return self.accept(cur, gtol, ftol, max_iter);
                } else if cur.dg * (hi.t - lo.t) >= 0.0 {
                    Phase::Zoom { lo: cur, hi: lo }
                } else {
                    Phase::Zoom { lo: cur, hi }
                }
            }
        };
        // Zoom: a trial inside the bracket, kept 10% away from its ends.
        if let Phase::Zoom { lo, hi } = &next {
            let (a, b) = (lo.t.min(hi.t), lo.t.max(hi.t));
            let w = b - a;
            if w <= 1e-14 * b.max(1e-300) {
                return self.settle(next, gtol, ftol, max_iter);
            }
            let guess = if hi.f.is_finite() { cubic_min(lo, hi) } else { None };
            let t = guess.filter(|t| *t > a + 0.1 * w && *t < b - 0.1 * w).unwrap_or(0.5 * (a + b));
            self.set_step(t);
        }
        self.phase = next;
        self.out_of_evals(gtol, ftol, max_iter)
    }

    /// After too many evaluations in one line search, settle for what it has.
    fn out_of_evals(&mut self, gtol: f64, ftol: f64, max_iter: usize) -> bool {
        if self.ls_evals < MAX_LS_EVALS {
            return false;
        }
        let phase = std::mem::replace(
            &mut self.phase,
            Phase::Bracket { prev: LinePoint { t: 0.0, f: 0.0, dg: 0.0, g: Vec::new() } },
        );
        self.settle(phase, gtol, ftol, max_iter)
    }

    /// Ends a line search that found no strong Wolfe point: accepts the best point with
    /// sufficient decrease; with none, restarts from steepest descent once, then stops (no
    /// progress is possible at working precision).
    fn settle(&mut self, phase: Phase, gtol: f64, ftol: f64, max_iter: usize) -> bool {
        let best = match phase {
            Phase::Zoom { lo, .. } => Some(lo),
            Phase::Bracket { prev } => Some(prev),
        }
        .filter(|p| p.t > 0.0 && p.f.is_finite() && p.f < self.f);
        if let Some(p) = best {
            return self.accept(p, gtol, ftol, max_iter);
        }
        if !self.s_hist.is_empty() {
            self.s_hist.clear();
            self.y_hist.clear();
            self.new_direction();
        } else {
            self.stop = Some(Stop::Converged);
        }
        false
    }

    fn accept(&mut self, p: LinePoint, gtol: f64, ftol: f64, max_iter: usize) -> bool {
        let s: Vec<f64> = self.dir.iter().map(|d| p.t * d).collect();
        let y: Vec<f64> = p.g.iter().zip(&self.g).map(|(a, b)| a - b).collect();
        let sy = dot(&s, &y);
        if sy > f64::EPSILON * dot(&y, &y) && sy > 0.0 {
            if self.s_hist.len() == self.memory {
                self.s_hist.pop_front();
                self.y_hist.pop_front();
            }
            self.s_hist.push_back(s);
            self.y_hist.push_back(y);
        }
        for (u, d) in self.u.iter_mut().zip(&self.dir) {
            *u += p.t * d;
        }
        let f_prev = self.f;
        self.f = p.f;
        self.g = p.g;
        self.iterations += 1;
        // scipy's factr test on the relative decrease, taken three times in a row when the
        // step came from a long line search (a small decrease there may say more about the
        // search than about the optimum).
        let rel = (f_prev - self.f) / f_prev.abs().max(self.f.abs()).max(1.0);
        self.stalls = if rel <= ftol { self.stalls + 1 } else { 0 };
        let stalled = rel <= ftol && (self.ls_evals <= 2 || self.stalls >= 3);
        if self.grad_norm_inf() <= gtol || stalled {
            self.stop = Some(Stop::Converged);
        } else if self.iterations >= max_iter {
            self.stop = Some(Stop::MaxIter);
        } else {
            self.new_direction();
        }
        true
    }

    fn grad_norm_inf(&self) -> f64 {
        self.g.iter().fold(0.0f64, |a, v| a.max(v.abs()))
    }

    /// Two-loop recursion: dir = -H g; then the first trial step of the line search.
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
        let k = self.s_hist.len();
        let dmax = self.dir.iter().fold(0.0f64, |a, v| a.max(v.abs()));
        self.t_max = if dmax > 0.0 { MAX_COORD_STEP / dmax } else { f64::INFINITY };
        let first = if k == 0 { 1.0 / dot(&self.dir, &self.dir).sqrt().max(f64::MIN_POSITIVE) } else { 1.0 };
        self.ls_evals = 0;
        self.phase = Phase::Bracket { prev: LinePoint { t: 0.0, f: self.f, dg: self.gd, g: self.g.clone() } };
        self.set_step(first.min(self.t_max));
    }

    fn set_step(&mut self, t: f64) {
        self.step = t;
        for i in 0..self.u.len() {
            self.trial_u[i] = self.u[i] + t * self.dir[i];
        }
    }
}

/// Minimiser of the cubic through (a.t, a.f, a.dg) and (b.t, b.f, b.dg) (Nocedal & Wright,
/// eq. 3.59); None when it has none or the numbers are not finite.
fn cubic_min(a: &LinePoint, b: &LinePoint) -> Option<f64> {
    let d1 = a.dg + b.dg - 3.0 * (a.f - b.f) / (a.t - b.t);
    let disc = d1 * d1 - a.dg * b.dg;
    if disc.is_nan() || disc < 0.0 {
        return None;
    }
    let d2 = (b.t - a.t).signum() * disc.sqrt();
    let t = b.t - (b.t - a.t) * (b.dg + d2 - d1) / (b.dg - a.dg + 2.0 * d2);
    t.is_finite().then_some(t)
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
