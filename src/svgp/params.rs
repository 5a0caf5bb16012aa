//! The SVGP's values (docs/design.md section 11), in the noun layer so that the backends can
//! name them without reaching up into the model: its parameters ([`SvgpParams`]), the options of
//! one ELBO evaluation ([`ElboOptions`]) and a backend's answer ([`ElboBatch`], [`SvgpGradient`]).

use crate::data::{Hyperparameters, Precision, Status};
use crate::error::{Error, Result};
use crate::gradient::MllGradient;
use crate::kernel::Kernel;
use crate::precision::JitterPolicy;
use ndarray::{Array1, Array2, Array3, Axis};

/// SVGP parameters of B members.
#[derive(Debug, Clone, PartialEq)]
pub struct SvgpParams {
    /// (B, M, D) inducing inputs.
    pub z: Array3<f64>,
    /// (B, M) whitened variational mean.
    pub q_mu: Array2<f64>,
    /// (B, M, M) lower-triangular factor of the whitened variational covariance (entries above
    /// the diagonal are ignored).
    pub q_sqrt: Array3<f64>,
    /// The kernel's hyperparameters, the noise and the mean.
    pub hyp: Hyperparameters,
}

impl SvgpParams {
    /// Parameters from their parts, checked with [`SvgpParams::validate`].
    ///
    /// # Errors
    /// As [`SvgpParams::validate`].
    pub fn new(z: Array3<f64>, q_mu: Array2<f64>, q_sqrt: Array3<f64>, hyp: Hyperparameters) -> Result<Self> {
        let p = SvgpParams { z, q_mu, q_sqrt, hyp };
        let (b, _, d) = p.z.dim();
        p.validate(b, d)?;
        Ok(p)
    }

    /// The variational prior q = p: q_mu = 0 and q_sqrt = I, at inducing inputs `z`.
    pub fn whitened_prior(z: Array3<f64>, hyp: Hyperparameters) -> Self {
        let (b, m, _) = z.dim();
        let q_sqrt = Array3::from_shape_fn((b, m, m), |(_, i, j)| if i == j { 1.0 } else { 0.0 });
        SvgpParams { z, q_mu: Array2::zeros((b, m)), q_sqrt, hyp }
    }

    /// B.
    pub fn batch_size(&self) -> usize {
        self.z.shape()[0]
    }
    /// M, the inducing points per member.
    pub fn n_inducing(&self) -> usize {
        self.z.shape()[1]
    }
    /// D.
    pub fn n_dims(&self) -> usize {
        self.z.shape()[2]
    }
    pub fn kernel(&self) -> Kernel {
        self.hyp.kernel
    }

    /// Checks shapes against (B, D), that z, q_mu and the lower triangle of q_sqrt are finite,
    /// and the hyperparameters ([`Hyperparameters::validate`]). A member whose hyperparameters
    /// are all NaN (failed in a fit) is accepted and reported as failed.
    ///
    /// # Errors
    /// [`Error::Shape`], [`Error::NonFinite`] naming (member, index), or the hyperparameters'.
    pub fn validate(&self, b: usize, d: usize) -> Result<()> {
        let (zb, m, zd) = self.z.dim();
        if zb != b || zd != d || m == 0 {
            return Err(Error::shape("z", format!("({b}, M, {d}) with M >= 1"), self.z.shape()));
        }
        if self.q_mu.dim() != (b, m) {
            return Err(Error::shape("q_mu", format!("({b}, {m})"), self.q_mu.shape()));
        }
        if self.q_sqrt.dim() != (b, m, m) {
            return Err(Error::shape("q_sqrt", format!("({b}, {m}, {m})"), self.q_sqrt.shape()));
        }
        self.hyp.validate(b, d)?;
        let non_finite =
            |array: &str, member, index, value| Error::NonFinite { array: array.into(), member, index, value };
        for mb in (0..b).filter(|&mb| !self.hyp.is_failed(mb)) {
            for (i, v) in self.z.index_axis(Axis(0), mb).iter().enumerate() {
                if !v.is_finite() {
                    return Err(non_finite("z", mb, i, *v));
                }
            }
            for (i, v) in self.q_mu.row(mb).iter().enumerate() {
                if !v.is_finite() {
                    return Err(non_finite("q_mu", mb, i, *v));
                }
            }
            let q = self.q_sqrt.index_axis(Axis(0), mb);
            for ((i, j), v) in q.indexed_iter() {
                if j <= i && !v.is_finite() {
                    return Err(non_finite("q_sqrt", mb, i * m + j, *v));
                }
            }
        }
        Ok(())
    }

    /// The members listed in `rows`, in that order (repeats allowed).
    pub fn select(&self, rows: &[usize]) -> SvgpParams {
        SvgpParams {
            z: self.z.select(Axis(0), rows),
            q_mu: self.q_mu.select(Axis(0), rows),
            q_sqrt: self.q_sqrt.select(Axis(0), rows),
            hyp: self.hyp.select(rows),
        }
    }
}

/// Options of one batched ELBO evaluation.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct ElboOptions {
    pub precision: Precision,
    /// Compute the analytic gradient.
    pub gradient: bool,
    /// The jitter of k(Z, Z): attempt k (0-based) adds start * 10^k * s (start 1e-6 in f64,
    /// 1e-4 in f32), for k = 0..=retries.
    pub jitter: JitterPolicy,
    /// Memory budget in bytes on the CPU (None: the memory available); members run in chunks
    /// that fit it (`backend::memory`, docs/design.md section 14).
    pub max_memory: Option<u64>,
}

impl ElboOptions {
    /// Defaults for a precision (gradient on).
    pub fn new(precision: Precision) -> Self {
        let start = match precision {
            Precision::F64 => 1e-6,
            Precision::F32 => 1e-4,
        };
        ElboOptions { precision, gradient: true, jitter: JitterPolicy { start, retries: 4 }, max_memory: None }
    }
    /// The absolute jitter of attempt k for outputscale s.
    pub fn jitter_at(&self, k: u32, s: f64) -> f64 {
        self.jitter.start * 10f64.powi(k as i32) * s
    }
}

impl Default for ElboOptions {
    fn default() -> Self {
        ElboOptions::new(Precision::F64)
    }
}

/// The gradient of an ELBO (or of the MAP objective) of K members.
#[derive(Debug, Clone, PartialEq)]
pub struct SvgpGradient {
    /// (K, M, D)
    pub z: Array3<f64>,
    /// (K, M)
    pub q_mu: Array2<f64>,
    /// (K, M, M), lower triangle (zeros above).
    pub q_sqrt: Array3<f64>,
    /// With respect to log lengthscale, log outputscale, log noise, mean and rq's log alpha.
    pub hyp: MllGradient,
}

/// The ELBO of K evaluated members (K = B, or the length of the `members` list).
#[derive(Debug, Clone, PartialEq)]
pub struct ElboBatch {
    /// (K,) NaN for a failed member.
    pub elbo: Array1<f64>,
    /// Present when asked for; NaN rows for failed members.
    pub gradient: Option<SvgpGradient>,
    pub status: Vec<Status>,
    /// (K,) absolute jitter added to k(Z, Z).
    pub jitter: Array1<f64>,
}
