//! The SVGP posterior on the CPU: each member's mean, variance and (when asked) covariance at
//! test points from its inducing side (`inducing.rs`), rayon over members.

use super::inducing::{covariance, inducing, mat, mat_mut, q_of, scaled, zero};
use crate::backend::cpu::gram::Cov;
use crate::backend::cpu::Float;
use crate::backend::member::finite_or_failed;
use crate::backend::{PredictOptions, Prediction};
use crate::data::{Inputs, Precision, Status};
use crate::error::Result;
use crate::svgp::params::{ElboOptions, SvgpParams};
use faer::linalg::matmul::matmul;
use faer::linalg::triangular_solve::solve_lower_triangular_in_place;
use faer::{Accum, Par};
use ndarray::{Array1, Array2, Array3, Axis};
use rayon::prelude::*;

/// The SVGP posterior at `test` ((M*, D) shared or (B, M*, D)).
pub(super) fn predict(params: &SvgpParams, test: &Inputs, opts: &PredictOptions) -> Result<Prediction> {
    let (b, mt) = (params.batch_size(), test.n_points());
    let eopts = ElboOptions::new(opts.precision);
    let want_cov = opts.full_covariance || opts.samples.is_some();
    let outs: Vec<_> = (0..b)
        .into_par_iter()
        .map(|mb| match opts.precision {
            Precision::F64 => member_posterior::<f64>(params, mb, test, &eopts, want_cov),
            Precision::F32 => member_posterior::<f32>(params, mb, test, &eopts, want_cov),
        })
        .collect();
    let mut mean = Array2::zeros((b, mt));
    let mut var = Array2::zeros((b, mt));
    let mut cov = want_cov.then(|| Array3::zeros((b, mt, mt)));
    let mut status = Vec::with_capacity(b);
    let mut jitter = Array1::zeros(b);
    for (mb, o) in outs.into_iter().enumerate() {
        mean.row_mut(mb).assign(&Array1::from(o.0));
        var.row_mut(mb).assign(&Array1::from(o.1));
        if let (Some(c), Some(oc)) = (cov.as_mut(), o.2) {
            c.index_axis_mut(Axis(0), mb).iter_mut().zip(oc).for_each(|(a, v)| *a = v);
        }
        status.push(o.3);
        jitter[mb] = o.4;
    }
    let noise = params.hyp.noise.clone();
    Ok(Prediction::assemble(mean, var, &noise, cov, status, jitter, opts))
}

#[allow(clippy::type_complexity)]
fn member_posterior<T: Float>(
    params: &SvgpParams,
    b: usize,
    test: &Inputs,
    opts: &ElboOptions,
    want_cov: bool,
) -> (Vec<f64>, Vec<f64>, Option<Vec<f64>>, Status, f64) {
    let (m, d, mt) = (params.n_inducing(), params.n_dims(), test.n_points());
    let hyp = &params.hyp;
    let nan = |jitter| {
        (vec![f64::NAN; mt], vec![f64::NAN; mt], want_cov.then(|| vec![f64::NAN; mt * mt]), Status::Failed, jitter)
    };
    if hyp.is_failed(b) || crate::backend::member::precheck(hyp, b, 1).is_some() {
        return nan(0.0);
    }
    let ind = inducing::<T>(params, b, opts, false);
    if ind.status == Status::Failed {
        return nan(ind.jitter);
    }
    let s = hyp.outputscale[b];
    let idx: Vec<usize> = (0..mt).collect();
    let ts: Vec<T> = scaled(test.member(b), &idx, &ind.centre, hyp.lengthscale.row(b));
    let (mut a, _) = covariance(&ind.zs, m, &ts, mt, d, Cov::of(hyp, b), false);
    solve_lower_triangular_in_place(mat(&ind.l, m, m), mat_mut(&mut a, m, mt), Par::Seq);
    let q = q_of::<T>(params, b);
    let mut bq = vec![zero::<T>(); m * mt];
    matmul(
        mat_mut(&mut bq, m, mt),
        Accum::Replace,
        mat(&q, m, m).transpose(),
        mat(&a, m, mt),
        T::from_f64(1.0),
        Par::Seq,
    );
    let q_mu = params.q_mu.row(b);
    let mut mean = vec![hyp.mean[b]; mt];
    let mut var = vec![s; mt];
    for i in 0..mt {
        let col = &a[i * m..(i + 1) * m];
        mean[i] += col.iter().zip(q_mu.iter()).map(|(x, q)| x.to_f64() * q).sum::<f64>();
        let a2: f64 = col.iter().map(|v| v.to_f64().powi(2)).sum();
        let b2: f64 = bq[i * m..(i + 1) * m].iter().map(|v| v.to_f64().powi(2)).sum();
        var[i] = (s - a2 + b2).max(0.0);
    }
    let cov = want_cov.then(|| {
        let (mut c, _) = covariance(&ts, mt, &ts, mt, d, Cov::of(hyp, b), false);
        let one = T::from_f64(1.0);
        matmul(mat_mut(&mut c, mt, mt), Accum::Add, mat(&a, m, mt).transpose(), mat(&a, m, mt), -one, Par::Seq);
        matmul(mat_mut(&mut c, mt, mt), Accum::Add, mat(&bq, m, mt).transpose(), mat(&bq, m, mt), one, Par::Seq);
        c.iter().map(|v| v.to_f64()).collect::<Vec<f64>>()
    });
    let status = finite_or_failed(ind.status, mean.iter().chain(&var).copied());
    if status == Status::Failed {
        return nan(ind.jitter);
    }
    (mean, var, cov, status, ind.jitter)
}
