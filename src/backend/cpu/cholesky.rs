//! Cholesky factorisation with per-member jitter escalation (docs/design.md section 4).
//!
//! Attempt 0 factorises K as given; after a non-positive or non-finite pivot, attempt k adds
//! `policy.jitter(k, mean diag K)` to the diagonal, for k = 1..=retries. The status says which
//! attempt succeeded (Ok for the first, Jitter for a later one) or Failed.

use super::{small, Float, Workspace};
use crate::backend::JitterPolicy;
use crate::data::{Precision, Status};
use crate::error::Result;
use faer::{MatMut, Par};
use ndarray::{ArrayView2, ArrayViewMut2};

/// Factorises the matrix whose lower triangle `fill` writes into `a` (column-major (n, n)),
/// adding `base_diag` and then escalating jitter. `fill` is called once per attempt (faer
/// overwrites the matrix). Returns (status, jitter); on failure `a` holds garbage.
pub(crate) fn factor_with_jitter<T: Float>(
    a: &mut [T],
    n: usize,
    mean_diag: f64,
    policy: JitterPolicy,
    par: Par,
    mem: &mut Option<faer::dyn_stack::MemBuffer>,
    mut fill: impl FnMut(&mut [T], T),
) -> (Status, f64) {
    if !mean_diag.is_finite() {
        return (Status::Failed, 0.0);
    }
    let mut jitter = 0.0;
    for k in 0..=policy.retries {
        jitter = policy.jitter(k, mean_diag);
        fill(a, T::from_f64(jitter));
        let ok = if n <= small::SMALL_N {
            small::cholesky(&mut a[..n * n], n)
        } else {
            let mat = MatMut::from_column_major_slice_mut(&mut a[..n * n], n, n);
            let stack = Workspace::<T>::stack(mem);
            faer::linalg::cholesky::llt::factor::cholesky_in_place(
                mat,
                Default::default(),
                par,
                stack,
                Default::default(),
            )
            .is_ok()
        };
        // faer accepts a NaN pivot in some paths: check the diagonal explicitly.
        if ok
            && (0..n).all(|i| {
                let v = a[i * n + i];
                v.is_finite() && v > T::from_f64(0.0)
            })
        {
            return (if k == 0 { Status::Ok } else { Status::Jitter }, jitter);
        }
    }
    (Status::Failed, jitter)
}

/// Factorises one dense (n, n) matrix given in f64 (lower triangle read) into `out`, lower
/// triangular with zeros above the diagonal, NaN when it fails.
pub(crate) fn factor_dense(
    a: ArrayView2<f64>,
    out: ArrayViewMut2<f64>,
    precision: Precision,
    policy: JitterPolicy,
    par: Par,
) -> Result<(Status, f64)> {
    match precision {
        Precision::F64 => factor_dense_t::<f64>(a, out, policy, par),
        Precision::F32 => factor_dense_t::<f32>(a, out, policy, par),
    }
}

fn factor_dense_t<T: Float>(
    a: ArrayView2<f64>,
    mut out: ArrayViewMut2<f64>,
    policy: JitterPolicy,
    par: Par,
) -> Result<(Status, f64)> {
    let n = a.nrows();
    if n == 0 {
        return Ok((Status::Ok, 0.0));
    }
    let mean_diag = (0..n).map(|i| a[[i, i]]).sum::<f64>() / n as f64;
    T::with_workspace(|ws| {
        ws.reserve(n, 1, 0, par)?;
        let Workspace { chol, mem, .. } = ws;
        let (status, jitter) = factor_with_jitter::<T>(chol, n, mean_diag, policy, par, mem, |buf, jit| {
            for j in 0..n {
                for i in j..n {
                    buf[j * n + i] = T::from_f64(a[[i, j]]);
                }
                buf[j * n + j] += jit;
            }
        });
        for j in 0..n {
            for i in 0..n {
                out[[i, j]] = if status == Status::Failed {
                    f64::NAN
                } else if i >= j {
                    chol[j * n + i].to_f64()
                } else {
                    0.0
                };
            }
        }
        ws.release_if_large();
        Ok((status, jitter))
    })
}
