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
use super::{cholesky::factor_with_jitter, Float, MemberMll, Workspace};
use crate::backend::MllOptions;
use crate::data::{Dataset, Hyperparameters, Status};
use faer::{MatMut, MatRef, Par};

const LN_2PI: f64 = 1.837_877_066_409_345_5;

pub(crate) fn member_mll<T: Float>(data: &Dataset, hyp: &Hyperparameters, b: usize, opts: &MllOptions, par: Par) -> MemberMll {
    let d = data.n_dims();
    let n = data.n_observed(b);
    let s = hyp.outputscale[b];
    let noise = hyp.noise[b];
    let failed = |jitter: f64| MemberMll {
        mll: f64::NAN,
        grad_ls: vec![f64::NAN; d],
        grad_os: f64::NAN,
        grad_noise: f64::NAN,
        grad_mean: f64::NAN,
        status: Status::Failed,
        jitter,
    };
    if n == 0 {
        return MemberMll {
            mll: 0.0,
            grad_ls: vec![0.0; d],
            grad_os: 0.0,
            grad_noise: 0.0,
            grad_mean: 0.0,
            status: Status::Ok,
            jitter: 0.0,
        };
    }
    if !(s.is_finite() && noise.is_finite() && hyp.mean[b].is_finite()) {
        return failed(0.0);
    }
    T::with_workspace(|ws| {
        ws.reserve(n, d, 0, par);
        let Workspace { xs, alpha, kf, chol, inv, mem, .. } = ws;
        load_member::<T>(data, hyp, b, xs, alpha);
        let st = T::from_f64(s);
        fill_kf(xs, n, d, st, kf);
        let noise_t = T::from_f64(noise);
        let (status, jitter) = factor_with_jitter::<T>(chol, n, s + noise, opts.jitter, par, mem, |a, jit| {
            for j in 0..n {
                a[j * n + j..(j + 1) * n].copy_from_slice(&kf[j * n + j..(j + 1) * n]);
                a[j * n + j] += noise_t + jit;
            }
        });
        if status == Status::Failed {
            return failed(jitter);
        }
        let l = MatRef::from_column_major_slice(&chol[..n * n], n, n);
        // alpha holds r; quad = r^T K^-1 r = |L^-1 r|^2.
        let mut quad = 0.0f64;
        {
            let rhs = MatMut::from_column_major_slice_mut(&mut alpha[..n], n, 1);
            faer::linalg::triangular_solve::solve_lower_triangular_in_place(l, rhs, par);
            for v in &alpha[..n] {
                quad += v.to_f64() * v.to_f64();
            }
            let rhs = MatMut::from_column_major_slice_mut(&mut alpha[..n], n, 1);
            faer::linalg::triangular_solve::solve_upper_triangular_in_place(l.transpose(), rhs, par);
        }
        let logdet_half: f64 = (0..n).map(|i| chol[i * n + i].to_f64().ln()).sum();
        let mll = -0.5 * quad - logdet_half - 0.5 * n as f64 * LN_2PI;
        let mut out = MemberMll {
            mll,
            grad_ls: vec![0.0; d],
            grad_os: 0.0,
            grad_noise: 0.0,
            grad_mean: alpha[..n].iter().map(|v| v.to_f64()).sum(),
            status,
            jitter,
        };
        if opts.gradient {
            let dst = MatMut::from_column_major_slice_mut(&mut inv[..n * n], n, n);
            faer::linalg::cholesky::llt::inverse::inverse(dst, l, par, Workspace::<T>::stack(mem));
            let zero = T::from_f64(0.0);
            let mut g_ls = [zero; 64];
            let mut g_ls_vec = if d > 64 { vec![zero; d] } else { Vec::new() };
            let g_ls: &mut [T] = if d > 64 { &mut g_ls_vec } else { &mut g_ls[..d] };
            let mut g_s = zero;
            let mut tr_w = zero;
            for j in 0..n {
                let aj = alpha[j];
                let xj = &xs[j * d..(j + 1) * d];
                let w_jj = aj * aj - inv[j * n + j];
                tr_w += w_jj;
                g_s += w_jj * st;
                // Off-diagonal terms count twice (W and Kf are symmetric).
                for i in j + 1..n {
                    let w = (alpha[i] * aj - inv[j * n + i]) * kf[j * n + i];
                    g_s += w + w;
                    let xi = &xs[i * d..(i + 1) * d];
                    for k in 0..d {
                        let t = xi[k] - xj[k];
                        g_ls[k] += (w + w) * t * t;
                    }
                }
            }
            out.grad_ls = g_ls.iter().map(|v| 0.5 * v.to_f64()).collect();
            out.grad_os = 0.5 * g_s.to_f64();
            out.grad_noise = 0.5 * noise * tr_w.to_f64();
        }
        let finite = out.mll.is_finite()
            && out.grad_os.is_finite()
            && out.grad_noise.is_finite()
            && out.grad_mean.is_finite()
            && out.grad_ls.iter().all(|v| v.is_finite());
        if finite {
            out
        } else {
            failed(jitter)
        }
    })
}
