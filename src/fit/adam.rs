//! One member's Adam state, for parity with GPyTorch tutorials (maximises the objective with
//! the usual bias-corrected moments; beta1 = 0.9, beta2 = 0.999, eps = 1e-8).
//!
//! A step that lands on a failed evaluation is undone and the member's learning rate halved.
//!
//! On a stochastic objective (mini-batches) a constant rate leaves the iterates wandering about
//! the optimum by an amount proportional to the rate; there the rate anneals: constant for the
//! first half of the steps, then a half cosine down to ANNEAL_FLOOR of it at the step limit.

use super::driver::MemberOptimizer;
use super::lbfgs::Stop;
use super::Termination;

/// The annealed rate's last value, as a fraction of the rate.
const ANNEAL_FLOOR: f64 = 0.05;

/// An [`AdamState`] with its stopping rule, as the batched driver runs it.
pub(crate) struct Adam {
    pub state: AdamState,
    pub gtol: f64,
    pub max_iter: usize,
}

impl MemberOptimizer for Adam {
    fn trial(&self) -> Option<&[f64]> {
        self.state.trial()
    }
    fn observe(&mut self, f: f64, g: &[f64]) -> bool {
        self.state.observe(f, g, self.gtol, self.max_iter)
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
pub(crate) struct AdamState {
    pub u: Vec<f64>,
    pub f: f64,
    m1: Vec<f64>,
    m2: Vec<f64>,
    t: i32,
    lr: f64,
    prev_u: Vec<f64>,
    pub trial_u: Vec<f64>,
    pub iterations: usize,
    pub stop: Option<Stop>,
    free: Vec<bool>,
    lower: Vec<f64>,
    upper: Vec<f64>,
    /// The step limit over which the rate anneals, when it does.
    anneal: Option<usize>,
}

impl AdamState {
    pub fn new(u0: Vec<f64>, free: Vec<bool>, lr: f64) -> Self {
        let p = u0.len();
        AdamState {
            trial_u: u0.clone(),
            prev_u: u0.clone(),
            u: u0,
            f: f64::INFINITY,
            m1: vec![0.0; p],
            m2: vec![0.0; p],
            t: 0,
            lr,
            iterations: 0,
            stop: None,
            lower: vec![f64::NEG_INFINITY; p],
            upper: vec![f64::INFINITY; p],
            free,
            anneal: None,
        }
    }

    /// Anneals the rate over `horizon` steps (see the module's note); None keeps it constant.
    pub fn with_anneal(mut self, horizon: Option<usize>) -> Self {
        self.anneal = horizon;
        self
    }

    /// The rate's factor at step t (1-based): 1 for the first half of the horizon, then
    /// ANNEAL_FLOOR + (1 - ANNEAL_FLOOR) (1 + cos(pi s)) / 2 with s from 0 to 1 over the second.
    fn schedule(&self, t: usize) -> f64 {
        match self.anneal {
            Some(h) if h > 0 && 2 * t > h => {
                let s = ((2 * t - h) as f64 / h as f64).min(1.0);
                ANNEAL_FLOOR + (1.0 - ANNEAL_FLOOR) * 0.5 * (1.0 + (std::f64::consts::PI * s).cos())
            }
            _ => 1.0,
        }
    }

    /// Box bounds on the coordinates: every step is clipped to them.
    pub fn with_bounds(mut self, lower: Vec<f64>, upper: Vec<f64>) -> Self {
        self.lower = lower;
        self.upper = upper;
        self
    }

    pub fn trial(&self) -> Option<&[f64]> {
        if self.stop.is_some() {
            None
        } else {
            Some(&self.trial_u)
        }
    }

    /// Takes f = -objective and its gradient at the trial point; returns true when the point
    /// was accepted as the current iterate.
    pub fn observe(&mut self, f: f64, g: &[f64], gtol: f64, max_iter: usize) -> bool {
        let ok = f.is_finite() && g.iter().all(|v| v.is_finite());
        if !ok {
            if self.t == 0 {
                self.stop = Some(Stop::Failed);
            } else {
                self.lr *= 0.5;
                self.trial_u.clone_from(&self.prev_u);
                self.u.clone_from(&self.prev_u);
                if self.lr < 1e-12 {
                    self.stop = Some(Stop::Stalled);
                }
            }
            return false;
        }
        self.u.clone_from(&self.trial_u);
        self.f = f;
        let gnorm = g.iter().zip(&self.free).filter(|(_, f)| **f).fold(0.0f64, |a, (v, _)| a.max(v.abs()));
        if gnorm <= gtol {
            self.stop = Some(Stop::Converged);
            return true;
        }
        if self.iterations >= max_iter {
            self.stop = Some(Stop::MaxIter);
            return true;
        }
        self.t += 1;
        self.iterations += 1;
        let (b1, b2, eps) = (0.9f64, 0.999f64, 1e-8);
        let c1 = 1.0 - b1.powi(self.t);
        let c2 = 1.0 - b2.powi(self.t);
        self.prev_u.clone_from(&self.u);
        let lr = self.lr * self.schedule(self.iterations);
        for (i, gi) in g.iter().enumerate() {
            if !self.free[i] {
                continue;
            }
            self.m1[i] = b1 * self.m1[i] + (1.0 - b1) * gi;
            self.m2[i] = b2 * self.m2[i] + (1.0 - b2) * gi * gi;
            let step = self.u[i] - lr * (self.m1[i] / c1) / ((self.m2[i] / c2).sqrt() + eps);
            self.trial_u[i] = step.clamp(self.lower[i], self.upper[i]);
        }
        true
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The annealed rate: 1 through the first half, then falling without a jump to the floor at
    /// the horizon and staying there; no horizon, no annealing.
    #[test]
    fn the_rate_anneals_over_the_second_half_only() {
        let a = AdamState::new(vec![0.0], vec![true], 0.1).with_anneal(Some(1000));
        assert_eq!(a.schedule(1), 1.0);
        assert_eq!(a.schedule(500), 1.0);
        assert!((a.schedule(501) - 1.0).abs() < 1e-4);
        assert!((a.schedule(750) - (ANNEAL_FLOOR + (1.0 - ANNEAL_FLOOR) * 0.5)).abs() < 1e-12);
        assert!((a.schedule(1000) - ANNEAL_FLOOR).abs() < 1e-12);
        assert!((a.schedule(5000) - ANNEAL_FLOOR).abs() < 1e-12);
        assert!((500..1000).all(|t| a.schedule(t + 1) <= a.schedule(t)));
        let constant = AdamState::new(vec![0.0], vec![true], 0.1);
        assert!((1..3000).all(|t| constant.schedule(t) == 1.0));
    }
}
