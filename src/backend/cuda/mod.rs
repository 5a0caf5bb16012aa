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
//! | `gp_mll_prep_<T>`                    | a call's residuals, jitter table and hyperparameters from the resident data (kernels/prep.cu) | grid-stride, 256 threads |
//! | `dense_shift_<T>`                    | K + jitter diag(mask) for the members refactored (kernels/dense.cu) | grid-stride, 256 threads |
//! | `dense_pairs_<k>_<T>`                | W = alpha alpha^T - K^-1, its sums and W o G (kernels/dense.cu) | a block of 256 per member |
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
//! # Memory and the host path
//! Members are processed in chunks sized from the free device memory (and
//! `BATCHGP_CUDA_MAX_CHUNK` when set, which tests use to exercise chunking); results do not
//! depend on the chunking. The MLL keeps its dataset on the device between calls (x, y, mask,
//! yvar, under the dataset's id and the precision) with the buffers of a fit, so that every
//! later call (a fit's next round) uploads only its hyperparameters and reads its results back in
//! one copy ([`host`]); [`CudaBackend::release_cached_inputs`] frees them.
//!
//! # Large N
//! f64 members from [`dense::DENSE_MIN_N`] points on (provisional until measured) go through
//! cuSOLVER and cuBLAS ([`vendor`], [`dense`]) when those libraries load; without them, or with
//! BATCHGP_CUDA_VENDOR=off, through the fused global kernel (=on: every N past the block kernel).
//! [`Backend::describe`] says which.
//!
//! # Layout
//! `device` (driver, context, module, copies, chunking), `launch` (entry point ids, variants,
//! launch shapes), `driver` (the driver calls of the MLL host path as a trait, and a counting
//! stand-in), `host` (the MLL host path: resident data, one upload and one download per call),
//! `mll` (member preparation, the fused kernel, the choice of path), `dense` (large N through
//! batched dense linear algebra, generic over its device operations), `dense_reference` (those
//! operations on the CPU, for the tests), `vendor` (cuSOLVER/cuBLAS), `predict`, `linalg` (Gram,
//! Cholesky), `svgp` (the SVGP ELBO and posterior).

mod dense;
mod dense_reference;
mod device;
mod driver;
mod host;
mod launch;
mod linalg;
mod mll;
mod predict;
mod svgp;
mod vendor;

pub use device::{build_info, embedded_targets, probe, KernelTime};

/// The plumbing of the vendor-library path for large N (src/backend/cuda/dense.rs) over its CPU
/// reference, so that tests compare it with the CPU backend without a GPU (tests/cuda_dense.rs).
/// Not an API.
#[doc(hidden)]
pub mod dense_check {
    use crate::backend::{MllBatch, MllOptions};
    use crate::data::{Dataset, Hyperparameters};
    use crate::error::Result;

    /// [`crate::Backend::mll`] through the dense plumbing with every device operation done by
    /// the CPU reference, `chunk` members at a time.
    pub fn reference_mll(
        data: &Dataset,
        hyp: &Hyperparameters,
        members: Option<&[usize]>,
        opts: &MllOptions,
        chunk: usize,
    ) -> Result<MllBatch> {
        let rows = crate::backend::member_rows(members, data.batch_size())?;
        super::dense::mll(&super::dense_reference::Reference, data, hyp, &rows, opts, chunk)
    }

    /// The smallest N that the vendor path takes (provisional until measured on a GPU).
    pub const DENSE_MIN_N: usize = super::dense::DENSE_MIN_N;

    /// (grid.x, block.x, dynamic shared memory bytes) of dense_pairs for `c` members, for the
    /// host emulation of kernels/dense.cu.
    pub fn pairs_launch(c: usize) -> (u32, u32, u32) {
        let l = super::vendor::pairs_launch(c);
        (l.grid_dim.0, l.block_dim.0, l.shared_mem_bytes)
    }
}

/// The MLL host path over a stand-in for the device that counts what the path asks for (calls,
/// bytes) and runs nothing, so that tests and benches measure the host side without a GPU
/// (tests/cuda_host_path.rs, benches/host_path.rs). Not an API.
#[doc(hidden)]
pub mod counting {
    pub use super::driver::{Counting, Counts};
    use super::host::{self, HostCache};
    use crate::backend::{MllBatch, MllOptions};
    use crate::data::{Dataset, Hyperparameters, Precision};
    use crate::error::Result;

    /// One stand-in device and what the host path keeps on it between calls (a fit's state).
    #[derive(Default)]
    pub struct Session {
        /// The stand-in; its counts accumulate until taken.
        pub driver: Counting,
        cache: HostCache,
    }

    impl Session {
        /// A session over `driver`.
        pub fn new(driver: Counting) -> Self {
            Session { driver, cache: HostCache::default() }
        }

        /// [`crate::Backend::mll`] through the CUDA host path: the screen, the statuses and
        /// the bookkeeping are the backend's; every member that reaches the stand-in's kernels
        /// reads back as factored at the first attempt with MLL and gradient 0.
        pub fn mll(
            &mut self,
            data: &Dataset,
            hyp: &Hyperparameters,
            members: Option<&[usize]>,
            opts: &MllOptions,
        ) -> Result<MllBatch> {
            let rows = crate::backend::member_rows(members, data.batch_size())?;
            match opts.precision {
                Precision::F64 => host::mll::<Counting, f64>(&self.driver, &mut self.cache, data, hyp, &rows, opts),
                Precision::F32 => host::mll::<Counting, f32>(&self.driver, &mut self.cache, data, hyp, &rows, opts),
            }
        }

        /// Forgets what is kept (as [`super::CudaBackend::release_cached_inputs`]).
        pub fn release(&mut self) {
            self.cache.clear();
        }
    }

    /// The host-side work per call of the previous MLL host path (before the dataset stayed
    /// on the device), without its driver calls, for the before/after of docs/gpu-notes.md: a
    /// MemberView per member for the screen, the residuals y - m and the jitter table formed
    /// on the host (uploaded, pageable, every call: `bytes`), and the status loop. Returns the
    /// bytes that path uploaded per call.
    pub fn previous_host_work(data: &Dataset, hyp: &Hyperparameters, opts: &MllOptions) -> usize {
        use crate::backend::member::MemberView;
        use rayon::prelude::*;
        let rows: Vec<usize> = (0..data.batch_size()).collect();
        let screened: Vec<(Option<crate::Status>, f64)> = rows
            .par_iter()
            .map(|&b| {
                let member = MemberView::new(data, hyp, b);
                (super::mll::screen(hyp, &member, b), member.mean_diag())
            })
            .collect();
        let live: Vec<usize> = screened.iter().enumerate().filter(|s| s.1 .0.is_none()).map(|s| s.0).collect();
        let md: Vec<f64> = live.iter().map(|&i| screened[i].1).collect();
        let p = super::mll::ParamInputs::<f64>::new(data, hyp, &live, opts.jitter, &md);
        let layout = crate::layout::Layout::of(hyp);
        let mut grad = ndarray::Array2::from_elem((rows.len(), layout.len()), f64::NAN);
        for (q, &i) in live.iter().enumerate() {
            grad.row_mut(i).iter_mut().for_each(|g| *g = p.s[q]);
        }
        8 * (p.r.len() + p.ls.len() + p.s.len() + p.noise.len() + p.jit.len() + p.alpha.map_or(0, |a| a.len()))
    }

    /// Offsets of the parameter upload of `c` members in `d` dimensions with `na` attempts (and
    /// rq's alpha when `alpha`), in kernels/prep.cu's order: (ls, s, noise, mean, md, alpha,
    /// pow10, total length); the member rows come first, at 0.
    pub fn param_offsets(c: usize, d: usize, alpha: bool, na: usize) -> [usize; 8] {
        host::ParamLayout { c, d, alpha, na }.offsets()
    }
}
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
        let desc = match vendor::availability() {
            Ok(()) => format!("{desc}; f64 N >= {}: cuSOLVER/cuBLAS", dense::DENSE_MIN_N),
            Err(e) => format!("{desc}; large N: fused kernels ({e})"),
        };
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
        self.lock().host_cache.clear();
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
            Precision::F64 => self.mll_f64(data, hyp, rows, opts),
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
