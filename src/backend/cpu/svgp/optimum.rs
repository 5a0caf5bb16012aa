//! The optimal q(u) of an SVGP member in closed form, on the CPU from the inducing side the ELBO
//! itself uses (docs/design.md section 11, "Fitting").
//!
//! For a Gaussian likelihood on the full data, the whitened q(v) = N(q_mu, S) that maximises the
//! ELBO for given hyperparameters and Z is known (Titsias 2009, whitened): with
//! L L^T = k(Z, Z) + jitter, A = L^-1 k(Z, X), w_i = 1 / (noise + yvar_i) and r = y - m,
//!
//! ```text
//! S    = (I + A W A^T)^-1
//! q_mu = S A W r
//! ```
//!
//! and the ELBO there equals the collapsed bound. The fit sets q to this value at every
//! full-data evaluation ("profiling q out"): the optimiser then moves only the hyperparameters
//! and Z, on the collapsed bound, whose gradient at q* is the ELBO's own (envelope theorem:
//! d ELBO / d q = 0 there), so the backend's ELBO gradient serves unchanged. The jitter follows
//! the backend's rule: L is `inducing`'s factor, the one the ELBO uses.
//! Cost per member: about 2 M^2 n flops (A and A W A^T) plus O(M^3), the order of one ELBO.
//!
//! On mini-batches the same pieces, scaled by n / S, are an unbiased estimate of the optimum's
//! natural parameters (I + A W A^T, A W r); `natural_step` moves q part of the way toward them
//! (a natural-gradient step, Salimbeni, Eleftheriadis and Hensman 2018), so a mini-batch fit
//! keeps q near its optimum for the moving hyperparameters and Z without a full pass.

use super::inducing::{covariance, factor, inducing, mat, mat_mut, q_of, scaled};
use crate::backend::cpu::gram::Cov;
use crate::data::{Dataset, Status};
use crate::svgp::params::{ElboOptions, SvgpParams};
use faer::linalg::matmul::matmul;
use faer::linalg::triangular_solve::solve_lower_triangular_in_place;
use faer::{Accum, Par};
use rayon::prelude::*;

/// Overwrites the q_mu and q_sqrt of each listed member of `params` with the optimal q for its
/// hyperparameters and Z on `data` (its observed points), members in parallel. A member whose
/// k(Z, Z) cannot be factorised at the largest jitter, or whose result is not finite, keeps its
/// q (its evaluation then reports the failure).
pub(crate) fn set_optimal_q(data: &Dataset, params: &mut SvgpParams, members: &[usize], opts: &ElboOptions) {
    let found: Vec<Option<(Vec<f64>, Vec<f64>)>> = members
        .par_iter()
        .map(|&b| {
            if data.n_observed(b) == 0 {
                return None;
            }
            let (lambda, h) = target(data, b, params, b, 1.0, opts)?;
            finish(lambda, &h, params.n_inducing())
        })
        .collect();
    store(params, members, found);
}

/// One natural-gradient step of q on a mini-batch (Salimbeni et al. 2018, whitened): member
/// `members[i]` of `params` moves its natural parameters (Lambda = S^-1, Lambda q_mu) a fraction
/// `gamma[i]` of the way to the mini-batch's estimate of the optimum's, whose precision
/// I + scale A W A^T and scale A W r are unbiased for the full data's (`sub` member i holds the
/// drawn points, `scale[i]` = n / S). With gamma 1 on the full data this is the closed form
/// above; with a decreasing gamma it averages the draws (stochastic approximation), so q tracks
/// its optimum for the moving hyperparameters and Z at the cost of the ELBO on the batch.
pub(crate) fn natural_step(
    sub: &Dataset,
    params: &mut SvgpParams,
    members: &[usize],
    scale: &[f64],
    gamma: &[f64],
    opts: &ElboOptions,
) {
    let m = params.n_inducing();
    let found: Vec<Option<(Vec<f64>, Vec<f64>)>> = (0..members.len())
        .into_par_iter()
        .map(|i| {
            let b = members[i];
            if sub.n_observed(i) == 0 {
                return None;
            }
            let (mut lambda, mut h) = target(sub, i, params, b, scale[i], opts)?;
            let g = gamma[i];
            if g < 1.0 {
                // The current natural parameters: Lambda = (R R^T)^-1 with R = q_sqrt, and
                // Lambda q_mu. A q_sqrt that cannot be inverted takes the estimate whole.
                if let Some((cur, cur_h)) = natural(params, b) {
                    for (t, c) in lambda.iter_mut().zip(&cur) {
                        *t = (1.0 - g) * c + g * *t;
                    }
                    for (t, c) in h.iter_mut().zip(&cur_h) {
                        *t = (1.0 - g) * c + g * *t;
                    }
                }
            }
            finish(lambda, &h, m)
        })
        .collect();
    store(params, members, found);
}

/// Writes each found (q_mu, q_sqrt row-major) into its member; None keeps the member's q.
fn store(params: &mut SvgpParams, members: &[usize], found: Vec<Option<(Vec<f64>, Vec<f64>)>>) {
    let m = params.n_inducing();
    for (&b, q) in members.iter().zip(found) {
        if let Some((q_mu, q_sqrt)) = q {
            for i in 0..m {
                params.q_mu[[b, i]] = q_mu[i];
                for j in 0..m {
                    params.q_sqrt[[b, i, j]] = q_sqrt[i * m + j];
                }
            }
        }
    }
}

/// Member b's natural parameters (Lambda column-major (M, M), Lambda q_mu), or None when its
/// q_sqrt is singular.
fn natural(params: &SvgpParams, b: usize) -> Option<(Vec<f64>, Vec<f64>)> {
    let m = params.n_inducing();
    let r = q_of::<f64>(params, b);
    if (0..m).any(|j| !(r[j * m + j].abs() > 0.0 && r[j * m + j].is_finite())) {
        return None;
    }
    let lambda = inverse_gram(&r, m);
    let h: Vec<f64> = (0..m).map(|i| (0..m).map(|j| lambda[j * m + i] * params.q_mu[[b, j]]).sum()).collect();
    Some((lambda, h))
}

/// (L L^T)^-1 = L^-T L^-1 of a column-major lower-triangular (M, M) factor with a nonzero
/// diagonal.
fn inverse_gram(l: &[f64], m: usize) -> Vec<f64> {
    let mut inv = identity(m);
    solve_lower_triangular_in_place(mat(l, m, m), mat_mut(&mut inv, m, m), Par::Seq);
    let mut out = vec![0.0; m * m];
    let iv = mat(&inv, m, m);
    matmul(mat_mut(&mut out, m, m), Accum::Replace, iv.transpose(), iv, 1.0, Par::Seq);
    out
}

fn identity(m: usize) -> Vec<f64> {
    let mut a = vec![0.0; m * m];
    for j in 0..m {
        a[j * m + j] = 1.0;
    }
    a
}

/// The optimum's natural parameters estimated from member `i` of `data` for member b of
/// `params`: (I + scale A W A^T column-major, scale A W r), or None when k(Z, Z) cannot be
/// factorised at the largest jitter. Z's side (centre, scaling, k(Z, Z), its jittered factor) is
/// the ELBO's own `inducing`.
fn target(
    data: &Dataset,
    i: usize,
    params: &SvgpParams,
    b: usize,
    scale: f64,
    opts: &ElboOptions,
) -> Option<(Vec<f64>, Vec<f64>)> {
    let (m, d) = (params.n_inducing(), params.n_dims());
    let ind = inducing::<f64>(params, b, opts, false);
    if ind.status == Status::Failed {
        return None;
    }
    let hyp = &params.hyp;
    let obs = data.observed(i);
    let n = obs.len();
    let xs = scaled::<f64>(data.x().member(i), &obs, &ind.centre, hyp.lengthscale.row(b));
    // A = L^-1 k(Z, X) (m, n), then Aw = A (scale W)^(1/2) and h = scale A W r.
    let (mut a, _) = covariance(&ind.zs, m, &xs, n, d, Cov::of(hyp, b), false);
    solve_lower_triangular_in_place(mat(&ind.l, m, m), mat_mut(&mut a, m, n), Par::Seq);
    let (noise, mean) = (hyp.noise[b], hyp.mean[b]);
    let mut h = vec![0.0; m];
    for (col, &j) in obs.iter().enumerate() {
        let w = scale / (noise + data.yvar_at(i, j));
        let r = data.y()[[i, j]] - mean;
        let (ws, wr) = (w.sqrt(), w * r);
        for (hj, aj) in h.iter_mut().zip(&mut a[col * m..(col + 1) * m]) {
            *hj += *aj * wr;
            *aj *= ws;
        }
    }
    // Lambda = I + Aw Aw^T.
    let mut lambda = identity(m);
    let aw = mat(&a, m, n);
    matmul(mat_mut(&mut lambda, m, m), Accum::Add, aw, aw.transpose(), 1.0, Par::Seq);
    Some((lambda, h))
}

/// q from its natural parameters: S = Lambda^-1 = LB^-T LB^-1 (Lambda = LB LB^T), q_mu = S h,
/// q_sqrt = chol(S) row-major with zeros above the diagonal; None when Lambda is not positive
/// definite or the result is not finite.
fn finish(mut lambda: Vec<f64>, h: &[f64], m: usize) -> Option<(Vec<f64>, Vec<f64>)> {
    if !factor(&mut lambda, m) {
        return None;
    }
    // `factor` leaves the upper triangle as it was: the factor is the lower one alone.
    for j in 0..m {
        lambda[j * m..j * m + j].fill(0.0);
    }
    let mut cov = inverse_gram(&lambda, m);
    let q_mu: Vec<f64> = (0..m).map(|i| (0..m).map(|j| cov[j * m + i] * h[j]).sum()).collect();
    if !factor(&mut cov, m) || q_mu.iter().any(|v| !v.is_finite()) {
        return None;
    }
    let q_sqrt = (0..m * m).map(|ij| if ij % m <= ij / m { cov[(ij % m) * m + ij / m] } else { 0.0 }).collect();
    Some((q_mu, q_sqrt))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::data::{Hyperparameters, Inputs};
    use crate::svgp::ElboRequest;
    use ndarray::{Array2, Array3};

    /// At the optimal q the ELBO's gradient in q_mu and q_sqrt vanishes, and any other q gives
    /// less: the defining property, checked with the backend's own ELBO and gradient.
    #[test]
    fn the_optimal_q_is_a_stationary_maximum_of_the_elbo() {
        let (n, m) = (40, 6);
        let x = Array3::from_shape_fn((2, n, 1), |(b, i, _)| i as f64 / n as f64 * 3.0 + b as f64);
        let y = Array2::from_shape_fn((2, n), |(b, i)| ((i as f64) * 0.37).sin() + 0.1 * (b as f64 + (i % 3) as f64));
        let yvar = Array2::from_shape_fn((2, n), |(_, i)| 0.01 * (i % 4) as f64);
        let data = Dataset::new(Inputs::Batched(x), y).unwrap().with_yvar(yvar).unwrap();
        let z = Array3::from_shape_fn((2, m, 1), |(b, j, _)| j as f64 * 0.5 + b as f64 + 0.1);
        let mut hyp = Hyperparameters::broadcast(2, &[0.7], 1.3, 0.05, 0.2);
        hyp.noise[1] = 0.2;
        let mut p = SvgpParams::whitened_prior(z, hyp);
        let opts = ElboOptions::default();
        set_optimal_q(&data, &mut p, &[0, 1], &opts);
        let r = ElboRequest::new(&data, &p).run().unwrap();
        let g = r.gradient.as_ref().unwrap();
        assert!(g.q_mu.iter().all(|v| v.abs() < 1e-8), "{:?}", g.q_mu);
        for b in 0..2 {
            for i in 0..m {
                for j in 0..=i {
                    assert!(g.q_sqrt[[b, i, j]].abs() < 1e-7, "{}", g.q_sqrt[[b, i, j]]);
                }
            }
        }
        let mut other = p.clone();
        other.q_mu[[0, 2]] += 0.05;
        other.q_sqrt[[1, 3, 1]] += 0.05;
        let r2 = ElboRequest::new(&data, &other).run().unwrap();
        assert!(r2.elbo[0] < r.elbo[0] && r2.elbo[1] < r.elbo[1]);
    }

    /// The natural step on the full data (scale 1): with gamma 1 it is the closed form; the
    /// optimum is its fixed point for any gamma; from another q, gamma = 1/4 lands on the q whose
    /// natural parameters are 3/4 of its own and 1/4 of the optimum's (checked by forming them directly); and a
    /// mini-batch with scale n / S estimates the full data's precision without bias (the mean
    /// over every disjoint batch of a partition is the full-data target).
    #[test]
    fn the_natural_step_blends_natural_parameters_toward_the_optimum() {
        let (n, m) = (24, 5);
        let x = Array3::from_shape_fn((1, n, 1), |(_, i, _)| i as f64 / n as f64 * 4.0);
        let y = Array2::from_shape_fn((1, n), |(_, i)| ((i as f64) * 0.61).cos());
        let yvar = Array2::from_shape_fn((1, n), |(_, i)| 0.02 * (i % 3) as f64);
        let data = Dataset::new(Inputs::Batched(x.clone()), y.clone()).unwrap().with_yvar(yvar.clone()).unwrap();
        let z = Array3::from_shape_fn((1, m, 1), |(_, j, _)| j as f64 * 0.9 + 0.2);
        let hyp = Hyperparameters::broadcast(1, &[0.8], 1.1, 0.07, 0.1);
        let opts = ElboOptions::default();
        let start = SvgpParams::whitened_prior(z, hyp);
        let close = |a: &SvgpParams, b: &SvgpParams, tol: f64| {
            let d1 = (&a.q_mu - &b.q_mu).iter().fold(0.0f64, |t, v| t.max(v.abs()));
            let d2 = (&a.q_sqrt - &b.q_sqrt).iter().fold(0.0f64, |t, v| t.max(v.abs()));
            assert!(d1 < tol && d2 < tol, "q differs by {d1}, {d2}");
        };
        let mut best = start.clone();
        set_optimal_q(&data, &mut best, &[0], &opts);
        let mut one = start.clone();
        natural_step(&data, &mut one, &[0], &[1.0], &[1.0], &opts);
        close(&one, &best, 1e-12);
        let mut fixed = best.clone();
        natural_step(&data, &mut fixed, &[0], &[1.0], &[0.3], &opts);
        close(&fixed, &best, 1e-10);
        // A quarter of the way from N(0, I): natural parameters (3 I + L*) / 4 and h* / 4.
        let mut half = start.clone();
        natural_step(&data, &mut half, &[0], &[1.0], &[0.25], &opts);
        let (l_best, h_best) = natural(&best, 0).unwrap();
        let lambda: Vec<f64> = l_best.iter().zip(identity(m)).map(|(a, b)| 0.25 * a + 0.75 * b).collect();
        let h: Vec<f64> = h_best.iter().map(|v| 0.25 * v).collect();
        let (q_mu, q_sqrt) = finish(lambda, &h, m).unwrap();
        let mut want = start.clone();
        store(&mut want, &[0], vec![Some((q_mu, q_sqrt))]);
        close(&half, &want, 1e-12);
        // Four disjoint batches of 6 with scale 4: their mean target is the full data's.
        let (mut lam, mut hh) = (vec![0.0; m * m], vec![0.0; m]);
        for part in 0..4 {
            let idx: Vec<usize> = (0..n).filter(|i| i % 4 == part).collect();
            let xs = Array3::from_shape_fn((1, idx.len(), 1), |(_, i, _)| x[[0, idx[i], 0]]);
            let ys = Array2::from_shape_fn((1, idx.len()), |(_, i)| y[[0, idx[i]]]);
            let vs = Array2::from_shape_fn((1, idx.len()), |(_, i)| yvar[[0, idx[i]]]);
            let sub = Dataset::new(Inputs::Batched(xs), ys).unwrap().with_yvar(vs).unwrap();
            let (l, h) = target(&sub, 0, &start, 0, 4.0, &opts).unwrap();
            lam.iter_mut().zip(&l).for_each(|(a, b)| *a += b / 4.0);
            hh.iter_mut().zip(&h).for_each(|(a, b)| *a += b / 4.0);
        }
        let (l_full, h_full) = target(&data, 0, &start, 0, 1.0, &opts).unwrap();
        assert!(lam.iter().zip(&l_full).chain(hh.iter().zip(&h_full)).all(|(a, b)| (a - b).abs() < 1e-10));
    }
}
