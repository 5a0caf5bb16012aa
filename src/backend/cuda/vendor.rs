//! cuSOLVER and cuBLAS for the large-N path ([`super::dense`]), loaded at run time like the
//! driver: a machine without them runs every other path, and [`availability`] says which library
//! is missing. f64 only (the f32 path keeps the fused global kernel). [`Vendor`] implements
//! [`DenseOps`] on the backend's stream: potrf, potrs and potri per member (cuSOLVER), the
//! factors' diagonals (cublasDcopy with stride N + 1), the gradient product as one strided
//! batched gemm (cuBLAS), and the Gram, jitter shift and pair pass in our kernels (gram.cu,
//! dense.cu).
//!
//! Per-member potrf and potri on one stream is the first version; potrfBatched for many
//! members of moderate N, and streams, are for the measurements to decide (docs/gpu-notes.md).

use super::dense::{Chunk, DenseOps, PairSums};
use super::device::{arg_opt, cuda_err, Device};
use super::launch::{stride_launch, KernelId, Op, BLOCK};
use super::mll::DeviceInputs;
use crate::error::{Error, Result};
use cudarc::cublas::sys as blas;
use cudarc::cusolver::sys as lapack;
use cudarc::driver::{sys, CudaSlice, DevicePtr, DriverError, LaunchConfig, PushKernelArg};
use std::cell::RefCell;
use std::sync::OnceLock;

/// Whether cuBLAS and cuSOLVER load: Ok, or the reason naming the missing library.
pub(super) fn availability() -> std::result::Result<(), String> {
    static R: OnceLock<std::result::Result<(), String>> = OnceLock::new();
    R.get_or_init(|| {
        let present = |f: unsafe fn() -> bool| std::panic::catch_unwind(|| unsafe { f() }).unwrap_or(false);
        // SAFETY (both): only dlopen the libraries by their usual names.
        let mut missing = Vec::new();
        if !present(blas::is_culib_present) {
            missing.push("libcublas");
        }
        if !present(lapack::is_culib_present) {
            missing.push("libcusolver");
        }
        if missing.is_empty() {
            Ok(())
        } else {
            Err(format!("{} not found", missing.join(" and ")))
        }
    })
    .clone()
}

/// Whether the f64 MLL of members of order n, which the fused kernels would run in their
/// global variant when `global`, takes the vendor path: BATCHGP_CUDA_VENDOR=off never, =on
/// whenever `global` and the libraries load, unset (auto) from [`super::dense::DENSE_MIN_N`] on.
pub(super) fn wanted(n: usize, global: bool) -> bool {
    let mode = std::env::var("BATCHGP_CUDA_VENDOR").unwrap_or_default();
    let by_n = match mode.as_str() {
        "off" | "0" => false,
        "on" | "1" => global,
        _ => global && n >= super::dense::DENSE_MIN_N,
    };
    by_n && availability().is_ok()
}

/// Launch shape of dense_pairs for c members: a block of BLOCK threads per member, no dynamic
/// shared memory.
pub(super) fn pairs_launch(c: usize) -> LaunchConfig {
    LaunchConfig { grid_dim: (c as u32, 1, 1), block_dim: (BLOCK, 1, 1), shared_mem_bytes: 0 }
}

fn blas_err(what: &'static str) -> impl Fn(blas::cublasStatus_t) -> Error {
    move |st| Error::Cuda { what: format!("{what}: {st:?}"), source: DriverError(sys::CUresult::CUDA_ERROR_UNKNOWN) }
}

fn blas_ok(st: blas::cublasStatus_t, what: &'static str) -> Result<()> {
    if st == blas::cublasStatus_t::CUBLAS_STATUS_SUCCESS {
        Ok(())
    } else {
        Err(blas_err(what)(st))
    }
}

fn lapack_ok(st: lapack::cusolverStatus_t, what: &'static str) -> Result<()> {
    if st == lapack::cusolverStatus_t::CUSOLVER_STATUS_SUCCESS {
        Ok(())
    } else {
        Err(Error::Cuda { what: format!("{what}: {st:?}"), source: DriverError(sys::CUresult::CUDA_ERROR_UNKNOWN) })
    }
}

/// A cuBLAS and a cuSOLVER handle bound to the device's stream, made on the first vendor call
/// and kept by the device (creating them costs milliseconds).
pub(super) struct Handles {
    blas: blas::cublasHandle_t,
    solver: lapack::cusolverDnHandle_t,
}

// SAFETY: the handles are used only under the backend's mutex (one thread at a time), which
// cuBLAS and cuSOLVER allow for a handle.
unsafe impl Send for Handles {}

impl Drop for Handles {
    fn drop(&mut self) {
        // SAFETY: both handles were created in `new` and are destroyed once.
        unsafe {
            let _ = blas::cublasDestroy_v2(self.blas);
            let _ = lapack::cusolverDnDestroy(self.solver);
        }
    }
}

impl Handles {
    /// Handles bound to the device's stream. Errors: [`Error::BackendUnavailable`] when a
    /// library is missing, [`Error::Cuda`] when a handle cannot be made.
    pub fn new(dev: &Device) -> Result<Self> {
        availability().map_err(super::device::unavailable)?;
        let stream = dev.stream.cu_stream();
        let h = cudarc::cublas::result::create_handle().map_err(|e| blas_err("cublasCreate")(e.0))?;
        let mut s = std::ptr::null_mut();
        // SAFETY: cusolverDnCreate writes a handle into `s`.
        let made = lapack_ok(unsafe { lapack::cusolverDnCreate(&mut s) }, "cusolverDnCreate");
        let handles = Handles { blas: h, solver: if made.is_ok() { s } else { std::ptr::null_mut() } };
        made?;
        // SAFETY: fresh handles and the device's live stream.
        unsafe { cudarc::cublas::result::set_stream(h, stream as _) }.map_err(|e| blas_err("cublasSetStream")(e.0))?;
        // SAFETY: as above.
        lapack_ok(unsafe { lapack::cusolverDnSetStream(s, stream as _) }, "cusolverDnSetStream")?;
        Ok(handles)
    }
}

/// The device operations of the large-N path on `dev`'s stream, with the chunk's inputs on the
/// device (uploaded by `gram`, read again by the shift and the pair pass).
pub(super) struct Vendor<'a> {
    dev: &'a Device,
    blas: blas::cublasHandle_t,
    solver: lapack::cusolverDnHandle_t,
    inputs: RefCell<Option<DeviceInputs<f64>>>,
}

/// c matrices or blocks of f64, column-major per member.
pub(super) struct Mats {
    buf: CudaSlice<f64>,
    c: usize,
    n: usize,
    k: usize,
}

impl<'a> Vendor<'a> {
    /// The operations on `dev` with its `handles`.
    pub fn new(dev: &'a Device, handles: &Handles) -> Self {
        Vendor { dev, blas: handles.blas, solver: handles.solver, inputs: RefCell::new(None) }
    }

    fn ptr(&self, m: &CudaSlice<f64>) -> *mut f64 {
        let (p, _sync) = m.device_ptr(&self.dev.stream);
        p as *mut f64
    }

    /// Device infos (c), zeroed.
    fn infos(&self, c: usize) -> Result<CudaSlice<i32>> {
        self.dev.zeros::<i32>(c)
    }
}

impl DenseOps for Vendor<'_> {
    type Mats = Mats;
    type Cols = Mats;

    fn mats(&self, c: usize, n: usize) -> Result<Mats> {
        Ok(Mats { buf: self.dev.zeros(c * n * n)?, c, n, k: n })
    }

    fn cols(&self, host: &[f64], c: usize, n: usize, k: usize) -> Result<Mats> {
        Ok(Mats { buf: self.dev.up(host)?, c, n, k })
    }

    fn read_cols(&self, v: &Mats) -> Result<Vec<f64>> {
        self.dev.down(&v.buf, v.c * v.n * v.k)
    }

    fn gram(&self, ch: &Chunk<'_>, k0: &mut Mats) -> Result<()> {
        let dinp = DeviceInputs::upload(self.dev, ch.inp)?;
        let (c, n, d) = (ch.c(), ch.n(), ch.d());
        let id = KernelId::new(Op::Gram, ch.kernel, super::launch::Dtype::F64);
        let f = self.dev.func(id)?;
        let (x_stride, bb, nn, dd) = ((n * d) as i64, c as i32, n as i32, d as i32);
        let mut lb = self.dev.stream.launch_builder(f);
        lb.arg(&dinp.x).arg(&x_stride).arg(&dinp.mask).arg(&dinp.ls).arg(&dinp.s).arg(&dinp.noise);
        arg_opt(&mut lb, &dinp.alpha);
        arg_opt(&mut lb, &dinp.yvar);
        lb.arg(&bb).arg(&nn).arg(&dd).arg(&k0.buf);
        // SAFETY: as in linalg.rs gram_t: gram_<kernel>_f64's arguments in order and type, every
        // buffer sized for c members (k0 c*N*N); K is symmetric, so its row-major layout is
        // also the column-major one.
        unsafe { self.dev.launch(&mut lb, stride_launch(c * n * n), id, c) }?;
        *self.inputs.borrow_mut() = Some(dinp);
        Ok(())
    }

    fn shifted(&self, ch: &Chunk<'_>, k0: &Mats, a: &mut Mats, jit: &[Option<f64>]) -> Result<()> {
        let (c, n) = (ch.c(), ch.n());
        let j: Vec<f64> = jit.iter().map(|v| v.unwrap_or(f64::NAN)).collect();
        let dj = self.dev.up(&j)?;
        let inputs = self.inputs.borrow();
        let dinp = inputs.as_ref().expect("gram uploads the inputs first");
        let id = KernelId::new(Op::DenseShift, ch.kernel, super::launch::Dtype::F64);
        let f = self.dev.func(id)?;
        let (cc, nn) = (c as i32, n as i32);
        let mut lb = self.dev.stream.launch_builder(f);
        lb.arg(&k0.buf).arg(&a.buf).arg(&dj).arg(&dinp.mask).arg(&cc).arg(&nn);
        // SAFETY: dense_shift_f64(const double* k0, double* a, const double* jit, const uint8_t*
        // mask, int C, int N): k0 and a hold c*N*N, jit c, mask c*N elements.
        unsafe { self.dev.launch(&mut lb, stride_launch(c * n * n), id, c) }
    }

    fn potrf(&self, a: &mut Mats, which: &[bool]) -> Result<Vec<i32>> {
        let (c, n) = (a.c, a.n as i32);
        let info = self.infos(c)?;
        let base = self.ptr(&a.buf);
        let ip = self.dev_i32(&info);
        let lower = lapack::cublasFillMode_t::CUBLAS_FILL_MODE_LOWER;
        let mut lwork = 0;
        // SAFETY: a query on a valid handle; `base` holds c*N*N doubles.
        lapack_ok(
            unsafe { lapack::cusolverDnDpotrf_bufferSize(self.solver, lower, n, base, n, &mut lwork) },
            "potrf_bufferSize",
        )?;
        let work = self.dev.zeros::<f64>(lwork.max(1) as usize)?;
        let wp = self.ptr(&work);
        for (q, _) in which.iter().enumerate().filter(|w| *w.1) {
            // SAFETY: member q's N x N matrix (lda N) inside `a`, the workspace of the size
            // cuSOLVER asked for, one info per member; all on the handle's stream.
            let st = unsafe {
                lapack::cusolverDnDpotrf(self.solver, lower, n, base.add(q * a.n * a.n), n, wp, lwork, ip.add(q))
            };
            lapack_ok(st, "cusolverDnDpotrf")?;
        }
        self.dev.down(&info, c)
    }

    fn potrs(&self, l: &Mats, b: &mut Mats) -> Result<()> {
        let (c, n) = (l.c, l.n as i32);
        let info = self.infos(c)?;
        let ip = self.dev_i32(&info);
        let (lp, bp) = (self.ptr(&l.buf), self.ptr(&b.buf));
        let lower = lapack::cublasFillMode_t::CUBLAS_FILL_MODE_LOWER;
        for q in 0..c {
            // SAFETY: member q's factor (N x N, lda N) and right-hand side (N, ldb N).
            let st = unsafe {
                lapack::cusolverDnDpotrs(
                    self.solver,
                    lower,
                    n,
                    1,
                    lp.add(q * l.n * l.n),
                    n,
                    bp.add(q * l.n),
                    n,
                    ip.add(q),
                )
            };
            lapack_ok(st, "cusolverDnDpotrs")?;
        }
        Ok(())
    }

    fn diagonals(&self, l: &Mats) -> Result<Vec<f64>> {
        let (c, n) = (l.c, l.n);
        let out = self.dev.zeros::<f64>(c * n)?;
        let (lp, op) = (self.ptr(&l.buf), self.ptr(&out));
        for q in 0..c {
            // SAFETY: n strided reads inside member q's matrix, n writes inside `out`.
            let st =
                unsafe { blas::cublasDcopy_v2(self.blas, n as i32, lp.add(q * n * n), n as i32 + 1, op.add(q * n), 1) };
            blas_ok(st, "cublasDcopy")?;
        }
        self.dev.down(&out, c * n)
    }

    fn inverse(&self, l: &Mats, out: &mut Mats) -> Result<()> {
        let (c, n) = (l.c, l.n);
        self.dev.stream.memcpy_dtod(&l.buf, &mut out.buf).map_err(cuda_err("copy of the factors"))?;
        let info = self.infos(c)?;
        let ip = self.dev_i32(&info);
        let op = self.ptr(&out.buf);
        let lower = lapack::cublasFillMode_t::CUBLAS_FILL_MODE_LOWER;
        let mut lwork = 0;
        // SAFETY: a query on a valid handle.
        lapack_ok(
            unsafe { lapack::cusolverDnDpotri_bufferSize(self.solver, lower, n as i32, op, n as i32, &mut lwork) },
            "potri_bufferSize",
        )?;
        let work = self.dev.zeros::<f64>(lwork.max(1) as usize)?;
        let wp = self.ptr(&work);
        for q in 0..c {
            // SAFETY: member q's factor, overwritten by the lower triangle of K^-1.
            let st = unsafe {
                lapack::cusolverDnDpotri(
                    self.solver,
                    lower,
                    n as i32,
                    op.add(q * n * n),
                    n as i32,
                    wp,
                    lwork,
                    ip.add(q),
                )
            };
            lapack_ok(st, "cusolverDnDpotri")?;
        }
        Ok(())
    }

    fn pair_pass(&self, ch: &Chunk<'_>, alpha: &Mats, kinv: &mut Mats) -> Result<Vec<PairSums>> {
        let (c, n, d) = (ch.c(), ch.n(), ch.d());
        let inputs = self.inputs.borrow();
        let dinp = inputs.as_ref().expect("gram uploads the inputs first");
        let sums = self.dev.zeros::<f64>(c * 3)?;
        let id = KernelId::new(Op::DensePairs, ch.kernel, super::launch::Dtype::F64);
        let f = self.dev.func(id)?;
        let (cc, nn, dd) = (c as i32, n as i32, d as i32);
        let mut lb = self.dev.stream.launch_builder(f);
        lb.arg(&dinp.x).arg(&dinp.mask).arg(&dinp.ls).arg(&dinp.s);
        arg_opt(&mut lb, &dinp.alpha);
        lb.arg(&alpha.buf).arg(&kinv.buf).arg(&cc).arg(&nn).arg(&dd).arg(&sums);
        let cfg = pairs_launch(c);
        // SAFETY: dense_pairs_<kernel>_f64(const double* x, const uint8_t* mask, const double*
        // ls, const double* s, const double* rq_alpha, const double* alpha, double* kinv, int C,
        // int N, int D, double* sums): x c*N*D, mask and alpha c*N, ls c*D, s and rq_alpha c
        // (null for kernels without alpha), kinv c*N*N, sums c*3; one block per member.
        unsafe { self.dev.launch(&mut lb, cfg, id, c) }?;
        let h = self.dev.down(&sums, c * 3)?;
        Ok(h.chunks(3).map(|s| [s[0], s[1], s[2]]).collect())
    }

    fn gemm(&self, m: &Mats, u: &Mats, p: &mut Mats) -> Result<()> {
        let (n, k) = (m.n as i32, u.k as i32);
        let (one, zero) = (1.0f64, 0.0f64);
        let op = blas::cublasOperation_t::CUBLAS_OP_N;
        // SAFETY: c products of N x N (lda N, stride N*N) and N x k (ldb N, stride N*k) into N x
        // k (ldc N, stride N*k), every buffer holding c such blocks.
        let st = unsafe {
            blas::cublasDgemmStridedBatched(
                self.blas,
                op,
                op,
                n,
                k,
                n,
                &one,
                self.ptr(&m.buf),
                n,
                (m.n * m.n) as i64,
                self.ptr(&u.buf),
                n,
                (u.n * u.k) as i64,
                &zero,
                self.ptr(&p.buf),
                n,
                (p.n * p.k) as i64,
                m.c as i32,
            )
        };
        blas_ok(st, "cublasDgemmStridedBatched")
    }
}

impl Vendor<'_> {
    fn dev_i32(&self, s: &CudaSlice<i32>) -> *mut i32 {
        let (p, _sync) = s.device_ptr(&self.dev.stream);
        p as *mut i32
    }
}
