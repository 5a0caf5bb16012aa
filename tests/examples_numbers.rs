//! The numbers the examples rely on (not their pictures), on the CPU backend so they are
//! deterministic: the demo recovers its generating hyperparameters, a student recovers its
//! teacher's lengthscale, the posterior band widens in a gap of the data, and a low-noise sine
//! is predicted closely at its training points.

use batchgp::{
    backend, predict, sample_prior, BackendChoice, Dataset, FitRequest, Hyperparameters, Inputs, Precision,
    PredictOptions, Target,
};
use ndarray::{Array2, Axis};
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use rand_distr::{Distribution, Normal};
use std::f64::consts::PI;

fn cpu() -> Box<dyn batchgp::Backend> {
    backend::select(BackendChoice::Cpu).unwrap()
}

#[test]
fn demo_recovers_generating_hyperparameters() {
    let be = cpu();
    let dir = std::env::temp_dir().join(format!("batchgp-demo-test-{}", std::process::id()));
    let r = batchgp::demo::run_batch_priors(be.as_ref(), &dir, Precision::F64).unwrap();
    let (lo, hi) = batchgp::demo::OUTPUTSCALE_BOUNDS;
    for m in 0..4 {
        assert!(r.status[m].is_ok(), "GP {m}: status {:?}", r.status[m]);
        let s = r.fitted.outputscale[m];
        assert!(s > lo && s < hi, "GP {m}: outputscale {s} outside the uniform prior ({lo}, {hi})");
        let ratio = s / r.truth.outputscale[m];
        assert!((0.5..2.0).contains(&ratio), "GP {m}: outputscale {s} vs true {}", r.truth.outputscale[m]);
        for d in 0..3 {
            let ratio = r.fitted.lengthscale[[m, d]] / r.truth.lengthscale[[m, d]];
            assert!((0.5..2.0).contains(&ratio), "GP {m}, dim {d}: lengthscale ratio {ratio}");
        }
        let ratio = r.fitted.noise[m] / r.truth.noise[m];
        assert!((0.5..2.0).contains(&ratio), "GP {m}: noise ratio {ratio}");
    }
    let meta = std::fs::metadata(&r.plot).unwrap();
    assert!(meta.len() > 10_000, "plot {} is only {} bytes", r.plot.display(), meta.len());
    let shown = r.to_string();
    assert!(shown.contains("lengthscale[2]") && shown.contains("Uniform(10, 150)"), "{shown}");
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn demo_priors_are_per_gp_and_dimension() {
    let rates = batchgp::demo::batch_priors_rates();
    assert_eq!(rates.dim(), (4, 3));
    assert_eq!(rates.row(0).to_vec(), vec![0.0075, 0.075, 0.075]);
    let truth = batchgp::demo::batch_priors_truth();
    for m in 1..4 {
        for d in 0..3 {
            let mean = batchgp::demo::GAMMA_CONCENTRATION / rates[[m, d]];
            let ratio = mean / truth.lengthscale[[m, d]];
            assert!(ratio != 1.0 && (0.8..1.25).contains(&ratio), "GP {m}, dim {d}: prior mean ratio {ratio}");
        }
    }
    assert!(batchgp::demo::batch_priors_priors().resolve(4, 3).is_ok());
}

/// A smaller teacher-student case than the example (300 points), from lengthscale 1 with the
/// outputscale fixed: the students recover their teachers' lengthscales within 20%.
#[test]
fn student_recovers_teacher_lengthscale() {
    let be = cpu();
    let n = 300;
    let teachers = [0.05, 0.2];
    let mut rng = ChaCha8Rng::seed_from_u64(5);
    let mut xs: Vec<f64> = (0..n).map(|_| rng.random::<f64>()).collect();
    xs.sort_by(f64::total_cmp);
    let x = Array2::from_shape_vec((n, 1), xs).unwrap();
    let mut teacher = Hyperparameters::broadcast(2, &[1.0], 1.0, 0.01, 0.0);
    for (k, l) in teachers.iter().enumerate() {
        teacher.lengthscale[[k, 0]] = *l;
    }
    let (y, _) = sample_prior(be.as_ref(), &Inputs::Shared(x.clone()), &teacher, 1, 3, true, Precision::F64).unwrap();
    let data = Dataset::new(x, y.index_axis(Axis(0), 0).to_owned()).unwrap();
    let mut init = FitRequest::default_init(&data);
    init.lengthscale.fill(1.0);
    init.outputscale.fill(1.0);
    let fit = FitRequest::new(&data).init(&init).fix(Target::Outputscale).max_iter(200).on(be.as_ref()).run().unwrap();
    for (k, l) in teachers.iter().enumerate() {
        let got = fit.model.hyperparameters.lengthscale[[k, 0]];
        assert!((got / l - 1.0).abs() < 0.2, "teacher {l}: student {got}");
        assert_eq!(fit.model.hyperparameters.outputscale[k], 1.0, "the outputscale must stay fixed");
        let noise = fit.model.hyperparameters.noise[k];
        assert!((0.005..0.02).contains(&noise), "teacher {l}: noise {noise} (true 0.01)");
    }
}

fn sine_data(xs: &[f64], sd: f64, seed: u64) -> Dataset {
    let mut rng = ChaCha8Rng::seed_from_u64(seed);
    let noise = Normal::new(0.0, sd).unwrap();
    let x = Array2::from_shape_vec((xs.len(), 1), xs.to_vec()).unwrap();
    let y = Array2::from_shape_fn((1, xs.len()), |(_, i)| (2.0 * PI * xs[i]).sin() + noise.sample(&mut rng));
    Dataset::new(x, y).unwrap()
}

#[test]
fn band_is_wider_in_a_gap_than_on_the_data() {
    let be = cpu();
    // 60 points on [0, 0.3] and [0.7, 1]: a gap in the middle.
    let xs: Vec<f64> =
        (0..60).map(|i| if i < 30 { 0.3 * i as f64 / 29.0 } else { 0.7 + 0.3 * (i - 30) as f64 / 29.0 }).collect();
    let data = sine_data(&xs, 0.1, 1);
    let fit = FitRequest::new(&data).on(be.as_ref()).run().unwrap();
    let test = Inputs::Shared(Array2::from_shape_vec((3, 1), vec![0.15, 0.5, 0.85]).unwrap());
    let p = predict(be.as_ref(), &data, &fit.model.hyperparameters, &test, &PredictOptions::default()).unwrap();
    let width = |i: usize| p.upper[[0, i]] - p.lower[[0, i]];
    assert!(
        width(1) > 1.5 * width(0) && width(1) > 1.5 * width(2),
        "band widths {} {} {}",
        width(0),
        width(1),
        width(2)
    );
    // lower/upper are mean -/+ 2 sd(y).
    for i in 0..3 {
        let sd = p.var_y[[0, i]].sqrt();
        assert!((p.upper[[0, i]] - p.mean[[0, i]] - 2.0 * sd).abs() < 1e-9);
        assert!((p.mean[[0, i]] - p.lower[[0, i]] - 2.0 * sd).abs() < 1e-9);
    }
}

#[test]
fn low_noise_sine_is_predicted_at_its_training_points() {
    let be = cpu();
    let xs: Vec<f64> = (0..100).map(|i| i as f64 / 99.0).collect();
    let data = sine_data(&xs, 0.01, 2);
    let fit = FitRequest::new(&data).on(be.as_ref()).run().unwrap();
    let test = Inputs::Shared(Array2::from_shape_vec((100, 1), xs.clone()).unwrap());
    let p = predict(be.as_ref(), &data, &fit.model.hyperparameters, &test, &PredictOptions::default()).unwrap();
    let max_vs_y = (0..100).map(|i| (p.mean[[0, i]] - data.y()[[0, i]]).abs()).fold(0.0, f64::max);
    let max_vs_f = (0..100).map(|i| (p.mean[[0, i]] - (2.0 * PI * xs[i]).sin()).abs()).fold(0.0, f64::max);
    assert!(max_vs_y < 0.04, "max |mean - y| = {max_vs_y}");
    assert!(max_vs_f < 0.02, "max |mean - sin| = {max_vs_f}");
    let sd = fit.model.hyperparameters.noise[0].sqrt();
    assert!((0.005..0.02).contains(&sd), "noise sd {sd} (true 0.01)");
}

/// The svgp example's single series at a smaller size (300 points on [0, 10] without (4, 6),
/// noise sd 0.15, M = 20, k-means++ start, full-data Adam): the fitted noise sd is within 20%
/// of the truth, the ELBO rose from the start, and the band is wider in the gap than on the data.
#[test]
fn svgp_recovers_the_noise_of_a_gapped_sine() {
    use batchgp::svgp::{self, ElboRequest, SvgpParams};
    use batchgp::SvgpFitRequest;
    let be = cpu();
    let (n, sd) = (300, 0.15);
    let mut rng = ChaCha8Rng::seed_from_u64(11);
    let mut xs: Vec<f64> = (0..n)
        .map(|_| {
            let v = rng.random::<f64>() * 8.0;
            if v < 4.0 {
                v
            } else {
                v + 2.0
            }
        })
        .collect();
    xs.sort_by(f64::total_cmp);
    let noise = Normal::new(0.0, sd).unwrap();
    let y = Array2::from_shape_fn((1, n), |(_, i)| xs[i].sin() + noise.sample(&mut rng));
    let data = Dataset::new(Array2::from_shape_vec((n, 1), xs).unwrap(), y).unwrap();
    let start = SvgpParams::whitened_prior(svgp::init_inducing(&data, 20, 0, 0), FitRequest::default_init(&data));
    let before = ElboRequest::new(&data, &start).on(be.as_ref()).gradient(false).run().unwrap().elbo[0];
    let fit = SvgpFitRequest::new(&data).on(be.as_ref()).init(&start).steps(1000).learning_rate(0.02).run().unwrap();
    let got = fit.model.params.hyp.noise[0].sqrt();
    assert!((got / sd - 1.0).abs() < 0.2, "noise sd {got} (true {sd})");
    assert!(fit.model.elbo[0] > before + 10.0, "ELBO {before} -> {}", fit.model.elbo[0]);
    let test = Inputs::Shared(Array2::from_shape_vec((2, 1), vec![2.0, 5.0]).unwrap());
    let p = svgp::predict(be.as_ref(), &fit.model.params, &test, &PredictOptions::default()).unwrap();
    let (on_data, in_gap) = (p.upper[[0, 0]] - p.lower[[0, 0]], p.upper[[0, 1]] - p.lower[[0, 1]]);
    assert!(in_gap > on_data, "band width {on_data} on the data, {in_gap} in the gap");
}
