//! The SVGP on the CPU (docs/design.md section 11; the model: `crate::svgp`): rayon over
//! members, faer for the M x n products inside one.
//!
//! # The gradient
//! Per member, with w_i = c / sigma2_i, e_i = y_i - mu_i, P = A W A^T (M x M), h = A (w e):
//!
//! ```text
//! elbo = -c/2 sum log(2 pi sigma2_i) - 1/2 sum w_i e_i^2 - 1/2 (s sum w - tr P + tr(S P)) - KL
//! d/d q_mu   = h - q_mu
//! d/d Q      = tril(-P Q - Q + diag(1 / Q_kk))
//! d/d A      = q_mu (w e)^T + (I - S) A W                                   =: G_A
//! d/d Kzx    = L^-T G_A           = (L^-T q_mu) (w e)^T + L^-T (I - S) A W
//! d/d Kzz    = sym(L^-T Phi(C) L^-1),  C = L^T d/dL = -G_A A^T = -(q_mu h^T + (I - S) P)
//! ```
//!
//! (Phi: the lower triangle with the diagonal halved; the Cholesky rule of Murray 2016). The
//! hyperparameters and Z then take d/dKzz and d/dKzx through the kernel's per-pair weights
//! (`crate::kernel`), s also through var_f directly (-1/2 s sum w) and through the jitter eps s.
//! Only M x n products appear (A, A W A^T, one M x M by M x n product), about 4 M^2 n flops.
//!
//! This file holds the ELBO and its gradient; `inducing.rs` the inducing side both it and the
//! posterior (`predict.rs`) build on.

mod inducing;
pub(crate) mod optimum;
mod predict;

use super::gram::Cov;
use super::{memory, CpuBackend, Float};
use crate::backend::member::finite_or_failed;
use crate::backend::{member_rows, MllGradient, PredictOptions, Prediction};
use crate::data::{Dataset, Inputs, Precision, Status};
use crate::error::Result;
use crate::layout::{Layout, Target};
use crate::svgp::params::{ElboBatch, ElboOptions, SvgpGradient, SvgpParams};
use faer::linalg::matmul::matmul;
use faer::linalg::triangular_solve::{solve_lower_triangular_in_place, solve_upper_triangular_in_place};
use faer::{Accum, Par};
use inducing::{covariance, inducing, mat, mat_mut, q_of, scaled, zero};
use ndarray::{Array1, Array2, Array3, Axis};
use predict::predict;
use rayon::prelude::*;

const LN_2PI: f64 = 1.837_877_066_409_345_5;

/// One member's answer.
struct MemberElbo {
    elbo: f64,
    status: Status,
    jitter: f64,
    grad: Option<MemberGrad>,
}

/// One member's gradient.
struct MemberGrad {
    /// (M x D, row-major)
    z: Vec<f64>,
    q_mu: Vec<f64>,
    /// (M x M row-major, lower triangle)
    q_sqrt: Vec<f64>,
    /// The hyperparameters, in layout order.
    hyp: Vec<f64>,
}

/// The SVGP's operations on the CPU, reached through the model (`svgp::ElboRequest`,
/// `svgp::predict`) and callable on the backend itself; the `Backend` trait names no model's.
impl CpuBackend {
    /// SVGP ELBO (and gradient) of the members listed in `members` (all when None), in that
    /// order (docs/design.md section 11). Row b of `data` goes with row b of `params`. The data
    /// term of listed member i is scaled by `scale[i]` (1 when None): n_b / S on a mini-batch.
    /// Members run in chunks that fit `opts.max_memory`.
    ///
    /// # Errors
    /// A listed member out of range; [`crate::Error::OutOfMemory`] when one member does not fit.
    pub fn elbo(
        &self,
        data: &Dataset,
        params: &SvgpParams,
        members: Option<&[usize]>,
        scale: Option<&[f64]>,
        opts: &ElboOptions,
    ) -> Result<ElboBatch> {
        let rows = member_rows(members, data.batch_size())?;
        elbo_batch(data, params, &rows, scale, opts)
    }

    /// SVGP posterior at test points `test` ((M, D) shared or (B, M, D)); needs no data.
    pub fn svgp_predict(&self, params: &SvgpParams, test: &Inputs, opts: &PredictOptions) -> Result<Prediction> {
        predict(params, test, opts)
    }
}

/// The ELBO (and gradient) of the members `rows` of `data` and `params`, with data-term scale
/// `scale[i]` for row i (1 when None).
fn elbo_batch(
    data: &Dataset,
    params: &SvgpParams,
    rows: &[usize],
    scale: Option<&[f64]>,
    opts: &ElboOptions,
) -> Result<ElboBatch> {
    let one = |i: usize| scale.map_or(1.0, |s| s[i]);
    let (k, m, d) = (rows.len(), params.n_inducing(), params.n_dims());
    let layout = Layout::new(params.kernel(), d);
    // Planned before any work, as the MLL's: each member's workspace, and the outputs (kept
    // per member, then copied into the batch's arrays).
    let n = data.n_points();
    let per = memory::cpu_elbo_bytes(n, m, d, params.kernel(), opts.precision, opts.gradient);
    let out_per = 3 + if opts.gradient { m * d + m + m * m + layout.len() } else { 0 };
    let fixed = (k as u64).saturating_mul(out_per as u64).saturating_mul(16);
    let step = memory::in_flight(per, fixed, opts.max_memory, n)?.clamp(1, k.max(1));
    let mut outs: Vec<MemberElbo> = Vec::with_capacity(k);
    for start in (0..k).step_by(step) {
        outs.par_extend((start..(start + step).min(k)).into_par_iter().map(|i| match opts.precision {
            Precision::F64 => member_elbo::<f64>(data, params, rows[i], one(i), opts),
            Precision::F32 => member_elbo::<f32>(data, params, rows[i], one(i), opts),
        }));
    }
    let mut gradient = opts.gradient.then(|| SvgpGradient {
        z: Array3::zeros((k, m, d)),
        q_mu: Array2::zeros((k, m)),
        q_sqrt: Array3::zeros((k, m, m)),
        hyp: MllGradient::zeros(k, layout),
    });
    let mut elbo = Array1::zeros(k);
    let mut status = Vec::with_capacity(k);
    let mut jitter = Array1::zeros(k);
    for (i, o) in outs.into_iter().enumerate() {
        elbo[i] = o.elbo;
        status.push(o.status);
        jitter[i] = o.jitter;
        if let Some(g) = gradient.as_mut() {
            match o.grad {
                Some(mg) => {
                    g.z.index_axis_mut(Axis(0), i).iter_mut().zip(mg.z).for_each(|(a, v)| *a = v);
                    g.q_mu.row_mut(i).iter_mut().zip(mg.q_mu).for_each(|(a, v)| *a = v);
                    g.q_sqrt.index_axis_mut(Axis(0), i).iter_mut().zip(mg.q_sqrt).for_each(|(a, v)| *a = v);
                    for (c, v) in mg.hyp.into_iter().enumerate() {
                        let (t, kk) = layout.coordinate(c);
                        *g.hyp.get_mut(t, i, kk) = v;
                    }
                }
                None => {
                    g.z.index_axis_mut(Axis(0), i).fill(f64::NAN);
                    g.q_mu.row_mut(i).fill(f64::NAN);
                    g.q_sqrt.index_axis_mut(Axis(0), i).fill(f64::NAN);
                    for c in 0..layout.len() {
                        let (t, kk) = layout.coordinate(c);
                        *g.hyp.get_mut(t, i, kk) = f64::NAN;
                    }
                }
            }
        }
    }
    Ok(ElboBatch { elbo, gradient, status, jitter })
}

fn member_elbo<T: Float>(data: &Dataset, params: &SvgpParams, b: usize, c: f64, opts: &ElboOptions) -> MemberElbo {
    let hyp = &params.hyp;
    let (m, d) = (params.n_inducing(), params.n_dims());
    let obs = data.observed(b);
    let n = obs.len();
    let failed = |jitter| MemberElbo { elbo: f64::NAN, status: Status::Failed, jitter, grad: None };
    if hyp.is_failed(b) || crate::backend::member::precheck(hyp, b, 1).is_some() {
        return failed(0.0);
    }
    let grad = opts.gradient;
    let ind = inducing::<T>(params, b, opts, grad);
    if ind.status == Status::Failed {
        return failed(ind.jitter);
    }
    let (s, noise, mean) = (hyp.outputscale[b], hyp.noise[b], hyp.mean[b]);
    let ls = hyp.lengthscale.row(b);
    let xs: Vec<T> = scaled(data.x().member(b), &obs, &ind.centre, ls);
    // Kzx (M x n) and its weights.
    let (kzx, wzx) = covariance(&ind.zs, m, &xs, n, d, Cov::of(hyp, b), grad);
    // A = L^-1 Kzx.
    let mut a = kzx.clone();
    let l = mat(&ind.l, m, m);
    solve_lower_triangular_in_place(l, mat_mut(&mut a, m, n), Par::Seq);

    let q_mu: Vec<f64> = params.q_mu.row(b).to_vec();
    let q_mu_t: Vec<T> = q_mu.iter().map(|v| T::from_f64(*v)).collect();
    let yb = data.y().row(b);
    let mut e = vec![0.0; n];
    let mut w = vec![0.0; n];
    let mut sig2 = vec![0.0; n];
    for (slot, &i) in obs.iter().enumerate() {
        let col = &a[slot * m..(slot + 1) * m];
        let f: f64 = col.iter().zip(&q_mu).map(|(x, q)| x.to_f64() * q).sum();
        e[slot] = yb[i] - mean - f;
        sig2[slot] = noise + data.yvar_at(b, i);
        w[slot] = c / sig2[slot];
    }
    // AW and P = A W A^T.
    let mut aw = a.clone();
    for (slot, wi) in w.iter().enumerate() {
        let wt = T::from_f64(*wi);
        aw[slot * m..(slot + 1) * m].iter_mut().for_each(|v| *v *= wt);
    }
    let mut p = vec![zero::<T>(); m * m];
    matmul(
        mat_mut(&mut p, m, m),
        Accum::Replace,
        mat(&aw, m, n),
        mat(&a, m, n).transpose(),
        T::from_f64(1.0),
        Par::Seq,
    );
    let q = q_of::<T>(params, b);
    let mut sm = vec![zero::<T>(); m * m];
    matmul(
        mat_mut(&mut sm, m, m),
        Accum::Replace,
        mat(&q, m, m),
        mat(&q, m, m).transpose(),
        T::from_f64(1.0),
        Par::Seq,
    );
    let tr_p: f64 = (0..m).map(|j| p[j * m + j].to_f64()).sum();
    let tr_sp: f64 = sm.iter().zip(&p).map(|(x, y)| x.to_f64() * y.to_f64()).sum();
    let sum_w: f64 = w.iter().sum();
    let sum_we2: f64 = w.iter().zip(&e).map(|(w, e)| w * e * e).sum();
    let sum_log: f64 = sig2.iter().map(|v| LN_2PI + v.ln()).sum();
    let var_term = s * sum_w - tr_p + tr_sp;
    let data_term = -0.5 * c * sum_log - 0.5 * sum_we2 - 0.5 * var_term;
    let mut q_sq = 0.0;
    let mut log_det = 0.0;
    for j in 0..m {
        for i in j..m {
            q_sq += q[j * m + i].to_f64().powi(2);
        }
        log_det += 2.0 * q[j * m + j].to_f64().abs().ln();
    }
    let kl = 0.5 * (q_sq + q_mu.iter().map(|v| v * v).sum::<f64>() - m as f64 - log_det);
    let elbo = data_term - kl;
    let status = finite_or_failed(ind.status, [elbo]);
    if status == Status::Failed {
        return failed(ind.jitter);
    }
    // No observed point: Empty, the ELBO is -KL (with or without the gradient).
    let status = if n == 0 { Status::Empty } else { status };
    if !grad {
        return MemberElbo { elbo, status, jitter: ind.jitter, grad: None };
    }

    // Gradients.
    let g_mu: Vec<f64> = w.iter().zip(&e).map(|(w, e)| w * e).collect();
    let g_mean: f64 = g_mu.iter().sum();
    let mut h = vec![0.0; m];
    for (slot, g) in g_mu.iter().enumerate() {
        for (hj, aj) in h.iter_mut().zip(&a[slot * m..(slot + 1) * m]) {
            *hj += aj.to_f64() * g;
        }
    }
    let g_qmu: Vec<f64> = h.iter().zip(&q_mu).map(|(h, q)| h - q).collect();
    let mut pq = vec![zero::<T>(); m * m];
    matmul(mat_mut(&mut pq, m, m), Accum::Replace, mat(&p, m, m), mat(&q, m, m), T::from_f64(1.0), Par::Seq);
    let mut g_q = vec![0.0; m * m];
    for j in 0..m {
        for i in j..m {
            let mut v = -pq[j * m + i].to_f64() - q[j * m + i].to_f64();
            if i == j {
                v += 1.0 / q[j * m + j].to_f64();
            }
            g_q[i * m + j] = v;
        }
    }
    let g_log_noise = if data.yvar().is_some() {
        // Per-point var_f: s - |a_i|^2 + |Q^T a_i|^2.
        let mut bq = vec![zero::<T>(); m * n];
        matmul(
            mat_mut(&mut bq, m, n),
            Accum::Replace,
            mat(&q, m, m).transpose(),
            mat(&a, m, n),
            T::from_f64(1.0),
            Par::Seq,
        );
        (0..n)
            .map(|i| {
                let a2: f64 = a[i * m..(i + 1) * m].iter().map(|v| v.to_f64().powi(2)).sum();
                let b2: f64 = bq[i * m..(i + 1) * m].iter().map(|v| v.to_f64().powi(2)).sum();
                let v = s - a2 + b2;
                w[i] / (2.0 * sig2[i]) * (e[i] * e[i] + v - sig2[i])
            })
            .sum::<f64>()
            * noise
    } else {
        noise / (2.0 * noise) * (sum_we2 + var_term - noise * sum_w)
    };
    // C = -(q_mu h^T + (I - S) P), then d/dKzz = sym(L^-T Phi(C) L^-1).
    let mut sp = vec![zero::<T>(); m * m];
    matmul(mat_mut(&mut sp, m, m), Accum::Replace, mat(&sm, m, m), mat(&p, m, m), T::from_f64(1.0), Par::Seq);
    let mut x = vec![zero::<T>(); m * m];
    for j in 0..m {
        for i in j..m {
            let cij = -(q_mu[i] * h[j] + p[j * m + i].to_f64() - sp[j * m + i].to_f64());
            x[j * m + i] = T::from_f64(if i == j { 0.5 * cij } else { cij });
        }
    }
    solve_upper_triangular_in_place(l.transpose(), mat_mut(&mut x, m, m), Par::Seq);
    let mut xt = vec![zero::<T>(); m * m];
    for j in 0..m {
        for i in 0..m {
            xt[j * m + i] = x[i * m + j];
        }
    }
    solve_upper_triangular_in_place(l.transpose(), mat_mut(&mut xt, m, m), Par::Seq);
    // xt = (L^-T Phi L^-1)^T; the symmetric gradient is the mean of it and its transpose.
    let mut gzz = vec![0.0; m * m];
    for j in 0..m {
        for i in 0..m {
            gzz[j * m + i] = 0.5 * (xt[j * m + i].to_f64() + xt[i * m + j].to_f64());
        }
    }
    // d/dKzx = L^-T (I - S) A W + (L^-T q_mu) (w e)^T.
    let mut r = vec![zero::<T>(); m * m];
    for j in 0..m {
        for i in 0..m {
            r[j * m + i] = T::from_f64(f64::from(u8::from(i == j))) - sm[j * m + i];
        }
    }
    solve_upper_triangular_in_place(l.transpose(), mat_mut(&mut r, m, m), Par::Seq);
    let mut gzx = vec![zero::<T>(); m * n];
    matmul(mat_mut(&mut gzx, m, n), Accum::Replace, mat(&r, m, m), mat(&aw, m, n), T::from_f64(1.0), Par::Seq);
    let mut lq = q_mu_t.clone();
    solve_upper_triangular_in_place(l.transpose(), mat_mut(&mut lq, m, 1), Par::Seq);
    for (slot, g) in g_mu.iter().enumerate() {
        let gt = T::from_f64(*g);
        for (v, lqj) in gzx[slot * m..(slot + 1) * m].iter_mut().zip(&lq) {
            *v += *lqj * gt;
        }
    }

    // Through the kernel: per pair weights.
    let (wzz, dazz) = ind.wzz.as_ref().expect("gradient asked");
    let (psi_zx, dazx) = wzx.expect("gradient asked");
    let wzx = psi_zx.as_ref().unwrap_or(&kzx);
    let mut g_ls = vec![0.0; d];
    let mut g_z = vec![0.0; m * d];
    let mut g_log_s = -0.5 * s * sum_w + ind.jitter * (0..m).map(|j| gzz[j * m + j]).sum::<f64>();
    let mut g_log_alpha = 0.0;
    for j in 0..m {
        for i in 0..m {
            let g = gzz[j * m + i];
            g_log_s += g * ind.kzz[j * m + i].to_f64();
            let gw = g * wzz[j * m + i].to_f64();
            for k in 0..d {
                let u = ind.zs[k * m + i].to_f64() - ind.zs[k * m + j].to_f64();
                g_ls[k] += gw * u * u;
                g_z[j * d + k] += 2.0 * gw * u / ls[k];
            }
            if let Some(da) = dazz {
                g_log_alpha += g * da[j * m + i].to_f64();
            }
        }
    }
    // The data pairs, a dimension at a time with the inducing index innermost (contiguous):
    // gw = d/dKzx * s psi, then per dimension sum gw u^2 (lengthscale) and sum_i gw u (z).
    let mut gw = vec![0.0; m * n];
    for ((o, g), (w, k)) in gw.iter_mut().zip(&gzx).zip(wzx.iter().zip(&kzx)) {
        let g = g.to_f64();
        g_log_s += g * k.to_f64();
        *o = g * w.to_f64();
    }
    if let Some(da) = &dazx {
        g_log_alpha += gzx.iter().zip(da).map(|(g, a)| g.to_f64() * a.to_f64()).sum::<f64>();
    }
    let mut gz_k = vec![0.0; m];
    let mut ls_k = vec![0.0; m];
    for k in 0..d {
        let zk: Vec<f64> = ind.zs[k * m..(k + 1) * m].iter().map(|v| v.to_f64()).collect();
        gz_k.fill(0.0);
        ls_k.fill(0.0);
        for i in 0..n {
            let xi = xs[k * n + i].to_f64();
            let gwi = &gw[i * m..(i + 1) * m];
            for (((gz, lsum), w), z) in gz_k.iter_mut().zip(ls_k.iter_mut()).zip(gwi).zip(&zk) {
                let u = xi - z;
                let wu = w * u;
                *gz += wu;
                *lsum += wu * u;
            }
        }
        g_ls[k] += ls_k.iter().sum::<f64>();
        for j in 0..m {
            g_z[j * d + k] += gz_k[j] / ls[k];
        }
    }
    let layout = Layout::new(hyp.kernel, d);
    let mut g_h = vec![0.0; layout.len()];
    g_h[..d].copy_from_slice(&g_ls);
    g_h[layout.index(Target::Outputscale, 0)] = g_log_s;
    g_h[layout.index(Target::Noise, 0)] = g_log_noise;
    g_h[layout.index(Target::Mean, 0)] = g_mean;
    if layout.has(Target::Alpha) {
        g_h[layout.index(Target::Alpha, 0)] = g_log_alpha;
    }
    let all = g_z.iter().chain(&g_qmu).chain(&g_q).chain(&g_h).copied();
    if finite_or_failed(status, all) == Status::Failed {
        return failed(ind.jitter);
    }
    MemberElbo {
        elbo,
        status,
        jitter: ind.jitter,
        grad: Some(MemberGrad { z: g_z, q_mu: g_qmu, q_sqrt: g_q, hyp: g_h }),
    }
}
