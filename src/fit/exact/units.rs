//! The units of each GP's data (mean and sd of y, spread of x per dimension) and the scale-free
//! coordinate maps they give; the exact GP's fit and the SVGP's both use them.
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

use crate::data::{Dataset, Hyperparameters};
use crate::fit::transform::Map;
use crate::layout::Target;
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
