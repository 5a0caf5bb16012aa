//! Exact marginal log-likelihood and its analytic gradient for one member, any kernel.
//!
//! With K = Kf + diag(sigma2 + yvar + jitter) = L L^T, r = y - m and alpha = K^-1 r:
//!   mll = -0.5 r^T alpha - sum_i log L_ii - (n / 2) log(2 pi).
//! With W = alpha alpha^T - K^-1 (symmetric, so only its lower triangle is visited) and the
//! kernel's per-pair weights (`crate::kernel`): Kf_ij = s phi(r^2_ij), G_ij = s psi(r^2_ij),
//! A_ij = s d phi / d log alpha (rq):
//!   d mll / d log l_d     = 0.5 sum_ij W_ij G_ij (xs_id - xs_jd)^2
//!   d mll / d log s       = 0.5 sum_ij W_ij Kf_ij
//!   d mll / d log sigma2  = 0.5 sigma2 tr W
//!   d mll / d m           = sum_i alpha_i
//!   d mll / d log alpha   = 0.5 sum_ij W_ij A_ij
//! For rbf, G = Kf, so the rbf path reads one matrix where the others read two.

use super::gram::{fill_kf, load_member, Cov, GradWeights};
use super::simd::{dispatch_avx2, sum, weighted_sq_diff};
use super::{cholesky::factor_with_jitter, small, Float, Workspace};
use crate::backend::member::{finite_or_failed, precheck, MemberView};
use crate::backend::MllOptions;
use crate::data::{Dataset, Hyperparameters, Status};
use crate::error::Result;
use crate::kernel::Kernel;
use crate::layout::{Layout, Target};
use faer::{MatMut, MatRef, Par};

const LN_2PI: f64 = 1.837_877_066_409_345_5;

/// MLL of member `b`, with its status and jitter; the gradient (when asked for) goes to `grad`,
/// one row in layout order (NaN for a member that failed or is empty).
pub(crate) fn member_mll<T: Float>(
    data: &Dataset,
    hyp: &Hyperparameters,
    b: usize,
    opts: &MllOptions,
    par: Par,
    grad: &mut [f64],
) -> Result<(f64, Status, f64)> {
    let d = data.n_dims();
    let member = MemberView::new(data, hyp, b);
    let n = member.n();
    let failed = |grad: &mut [f64], status: Status, jitter: f64| {
        grad.fill(f64::NAN);
        (f64::NAN, status, jitter)
    };
    if let Some(status) = precheck(hyp, b, n) {
        return Ok(failed(grad, status, 0.0));
    }
    grad.fill(0.0);
    let kernel = hyp.kernel;
    let cov = Cov::<T>::of(hyp, b);
    T::with_workspace(|ws| {
        ws.reserve(n, d, 0, par)?;
        if opts.gradient && kernel != Kernel::Rbf {
            ws.reserve_weights(n, kernel.has_alpha())?;
        }
        let out = evaluate(ws, &member, kernel, cov, opts, par, grad);
        ws.release_if_large();
        Ok(out)
    })
}

/// The member's MLL in a reserved workspace.
fn evaluate<T: Float>(
    ws: &mut Workspace<T>,
    member: &MemberView,
    kernel: Kernel,
    cov: Cov<T>,
    opts: &MllOptions,
    par: Par,
    grad: &mut [f64],
) -> (f64, Status, f64) {
    let (n, d) = (member.n(), member.lengthscale().len());
    let layout = Layout::new(kernel, d);
    let noise = member.noise();
    let failed = |grad: &mut [f64], status: Status, jitter: f64| {
        grad.fill(f64::NAN);
        (f64::NAN, status, jitter)
    };
    {
        let Workspace { xs, alpha, kf, chol, inv, col, dv, kg, ka, tri, mem, .. } = ws;
        let yvar = member.has_yvar().then_some(&mut dv[..n]);
        let has_yvar = yvar.is_some();
        load_member::<T>(member, xs, alpha, yvar);
        let weights = (opts.gradient && kernel != Kernel::Rbf)
            .then(|| GradWeights { psi: &mut kg[..n * n], dalpha: kernel.has_alpha().then(|| &mut ka[..n * n]) });
        fill_kf(xs, n, d, cov, kf, inv, weights);
        let noise_t = T::from_f64(noise);
        let (status, jitter) = factor_with_jitter::<T>(chol, n, member.mean_diag(), opts.jitter, par, mem, |a, jit| {
            for j in 0..n {
                a[j * n + j..(j + 1) * n].copy_from_slice(&kf[j * n + j..(j + 1) * n]);
                a[j * n + j] += noise_t + jit;
                if has_yvar {
                    a[j * n + j] += dv[j];
                }
            }
        });
        if status == Status::Failed {
            return failed(grad, status, jitter);
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
        if opts.gradient {
            if small {
                small::inverse(&chol[..n * n], n, &mut inv[..n * n], tri);
            } else {
                let l = MatRef::from_column_major_slice(&chol[..n * n], n, n);
                let dst = MatMut::from_column_major_slice_mut(&mut inv[..n * n], n, n);
                faer::linalg::cholesky::llt::inverse::inverse(dst, l, par, Workspace::<T>::stack(mem));
            }
            let g_ls = &mut grad[..d];
            let (kg_opt, ka_opt) = match kernel {
                Kernel::Rbf => (None, None),
                _ => (Some(&kg[..n * n]), kernel.has_alpha().then(|| &ka[..n * n])),
            };
            let (g_s, tr_w, g_a) = gradient_pass::<T>(n, d, alpha, inv, kf, kg_opt, ka_opt, xs, col, cov.s, g_ls);
            for g in g_ls.iter_mut() {
                *g *= 0.5;
            }
            grad[layout.index(Target::Outputscale, 0)] = 0.5 * g_s;
            grad[layout.index(Target::Noise, 0)] = 0.5 * noise * tr_w;
            grad[layout.index(Target::Mean, 0)] = alpha[..n].iter().map(|v| v.to_f64()).sum();
            if kernel.has_alpha() {
                grad[layout.index(Target::Alpha, 0)] = 0.5 * g_a;
            }
        }
        let status = finite_or_failed(status, std::iter::once(mll).chain(grad.iter().copied()));
        if status == Status::Failed {
            failed(grad, status, jitter)
        } else {
            (mll, status, jitter)
        }
    }
}

dispatch_avx2! {
    /// The O(n^2 D) pass over the lower triangle: accumulates 2 x the lengthscale sums into
    /// `g_ls` (D,) and returns (2 x the outputscale sum, tr W, 2 x the alpha sum). Column j's
    /// weights go through `col`; off-diagonal terms count twice (W and the kernel matrices are
    /// symmetric); diagonal terms enter the outputscale sum only (u = 0, d phi / d alpha = 0
    /// at r = 0). `kg` (the lengthscale weights) is None for rbf, whose weights are Kf. Column
    /// sums are taken in T, then accumulated in f64.
    fn gradient_pass<T: Float>(n: usize, d: usize, alpha: &[T], inv: &[T], kf: &[T], kg: Option<&[T]>, ka: Option<&[T]>, xs: &[T], col: &mut [T], st: T, g_ls: &mut [f64]) -> (f64, f64, f64) => gradient_pass_body
}

/// w_i = (alpha_i a_j - inv_i) by_i over one column's tail.
#[inline(always)]
fn weigh<T: Float>(w: &mut [T], alpha: &[T], inv: &[T], by: &[T], aj: T) {
    for (((wi, a), iv), k) in w.iter_mut().zip(alpha).zip(inv).zip(by) {
        *wi = (*a * aj - *iv) * *k;
    }
}

#[allow(clippy::too_many_arguments)]
#[inline(always)]
fn gradient_pass_body<T: Float>(
    n: usize,
    d: usize,
    alpha: &[T],
    inv: &[T],
    kf: &[T],
    kg: Option<&[T]>,
    ka: Option<&[T]>,
    xs: &[T],
    col: &mut [T],
    st: T,
    g_ls: &mut [f64],
) -> (f64, f64, f64) {
    // rbf reads Kf alone: its loop carries no test for the other kernels' weights.
    if kg.is_none() && ka.is_none() {
        gradient_columns::<T, true>(n, d, alpha, inv, kf, None, None, xs, col, st, g_ls)
    } else {
        gradient_columns::<T, false>(n, d, alpha, inv, kf, kg, ka, xs, col, st, g_ls)
    }
}

/// The column loop of [`gradient_pass`]; `KF_ONLY` when the lengthscale weights are Kf (rbf).
#[allow(clippy::too_many_arguments)]
#[inline(always)]
fn gradient_columns<T: Float, const KF_ONLY: bool>(
    n: usize,
    d: usize,
    alpha: &[T],
    inv: &[T],
    kf: &[T],
    kg: Option<&[T]>,
    ka: Option<&[T]>,
    xs: &[T],
    col: &mut [T],
    st: T,
    g_ls: &mut [f64],
) -> (f64, f64, f64) {
    debug_assert_eq!(g_ls.len(), d);
    let mut g_s = 0.0f64;
    let mut tr_w = 0.0f64;
    let mut g_a = 0.0f64;
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
        let (a_tail, inv_tail) = (&alpha[j + 1..n], &inv[tail.clone()]);
        weigh(w, a_tail, inv_tail, &kf[tail.clone()], aj);
        g_s += 2.0 * sum(w).to_f64();
        if !KF_ONLY {
            if let Some(ka) = ka {
                weigh(w, a_tail, inv_tail, &ka[tail.clone()], aj);
                g_a += 2.0 * sum(w).to_f64();
            }
            if let Some(kg) = kg {
                weigh(w, a_tail, inv_tail, &kg[tail], aj);
            }
        }
        for (k, g) in g_ls.iter_mut().enumerate() {
            *g += 2.0 * weighted_sq_diff(w, &xs[k * n + j + 1..k * n + n], xs[k * n + j]).to_f64();
        }
    }
    (g_s, tr_w, g_a)
}
