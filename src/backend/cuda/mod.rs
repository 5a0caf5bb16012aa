//! The CUDA backend: hand-written kernels (kernels/*.cu, compiled by build.rs into one embedded
//! fatbin) launched through cudarc with the driver loaded at run time, so the crate runs where
//! CUDA is absent and reports why the GPU cannot be had.
//!
//! # Kernels (see the comments at the top of each .cu file for the exact launch shapes)
//! | kernel                      | what                                          | launch                     |
//! |-----------------------------|-----------------------------------------------|----------------------------|
//! | `rbf_gram_<T>`              | K (B, N, N) with noise and mask               | grid-stride, 256 threads   |
//! | `gp_mll_warp_<T>`           | fused K, Cholesky + jitter, solves, MLL, K^-1, gradient, N <= 32 | a warp per member, 4 per block, shared memory |
//! | `gp_mll_block_<T>`          | the same, K in shared memory (N <= ~160 in f64) | a block of 256 per member |
//! | `gp_mll_global_<T>`         | the same in a global workspace, any N         | a block of 256 per member  |
//! | `chol_{warp,block,global}_<T>` | Cholesky of given matrices + jitter        | as above                   |
//! | `predict_<T>`               | mean, var of f and V = L^-1 K*                | a thread per test point    |
//! | `predict_cov_<T>`           | K** - V^T V                                   | grid-stride, 256 threads   |
//!
//! # Agreement with the CPU backend
//! The host prepares inputs exactly as the CPU backend does: points scaled by the lengthscales
//! in f64 (the kernels then see unit lengthscales), residuals r = y - m in f64, the jitter of
//! every attempt from [`JitterPolicy::jitter`] with mean diagonal s + noise, then converted to the
//! working precision. Masked entries are uploaded as 0 and selected away in the kernels. Status,
//! jitter and the non-finite checks are decided on the host with the CPU backend's rules.
//!
//! # Memory
//! Members are processed in chunks sized from the free device memory (and
//! `BATCHGP_CUDA_MAX_CHUNK` when set, which tests use to exercise chunking); results do not
//! depend on the chunking.

use super::{Backend, CholeskyBatch, JitterPolicy, MllBatch, MllGradient, MllOptions, PredictOptions, Prediction};
use crate::data::{Dataset, Hyperparameters, Inputs, Precision, Status};
use crate::error::{Error, Result};
use cudarc::driver::{
    result as cures, sys, CudaContext, CudaFunction, CudaSlice, CudaStream, DeviceRepr, DriverError, LaunchConfig,
    PushKernelArg, ValidAsZeroBits,
};
use ndarray::{Array1, Array2, Array3, Axis};
use std::collections::HashMap;
use std::panic::{catch_unwind, AssertUnwindSafe};
use std::sync::{Arc, Mutex};

mod embedded {
    include!(concat!(env!("OUT_DIR"), "/kernels.rs"));
}

// Mirrors of the constants in kernels/common.cuh, gp.cu and predict.cu.
const BLOCK: u32 = 256;
const WARPS_PER_BLOCK: u32 = 4;
const PREDICT_THREADS: u32 = 128;
const FLAG_GRAD: i32 = 1;
const FLAG_FACTOR: i32 = 2;
/// Largest N of the warp-per-member kernels.
const WARP_MAX_N: usize = 32;
/// Grid size of the grid-stride kernels.
const STRIDE_GRID_MAX: usize = 65_535 * 4;
/// Shared memory every block can have without opting in.
const SMEM_DEFAULT: usize = 48 * 1024;

const KERNELS: [&str; 9] = [
    "rbf_gram",
    "gp_mll_warp",
    "gp_mll_block",
    "gp_mll_global",
    "chol_warp",
    "chol_block",
    "chol_global",
    "predict",
    "predict_cov",
];

/// What the build embeds: whether the kernels are there, for which targets, and which nvcc
/// compiled them (for `batchgp info`).
pub fn build_info() -> String {
    match embedded::FATBIN {
        Some(f) => format!(
            "CUDA kernels embedded ({} KiB fatbin, {}; targets {})",
            f.len() / 1024,
            embedded::NVCC_VERSION,
            embedded::TARGETS.join(", ")
        ),
        None => "built without CUDA kernels (nvcc was not found at build time)".into(),
    }
}

/// Targets (sm_XX for SASS, compute_XX for PTX) the embedded fatbin holds; empty without kernels.
pub fn embedded_targets() -> &'static [&'static str] {
    if embedded::FATBIN.is_some() {
        embedded::TARGETS
    } else {
        &[]
    }
}

/// What the machine offers: whether libcuda loads, and the devices it sees. Never panics.
pub fn probe() -> String {
    if !libcuda_present() {
        return "libcuda: not found".into();
    }
    let r = catch_unwind(|| -> std::result::Result<String, DriverError> {
        cures::init()?;
        let count = cures::device::get_count()?;
        if count == 0 {
            return Ok("libcuda: found; no CUDA device".into());
        }
        let mut parts = Vec::new();
        for i in 0..count {
            let dev = cures::device::get(i)?;
            let name = cures::device::get_name(dev)?;
            // SAFETY: `dev` is a valid device handle from cuDeviceGet.
            let (maj, min) = unsafe {
                (
                    cures::device::get_attribute(
                        dev,
                        sys::CUdevice_attribute::CU_DEVICE_ATTRIBUTE_COMPUTE_CAPABILITY_MAJOR,
                    )?,
                    cures::device::get_attribute(
                        dev,
                        sys::CUdevice_attribute::CU_DEVICE_ATTRIBUTE_COMPUTE_CAPABILITY_MINOR,
                    )?,
                )
            };
            parts.push(format!("device {i}: {name} (sm_{maj}{min})"));
        }
        Ok(format!("libcuda: found; {count} device(s): {}", parts.join("; ")))
    });
    match r {
        Ok(Ok(s)) => s,
        Ok(Err(e)) => format!("libcuda: found; driver error: {e}"),
        Err(p) => format!("libcuda: found; driver binding failed: {}", panic_message(&p)),
    }
}

fn libcuda_present() -> bool {
    // SAFETY: only tries to dlopen the driver library by its usual names.
    catch_unwind(|| unsafe { sys::is_culib_present() }).unwrap_or(false)
}

fn panic_message(p: &Box<dyn std::any::Any + Send>) -> String {
    if let Some(s) = p.downcast_ref::<&str>() {
        (*s).to_string()
    } else if let Some(s) = p.downcast_ref::<String>() {
        s.clone()
    } else {
        "unknown panic".into()
    }
}

fn unavailable(reason: impl Into<String>) -> Error {
    Error::BackendUnavailable { backend: "cuda".into(), reason: reason.into() }
}

fn cuda_err(what: &'static str) -> impl Fn(DriverError) -> Error {
    move |e| Error::Cuda(format!("{what}: {e}"))
}

/// Runs `f`, turning a panic inside the driver bindings (a missing driver symbol, say) into an
/// error: the library never panics on a machine it cannot use.
fn guarded<R>(f: impl FnOnce() -> Result<R>) -> Result<R> {
    match catch_unwind(AssertUnwindSafe(f)) {
        Ok(r) => r,
        Err(p) => Err(Error::Cuda(format!("the CUDA driver binding failed: {}", panic_message(&p)))),
    }
}

/// Arithmetic type of the kernels.
trait Real: DeviceRepr + ValidAsZeroBits + Copy + Default + Send + Sync + Unpin + 'static {
    const SUFFIX: &'static str;
    fn of(v: f64) -> Self;
    fn f64(self) -> f64;
}
impl Real for f64 {
    const SUFFIX: &'static str = "f64";
    fn of(v: f64) -> Self {
        v
    }
    fn f64(self) -> f64 {
        self
    }
}
impl Real for f32 {
    const SUFFIX: &'static str = "f32";
    fn of(v: f64) -> Self {
        v as f32
    }
    fn f64(self) -> f64 {
        self as f64
    }
}

/// Which per-member kernel variant handles matrices of order n.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Variant {
    Warp,
    Block,
    Global,
}

impl Variant {
    fn name(self) -> &'static str {
        match self {
            Variant::Warp => "warp",
            Variant::Block => "block",
            Variant::Global => "global",
        }
    }
}

/// Elements of one warp's shared-memory region (kernels/gp.cu warp_elems).
fn warp_elems(n: usize) -> usize {
    let e = n * (n + 1) + 2 * n;
    (e + 1) & !1
}

/// Dynamic shared memory of a block-variant launch (kernels/gp.cu).
fn block_smem(n: usize, sz: usize) -> usize {
    32 * 8 + (n * (n + 1) + 2 * n) * sz
}

/// Elements of one member's global workspace (kernels/gp.cu WORK_STRIDE).
fn work_elems(n: usize) -> usize {
    n * n + 2 * n
}

struct Inner {
    ctx: Arc<CudaContext>,
    stream: Arc<CudaStream>,
    funcs: HashMap<String, CudaFunction>,
    /// Opt-in maximum of dynamic shared memory per block, bytes.
    smem_optin: usize,
    /// Upper bound on members per launch (from BATCHGP_CUDA_MAX_CHUNK), for tests.
    max_chunk: usize,
}

/// The GPU backend: one device (ordinal 0), one stream, calls serialised.
pub struct CudaBackend {
    inner: Mutex<Inner>,
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
        let Some(fatbin) = embedded::FATBIN else {
            return Err(unavailable("built without CUDA kernels"));
        };
        if !libcuda_present() {
            return Err(unavailable("libcuda not found"));
        }
        let r = catch_unwind(move || Self::open(fatbin));
        match r {
            Ok(r) => r,
            Err(p) => Err(unavailable(format!("the CUDA driver binding failed: {}", panic_message(&p)))),
        }
    }

    fn open(fatbin: &'static [u8]) -> Result<Self> {
        let count = CudaContext::device_count().map_err(|e| unavailable(format!("no CUDA device ({e})")))?;
        if count < 1 {
            return Err(unavailable("no CUDA device"));
        }
        let ctx = CudaContext::new(0).map_err(|e| unavailable(format!("cannot open CUDA device 0: {e}")))?;
        let module = ctx.load_module(cudarc::nvrtc::Ptx::from_binary(fatbin.to_vec())).map_err(|e| {
            unavailable(format!("cannot load the embedded kernels ({}): {e}", embedded::TARGETS.join(", ")))
        })?;
        let smem_optin = ctx
            .attribute(sys::CUdevice_attribute::CU_DEVICE_ATTRIBUTE_MAX_SHARED_MEMORY_PER_BLOCK_OPTIN)
            .map(|v| v.max(0) as usize)
            .unwrap_or(SMEM_DEFAULT);
        let mut funcs = HashMap::new();
        for sfx in ["f64", "f32"] {
            for k in KERNELS {
                let name = format!("{k}_{sfx}");
                let f = module
                    .load_function(&name)
                    .map_err(|e| unavailable(format!("the embedded kernels lack {name}: {e}")))?;
                if k.ends_with("_block") || k.ends_with("_warp") {
                    f.set_attribute(
                        sys::CUfunction_attribute::CU_FUNC_ATTRIBUTE_MAX_DYNAMIC_SHARED_SIZE_BYTES,
                        smem_optin.min(i32::MAX as usize) as i32,
                    )
                    .map_err(|e| unavailable(format!("cannot raise the shared memory of {name}: {e}")))?;
                }
                funcs.insert(name, f);
            }
        }
        let name = ctx.name().unwrap_or_else(|_| "unknown GPU".into());
        let (maj, min) = ctx.compute_capability().unwrap_or((0, 0));
        let mem = ctx.total_mem().unwrap_or(0) as f64 / (1u64 << 30) as f64;
        let desc = format!("cuda ({name}, sm_{maj}{min}, {mem:.0} GiB, {} KiB shared/block)", smem_optin / 1024);
        let stream = ctx.default_stream();
        let max_chunk = std::env::var("BATCHGP_CUDA_MAX_CHUNK")
            .ok()
            .and_then(|v| v.parse::<usize>().ok())
            .filter(|&v| v > 0)
            .unwrap_or(usize::MAX);
        Ok(CudaBackend { inner: Mutex::new(Inner { ctx, stream, funcs, smem_optin, max_chunk }), desc })
    }

    /// Processes at most `members` members per launch (at least 1). Results do not depend on it;
    /// tests use it to check that.
    pub fn with_max_chunk(self, members: usize) -> Self {
        self.lock().max_chunk = members.max(1);
        self
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Inner> {
        self.inner.lock().unwrap_or_else(|e| e.into_inner())
    }
}

impl Inner {
    fn func(&self, op: &str, sfx: &str) -> Result<&CudaFunction> {
        let name = format!("{op}_{sfx}");
        self.funcs.get(&name).ok_or_else(|| Error::Cuda(format!("kernel {name} not loaded")))
    }

    fn variant(&self, n: usize, sz: usize) -> Variant {
        if n <= WARP_MAX_N && WARPS_PER_BLOCK as usize * warp_elems(n) * sz <= self.smem_optin.max(SMEM_DEFAULT) {
            Variant::Warp
        } else if block_smem(n, sz) <= self.smem_optin {
            Variant::Block
        } else {
            Variant::Global
        }
    }

    /// Launch shape of a per-member kernel for `count` members.
    fn member_launch(&self, v: Variant, n: usize, sz: usize, count: usize) -> LaunchConfig {
        match v {
            Variant::Warp => LaunchConfig {
                grid_dim: (count.div_ceil(WARPS_PER_BLOCK as usize) as u32, 1, 1),
                block_dim: (32 * WARPS_PER_BLOCK, 1, 1),
                shared_mem_bytes: (WARPS_PER_BLOCK as usize * warp_elems(n) * sz) as u32,
            },
            Variant::Block => LaunchConfig {
                grid_dim: (count as u32, 1, 1),
                block_dim: (BLOCK, 1, 1),
                shared_mem_bytes: block_smem(n, sz) as u32,
            },
            Variant::Global => {
                LaunchConfig { grid_dim: (count as u32, 1, 1), block_dim: (BLOCK, 1, 1), shared_mem_bytes: 0 }
            }
        }
    }

    /// Members per launch when one member needs `per_member` bytes of device memory.
    fn chunk(&self, per_member: usize, total: usize) -> Result<usize> {
        let (free, _) = self.ctx.mem_get_info().map_err(cuda_err("cuMemGetInfo"))?;
        let budget = free / 10 * 7;
        let c = budget / per_member.max(1);
        if c == 0 {
            return Err(Error::Cuda(format!(
                "one member needs {per_member} bytes of device memory and {free} are free"
            )));
        }
        Ok(c.min(total).min(self.max_chunk).min(i32::MAX as usize / 2).max(1))
    }

    /// Copies to the device (at least one element: the driver rejects empty allocations).
    fn up<T: DeviceRepr + Default + Clone>(&self, v: &[T]) -> Result<CudaSlice<T>> {
        if v.is_empty() {
            self.stream.clone_htod(&[T::default()][..]).map_err(cuda_err("upload"))
        } else {
            self.stream.clone_htod(v).map_err(cuda_err("upload"))
        }
    }

    fn zeros<T: DeviceRepr + ValidAsZeroBits>(&self, len: usize) -> Result<CudaSlice<T>> {
        self.stream.alloc_zeros::<T>(len.max(1)).map_err(cuda_err("device allocation"))
    }

    fn down<T: DeviceRepr + Default + Clone>(&self, s: &CudaSlice<T>, len: usize) -> Result<Vec<T>> {
        // Kernel faults surface here, named as such, rather than in the copy.
        self.stream.synchronize().map_err(cuda_err("kernel execution"))?;
        let mut v = self.stream.clone_dtoh(s).map_err(cuda_err("download"))?;
        v.truncate(len);
        Ok(v)
    }
}

/// Host copies of the inputs of a chunk of members, prepared as the CPU backend prepares them.
struct MemberInputs<T> {
    /// (c, N, D) points scaled by the member's lengthscales; 0 at masked points.
    xs: Vec<T>,
    /// (c, N) residuals y - m; 0 at masked points.
    r: Vec<T>,
    /// (c, N) 1 observed, 0 padding.
    mask: Vec<u8>,
    /// (c, D) ones (the points are already scaled).
    ones: Vec<T>,
    s: Vec<T>,
    noise: Vec<T>,
    /// (c, attempts) absolute jitter of each attempt.
    jit: Vec<T>,
}

fn member_inputs<T: Real>(
    data: &Dataset,
    hyp: &Hyperparameters,
    rows: &[usize],
    policy: JitterPolicy,
) -> MemberInputs<T> {
    let (n, d) = (data.n_points(), data.n_dims());
    let na = policy.retries as usize + 1;
    let c = rows.len();
    let mut inp = MemberInputs {
        xs: vec![T::of(0.0); c * n * d],
        r: vec![T::of(0.0); c * n],
        mask: vec![0u8; c * n],
        ones: vec![T::of(1.0); c * d],
        s: Vec::with_capacity(c),
        noise: Vec::with_capacity(c),
        jit: Vec::with_capacity(c * na),
    };
    for (k, &b) in rows.iter().enumerate() {
        let xb = data.x().member(b);
        let ls = hyp.lengthscale.row(b);
        let y = data.y_member(b);
        let m = hyp.mean[b];
        for i in 0..n {
            if !data.is_observed(b, i) {
                continue;
            }
            inp.mask[k * n + i] = 1;
            inp.r[k * n + i] = T::of(y[i] - m);
            for j in 0..d {
                inp.xs[(k * n + i) * d + j] = T::of(xb[[i, j]] / ls[j]);
            }
        }
        let (s, noise) = (hyp.outputscale[b], hyp.noise[b]);
        inp.s.push(T::of(s));
        inp.noise.push(T::of(noise));
        for t in 0..na {
            inp.jit.push(T::of(policy.jitter(t as u32, s + noise)));
        }
    }
    inp
}

/// mean (B, M), var (B, M), covariance (B, M, M) when asked, status and jitter per member.
type PredictParts = (Array2<f64>, Array2<f64>, Option<Array3<f64>>, Vec<Status>, Array1<f64>);

/// Device results of the fused kernel for one chunk.
struct FactorOut<T> {
    mll: CudaSlice<T>,
    grad: CudaSlice<T>,
    attempt: CudaSlice<i32>,
    l: CudaSlice<T>,
    alpha: CudaSlice<T>,
}

/// Status and reported jitter of a member from the attempt that factored (-1: none), as the
/// CPU backend reports them.
fn attempt_status(attempt: i32, policy: JitterPolicy, mean_diag: f64) -> (Status, f64) {
    if attempt < 0 {
        (Status::Failed, policy.jitter(policy.retries, mean_diag))
    } else {
        (if attempt == 0 { Status::Ok } else { Status::Jitter }, policy.jitter(attempt as u32, mean_diag))
    }
}

impl CudaBackend {
    /// Runs gp_mll_<variant>_<T> on a chunk of members.
    fn run_fused<T: Real>(
        &self,
        inner: &Inner,
        inp: &MemberInputs<T>,
        n: usize,
        d: usize,
        attempts: usize,
        flags: i32,
    ) -> Result<FactorOut<T>> {
        let c = inp.s.len();
        let sz = std::mem::size_of::<T>();
        let v = inner.variant(n, sz);
        let x = inner.up(&inp.xs)?;
        let r = inner.up(&inp.r)?;
        let mask = inner.up(&inp.mask)?;
        let ls = inner.up(&inp.ones)?;
        let s = inner.up(&inp.s)?;
        let noise = inner.up(&inp.noise)?;
        let mean = inner.zeros::<T>(c)?;
        let jit = inner.up(&inp.jit)?;
        let out = FactorOut {
            mll: inner.zeros::<T>(c)?,
            grad: inner.zeros::<T>(if flags & FLAG_GRAD != 0 { c * (d + 3) } else { 1 })?,
            attempt: inner.zeros::<i32>(c)?,
            l: inner.zeros::<T>(if flags & FLAG_FACTOR != 0 { c * n * n } else { 1 })?,
            alpha: inner.zeros::<T>(if flags & FLAG_FACTOR != 0 { c * n } else { 1 })?,
        };
        let work = inner.zeros::<T>(if v == Variant::Global { c * work_elems(n) } else { 1 })?;
        let f = inner.func(&format!("gp_mll_{}", v.name()), T::SUFFIX)?;
        let cfg = inner.member_launch(v, n, sz, c);
        let (x_stride, na, bb, nn, dd) = ((n * d) as i64, attempts as i32, c as i32, n as i32, d as i32);
        let mut lb = inner.stream.launch_builder(f);
        lb.arg(&x)
            .arg(&x_stride)
            .arg(&r)
            .arg(&mask)
            .arg(&ls)
            .arg(&s)
            .arg(&noise)
            .arg(&mean)
            .arg(&jit)
            .arg(&na)
            .arg(&bb)
            .arg(&nn)
            .arg(&dd)
            .arg(&flags)
            .arg(&out.mll)
            .arg(&out.grad)
            .arg(&out.attempt)
            .arg(&out.l)
            .arg(&out.alpha);
        if v == Variant::Global {
            lb.arg(&work);
        }
        // SAFETY: the arguments follow gp_mll_<variant>_<T>(const T* x, long long x_stride,
        // const T* y, const uint8_t* mask, const T* ls, const T* s, const T* noise,
        // const T* mean, const T* jit, int nattempts, int B, int N, int D, int flags, T* out_mll,
        // T* out_grad, int* out_attempt, T* out_l, T* out_alpha[, T* work]) in order and type
        // (i64 = long long, i32 = int, CudaSlice<T> = T*); every buffer holds what the kernel
        // indexes for B = c members (grad c*(D+3), l c*N*N and alpha c*N when their flag is
        // set, work c*(N*N+2N) for the global variant), and the shared memory is the variant's.
        unsafe { lb.launch(cfg) }.map_err(cuda_err("gp_mll launch"))?;
        Ok(out)
    }

    fn mll_t<T: Real>(
        &self,
        data: &Dataset,
        hyp: &Hyperparameters,
        rows: &[usize],
        opts: &MllOptions,
    ) -> Result<MllBatch> {
        let inner = self.lock();
        let (n, d) = (data.n_points(), data.n_dims());
        let k = rows.len();
        let sz = std::mem::size_of::<T>();
        let policy = opts.jitter;
        let na = policy.retries as usize + 1;
        let flags = if opts.gradient { FLAG_GRAD } else { 0 };
        let mut mll = Array1::from_elem(k, f64::NAN);
        let mut grad = MllGradient {
            log_lengthscale: Array2::from_elem((k, d), f64::NAN),
            log_outputscale: Array1::from_elem(k, f64::NAN),
            log_noise: Array1::from_elem(k, f64::NAN),
            mean: Array1::from_elem(k, f64::NAN),
            log_alpha: None,
        };
        let mut status = vec![Status::Failed; k];
        let mut jitter = Array1::zeros(k);
        let v = inner.variant(n, sz);
        let per =
            sz * (n * d + n + d + 4 + na + d + 3) + n + 4 + if v == Variant::Global { sz * work_elems(n) } else { 0 };
        let chunk = inner.chunk(per, k.max(1))?;
        for start in (0..k).step_by(chunk) {
            let part = &rows[start..(start + chunk).min(k)];
            let c = part.len();
            let inp = member_inputs::<T>(data, hyp, part, policy);
            let out = self.run_fused(&inner, &inp, n, d, na, flags)?;
            let m = inner.down(&out.mll, c)?;
            let att = inner.down(&out.attempt, c)?;
            let g = if opts.gradient { inner.down(&out.grad, c * (d + 3))? } else { Vec::new() };
            for (q, &b) in part.iter().enumerate() {
                let i = start + q;
                let (s, noise, mu) = (hyp.outputscale[b], hyp.noise[b], hyp.mean[b]);
                if data.n_observed(b) == 0 {
                    mll[i] = 0.0;
                    grad.log_lengthscale.row_mut(i).fill(0.0);
                    grad.log_outputscale[i] = 0.0;
                    grad.log_noise[i] = 0.0;
                    grad.mean[i] = 0.0;
                    status[i] = Status::Ok;
                    continue;
                }
                if !(s.is_finite() && noise.is_finite() && mu.is_finite() && (s + noise).is_finite()) {
                    continue; // Failed, jitter 0, NaN: as initialised
                }
                let (st, jit) = attempt_status(att[q], policy, s + noise);
                jitter[i] = jit;
                if st == Status::Failed {
                    continue;
                }
                let gm = if opts.gradient { &g[q * (d + 3)..(q + 1) * (d + 3)] } else { &[][..] };
                let finite = m[q].f64().is_finite() && gm.iter().all(|v| v.f64().is_finite());
                if !finite {
                    continue;
                }
                status[i] = st;
                mll[i] = m[q].f64();
                if opts.gradient {
                    for (dst, src) in grad.log_lengthscale.row_mut(i).iter_mut().zip(&gm[..d]) {
                        *dst = src.f64();
                    }
                    grad.log_outputscale[i] = gm[d].f64();
                    grad.log_noise[i] = gm[d + 1].f64();
                    grad.mean[i] = gm[d + 2].f64();
                }
            }
        }
        Ok(MllBatch { mll, gradient: opts.gradient.then_some(grad), status, jitter })
    }

    fn gram_t<T: Real>(&self, data: &Dataset, hyp: &Hyperparameters) -> Result<Array3<f64>> {
        let inner = self.lock();
        let (b, n, d) = (data.batch_size(), data.n_points(), data.n_dims());
        let sz = std::mem::size_of::<T>();
        let mut out = Array3::<f64>::zeros((b, n, n));
        let per = sz * (n * n + n * d + d + 2) + n;
        let chunk = inner.chunk(per, b.max(1))?;
        let rows: Vec<usize> = (0..b).collect();
        let policy = JitterPolicy { start: 0.0, retries: 0 };
        for start in (0..b).step_by(chunk) {
            let part = &rows[start..(start + chunk).min(b)];
            let c = part.len();
            let inp = member_inputs::<T>(data, hyp, part, policy);
            let x = inner.up(&inp.xs)?;
            let mask = inner.up(&inp.mask)?;
            let ls = inner.up(&inp.ones)?;
            let s = inner.up(&inp.s)?;
            let noise = inner.up(&inp.noise)?;
            let k = inner.zeros::<T>(c * n * n)?;
            let f = inner.func("rbf_gram", T::SUFFIX)?;
            let total = c * n * n;
            let cfg = LaunchConfig {
                grid_dim: (total.div_ceil(BLOCK as usize).clamp(1, STRIDE_GRID_MAX) as u32, 1, 1),
                block_dim: (BLOCK, 1, 1),
                shared_mem_bytes: 0,
            };
            let (x_stride, bb, nn, dd) = ((n * d) as i64, c as i32, n as i32, d as i32);
            let mut lb = inner.stream.launch_builder(f);
            lb.arg(&x).arg(&x_stride).arg(&mask).arg(&ls).arg(&s).arg(&noise).arg(&bb).arg(&nn).arg(&dd).arg(&k);
            // SAFETY: rbf_gram_<T>(const T* x, long long x_stride, const uint8_t* mask,
            // const T* ls, const T* s, const T* noise, int B, int N, int D, T* out): in order
            // and type; x holds c*N*D, mask c*N, ls c*D, s and noise c, out c*N*N elements.
            unsafe { lb.launch(cfg) }.map_err(cuda_err("rbf_gram launch"))?;
            let host = inner.down(&k, total)?;
            for (q, v) in host.iter().enumerate() {
                let (m, r) = (start + q / (n * n), q % (n * n));
                out[[m, r / n, r % n]] = v.f64();
            }
        }
        Ok(out)
    }

    fn cholesky_t<T: Real>(&self, a: &Array3<f64>, policy: JitterPolicy) -> Result<CholeskyBatch> {
        let inner = self.lock();
        let (b, n, _) = a.dim();
        let mut factor = Array3::<f64>::from_elem((b, n, n), f64::NAN);
        let mut status = vec![Status::Failed; b];
        let mut jitter = Array1::zeros(b);
        if n == 0 {
            return Ok(CholeskyBatch { factor: Array3::zeros((b, 0, 0)), status: vec![Status::Ok; b], jitter });
        }
        let sz = std::mem::size_of::<T>();
        let na = policy.retries as usize + 1;
        let v = inner.variant(n, sz);
        let per = sz * (2 * n * n + na) + 4 + if v == Variant::Global { sz * work_elems(n) } else { 0 };
        let chunk = inner.chunk(per, b.max(1))?;
        let mean_diag: Vec<f64> = (0..b).map(|m| (0..n).map(|i| a[[m, i, i]]).sum::<f64>() / n as f64).collect();
        for start in (0..b).step_by(chunk) {
            let end = (start + chunk).min(b);
            let c = end - start;
            let mut host = Vec::with_capacity(c * n * n);
            let mut jit = Vec::with_capacity(c * na);
            for (m, &md) in mean_diag.iter().enumerate().take(end).skip(start) {
                host.extend(a.index_axis(Axis(0), m).iter().map(|&v| T::of(v)));
                for t in 0..na {
                    jit.push(T::of(policy.jitter(t as u32, md)));
                }
            }
            let da = inner.up(&host)?;
            let djit = inner.up(&jit)?;
            let l = inner.zeros::<T>(c * n * n)?;
            let att = inner.zeros::<i32>(c)?;
            let work = inner.zeros::<T>(if v == Variant::Global { c * work_elems(n) } else { 1 })?;
            let f = inner.func(&format!("chol_{}", v.name()), T::SUFFIX)?;
            let cfg = inner.member_launch(v, n, sz, c);
            let (nat, bb, nn) = (na as i32, c as i32, n as i32);
            let mut lb = inner.stream.launch_builder(f);
            lb.arg(&da).arg(&djit).arg(&nat).arg(&bb).arg(&nn).arg(&l).arg(&att);
            if v == Variant::Global {
                lb.arg(&work);
            }
            // SAFETY: chol_<variant>_<T>(const T* a, const T* jit, int nattempts, int B, int N,
            // T* out_l, int* out_attempt[, T* work]): in order and type; a and out_l hold c*N*N,
            // jit c*nattempts, out_attempt c, work c*(N*N+2N) elements for the global variant;
            // the shared memory is the variant's.
            unsafe { lb.launch(cfg) }.map_err(cuda_err("chol launch"))?;
            let lh = inner.down(&l, c * n * n)?;
            let ah = inner.down(&att, c)?;
            for q in 0..c {
                let m = start + q;
                if !mean_diag[m].is_finite() {
                    continue; // Failed, jitter 0, NaN: as the CPU backend reports it
                }
                let (st, j) = attempt_status(ah[q], policy, mean_diag[m]);
                status[m] = st;
                jitter[m] = j;
                if st == Status::Failed {
                    continue;
                }
                for (dst, src) in factor.index_axis_mut(Axis(0), m).iter_mut().zip(&lh[q * n * n..(q + 1) * n * n]) {
                    *dst = src.f64();
                }
            }
        }
        Ok(CholeskyBatch { factor, status, jitter })
    }

    fn predict_t<T: Real>(
        &self,
        data: &Dataset,
        hyp: &Hyperparameters,
        test: &Inputs,
        opts: &PredictOptions,
    ) -> Result<PredictParts> {
        let inner = self.lock();
        let (b, n, d) = (data.batch_size(), data.n_points(), data.n_dims());
        let m = test.n_points();
        let want_cov = opts.full_covariance || opts.samples.is_some();
        let policy = JitterPolicy::for_precision(opts.precision);
        let na = policy.retries as usize + 1;
        let sz = std::mem::size_of::<T>();
        let mut mean = Array2::from_elem((b, m), f64::NAN);
        let mut var = Array2::from_elem((b, m), f64::NAN);
        let mut cov = want_cov.then(|| Array3::from_elem((b, m, m), f64::NAN));
        let mut status = vec![Status::Failed; b];
        let mut jitter = Array1::zeros(b);
        let v = inner.variant(n, sz);
        let per = sz * (n * d + 2 * n + n * n + m * d + n * m + 2 * m + d + 4 + na + if want_cov { m * m } else { 0 })
            + n
            + 4
            + if v == Variant::Global { sz * work_elems(n) } else { 0 };
        let tiles = m.div_ceil(PREDICT_THREADS as usize).max(1);
        let chunk = inner.chunk(per, b.max(1))?.min((i32::MAX as usize / tiles).max(1));
        let rows: Vec<usize> = (0..b).collect();
        for start in (0..b).step_by(chunk) {
            let part = &rows[start..(start + chunk).min(b)];
            let c = part.len();
            let inp = member_inputs::<T>(data, hyp, part, policy);
            let fo = self.run_fused(&inner, &inp, n, d, na, FLAG_FACTOR)?;
            let mut xt = vec![T::of(0.0); c * m * d];
            let mut mu = Vec::with_capacity(c);
            for (q, &bm) in part.iter().enumerate() {
                let z = test.member(bm);
                let ls = hyp.lengthscale.row(bm);
                for t in 0..m {
                    for j in 0..d {
                        xt[(q * m + t) * d + j] = T::of(z[[t, j]] / ls[j]);
                    }
                }
                mu.push(T::of(hyp.mean[bm]));
            }
            let dxt = inner.up(&xt)?;
            let dmu = inner.up(&mu)?;
            let x = inner.up(&inp.xs)?;
            let mask = inner.up(&inp.mask)?;
            let ls = inner.up(&inp.ones)?;
            let s = inner.up(&inp.s)?;
            let vbuf = inner.zeros::<T>(c * n * m)?;
            let omean = inner.zeros::<T>(c * m)?;
            let ovar = inner.zeros::<T>(c * m)?;
            let (x_stride, xt_stride, bb, nn, mm, dd) =
                ((n * d) as i64, (m * d) as i64, c as i32, n as i32, m as i32, d as i32);
            if m > 0 {
                let f = inner.func("predict", T::SUFFIX)?;
                let cfg = LaunchConfig {
                    grid_dim: ((tiles * c) as u32, 1, 1),
                    block_dim: (PREDICT_THREADS, 1, 1),
                    shared_mem_bytes: 0,
                };
                let mut lb = inner.stream.launch_builder(f);
                lb.arg(&x)
                    .arg(&x_stride)
                    .arg(&mask)
                    .arg(&dxt)
                    .arg(&xt_stride)
                    .arg(&ls)
                    .arg(&s)
                    .arg(&dmu)
                    .arg(&fo.l)
                    .arg(&fo.alpha)
                    .arg(&fo.attempt)
                    .arg(&bb)
                    .arg(&nn)
                    .arg(&mm)
                    .arg(&dd)
                    .arg(&vbuf)
                    .arg(&omean)
                    .arg(&ovar);
                // SAFETY: predict_<T>(const T* x, long long x_stride, const uint8_t* mask,
                // const T* xt, long long xt_stride, const T* ls, const T* s, const T* mean,
                // const T* l, const T* alpha, const int* attempt, int B, int N, int M, int D,
                // T* v, T* out_mean, T* out_var): in order and type; x c*N*D, mask c*N,
                // xt c*M*D, ls c*D, s and mean c, l c*N*N and alpha c*N (written by gp_mll with
                // FLAG_FACTOR), attempt c, v c*N*M, outputs c*M elements; the grid is
                // ceil(M/128)*c blocks of 128 threads as the kernel expects.
                unsafe { lb.launch(cfg) }.map_err(cuda_err("predict launch"))?;
            }
            let mut cov_host = Vec::new();
            if want_cov && m > 0 {
                let total = c * m * m;
                let oc = inner.zeros::<T>(total)?;
                let f = inner.func("predict_cov", T::SUFFIX)?;
                let cfg = LaunchConfig {
                    grid_dim: (total.div_ceil(BLOCK as usize).clamp(1, STRIDE_GRID_MAX) as u32, 1, 1),
                    block_dim: (BLOCK, 1, 1),
                    shared_mem_bytes: 0,
                };
                let mut lb = inner.stream.launch_builder(f);
                lb.arg(&dxt)
                    .arg(&xt_stride)
                    .arg(&ls)
                    .arg(&s)
                    .arg(&fo.attempt)
                    .arg(&vbuf)
                    .arg(&bb)
                    .arg(&nn)
                    .arg(&mm)
                    .arg(&dd)
                    .arg(&oc);
                // SAFETY: predict_cov_<T>(const T* xt, long long xt_stride, const T* ls,
                // const T* s, const int* attempt, const T* v, int B, int N, int M, int D, T* out):
                // in order and type; xt c*M*D, ls c*D, s and attempt c, v c*N*M (filled by
                // predict_<T> above, same stream), out c*M*M elements.
                unsafe { lb.launch(cfg) }.map_err(cuda_err("predict_cov launch"))?;
                cov_host = inner.down(&oc, total)?;
            }
            let mh = inner.down(&omean, c * m)?;
            let vh = inner.down(&ovar, c * m)?;
            let ah = inner.down(&fo.attempt, c)?;
            for (q, &bm) in part.iter().enumerate() {
                let (s, noise, mu) = (hyp.outputscale[bm], hyp.noise[bm], hyp.mean[bm]);
                if !(s.is_finite() && noise.is_finite() && mu.is_finite()) {
                    continue; // Failed, jitter 0, NaN
                }
                let (st, j) = if !(s + noise).is_finite() {
                    (Status::Failed, 0.0)
                } else {
                    attempt_status(ah[q], policy, s + noise)
                };
                let (st, j) = if data.n_observed(bm) == 0 { (Status::Ok, 0.0) } else { (st, j) };
                status[bm] = st;
                jitter[bm] = j;
                if st == Status::Failed {
                    continue;
                }
                for t in 0..m {
                    mean[[bm, t]] = mh[q * m + t].f64();
                    var[[bm, t]] = vh[q * m + t].f64();
                }
                if let Some(cv) = cov.as_mut() {
                    for (dst, src) in
                        cv.index_axis_mut(Axis(0), bm).iter_mut().zip(&cov_host[q * m * m..(q + 1) * m * m])
                    {
                        *dst = src.f64();
                    }
                }
            }
        }
        Ok((mean, var, cov, status, jitter))
    }
}

impl Backend for CudaBackend {
    fn name(&self) -> &'static str {
        "cuda"
    }

    fn describe(&self) -> String {
        self.desc.clone()
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
