//! The device: the embedded fatbin, the driver (loaded at run time, never panicking where it is
//! absent), the context with its one stream and loaded kernels, host/device copies, and the
//! chunking of members by free device memory.

use super::launch::{Dtype, KernelId, SMEM_DEFAULT};
use crate::error::{Error, Result};
use cudarc::driver::{
    result as cures, sys, CudaContext, CudaFunction, CudaSlice, CudaStream, DeviceRepr, DriverError, LaunchArgs,
    LaunchConfig, PushKernelArg, ValidAsZeroBits,
};
use std::collections::HashMap;
use std::panic::{catch_unwind, AssertUnwindSafe};
use std::sync::Arc;

mod embedded {
    include!(concat!(env!("OUT_DIR"), "/kernels.rs"));
}

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

pub(super) fn unavailable(reason: impl Into<String>) -> Error {
    Error::BackendUnavailable { backend: "cuda".into(), reason: reason.into() }
}

/// Maps a driver error to [`Error::Cuda`], saying what was being done.
pub(super) fn cuda_err(what: &'static str) -> impl Fn(DriverError) -> Error {
    move |source| Error::Cuda { what: what.into(), source }
}

/// The error of a member that needs `per_member` bytes of device memory when `free` are free.
pub(super) fn out_of_memory(per_member: usize, free: usize) -> Error {
    Error::Cuda {
        what: format!("one member needs {per_member} bytes of device memory and {free} are free"),
        source: DriverError(sys::CUresult::CUDA_ERROR_OUT_OF_MEMORY),
    }
}

/// Runs `f`, turning a panic inside the driver bindings (a symbol missing from an old driver,
/// say) into [`Error::BackendUnavailable`]: the library never panics on a machine it cannot use.
pub(super) fn guarded<R>(f: impl FnOnce() -> Result<R>) -> Result<R> {
    match catch_unwind(AssertUnwindSafe(f)) {
        Ok(r) => r,
        Err(p) => Err(unavailable(format!("the CUDA driver binding failed: {}", panic_message(&p)))),
    }
}

/// Arithmetic type of the kernels.
pub(super) trait Real: super::driver::Elem {
    const DTYPE: Dtype;
    fn of(v: f64) -> Self;
    fn f64(self) -> f64;
}
impl Real for f64 {
    const DTYPE: Dtype = Dtype::F64;
    fn of(v: f64) -> Self {
        v
    }
    fn f64(self) -> f64 {
        self
    }
}
impl Real for f32 {
    const DTYPE: Dtype = Dtype::F32;
    fn of(v: f64) -> Self {
        v as f32
    }
    fn f64(self) -> f64 {
        self as f64
    }
}

/// The null device pointer, for optional kernel arguments (yvar, rq's alpha).
static NULL_DEVICE_PTR: u64 = 0;

/// Pushes an optional device array: the array, or a null pointer when absent.
pub(super) fn arg_opt<'a, T>(lb: &mut LaunchArgs<'a>, v: &'a Option<CudaSlice<T>>) {
    match v {
        Some(s) => {
            lb.arg(s);
        }
        None => {
            lb.arg(&NULL_DEVICE_PTR);
        }
    }
}

/// One device (ordinal 0), its stream and the loaded kernels.
pub(super) struct Device {
    /// The cuBLAS and cuSOLVER handles of the large-N path, made on its first call. First, so
    /// that they are destroyed while the context lives (fields drop in order).
    pub vendor: Option<super::vendor::Handles>,
    ctx: Arc<CudaContext>,
    pub stream: Arc<CudaStream>,
    funcs: HashMap<KernelId, CudaFunction>,
    /// Opt-in maximum of dynamic shared memory per block, bytes.
    pub smem_optin: usize,
    /// Upper bound on members per launch (from BATCHGP_CUDA_MAX_CHUNK or with_max_chunk).
    pub max_chunk: usize,
    /// BATCHGP_CUDA_TIMING set: every launch is timed with device events and reported on
    /// stderr (the stream waits for each kernel, so use it to measure, not in production).
    timing: bool,
    /// Set by [`CudaBackend::with_kernel_times`](super::CudaBackend::with_kernel_times): every
    /// launch is timed and kept here until taken.
    pub times: Option<std::cell::RefCell<Vec<KernelTime>>>,
    /// What the MLL host path keeps between calls: the dataset on the device and the
    /// workspace of a fit ([`super::host`]).
    pub host_cache: super::host::HostCache,
}

/// One timed kernel launch (device events around it).
#[derive(Clone, Debug)]
pub struct KernelTime {
    /// The entry point, e.g. `gp_mll_global_rbf_f64`.
    pub kernel: String,
    /// Members the launch processed.
    pub members: usize,
    /// Milliseconds between the events recorded before and after it.
    pub ms: f64,
}

impl Device {
    /// Opens device 0 and loads every kernel of the embedded fatbin. Returns the device and a
    /// one-line description. Errors are [`Error::BackendUnavailable`] with the reason.
    pub fn open() -> Result<(Device, String)> {
        let Some(fatbin) = embedded::FATBIN else {
            return Err(unavailable("built without CUDA kernels"));
        };
        if !libcuda_present() {
            return Err(unavailable("libcuda not found"));
        }
        match catch_unwind(move || Self::open_with(fatbin)) {
            Ok(r) => r,
            Err(p) => Err(unavailable(format!("the CUDA driver binding failed: {}", panic_message(&p)))),
        }
    }

    fn open_with(fatbin: &'static [u8]) -> Result<(Device, String)> {
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
        for id in KernelId::all() {
            let name = id.to_string();
            let f = module
                .load_function(&name)
                .map_err(|e| unavailable(format!("the embedded kernels lack {name}: {e}")))?;
            if id.op.dynamic_shared() {
                f.set_attribute(
                    sys::CUfunction_attribute::CU_FUNC_ATTRIBUTE_MAX_DYNAMIC_SHARED_SIZE_BYTES,
                    smem_optin.min(i32::MAX as usize) as i32,
                )
                .map_err(|e| unavailable(format!("cannot raise the shared memory of {name}: {e}")))?;
            }
            funcs.insert(id, f);
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
        let timing = std::env::var_os("BATCHGP_CUDA_TIMING").is_some_and(|v| !v.is_empty() && v != "0");
        Ok((
            Device {
                vendor: None,
                ctx,
                stream,
                funcs,
                smem_optin,
                max_chunk,
                timing,
                times: None,
                host_cache: Default::default(),
            },
            desc,
        ))
    }

    /// The loaded entry point `id`.
    pub fn func(&self, id: KernelId) -> Result<&CudaFunction> {
        self.funcs.get(&id).ok_or_else(|| Error::Cuda {
            what: format!("kernel {id} not loaded"),
            source: DriverError(sys::CUresult::CUDA_ERROR_NOT_FOUND),
        })
    }

    /// Launches kernel `id` for `members` members with the arguments in `lb`. With
    /// BATCHGP_CUDA_TIMING set, waits for it and prints one line to stderr:
    /// `batchgp-cuda-timing <id> members=<c> grid=<g> block=<t> smem=<bytes> ms=<time>`.
    ///
    /// # Safety
    /// As [`LaunchArgs::launch`]: the arguments pushed into `lb` must match the kernel's
    /// signature in order and type, and every buffer must hold what the kernel indexes under `cfg`.
    pub unsafe fn launch(
        &self,
        lb: &mut LaunchArgs<'_>,
        cfg: LaunchConfig,
        id: KernelId,
        members: usize,
    ) -> Result<()> {
        if self.timing || self.times.is_some() {
            lb.record_kernel_launch(sys::CUevent_flags::CU_EVENT_DEFAULT);
        }
        let what = |source| Error::Cuda { what: format!("launch of {id}"), source };
        // SAFETY: the caller's contract.
        let events = unsafe { lb.launch(cfg) }.map_err(what)?;
        if let Some((start, end)) = events {
            end.synchronize().map_err(|source| Error::Cuda { what: format!("execution of {id}"), source })?;
            let ms = start.elapsed_ms(&end).map_err(what)?;
            if self.timing {
                eprintln!(
                    "batchgp-cuda-timing {id} members={members} grid={} block={} smem={} ms={ms:.4}",
                    cfg.grid_dim.0, cfg.block_dim.0, cfg.shared_mem_bytes
                );
            }
            if let Some(t) = &self.times {
                t.borrow_mut().push(KernelTime { kernel: id.to_string(), members, ms: ms as f64 });
            }
        }
        Ok(())
    }

    /// Members per launch when one member needs `per_member` bytes of device memory.
    pub fn chunk(&self, per_member: usize, total: usize) -> Result<usize> {
        let free = self.free_bytes()?;
        let budget = free / 10 * 7;
        let c = budget / per_member.max(1);
        if c == 0 {
            return Err(out_of_memory(per_member, free));
        }
        Ok(c.min(total).min(self.max_chunk).min(i32::MAX as usize / 2).max(1))
    }

    /// Free device memory, bytes.
    pub fn free_bytes(&self) -> Result<usize> {
        Ok(self.ctx.mem_get_info().map_err(cuda_err("cuMemGetInfo"))?.0)
    }

    /// Copies to the device (at least one element: the driver rejects empty allocations).
    pub fn up<T: DeviceRepr + Default + Clone>(&self, v: &[T]) -> Result<CudaSlice<T>> {
        if v.is_empty() {
            self.stream.clone_htod(&[T::default()][..]).map_err(cuda_err("upload"))
        } else {
            self.stream.clone_htod(v).map_err(cuda_err("upload"))
        }
    }

    /// Copies an optional array to the device (None stays None: a null pointer in the kernel).
    pub fn up_opt<T: DeviceRepr + Default + Clone>(&self, v: Option<&[T]>) -> Result<Option<CudaSlice<T>>> {
        v.map(|v| self.up(v)).transpose()
    }

    /// Zeroed device memory of `len` elements (at least one).
    pub fn zeros<T: DeviceRepr + ValidAsZeroBits>(&self, len: usize) -> Result<CudaSlice<T>> {
        self.stream.alloc_zeros::<T>(len.max(1)).map_err(cuda_err("device allocation"))
    }

    /// Waits for the stream and copies the first `len` elements back.
    pub fn down<T: DeviceRepr + Default + Clone>(&self, s: &CudaSlice<T>, len: usize) -> Result<Vec<T>> {
        // Kernel faults surface here, named as such, rather than in the copy.
        self.stream.synchronize().map_err(cuda_err("kernel execution"))?;
        let mut v = self.stream.clone_dtoh(s).map_err(cuda_err("download"))?;
        v.truncate(len);
        Ok(v)
    }
}
