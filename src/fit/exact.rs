//! The exact GP as a [`BatchObjective`]: its kernel, parameter layout, coordinate maps, priors
//! and units. Member e of the batch fits GP `e % B` (restarts are extra members).
//!
//! # Units
//! The backend sees each member's y standardised, y' = (y - mu) / sd (and yvar' = yvar / sd^2),
//! with the hyperparameters scaled to match (s' = s / sd^2, noise' = noise / sd^2,
//! m' = (m - mu) / sd; lengthscales unchanged, since every backend centres x per member and x's
//! scale enters only through x / l). The optimiser's coordinates are scale-free as well
//! ([`Map`]): so a fit of c y + a, or of x scaled and shifted, takes the same steps, meets the
//! same convergence tests and lands on the same optimum mapped back. The value minimised is
//! -(mll' + log prior), where mll' = mll + n log sd is the MLL in standardised units and the
//! priors are evaluated on the natural values in the data's units.

use super::objective::{BatchObjective, MemberEval};
use super::transform::Map;
use crate::backend::{Backend, MllOptions};
use crate::data::{Dataset, Hyperparameters, Status};
use crate::error::Result;
use crate::layout::{Layout, Target};
use crate::prior::ResolvedPriors;
use ndarray::{Array2, Axis};

/// Per GP: the units of y (mean, sd) and of x (spread per dimension).
#[derive(Debug, Clone)]
pub(crate) struct Units {
    pub mu: Vec<f64>,
    pub sd: Vec<f64>,
    /// (B, D)
    pub x_scale: Array2<f64>,
}

impl Units {
    /// The units of every GP of `data`: mean and sd of the observed y (sd = 1 when y is
    /// constant, |mean| when that is not 0), sd of the observed x per dimension (1 when
    /// constant).
    pub fn of(data: &Dataset) -> Units {
        let (b, d) = (data.batch_size(), data.n_dims());
        let mut mu = vec![0.0; b];
        let mut sd = vec![1.0; b];
        let mut x_scale = Array2::ones((b, d));
        for m in 0..b {
            let (mean, var) = data.y_moments(m);
            mu[m] = mean;
            sd[m] = if var > 0.0 && var.is_finite() {
                var.sqrt()
            } else if mean != 0.0 && mean.is_finite() {
                mean.abs()
            } else {
                1.0
            };
            let xs = data.x_std(m);
            for k in 0..d {
                if xs[k] > 0.0 && xs[k].is_finite() {
                    x_scale[[m, k]] = xs[k];
                }
            }
        }
        Units { mu, sd, x_scale }
    }

    /// The coordinate map of kind `t` (index `k`) for GP `m`, without a prior's bounds.
    pub fn map(&self, t: Target, m: usize, k: usize) -> Map {
        match t {
            Target::Lengthscale => Map::Log { scale: self.x_scale[[m, k]] },
            Target::Outputscale | Target::Noise => Map::Log { scale: self.sd[m] * self.sd[m] },
            Target::Alpha => Map::Log { scale: 1.0 },
            Target::Mean => Map::Affine { offset: self.mu[m], scale: self.sd[m] },
        }
    }

    /// Member `m`'s hyperparameters in standardised units (row `e` of `from` to row `e` of `to`).
    pub fn to_internal(&self, from: &Hyperparameters, e: usize, m: usize, to: &mut Hyperparameters) {
        let s2 = self.sd[m] * self.sd[m];
        to.lengthscale.row_mut(e).assign(&from.lengthscale.row(e));
        to.outputscale[e] = from.outputscale[e] / s2;
        to.noise[e] = from.noise[e] / s2;
        to.mean[e] = (from.mean[e] - self.mu[m]) / self.sd[m];
        if let (Some(a), Some(b)) = (from.alpha.as_ref(), to.alpha.as_mut()) {
            b[e] = a[e];
        }
    }

    /// `data` with y (and yvar) standardised per GP.
    pub fn standardise(&self, data: &Dataset) -> Dataset {
        let (b, n) = (data.batch_size(), data.n_points());
        let y = Array2::from_shape_fn((b, n), |(m, i)| {
            if data.is_observed(m, i) {
                (data.y()[[m, i]] - self.mu[m]) / self.sd[m]
            } else {
                0.0
            }
        });
        let yvar = data.yvar().map(|v| {
            let mut v = v.clone();
            for (m, mut row) in v.axis_iter_mut(Axis(0)).enumerate() {
                row.mapv_inplace(|x| x / (self.sd[m] * self.sd[m]));
            }
            v
        });
        data.with_values(data.x().clone(), y, yvar)
    }
}

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
