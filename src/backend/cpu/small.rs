//! Unblocked Cholesky, solves and inverse for small matrices (n <= [`SMALL_N`]), where faer's
//! blocking and dispatch cost more than the arithmetic. Column-major (n, n), lower triangle;
//! every inner loop is an axpy or a dot over a contiguous column segment.
//!
//! - factor (left-looking): col_j -= sum_{k<j} L_jk col_k, then scale by 1 / sqrt(pivot);
//! - inverse: X = L^-1 by forward substitution on the identity, then K^-1 = X^T X (lower
//!   triangle), both in register blocks of 4 x W (see [`inverse`]).

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

/// Width of the register blocks of [`inverse`]: W consecutive entries of a row (one AVX2
/// register of f32, two of f64) times four rows or columns.
const W: usize = 8;

/// Row stride of [`inverse`]'s scratch: n rounded up to a multiple of W.
fn padded(n: usize) -> usize {
    n.div_ceil(W) * W
}

/// Entries of scratch [`inverse`] needs at size n: X = L^-1 by rows, each padded to a multiple
/// of W, and W more so that a block starting in the last row stays in bounds.
pub(crate) fn inverse_scratch(n: usize) -> usize {
    n * padded(n) + W
}

dispatch_avx2! {
    /// Writes the lower triangle of K^-1 = L^-T L^-1 into `inv` from the factor `l`; `x`
    /// holds [`inverse_scratch`] entries of scratch.
    pub(crate) fn inverse<T: Float>(l: &[T], n: usize, inv: &mut [T], x: &mut [T]) => inverse_body
}

/// Both passes run in register blocks: four rows (or columns) times W consecutive columns (or
/// rows), accumulated over k in registers from one contiguous W-entry load and four
/// broadcasts per k. X = L^-1 is kept by rows with explicit zeros above the diagonal (and in
/// the padding), so a block may start below the diagonal and sum over zeros instead of
/// testing where each lane's range begins.
#[inline(always)]
fn inverse_body<T: Float>(l: &[T], n: usize, inv: &mut [T], x: &mut [T]) {
    let (zero, one) = (T::from_f64(0.0), T::from_f64(1.0));
    let ld = padded(n);
    let x = &mut x[..n * ld + W];
    x.fill(zero);
    // X = L^-1 by forward substitution on the identity, four rows at a time:
    //   X_ic = (delta_ic - sum_{k < i} L_ik X_kc) / L_ii.
    // The rows k < i0 enter through the register block, the block's own earlier rows after it.
    for i0 in (0..n).step_by(4) {
        let rows = (n - i0).min(4);
        let dinv: [T; 4] = std::array::from_fn(|r| if r < rows { one / l[(i0 + r) * n + i0 + r] } else { one });
        let mut c0 = 0;
        // Columns past the block's last row are zero in its rows.
        while c0 < i0 + rows {
            // A constant argument lets the full block compile without the test for short ones.
            let acc = if rows == 4 { row_block(l, x, n, i0, 4, c0) } else { row_block(l, x, n, i0, rows, c0) };
            for (r, acc_r) in acc.iter().enumerate().take(rows) {
                let i = i0 + r;
                let mut row = [zero; W];
                for (v, (out, s)) in row.iter_mut().zip(acc_r).enumerate() {
                    *out = if c0 + v == i { one } else { zero } - *s;
                }
                for q in i0..i {
                    let lq = l[q * n + i];
                    for (out, v) in row.iter_mut().zip(&x[q * ld + c0..q * ld + c0 + W]) {
                        *out -= lq * *v;
                    }
                }
                for (dst, v) in x[i * ld + c0..i * ld + c0 + W].iter_mut().zip(row) {
                    *dst = v * dinv[r];
                }
            }
            c0 += W;
        }
    }
    // K^-1_ij = sum_{k >= i} X_ki X_kj for i >= j, four columns j at a time and W rows i per
    // block; X_ki = 0 for k < i, so every lane of a block sums from its first row.
    for j0 in (0..n).step_by(4) {
        let cols = (n - j0).min(4);
        let mut i0 = j0;
        while i0 < n {
            let mut acc = [[zero; W]; 4];
            for k in i0..n {
                let row = &x[k * ld..];
                // Columns past n are zero padding (j0 + 4 <= ld).
                let a: [T; 4] = row[j0..j0 + 4].try_into().expect("4 entries");
                let xk: &[T; W] = row[i0..i0 + W].try_into().expect("W entries");
                for (acc_c, a_c) in acc.iter_mut().zip(a) {
                    for (s, v) in acc_c.iter_mut().zip(xk) {
                        *s += a_c * *v;
                    }
                }
            }
            for (c, acc_c) in acc.iter().enumerate().take(cols) {
                let j = j0 + c;
                // Lanes above the diagonal or past n are not stored.
                let lo = j.max(i0);
                let hi = n.min(i0 + W);
                if lo < hi {
                    inv[j * n + lo..j * n + hi].copy_from_slice(&acc_c[lo - i0..hi - i0]);
                }
            }
            i0 += W;
        }
    }
}

/// sum_{c0 <= k < i0} L_{i0 + r, k} X_{k, c0 + v} for r < rows, v < W (zero rows past
/// `rows`); rows k < c0 of X are zero in these columns.
#[inline(always)]
fn row_block<T: Float>(l: &[T], x: &[T], n: usize, i0: usize, rows: usize, c0: usize) -> [[T; W]; 4] {
    let zero = T::from_f64(0.0);
    let ld = padded(n);
    let mut acc = [[zero; W]; 4];
    for k in c0..i0 {
        let a: [T; 4] = std::array::from_fn(|r| if r < rows { l[k * n + i0 + r] } else { zero });
        let xk: &[T; W] = x[k * ld + c0..k * ld + c0 + W].try_into().expect("W entries");
        for (acc_r, a_r) in acc.iter_mut().zip(a) {
            for (s, v) in acc_r.iter_mut().zip(xk) {
                *s += a_r * *v;
            }
        }
    }
    acc
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

    /// A = B B^T + n I (n, n), column-major, B with entries from a fixed pattern.
    fn spd(n: usize) -> Vec<f64> {
        let b: Vec<f64> = (0..n * n).map(|k| ((k * 37 % 11) as f64 - 5.0) / 7.0).collect();
        let mut a = vec![0.0; n * n];
        for i in 0..n {
            for j in 0..n {
                a[j * n + i] =
                    (0..n).map(|k| b[k * n + i] * b[k * n + j]).sum::<f64>() + if i == j { n as f64 } else { 0.0 };
            }
        }
        a
    }

    /// Factor, solve and inverse at every size of the small path (each register block's
    /// full and partial forms), in f64 and f32. The factor's and the inverse's upper triangles
    /// hold NaN, so reading one or leaving an entry of the lower triangle unwritten fails.
    #[test]
    fn factor_solve_and_inverse_match_definitions() {
        for n in 1..=SMALL_N {
            check::<f64>(n, 1e-12);
            if n % 5 == 0 || n < 12 {
                check::<f32>(n, 1e-5);
            }
        }
    }

    fn check<T: Float>(n: usize, tol: f64) {
        let a = spd(n);
        let mut l: Vec<T> = a.iter().map(|&v| T::from_f64(v)).collect();
        for j in 1..n {
            for i in 0..j {
                l[j * n + i] = T::from_f64(f64::NAN);
            }
        }
        assert!(cholesky(&mut l, n), "n = {n}");
        let lf = |i: usize, k: usize| l[k * n + i].to_f64();
        for i in 0..n {
            for j in 0..=i {
                let v: f64 = (0..=j).map(|k| lf(i, k) * lf(j, k)).sum();
                assert!((v - a[j * n + i]).abs() < tol * n as f64, "n = {n}: L L^T ({i}, {j})");
            }
        }
        let rhs: Vec<f64> = (0..n).map(|i| (i as f64).sin()).collect();
        let mut x: Vec<T> = rhs.iter().map(|&v| T::from_f64(v)).collect();
        solve(&l, n, &mut x);
        for i in 0..n {
            let v: f64 = (0..n).map(|j| a[j * n + i] * x[j].to_f64()).sum();
            assert!((v - rhs[i]).abs() < tol * n as f64, "n = {n}: A x = b at {i}");
        }
        let mut inv = vec![T::from_f64(f64::NAN); n * n];
        let mut tmp = vec![T::from_f64(f64::NAN); inverse_scratch(n)];
        inverse(&l, n, &mut inv, &mut tmp);
        // (A^-1 A)_ij = delta_ij, using the symmetric A^-1 from its lower triangle.
        let ainv = |i: usize, j: usize| if i >= j { inv[j * n + i] } else { inv[i * n + j] }.to_f64();
        for i in 0..n {
            for j in 0..n {
                let v: f64 = (0..n).map(|k| ainv(i, k) * a[j * n + k]).sum();
                let want = if i == j { 1.0 } else { 0.0 };
                assert!((v - want).abs() < tol * n as f64, "n = {n}: A^-1 A ({i}, {j}) = {v}");
            }
        }
        if n > 3 {
            let mut bad: Vec<T> = a.iter().map(|&v| T::from_f64(v)).collect();
            bad[3 * n + 3] = T::from_f64(-1.0);
            assert!(!cholesky(&mut bad, n));
        }
    }
}
