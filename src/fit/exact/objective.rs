//! The exact GP as a [`BatchObjective`]: every member's MLL and log prior at its point, in
//! standardised units for the optimiser ([`ExactObjective::evaluate`]) and in the data's units
//! for the result ([`ExactObjective::report`]).

use super::Units;
use crate::backend::{Backend, MllOptions};
use crate::data::{Dataset, Hyperparameters, Status};
use crate::error::Result;
use crate::fit::objective::{BatchObjective, MemberEval};
use crate::fit::transform::Map;
use crate::layout::{Layout, Target};
use crate::prior::ResolvedPriors;

/// The exact GP objective of every member (restarts included).
pub(crate) struct ExactObjective<'a> {
    pub backend: &'a dyn Backend,
    /// Standardised data, one row per member (restarts repeat their GP's rows).
    pub data: Dataset,
    pub layout: Layout,
    /// Per member: the map of every coordinate.
    pub maps: &'a [Vec<Map>],
    /// Priors per member, on natural values in the data's units.
    pub priors: ResolvedPriors,
    pub units: Units,
    /// GP of member e (e % B).
    pub gp: Vec<usize>,
    pub opts: MllOptions,
    /// Natural values (data units) and standardised values of the members being evaluated.
    natural: Hyperparameters,
    internal: Hyperparameters,
}

impl<'a> ExactObjective<'a> {
    #[allow(clippy::too_many_arguments)]
    pub fn new(
        backend: &'a dyn Backend,
        data: Dataset,
        layout: Layout,
        maps: &'a [Vec<Map>],
        priors: ResolvedPriors,
        units: Units,
        gp: Vec<usize>,
        opts: MllOptions,
    ) -> Self {
        let e = gp.len();
        let blank =
            Hyperparameters::broadcast(e, &vec![1.0; layout.n_dims()], 1.0, 1.0, 0.0).with_kernel(layout.kernel());
        ExactObjective { backend, data, layout, maps, priors, units, gp, opts, natural: blank.clone(), internal: blank }
    }

    /// The natural values (data units) of member e at u.
    pub fn theta(&self, e: usize, u: &[f64]) -> Vec<f64> {
        u.iter().zip(&self.maps[e]).map(|(u, m)| m.theta(*u)).collect()
    }
}

/// The report of one member in the data's units.
pub(crate) struct Report {
    pub mll: f64,
    pub log_prior: f64,
    pub status: Status,
    pub jitter: f64,
}

impl ExactObjective<'_> {
    /// Writes the natural and standardised values of the listed members at their points.
    fn load(&mut self, active: &[usize], points: &[&[f64]]) {
        for (&e, u) in active.iter().zip(points) {
            let theta = self.theta(e, u);
            self.layout.write(&mut self.natural, e, &theta);
            self.units.to_internal(&self.natural, e, self.gp[e], &mut self.internal);
        }
    }

    /// MLL (mll' - n log sd: the data's units), log prior, status and jitter of the listed
    /// members at their points, without gradient.
    pub fn report(&mut self, active: &[usize], points: &[&[f64]]) -> Result<Vec<Report>> {
        self.load(active, points);
        let opts = MllOptions { gradient: false, ..self.opts };
        let raw = self.backend.mll(&self.data, &self.internal, Some(active), &opts)?;
        let pri = self.priors.evaluate(&self.natural, Some(active));
        Ok(active
            .iter()
            .enumerate()
            .map(|(i, &e)| {
                let m = self.gp[e];
                let n = self.data.n_observed(e) as f64;
                Report {
                    mll: raw.mll[i] - n * self.units.sd[m].ln(),
                    log_prior: pri.log_prior[i],
                    status: raw.status[i],
                    jitter: raw.jitter[i] * self.units.sd[m] * self.units.sd[m],
                }
            })
            .collect())
    }
}

impl BatchObjective for ExactObjective<'_> {
    fn members(&self) -> usize {
        self.gp.len()
    }

    fn evaluate(&mut self, active: &[usize], points: &[&[f64]]) -> Result<Vec<MemberEval>> {
        self.load(active, points);
        let raw = self.backend.mll(&self.data, &self.internal, Some(active), &self.opts)?;
        let pri = self.priors.evaluate(&self.natural, Some(active));
        let grad = raw.gradient.as_ref().expect("the fit asks for the gradient");
        let p = self.layout.len();
        Ok(active
            .iter()
            .enumerate()
            .map(|(i, &e)| {
                let m = self.gp[e];
                if raw.status[i] == Status::Failed {
                    return MemberEval::failed(p, raw.jitter[i]);
                }
                let g: Vec<f64> = (0..p)
                    .map(|c| {
                        let (t, k) = self.layout.coordinate(c);
                        // The mean's gradient in data units: d mll / d m = (d mll' / d m') / sd.
                        let g_mll =
                            if t == Target::Mean { grad.get(t, i, k) / self.units.sd[m] } else { grad.get(t, i, k) };
                        let theta = self.natural.get(t, e, k);
                        -self.maps[e][c].grad_u(t.positive(), theta, g_mll + pri.grad(t, i, k))
                    })
                    .collect();
                MemberEval {
                    f: -(raw.mll[i] + pri.log_prior[i]),
                    grad: g,
                    status: raw.status[i],
                    jitter: raw.jitter[i],
                }
            })
            .collect())
    }
}
