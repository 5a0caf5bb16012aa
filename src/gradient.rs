//! The gradient of an objective with respect to a member's hyperparameters ([`MllGradient`]),
//! one array per kind in layout order: what the backends return for the MLL and the ELBO alike.

use crate::layout::{Layout, Target};
use crate::prior::PriorTerms;
use ndarray::{s, Array1, Array2};

/// Gradient of the MLL with respect to log(lengthscale), log(outputscale), log(noise), mean
/// and, for rq, log(alpha).
#[derive(Debug, Clone, PartialEq)]
pub struct MllGradient {
    /// (K, D)
    pub log_lengthscale: Array2<f64>,
    /// (K,)
    pub log_outputscale: Array1<f64>,
    /// (K,)
    pub log_noise: Array1<f64>,
    /// (K,)
    pub mean: Array1<f64>,
    /// (K,) for the rq kernel, else None.
    pub log_alpha: Option<Array1<f64>>,
}

impl MllGradient {
    /// All zeros for K members in a layout.
    pub fn zeros(k: usize, layout: Layout) -> Self {
        MllGradient {
            log_lengthscale: Array2::zeros((k, layout.n_dims())),
            log_outputscale: Array1::zeros(k),
            log_noise: Array1::zeros(k),
            mean: Array1::zeros(k),
            log_alpha: layout.has(Target::Alpha).then(|| Array1::zeros(k)),
        }
    }
    /// From rows in layout order (K, P): one column copy per kind.
    pub fn from_rows(rows: &Array2<f64>, layout: Layout) -> Self {
        let col = |t: Target| rows.column(layout.index(t, 0)).to_owned();
        MllGradient {
            log_lengthscale: rows.slice(s![.., ..layout.n_dims()]).to_owned(),
            log_outputscale: col(Target::Outputscale),
            log_noise: col(Target::Noise),
            mean: col(Target::Mean),
            log_alpha: layout.has(Target::Alpha).then(|| col(Target::Alpha)),
        }
    }
    /// This gradient plus a prior's (the MAP objective's gradient), row for row.
    pub(crate) fn with_prior(self, p: &PriorTerms) -> MllGradient {
        MllGradient {
            log_lengthscale: self.log_lengthscale + &p.grad_log_lengthscale,
            log_outputscale: self.log_outputscale + &p.grad_log_outputscale,
            log_noise: self.log_noise + &p.grad_log_noise,
            mean: self.mean + &p.grad_mean,
            log_alpha: self.log_alpha.map(|a| a + &p.grad_log_alpha),
        }
    }
    /// The entry of kind `t` (index `k`) of row `i`.
    pub fn get(&self, t: Target, i: usize, k: usize) -> f64 {
        match t {
            Target::Lengthscale => self.log_lengthscale[[i, k]],
            Target::Outputscale => self.log_outputscale[i],
            Target::Noise => self.log_noise[i],
            Target::Mean => self.mean[i],
            Target::Alpha => self.log_alpha.as_ref().map_or(0.0, |a| a[i]),
        }
    }
    /// The entry of kind `t` (index `k`) of row `i`, to write. Alpha must be present.
    pub fn get_mut(&mut self, t: Target, i: usize, k: usize) -> &mut f64 {
        match t {
            Target::Lengthscale => &mut self.log_lengthscale[[i, k]],
            Target::Outputscale => &mut self.log_outputscale[i],
            Target::Noise => &mut self.log_noise[i],
            Target::Mean => &mut self.mean[i],
            Target::Alpha => &mut self.log_alpha.as_mut().expect("alpha in the layout")[i],
        }
    }
}
