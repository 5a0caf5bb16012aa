//! Fits that reach the best optimum with the default options (issue 23): the GPyTorch 101
//! teacher-student case, the restarts' agreement count and warning, and the pyrox notebook's
//! SVGP against the exact GP's MLL. The real-data check against scikit-learn and the SVGP check
//! against an independent full-batch L-BFGS are Python scripts (tests/python/quality_*.py).

use batchgp::fit::DEFAULT_RESTARTS;
use batchgp::{
    sample_prior, BackendChoice, Dataset, FitObserver, FitProgress, FitRequest, Hyperparameters, Inputs, MllRequest,
    Precision, Status, SvgpFitRequest, Target,
};
use ndarray::{Array2, Array3, Axis};
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use rand_distr::{Distribution, Normal};

/// The teachers of GPyTorch's 101 tutorial: rbf, lengthscale 0.01, outputscale 1, noise sd 0.1,
/// `b` draws at `n` shared sorted inputs on [0, 1].
fn teachers(b: usize, n: usize, seed: u64) -> Dataset {
    let mut rng = ChaCha8Rng::seed_from_u64(seed);
    let mut xs: Vec<f64> = (0..n).map(|_| rng.random::<f64>()).collect();
    xs.sort_by(f64::total_cmp);
    let x = Array2::from_shape_vec((n, 1), xs).unwrap();
    let teacher = Hyperparameters::broadcast(b, &[0.01], 1.0, 0.01, 0.0);
    let be = batchgp::select(BackendChoice::Cpu).unwrap();
    let (y, _) =
        sample_prior(be.as_ref(), &Inputs::Shared(x.clone()), &teacher, 1, seed, true, Precision::F64).unwrap();
    Dataset::new(x, y.index_axis(Axis(0), 0).to_owned()).unwrap()
}

/// Students started as the tutorial starts them (lengthscale 1, noise 1, outputscale fixed at 1),
/// every other option at its default, recover the teacher's lengthscale: each within 10 % of
/// 0.01, and each at an MLL at least the teacher's own hyperparameters' (so none can report
/// "converged" at a worse optimum).
#[test]
fn teacher_student_students_recover_the_lengthscale_with_the_defaults() {
    let b = 8;
    let data = teachers(b, 500, 101);
    let mut init = FitRequest::default_init(&data);
    init.lengthscale.fill(1.0);
    init.noise.fill(1.0);
    init.outputscale.fill(1.0);
    let r = FitRequest::new(&data).init(&init).fix(Target::Outputscale).backend(BackendChoice::Cpu).run().unwrap();
    let mut teacher = init.clone();
    teacher.lengthscale.fill(0.01);
    teacher.noise.fill(0.01);
    let at_teacher = MllRequest::new(&data, &teacher).backend(BackendChoice::Cpu).run().unwrap();
    for m in 0..b {
        let l = r.model.hyperparameters.lengthscale[[m, 0]];
        assert!((l / 0.01 - 1.0).abs() < 0.1, "student {m}: lengthscale {l} ({})", r.describe(m));
        assert!(matches!(r.status[m], Status::Ok | Status::Jitter), "student {m}: {}", r.describe(m));
        assert!(
            r.model.mll[m] >= at_teacher.mll[m] - 1e-6,
            "student {m}: mll {} < the teacher's {}",
            r.model.mll[m],
            at_teacher.mll[m]
        );
        assert!(r.reached_best[m] >= 1 && r.reached_best[m] <= DEFAULT_RESTARTS + 1);
    }
    assert_eq!(r.starts, DEFAULT_RESTARTS + 1);
}

/// Without restarts the same students stop in the local maximum the issue describes, so the
/// test above measures what the restarts' design does.
#[test]
fn without_restarts_some_students_stop_in_the_noise_explained_maximum() {
    let data = teachers(8, 500, 101);
    let mut init = FitRequest::default_init(&data);
    init.lengthscale.fill(1.0);
    init.noise.fill(1.0);
    init.outputscale.fill(1.0);
    let r = FitRequest::new(&data).init(&init).fix(Target::Outputscale).restarts(0).run().unwrap();
    let missed = (0..8).filter(|&m| (r.model.hyperparameters.lengthscale[[m, 0]] / 0.01 - 1.0).abs() > 0.1).count();
    assert!(missed > 0, "every student found the teacher from lengthscale 1 alone");
    assert_eq!(r.starts, 1);
    assert!(r.reached_best.iter().all(|&k| k == 1), "one start: it reached its own value");
    assert!((0..8).all(|m| r.starts_warning(m).is_none()), "no warning without restarts");
}

/// Keeps every member's (restarts included) objective after each round: the last row is each
/// start's final value.
#[derive(Default)]
struct Finals(Vec<f64>);

impl FitObserver for Finals {
    fn iter(&mut self, p: &FitProgress<'_>) {
        self.0 = p.objective.to_vec();
    }
}

/// reached_best, recounted from each start's final objective (as the observer saw it): the
/// starts within 0.01 nats of the best.
fn recount(finals: &[f64], b: usize, m: usize) -> usize {
    let runs: Vec<f64> = finals.iter().skip(m).step_by(b).copied().collect();
    let best = runs.iter().copied().fold(f64::NEG_INFINITY, f64::max);
    runs.iter().filter(|&&v| best - v <= 1e-2).count()
}

/// reached_best counts the starts whose final objective equals the kept one, and describe warns
/// when only one start of several reached it: a smooth sine (most starts agree) and the
/// teacher-student member (two maxima).
#[test]
fn the_result_counts_the_starts_that_reached_the_best_value() {
    let hard = teachers(1, 400, 5);
    let (n, restarts) = (60, 5);
    let mut rng = ChaCha8Rng::seed_from_u64(3);
    let noise = Normal::new(0.0, 0.1).unwrap();
    let xs = Array2::from_shape_fn((n, 1), |(i, _)| i as f64 / n as f64);
    let y = Array2::from_shape_fn((1, n), |(_, i)| (3.0 * xs[[i, 0]]).sin() + noise.sample(&mut rng));
    let easy = Dataset::new(xs, y).unwrap();
    let mut seen = Finals::default();
    let r = FitRequest::new(&easy).restarts(restarts).observer(&mut seen).run().unwrap();
    assert_eq!(r.starts, restarts + 1);
    assert_eq!(r.reached_best[0], recount(&seen.0, 1, 0));
    assert!(r.reached_best[0] > (restarts + 1) / 2, "a smooth sine: most starts end at one optimum");
    assert!(r.starts_warning(0).is_none() && !r.describe(0).contains("warning"));

    let mut init = FitRequest::default_init(&hard);
    init.lengthscale.fill(1.0);
    init.noise.fill(1.0);
    let mut seen = Finals::default();
    let r = FitRequest::new(&hard)
        .init(&init)
        .fix(Target::Outputscale)
        .restarts(restarts)
        .observer(&mut seen)
        .run()
        .unwrap();
    let k = r.reached_best[0];
    assert_eq!(k, recount(&seen.0, 1, 0));
    assert!(k >= 1 && k < restarts + 1, "the teacher-student member has two maxima: {k} of {} starts", restarts + 1);
    assert_eq!(r.starts_warning(0).is_some(), k == 1, "{}", r.describe(0));
}

/// The pyrox "Standard SVGP" notebook's problem: 500 points of sin(2x) + 0.3 cos(5x) on
/// [-3, -0.6] and [0.6, 3] with noise sd 0.15, M = 20 inducing inputs uniform on [-3, 3],
/// lengthscale 0.6, outputscale 1, noise 0.15^2, q = N(0, I), mean 0.
fn notebook(b: usize, seed: u64) -> (Dataset, batchgp::svgp::SvgpParams) {
    let (n, m) = (500, 20);
    let mut rng = ChaCha8Rng::seed_from_u64(seed);
    let noise = Normal::new(0.0, 0.15).unwrap();
    let x = Array3::from_shape_fn((b, n, 1), |(_, i, _)| {
        let u: f64 = rng.random();
        if i < n / 2 {
            -3.0 + 2.4 * u
        } else {
            0.6 + 2.4 * u
        }
    });
    let y = Array2::from_shape_fn((b, n), |(e, i)| {
        let v = x[[e, i, 0]];
        (2.0 * v).sin() + 0.3 * (5.0 * v).cos() + noise.sample(&mut rng)
    });
    let z = Array3::from_shape_fn((b, m, 1), |_| -3.0 + 6.0 * rng.random::<f64>());
    let hyp = Hyperparameters::broadcast(b, &[0.6], 1.0, 0.15 * 0.15, 0.0);
    let data = Dataset::new(Inputs::Batched(x), y).unwrap();
    (data, batchgp::svgp::SvgpParams::whitened_prior(z, hyp))
}

/// The notebook's SVGP with the default options from the notebook's start reaches the exact
/// GP's optimum within max(3 nats, 1 %): the ELBO is a lower bound on the exact MLL, and with 20
/// inducing inputs on this smooth function the best ELBO is within a nat or two of it. The exact
/// fit (another code path: the exact MLL and L-BFGS) gives the reference; the noise sd is within
/// 20 % of the truth.
#[test]
fn the_notebook_svgp_reaches_the_exact_gp_optimum_with_the_defaults() {
    let b = 8;
    let (data, start) = notebook(b, 23);
    let svgp = SvgpFitRequest::new(&data).init(&start).backend(BackendChoice::Cpu).run().unwrap();
    let exact = FitRequest::new(&data).backend(BackendChoice::Cpu).run().unwrap();
    for m in 0..b {
        let (elbo, mll) = (svgp.model.elbo[m], exact.model.mll[m]);
        assert!(elbo <= mll + 1e-6, "member {m}: the ELBO {elbo} is a lower bound of the MLL {mll}");
        assert!(elbo >= mll - 3f64.max(0.01 * mll.abs()), "member {m}: ELBO {elbo}, exact MLL {mll}");
        let sd = svgp.model.params.hyp.noise[m].sqrt();
        assert!((sd / 0.15 - 1.0).abs() < 0.2, "member {m}: noise sd {sd}");
    }
}
