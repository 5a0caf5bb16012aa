//! One member's L-BFGS state: its own history, line search and convergence test.
//!
//! The batched driver asks every running member for the point it wants evaluated next
//! ([`LbfgsState::trial`]), evaluates all of them in one backend call, and hands each member its
//! value and gradient ([`LbfgsState::observe`]). A member that has converged asks for nothing
//! more, so it stops costing work.
//!
//! Minimises f = -objective the way scipy's L-BFGS-B does when no bound is active, so that a
//! member fitted here follows the path scikit-learn's optimiser takes from the same start: a
//! memory of 10 pairs, H0 = (s^T y / y^T y) I, a first step of 1 / |d|_2 along d = -g and unit
//! steps after, and the Moré–Thuente line search with L-BFGS-B's constants (ftol = 1e-3,
//! gtol = 0.9, xtol = 0.1, at most 20 evaluations; see `linesearch`). A failed evaluation
//! (matrix not positive definite) halves the step back towards the best one. A pair enters the
//! history only when s^T y > eps y^T y, so the inverse Hessian estimate stays positive definite.
//! When a line search fails, the history is dropped and the search restarts along -g once.
//!
//! Evaluations coarser than f64 (f32: see [`LbfgsState::with_resolution`]) cannot resolve what
//! f64's tolerances ask: there the relative-decrease test is at least [`FTOL_ULPS`] units of
//! the evaluations' epsilon, the gradient test at least sqrt(epsilon) max(1, |f|), and a search
//! along -g that finds no decrease after real progress is convergence at that resolution
//! ([`Stop::AtResolution`]), not a stall. f64 evaluations keep the tolerances as given.

use std::collections::VecDeque;

use super::driver::MemberOptimizer;
use super::linesearch::{MoreThuente, Next};
use super::Termination;
use crate::data::Precision;

/// Evaluations one line search may take (L-BFGS-B's maxls).
const MAX_LS_EVALS: usize = 20;
/// When no step decreases f, a projected gradient below this times max(1, |f|) counts as
/// converged at working precision: y or x with an offset of 1e6 to 1e8 of their spread
/// (timestamps, prices near a level) carry only 8 to 10 significant digits of variation, so f
/// is known to about 1e-9 relative and a decrease of g^2 below that cannot be seen.
const STALL_GTOL: f64 = 1e-4;
/// Largest change of any coordinate in one step (log units for positive hyperparameters).
const MAX_COORD_STEP: f64 = 10.0;
/// In evaluations coarser than f64, a relative decrease of f below this many units of their
/// epsilon is rounding (f32: 1.2e-6), and so is a decrease of f below it since the start.
const FTOL_ULPS: f64 = 10.0;

/// The relative resolution of evaluations in precision `p`: its epsilon.
pub(crate) fn resolution_of(p: Precision) -> f64 {
    match p {
        Precision::F64 => f64::EPSILON,
        Precision::F32 => f64::from(f32::EPSILON),
    }
}

/// Why a member stopped.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Stop {
    Converged,
    MaxIter,
    /// A line search found no decrease along -g either: no progress at working precision.
    Stalled,
    /// In evaluations coarser than f64, no decrease along -g after real progress: converged as
    /// far as their resolution can tell.
    AtResolution,
    Failed,
}

impl Stop {
    pub fn termination(self) -> Termination {
        match self {
            Stop::Converged => Termination::Converged,
            Stop::MaxIter => Termination::IterationLimit,
            Stop::Stalled => Termination::LineSearchStalled,
            Stop::AtResolution => Termination::AtResolution,
            Stop::Failed => Termination::Failed,
        }
    }
}

/// An [`LbfgsState`] with its convergence test, as the batched driver runs it.
pub(crate) struct Lbfgs {
    /// The member's state, with the resolution of the evaluations it sees.
    pub state: LbfgsState,
    pub gtol: f64,
    pub ftol: f64,
    pub max_iter: usize,
}

impl MemberOptimizer for Lbfgs {
    fn trial(&self) -> Option<&[f64]> {
        self.state.trial()
    }
    fn observe(&mut self, f: f64, g: &[f64]) -> bool {
        self.state.observe(f, g, self.gtol, self.ftol, self.max_iter)
    }
    fn point(&self) -> (&[f64], f64) {
        (&self.state.u, self.state.f)
    }
    fn iterations(&self) -> usize {
        self.state.iterations
    }
    fn termination(&self) -> Option<Termination> {
        self.state.stop.map(Stop::termination)
    }
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
    search: Option<MoreThuente>,
    /// Value and gradient at the search's best step so far (its stx).
    best: Option<(f64, f64, Vec<f64>)>,
    ls_evals: usize,
    pub trial_u: Vec<f64>,
    pub iterations: usize,
    pub stop: Option<Stop>,
    started: bool,
    /// f at the start (for the test of real progress).
    f_start: f64,
    /// Relative resolution of the evaluations (their epsilon; f64's unless told otherwise).
    resolution: f64,
    /// Consecutive accepted steps whose relative decrease was below ftol.
    stalls: usize,
    /// Entries that never move (fixed hyperparameters).
    free: Vec<bool>,
    /// Box bounds on the coordinates (infinite when absent); see [`LbfgsState::with_bounds`].
    lower: Vec<f64>,
    upper: Vec<f64>,
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
            search: None,
            best: None,
            ls_evals: 0,
            iterations: 0,
            stop: None,
            started: false,
            f_start: f64::INFINITY,
            resolution: f64::EPSILON,
            stalls: 0,
            lower: vec![f64::NEG_INFINITY; p],
            upper: vec![f64::INFINITY; p],
            free,
        }
    }

    /// Box bounds on the coordinates (the start must lie inside). With any finite bound the
    /// search runs as L-BFGS-B does on a boxed problem, which is how scikit-learn calls it: the
    /// first direction is the projected gradient step P(u - g) - u taken with a step of at most
    /// 1, and every later step stops at the box.
    pub fn with_bounds(mut self, lower: Vec<f64>, upper: Vec<f64>) -> Self {
        self.lower = lower;
        self.upper = upper;
        self
    }

    /// The relative resolution of the evaluations, their epsilon (f32::EPSILON for f32): coarser
    /// than f64's, it sets floors under the tolerances (see the module's text).
    pub fn with_resolution(mut self, eps: f64) -> Self {
        self.resolution = eps;
        self
    }

    /// Whether the evaluations are coarser than f64.
    fn coarse(&self) -> bool {
        self.resolution > f64::EPSILON
    }

    /// The gradient tolerance at the current f: `gtol`, or in coarse evaluations at least
    /// sqrt(epsilon) max(1, |f|) (3.5e-4 |f| in f32): the scale below which such evaluations
    /// cannot tell a gradient from their rounding on an objective of size |f|, the role
    /// STALL_GTOL plays in f64.
    fn gtol_at(&self, gtol: f64) -> f64 {
        if self.coarse() {
            gtol.max(self.resolution.sqrt() * self.f.abs().max(1.0))
        } else {
            gtol
        }
    }

    /// The relative-decrease tolerance: `ftol`, or in coarse evaluations at least FTOL_ULPS
    /// units of their epsilon.
    fn ftol_at(&self, ftol: f64) -> f64 {
        if self.coarse() {
            ftol.max(FTOL_ULPS * self.resolution)
        } else {
            ftol
        }
    }

    fn boxed(&self) -> bool {
        self.lower.iter().chain(&self.upper).any(|v| v.is_finite())
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
            self.f_start = f;
            self.g = g;
            if self.grad_norm_inf() <= self.gtol_at(gtol) {
                self.stop = Some(Stop::Converged);
            } else if max_iter == 0 {
                self.stop = Some(Stop::MaxIter);
            } else {
                self.new_direction();
            }
            return true;
        }
        let stp = self.step;
        let search = self.search.as_mut().expect("a line search is under way");
        let next = if ok {
            let next = search.step(stp, f, dot(&g, &self.dir));
            if search.stx == stp && self.best.as_ref().is_none_or(|b| b.0 != stp) {
                self.best = Some((stp, f, g.clone()));
            }
            next
        } else {
            search.failed(stp)
        };
        match next {
            Next::Accept if ok => self.accept(stp, f, g, gtol, ftol, max_iter),
            Next::Accept => self.settle(gtol, ftol, max_iter),
            Next::Evaluate(t) => {
                self.ls_evals += 1;
                if self.ls_evals >= MAX_LS_EVALS {
                    return self.settle(gtol, ftol, max_iter);
                }
                self.set_step(t);
                false
            }
        }
    }

    /// Ends a line search that found no acceptable step: takes its best step when that one
    /// decreased f; else drops the history and restarts along -g once, then stops (no progress
    /// is possible at working precision): converged when the gradient is below what f's
    /// rounding can resolve, at resolution when coarse evaluations made real progress before,
    /// else stalled.
    fn settle(&mut self, gtol: f64, ftol: f64, max_iter: usize) -> bool {
        if let Some((t, f, g)) = self.best.take() {
            if t > 0.0 && f < self.f {
                return self.accept(t, f, g, gtol, ftol, max_iter);
            }
        }
        if !self.s_hist.is_empty() {
            self.s_hist.clear();
            self.y_hist.clear();
            self.new_direction();
        } else if self.grad_norm_inf() <= STALL_GTOL * self.f.abs().max(1.0) {
            // No decrease is measurable along -g, and the gradient is below what the rounding
            // of f (relative STALL_GTOL) can resolve: converged at working precision.
            self.stop = Some(Stop::Converged);
        } else if self.coarse() && self.progressed() {
            // Coarse evaluations after real progress: no decrease along -g is what their
            // resolution allows, not a failure of the search.
            self.stop = Some(Stop::AtResolution);
        } else {
            self.stop = Some(Stop::Stalled);
        }
        false
    }

    /// Whether f has decreased since the start by more than its rounding.
    fn progressed(&self) -> bool {
        self.iterations > 0 && self.f_start - self.f > FTOL_ULPS * self.resolution * self.f.abs().max(1.0)
    }

    fn accept(&mut self, t: f64, f: f64, g: Vec<f64>, gtol: f64, ftol: f64, max_iter: usize) -> bool {
        let s: Vec<f64> = self.dir.iter().map(|d| t * d).collect();
        let y: Vec<f64> = g.iter().zip(&self.g).map(|(a, b)| a - b).collect();
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
            *u += t * d;
        }
        let f_prev = self.f;
        self.f = f;
        self.g = g;
        self.iterations += 1;
        // scipy's factr test on the relative decrease, taken three times in a row when the
        // step came from a long line search (a small decrease there may say more about the
        // search than about the optimum).
        let rel = (f_prev - self.f) / f_prev.abs().max(self.f.abs()).max(1.0);
        let ftol = self.ftol_at(ftol);
        self.stalls = if rel <= ftol { self.stalls + 1 } else { 0 };
        let stalled = rel <= ftol && (self.ls_evals <= 1 || self.stalls >= 3);
        if self.grad_norm_inf() <= self.gtol_at(gtol) || stalled {
            self.stop = Some(Stop::Converged);
        } else if self.iterations >= max_iter {
            self.stop = Some(Stop::MaxIter);
        } else {
            self.new_direction();
        }
        true
    }

    /// Max norm of the projected gradient: a coordinate on a bound whose gradient points out of
    /// the box counts as stationary (L-BFGS-B's test).
    fn grad_norm_inf(&self) -> f64 {
        (0..self.g.len())
            .map(|i| {
                let g = self.g[i];
                let at_lower = self.u[i] <= self.lower[i] && g > 0.0;
                let at_upper = self.u[i] >= self.upper[i] && g < 0.0;
                if at_lower || at_upper {
                    0.0
                } else {
                    g.abs()
                }
            })
            .fold(0.0f64, f64::max)
    }

    /// Two-loop recursion: dir = -H g; then the first trial step of the line search.
    fn new_direction(&mut self) {
        let k = self.s_hist.len();
        // Coordinates held on a bound (gradient pointing out of the box) take no part.
        let active: Vec<bool> = (0..self.g.len())
            .map(|i| (self.u[i] <= self.lower[i] && self.g[i] > 0.0) || (self.u[i] >= self.upper[i] && self.g[i] < 0.0))
            .collect();
        let mut q: Vec<f64> = self.g.iter().zip(&active).map(|(g, a)| if *a { 0.0 } else { *g }).collect();
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
        for (i, (d, (qv, free))) in self.dir.iter_mut().zip(q.iter().zip(&self.free)).enumerate() {
            *d = if *free && !active[i] { -qv } else { 0.0 };
        }
        self.gd = dot(&self.g, &self.dir);
        if self.gd.is_nan() || self.gd >= 0.0 {
            // Not a descent direction: fall back to steepest descent.
            self.s_hist.clear();
            self.y_hist.clear();
            for (i, (d, g)) in self.dir.iter_mut().zip(&self.g).enumerate() {
                *d = if active[i] { 0.0 } else { -g };
            }
            self.gd = dot(&self.g, &self.dir);
        }
        self.ls_evals = 0;
        self.best = None;
        if self.boxed() {
            if self.iterations == 0 && self.s_hist.is_empty() {
                // L-BFGS-B's first (Cauchy) step with H0 = I: the gradient step projected
                // onto the box, at most a unit step along it.
                for i in 0..self.u.len() {
                    if self.free[i] {
                        self.dir[i] = (self.u[i] - self.g[i]).clamp(self.lower[i], self.upper[i]) - self.u[i];
                    }
                }
                self.gd = dot(&self.g, &self.dir);
                self.t_max = 1.0;
            } else {
                // Coordinates on a bound whose direction points out of the box stay there (the
                // active set); the longest step that stays in the box.
                for i in 0..self.u.len() {
                    if (self.u[i] <= self.lower[i] && self.dir[i] < 0.0)
                        || (self.u[i] >= self.upper[i] && self.dir[i] > 0.0)
                    {
                        self.dir[i] = 0.0;
                    }
                }
                self.gd = dot(&self.g, &self.dir);
                self.t_max = (0..self.u.len())
                    .filter(|&i| self.dir[i] != 0.0)
                    .map(|i| {
                        let room =
                            if self.dir[i] > 0.0 { self.upper[i] - self.u[i] } else { self.lower[i] - self.u[i] };
                        room / self.dir[i]
                    })
                    .fold(f64::INFINITY, f64::min)
                    .max(0.0);
            }
            if !(self.gd < 0.0 && self.t_max > 0.0) {
                // No feasible descent left: the optimum is on the box.
                self.stop = Some(Stop::Converged);
                return;
            }
            let first = self.t_max.min(1.0);
            self.search = Some(MoreThuente::new(self.f, self.gd, first, self.t_max));
            self.set_step(first);
            return;
        }
        let dmax = self.dir.iter().fold(0.0f64, |a, v| a.max(v.abs()));
        self.t_max = if dmax > 0.0 { MAX_COORD_STEP / dmax } else { f64::INFINITY };
        // L-BFGS-B on an unbounded problem: 1 / |d|_2 on the very first iteration, a unit step
        // after.
        let first =
            if self.iterations == 0 { 1.0 / dot(&self.dir, &self.dir).sqrt().max(f64::MIN_POSITIVE) } else { 1.0 };
        let first = first.min(self.t_max);
        self.search = Some(MoreThuente::new(self.f, self.gd, first, self.t_max));
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

    /// A steep quadratic seen through f32: value and gradient rounded to f32, the value with
    /// rounding noise of 1e-5 (3e-7 of |f| = 30) and the gradient with an error of 0.05 (as an
    /// f32 MLL gradient carries on ill-conditioned data). Near the minimum no step along -g
    /// shows a decrease above the noise while the gradient is still far above any f64 tolerance. With f32's resolution every run ends converged (by
    /// the scaled tests or at resolution) within 1e-3 of the minimum; with f64's (the fit before
    /// f32 had its own tests) some end unconverged (stalled, or at the iteration limit).
    #[test]
    fn a_quadratic_in_f32_converges_at_its_resolution() {
        let noise = |k: usize| ((k * 7919 % 13) as f64 - 6.0) / 6.0;
        let f = |u: &[f64], k: usize| {
            let q = 5e3 * ((u[0] - 1.0).powi(2) + 3.0 * (u[1] + 2.0).powi(2));
            (30.0 + q + 1e-5 * noise(k)) as f32 as f64
        };
        let g = |u: &[f64], k: usize| {
            let e = 0.05 * noise(k + 5);
            vec![(1e4 * (u[0] - 1.0) + e) as f32 as f64, (3e4 * (u[1] + 2.0) - e) as f32 as f64]
        };
        let run = |eps: f64, start: [f64; 2]| {
            let mut st = LbfgsState::new(start.to_vec(), vec![true, true], 10).with_resolution(eps);
            let mut k = 0;
            while let Some(u) = st.trial().map(|u| u.to_vec()) {
                k += 1;
                st.observe(f(&u, k), &g(&u, k), 1e-6, 1e-12, 500);
            }
            st
        };
        let starts = [[0.0, 0.0], [5.0, -7.0], [-3.0, 4.0]];
        for start in starts {
            let st = run(f64::from(f32::EPSILON), start);
            let stop = st.stop.expect("stopped");
            assert!(matches!(stop, Stop::Converged | Stop::AtResolution), "from {start:?}: {stop:?} at {:?}", st.u);
            assert!((st.u[0] - 1.0).abs() < 1e-3 && (st.u[1] + 2.0).abs() < 1e-3, "{start:?}: {:?}", st.u);
        }
        let stops: Vec<Option<Stop>> = starts.iter().map(|s| run(f64::EPSILON, *s).stop).collect();
        assert!(
            stops.iter().any(|s| matches!(s, Some(Stop::Stalled | Stop::MaxIter))),
            "with f64's resolution some run ends unconverged: {stops:?}"
        );
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
