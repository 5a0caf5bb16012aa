//! ARD-RBF Gram matrices on the CPU.
//!
//! Points are first scaled by the lengthscales (xs_id = x_id / l_d), so that
//! Kf_ij = s exp(-0.5 |xs_i - xs_j|^2) and the gradient's (x_id - x_jd)^2 / l_d^2 is
//! (xs_id - xs_jd)^2, with no division in the O(n^2) loops.

use super::Float;
use crate::data::{Dataset, Hyperparameters};
use ndarray::ArrayViewMut2;

/// Writes the observed points of member `b`, scaled by its lengthscales, into `xs` (row-major
/// (n, D)) and their residuals y - m into `r`. Returns n, the number of observed points.
/// Masked entries are never read.
pub(crate) fn load_member<T: Float>(data: &Dataset, hyp: &Hyperparameters, b: usize, xs: &mut [T], r: &mut [T]) -> usize {
    let d = data.n_dims();
    let xb = data.x().member(b);
    let y = data.y_member(b);
    let ls = hyp.lengthscale.row(b);
    let m = hyp.mean[b];
    let mut n = 0;
    for i in 0..data.n_points() {
        if !data.is_observed(b, i) {
            continue;
        }
        for k in 0..d {
            xs[n * d + k] = T::from_f64(xb[[i, k]] / ls[k]);
        }
        r[n] = T::from_f64(y[i] - m);
        n += 1;
    }
    n
}

/// Scales arbitrary points (test inputs) by the lengthscales of member `b`: row-major (m, D).
pub(crate) fn scale_points<T: Float>(x: ndarray::ArrayView2<f64>, ls: ndarray::ArrayView1<f64>, out: &mut [T]) {
    let d = ls.len();
    for (i, row) in x.outer_iter().enumerate() {
        for k in 0..d {
            out[i * d + k] = T::from_f64(row[k] / ls[k]);
        }
    }
}

#[inline(always)]
pub(crate) fn sqdist<T: Float>(a: &[T], b: &[T]) -> T {
    let mut acc = T::from_f64(0.0);
    for (u, v) in a.iter().zip(b) {
        let t = *u - *v;
        acc += t * t;
    }
    acc
}

/// Fills the lower triangle (diagonal included) of the noise-free Gram Kf (n, n), column-major
/// with leading dimension n, from scaled points `xs` (n, D).
pub(crate) fn fill_kf<T: Float>(xs: &[T], n: usize, d: usize, s: T, kf: &mut [T]) {
    let half = T::from_f64(-0.5);
    for j in 0..n {
        let xj = &xs[j * d..(j + 1) * d];
        let col = &mut kf[j * n..(j + 1) * n];
        col[j] = s;
        for i in j + 1..n {
            col[i] = s * (half * sqdist(&xs[i * d..(i + 1) * d], xj)).exp();
        }
    }
}

/// Cross covariance k(X, Z) (n, m), column-major with leading dimension n, from scaled points.
pub(crate) fn fill_cross<T: Float>(xs: &[T], n: usize, zs: &[T], m: usize, d: usize, s: T, out: &mut [T]) {
    let half = T::from_f64(-0.5);
    for j in 0..m {
        let zj = &zs[j * d..(j + 1) * d];
        for i in 0..n {
            out[j * n + i] = s * (half * sqdist(&xs[i * d..(i + 1) * d], zj)).exp();
        }
    }
}

/// The padded Gram K = Kf + noise I of member `b` (N, N), with identity rows and columns at
/// masked points, computed in precision T.
pub(crate) fn padded_gram<T: Float>(data: &Dataset, hyp: &Hyperparameters, b: usize, mut out: ArrayViewMut2<f64>) {
    let (nn, d) = (data.n_points(), data.n_dims());
    let xb = data.x().member(b);
    let ls = hyp.lengthscale.row(b);
    let s = T::from_f64(hyp.outputscale[b]);
    let noise = T::from_f64(hyp.noise[b]);
    let mut xs = vec![T::from_f64(0.0); nn * d];
    scale_points(xb, ls, &mut xs);
    let half = T::from_f64(-0.5);
    for i in 0..nn {
        let oi = data.is_observed(b, i);
        for j in 0..=i {
            let v = if !oi || !data.is_observed(b, j) {
                if i == j {
                    1.0
                } else {
                    0.0
                }
            } else if i == j {
                (s + noise).to_f64()
            } else {
                (s * (half * sqdist(&xs[i * d..(i + 1) * d], &xs[j * d..(j + 1) * d])).exp()).to_f64()
            };
            out[[i, j]] = v;
            out[[j, i]] = v;
        }
    }
}
