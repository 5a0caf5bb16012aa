//! The exact MLL and its gradient: closed forms, a dense reference, finite differences,
//! batch == loop, ragged == unpadded, a failing member, f32 against f64. Every test runs on
//! every usable backend.

mod common;
use batchgp::backend::{JitterPolicy, MllOptions};
use batchgp::prior::{Prior, Priors, Target};
use batchgp::{Backend, Dataset, Hyperparameters, Inputs, MllRequest, Precision, Status};
use common::*;
use ndarray::{arr1, arr2, Array2, Array3};

fn mll_of(be: &dyn Backend, data: &Dataset, hyp: &Hyperparameters) -> batchgp::MllReport {
    MllRequest::new(data, hyp).on(be).run().unwrap()
}

#[test]
fn closed_form_n1() {
    on_every_backend(|be| {
        // One point: K = s + noise, mll = -r^2 / (2K) - log(K) / 2 - log(2 pi) / 2.
        let data = Dataset::new(arr2(&[[0.3]]), arr2(&[[1.7]])).unwrap();
        let hyp = Hyperparameters::broadcast(1, &[0.5], 2.0, 0.25, 0.2);
        let r = mll_of(be, &data, &hyp);
        let k: f64 = 2.25;
        let res: f64 = 1.5;
        let want = -0.5 * res * res / k - 0.5 * k.ln() - 0.5 * LN_2PI;
        assert_close(r.mll[0], want, 1e-12, "mll n=1");
        let g = r.gradient.unwrap();
        // d/dm = r / K; d/dlog s = 0.5 s (r^2/K^2 - 1/K); d/dlog noise likewise with noise.
        assert_close(g.mean[0], res / k, 1e-12, "grad mean");
        assert_close(g.log_outputscale[0], 0.5 * 2.0 * (res * res / (k * k) - 1.0 / k), 1e-12, "grad log s");
        assert_close(g.log_noise[0], 0.5 * 0.25 * (res * res / (k * k) - 1.0 / k), 1e-12, "grad log noise");
        assert_close(g.log_lengthscale[[0, 0]], 0.0, 1e-15, "grad log l");
        assert_eq!(r.status, vec![Status::Ok]);
    });
}

#[test]
fn closed_form_n2() {
    on_every_backend(|be| {
        // Two points at distance 1 with l = 2: c = s exp(-1/8); K = [[a, c], [c, a]].
        let data = Dataset::new(arr2(&[[0.0], [1.0]]), arr2(&[[1.0, -0.5]])).unwrap();
        let hyp = Hyperparameters::broadcast(1, &[2.0], 1.5, 0.1, 0.0);
        let r = mll_of(be, &data, &hyp);
        let (a, c) = (1.6f64, 1.5 * (-0.125f64).exp());
        let det = a * a - c * c;
        let (y1, y2) = (1.0, -0.5);
        let quad = (a * y1 * y1 - 2.0 * c * y1 * y2 + a * y2 * y2) / det;
        let want = -0.5 * quad - 0.5 * det.ln() - LN_2PI;
        assert_close(r.mll[0], want, 1e-12, "mll n=2");
    });
}

#[test]
fn matches_dense_reference_shared_and_batched_x() {
    on_every_backend(|be| {
        let (data, hyp) = random_batch(6, 23, 3, 1);
        let r = mll_of(be, &data, &hyp);
        for b in 0..6 {
            assert_close(r.mll[b], dense_mll(&data, &hyp, b), 1e-10, &format!("member {b}"));
        }
        // Shared x: member 0's points for everyone.
        let shared = Inputs::Shared(data.x().member(0).to_owned());
        let data_s = Dataset::new(shared, data.y().clone()).unwrap();
        let r = mll_of(be, &data_s, &hyp);
        for b in 0..6 {
            assert_close(r.mll[b], dense_mll(&data_s, &hyp, b), 1e-10, &format!("shared, member {b}"));
        }
    });
}

/// Central finite differences of the objective in the reported coordinates.
fn check_gradient(be: &dyn Backend, data: &Dataset, hyp: &Hyperparameters, priors: &Priors, tol: f64) {
    let r = MllRequest::new(data, hyp).priors(priors).on(be).run().unwrap();
    let g = r.gradient.unwrap();
    let (b, d) = (data.batch_size(), data.n_dims());
    let h = 1e-5;
    let obj =
        |hp: &Hyperparameters| MllRequest::new(data, hp).priors(priors).on(be).gradient(false).run().unwrap().objective;
    for c in 0..d + 3 {
        let shift = |sign: f64| {
            let mut hp = hyp.clone();
            for m in 0..b {
                match c {
                    c if c < d => hp.lengthscale[[m, c]] *= (sign * h).exp(),
                    c if c == d => hp.outputscale[m] *= (sign * h).exp(),
                    c if c == d + 1 => hp.noise[m] *= (sign * h).exp(),
                    _ => hp.mean[m] += sign * h,
                }
            }
            obj(&hp)
        };
        let fd = (shift(1.0) - shift(-1.0)) / (2.0 * h);
        for m in 0..b {
            let an = match c {
                c if c < d => g.log_lengthscale[[m, c]],
                c if c == d => g.log_outputscale[m],
                c if c == d + 1 => g.log_noise[m],
                _ => g.mean[m],
            };
            assert_close(an, fd[m], tol, &format!("{}: coordinate {c}, member {m}", be.name()));
        }
    }
}

#[test]
fn gradient_matches_finite_differences() {
    on_every_backend(|be| {
        let (data, hyp) = random_batch(3, 30, 3, 2);
        check_gradient(be, &data, &hyp, &Priors::none(), 1e-6);
    });
}

#[test]
fn gradient_with_every_prior_family_matches_finite_differences() {
    on_every_backend(|be| {
        let (data, hyp) = random_batch(3, 15, 2, 3);
        let families = [
            Priors::none()
                .with(Target::Lengthscale, Prior::gamma(vec![2.0, 3.0], vec![4.0, 5.0]))
                .with(Target::Outputscale, Prior::lognormal(0.1, 0.7))
                .with(Target::Noise, Prior::halfcauchy(0.2))
                .with(Target::Mean, Prior::normal(0.3, 0.5)),
            Priors::none()
                .with(
                    Target::Lengthscale,
                    Prior::lognormal(vec![vec![0.1, -0.5], vec![0.0, 0.2], vec![-1.0, 0.4]], 0.8),
                )
                .with(Target::Outputscale, Prior::uniform(0.01, 10.0))
                .with(Target::Noise, Prior::gamma(1.5, vec![2.0, 3.0, 4.0]))
                .with(Target::Mean, Prior::uniform(-5.0, 5.0)),
            Priors::none()
                .with(Target::Lengthscale, Prior::halfcauchy(vec![1.0, 2.0]))
                .with(Target::Noise, Prior::normal(0.05, 0.1))
                .with(Target::Outputscale, Prior::gamma(vec![2.0, 2.5, 3.0], 1.0)),
        ];
        for p in &families {
            check_gradient(be, &data, &hyp, p, 1e-6);
        }
    });
}

#[test]
fn log_prior_matches_closed_forms() {
    let (data, mut hyp) = random_batch(1, 5, 1, 4);
    hyp.lengthscale[[0, 0]] = 0.5;
    hyp.outputscale[0] = 2.0;
    hyp.noise[0] = 0.1;
    hyp.mean[0] = 0.3;
    let priors = Priors::none()
        .with(Target::Lengthscale, Prior::gamma(2.0, 3.0))
        .with(Target::Outputscale, Prior::uniform(1.0, 5.0))
        .with(Target::Noise, Prior::lognormal(-2.0, 0.5))
        .with(Target::Mean, Prior::normal(0.0, 2.0));
    let r = MllRequest::new(&data, &hyp).priors(&priors).backend(batchgp::BackendChoice::Cpu).run().unwrap();
    // Gamma(2, 3) at 0.5: 9 * 0.5 * e^-1.5; Uniform(1,5): 1/4; LogNormal(-2, .5) at .1; Normal(0, 2) at .3.
    let gamma = (9.0 * 0.5 * (-1.5f64).exp()).ln();
    let unif = (0.25f64).ln();
    let z = ((0.1f64).ln() + 2.0) / 0.5;
    let lognormal = -(0.1f64).ln() - (0.5f64).ln() - 0.5 * LN_2PI - 0.5 * z * z;
    let normal = -(2.0f64).ln() - 0.5 * LN_2PI - 0.5 * (0.15f64).powi(2);
    assert_close(r.log_prior[0], gamma + unif + lognormal + normal, 1e-12, "log prior");
    assert_close(r.objective[0], r.mll[0] + r.log_prior[0], 1e-14, "objective");
    // Outside a uniform prior the log prior is -inf.
    hyp.outputscale[0] = 6.0;
    let r = MllRequest::new(&data, &hyp).priors(&priors).backend(batchgp::BackendChoice::Cpu).run().unwrap();
    assert_eq!(r.log_prior[0], f64::NEG_INFINITY);
}

#[test]
fn batch_equals_loop_over_members() {
    on_every_backend(|be| {
        let (data, hyp) = random_batch(7, 19, 2, 5);
        let all = mll_of(be, &data, &hyp);
        for b in 0..7 {
            let one = mll_of(be, &data.select(&[b]), &hyp.select(&[b]));
            assert_eq!(all.mll[b], one.mll[0], "member {b} mll");
            let (ga, go) = (all.gradient.as_ref().unwrap(), one.gradient.as_ref().unwrap());
            assert_eq!(ga.log_lengthscale.row(b), go.log_lengthscale.row(0));
            assert_eq!(ga.log_noise[b], go.log_noise[0]);
        }
        // A subset through the backend's member list equals the same rows of the full batch.
        let sub = be.mll(&data, &hyp, Some(&[5, 2]), &MllOptions::default()).unwrap();
        assert_eq!(sub.mll[0], all.mll[5]);
        assert_eq!(sub.mll[1], all.mll[2]);
    });
}

#[test]
fn ragged_equals_unpadded() {
    on_every_backend(|be| {
        let (data, hyp) = random_batch(4, 20, 3, 6);
        let counts = [20usize, 13, 1, 7];
        // Padded: observed points scattered, NaN in every masked x and y.
        let mut x = Array3::<f64>::from_elem((4, 25, 3), f64::NAN);
        let mut y = Array2::<f64>::from_elem((4, 25), f64::NAN);
        let mut mask = Array2::from_elem((4, 25), false);
        for b in 0..4 {
            for i in 0..counts[b] {
                let slot = (i * 7 + b) % 25;
                assert!(!mask[[b, slot]]);
                mask[[b, slot]] = true;
                y[[b, slot]] = data.y()[[b, i]];
                for k in 0..3 {
                    x[[b, slot, k]] = data.x().member(b)[[i, k]];
                }
            }
        }
        // slots are filled in order of i only if the slot order is increasing; compare with
        // the unpadded members holding the points in slot order.
        let padded = Dataset::with_mask(x, y, Some(mask.clone())).unwrap();
        let r = mll_of(be, &padded, &hyp);
        for b in 0..4 {
            let obs = padded.observed(b);
            let xb = Array2::from_shape_fn((obs.len(), 3), |(i, k)| padded.x().member(b)[[obs[i], k]]);
            let yb = Array2::from_shape_fn((1, obs.len()), |(_, i)| padded.y()[[b, obs[i]]]);
            let one = mll_of(be, &Dataset::new(xb, yb).unwrap(), &hyp.select(&[b]));
            assert_close(r.mll[b], one.mll[0], 1e-12, &format!("member {b} mll"));
            let (g, go) = (r.gradient.as_ref().unwrap(), one.gradient.as_ref().unwrap());
            assert_all_close(
                g.log_lengthscale.row(b).as_slice().unwrap(),
                go.log_lengthscale.row(0).as_slice().unwrap(),
                1e-12,
                "grad l",
            );
            assert_close(g.log_noise[b], go.log_noise[0], 1e-12, "grad noise");
            assert_close(g.mean[b], go.mean[0], 1e-12, "grad mean");
        }
    });
}

#[test]
fn failing_member_does_not_spoil_the_others() {
    on_every_backend(|be| {
        let (data, mut hyp) = random_batch(5, 16, 2, 7);
        hyp.outputscale[2] = 800f64.exp();
        let r = mll_of(be, &data, &hyp);
        assert_eq!(r.status[2], Status::Failed);
        assert!(r.mll[2].is_nan());
        assert!(r.gradient.as_ref().unwrap().log_lengthscale.row(2).iter().all(|v| v.is_nan()));
        for b in [0, 1, 3, 4] {
            let one = mll_of(be, &data.select(&[b]), &hyp.select(&[b]));
            assert_eq!(r.status[b], Status::Ok);
            assert_eq!(r.mll[b], one.mll[0]);
        }
    });
}

#[test]
fn jitter_escalates_per_member_and_is_reported() {
    on_every_backend(|be| {
        // Member 1 has duplicated points and a noise far below round-off: K is singular to
        // working precision and needs jitter; member 0 does not.
        let x = Array3::from_shape_fn((2, 6, 1), |(b, i, _)| if b == 1 { (i / 2) as f64 } else { i as f64 });
        let y = Array2::from_shape_fn((2, 6), |(_, i)| (i as f64).sin());
        let data = Dataset::new(x, y).unwrap();
        let mut hyp = Hyperparameters::broadcast(2, &[1.0], 1.0, 0.1, 0.0);
        hyp.noise[1] = 1e-300;
        let r = mll_of(be, &data, &hyp);
        assert_eq!(r.status[0], Status::Ok);
        assert_eq!(r.jitter[0], 0.0);
        assert_eq!(r.status[1], Status::Jitter);
        let policy = JitterPolicy::for_precision(Precision::F64);
        // The jitter is one of the policy's steps, relative to the mean diagonal (1 + 1e-300).
        let steps: Vec<f64> = (1..=policy.retries).map(|k| policy.jitter(k, 1.0)).collect();
        assert!(steps.iter().any(|s| (s - r.jitter[1]).abs() < 1e-20), "jitter {} not in {steps:?}", r.jitter[1]);
        // With that jitter as noise, the dense reference agrees.
        let mut hj = hyp.clone();
        hj.noise[1] = r.jitter[1];
        assert_close(r.mll[1], dense_mll(&data, &hj, 1), 1e-8, "jittered mll");
    });
}

#[test]
fn f32_agrees_with_f64() {
    on_every_backend(|be| {
        let (data, hyp) = random_batch(4, 40, 3, 8);
        let a = MllRequest::new(&data, &hyp).on(be).run().unwrap();
        let b = MllRequest::new(&data, &hyp).on(be).precision(Precision::F32).run().unwrap();
        assert_all_close(a.mll.as_slice().unwrap(), b.mll.as_slice().unwrap(), 1e-4, "f32 mll");
        let (ga, gb) = (a.gradient.unwrap(), b.gradient.unwrap());
        // Gradients are differences of large terms: compare against the gradient's own scale.
        let scale = ga.log_lengthscale.iter().fold(1f64, |m, v| m.max(v.abs()));
        for (x, y) in ga.log_lengthscale.iter().zip(gb.log_lengthscale.iter()) {
            assert!((x - y).abs() <= 1e-3 * scale, "f32 grad {x} vs {y}");
        }
    });
}

#[test]
fn gram_and_cholesky_match_dense() {
    on_every_backend(|be| {
        let (data, hyp) = random_batch(3, 12, 2, 9);
        let mask = Array2::from_shape_fn((3, 12), |(b, i)| !(b == 1 && i % 3 == 0));
        let data = Dataset::with_mask(data.x().clone(), data.y().clone(), Some(mask)).unwrap();
        let k = be.gram(&data, &hyp, Precision::F64).unwrap();
        for b in 0..3 {
            let ls: Vec<f64> = hyp.lengthscale.row(b).to_vec();
            let xb = data.x().member(b).to_owned();
            let want = rbf(&xb, &xb, &ls, hyp.outputscale[b]);
            for i in 0..12 {
                for j in 0..12 {
                    let expect = if !data.is_observed(b, i) || !data.is_observed(b, j) {
                        if i == j {
                            1.0
                        } else {
                            0.0
                        }
                    } else {
                        want[[i, j]] + if i == j { hyp.noise[b] } else { 0.0 }
                    };
                    assert_close(k[[b, i, j]], expect, 1e-14, &format!("gram ({b}, {i}, {j})"));
                }
            }
        }
        let ch = be.cholesky(&k, Precision::F64, JitterPolicy::for_precision(Precision::F64)).unwrap();
        for b in 0..3 {
            let l = ch.factor.index_axis(ndarray::Axis(0), b).to_owned();
            let llt = l.dot(&l.t());
            for ((i, j), v) in llt.indexed_iter() {
                assert_close(*v, k[[b, i, j]], 1e-12, "L L^T");
                if j > i {
                    assert_eq!(l[[i, j]], 0.0);
                }
            }
        }
        // A matrix that is not positive definite at any jitter fails alone.
        let mut bad = k.clone();
        bad[[2, 0, 0]] = -1e6;
        let ch = be.cholesky(&bad, Precision::F64, JitterPolicy::for_precision(Precision::F64)).unwrap();
        assert_eq!(ch.status[2], Status::Failed);
        assert!(ch.factor[[2, 0, 0]].is_nan());
        assert_eq!(ch.status[0], Status::Ok);
        assert_eq!(arr1(&[ch.status[1] == Status::Ok]), arr1(&[true]));
    });
}

#[test]
fn pyro_request_as_written() {
    // x (264, 3), y (4, 264), Gamma(2, 0.0075), Gamma(2, 0.075), Gamma(2, 0.075) on the
    // lengthscales and Uniform(10, 150) on the variance, in the priors file format.
    let text = "[lengthscale]\ngamma = { concentration = [2.0, 2.0, 2.0], rate = [0.0075, 0.075, 0.075] }\n[outputscale]\nuniform = { low = 10.0, high = 150.0 }\n";
    let priors = Priors::from_toml(text).unwrap();
    let x =
        Array2::from_shape_fn((264, 3), |(i, k)| ((i * (k + 3) * 37) % 264) as f64 * if k == 0 { 2.0 } else { 0.2 });
    let y = Array2::from_shape_fn((4, 264), |(b, i)| {
        10.0 * ((x[[i, 0]] / 100.0 + b as f64).sin() + (x[[i, 1]] / 10.0).cos())
    });
    let data = Dataset::new(x, y).unwrap();
    let hyp = Hyperparameters::broadcast(4, &[200.0, 20.0, 20.0], 50.0, 1.0, 0.0);
    let r = MllRequest::new(&data, &hyp).priors(&priors).backend(batchgp::BackendChoice::Cpu).run().unwrap();
    let lp_l: f64 = [(0.0075, 200.0), (0.075, 20.0), (0.075, 20.0)]
        .iter()
        .map(|(rate, l): &(f64, f64)| 2.0 * rate.ln() + l.ln() - rate * l)
        .sum();
    let lp_s = -(140.0f64).ln();
    for b in 0..4 {
        assert_close(r.log_prior[b], lp_l + lp_s, 1e-12, "pyro log prior");
        assert_close(r.mll[b], dense_mll(&data, &hyp, b), 1e-9, "pyro mll");
    }
}
