//! Posterior prediction on the CPU (docs/design.md section 6); samples are drawn in `crate::sample`.
//!
//! With K = L L^T (the training Gram with noise and jitter), alpha = K^-1 r, K* = k(X, X*) and
//! V = L^-1 K*: mean = m + K*^T alpha, var f = s - colsum(V^2), cov f = K** - V^T V.

use super::gram::{fill_cross, fill_kf, load_member, scale_points, Cov};
use super::memory;
use super::simd::dot;
use super::{cholesky::factor_with_jitter, for_members, schedule, Float, Workspace};
use crate::backend::member::{precheck, MemberView};
use crate::backend::{JitterPolicy, PredictOptions, Prediction};
use crate::data::{Dataset, Hyperparameters, Inputs, Precision, Status};
use crate::error::Result;
use faer::linalg::matmul::matmul;
use faer::{Accum, MatMut, MatRef, Par};
use ndarray::{Array1, Array2, Array3, ArrayView2, Axis};

struct MemberPrediction {
    mean: Vec<f64>,
    var: Vec<f64>,
    cov: Option<Vec<f64>>,
    status: Status,
    jitter: f64,
}

pub(crate) fn predict(
    data: &Dataset,
    hyp: &Hyperparameters,
    test: &Inputs,
    opts: &PredictOptions,
) -> Result<Prediction> {
    let (b, n, d) = (data.batch_size(), data.n_points(), data.n_dims());
    let m = test.n_points();
    let want_cov = opts.full_covariance || opts.samples.is_some();
    let per = memory::cpu_predict_bytes(n, d, m, opts.precision, want_cov);
    let outputs = b * m * (5 + if want_cov { m } else { 0 } + opts.samples.map_or(0, |s| s.0)) * 8;
    let in_flight = memory::in_flight(per, outputs as u64, opts.max_memory, n)?;
    let res = for_members(b, schedule(b, n.max(m), in_flight), |k, par| match opts.precision {
        Precision::F64 => member_predict::<f64>(data, hyp, test.member(k), k, want_cov, par),
        Precision::F32 => member_predict::<f32>(data, hyp, test.member(k), k, want_cov, par),
    });
    let res = res.into_iter().collect::<Result<Vec<_>>>()?;
    let mut mean = Array2::zeros((b, m));
    let mut var = Array2::zeros((b, m));
    let mut cov = want_cov.then(|| Array3::zeros((b, m, m)));
    for (k, r) in res.iter().enumerate() {
        for j in 0..m {
            mean[[k, j]] = r.mean[j];
            var[[k, j]] = r.var[j];
        }
        if let (Some(c), Some(rc)) = (cov.as_mut(), r.cov.as_ref()) {
            for ((i, j), v) in c.index_axis_mut(Axis(0), k).indexed_iter_mut() {
                *v = rc[j * m + i];
            }
        }
    }
    let status = res.iter().map(|r| r.status).collect();
    let jitter = res.iter().map(|r| r.jitter).collect::<Array1<f64>>();
    Ok(Prediction::assemble(mean, var, &hyp.noise, cov, status, jitter, opts))
}

fn member_predict<T: Float>(
    data: &Dataset,
    hyp: &Hyperparameters,
    z: ArrayView2<f64>,
    b: usize,
    want_cov: bool,
    par: Par,
) -> Result<MemberPrediction> {
    let d = data.n_dims();
    let member = MemberView::new(data, hyp, b);
    let n = member.n();
    let m = z.nrows();
    let failed = |jitter| MemberPrediction {
        mean: vec![f64::NAN; m],
        var: vec![f64::NAN; m],
        cov: want_cov.then(|| vec![f64::NAN; m * m]),
        status: Status::Failed,
        jitter,
    };
    // An empty member's posterior is its prior; its status says so.
    let pre = precheck(hyp, b, n);
    if pre == Some(Status::Failed) {
        return Ok(failed(0.0));
    }
    let cov_k = Cov::<T>::of(hyp, b);
    let mut zs = vec![T::from_f64(0.0); m * d];
    scale_points(&member, z, &mut zs);
    T::with_workspace(|ws| {
        ws.reserve(n, d, m, par)?;
        let out = member_posterior(ws, &member, &zs, m, cov_k, want_cov, pre, par);
        ws.release_if_large();
        Ok(out.unwrap_or_else(failed))
    })
}

/// The posterior of a member in a reserved workspace; Err(jitter) when its Gram cannot be
/// factorised.
#[allow(clippy::too_many_arguments)]
fn member_posterior<T: Float>(
    ws: &mut Workspace<T>,
    member: &MemberView,
    zs: &[T],
    m: usize,
    cov_k: Cov<T>,
    want_cov: bool,
    pre: Option<Status>,
    par: Par,
) -> std::result::Result<MemberPrediction, f64> {
    let (n, d) = (member.n(), member.lengthscale().len());
    let (s, noise, mu) = (member.outputscale(), member.noise(), member.mean());
    {
        let Workspace { xs, alpha, kf, chol, inv, dv, mem, .. } = ws;
        let mut status = pre.unwrap_or(Status::Ok);
        let mut jitter = 0.0;
        let mut mean = vec![mu; m];
        let mut var = vec![s; m];
        let cross = &mut inv[..n * m];
        if n > 0 {
            let yvar = member.has_yvar().then_some(&mut dv[..n]);
            let has_yvar = yvar.is_some();
            load_member::<T>(member, xs, alpha, yvar);
            // chol is free until the factorisation fills it: scratch for the packed Gram.
            fill_kf(xs, n, d, cov_k, kf, chol, None);
            let noise_t = T::from_f64(noise);
            (status, jitter) = factor_with_jitter::<T>(
                chol,
                n,
                member.mean_diag(),
                JitterPolicy::for_precision(precision_of::<T>()),
                par,
                mem,
                |a, jit| {
                    for j in 0..n {
                        a[j * n + j..(j + 1) * n].copy_from_slice(&kf[j * n + j..(j + 1) * n]);
                        a[j * n + j] += noise_t + jit;
                        if has_yvar {
                            a[j * n + j] += dv[j];
                        }
                    }
                },
            );
            if status == Status::Failed {
                return Err(jitter);
            }
            let l = MatRef::from_column_major_slice(&chol[..n * n], n, n);
            let rhs = MatMut::from_column_major_slice_mut(&mut alpha[..n], n, 1);
            faer::linalg::cholesky::llt::solve::solve_in_place(l, rhs, par, Workspace::<T>::stack(mem));
            fill_cross(xs, n, zs, m, d, cov_k, cross, None);
            for j in 0..m {
                let col = &cross[j * n..(j + 1) * n];
                mean[j] = mu + dot(col, &alpha[..n]).to_f64();
            }
            let v = MatMut::from_column_major_slice_mut(cross, n, m);
            faer::linalg::triangular_solve::solve_lower_triangular_in_place(l, v, par);
            for j in 0..m {
                let q: f64 = cross[j * n..(j + 1) * n].iter().map(|v| v.to_f64() * v.to_f64()).sum();
                var[j] = (s - q).max(0.0);
            }
        }
        let cov = want_cov.then(|| {
            let mut c = vec![T::from_f64(0.0); m * m];
            let mut scratch = vec![T::from_f64(0.0); m * m];
            fill_kf(zs, m, d, cov_k, &mut c, &mut scratch, None);
            for j in 0..m {
                for i in 0..j {
                    c[j * m + i] = c[i * m + j];
                }
            }
            if n > 0 {
                let v = MatRef::from_column_major_slice(&cross[..n * m], n, m);
                let dst = MatMut::from_column_major_slice_mut(&mut c, m, m);
                matmul(dst, Accum::Add, v.transpose(), v, T::from_f64(-1.0), par);
            }
            c.iter().map(|v| v.to_f64()).collect()
        });
        Ok(MemberPrediction { mean, var, cov, status, jitter })
    }
}

fn precision_of<T: Float>() -> Precision {
    if std::mem::size_of::<T>() == 4 {
        Precision::F32
    } else {
        Precision::F64
    }
}
