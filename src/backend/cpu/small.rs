//! Unblocked Cholesky, solves and inverse for small matrices (n <= [`SMALL_N`]), where faer's
//! blocking and dispatch cost more than the arithmetic. Column-major (n, n), lower triangle;
//! every inner loop is an axpy or a dot over a contiguous column segment.
//!
//! - factor (left-looking): col_j -= sum_{k<j} L_jk col_k, then scale by 1 / sqrt(pivot);
//! - inverse: X = L^-1 in place, last column first (X_{j+1:, j} = -X_{j+1:, j+1:} L_{j+1:, j} / L_jj),
//!   then K^-1 = X^T X (lower triangle: a dot of two column segments per entry).

use super::simd::{dispatch_avx2, dot};
use super::Float;

/// Matrices up to this size take the unblocked path.
pub(crate) const SMALL_N: usize = 96;

dispatch_avx2! {
    /// Factorises the lower triangle of `a` in place; false on a non-positive or non-finite
    /// pivot.
    pub(crate) fn cholesky<T: Float>(a: &mut [T], n: usize) -> bool => cholesky_body
}

#[inline(always)]
fn cholesky_body<T: Float>(a: &mut [T], n: usize) -> bool {
    let zero = T::from_f64(0.0);
    for j in 0..n {
        let (done, rest) = a.split_at_mut(j * n);
        let cj = &mut rest[j..n];
        for k in 0..j {
            let ljk = done[k * n + j];
            let ck = &done[k * n + j..k * n + n];
            for (c, l) in cj.iter_mut().zip(ck) {
                *c -= ljk * *l;
            }
        }
        let p = cj[0];
        if !(p > zero && p.is_finite()) {
            return false;
        }
        let d = p.sqrt();
        cj[0] = d;
        let inv = T::from_f64(1.0) / d;
        for c in cj[1..].iter_mut() {
            *c *= inv;
        }
    }
    true
}

/// Solves L L^T x = b in place (b in `x`).
pub(crate) fn solve<T: Float>(l: &[T], n: usize, x: &mut [T]) {
    // Forward: L z = b, column-oriented.
    for k in 0..n {
        let v = x[k] / l[k * n + k];
        x[k] = v;
        for (xi, li) in x[k + 1..n].iter_mut().zip(&l[k * n + k + 1..(k + 1) * n]) {
            *xi -= v * *li;
        }
    }
    // Backward: L^T x = z, row k of L^T is column k of L.
    for k in (0..n).rev() {
        let s = dot(&l[k * n + k + 1..(k + 1) * n], &x[k + 1..n]);
        x[k] = (x[k] - s) / l[k * n + k];
    }
}

dispatch_avx2! {
    /// Overwrites the factor `l` with L^-1 and writes the lower triangle of K^-1 = L^-T L^-1
    /// into `inv`; `tmp` holds n entries of scratch.
    pub(crate) fn inverse<T: Float>(l: &mut [T], n: usize, inv: &mut [T], tmp: &mut [T]) => inverse_body
}

#[inline(always)]
fn inverse_body<T: Float>(l: &mut [T], n: usize, inv: &mut [T], tmp: &mut [T]) {
    let zero = T::from_f64(0.0);
    for j in (0..n).rev() {
        let xjj = T::from_f64(1.0) / l[j * n + j];
        let len = n - j - 1;
        let t = &mut tmp[..len];
        t.fill(zero);
        // t = X_{j+1:, j+1:} L_{j+1:, j}: columns k > j of X (already inverted) weighted by L_kj.
        for k in j + 1..n {
            let lkj = l[j * n + k];
            let off = k - j - 1;
            for (ti, xi) in t[off..].iter_mut().zip(&l[k * n + k..(k + 1) * n]) {
                *ti += lkj * *xi;
            }
        }
        l[j * n + j] = xjj;
        for (dst, ti) in l[j * n + j + 1..(j + 1) * n].iter_mut().zip(t.iter()) {
            *dst = -(*ti) * xjj;
        }
    }
    // K^-1 = X^T X as a sum of row outer products, with the rows of X made contiguous: row k
    // of X goes to column k of inv's strict upper triangle (U = X^T) and its diagonal entry to
    // tmp[k]; column j of K^-1 (rows >= j) then accumulates X_kj * X_{k, j..=k} over k >= j,
    // an axpy per (j, k). Writes touch only the lower triangle, reads only the upper.
    for k in 0..n {
        tmp[k] = l[k * n + k];
        for i in 0..k {
            inv[k * n + i] = l[i * n + k];
        }
    }
    for j in 0..n {
        inv[j * n + j..(j + 1) * n].fill(zero);
        inv[j * n + j] = tmp[j] * tmp[j];
        for k in j + 1..n {
            let a = inv[k * n + j];
            let (lo, hi) = inv.split_at_mut(k * n);
            for (d, u) in lo[j * n + j..j * n + k].iter_mut().zip(&hi[j..k]) {
                *d += a * *u;
            }
            lo[j * n + k] += a * tmp[k];
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn factor_solve_and_inverse_match_definitions() {
        let n = 9;
        // A = B B^T + n I, B with entries from a fixed pattern.
        let b: Vec<f64> = (0..n * n).map(|k| ((k * 37 % 11) as f64 - 5.0) / 7.0).collect();
        let mut a = vec![0.0; n * n];
        for i in 0..n {
            for j in 0..n {
                a[j * n + i] =
                    (0..n).map(|k| b[k * n + i] * b[k * n + j]).sum::<f64>() + if i == j { n as f64 } else { 0.0 };
            }
        }
        let mut l = a.clone();
        assert!(cholesky(&mut l, n));
        for i in 0..n {
            for j in 0..=i {
                let v: f64 = (0..=j).map(|k| l[k * n + i] * l[k * n + j]).sum();
                assert!((v - a[j * n + i]).abs() < 1e-12, "L L^T ({i}, {j})");
            }
        }
        let rhs: Vec<f64> = (0..n).map(|i| (i as f64).sin()).collect();
        let mut x = rhs.clone();
        solve(&l, n, &mut x);
        for i in 0..n {
            let v: f64 = (0..n).map(|j| a[j * n + i] * x[j]).sum();
            assert!((v - rhs[i]).abs() < 1e-12, "A x = b at {i}");
        }
        let (mut inv, mut tmp) = (vec![0.0; n * n], vec![0.0; n]);
        inverse(&mut l, n, &mut inv, &mut tmp);
        // (A^-1 A)_ij = delta_ij, using the symmetric A^-1 from its lower triangle.
        let ainv = |i: usize, j: usize| if i >= j { inv[j * n + i] } else { inv[i * n + j] };
        for i in 0..n {
            for j in 0..n {
                let v: f64 = (0..n).map(|k| ainv(i, k) * a[j * n + k]).sum();
                assert!((v - if i == j { 1.0 } else { 0.0 }).abs() < 1e-12, "A^-1 A ({i}, {j}) = {v}");
            }
        }
        let mut bad = a.clone();
        bad[3 * n + 3] = -1.0;
        assert!(!cholesky(&mut bad, n));
    }
}
