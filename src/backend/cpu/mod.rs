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
mod mll;
mod predict;
mod small;
#[macro_use]
pub(crate) mod simd;

pub use predict::draw_samples;

use super::{Backend, CholeskyBatch, JitterPolicy, MllBatch, MllGradient, MllOptions, PredictOptions, Prediction};
use crate::data::{Dataset, Hyperparameters, Inputs, Precision, Status};
use crate::error::Result;
use crate::layout::Layout;
use faer::dyn_stack::{MemBuffer, MemStack, StackReq};
use faer::Par;
use ndarray::{Array2, Array3, Axis};
use rayon::prelude::*;
use std::cell::RefCell;

/// Arithmetic type of the CPU kernels: f64 or f32.
pub(crate) trait Float: faer::traits::RealField + Copy + Send + Sync + 'static {
    fn from_f64(v: f64) -> Self;
    fn to_f64(self) -> f64;
    fn is_finite(self) -> bool;
    fn sqrt(self) -> Self;
    /// exp over a slice, vectorised (see `simd`).
    fn exp_slice(v: &mut [Self]);
    /// Runs `f` with this thread's workspace for this type.
    fn with_workspace<R>(f: impl FnOnce(&mut Workspace<Self>) -> R) -> R;
}

macro_rules! impl_float {
    ($t:ty, $tls:ident, $exp_slice:path) => {
        thread_local! {
            static $tls: RefCell<Workspace<$t>> = RefCell::new(Workspace::default());
        }
        impl Float for $t {
            #[inline(always)]
            fn from_f64(v: f64) -> Self {
                v as $t
            }
            #[inline(always)]
            fn to_f64(self) -> f64 {
                self as f64
            }
            #[inline(always)]
            fn sqrt(self) -> Self {
                <$t>::sqrt(self)
            }
            #[inline(always)]
            fn is_finite(self) -> bool {
                <$t>::is_finite(self)
            }
            #[inline(always)]
            fn exp_slice(v: &mut [Self]) {
                $exp_slice(v)
            }
            fn with_workspace<R>(f: impl FnOnce(&mut Workspace<Self>) -> R) -> R {
                $tls.with(|w| f(&mut w.borrow_mut()))
            }
        }
    };
}
impl_float!(f64, WORKSPACE_F64, simd::exp_slice_f64);
impl_float!(f32, WORKSPACE_F32, simd::exp_slice_f32);

/// Scratch memory of one thread, reused across members and calls.
#[derive(Default)]
pub(crate) struct Workspace<T> {
    /// Observed points scaled by the lengthscales, dimension-major (D, n).
    pub xs: Vec<T>,
    /// Residuals y - m of the observed points (n,), then alpha = K^-1 r.
    pub alpha: Vec<T>,
    /// Noise-free Gram Kf (n, n), column-major, lower triangle.
    pub kf: Vec<T>,
    /// K, then its Cholesky factor L, column-major (n, n).
    pub chol: Vec<T>,
    /// K^-1 (lower triangle) or prediction scratch.
    pub inv: Vec<T>,
    /// One column of scratch (n,).
    pub col: Vec<T>,
    /// Known noise variances of the observed points (n,).
    pub dv: Vec<T>,
    /// The kernel's lengthscale weights s psi (n, n), lower triangle (not for rbf).
    pub kg: Vec<T>,
    /// rq's s d phi / d log alpha (n, n), lower triangle.
    pub ka: Vec<T>,
    /// faer scratch.
    pub mem: Option<MemBuffer>,
    mem_req: Option<StackReq>,
}

impl<T: Float> Workspace<T> {
    /// Makes every buffer fit n points in D dimensions and `extra` columns of prediction scratch.
    pub fn reserve(&mut self, n: usize, d: usize, extra: usize, par: Par) {
        grow(&mut self.xs, n * d);
        grow(&mut self.alpha, n);
        grow(&mut self.dv, n);
        grow(&mut self.col, n.max(extra));
        grow(&mut self.kf, n * n);
        grow(&mut self.chol, n * n);
        grow(&mut self.inv, (n * n).max(n * extra));
        let req = faer::linalg::cholesky::llt::factor::cholesky_in_place_scratch::<T>(n, par, Default::default())
            .or(faer::linalg::cholesky::llt::inverse::inverse_scratch::<T>(n, par));
        let fits = match (&self.mem_req, &self.mem) {
            (Some(r), Some(_)) => r.size_bytes() >= req.size_bytes() && r.align_bytes() >= req.align_bytes(),
            _ => false,
        };
        if !fits {
            self.mem = Some(MemBuffer::new(req));
            self.mem_req = Some(req);
        }
    }
    /// Makes the gradient-weight buffers fit n points (kg always, ka for rq).
    pub fn reserve_weights(&mut self, n: usize, alpha: bool) {
        grow(&mut self.kg, n * n);
        if alpha {
            grow(&mut self.ka, n * n);
        }
    }
    /// faer's scratch stack (call [`Workspace::reserve`] first).
    pub fn stack(mem: &mut Option<MemBuffer>) -> &mut MemStack {
        MemStack::new(mem.as_mut().expect("workspace reserved"))
    }
}

fn grow<T: Float>(v: &mut Vec<T>, len: usize) {
    if v.len() < len {
        v.resize(len, T::from_f64(0.0));
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

/// How to split work: members in parallel, or one member at a time with faer in parallel.
pub(crate) fn inner_par(members: usize, n: usize) -> Par {
    let threads = rayon::current_num_threads();
    if members < threads && n >= 128 && threads > 1 {
        Par::rayon(0)
    } else {
        Par::Seq
    }
}

/// Runs `f` for each index in `0..k`, in parallel over members or sequentially with the given
/// inner parallelism (see [`inner_par`]), collecting the results in order.
pub(crate) fn for_members<R: Send>(k: usize, par: Par, f: impl Fn(usize, Par) -> R + Sync + Send) -> Vec<R> {
    match par {
        Par::Seq => (0..k).into_par_iter().map(|i| f(i, Par::Seq)).collect(),
        _ => (0..k).map(|i| f(i, par)).collect(),
    }
}

impl Backend for CpuBackend {
    fn name(&self) -> &'static str {
        "cpu"
    }

    fn describe(&self) -> String {
        format!("cpu (rayon, {} threads, faer)", rayon::current_num_threads())
    }

    fn gram(&self, data: &Dataset, hyp: &Hyperparameters, precision: Precision) -> Result<Array3<f64>> {
        let (b, n) = (data.batch_size(), data.n_points());
        let mut out = Array3::<f64>::zeros((b, n, n));
        out.axis_iter_mut(Axis(0)).into_par_iter().enumerate().for_each(|(m, mut k)| match precision {
            Precision::F64 => gram::padded_gram::<f64>(data, hyp, m, k.view_mut()),
            Precision::F32 => gram::padded_gram::<f32>(data, hyp, m, k.view_mut()),
        });
        Ok(out)
    }

    fn cholesky(&self, a: &Array3<f64>, precision: Precision, jitter: JitterPolicy) -> Result<CholeskyBatch> {
        let (b, n, _) = a.dim();
        let mut factor = Array3::<f64>::zeros((b, n, n));
        let par = inner_par(b, n);
        let res: Vec<(Status, f64)> = match par {
            Par::Seq => factor
                .axis_iter_mut(Axis(0))
                .into_par_iter()
                .enumerate()
                .map(|(m, l)| cholesky::factor_dense(a.index_axis(Axis(0), m), l, precision, jitter, Par::Seq))
                .collect(),
            _ => factor
                .axis_iter_mut(Axis(0))
                .enumerate()
                .map(|(m, l)| cholesky::factor_dense(a.index_axis(Axis(0), m), l, precision, jitter, par))
                .collect(),
        };
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
        let layout = Layout::of(hyp);
        let par = inner_par(k, data.n_points());
        let mut grad = Array2::<f64>::zeros((k, layout.len()));
        let eval = |i: usize, row: ndarray::ArrayViewMut1<f64>, par: Par| {
            let row = row.into_slice().expect("rows of a standard-layout array are contiguous");
            match opts.precision {
                Precision::F64 => mll::member_mll::<f64>(data, hyp, rows[i], opts, par, row),
                Precision::F32 => mll::member_mll::<f32>(data, hyp, rows[i], opts, par, row),
            }
        };
        let res: Vec<(f64, Status, f64)> = match par {
            Par::Seq => {
                grad.axis_iter_mut(Axis(0)).into_par_iter().enumerate().map(|(i, r)| eval(i, r, Par::Seq)).collect()
            }
            _ => grad.axis_iter_mut(Axis(0)).enumerate().map(|(i, r)| eval(i, r, par)).collect(),
        };
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
        let pred = predict::predict(data, hyp, test, opts);
        Ok(pred)
    }
}
