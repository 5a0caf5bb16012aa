//! Batched fitting: convergence, batch == loop, fixed hyperparameters, uniform bounds, the
//! Pyro batch-priors request, restarts, standardisation, Adam, ragged members, a failing member.

mod common;
use batchgp::prior::{Prior, Priors, Target};
use batchgp::{BackendChoice, Dataset, FitRequest, FitResult, Hyperparameters, Inputs, MllRequest, Optimizer, Status};
use common::*;
use ndarray::{Array2, Array3};

fn objective_at(data: &Dataset, hyp: &Hyperparameters, priors: &Priors) -> batchgp::MllReport {
    MllRequest::new(data, hyp).priors(priors).backend(BackendChoice::Cpu).run().unwrap()
}

fn fit(data: &Dataset) -> FitRequest<'_> {
    FitRequest::new(data).backend(BackendChoice::Cpu)
}

#[test]
fn converges_to_a_stationary_point_better_than_the_start() {
    let (data, _) = random_batch(4, 40, 2, 11);
    let r = fit(&data).run().unwrap();
    let start = objective_at(&data, &FitRequest::default_init(&data), &Priors::none());
    let at = objective_at(&data, &r.model.hyperparameters, &Priors::none());
    for b in 0..4 {
        assert!(matches!(r.status[b], Status::Ok | Status::Jitter), "member {b}: {:?}", r.status[b]);
        assert!(r.objective[b] > start.objective[b], "member {b} did not improve");
        assert_close(r.objective[b], at.objective[b], 1e-12, "reported objective is the objective at the result");
        assert_close(r.model.mll[b], at.mll[b], 1e-12, "reported mll");
        let g = at.gradient.as_ref().unwrap();
        let gmax = g
            .log_lengthscale
            .row(b)
            .iter()
            .chain([g.log_outputscale[b], g.log_noise[b], g.mean[b]].iter())
            .fold(0f64, |m, v| m.max(v.abs()));
        assert!(gmax < 1e-4, "member {b}: gradient {gmax} at the optimum");
        assert!(r.iterations[b] > 0);
    }
}

#[test]
fn batch_fit_equals_loop_of_single_fits() {
    let (data, _) = random_batch(5, 30, 3, 12);
    let all = fit(&data).run().unwrap();
    for b in 0..5 {
        // first_member: member b's restarts start where they start inside the batch.
        let one = fit(&data.select(&[b])).first_member(b as u64).run().unwrap();
        assert_close(all.objective[b], one.objective[0], 1e-10, &format!("member {b} objective"));
        assert_eq!(all.iterations[b], one.iterations[0], "member {b} iterations");
        assert_all_close(
            all.model.hyperparameters.lengthscale.row(b).as_slice().unwrap(),
            one.model.hyperparameters.lengthscale.row(0).as_slice().unwrap(),
            1e-8,
            "lengthscale",
        );
    }
}

#[test]
fn fixed_hyperparameters_stay_at_their_initial_values() {
    let (data, hyp) = random_batch(3, 25, 2, 13);
    let r = fit(&data).init(&hyp).fix(Target::Outputscale).fix_member(Target::Lengthscale, 1).run().unwrap();
    for b in 0..3 {
        assert_eq!(r.model.hyperparameters.outputscale[b], hyp.outputscale[b]);
    }
    assert_eq!(r.model.hyperparameters.lengthscale.row(1), hyp.lengthscale.row(1));
    assert_ne!(r.model.hyperparameters.lengthscale.row(0), hyp.lengthscale.row(0));
    assert_ne!(r.model.hyperparameters.noise[1], hyp.noise[1]);
}

#[test]
fn uniform_prior_is_a_hard_bound() {
    // y with variance ~ 4: the unconstrained outputscale is well above 0.5.
    let (data, _) = random_batch(3, 40, 1, 14);
    let y = data.y().mapv(|v| 2.0 * v);
    let data = Dataset::new(data.x().clone(), y).unwrap();
    let free = fit(&data).run().unwrap();
    let priors = Priors::none().with(Target::Outputscale, Prior::uniform(0.1, 0.5));
    let r = fit(&data).priors(&priors).run().unwrap();
    for b in 0..3 {
        assert!(free.model.hyperparameters.outputscale[b] > 0.5, "test premise: member {b}");
        let s = r.model.hyperparameters.outputscale[b];
        assert!(s > 0.1 && s <= 0.5, "member {b}: outputscale {s} outside (0.1, 0.5)");
        assert!(s > 0.49, "member {b}: the bound should be active, got {s}");
        assert!(r.log_prior[b].is_finite());
    }
}

/// The Pyro "Batching Gaussian Processes" request: x (264, 3) on scales of hundreds and tens,
/// y (4, 264), Gamma priors per lengthscale dimension, Uniform(10, 150) on the variance.
#[test]
fn pyro_batch_priors_request() {
    let text = "[lengthscale]\ngamma = { concentration = [2.0, 2.0, 2.0], rate = [0.0075, 0.075, 0.075] }\n[outputscale]\nuniform = { low = 10.0, high = 150.0 }\n";
    let priors = Priors::from_toml(text).unwrap();
    let x = Array2::from_shape_fn((264, 3), |(i, k)| {
        let u = ((i * 7919 + k * 104729) % 1000) as f64 / 1000.0;
        if k == 0 {
            500.0 * u
        } else {
            50.0 * u
        }
    });
    let truth = Hyperparameters {
        kernel: batchgp::Kernel::Rbf,
        lengthscale: ndarray::arr2(&[
            [150.0, 15.0, 20.0],
            [250.0, 25.0, 10.0],
            [100.0, 10.0, 30.0],
            [300.0, 30.0, 15.0],
        ]),
        outputscale: ndarray::arr1(&[40.0, 60.0, 80.0, 100.0]),
        noise: ndarray::arr1(&[1.0, 1.0, 2.0, 2.0]),
        mean: ndarray::arr1(&[0.0, 0.0, 0.0, 0.0]),
        alpha: None,
    };
    let be = batchgp::select(BackendChoice::Cpu).unwrap();
    let (y, _) =
        batchgp::sample_prior(be.as_ref(), &Inputs::Shared(x.clone()), &truth, 1, 42, true, batchgp::Precision::F64)
            .unwrap();
    let data = Dataset::new(x, y.index_axis(ndarray::Axis(0), 0).to_owned()).unwrap();
    let r: FitResult = fit(&data).priors(&priors).run().unwrap();
    let at_truth = objective_at(&data, &truth, &priors);
    for b in 0..4 {
        assert!(matches!(r.status[b], Status::Ok | Status::Jitter), "member {b}: {:?}", r.status[b]);
        let s = r.model.hyperparameters.outputscale[b];
        assert!(s > 10.0 && s < 150.0, "member {b}: variance {s}");
        assert!(r.objective[b] >= at_truth.objective[b] - 1e-6, "member {b}: fit worse than the truth");
        for k in 0..3 {
            let ratio = r.model.hyperparameters.lengthscale[[b, k]] / truth.lengthscale[[b, k]];
            assert!(ratio > 0.33 && ratio < 3.0, "member {b} dim {k}: lengthscale ratio {ratio}");
        }
    }
}

#[test]
fn restarts_never_make_a_member_worse() {
    let (data, _) = random_batch(4, 30, 2, 15);
    // One start (restarts 0; the default has restarts of its own since issue 23).
    let one = fit(&data).restarts(0).run().unwrap();
    let many = fit(&data).restarts(3).seed(7).run().unwrap();
    for b in 0..4 {
        assert!(many.objective[b] >= one.objective[b] - 1e-9 * one.objective[b].abs(), "member {b}");
        assert!(many.restart[b] <= 3);
    }
}

#[test]
#[allow(deprecated)] // standardize is a no-op kept for compatibility: this checks it is one
fn standardisation_finds_the_same_optimum_in_data_units() {
    let (data, _) = random_batch(3, 35, 2, 16);
    let y = data.y().mapv(|v| 50.0 + 20.0 * v);
    let data = Dataset::new(data.x().clone(), y).unwrap();
    let plain = fit(&data).run().unwrap();
    let std = fit(&data).standardize(true).run().unwrap();
    for b in 0..3 {
        assert_close(std.objective[b], plain.objective[b], 1e-7, &format!("member {b} objective"));
        let at = objective_at(&data, &std.model.hyperparameters, &Priors::none());
        assert_close(std.model.mll[b], at.mll[b], 1e-10, "standardised fit reports the data-unit mll");
        assert_close(
            std.model.hyperparameters.outputscale[b],
            plain.model.hyperparameters.outputscale[b],
            1e-3,
            "outputscale",
        );
        assert_close(std.model.hyperparameters.mean[b], plain.model.hyperparameters.mean[b], 1e-3, "mean");
    }
}

#[test]
fn adam_improves_the_objective() {
    let (data, _) = random_batch(3, 30, 2, 17);
    let start = objective_at(&data, &FitRequest::default_init(&data), &Priors::none());
    let r = fit(&data).optimizer(Optimizer::Adam).max_iter(150).run().unwrap();
    let lbfgs = fit(&data).run().unwrap();
    for b in 0..3 {
        assert!(r.objective[b] > start.objective[b] + 1.0, "member {b}");
        assert!(r.objective[b] <= lbfgs.objective[b] + 1e-6, "Adam beat L-BFGS's optimum on member {b}?");
        assert!(matches!(r.status[b], Status::MaxIter | Status::Ok | Status::Jitter));
    }
}

#[test]
fn ragged_fit_equals_unpadded_fits() {
    let (data, _) = random_batch(3, 24, 2, 18);
    let counts = [24usize, 10, 17];
    let mut x = Array3::<f64>::from_elem((3, 24, 2), f64::NAN);
    let mut y = Array2::<f64>::from_elem((3, 24), f64::NAN);
    let mut mask = Array2::from_elem((3, 24), false);
    for b in 0..3 {
        for i in 0..counts[b] {
            mask[[b, i]] = true;
            y[[b, i]] = data.y()[[b, i]];
            for k in 0..2 {
                x[[b, i, k]] = data.x().member(b)[[i, k]];
            }
        }
    }
    let padded = Dataset::with_mask(x, y, Some(mask)).unwrap();
    let r = fit(&padded).run().unwrap();
    for (b, &n) in counts.iter().enumerate() {
        let xb = data.x().member(b).slice(ndarray::s![..n, ..]).to_owned();
        let yb = data.y().slice(ndarray::s![b..b + 1, ..n]).to_owned();
        let one = fit(&Dataset::new(xb, yb).unwrap()).first_member(b as u64).run().unwrap();
        assert_close(r.objective[b], one.objective[0], 1e-10, &format!("member {b}"));
        assert_eq!(r.iterations[b], one.iterations[0]);
    }
}

#[test]
fn a_failing_member_fails_alone() {
    let (data, hyp) = random_batch(4, 20, 2, 19);
    let mut init = hyp.clone();
    init.outputscale[1] = 800f64.exp();
    // One start: restarts (the default has them since issue 23) start from their own design and
    // would rescue the member; this test is about a failing member's isolation.
    let r = fit(&data).init(&init).restarts(0).run().unwrap();
    assert_eq!(r.status[1], Status::Failed);
    assert!(r.objective[1].is_nan() && r.model.hyperparameters.noise[1].is_nan());
    for b in [0, 2, 3] {
        let one = fit(&data.select(&[b])).init(&hyp.select(&[b])).restarts(0).run().unwrap();
        assert_eq!(r.objective[b], one.objective[0], "member {b}");
        assert!(r.status[b].is_ok());
    }
}

#[test]
fn map_fit_is_stationary_for_the_objective_with_priors() {
    let (data, _) = random_batch(3, 30, 2, 20);
    let priors = Priors::none()
        .with(Target::Lengthscale, Prior::gamma(3.0, 6.0))
        .with(Target::Noise, Prior::lognormal(-3.0, 1.0))
        .with(Target::Mean, Prior::normal(0.0, 1.0));
    let r = fit(&data).priors(&priors).run().unwrap();
    let at = objective_at(&data, &r.model.hyperparameters, &priors);
    let g = at.gradient.unwrap();
    for b in 0..3 {
        assert_close(r.objective[b], at.objective[b], 1e-12, "objective");
        for v in g.log_lengthscale.row(b).iter().chain([g.log_outputscale[b], g.log_noise[b], g.mean[b]].iter()) {
            assert!(
                v.abs() < 1e-4,
                "member {b}: gradient {v}, grads {:?} {} {} {}, iters {}, hyp {:?}",
                g.log_lengthscale.row(b),
                g.log_outputscale[b],
                g.log_noise[b],
                g.mean[b],
                r.iterations[b],
                r.model.hyperparameters.select(&[b])
            );
        }
    }
}

#[test]
fn box_bounds_hold_and_bind_where_the_optimum_lies_outside() {
    let (data, _) = random_batch(3, 30, 2, 21);
    let free = fit(&data).run().unwrap();
    // Loose bounds change nothing.
    let loose = fit(&data).bounds(1e-9, 1e9).run().unwrap();
    for b in 0..3 {
        assert_close(loose.objective[b], free.objective[b], 1e-8, &format!("member {b} loose bounds"));
    }
    // A noise floor above the free optimum binds: the fit sits on it, every value inside.
    let floor = 2.0 * free.model.hyperparameters.noise.iter().cloned().fold(0.0, f64::max);
    let r = fit(&data).bounds(floor, 1e3).run().unwrap();
    for b in 0..3 {
        let h = r.model.hyperparameters.select(&[b]);
        assert_close(h.noise[0], floor, 1e-9, &format!("member {b}: noise on its bound"));
        assert!(h.lengthscale.iter().chain(h.outputscale.iter()).all(|v| *v >= floor * (1.0 - 1e-12) && *v <= 1e3));
        assert!(r.objective[b] <= free.objective[b] + 1e-9, "a bound cannot improve the optimum");
        assert!(r.status[b].is_ok());
    }
    // Stationary in the free coordinates; the bound one pushes outwards (wants less noise).
    let g = objective_at(&data, &r.model.hyperparameters, &Priors::none()).gradient.unwrap();
    for b in 0..3 {
        for v in g.log_lengthscale.row(b).iter().chain([g.log_outputscale[b], g.mean[b]].iter()) {
            assert!(v.abs() < 1e-4, "member {b}: free gradient {v} on the bound");
        }
        assert!(g.log_noise[b] < 0.0, "member {b}: the noise bound is active");
    }
    let bad = fit(&data).bounds(2.0, 1.0).run();
    assert!(matches!(bad, Err(batchgp::Error::InvalidOption { .. })));
}

/// Restarts spread every GP from its own random stream: a batch split into chunks (each told
/// its first member) fits exactly as a whole (what a chunked, distributed fit relies on).
#[test]
fn restarts_do_not_depend_on_the_rest_of_the_batch() {
    let (data, _) = random_batch(6, 25, 2, 31);
    let whole = FitRequest::new(&data).restarts(3).seed(7).backend(BackendChoice::Cpu).run().unwrap();
    for rows in [vec![0, 1, 2], vec![3, 4, 5], vec![4]] {
        let part = FitRequest::new(&data.select(&rows))
            .restarts(3)
            .seed(7)
            .first_member(rows[0] as u64)
            .backend(BackendChoice::Cpu)
            .run()
            .unwrap();
        for (i, &m) in rows.iter().enumerate() {
            assert_eq!(part.objective[i], whole.objective[m], "member {m}");
            assert_eq!(part.restart[i], whole.restart[m], "member {m}");
            assert_eq!(part.model.hyperparameters.lengthscale.row(i), whole.model.hyperparameters.lengthscale.row(m));
        }
    }
}

/// A hyperparameter that ends on a uniform prior's bound or a box bound is flagged in the
/// member's outcome (issue 21, point 18); a fit inside its bounds is not.
#[test]
fn a_fit_that_ends_on_a_bound_says_so() {
    let x = Array2::from_shape_fn((40, 1), |(i, _)| i as f64 / 40.0);
    let y =
        Array2::from_shape_fn((2, 40), |(m, i)| (6.0 * i as f64 / 40.0 + m as f64).sin() + 0.05 * ((i * 7) % 5) as f64);
    let data = Dataset::new(x, y).unwrap();
    let priors = Priors::from_toml("[outputscale]\nuniform = { low = 10.0, high = 150.0 }\n").unwrap();
    let r = fit(&data).priors(&priors).run().unwrap();
    for b in 0..2 {
        assert_close(r.model.hyperparameters.outputscale[b], 10.0, 1e-5, "outputscale on the bound");
        assert!(r.describe(b).contains("outputscale at its uniform prior's bound 10"), "{}", r.describe(b));
    }
    // Noise near 0.001 of var(y) against a box whose low end is 0.1: held there, and said.
    let boxed = fit(&data).bounds(0.1, 100.0).run().unwrap();
    for b in 0..2 {
        assert_close(boxed.model.hyperparameters.noise[b], 0.1, 1e-6, "noise on the box");
        assert!(boxed.describe(b).contains("noise at its box bound 0.1"), "{}", boxed.describe(b));
    }
    let free = fit(&data).run().unwrap();
    for b in 0..2 {
        assert!(free.at_bound[b].is_empty(), "{}", free.describe(b));
        assert!(!free.describe(b).contains("bound"), "{}", free.describe(b));
    }
}
