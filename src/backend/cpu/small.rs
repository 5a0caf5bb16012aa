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
        // Four earlier columns at a time share one pass over column j.
        let mut k = 0;
        while k + 4 <= j {
            let a = [-done[k * n + j], -done[(k + 1) * n + j], -done[(k + 2) * n + j], -done[(k + 3) * n + j]];
            let col = |c: usize| &done[(k + c) * n + j..(k + c) * n + n];
            axpy4(cj, a, col(0), col(1), col(2), col(3));
            k += 4;
        }
        for k in k..j {
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
        // t = X_{j+1:, j+1:} L_{j+1:, j}: columns k > j of X (already inverted) weighted by
        // L_kj; t[r - j - 1] holds row r. Four columns at a time share one pass over t.
        let mut k = j + 1;
        while k < n {
            if k + 4 <= n {
                let a = [l[j * n + k], l[j * n + k + 1], l[j * n + k + 2], l[j * n + k + 3]];
                // Rows k .. k + 2 are below the diagonal of only some of the four columns.
                for c in 0..3 {
                    for r in k + c..k + 3 {
                        t[r - j - 1] += a[c] * l[(k + c) * n + r];
                    }
                }
                let rows = k + 3..n;
                let col = |c: usize| &l[(k + c) * n + rows.start..(k + c) * n + rows.end];
                axpy4(&mut t[rows.start - j - 1..], a, col(0), col(1), col(2), col(3));
                k += 4;
            } else {
                let lkj = l[j * n + k];
                for (ti, xi) in t[k - j - 1..].iter_mut().zip(&l[k * n + k..(k + 1) * n]) {
                    *ti += lkj * *xi;
                }
                k += 1;
            }
        }
        l[j * n + j] = xjj;
        for (dst, ti) in l[j * n + j + 1..(j + 1) * n].iter_mut().zip(t.iter()) {
            *dst = -(*ti) * xjj;
        }
    }
    // K^-1 = X^T X as a sum of row outer products, with the rows of X made contiguous: row k
    // of X goes to column k of inv's strict upper triangle (U = X^T) and its diagonal entry to
    // tmp[k]; column j of K^-1 (rows >= j) then accumulates X_kj * X_{k, j..=k} over k >= j.
    // Writes touch only the lower triangle, reads only the upper.
    for k in 0..n {
        tmp[k] = l[k * n + k];
        for i in 0..k {
            inv[k * n + i] = l[i * n + k];
        }
    }
    for j in 0..n {
        inv[j * n + j..(j + 1) * n].fill(zero);
        inv[j * n + j] = tmp[j] * tmp[j];
        let mut k = j + 1;
        while k < n {
            let width = if k + 4 <= n { 4 } else { 1 };
            let (lo, hi) = inv.split_at_mut(k * n);
            if width == 4 {
                let a = [hi[j], hi[n + j], hi[2 * n + j], hi[3 * n + j]];
                // Rows j .. k - 1 get all four columns; rows k .. k + 2 only the later ones.
                let col = |c: usize| &hi[c * n + j..c * n + k];
                axpy4(&mut lo[j * n + j..j * n + k], a, col(0), col(1), col(2), col(3));
                for c in 1..4 {
                    for r in k..k + c {
                        lo[j * n + r] += a[c] * hi[c * n + r];
                    }
                }
                for c in 0..4 {
                    lo[j * n + k + c] += a[c] * tmp[k + c];
                }
            } else {
                let a = hi[j];
                for (d, u) in lo[j * n + j..j * n + k].iter_mut().zip(&hi[j..k]) {
                    *d += a * *u;
                }
                lo[j * n + k] += a * tmp[k];
            }
            k += width;
        }
    }
}

/// dst[i] += a0 x0[i] + a1 x1[i] + a2 x2[i] + a3 x3[i]: one pass over dst for four columns.
#[inline(always)]
fn axpy4<T: Float>(dst: &mut [T], a: [T; 4], x0: &[T], x1: &[T], x2: &[T], x3: &[T]) {
    let len = dst.len().min(x0.len()).min(x1.len()).min(x2.len()).min(x3.len());
    let (dst, x0, x1, x2, x3) = (&mut dst[..len], &x0[..len], &x1[..len], &x2[..len], &x3[..len]);
    for i in 0..len {
        dst[i] += (a[0] * x0[i] + a[1] * x1[i]) + (a[2] * x2[i] + a[3] * x3[i]);
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
