//! The CUDA backend: hand-written kernels (kernels/*.cu, compiled by build.rs into one embedded
//! fatbin) launched through cudarc with the driver loaded at run time, so the crate runs where
//! CUDA is absent and reports why the GPU cannot be had.
//!
//! # Kernels (see the comments at the top of each .cu file for the exact launch shapes)
//! Every covariance kernel (rbf, matern12, matern32, matern52, rq: one policy struct each in
//! kernels/covariance.cuh, mirroring [`crate::kernel`]) and precision (f64, f32) has its own
//! entry points, named `<op>_<kernel>_<dtype>` (`gp_mll_warp_matern52_f64`); the Cholesky of
//! given matrices involves no covariance kernel and is `chol_<variant>_<dtype>`. The names are
//! built in one place, from a typed id (`launch::KernelId`).
//!
//! | entry point                          | what                                     | launch                      |
//! |--------------------------------------|------------------------------------------|-----------------------------|
//! | `gram_<k>_<T>`                       | K (B, N, N) with noise, yvar and mask    | grid-stride, 256 threads    |
//! | `gp_mll_warp_<k>_<T>`                | fused K, Cholesky + jitter, solves, MLL, K^-1, gradient (P = D + 3, + 1 for rq), N <= 32 | a warp per member (lane i owns row i in registers), 4 per block |
//! | `gp_mll_block_<k>_<T>`               | the same, K in shared memory (N <= 168 in f64, 239 in f32 with 227 KiB) | a block of 256 per member |
//! | `gp_mll_global_<k>_<T>`              | the same in a global workspace, any N    | a block of 256 per member   |
//! | `chol_{warp,block,global}_<T>`       | Cholesky of given matrices + jitter      | as above                    |
//! | `predict_<k>_<T>`                    | mean, var of f and V = L^-1 K*           | a thread per test point     |
//! | `predict_cov_<k>_<T>`                | K** - V^T V                              | grid-stride, 256 threads    |
//! | `svgp_elbo_<k>_<T>`                  | SVGP ELBO + gradient (kernels/svgp.cu)   | a block of 256 per member   |
//! | `svgp_predict_<k>_<T>`               | SVGP mean, var of f and A* = L^-1 k(Z, x*) | a block of 256 per member |
//!
//! # Agreement with the CPU backend
//! The host prepares inputs exactly as the CPU backend does ([`super::member`]): every member's
//! points centred on the mean of its observed points, residuals r = y - m and the known noise
//! yvar in f64, the jitter of every attempt from [`JitterPolicy::jitter`] with mean diagonal
//! s + noise + mean(yvar), then converted to the working precision; the kernels get the real
//! lengthscales. Masked entries are uploaded as 0 and selected away in the kernels. Status,
//! jitter and the non-finite checks are decided on the host with the CPU backend's rules
//! (an empty member is [`Status::Empty`](crate::Status::Empty) and never reaches the MLL kernel).
//!
//! # Memory
//! Members are processed in chunks sized from the free device memory (and
//! `BATCHGP_CUDA_MAX_CHUNK` when set, which tests use to exercise chunking); results do not
//! depend on the chunking. An MLL call done in one chunk keeps its data-derived device inputs
//! (centred x, mask, yvar) under the dataset's id and member list, so the next call on the same
//! data and members (a fit's next evaluation) uploads only the residuals and hyperparameters;
//! [`CudaBackend::release_cached_inputs`] frees them.
//!
//! # Layout
//! `device` (driver, context, module, copies, chunking), `launch` (entry point ids, variants,
//! launch shapes), `mll` (member preparation, the fused kernel, MLL and gradient), `predict`,
//! `linalg` (Gram, Cholesky), `svgp` (the SVGP ELBO and posterior).

mod device;
mod launch;
mod linalg;
mod mll;
mod predict;
mod svgp;

pub use device::{build_info, embedded_targets, probe, KernelTime};
#[doc(hidden)]
pub use launch::emulation;

use super::{Backend, CholeskyBatch, JitterPolicy, MllBatch, MllOptions, PredictOptions, Prediction};
use crate::data::{Dataset, Hyperparameters, Inputs, Precision};
use crate::error::{Error, Result};
use device::{guarded, Device};
use ndarray::Array3;
use std::sync::Mutex;

/// The GPU backend: one device (ordinal 0), one stream, calls serialised.
pub struct CudaBackend {
    dev: Mutex<Device>,
    desc: String,
}

impl CudaBackend {
    /// Opens the first CUDA device and loads the embedded kernels.
    ///
    /// # Errors
    /// [`Error::BackendUnavailable`] with the reason: "built without CUDA kernels", "libcuda not
    /// found", "no CUDA device", or the driver's error when the context or the kernels cannot be
    /// loaded.
    pub fn new() -> Result<Self> {
        let (dev, desc) = Device::open()?;
        Ok(CudaBackend { dev: Mutex::new(dev), desc })
    }

    /// Processes at most `members` members per launch (at least 1). Results do not depend on it;
    /// tests use it to check that.
    pub fn with_max_chunk(self, members: usize) -> Self {
        self.lock().max_chunk = members.max(1);
        self
    }

    /// Times every kernel launch with device events (each launch then waits for its kernel);
    /// [`CudaBackend::take_kernel_times`] returns them. For benchmarks: kernel time without the
    /// host's preparation and copies.
    pub fn with_kernel_times(self) -> Self {
        self.lock().times = Some(Default::default());
        self
    }

    /// The launches timed since the last call (empty unless [`CudaBackend::with_kernel_times`]).
    pub fn take_kernel_times(&self) -> Vec<KernelTime> {
        self.lock().times.as_ref().map(|t| t.take()).unwrap_or_default()
    }

    /// Frees the device inputs kept from the last MLL call (the data-derived ones: x, mask and
    /// yvar of its members), which the next call on the same data and members would reuse.
    pub fn release_cached_inputs(&self) {
        self.lock().clear_cache();
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Device> {
        self.dev.lock().unwrap_or_else(|e| e.into_inner())
    }
}

impl Backend for CudaBackend {
    fn name(&self) -> &'static str {
        "cuda"
    }

    fn describe(&self) -> String {
        self.desc.clone()
    }

    fn as_any(&self) -> Option<&dyn std::any::Any> {
        Some(self)
    }

    fn gram(&self, data: &Dataset, hyp: &Hyperparameters, precision: Precision) -> Result<Array3<f64>> {
        guarded(|| match precision {
            Precision::F64 => self.gram_t::<f64>(data, hyp),
            Precision::F32 => self.gram_t::<f32>(data, hyp),
        })
    }

    fn cholesky(&self, a: &Array3<f64>, precision: Precision, jitter: JitterPolicy) -> Result<CholeskyBatch> {
        let (_, r, c) = a.dim();
        if r != c {
            return Err(Error::shape("a", format!("(B, {r}, {r})"), a.shape()));
        }
        guarded(|| match precision {
            Precision::F64 => self.cholesky_t::<f64>(a, jitter),
            Precision::F32 => self.cholesky_t::<f32>(a, jitter),
        })
    }

    fn mll(
        &self,
        data: &Dataset,
        hyp: &Hyperparameters,
        members: Option<&[usize]>,
        opts: &MllOptions,
    ) -> Result<MllBatch> {
        let rows = super::member_rows(members, data.batch_size())?;
        let rows: &[usize] = &rows;
        guarded(|| match opts.precision {
            Precision::F64 => self.mll_t::<f64>(data, hyp, rows, opts),
            Precision::F32 => self.mll_t::<f32>(data, hyp, rows, opts),
        })
    }

    fn predict(
        &self,
        data: &Dataset,
        hyp: &Hyperparameters,
        test: &Inputs,
        opts: &PredictOptions,
    ) -> Result<Prediction> {
        let (mean, var, cov, status, jitter) = guarded(|| match opts.precision {
            Precision::F64 => self.predict_t::<f64>(data, hyp, test, opts),
            Precision::F32 => self.predict_t::<f32>(data, hyp, test, opts),
        })?;
        Ok(Prediction::assemble(mean, var, &hyp.noise, cov, status, jitter, opts))
    }
}
