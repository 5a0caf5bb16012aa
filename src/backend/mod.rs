//! The backend interface: the batched numerical core that the CPU (rayon) and CUDA backends
//! both implement, so that callers (the fitting loop, prediction, the CLI) never know which one
//! runs. A backend is chosen once, at the edge, with [`select`].
//!
//! Every method takes and returns f64 arrays on the host; [`Precision`] decides the arithmetic
//! inside. Per-member numerical failure is reported in [`Status`], never as an `Err`.

pub mod cpu;
pub mod cuda;
pub(crate) mod member;
pub mod memory;

use crate::data::{Dataset, Hyperparameters, Inputs, Precision, Status};
use crate::error::{Error, Result};
use crate::layout::{Layout, Target};
use crate::svgp::{ElboBatch, ElboOptions, SvgpParams};
use ndarray::{Array1, Array2, Array3, Axis};
use std::borrow::Cow;

/// Jitter policy (docs/design.md section 4): on a failed factorisation of member b, retry with
/// jitter = start * mean(diag K_b) * 10^k for k = 0..retries.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct JitterPolicy {
    /// Relative jitter of the first retry: 1e-8 for f64, 1e-6 for f32 by default.
    pub start: f64,
    /// Retries after the jitter-free attempt (default 6: up to 1e-2 relative in f64).
    pub retries: u32,
}

impl JitterPolicy {
    /// The default for a precision.
    pub fn for_precision(p: Precision) -> Self {
        match p {
            Precision::F64 => JitterPolicy { start: 1e-8, retries: 6 },
            Precision::F32 => JitterPolicy { start: 1e-6, retries: 5 },
        }
    }
    /// Absolute jitter of attempt `k` (0 = none) for a matrix whose mean diagonal is `mean_diag`.
    pub fn jitter(&self, k: u32, mean_diag: f64) -> f64 {
        if k == 0 {
            0.0
        } else {
            self.start * mean_diag * 10f64.powi(k as i32 - 1)
        }
    }
}

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
            log_lengthscale: rows.slice(ndarray::s![.., ..layout.n_dims()]).to_owned(),
            log_outputscale: col(Target::Outputscale),
            log_noise: col(Target::Noise),
            mean: col(Target::Mean),
            log_alpha: layout.has(Target::Alpha).then(|| col(Target::Alpha)),
        }
    }
    /// This gradient plus a prior's (the MAP objective's gradient), row for row.
    pub(crate) fn with_prior(self, p: &crate::prior::PriorTerms) -> MllGradient {
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
/// backend may assume shapes agree.
pub trait Backend: Send + Sync {
    /// "cpu" or "cuda".
    fn name(&self) -> &'static str;

    /// A one-line description (threads, device name).
    fn describe(&self) -> String;

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

    /// SVGP ELBO (and gradient) of the members listed in `members` (all when None), in that
    /// order (docs/design.md section 11). Row b of `data` goes with row b of `params`. The data
    /// term of listed member i is scaled by `scale[i]` (1 when None): n_b / S on a mini-batch.
    fn elbo(
        &self,
        data: &Dataset,
        params: &SvgpParams,
        members: Option<&[usize]>,
        scale: Option<&[f64]>,
        opts: &ElboOptions,
    ) -> Result<ElboBatch>;

    /// SVGP posterior at test points `test` ((M, D) shared or (B, M, D)); needs no data.
    fn svgp_predict(&self, params: &SvgpParams, test: &Inputs, opts: &PredictOptions) -> Result<Prediction>;
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

/// Chooses a backend once, at the edge.
///
/// # Errors
/// [`Error::BackendUnavailable`] when `Cuda` is asked for and no usable GPU, driver or embedded
/// kernels are there (the reason says which).
pub fn select(choice: BackendChoice) -> Result<Box<dyn Backend>> {
    match choice {
        BackendChoice::Cpu => Ok(Box::new(cpu::CpuBackend::new())),
        BackendChoice::Cuda => Ok(Box::new(cuda::CudaBackend::new()?)),
        BackendChoice::Auto => match cuda::CudaBackend::new() {
            Ok(b) => Ok(Box::new(b)),
            Err(_) => Ok(Box::new(cpu::CpuBackend::new())),
        },
    }
}

/// The backend a request runs on: the one it was given, else a new one of the chosen kind,
/// kept alive in `slot`.
pub(crate) fn given_or_select<'a>(
    given: Option<&'a dyn Backend>,
    choice: BackendChoice,
    slot: &'a mut Option<Box<dyn Backend>>,
) -> Result<&'a dyn Backend> {
    match given {
        Some(be) => Ok(be),
        None => {
            let be: &'a mut Box<dyn Backend> = slot.insert(select(choice)?);
            Ok(&**be)
        }
    }
}

/// Every backend usable here, CPU first: what the backend-agnostic tests loop over.
pub fn available() -> Vec<Box<dyn Backend>> {
    let mut v: Vec<Box<dyn Backend>> = vec![Box::new(cpu::CpuBackend::new())];
    if let Ok(c) = cuda::CudaBackend::new() {
        v.push(Box::new(c));
    }
    v
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

impl Prediction {
    /// Completes a prediction from the posterior of f: var_y = var + noise, the +/- 2 sd(y)
    /// bounds, and samples drawn from `cov` when `opts` asks for them (a member whose covariance
    /// cannot be factorised gets the worse of the two statuses). `cov` must be present when
    /// samples or the full covariance are asked for.
    pub(crate) fn assemble(
        mean: Array2<f64>,
        var: Array2<f64>,
        noise: &Array1<f64>,
        cov: Option<Array3<f64>>,
        mut status: Vec<Status>,
        jitter: Array1<f64>,
        opts: &PredictOptions,
    ) -> Prediction {
        let var_y = &var + &noise.view().insert_axis(Axis(1));
        let sd = var_y.mapv(f64::sqrt);
        let samples = match (opts.samples, cov.as_ref()) {
            (Some((count, seed)), Some(c)) => {
                let (s, st) = crate::sample::draw_samples(mean.view(), c.view(), count, seed, opts.first_member);
                for (a, b) in status.iter_mut().zip(st) {
                    *a = (*a).max(b);
                }
                Some(s)
            }
            _ => None,
        };
        Prediction {
            lower: &mean - &(2.0 * &sd),
            upper: &mean + &(2.0 * &sd),
            mean,
            var,
            var_y,
            covariance: if opts.full_covariance { cov } else { None },
            samples,
            status,
            jitter,
        }
    }
}
