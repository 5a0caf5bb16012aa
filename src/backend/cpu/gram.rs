//! ARD-RBF Gram matrices on the CPU.
//!
//! Points are first scaled by the lengthscales (xs_id = x_id / l_d) and stored dimension-major
//! ((D, n): one contiguous row per dimension), so that Kf_ij = s exp(-0.5 |xs_i - xs_j|^2) is
//! built a column at a time with vectorised loops and the gradient's (x_id - x_jd)^2 / l_d^2
//! is (xs_id - xs_jd)^2, with no division in the O(n^2) loops.

use super::simd::{add_sq_diff, dispatch_avx2, exp_in_place};
use super::Float;
use crate::data::{Dataset, Hyperparameters};
use ndarray::{ArrayView1, ArrayView2, ArrayViewMut2};

/// Writes the n observed points of member `b`, scaled by its lengthscales, into `xs`
/// (dimension-major (D, n)) and their residuals y - m into `r`. Masked entries are never read.
pub(crate) fn load_member<T: Float>(
    data: &Dataset,
    hyp: &Hyperparameters,
    b: usize,
    n: usize,
    xs: &mut [T],
    r: &mut [T],
) {
    let d = data.n_dims();
    let xb = data.x().member(b);
    let y = data.y_member(b);
    let ls = hyp.lengthscale.row(b);
    let m = hyp.mean[b];
    let mut i_obs = 0;
    for i in 0..data.n_points() {
        if !data.is_observed(b, i) {
            continue;
        }
        for k in 0..d {
            xs[k * n + i_obs] = T::from_f64(xb[[i, k]] / ls[k]);
        }
        r[i_obs] = T::from_f64(y[i] - m);
        i_obs += 1;
    }
    debug_assert_eq!(i_obs, n);
}

/// Scales points (m, D) by lengthscales (D,) into `out`, dimension-major (D, m).
pub(crate) fn scale_points<T: Float>(x: ArrayView2<f64>, ls: ArrayView1<f64>, out: &mut [T]) {
    let m = x.nrows();
    for (i, row) in x.outer_iter().enumerate() {
        for (k, l) in ls.iter().enumerate() {
            out[k * m + i] = T::from_f64(row[k] / l);
        }
    }
}

/// col[i] = s exp(-0.5 sum_k (a_k[i] - c_k)^2), where a_k is row k of the dimension-major
/// `pts` (leading dimension `ld`, rows starting at `start`) and c_k = `centre(k)`.
#[inline(always)]
fn rbf_column<T: Float>(
    col: &mut [T],
    pts: &[T],
    ld: usize,
    start: usize,
    d: usize,
    s: T,
    centre: impl Fn(usize) -> T,
) {
    let len = col.len();
    col.fill(T::from_f64(0.0));
    for k in 0..d {
        add_sq_diff(col, &pts[k * ld + start..k * ld + start + len], centre(k));
    }
    let half = T::from_f64(-0.5);
    for v in col.iter_mut() {
        *v *= half;
    }
    exp_in_place(col);
    for v in col.iter_mut() {
        *v *= s;
    }
}

dispatch_avx2! {
    /// Fills the lower triangle (diagonal included) of the noise-free Gram Kf (n, n),
    /// column-major with leading dimension n, from scaled points `xs` (D, n). The strict lower
    /// triangle is first built packed in `scratch` (n (n - 1) / 2 entries), so that one long
    /// exp pass serves every column (short columns would spend their time in scalar
    /// remainders).
    pub(crate) fn fill_kf<T: Float>(xs: &[T], n: usize, d: usize, s: T, kf: &mut [T], scratch: &mut [T]) => fill_kf_body
}

#[inline(always)]
fn fill_kf_body<T: Float>(xs: &[T], n: usize, d: usize, s: T, kf: &mut [T], scratch: &mut [T]) {
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
    let half = T::from_f64(-0.5);
    for v in packed.iter_mut() {
        *v *= half;
    }
    exp_in_place(packed);
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

dispatch_avx2! {
    /// Cross covariance k(X, Z) (n, m), column-major with leading dimension n, from scaled
    /// points xs (D, n) and zs (D, m).
    pub(crate) fn fill_cross<T: Float>(xs: &[T], n: usize, zs: &[T], m: usize, d: usize, s: T, out: &mut [T]) => fill_cross_body
}

#[inline(always)]
fn fill_cross_body<T: Float>(xs: &[T], n: usize, zs: &[T], m: usize, d: usize, s: T, out: &mut [T]) {
    for j in 0..m {
        rbf_column(&mut out[j * n..(j + 1) * n], xs, n, 0, d, s, |k| zs[k * m + j]);
    }
}

/// The padded Gram K = Kf + noise I of member `b` (N, N), with identity rows and columns at
/// masked points, computed in precision T.
pub(crate) fn padded_gram<T: Float>(data: &Dataset, hyp: &Hyperparameters, b: usize, mut out: ArrayViewMut2<f64>) {
    let n = data.n_observed(b);
    let d = data.n_dims();
    let mut xs = vec![T::from_f64(0.0); n * d];
    let mut r = vec![T::from_f64(0.0); n];
    load_member(data, hyp, b, n, &mut xs, &mut r);
    let s = T::from_f64(hyp.outputscale[b]);
    let mut kf = vec![T::from_f64(0.0); n * n];
    let mut scratch = vec![T::from_f64(0.0); n * n];
    fill_kf(&xs, n, d, s, &mut kf, &mut scratch);
    let obs = data.observed(b);
    out.fill(0.0);
    for i in 0..data.n_points() {
        if !data.is_observed(b, i) {
            out[[i, i]] = 1.0;
        }
    }
    for (jj, &j) in obs.iter().enumerate() {
        for (ii, &i) in obs.iter().enumerate().skip(jj) {
            let v = kf[jj * n + ii].to_f64();
            out[[i, j]] = v;
            out[[j, i]] = v;
        }
        out[[j, j]] = (s + T::from_f64(hyp.noise[b])).to_f64();
    }
}
