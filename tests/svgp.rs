//! The SVGP (docs/design.md section 11): the ELBO against an independent dense reference
//! written out point by point, every gradient against central differences (every kernel, with
//! and without yvar, masks and a mini-batch scale), the exact-MLL anchor (Z = X and q at the
//! exact posterior give the MLL; anything else gives less), unbiased mini-batch estimates,
//! batch == loop, ragged == unpadded, isolation of a failing member, f32 against f64, and the
//! posterior against the dense formula.

// Members are indexed into several arrays at once: index loops read better here.
#![allow(clippy::needless_range_loop)]

mod common;

use batchgp::backend::cpu::CpuBackend;
use batchgp::svgp::{ElboOptions, ElboRequest, SvgpParams};
use batchgp::{Backend, Dataset, Hyperparameters, Inputs, Kernel, Precision, PredictOptions, Status};
use common::*;
use ndarray::{s, Array1, Array2, Array3, Axis};
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;

/// Random SVGP parameters for the members of `hyp`: Z uniform on [0, 1]^D, q_mu ~ N(0, 0.5^2)
/// elementwise, q_sqrt lower with diagonal in [0.4, 1.2] and small off-diagonal entries (and
/// garbage above the diagonal, which must be ignored).
fn random_params(hyp: &Hyperparameters, m: usize, seed: u64) -> SvgpParams {
    let mut rng = ChaCha8Rng::seed_from_u64(seed);
    let (b, d) = (hyp.batch_size(), hyp.n_dims());
    let z = Array3::from_shape_fn((b, m, d), |_| rng.random::<f64>());
    let q_mu = Array2::from_shape_fn((b, m), |_| rng.random::<f64>() - 0.5);
    let q_sqrt = Array3::from_shape_fn((b, m, m), |(_, i, j)| match i.cmp(&j) {
        std::cmp::Ordering::Equal => 0.4 + 0.8 * rng.random::<f64>(),
        std::cmp::Ordering::Greater => 0.2 * (rng.random::<f64>() - 0.5),
        std::cmp::Ordering::Less => 99.0,
    });
    SvgpParams::new(z, q_mu, q_sqrt, hyp.clone()).unwrap()
}

fn with_kernel(hyp: &Hyperparameters, kernel: Kernel) -> Hyperparameters {
    let mut h = hyp.clone().with_kernel(kernel);
    if let Some(a) = h.alpha.as_mut() {
        for (i, v) in a.iter_mut().enumerate() {
            *v = 0.7 + 0.4 * i as f64;
        }
    }
    h
}

/// The ELBO of member b written out point by point (docs/design.md section 11), with the
/// variational covariance S = Q Q^T formed and log|S| from its own Cholesky factor.
fn dense_elbo(data: &Dataset, p: &SvgpParams, b: usize, c: f64) -> f64 {
    let hyp = &p.hyp;
    let (x, _) = member_points(data, hyp, b);
    let obs = data.observed(b);
    let (m, n) = (p.n_inducing(), x.nrows());
    let ls: Vec<f64> = hyp.lengthscale.row(b).to_vec();
    let (s, noise, mean, alpha) = (hyp.outputscale[b], hyp.noise[b], hyp.mean[b], hyp.alpha_of(b));
    let z = p.z.index_axis(Axis(0), b).to_owned();
    let mut kzz = dense_kernel(hyp.kernel, &z, &z, &ls, s, alpha);
    for j in 0..m {
        kzz[[j, j]] += 1e-6 * s;
    }
    let l = dense_cholesky(&kzz).expect("k(Z, Z) SPD");
    let kzx = dense_kernel(hyp.kernel, &z, &x, &ls, s, alpha);
    // A = L^-1 Kzx by forward substitution.
    let mut a = kzx.clone();
    for i in 0..n {
        for j in 0..m {
            let mut t = a[[j, i]];
            for k in 0..j {
                t -= l[[j, k]] * a[[k, i]];
            }
            a[[j, i]] = t / l[[j, j]];
        }
    }
    let q = Array2::from_shape_fn((m, m), |(i, j)| if j <= i { p.q_sqrt[[b, i, j]] } else { 0.0 });
    let sm = q.dot(&q.t());
    let q_mu = p.q_mu.row(b).to_owned();
    let mut total = 0.0;
    for (i, &oi) in obs.iter().enumerate() {
        let ai = a.column(i);
        let mu = mean + ai.dot(&q_mu);
        let var = s - ai.dot(&ai) + ai.dot(&sm.dot(&ai));
        let sig2 = noise + data.yvar_at(b, oi);
        let y = data.y()[[b, oi]];
        total += -0.5 * (2.0 * std::f64::consts::PI * sig2).ln() - ((y - mu).powi(2) + var) / (2.0 * sig2);
    }
    let ls_s = dense_cholesky(&sm).expect("S SPD");
    let logdet: f64 = (0..m).map(|k| 2.0 * ls_s[[k, k]].ln()).sum();
    let trace: f64 = (0..m).map(|k| sm[[k, k]]).sum();
    c * total - 0.5 * (trace + q_mu.dot(&q_mu) - m as f64 - logdet)
}

fn elbo_values(be: &dyn Backend, data: &Dataset, p: &SvgpParams, scale: Option<&[f64]>, prec: Precision) -> Vec<f64> {
    let opts = ElboOptions { gradient: false, ..ElboOptions::new(prec) };
    be.elbo(data, p, None, scale, &opts).unwrap().elbo.to_vec()
}

fn masked_batch(b: usize, n: usize, d: usize, seed: u64) -> (Dataset, Hyperparameters) {
    let (data, hyp) = random_batch(b, n, d, seed);
    let mask = Array2::from_shape_fn((b, n), |(m, i)| (i + m) % 4 != 1);
    let mut y = data.y().clone();
    for ((m, i), v) in y.indexed_iter_mut() {
        if !mask[[m, i]] {
            *v = f64::NAN;
        }
    }
    let masked = Dataset::with_mask(data.x().clone(), y, Some(mask)).unwrap();
    (masked, hyp)
}

fn with_yvar(data: &Dataset, seed: u64) -> Dataset {
    let mut rng = ChaCha8Rng::seed_from_u64(seed);
    let yvar = Array2::from_shape_fn((data.batch_size(), data.n_points()), |_| 0.05 * rng.random::<f64>());
    data.clone().with_yvar(yvar).unwrap()
}

#[test]
fn elbo_matches_the_dense_reference_for_every_kernel() {
    let be = CpuBackend::new();
    for kernel in Kernel::ALL {
        for yvar in [false, true] {
            let (data, hyp) = masked_batch(3, 30, 2, 11);
            let data = if yvar { with_yvar(&data, 5) } else { data };
            let p = random_params(&with_kernel(&hyp, kernel), 7, 3);
            let scale = [1.0, 2.5, 0.5];
            let got = elbo_values(&be, &data, &p, Some(&scale), Precision::F64);
            for b in 0..3 {
                let want = dense_elbo(&data, &p, b, scale[b]);
                assert_close(got[b], want, 1e-10, &format!("{kernel} yvar={yvar} member {b}"));
            }
        }
    }
}

/// Moves one coordinate of the parameters by a step.
type Shift = Box<dyn Fn(&mut SvgpParams, f64)>;

/// Central differences of the ELBO in every coordinate of member b, against the gradient.
fn check_gradient(be: &dyn Backend, data: &Dataset, p: &SvgpParams, scale: &[f64], what: &str) {
    check_gradient_except(be, data, p, scale, what, &|_| false)
}

fn check_gradient_except(
    be: &dyn Backend,
    data: &Dataset,
    p: &SvgpParams,
    scale: &[f64],
    what: &str,
    skip: &dyn Fn(&str) -> bool,
) {
    let opts = ElboOptions::new(Precision::F64);
    let r = be.elbo(data, p, None, Some(scale), &opts).unwrap();
    let g = r.gradient.as_ref().unwrap();
    let (bsz, m, d) = (p.batch_size(), p.n_inducing(), p.n_dims());
    let h = 1e-5;
    for b in 0..bsz {
        let mut checks: Vec<(String, f64, Shift)> = Vec::new();
        for j in 0..m {
            for k in 0..d {
                checks.push((format!("z[{j},{k}]"), g.z[[b, j, k]], Box::new(move |q, e| q.z[[b, j, k]] += e)));
            }
            checks.push((format!("q_mu[{j}]"), g.q_mu[[b, j]], Box::new(move |q, e| q.q_mu[[b, j]] += e)));
            for i in j..m {
                checks.push((
                    format!("q_sqrt[{i},{j}]"),
                    g.q_sqrt[[b, i, j]],
                    Box::new(move |q, e| q.q_sqrt[[b, i, j]] += e),
                ));
            }
            for i in 0..j {
                assert_eq!(g.q_sqrt[[b, i, j]], 0.0, "{what}: gradient above the diagonal");
            }
        }
        for k in 0..d {
            checks.push((
                format!("log l[{k}]"),
                g.hyp.log_lengthscale[[b, k]],
                Box::new(move |q, e| q.hyp.lengthscale[[b, k]] *= e.exp()),
            ));
        }
        checks.push(("log s".into(), g.hyp.log_outputscale[b], Box::new(move |q, e| q.hyp.outputscale[b] *= e.exp())));
        checks.push(("log noise".into(), g.hyp.log_noise[b], Box::new(move |q, e| q.hyp.noise[b] *= e.exp())));
        checks.push(("mean".into(), g.hyp.mean[b], Box::new(move |q, e| q.hyp.mean[b] += e)));
        if let Some(a) = &g.hyp.log_alpha {
            checks.push(("log alpha".into(), a[b], Box::new(move |q, e| q.hyp.alpha.as_mut().unwrap()[b] *= e.exp())));
        }
        let big = checks.iter().fold(1f64, |acc, c| acc.max(c.1.abs()));
        for (name, analytic, shift) in &checks {
            assert!(analytic.is_finite(), "{what}, member {b}, d/d {name} = {analytic}");
            if skip(name) {
                continue;
            }
            let mut plus = p.clone();
            shift(&mut plus, h);
            let mut minus = p.clone();
            shift(&mut minus, -h);
            let fp = elbo_values(be, data, &plus, Some(scale), Precision::F64)[b];
            let fm = elbo_values(be, data, &minus, Some(scale), Precision::F64)[b];
            let fd = (fp - fm) / (2.0 * h);
            assert!(
                (fd - analytic).abs() <= 2e-6 * big,
                "{what}, member {b}, d/d {name}: analytic {analytic} vs central difference {fd} (largest component {big})"
            );
        }
    }
}

#[test]
fn gradients_match_central_differences_for_every_kernel() {
    let be = CpuBackend::new();
    for kernel in Kernel::ALL {
        for (yvar, masked) in [(false, false), (true, true)] {
            let (data, hyp) = if masked { masked_batch(2, 25, 2, 21) } else { random_batch(2, 25, 2, 21) };
            let data = if yvar { with_yvar(&data, 8) } else { data };
            let p = random_params(&with_kernel(&hyp, kernel), 6, 4);
            check_gradient(&be, &data, &p, &[1.0, 3.0], &format!("{kernel} yvar={yvar} masked={masked}"));
        }
    }
}

#[test]
fn coincident_inducing_and_data_points_give_finite_gradients() {
    // Matérn 1/2's psi is singular at r = 0: a data point on an inducing input must not give NaN.
    let be = CpuBackend::new();
    let (data, hyp) = random_batch(1, 12, 1, 2);
    let mut p = random_params(&with_kernel(&hyp, Kernel::Matern12), 4, 9);
    let x0 = data.x().member(0)[[3, 0]];
    p.z[[0, 0, 0]] = x0;
    // exp(-|x - z| / l) has a kink in z there: its z gradient is one of the one-sided
    // derivatives, so only finiteness is checked for it; every other coordinate is smooth.
    check_gradient_except(&be, &data, &p, &[1.0], "matern12 with z on a data point", &|name| name == "z[0,0]");
}

/// With Z = X and jitter eps s: the optimal whitened q for a member, S = (I + A A^T / sigma2)^-1
/// and q_mu = S A r / sigma2 with A = L^-1 k(X, X), L L^T = k(X, X) + eps s I; and Titsias'
/// collapsed bound log N(r | 0, A^T A + sigma2 I) - tr(k(X, X) - A^T A) / (2 sigma2), which the
/// ELBO at that q equals.
fn optimal_q_and_bound(data: &Dataset, hyp: &Hyperparameters, eps: f64) -> (SvgpParams, Vec<f64>) {
    let b = data.batch_size();
    let n = data.n_points();
    let d = data.n_dims();
    let mut z = Array3::zeros((b, n, d));
    let mut q_mu = Array2::zeros((b, n));
    let mut q_sqrt = Array3::zeros((b, n, n));
    let mut bound = vec![0.0; b];
    for m in 0..b {
        let (x, r) = member_points(data, hyp, m);
        let ls: Vec<f64> = hyp.lengthscale.row(m).to_vec();
        let (s, sig2) = (hyp.outputscale[m], hyp.noise[m]);
        let k = dense_kernel(hyp.kernel, &x, &x, &ls, s, hyp.alpha_of(m));
        let mut kzz = k.clone();
        for j in 0..n {
            kzz[[j, j]] += eps * s;
        }
        let l = dense_cholesky(&kzz).unwrap();
        let mut a = Array2::zeros((n, n));
        for j in 0..n {
            // Column j of A = L^-1 k(X, x_j) by forward substitution.
            for i in 0..n {
                let mut t = k[[i, j]];
                for q in 0..i {
                    t -= l[[i, q]] * a[[q, j]];
                }
                a[[i, j]] = t / l[[i, i]];
            }
        }
        let mut prec = a.dot(&a.t()) / sig2;
        for j in 0..n {
            prec[[j, j]] += 1.0;
        }
        let lp = dense_cholesky(&prec).unwrap();
        let rhs = a.dot(&r) / sig2;
        q_mu.row_mut(m).assign(&dense_solve(&lp, &rhs));
        let mut sm = Array2::<f64>::zeros((n, n));
        for j in 0..n {
            let e = Array1::from_shape_fn(n, |i| f64::from(u8::from(i == j)));
            sm.column_mut(j).assign(&dense_solve(&lp, &e));
        }
        let sm = (&sm + &sm.t()) * 0.5;
        q_sqrt.slice_mut(s![m, .., ..]).assign(&dense_cholesky(&sm).unwrap());
        z.slice_mut(s![m, .., ..]).assign(&x);
        let qm = a.t().dot(&a);
        let mut cov = qm.clone();
        for j in 0..n {
            cov[[j, j]] += sig2;
        }
        let lc = dense_cholesky(&cov).unwrap();
        let logdet: f64 = (0..n).map(|i| 2.0 * lc[[i, i]].ln()).sum();
        let trace: f64 = (0..n).map(|i| k[[i, i]] - qm[[i, i]]).sum();
        bound[m] = -0.5 * r.dot(&dense_solve(&lc, &r)) - 0.5 * logdet - 0.5 * n as f64 * LN_2PI - trace / (2.0 * sig2);
    }
    (SvgpParams::new(z, q_mu, q_sqrt, hyp.clone()).unwrap(), bound)
}

#[test]
fn elbo_equals_the_exact_mll_at_the_exact_posterior_and_is_lower_elsewhere() {
    let be = CpuBackend::new();
    for kernel in [Kernel::Rbf, Kernel::Matern52, Kernel::Rq] {
        let (data, hyp) = random_batch(3, 10, 2, 31);
        let hyp = with_kernel(&hyp, kernel);
        for eps in [1e-6, 1e-8] {
            let (p, bound) = optimal_q_and_bound(&data, &hyp, eps);
            let opts = ElboOptions {
                gradient: true,
                jitter: batchgp::JitterPolicy { start: eps, retries: 0 },
                ..ElboOptions::new(Precision::F64)
            };
            let r = be.elbo(&data, &p, None, None, &opts).unwrap();
            for b in 0..3 {
                let mll = dense_mll(&data, &hyp, b);
                let what = format!("{kernel} eps {eps:e} member {b}");
                // At the optimal q the ELBO is Titsias' collapsed bound, and its gradient in q is 0.
                assert_close(r.elbo[b], bound[b], 1e-9, &format!("{what}: elbo vs collapsed bound"));
                let g = r.gradient.as_ref().unwrap();
                assert!(g.q_mu.row(b).iter().all(|v| v.abs() < 1e-6), "{what}: grad q_mu {:?}", g.q_mu.row(b));
                // With Z = X the bound is the exact MLL up to the jitter: O(eps s n / noise).
                let gap = mll - r.elbo[b];
                let allowed = 100.0 * eps * hyp.outputscale[b] * 10.0 / hyp.noise[b];
                assert!(
                    gap >= -1e-9 && gap < allowed,
                    "{what}: mll {mll} - elbo {} = {gap:e} (allowed {allowed:e})",
                    r.elbo[b]
                );
                // Any other q or Z is lower.
                let mut other = p.clone();
                other.q_mu[[b, 0]] += 0.1;
                assert!(elbo_values(&be, &data, &other, None, Precision::F64)[b] < mll);
                let rp = random_params(&hyp, 5, 40 + b as u64);
                assert!(elbo_values(&be, &data, &rp, None, Precision::F64)[b] < mll);
            }
        }
    }
}

#[test]
fn mini_batch_estimates_average_to_the_full_elbo() {
    // Split each member's 24 points into 4 disjoint batches of 6 with c = 24 / 6: the mean of the
    // four estimates is the full ELBO (the KL term appears once in each).
    let be = CpuBackend::new();
    let (data, hyp) = random_batch(2, 24, 1, 5);
    let p = random_params(&hyp, 5, 6);
    let full = elbo_values(&be, &data, &p, None, Precision::F64);
    let mut mean = [0.0; 2];
    for part in 0..4 {
        let idx: Vec<usize> = (0..24).filter(|i| i % 4 == part).collect();
        let x = match data.x() {
            Inputs::Batched(x) => x.select(Axis(1), &idx),
            Inputs::Shared(_) => unreachable!(),
        };
        let sub = Dataset::new(x, data.y().select(Axis(1), &idx)).unwrap();
        let est = elbo_values(&be, &sub, &p, Some(&[4.0, 4.0]), Precision::F64);
        for b in 0..2 {
            mean[b] += est[b] / 4.0;
        }
    }
    for b in 0..2 {
        assert_close(mean[b], full[b], 1e-12, &format!("member {b}"));
    }
}

#[test]
fn batch_equals_loop_and_ragged_equals_unpadded() {
    let be = CpuBackend::new();
    let (data, hyp) = masked_batch(4, 20, 2, 51);
    let p = random_params(&hyp, 5, 7);
    let opts = ElboOptions::new(Precision::F64);
    let all = be.elbo(&data, &p, None, None, &opts).unwrap();
    let ga = all.gradient.as_ref().unwrap();
    for b in 0..4 {
        // The member alone, with its padding removed.
        let obs = data.observed(b);
        let x = data.x().member(b).select(Axis(0), &obs).insert_axis(Axis(0)).to_owned();
        let y = data.y().row(b).select(Axis(0), &obs).insert_axis(Axis(0)).to_owned();
        let one = Dataset::new(x, y).unwrap();
        let pb = p.select(&[b]);
        let r = be.elbo(&one, &pb, None, None, &opts).unwrap();
        let g = r.gradient.as_ref().unwrap();
        assert_close(r.elbo[0], all.elbo[b], 1e-12, "elbo");
        assert_all_close(
            g.z.as_slice().unwrap(),
            ga.z.index_axis(Axis(0), b).to_owned().as_slice().unwrap(),
            1e-10,
            "grad z",
        );
        assert_all_close(
            g.q_sqrt.as_slice().unwrap(),
            ga.q_sqrt.index_axis(Axis(0), b).to_owned().as_slice().unwrap(),
            1e-10,
            "grad q_sqrt",
        );
        assert_close(g.hyp.log_noise[0], ga.hyp.log_noise[b], 1e-10, "grad log noise");
        // A listed subset answers in its order.
        let listed = be.elbo(&data, &p, Some(&[b, 0]), None, &opts).unwrap();
        assert_eq!(listed.elbo[0], all.elbo[b]);
        assert_eq!(listed.elbo[1], all.elbo[0]);
    }
}

#[test]
fn a_failing_member_is_isolated_and_an_empty_member_keeps_its_kl() {
    let be = CpuBackend::new();
    let (data, hyp) = random_batch(3, 10, 1, 61);
    let mut p = random_params(&hyp, 4, 8);
    let clean = elbo_values(&be, &data, &p, None, Precision::F64);
    p.hyp.outputscale[1] = f64::INFINITY;
    let r = be.elbo(&data, &p, None, None, &ElboOptions::new(Precision::F64)).unwrap();
    assert_eq!(r.status[1], Status::Failed);
    assert!(r.elbo[1].is_nan());
    assert!(r.gradient.as_ref().unwrap().q_mu.row(1).iter().all(|v| v.is_nan()));
    assert_eq!(r.elbo[0], clean[0]);
    assert_eq!(r.elbo[2], clean[2]);
    // A member with no observed point: status Empty, the ELBO is -KL(q || p).
    let mask = Array2::from_shape_fn((3, 10), |(m, _)| m != 2);
    let data = Dataset::with_mask(data.x().clone(), data.y().clone(), Some(mask)).unwrap();
    let p = random_params(&hyp, 4, 8);
    let r = be.elbo(&data, &p, None, None, &ElboOptions::new(Precision::F64)).unwrap();
    assert_eq!(r.status[2], Status::Empty);
    assert_close(r.elbo[2], dense_elbo(&data, &p, 2, 1.0), 1e-12, "empty member");
    assert!(r.elbo[2] < 0.0);
}

#[test]
fn f32_agrees_with_f64() {
    let be = CpuBackend::new();
    let (data, hyp) = random_batch(3, 40, 2, 71);
    let p = random_params(&hyp, 8, 9);
    // The same model in both: f32's jitter (1e-4 s) in f64 too.
    let f32_opts = ElboOptions::new(Precision::F32);
    let f64_opts = ElboOptions { jitter: f32_opts.jitter, ..ElboOptions::new(Precision::F64) };
    let a = be.elbo(&data, &p, None, None, &f64_opts).unwrap();
    let b = be.elbo(&data, &p, None, None, &f32_opts).unwrap();
    for m in 0..3 {
        assert_close(a.elbo[m], b.elbo[m], 1e-4, "f32 elbo");
    }
    let (ga, gb) = (a.gradient.unwrap(), b.gradient.unwrap());
    let big = ga.q_mu.iter().fold(1f64, |x, v| x.max(v.abs()));
    for (x, y) in ga.q_mu.iter().zip(gb.q_mu.iter()) {
        assert!((x - y).abs() < 5e-3 * big, "f32 grad q_mu {x} vs {y}");
    }
}

#[test]
fn posterior_matches_the_dense_formula() {
    let be = CpuBackend::new();
    let (_, hyp) = random_batch(2, 10, 2, 81);
    let hyp = with_kernel(&hyp, Kernel::Matern32);
    let p = random_params(&hyp, 6, 10);
    let xt = Array2::from_shape_fn((7, 2), |(i, k)| (i as f64 * 0.13 + k as f64 * 0.31).fract());
    let opts = PredictOptions { full_covariance: true, ..Default::default() };
    let pred = batchgp::svgp::predict(&be, &p, &Inputs::Shared(xt.clone()), &opts).unwrap();
    for b in 0..2 {
        let ls: Vec<f64> = hyp.lengthscale.row(b).to_vec();
        let (s, alpha) = (hyp.outputscale[b], hyp.alpha_of(b));
        let z = p.z.index_axis(Axis(0), b).to_owned();
        let mut kzz = dense_kernel(hyp.kernel, &z, &z, &ls, s, alpha);
        for j in 0..6 {
            kzz[[j, j]] += 1e-6 * s;
        }
        let kinv_chol = dense_cholesky(&kzz).unwrap();
        let kzt = dense_kernel(hyp.kernel, &z, &xt, &ls, s, alpha);
        let ktt = dense_kernel(hyp.kernel, &xt, &xt, &ls, s, alpha);
        let q = Array2::from_shape_fn((6, 6), |(i, j)| if j <= i { p.q_sqrt[[b, i, j]] } else { 0.0 });
        // Unwhitened: m_u = L q_mu, S_u = L S L^T; mean = Ktz Kzz^-1 m_u + m, cov = Ktt - Ktz Kzz^-1 Kzt + Ktz Kzz^-1 S_u Kzz^-1 Kzt.
        let lmat = &kinv_chol;
        let m_u = lmat.dot(&p.q_mu.row(b));
        let s_u = lmat.dot(&q.dot(&q.t())).dot(&lmat.t());
        let mut kinv_kzt = Array2::zeros((6, 7));
        for t in 0..7 {
            kinv_kzt.column_mut(t).assign(&dense_solve(lmat, &kzt.column(t).to_owned()));
        }
        let mean: Array1<f64> = kinv_kzt.t().dot(&m_u) + hyp.mean[b];
        let cov = &ktt - &kzt.t().dot(&kinv_kzt) + &kinv_kzt.t().dot(&s_u).dot(&kinv_kzt);
        assert_all_close(pred.mean.row(b).to_vec().as_slice(), mean.to_vec().as_slice(), 1e-9, "mean");
        let c = pred.covariance.as_ref().unwrap().index_axis(Axis(0), b).to_owned();
        assert_all_close(c.as_slice().unwrap(), cov.as_standard_layout().as_slice().unwrap(), 1e-8, "covariance");
        let var: Vec<f64> = (0..7).map(|t| cov[[t, t]]).collect();
        assert_all_close(pred.var.row(b).to_vec().as_slice(), &var, 1e-8, "variance");
        assert_all_close(
            pred.var_y.row(b).to_vec().as_slice(),
            &var.iter().map(|v| v + hyp.noise[b]).collect::<Vec<_>>(),
            1e-8,
            "var_y",
        );
    }
}

#[test]
fn the_request_adds_priors_and_rejects_bad_shapes() {
    let (data, hyp) = random_batch(2, 12, 1, 91);
    let p = random_params(&hyp, 4, 11);
    let priors = batchgp::Priors::from_toml("[lengthscale]\ngamma = { concentration = 2.0, rate = 1.0 }\n").unwrap();
    let be = CpuBackend::new();
    let plain = ElboRequest::new(&data, &p).on(&be).run().unwrap();
    let map = ElboRequest::new(&data, &p).on(&be).priors(&priors).run().unwrap();
    for b in 0..2 {
        let l = hyp.lengthscale[[b, 0]];
        // Gamma(2, 1): log p(l) = log l - l.
        assert_close(map.log_prior[b], l.ln() - l, 1e-12, "log prior");
        assert_close(map.objective[b], plain.elbo[b] + l.ln() - l, 1e-12, "objective");
        let gp = map.gradient.as_ref().unwrap().hyp.log_lengthscale[[b, 0]];
        let g0 = plain.gradient.as_ref().unwrap().hyp.log_lengthscale[[b, 0]];
        assert_close(gp, g0 + 1.0 - l, 1e-12, "prior gradient (d/dlog l of log l - l)");
    }
    let mut bad = p.clone();
    bad.q_mu = Array2::zeros((2, 3));
    let e = ElboRequest::new(&data, &bad).on(&be).run().unwrap_err();
    assert!(e.to_string().contains("q_mu"), "{e}");
    let mut bad = p.clone();
    bad.z[[1, 2, 0]] = f64::NAN;
    let e = ElboRequest::new(&data, &bad).on(&be).run().unwrap_err();
    assert!(e.to_string().contains("(member 1, index 2)"), "{e}");
}

mod fitting {
    use super::*;
    use batchgp::{FitRequest, Optimizer, SvgpFitRequest, Termination};

    fn sine_batch(b: usize, n: usize, seed: u64) -> Dataset {
        let mut rng = ChaCha8Rng::seed_from_u64(seed);
        let x = Array3::from_shape_fn((b, n, 1), |_| rng.random::<f64>() * 6.0);
        let y = Array2::from_shape_fn((b, n), |(m, i)| {
            (x[[m, i, 0]] * (1.0 + 0.3 * m as f64)).sin() + 0.1 * (rng.random::<f64>() - 0.5)
        });
        Dataset::new(x, y).unwrap()
    }

    #[test]
    fn lbfgs_with_z_at_the_data_reaches_the_exact_optimum() {
        // Z = X held fixed: the ELBO's maximum over q and the hyperparameters is Titsias' bound
        // at Z = X, the exact MLL up to the jitter, so the fit lands on the exact GP's optimum.
        let be = CpuBackend::new();
        let data = sine_batch(3, 20, 1);
        let exact = FitRequest::new(&data).on(&be).run().unwrap();
        let z = match data.x() {
            Inputs::Batched(x) => x.clone(),
            Inputs::Shared(_) => unreachable!(),
        };
        let start = SvgpParams::whitened_prior(z, FitRequest::default_init(&data));
        let fit = SvgpFitRequest::new(&data)
            .on(&be)
            .init(&start)
            .fix_inducing(true)
            .optimizer(Optimizer::Lbfgs)
            .steps(3000)
            .run()
            .unwrap();
        for b in 0..3 {
            assert_eq!(fit.reason[b], Termination::Converged, "member {b}: {:?}", fit.reason[b]);
            assert!(fit.status[b].is_ok());
            assert!(
                fit.model.elbo[b] <= exact.model.mll[b] + 1e-6,
                "member {b}: elbo {} above the exact optimum {}",
                fit.model.elbo[b],
                exact.model.mll[b]
            );
            // The gap is the jitter's: O(eps s n / noise) with eps = 1e-6.
            let (s, noise) = (fit.model.params.hyp.outputscale[b], fit.model.params.hyp.noise[b]);
            let allowed = 1e-4 + 2e-6 * s * 20.0 / noise;
            assert!(
                (fit.model.elbo[b] - exact.model.mll[b]).abs() < allowed,
                "member {b}: elbo {} vs exact mll {} (allowed {allowed:e})",
                fit.model.elbo[b],
                exact.model.mll[b]
            );
            let (ls_s, ls_e) =
                (fit.model.params.hyp.lengthscale[[b, 0]], exact.model.hyperparameters.lengthscale[[b, 0]]);
            assert!((ls_s / ls_e - 1.0).abs() < 1e-2, "member {b}: lengthscale {ls_s} vs {ls_e}");
        }
    }

    #[test]
    fn adam_raises_the_elbo_and_keeps_the_loss_history() {
        let be = CpuBackend::new();
        let data = sine_batch(4, 60, 2);
        let fit = SvgpFitRequest::new(&data).on(&be).num_inducing(8).steps(150).learning_rate(0.05).run().unwrap();
        assert_eq!(fit.model.loss.dim(), (151, 4));
        assert_eq!(fit.model.params.n_inducing(), 8);
        for b in 0..4 {
            let first = fit.model.loss[[0, b]];
            let last = fit.model.loss.column(b).iter().rev().find(|v| v.is_finite()).copied().unwrap();
            assert!(last < first - 10.0, "member {b}: loss {first} -> {last}");
            // The final report is the full-data objective at the kept point.
            assert_close(-fit.objective[b], last, 1e-9, "final loss");
            assert_eq!(fit.iterations[b], 150);
            assert_eq!(fit.reason[b], Termination::IterationLimit);
            assert_eq!(fit.status[b], Status::MaxIter);
        }
    }

    #[test]
    fn batch_fit_equals_member_fits_and_mini_batches_are_reproducible() {
        let be = CpuBackend::new();
        let data = sine_batch(3, 40, 3);
        let run = |d: &Dataset, first: u64| {
            SvgpFitRequest::new(d)
                .on(&be)
                .num_inducing(6)
                .steps(40)
                .batch_size(16)
                .seed(7)
                .first_member(first)
                .run()
                .unwrap()
        };
        let all = run(&data, 0);
        for b in 0..3 {
            let one = data.select(&[b]);
            let alone = run(&one, b as u64);
            assert_eq!(alone.model.elbo[0], all.model.elbo[b], "member {b}");
            assert_eq!(alone.model.params.z.index_axis(Axis(0), 0), all.model.params.z.index_axis(Axis(0), b));
            assert_eq!(alone.model.loss.column(0), all.model.loss.column(b));
        }
        assert_eq!(run(&data, 0), all);
    }

    #[test]
    fn mini_batch_fits_do_not_depend_on_the_thread_count_and_use_yvar() {
        // Members draw, copy and step in parallel, each from its own stream: one thread and
        // three give the same bits, with known noise in the drawn points too.
        let be = CpuBackend::new();
        let data = with_yvar(&sine_batch(5, 40, 6), 6);
        let run = |d: &Dataset| {
            SvgpFitRequest::new(d).on(&be).num_inducing(6).steps(30).batch_size(16).seed(3).run().unwrap()
        };
        let on = |threads: usize, d: &Dataset| {
            rayon::ThreadPoolBuilder::new().num_threads(threads).build().unwrap().install(|| run(d))
        };
        let one = on(1, &data);
        assert_eq!(on(3, &data), one);
        // The drawn points carry their yvar: the first round's loss is a mini-batch estimate
        // from the same start and the same draws, so it differs from the run without yvar
        // only through the copied variances.
        let plain = Dataset::new(
            match data.x() {
                Inputs::Batched(x) => x.clone(),
                Inputs::Shared(_) => unreachable!(),
            },
            data.y().clone(),
        )
        .unwrap();
        let without = on(1, &plain);
        for b in 0..5 {
            let (with_yvar, plain) = (one.model.loss[[0, b]], without.model.loss[[0, b]]);
            assert!(with_yvar.is_finite() && plain.is_finite());
            assert!((with_yvar - plain).abs() > 1e-6 * plain.abs(), "member {b}: {with_yvar} vs {plain}");
        }
    }

    #[test]
    fn mini_batch_fits_reach_the_full_data_optimum() {
        let be = CpuBackend::new();
        let data = sine_batch(2, 200, 4);
        let fit = |batch: Option<usize>, optimal_q: bool| {
            let mut r = SvgpFitRequest::new(&data).on(&be).num_inducing(10).steps(400).learning_rate(0.03);
            if let Some(s) = batch {
                r = r.batch_size(s);
            }
            r.optimal_q(optimal_q).run().unwrap()
        };
        // The full-data fit (q at its closed-form optimum at every step); on mini-batches of 50,
        // q by natural-gradient steps (the default) and, for contrast, q moved by Adam.
        let (full, mini, adam_q) = (fit(None, true), fit(Some(50), true), fit(Some(50), false));
        for b in 0..2 {
            // Reported on the full data: within max(3 nats, 1 %) of the full-data fit.
            let (best, got) = (full.model.elbo[b], mini.model.elbo[b]);
            assert!(best - got < (0.01 * best.abs()).max(3.0), "member {b}: full {best} vs mini {got}");
            // The fitted noise is near the truth (uniform noise of width 0.1: variance 1/1200).
            let sd = mini.model.params.hyp.noise[b].sqrt();
            assert!(sd < 0.1, "member {b}: noise sd {sd}");
            // Adam moving q on the same batches stays far below: why q takes natural steps.
            assert!(adam_q.model.elbo[b] < got - 20.0, "member {b}: adam q {} vs {got}", adam_q.model.elbo[b]);
        }
    }

    /// What a fit told its observer.
    #[derive(Default)]
    struct Recorder {
        members: usize,
        rounds: usize,
        finished: Option<Vec<Status>>,
    }

    impl batchgp::FitObserver for Recorder {
        fn init(&mut self, members: usize) {
            self.members = members;
        }
        fn iter(&mut self, p: &batchgp::FitProgress<'_>) {
            self.rounds = p.iteration;
        }
        fn finish(&mut self, status: &[Status]) {
            self.finished = Some(status.to_vec());
        }
    }

    #[test]
    fn observers_see_every_round_and_the_final_status_of_exact_and_svgp_fits() {
        let be = CpuBackend::new();
        let data = sine_batch(3, 30, 8);
        let mut exact = Recorder::default();
        let fit = FitRequest::new(&data).on(&be).observer(&mut exact).run().unwrap();
        assert_eq!(exact.members, 3 * fit.starts, "restarts are members too");
        assert_eq!(exact.rounds, fit.rounds);
        assert_eq!(exact.finished.as_deref(), Some(&fit.status[..]));
        let mut sparse = Recorder::default();
        let fit = SvgpFitRequest::new(&data).on(&be).num_inducing(5).steps(20).observer(&mut sparse).run().unwrap();
        assert_eq!(sparse.members, 3);
        assert_eq!(sparse.rounds, fit.model.loss.nrows());
        assert_eq!(sparse.finished.as_deref(), Some(&fit.status[..]));
    }

    #[test]
    fn ragged_and_empty_members_and_bad_options() {
        let be = CpuBackend::new();
        let data = sine_batch(3, 30, 5);
        let mask = Array2::from_shape_fn((3, 30), |(m, i)| m != 2 && (m == 0 || i < 20));
        let ragged = Dataset::with_mask(data.x().clone(), data.y().clone(), Some(mask)).unwrap();
        let fit = SvgpFitRequest::new(&ragged).on(&be).num_inducing(5).steps(30).run().unwrap();
        assert_eq!(fit.status[2], Status::Empty);
        assert!(fit.model.elbo[2].is_nan());
        // Member 1 fits as its unpadded 20 points would.
        let x = data.x().member(1).slice(s![..20, ..]).insert_axis(Axis(0)).to_owned();
        let y = data.y().slice(s![1..2, ..20]).to_owned();
        let alone = SvgpFitRequest::new(&Dataset::new(x, y).unwrap())
            .on(&be)
            .num_inducing(5)
            .steps(30)
            .first_member(1)
            .run()
            .unwrap();
        assert_close(alone.model.elbo[0], fit.model.elbo[1], 1e-9, "ragged member");
        let e = SvgpFitRequest::new(&data).on(&be).optimizer(Optimizer::Lbfgs).batch_size(10).run().unwrap_err();
        assert!(e.to_string().contains("batch_size"), "{e}");
        let e = SvgpFitRequest::new(&data).on(&be).learning_rate(0.0).run().unwrap_err();
        assert!(e.to_string().contains("learning_rate"), "{e}");
    }
}
