//! Gram matrices of any kernel on the CPU.
//!
//! Points are first centred and scaled by the lengthscales (xs_id = (x_id - c_d) / l_d, see
//! `backend::member`) and stored dimension-major ((D, n): one contiguous row per dimension), so
//! that r^2_ij = |xs_i - xs_j|^2 is built a column at a time with vectorised loops and the
//! gradient's (x_id - x_jd)^2 / l_d^2 is (xs_id - xs_jd)^2, with no division in the O(n^2)
//! loops. The kernel turns r^2 into phi (and the gradient weights) in one long vectorised pass
//! ([`crate::kernel::transform`]).

use super::simd::{add_sq_diff, coordinate_limit, dispatch_avx2};
use super::Float;
use crate::backend::member::MemberView;
use crate::data::{Dataset, Hyperparameters};
use crate::kernel::{transform, Kernel};
use ndarray::{ArrayView2, ArrayViewMut2};

/// Writes the n observed points of `member`, centred and scaled by its lengthscales, into
/// `xs` (dimension-major (D, n)), their residuals y - m into `r` and, when given, their known
/// noise variances into `yvar`. Masked entries are never read.
pub(crate) fn load_member<T: Float>(member: &MemberView, xs: &mut [T], r: &mut [T], yvar: Option<&mut [T]>) {
    let n = member.n();
    let ls = member.lengthscale();
    let centre = member.centre();
    let d = centre.len();
    match (member.raw_rows(), ls.as_slice()) {
        // Contiguous rows (the usual case): no per-element index arithmetic.
        (Some(flat), Some(ls)) => {
            for (slot, i) in member.observed().enumerate() {
                let row = &flat[i * d..(i + 1) * d];
                for (k, ((v, c), l)) in row.iter().zip(centre).zip(ls).enumerate() {
                    xs[k * n + slot] = scaled((v - c) / l);
                }
                r[slot] = T::from_f64(member.residual(i));
            }
        }
        _ => {
            for (slot, i) in member.observed().enumerate() {
                for (k, l) in ls.iter().enumerate() {
                    xs[k * n + slot] = scaled(member.x(i, k) / l);
                }
                r[slot] = T::from_f64(member.residual(i));
            }
        }
    }
    if let Some(yv) = yvar {
        for (slot, i) in member.observed().enumerate() {
            yv[slot] = T::from_f64(member.yvar(i));
        }
    }
}

/// Centres test points (m, D) as `member`'s training points and scales them by its
/// lengthscales into `out`, dimension-major (D, m).
pub(crate) fn scale_points<T: Float>(member: &MemberView, z: ArrayView2<f64>, out: &mut [T]) {
    let m = z.nrows();
    let ls = member.lengthscale();
    for i in 0..m {
        for (k, l) in ls.iter().enumerate() {
            out[k * m + i] = scaled(member.centred(z, i, k) / l);
        }
    }
}

/// A scaled coordinate u = (x - c) / l in T, held within [`coordinate_limit`] so that the
/// difference of two is never inf - inf = NaN: u is a division (never x times 1 / l, which
/// overflows for l below 1 / f64::MAX); a squared distance beyond
/// [`r2_limit`](crate::numeric::simd::r2_limit) is the kernel's limit 0. So every lengthscale
/// with |x - c| / l within T's range gives the defined answer (in f64 any l >= 1e-300 for data
/// within 1e7 of its centre; in f32, l >= |x - c| / 1.7e38). Beyond that range the points that
/// overflow on one side are held together (a documented limit, not a NaN).
#[inline(always)]
fn scaled<T: Float>(u: f64) -> T {
    let lim = coordinate_limit::<T>();
    T::from_f64(u.clamp(-lim, lim))
}

/// A kernel with its outputscale and shape, as the fill functions take it.
#[derive(Clone, Copy)]
pub(crate) struct Cov<T> {
    pub kernel: Kernel,
    pub s: T,
    pub alpha: f64,
}

impl<T: Float> Cov<T> {
    pub fn of(hyp: &Hyperparameters, b: usize) -> Self {
        Cov { kernel: hyp.kernel, s: T::from_f64(hyp.outputscale[b]), alpha: hyp.alpha_of(b) }
    }
}

/// Optional outputs of [`fill_kf`] for the gradient: the lengthscale weight s psi and, for rq,
/// s d phi / d log alpha, each (n, n) column-major, lower triangle.
pub(crate) struct GradWeights<'a, T> {
    pub psi: &'a mut [T],
    pub dalpha: Option<&'a mut [T]>,
}

dispatch_avx2! {
    /// Fills the lower triangle (diagonal included) of the noise-free Gram Kf (n, n),
    /// column-major with leading dimension n, from scaled points `xs` (D, n), and the gradient
    /// weights when asked for (not for rbf, whose weight is Kf itself). The strict lower
    /// triangle is first built packed in `scratch` (n (n - 1) / 2 entries), so that one long
    /// kernel pass serves every column (short columns would spend their time in scalar
    /// remainders).
    pub(crate) fn fill_kf<T: Float>(xs: &[T], n: usize, d: usize, cov: Cov<T>, kf: &mut [T], scratch: &mut [T], weights: Option<GradWeights<'_, T>>) => fill_kf_body
}

#[inline(always)]
fn fill_kf_body<T: Float>(
    xs: &[T],
    n: usize,
    d: usize,
    cov: Cov<T>,
    kf: &mut [T],
    scratch: &mut [T],
    weights: Option<GradWeights<'_, T>>,
) {
    let total = n * n.saturating_sub(1) / 2;
    let packed = &mut scratch[..total];
    packed.fill(T::from_f64(0.0));
    let mut off = 0;
    for j in 0..n {
        let len = n - j - 1;
        for k in 0..d {
            add_sq_diff(&mut packed[off..off + len], &xs[k * n + j + 1..k * n + n], xs[k * n + j]);
        }
        off += len;
    }
    let s = cov.s;
    match weights {
        None => transform(cov.kernel, packed, cov.alpha, None, None),
        Some(GradWeights { psi, mut dalpha }) => {
            transform(
                cov.kernel,
                packed,
                cov.alpha,
                Some(&mut psi[..total]),
                dalpha.as_deref_mut().map(|a| &mut a[..total]),
            );
            unpack_in_place(psi, n, s, T::from_f64(0.0));
            if let Some(a) = dalpha {
                unpack_in_place(a, n, s, T::from_f64(0.0));
            }
        }
    }
    let mut off = 0;
    for j in 0..n {
        let len = n - j - 1;
        kf[j * n + j] = s;
        for (dst, v) in kf[j * n + j + 1..(j + 1) * n].iter_mut().zip(&packed[off..off + len]) {
            *dst = s * *v;
        }
        off += len;
    }
}

/// Spreads a packed strict lower triangle held at the start of `a` into column-major (n, n)
/// lower-triangle storage in the same buffer, scaled by `s`, with `diag` on the diagonal.
/// Column j moves from offset j n - j (j + 1) / 2 to j n + j + 1, never backwards, so walking
/// the columns from the last one overwrites only entries already moved.
fn unpack_in_place<T: Float>(a: &mut [T], n: usize, s: T, diag: T) {
    for j in (0..n).rev() {
        let len = n - j - 1;
        let from = j * n - j * (j + 1) / 2;
        let to = j * n + j + 1;
        a.copy_within(from..from + len, to);
        for v in a[to..to + len].iter_mut() {
            *v *= s;
        }
        a[j * n + j] = diag;
    }
}

dispatch_avx2! {
    /// Cross covariance k(X, Z) (n, m), column-major with leading dimension n, from scaled
    /// points xs (D, n) and zs (D, m); and, when asked, the gradient weights s psi and s d phi /
    /// d log alpha of every pair in the same layout (as [`fill_kf`]'s, not for rbf).
    pub(crate) fn fill_cross<T: Float>(xs: &[T], n: usize, zs: &[T], m: usize, d: usize, cov: Cov<T>, out: &mut [T], weights: Option<GradWeights<'_, T>>) => fill_cross_body
}

#[inline(always)]
#[allow(clippy::too_many_arguments)]
fn fill_cross_body<T: Float>(
    xs: &[T],
    n: usize,
    zs: &[T],
    m: usize,
    d: usize,
    cov: Cov<T>,
    out: &mut [T],
    weights: Option<GradWeights<'_, T>>,
) {
    let all = &mut out[..n * m];
    all.fill(T::from_f64(0.0));
    for j in 0..m {
        let col = &mut all[j * n..(j + 1) * n];
        for k in 0..d {
            add_sq_diff(col, &xs[k * n..k * n + n], zs[k * m + j]);
        }
    }
    match weights {
        None => transform(cov.kernel, all, cov.alpha, None, None),
        Some(GradWeights { psi, dalpha }) => {
            let psi = &mut psi[..n * m];
            let mut dalpha = dalpha.map(|a| &mut a[..n * m]);
            transform(cov.kernel, all, cov.alpha, Some(&mut *psi), dalpha.as_deref_mut());
            for v in psi.iter_mut().chain(dalpha.into_iter().flatten()) {
                *v *= cov.s;
            }
        }
    }
    for v in all.iter_mut() {
        *v *= cov.s;
    }
}

/// The padded Gram K = Kf + diag(noise + yvar) of member `b` (N, N), with identity rows and
/// columns at masked points, computed in precision T.
pub(crate) fn padded_gram<T: Float>(data: &Dataset, hyp: &Hyperparameters, b: usize, mut out: ArrayViewMut2<f64>) {
    let member = MemberView::new(data, hyp, b);
    let n = member.n();
    let d = data.n_dims();
    let mut xs = vec![T::from_f64(0.0); n * d];
    let mut r = vec![T::from_f64(0.0); n];
    let mut yv = vec![T::from_f64(0.0); n];
    load_member(&member, &mut xs, &mut r, Some(&mut yv));
    let cov = Cov::<T>::of(hyp, b);
    let mut kf = vec![T::from_f64(0.0); n * n];
    let mut scratch = vec![T::from_f64(0.0); n * n];
    fill_kf(&xs, n, d, cov, &mut kf, &mut scratch, None);
    let obs: Vec<usize> = member.observed().collect();
    out.fill(0.0);
    for i in 0..data.n_points() {
        if !data.is_observed(b, i) {
            out[[i, i]] = 1.0;
        }
    }
    let noise = T::from_f64(hyp.noise[b]);
    for (jj, &j) in obs.iter().enumerate() {
        for (ii, &i) in obs.iter().enumerate().skip(jj) {
            let v = kf[jj * n + ii].to_f64();
            out[[i, j]] = v;
            out[[j, i]] = v;
        }
        out[[j, j]] = (cov.s + noise + yv[jj]).to_f64();
    }
}
