//! The inducing side of one SVGP member on the CPU, shared by the ELBO and the posterior: Z
//! centred and scaled, k(Z, Z) with its gradient weights, its jittered Cholesky factor, and the
//! small dense helpers (column-major views, the whitened Q) both use.

use crate::backend::cpu::gram::{fill_cross, Cov, GradWeights};
use crate::backend::cpu::Float;
use crate::data::Status;
use crate::kernel::Kernel;
use crate::svgp::params::{ElboOptions, SvgpParams};
use faer::{MatMut, MatRef, Par};
use ndarray::Axis;

/// The inducing side of member b shared by the ELBO and prediction: the centre (the mean of
/// Z), Z centred and scaled (D, M), k(Z, Z) (M x M, both triangles) with its gradient weights,
/// and the jittered factor L (lower triangle), or the status and jitter of a failure.
pub(super) struct Inducing<T> {
    pub(super) centre: Vec<f64>,
    pub(super) zs: Vec<T>,
    pub(super) kzz: Vec<T>,
    /// s psi and s d phi / d log alpha of k(Z, Z) (gradient only; psi = kzz for rbf).
    pub(super) wzz: Option<(Vec<T>, Option<Vec<T>>)>,
    pub(super) l: Vec<T>,
    pub(super) jitter: f64,
    pub(super) status: Status,
}

pub(super) fn zero<T: Float>() -> T {
    T::from_f64(0.0)
}

/// k(a, b) (na, nb) column-major between dimension-major scaled point sets a (D, na) and
/// b (D, nb) (`gram::fill_cross`), and when `grad`, the weights s psi (None for rbf, whose weight
/// is k) and, for rq, s d phi / d log alpha.
#[allow(clippy::type_complexity)]
pub(super) fn covariance<T: Float>(
    a: &[T],
    na: usize,
    b: &[T],
    nb: usize,
    d: usize,
    cov: Cov<T>,
    grad: bool,
) -> (Vec<T>, Option<(Option<Vec<T>>, Option<Vec<T>>)>) {
    let mut k = vec![zero::<T>(); na * nb];
    let mut psi = (grad && cov.kernel != Kernel::Rbf).then(|| vec![zero::<T>(); na * nb]);
    let mut da = (grad && cov.kernel.has_alpha()).then(|| vec![zero::<T>(); na * nb]);
    let weights = psi.as_deref_mut().map(|psi| GradWeights { psi, dalpha: da.as_deref_mut() });
    fill_cross(a, na, b, nb, d, cov, &mut k, weights);
    (k, grad.then_some((psi, da)))
}

pub(super) fn inducing<T: Float>(params: &SvgpParams, b: usize, opts: &ElboOptions, grad: bool) -> Inducing<T> {
    let hyp = &params.hyp;
    let (m, d) = (params.n_inducing(), params.n_dims());
    let zb = params.z.index_axis(Axis(0), b);
    let centre: Vec<f64> = (0..d).map(|k| zb.column(k).sum() / m as f64).collect();
    let ls = hyp.lengthscale.row(b);
    let mut zs = vec![zero::<T>(); d * m];
    for j in 0..m {
        for k in 0..d {
            zs[k * m + j] = T::from_f64((zb[[j, k]] - centre[k]) / ls[k]);
        }
    }
    let s = hyp.outputscale[b];
    let (kzz, w) = covariance(&zs, m, &zs, m, d, Cov::of(hyp, b), grad);
    let wzz = w.map(|(psi, da)| (psi.unwrap_or_else(|| kzz.clone()), da));
    let mut l = vec![zero::<T>(); m * m];
    let mut status = Status::Failed;
    let mut jitter = 0.0;
    if s.is_finite() && kzz.iter().all(|v| v.is_finite()) {
        for k in 0..=opts.jitter.retries {
            jitter = opts.jitter_at(k, s);
            l.copy_from_slice(&kzz);
            for j in 0..m {
                l[j * m + j] += T::from_f64(jitter);
            }
            if factor(&mut l, m) {
                status = if k == 0 { Status::Ok } else { Status::Jitter };
                break;
            }
        }
    }
    for j in 0..m {
        for i in 0..j {
            l[j * m + i] = zero();
        }
    }
    Inducing { centre, zs, kzz, wzz, l, jitter, status }
}

/// Cholesky in place (lower triangle of a column-major (m, m)); false when not positive
/// definite.
pub(super) fn factor<T: Float>(a: &mut [T], m: usize) -> bool {
    let ok = if m <= crate::backend::cpu::small::SMALL_N {
        crate::backend::cpu::small::cholesky(a, m)
    } else {
        let req = faer::linalg::cholesky::llt::factor::cholesky_in_place_scratch::<T>(m, Par::Seq, Default::default());
        let mut mem = faer::dyn_stack::MemBuffer::new(req);
        let mat = MatMut::from_column_major_slice_mut(a, m, m);
        faer::linalg::cholesky::llt::factor::cholesky_in_place(
            mat,
            Default::default(),
            Par::Seq,
            faer::dyn_stack::MemStack::new(&mut mem),
            Default::default(),
        )
        .is_ok()
    };
    ok && (0..m).all(|i| {
        let v = a[i * m + i];
        v.is_finite() && v > zero()
    })
}

/// Centred, scaled points of `x` rows `idx` (D, n), dimension-major.
pub(super) fn scaled<T: Float>(
    x: ndarray::ArrayView2<f64>,
    idx: &[usize],
    centre: &[f64],
    ls: ndarray::ArrayView1<f64>,
) -> Vec<T> {
    let n = idx.len();
    let mut xs = vec![zero::<T>(); ls.len() * n];
    for (slot, &i) in idx.iter().enumerate() {
        for (k, l) in ls.iter().enumerate() {
            xs[k * n + slot] = T::from_f64((x[[i, k]] - centre[k]) / l);
        }
    }
    xs
}

/// Q (M x M column-major, zeros above the diagonal) from member b's q_sqrt.
pub(super) fn q_of<T: Float>(params: &SvgpParams, b: usize) -> Vec<T> {
    let m = params.n_inducing();
    let q = params.q_sqrt.index_axis(Axis(0), b);
    let mut out = vec![zero::<T>(); m * m];
    for j in 0..m {
        for i in j..m {
            out[j * m + i] = T::from_f64(q[[i, j]]);
        }
    }
    out
}

pub(super) fn mat<T: Float>(v: &[T], r: usize, c: usize) -> MatRef<'_, T> {
    MatRef::from_column_major_slice(v, r, c)
}
pub(super) fn mat_mut<T: Float>(v: &mut [T], r: usize, c: usize) -> MatMut<'_, T> {
    MatMut::from_column_major_slice_mut(v, r, c)
}
