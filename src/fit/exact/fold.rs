//! The exact GP's result: the best start kept per GP and reported in the data's units, and the
//! bounds its hyperparameters ended on.

use super::objective::ExactObjective;
use super::ExactFit;
use crate::data::{Hyperparameters, Status};
use crate::error::Result;
use crate::fit::driver::MemberOptimizer;
use crate::fit::request::{Exact, FitRequest};
use crate::fit::transform::Map;
use crate::fit::{Degeneracy, FitResult, Termination, SAME_OPTIMUM_NATS};
use crate::layout::{Layout, Target};
use ndarray::Array1;

impl FitRequest<'_, Exact> {
    /// Per GP, the hyperparameters its kept run ended on a bound of: a uniform prior's (within
    /// 1e-6 of its width) or a box's (`bounds`, alpha's ALPHA_MAX), in words (`outputscale at
    /// its uniform prior's bound 10`); empty for none. Degenerate members' boxes are their
    /// degeneracy's, said already.
    pub(super) fn bounds_reached(
        &self,
        layout: Layout,
        maps: &[Vec<Map>],
        lower: &[Vec<f64>],
        upper: &[Vec<f64>],
        states: &[Box<dyn MemberOptimizer>],
        res: &FitResult,
    ) -> Vec<String> {
        let b = self.data.batch_size();
        (0..b)
            .map(|m| {
                if res.model.hyperparameters.outputscale[m].is_nan() || res.degeneracy[m].is_some() {
                    return String::new();
                }
                let e = m + res.restart[m] * b;
                let u = states[e].point().0;
                let mut hits = Vec::new();
                for c in 0..layout.len() {
                    let (t, k) = layout.coordinate(c);
                    let name = if t == Target::Lengthscale && layout.n_dims() > 1 {
                        format!("{}[{k}]", t.name())
                    } else {
                        t.name().to_string()
                    };
                    let theta = maps[e][c].theta(u[c]);
                    let near = |a: f64, b: f64, width: f64| (a - b).abs() <= 1e-6 * width;
                    match maps[e][c] {
                        Map::Sigmoid { low, high } => {
                            for bound in [low, high] {
                                if near(theta, bound, high - low) {
                                    hits.push(format!("{name} at its uniform prior's bound {bound}"));
                                }
                            }
                        }
                        Map::Log { scale } => {
                            for bu in [lower[e][c], upper[e][c]] {
                                if bu.is_finite() && near(u[c], bu, 1.0) {
                                    // The user's bound as typed, not its round trip through log.
                                    let v = scale * bu.exp();
                                    let v = match self.model.bounds {
                                        Some((lo, _)) if near(v, lo, lo) => lo,
                                        Some((_, hi)) if near(v, hi, hi) => hi,
                                        _ => v,
                                    };
                                    hits.push(format!("{name} at its box bound {v}"));
                                }
                            }
                        }
                        _ => {}
                    }
                }
                hits.join(", ")
            })
            .collect()
    }

    /// Keeps the best run per GP and reports it in the data's units: one evaluation (without
    /// gradient) at the kept points gives mll, log prior, status and jitter.
    pub(super) fn fold(
        &self,
        objective: &mut ExactObjective,
        states: &[Box<dyn MemberOptimizer>],
        degeneracy: &[Option<Degeneracy>],
        rounds: usize,
    ) -> Result<FitResult> {
        let (b, d) = (self.data.batch_size(), self.data.n_dims());
        let nan = f64::NAN;
        let hyperparameters = Hyperparameters::broadcast(b, &vec![nan; d], nan, nan, nan).with_kernel(self.kernel);
        let fitted = ExactFit { hyperparameters, mll: Array1::from_elem(b, nan) };
        let mut res = FitResult::<Exact>::unfitted(fitted, b, self.model.restarts + 1, rounds);
        res.degeneracy = degeneracy.to_vec();
        if let Some(a) = res.model.hyperparameters.alpha.as_mut() {
            a.fill(nan);
        }
        let mut kept = Vec::new();
        for m in 0..b {
            let runs = (0..=self.model.restarts).map(|r| m + r * b);
            if self.data.n_observed(m) == 0 {
                res.status[m] = Status::Empty;
                res.reason[m] = Termination::NoData;
                continue;
            }
            let finite: Vec<usize> = runs
                .filter(|&e| states[e].termination() != Some(Termination::Failed) && states[e].point().1.is_finite())
                .collect();
            // Starts that tie with the lowest value (within 1e-9 relative) keep the earliest, so
            // rounding noise between equal optima never decides which start is kept.
            let f_min = finite.iter().map(|&e| states[e].point().1).fold(f64::INFINITY, f64::min);
            let best = finite.iter().copied().find(|&e| states[e].point().1 - f_min <= 1e-9 * (1.0 + f_min.abs()));
            match best {
                Some(e) => {
                    kept.push((m, e));
                    let f_best = states[e].point().1;
                    let tol = SAME_OPTIMUM_NATS.max(1e-9 * f_best.abs());
                    res.reached_best[m] = (0..=self.model.restarts)
                        .map(|r| m + r * b)
                        .filter(|&x| states[x].termination() != Some(Termination::Failed))
                        .filter(|&x| states[x].point().1 - f_best <= tol)
                        .count();
                }
                None => res.reason[m] = Termination::Failed,
            }
        }
        let members: Vec<usize> = kept.iter().map(|&(_, e)| e).collect();
        let points: Vec<&[f64]> = members.iter().map(|&e| states[e].point().0).collect();
        let report = objective.report(&members, &points)?;
        for (&(m, e), r) in kept.iter().zip(report) {
            let mut theta = objective.theta(e, states[e].point().0);
            // A positive hyperparameter driven towards 0 (noise on noise-free data) may underflow
            // exp() to 0: report the smallest positive value, which every request accepts.
            let mean = objective.layout.index(Target::Mean, 0);
            for (i, v) in theta.iter_mut().enumerate() {
                if i != mean && *v == 0.0 {
                    *v = f64::MIN_POSITIVE;
                }
            }
            objective.layout.write(&mut res.model.hyperparameters, m, &theta);
            let reason = states[e].termination().unwrap_or(Termination::Failed);
            res.reason[m] = reason;
            res.iterations[m] = states[e].iterations();
            res.restart[m] = e / b;
            res.jitter[m] = r.jitter;
            res.status[m] = reason.final_status(r.status, degeneracy[m].is_some());
            if res.status[m] != Status::Failed {
                res.model.mll[m] = r.mll;
                res.log_prior[m] = r.log_prior;
                res.objective[m] = r.mll + r.log_prior;
            }
        }
        Ok(res)
    }
}
