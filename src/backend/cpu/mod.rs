//! The CPU backend: rayon over members, faer inside a member.
//!
//! # Cost model
//! Per member with n observed points and D dimensions: the Gram matrix costs n^2 D / 2 (plus
//! n^2 / 2 exponentials), the Cholesky factor n^3 / 3, the MLL two triangular solves (2 n^2),
//! and the gradient a K^-1 (2 n^3 / 3 more: a triangular inverse and a triangular product)
//! followed by one pass over the lower triangle (n^2 D / 2). MLL plus gradient is thus about
//! n^3 flops per member, the figure the benchmarks report GFLOP/s against.
//!
//! # Parallelism
//! When there are at least as many members as rayon threads, members run in parallel and each
//! member is factorised sequentially; with fewer members and n >= 128, members run one after
//! another and faer parallelises inside the factorisation. The two are never nested, so a
//! thread never re-enters its own workspace.
//!
//! # Memory
//! Each thread keeps one workspace per precision (a few n x n buffers and faer's scratch), grown
//! on demand and reused: after the first call at a size, evaluating a batch allocates only its
//! output arrays. Masked points are compacted away, so a ragged member costs what its unpadded
//! twin costs and gives the same numbers.

mod cholesky;
mod gram;
pub mod memory;
mod mll;
mod predict;
pub(crate) mod sample;
mod small;
mod svgp;
pub(crate) use crate::numeric::simd;
pub(crate) use crate::numeric::Real;

pub(crate) use cholesky::factor_with_jitter;
pub(crate) use svgp::optimum::{natural_step, set_optimal_q};

use super::{Backend, CholeskyBatch, JitterPolicy, MllBatch, MllGradient, MllOptions, PredictOptions, Prediction};
use crate::data::{Dataset, Hyperparameters, Inputs, Precision, Status};
use crate::error::{Error, Result};
use crate::layout::Layout;
use faer::dyn_stack::{MemBuffer, MemStack, StackReq};
use faer::Par;
use ndarray::{Array2, Array3, Axis};
use rayon::prelude::*;
use std::cell::RefCell;

/// Arithmetic type of the CPU kernels (f64 or f32, [`Real`]) with this thread's workspace.
pub(crate) trait Float: Real {
    /// Runs `f` with this thread's workspace for this type.
    fn with_workspace<R>(f: impl FnOnce(&mut Workspace<Self>) -> R) -> R;
}

macro_rules! impl_float {
    ($t:ty, $tls:ident) => {
        thread_local! {
            static $tls: RefCell<Workspace<$t>> = RefCell::new(Workspace::default());
        }
        impl Float for $t {
            fn with_workspace<R>(f: impl FnOnce(&mut Workspace<Self>) -> R) -> R {
                $tls.with(|w| f(&mut w.borrow_mut()))
            }
        }
    };
}
impl_float!(f64, WORKSPACE_F64);
impl_float!(f32, WORKSPACE_F32);

/// Scratch memory of one thread, reused across members and calls.
pub(crate) struct Workspace<T> {
    /// Observed points scaled by the lengthscales, dimension-major (D, n).
    pub xs: Buf<T>,
    /// Residuals y - m of the observed points (n,), then alpha = K^-1 r.
    pub alpha: Buf<T>,
    /// Noise-free Gram Kf (n, n), column-major, lower triangle.
    pub kf: Buf<T>,
    /// K, then its Cholesky factor L, column-major (n, n).
    pub chol: Buf<T>,
    /// K^-1 (lower triangle) or prediction scratch.
    pub inv: Buf<T>,
    /// One column of scratch (n,).
    pub col: Buf<T>,
    /// Known noise variances of the observed points (n,).
    pub dv: Buf<T>,
    /// The kernel's lengthscale weights s psi (n, n), lower triangle (not for rbf).
    pub kg: Buf<T>,
    /// rq's s d phi / d log alpha (n, n), lower triangle.
    pub ka: Buf<T>,
    /// The small-matrix inverse's L^-1 (n, n), rows padded (n <= `small::SMALL_N` only).
    pub tri: Buf<T>,
    /// faer scratch.
    pub mem: Option<MemBuffer>,
    mem_req: Option<StackReq>,
}

impl<T> Default for Workspace<T> {
    fn default() -> Self {
        Workspace {
            xs: Buf::default(),
            alpha: Buf::default(),
            kf: Buf::default(),
            chol: Buf::default(),
            inv: Buf::default(),
            col: Buf::default(),
            dv: Buf::default(),
            kg: Buf::default(),
            ka: Buf::default(),
            tri: Buf::default(),
            mem: None,
            mem_req: None,
        }
    }
}

impl<T: Float> Workspace<T> {
    /// Makes every buffer fit n points in D dimensions and `extra` columns of prediction scratch.
    ///
    /// # Errors
    /// [`Error::AllocationFailed`] when an allocation fails (planning should have prevented it).
    pub fn reserve(&mut self, n: usize, d: usize, extra: usize, par: Par) -> Result<()> {
        grow(&mut self.xs, n * d, n)?;
        grow(&mut self.alpha, n, n)?;
        grow(&mut self.dv, n, n)?;
        grow(&mut self.col, n.max(extra), n)?;
        grow(&mut self.kf, n * n, n)?;
        grow(&mut self.chol, n * n, n)?;
        grow(&mut self.inv, (n * n).max(n * extra), n)?;
        grow(&mut self.tri, small_scratch(n), n)?;
        let req = faer::linalg::cholesky::llt::factor::cholesky_in_place_scratch::<T>(n, par, Default::default())
            .or(faer::linalg::cholesky::llt::inverse::inverse_scratch::<T>(n, par));
        let fits = match (&self.mem_req, &self.mem) {
            (Some(r), Some(_)) => r.size_bytes() >= req.size_bytes() && r.align_bytes() >= req.align_bytes(),
            _ => false,
        };
        if !fits {
            self.mem = None;
            let buf = MemBuffer::try_new(req).map_err(|_| out_of_memory(n, req.size_bytes()))?;
            self.mem = Some(buf);
            self.mem_req = Some(req);
        }
        Ok(())
    }
    /// Makes the gradient-weight buffers fit n points (kg always, ka for rq).
    pub fn reserve_weights(&mut self, n: usize, alpha: bool) -> Result<()> {
        grow(&mut self.kg, n * n, n)?;
        if alpha {
            grow(&mut self.ka, n * n, n)?;
        }
        Ok(())
    }
    /// Frees the buffers once they hold more than [`KEEP_BYTES`], so that one large request
    /// does not leave every thread holding its workspace for the life of the process.
    pub fn release_if_large(&mut self) {
        let len = self.kf.len() + self.chol.len() + self.inv.len() + self.kg.len() + self.ka.len() + self.tri.len();
        if len * std::mem::size_of::<T>() > KEEP_BYTES {
            *self = Workspace::default();
        }
    }
    /// faer's scratch stack (call [`Workspace::reserve`] first).
    pub fn stack(mem: &mut Option<MemBuffer>) -> &mut MemStack {
        MemStack::new(mem.as_mut().expect("workspace reserved"))
    }
}

/// Entries of scratch beyond [`Workspace`]'s n x n buffers that a member of n points takes:
/// the small path's L^-1 (none above `small::SMALL_N`).
pub(crate) fn small_scratch(n: usize) -> usize {
    if n <= small::SMALL_N {
        small::inverse_scratch(n)
    } else {
        0
    }
}

/// Workspaces above this size are freed after use (see [`Workspace::release_if_large`]).
const KEEP_BYTES: usize = 256 << 20;

fn out_of_memory(n: usize, bytes: usize) -> Error {
    let what = format!("the workspace of a member with N = {n}");
    Error::AllocationFailed { what, bytes: bytes as u64, limit: allocation_limit() }
}

/// The limit an allocation meets: the address-space limit (`ulimit -v`, RLIMIT_AS) when one is
/// set, else the memory available.
fn allocation_limit() -> String {
    #[cfg(unix)]
    {
        let mut r = libc::rlimit { rlim_cur: 0, rlim_max: 0 };
        // SAFETY: getrlimit writes the struct it is given.
        if unsafe { libc::getrlimit(libc::RLIMIT_AS, &mut r) } == 0 && r.rlim_cur != libc::RLIM_INFINITY {
            return format!("the address-space limit, ulimit -v, is {}", memory::format_bytes(r.rlim_cur as u64));
        }
    }
    match memory::available() {
        Some(a) => format!("no address-space limit; {} of memory available", memory::format_bytes(a)),
        None => "no address-space limit".into(),
    }
}

/// Grows `v` to `len` entries without aborting when the allocation fails.
fn grow<T: Float>(v: &mut Buf<T>, len: usize, n: usize) -> Result<()> {
    if v.len() < len {
        *v = Buf::zeroed(len).ok_or_else(|| out_of_memory(n, len * std::mem::size_of::<T>()))?;
    }
    Ok(())
}

/// A zero-initialised workspace buffer aligned to a cache line (64 bytes), so that the
/// column-wise loops of the small-matrix kernels see the same alignment on every call and thread
/// (a `Vec`'s 16-byte alignment makes their speed depend on where the allocator put it).
pub(crate) struct Buf<T> {
    ptr: std::ptr::NonNull<T>,
    len: usize,
}

// A Buf owns its elements like a Vec does.
unsafe impl<T: Send> Send for Buf<T> {}
unsafe impl<T: Sync> Sync for Buf<T> {}

impl<T> Default for Buf<T> {
    fn default() -> Self {
        Buf { ptr: std::ptr::NonNull::dangling(), len: 0 }
    }
}

impl<T: Float> Buf<T> {
    const ALIGN: usize = 64;
    fn layout(len: usize) -> Option<std::alloc::Layout> {
        std::alloc::Layout::from_size_align(len.checked_mul(std::mem::size_of::<T>())?, Self::ALIGN).ok()
    }
    /// `len` zeros (the float types' zero is all bits 0), or None when the allocation fails.
    fn zeroed(len: usize) -> Option<Self> {
        if len == 0 {
            return Some(Buf::default());
        }
        let layout = Self::layout(len)?;
        // SAFETY: the layout has a nonzero size; a null result is handled.
        let ptr = unsafe { std::alloc::alloc_zeroed(layout) } as *mut T;
        std::ptr::NonNull::new(ptr).map(|ptr| Buf { ptr, len })
    }
}

impl<T> Drop for Buf<T> {
    fn drop(&mut self) {
        if self.len > 0 {
            let layout = std::alloc::Layout::from_size_align(self.len * std::mem::size_of::<T>(), 64)
                .expect("the layout it was allocated with");
            // SAFETY: allocated by `zeroed` with this layout.
            unsafe { std::alloc::dealloc(self.ptr.as_ptr() as *mut u8, layout) };
        }
    }
}

impl<T> std::ops::Deref for Buf<T> {
    type Target = [T];
    fn deref(&self) -> &[T] {
        // SAFETY: ptr holds len initialised elements (or is dangling with len 0).
        unsafe { std::slice::from_raw_parts(self.ptr.as_ptr(), self.len) }
    }
}

impl<T> std::ops::DerefMut for Buf<T> {
    fn deref_mut(&mut self) -> &mut [T] {
        // SAFETY: as for deref, and the Buf is borrowed mutably.
        unsafe { std::slice::from_raw_parts_mut(self.ptr.as_ptr(), self.len) }
    }
}

/// How the members of a call are spread over the threads.
#[derive(Debug, Clone, Copy, PartialEq)]
pub(crate) enum Schedule {
    /// Members in parallel, each factorised sequentially.
    Members,
    /// One member at a time, with this parallelism inside it (few large members, or a memory
    /// budget that admits fewer members in flight than there are threads).
    OneAtATime(Par),
}

/// The schedule of `members` members of up to n points when at most `in_flight` fit in memory.
pub(crate) fn schedule(members: usize, n: usize, in_flight: usize) -> Schedule {
    let threads = rayon::current_num_threads();
    let inner = if n >= 128 && threads > 1 { Par::rayon(0) } else { Par::Seq };
    if in_flight < threads.min(members) || (members < threads && n >= 128 && threads > 1) {
        Schedule::OneAtATime(inner)
    } else {
        Schedule::Members
    }
}

/// Runs `f` for each index in `0..k` on the schedule, collecting the results in order.
pub(crate) fn for_members<R: Send>(k: usize, s: Schedule, f: impl Fn(usize, Par) -> R + Sync + Send) -> Vec<R> {
    match s {
        Schedule::Members => (0..k).into_par_iter().map(|i| f(i, Par::Seq)).collect(),
        Schedule::OneAtATime(par) => (0..k).map(|i| f(i, par)).collect(),
    }
}

/// The rayon CPU backend. Uses rayon's global pool; set RAYON_NUM_THREADS to limit it.
#[derive(Debug, Clone, Default)]
pub struct CpuBackend {
    _private: (),
}

impl CpuBackend {
    pub fn new() -> Self {
        CpuBackend { _private: () }
    }
}

impl Backend for CpuBackend {
    fn name(&self) -> &'static str {
        "cpu"
    }

    fn describe(&self) -> String {
        format!("cpu (rayon, {} threads, faer)", rayon::current_num_threads())
    }

    fn as_any(&self) -> Option<&dyn std::any::Any> {
        Some(self)
    }

    fn gram(&self, data: &Dataset, hyp: &Hyperparameters, precision: Precision) -> Result<Array3<f64>> {
        let (b, n, d) = (data.batch_size(), data.n_points(), data.n_dims());
        let per = memory::cpu_mll_bytes(n, d, hyp.kernel, precision, false);
        memory::in_flight(per, (b * n * n * 8) as u64, None, n)?;
        let mut out = Array3::<f64>::zeros((b, n, n));
        out.axis_iter_mut(Axis(0)).into_par_iter().enumerate().for_each(|(m, mut k)| match precision {
            Precision::F64 => gram::padded_gram::<f64>(data, hyp, m, k.view_mut()),
            Precision::F32 => gram::padded_gram::<f32>(data, hyp, m, k.view_mut()),
        });
        Ok(out)
    }

    fn cholesky(&self, a: &Array3<f64>, precision: Precision, jitter: JitterPolicy) -> Result<CholeskyBatch> {
        let (b, n, _) = a.dim();
        let per = memory::cpu_mll_bytes(n, 1, crate::Kernel::Rbf, precision, false);
        let in_flight = memory::in_flight(per, (b * n * n * 8) as u64, None, n)?;
        let mut factor = Array3::<f64>::zeros((b, n, n));
        let f = |m: usize, l, par| cholesky::factor_dense(a.index_axis(Axis(0), m), l, precision, jitter, par);
        let res: Vec<Result<(Status, f64)>> = match schedule(b, n, in_flight) {
            Schedule::Members => {
                factor.axis_iter_mut(Axis(0)).into_par_iter().enumerate().map(|(m, l)| f(m, l, Par::Seq)).collect()
            }
            Schedule::OneAtATime(par) => factor.axis_iter_mut(Axis(0)).enumerate().map(|(m, l)| f(m, l, par)).collect(),
        };
        let res = res.into_iter().collect::<Result<Vec<_>>>()?;
        Ok(CholeskyBatch {
            factor,
            status: res.iter().map(|r| r.0).collect(),
            jitter: res.iter().map(|r| r.1).collect(),
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
        let k = rows.len();
        let (n, d) = (data.n_points(), data.n_dims());
        let layout = Layout::of(hyp);
        let per = memory::cpu_mll_bytes(n, d, hyp.kernel, opts.precision, opts.gradient);
        let in_flight = memory::in_flight(per, (k * (layout.len() + 3) * 8) as u64, opts.max_memory, n)?;
        let mut grad = Array2::<f64>::zeros((k, layout.len()));
        let eval = |i: usize, row: ndarray::ArrayViewMut1<f64>, par: Par| {
            let row = row.into_slice().expect("rows of a standard-layout array are contiguous");
            match opts.precision {
                Precision::F64 => mll::member_mll::<f64>(data, hyp, rows[i], opts, par, row),
                Precision::F32 => mll::member_mll::<f32>(data, hyp, rows[i], opts, par, row),
            }
        };
        let res: Vec<Result<(f64, Status, f64)>> = match schedule(k, n, in_flight) {
            Schedule::Members => {
                grad.axis_iter_mut(Axis(0)).into_par_iter().enumerate().map(|(i, r)| eval(i, r, Par::Seq)).collect()
            }
            Schedule::OneAtATime(par) => {
                grad.axis_iter_mut(Axis(0)).enumerate().map(|(i, r)| eval(i, r, par)).collect()
            }
        };
        let res = res.into_iter().collect::<Result<Vec<_>>>()?;
        Ok(MllBatch {
            mll: res.iter().map(|r| r.0).collect(),
            gradient: opts.gradient.then(|| MllGradient::from_rows(&grad, layout)),
            status: res.iter().map(|r| r.1).collect(),
            jitter: res.iter().map(|r| r.2).collect(),
        })
    }

    fn predict(
        &self,
        data: &Dataset,
        hyp: &Hyperparameters,
        test: &Inputs,
        opts: &PredictOptions,
    ) -> Result<Prediction> {
        predict::predict(data, hyp, test, opts)
    }
}
