//! Exact marginal log-likelihood and its analytic gradient for one member.
//!
//! With K = Kf + (sigma2 + jitter) I = L L^T, r = y - m and alpha = K^-1 r:
//!   mll = -0.5 r^T alpha - sum_i log L_ii - (n / 2) log(2 pi).
//! With W = alpha alpha^T - K^-1 (symmetric, so only its lower triangle is visited):
//!   d mll / d log l_d    = 0.5 sum_ij W_ij Kf_ij (xs_id - xs_jd)^2
//!   d mll / d log s      = 0.5 sum_ij W_ij Kf_ij
//!   d mll / d log sigma2 = 0.5 sigma2 tr W
//!   d mll / d m          = sum_i alpha_i

use super::gram::{fill_kf, load_member};
use super::simd::{dispatch_avx2, sum, weighted_sq_diff};
use super::{cholesky::factor_with_jitter, small, Float, MemberMll, Workspace};
use crate::backend::MllOptions;
use crate::data::{Dataset, Hyperparameters, Status};
use faer::{MatMut, MatRef, Par};

const LN_2PI: f64 = 1.837_877_066_409_345_5;

/// MLL of member `b`; its lengthscale gradient goes to `grad_ls` (D,), the rest is returned.
pub(crate) fn member_mll<T: Float>(
    data: &Dataset,
    hyp: &Hyperparameters,
    b: usize,
    opts: &MllOptions,
    par: Par,
    grad_ls: &mut [f64],
) -> MemberMll {
    let d = data.n_dims();
    let n = data.n_observed(b);
    let s = hyp.outputscale[b];
    let noise = hyp.noise[b];
    grad_ls.fill(0.0);
    let failed = |grad_ls: &mut [f64], jitter: f64| {
        grad_ls.fill(f64::NAN);
        MemberMll {
            mll: f64::NAN,
            grad_os: f64::NAN,
            grad_noise: f64::NAN,
            grad_mean: f64::NAN,
            status: Status::Failed,
            jitter,
        }
    };
    if n == 0 {
        return MemberMll { mll: 0.0, grad_os: 0.0, grad_noise: 0.0, grad_mean: 0.0, status: Status::Ok, jitter: 0.0 };
    }
    if !(s.is_finite() && noise.is_finite() && hyp.mean[b].is_finite()) {
        return failed(grad_ls, 0.0);
    }
    T::with_workspace(|ws| {
        ws.reserve(n, d, 0, par);
        let Workspace { xs, alpha, kf, chol, inv, col, mem, .. } = ws;
        load_member::<T>(data, hyp, b, n, xs, alpha);
        let st = T::from_f64(s);
        fill_kf(xs, n, d, st, kf, inv);
        let noise_t = T::from_f64(noise);
        let (status, jitter) = factor_with_jitter::<T>(chol, n, s + noise, opts.jitter, par, mem, |a, jit| {
            for j in 0..n {
                a[j * n + j..(j + 1) * n].copy_from_slice(&kf[j * n + j..(j + 1) * n]);
                a[j * n + j] += noise_t + jit;
            }
        });
        if status == Status::Failed {
            return failed(grad_ls, jitter);
        }
        // alpha holds r; quad = r^T K^-1 r.
        let small = n <= small::SMALL_N;
        let r_copy = &mut col[..n];
        r_copy.copy_from_slice(&alpha[..n]);
        if small {
            small::solve(&chol[..n * n], n, &mut alpha[..n]);
        } else {
            let l = MatRef::from_column_major_slice(&chol[..n * n], n, n);
            let rhs = MatMut::from_column_major_slice_mut(&mut alpha[..n], n, 1);
            faer::linalg::cholesky::llt::solve::solve_in_place(l, rhs, par, Workspace::<T>::stack(mem));
        }
        let quad: f64 = r_copy.iter().zip(&alpha[..n]).map(|(r, a)| r.to_f64() * a.to_f64()).sum();
        let logdet_half: f64 = (0..n).map(|i| chol[i * n + i].to_f64().ln()).sum();
        let mll = -0.5 * quad - logdet_half - 0.5 * n as f64 * LN_2PI;
        let mut out = MemberMll {
            mll,
            grad_os: 0.0,
            grad_noise: 0.0,
            grad_mean: alpha[..n].iter().map(|v| v.to_f64()).sum(),
            status,
            jitter,
        };
        if opts.gradient {
            if small {
                // Overwrites the factor (its log-determinant is already taken).
                small::inverse(&mut chol[..n * n], n, &mut inv[..n * n], &mut col[..n]);
            } else {
                let l = MatRef::from_column_major_slice(&chol[..n * n], n, n);
                let dst = MatMut::from_column_major_slice_mut(&mut inv[..n * n], n, n);
                faer::linalg::cholesky::llt::inverse::inverse(dst, l, par, Workspace::<T>::stack(mem));
            }
            let (g_s, tr_w) = gradient_pass::<T>(n, d, alpha, inv, kf, xs, col, st, grad_ls);
            for g in grad_ls.iter_mut() {
                *g *= 0.5;
            }
            out.grad_os = 0.5 * g_s;
            out.grad_noise = 0.5 * noise * tr_w;
        }
        let finite = out.mll.is_finite()
            && out.grad_os.is_finite()
            && out.grad_noise.is_finite()
            && out.grad_mean.is_finite()
            && grad_ls.iter().all(|v| v.is_finite());
        if finite {
            out
        } else {
            failed(grad_ls, jitter)
        }
    })
}

dispatch_avx2! {
    /// The O(n^2 D) pass over the lower triangle: accumulates 2 x the lengthscale sums into
    /// `g_ls` (D,) and returns (2 x the outputscale sum, tr W). Column j's weights
    /// w_i = W_ij Kf_ij (i > j) go through `col`; off-diagonal terms count twice (W and Kf are
    /// symmetric). Column sums are taken in T, then accumulated in f64.
    fn gradient_pass<T: Float>(n: usize, d: usize, alpha: &[T], inv: &[T], kf: &[T], xs: &[T], col: &mut [T], st: T, g_ls: &mut [f64]) -> (f64, f64) => gradient_pass_body
}

#[allow(clippy::too_many_arguments)]
#[inline(always)]
fn gradient_pass_body<T: Float>(
    n: usize,
    d: usize,
    alpha: &[T],
    inv: &[T],
    kf: &[T],
    xs: &[T],
    col: &mut [T],
    st: T,
    g_ls: &mut [f64],
) -> (f64, f64) {
    debug_assert_eq!(g_ls.len(), d);
    let mut g_s = 0.0f64;
    let mut tr_w = 0.0f64;
    for j in 0..n {
        let aj = alpha[j];
        let w_jj = aj * aj - inv[j * n + j];
        tr_w += w_jj.to_f64();
        g_s += (w_jj * st).to_f64();
        let len = n - j - 1;
        if len == 0 {
            continue;
        }
        let w = &mut col[..len];
        let tail = j * n + j + 1..(j + 1) * n;
        for (((wi, a), iv), k) in w.iter_mut().zip(&alpha[j + 1..n]).zip(&inv[tail.clone()]).zip(&kf[tail]) {
            *wi = (*a * aj - *iv) * *k;
        }
        g_s += 2.0 * sum(w).to_f64();
        for (k, g) in g_ls.iter_mut().enumerate() {
            *g += 2.0 * weighted_sq_diff(w, &xs[k * n + j + 1..k * n + n], xs[k * n + j]).to_f64();
        }
    }
    (g_s, tr_w)
}
