//! The backend interface: the batched numerical core that the CPU (rayon) and CUDA backends
//! both implement, so that callers (the fitting loop, prediction, the CLI) never know which one
//! runs. A backend is chosen once, at the edge, with [`select`].
//!
//! Every method takes and returns f64 arrays on the host; [`Precision`] decides the arithmetic
//! inside. Per-member numerical failure is reported in [`Status`], never as an `Err`.

pub mod cpu;
pub mod cuda;
pub(crate) mod member;
/// The memory model and budget (CPU sizes, parsing and formatting byte counts).
pub use cpu::memory;
mod select;
pub(crate) use select::given_or_select;
pub use select::{available, kind, select, Kind};

use crate::data::{Dataset, Hyperparameters, Inputs, Precision, Status};
use crate::error::{Error, Result};
pub use crate::gradient::MllGradient;
pub use crate::precision::JitterPolicy;
use ndarray::{Array1, Array2, Array3};
use std::borrow::Cow;

/// Options of one batched MLL evaluation.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct MllOptions {
    pub precision: Precision,
    /// Compute the analytic gradient (costs a K^-1: about twice the work of the MLL alone).
    pub gradient: bool,
    pub jitter: JitterPolicy,
    /// Memory budget in bytes (None: the memory available); see [`memory`].
    pub max_memory: Option<u64>,
}

impl Default for MllOptions {
    fn default() -> Self {
        MllOptions::new(Precision::F64)
    }
}

impl MllOptions {
    /// Defaults for a precision (gradient on).
    pub fn new(precision: Precision) -> Self {
        MllOptions { precision, gradient: true, jitter: JitterPolicy::for_precision(precision), max_memory: None }
    }
}

/// The MLL of K evaluated members (K = B, or the length of the `members` list).
#[derive(Debug, Clone, PartialEq)]
pub struct MllBatch {
    /// (K,) the total exact MLL (not divided by n); NaN for a failed member.
    pub mll: Array1<f64>,
    /// Present when asked for; NaN rows for failed members.
    pub gradient: Option<MllGradient>,
    /// (K,)
    pub status: Vec<Status>,
    /// (K,) absolute jitter added to the diagonal (0 when none).
    pub jitter: Array1<f64>,
}

/// Lower Cholesky factors of a batch with per-member diagnostics.
#[derive(Debug, Clone, PartialEq)]
pub struct CholeskyBatch {
    /// (B, N, N) lower triangular, zeros above the diagonal; NaN for a failed member.
    pub factor: Array3<f64>,
    pub status: Vec<Status>,
    /// (B,) absolute jitter added to the diagonal.
    pub jitter: Array1<f64>,
}

/// What to compute in a prediction beyond mean and variances.
#[derive(Debug, Clone, Copy, PartialEq, Default)]
pub struct PredictOptions {
    pub precision: Precision,
    /// Also return the full posterior covariance of f (B, M, M).
    pub full_covariance: bool,
    /// Posterior samples of f: (count, seed). Reproducible for a seed on every backend and
    /// thread count (one random stream per member).
    pub samples: Option<(usize, u64)>,
    /// Memory budget in bytes (None: the memory available); see [`memory`].
    pub max_memory: Option<u64>,
    /// The index of the first member in a larger batch split into chunks: member b samples from
    /// stream first_member + b, so the chunks draw what the whole batch would (default 0).
    pub first_member: u64,
}

/// Posterior at M test points per member (docs/design.md section 6). Arrays are (B, M).
#[derive(Debug, Clone, PartialEq)]
pub struct Prediction {
    /// Posterior mean of f (and of y).
    pub mean: Array2<f64>,
    /// Posterior variance of f.
    pub var: Array2<f64>,
    /// Posterior variance of y = var f + noise.
    pub var_y: Array2<f64>,
    /// mean - 2 sd(y) (GPyTorch's confidence_region).
    pub lower: Array2<f64>,
    /// mean + 2 sd(y).
    pub upper: Array2<f64>,
    /// (B, M, M) when asked for.
    pub covariance: Option<Array3<f64>>,
    /// (S, B, M) posterior samples of f when asked for.
    pub samples: Option<Array3<f64>>,
    pub status: Vec<Status>,
    pub jitter: Array1<f64>,
}

/// The batched numerical core. Implemented by [`cpu::CpuBackend`] and [`cuda::CudaBackend`].
///
/// Hyperparameters are validated by the caller (the public functions in the crate root); a
/// backend may assume shapes agree. The trait holds what every model needs and the exact GP's
/// batched MLL and prediction; it names no other model's types. Another model's operations are
/// methods of the concrete backends (`CpuBackend::elbo`, `CudaBackend::elbo`, in
/// `backend/<cpu|cuda>/<model>.rs`) that its module reaches through [`kind`]; the SVGP's are also
/// callable on a `&dyn Backend` (`be.elbo(..)`, `be.svgp_predict(..)`, defined in `crate::svgp`).
pub trait Backend: Send + Sync {
    /// "cpu" or "cuda".
    fn name(&self) -> &'static str;

    /// A one-line description (threads, device name).
    fn describe(&self) -> String;

    /// The backend itself, for [`kind`]: how a model's own operations (functions in
    /// `backend/cpu/<model>.rs` and `backend/cuda/<model>.rs` taking the concrete backend) are
    /// reached without a method of this trait per model. None for a backend outside this crate.
    fn as_any(&self) -> Option<&dyn std::any::Any> {
        None
    }

    /// Gram matrices K_b = k_b(X_b, X_b) + noise_b I (no jitter): (B, N, N). Rows and columns of
    /// masked points are those of the identity.
    fn gram(&self, data: &Dataset, hyp: &Hyperparameters, precision: Precision) -> Result<Array3<f64>>;

    /// Lower Cholesky factors of a (B, N, N) batch of symmetric matrices (only the lower
    /// triangle is read), with per-member jitter escalation.
    fn cholesky(&self, a: &Array3<f64>, precision: Precision, jitter: JitterPolicy) -> Result<CholeskyBatch>;

    /// MLL (and gradient) of the members listed in `members` (all when None), in that order.
    /// `hyp` holds all B members; only the listed rows are read. This is what the fitting loop
    /// calls on the members still running.
    fn mll(
        &self,
        data: &Dataset,
        hyp: &Hyperparameters,
        members: Option<&[usize]>,
        opts: &MllOptions,
    ) -> Result<MllBatch>;

    /// Posterior at test points `test` ((M, D) shared or (B, M, D)).
    fn predict(
        &self,
        data: &Dataset,
        hyp: &Hyperparameters,
        test: &Inputs,
        opts: &PredictOptions,
    ) -> Result<Prediction>;
}

/// Which backend to use.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum BackendChoice {
    /// The GPU when libcuda, a device and embedded kernels are all there, else the CPU.
    #[default]
    Auto,
    Cpu,
    /// The GPU; an error when it cannot be had.
    Cuda,
}

impl std::str::FromStr for BackendChoice {
    type Err = Error;
    fn from_str(s: &str) -> Result<Self> {
        match s {
            "auto" => Ok(BackendChoice::Auto),
            "cpu" => Ok(BackendChoice::Cpu),
            "cuda" => Ok(BackendChoice::Cuda),
            _ => Err(Error::option("backend", format!("expected auto, cpu or cuda, got `{s}`"))),
        }
    }
}

/// The member list of a call: `members` when given (each checked against B), else 0..B.
///
/// # Errors
/// [`Error::InvalidOption`] naming the first member out of range.
pub(crate) fn member_rows(members: Option<&[usize]>, b: usize) -> Result<Cow<'_, [usize]>> {
    match members {
        Some(r) => match r.iter().find(|&&m| m >= b) {
            Some(bad) => Err(Error::option("members", format!("member {bad} out of range for B = {b}"))),
            None => Ok(Cow::Borrowed(r)),
        },
        None => Ok(Cow::Owned((0..b).collect())),
    }
}
