//! Posterior prediction and sampling against the textbook formulas, on every backend.

mod common;
use batchgp::{Backend, Dataset, Hyperparameters, Inputs, Precision, PredictOptions, Status};
use common::*;
use ndarray::{Array1, Array2, Array3, Axis};

/// Dense posterior of member b at test points z: (mean, var f, cov f).
fn dense_posterior(
    data: &Dataset,
    hyp: &Hyperparameters,
    b: usize,
    z: &Array2<f64>,
) -> (Array1<f64>, Array1<f64>, Array2<f64>) {
    let (x, r) = member_points(data, hyp, b);
    let ls: Vec<f64> = hyp.lengthscale.row(b).to_vec();
    let s = hyp.outputscale[b];
    let mut k = rbf(&x, &x, &ls, s);
    for i in 0..x.nrows() {
        k[[i, i]] += hyp.noise[b];
    }
    let l = dense_cholesky(&k).unwrap();
    let alpha = dense_solve(&l, &r);
    let ks = rbf(&x, z, &ls, s);
    let kss = rbf(z, z, &ls, s);
    let mean = ks.t().dot(&alpha) + hyp.mean[b];
    let mut cov = kss.clone();
    for j in 0..z.nrows() {
        let kinv_kj = dense_solve(&l, &ks.column(j).to_owned());
        for i in 0..z.nrows() {
            cov[[i, j]] -= ks.column(i).dot(&kinv_kj);
        }
    }
    let var = cov.diag().to_owned();
    (mean, var, cov)
}

fn grid(m: usize, d: usize) -> Array2<f64> {
    Array2::from_shape_fn((m, d), |(i, k)| -0.2 + 1.4 * ((i * (k + 2)) % m) as f64 / m as f64)
}

#[test]
fn mean_variance_and_covariance_match_dense_formulas() {
    on_every_backend(|be: &dyn Backend| {
        let (data, hyp) = random_batch(3, 25, 2, 31);
        let mask = Array2::from_shape_fn((3, 25), |(b, i)| !(b == 2 && i % 4 == 1));
        let data = Dataset::with_mask(data.x().clone(), data.y().clone(), Some(mask)).unwrap();
        let z = grid(9, 2);
        let opts = PredictOptions { full_covariance: true, ..Default::default() };
        for test in [
            Inputs::Shared(z.clone()),
            Inputs::Batched(Array3::from_shape_fn((3, 9, 2), |(b, i, k)| z[[i, k]] + 0.01 * b as f64)),
        ] {
            let p = batchgp::predict(be, &data, &hyp, &test, &opts).unwrap();
            let cov = p.covariance.as_ref().unwrap();
            for b in 0..3 {
                let zb = test.member(b).to_owned();
                let (mean, var, dcov) = dense_posterior(&data, &hyp, b, &zb);
                assert_all_close(p.mean.row(b).to_vec().as_slice(), mean.as_slice().unwrap(), 1e-10, "mean");
                assert_all_close(p.var.row(b).to_vec().as_slice(), var.to_vec().as_slice(), 1e-9, "var");
                for j in 0..9 {
                    assert_close(p.var_y[[b, j]], p.var[[b, j]] + hyp.noise[b], 1e-14, "var_y");
                    let sd = p.var_y[[b, j]].sqrt();
                    assert_close(p.lower[[b, j]], p.mean[[b, j]] - 2.0 * sd, 1e-14, "lower");
                    assert_close(p.upper[[b, j]], p.mean[[b, j]] + 2.0 * sd, 1e-14, "upper");
                    for i in 0..9 {
                        assert_close(cov[[b, i, j]], dcov[[i, j]], 1e-9, "cov");
                    }
                }
                assert_eq!(p.status[b], Status::Ok);
            }
        }
    });
}

#[test]
fn interpolates_noise_free_data_and_reverts_to_the_prior_far_away() {
    on_every_backend(|be| {
        let x = Array2::from_shape_fn((8, 1), |(i, _)| i as f64 / 8.0);
        let y = Array2::from_shape_fn((1, 8), |(_, i)| (6.0 * i as f64 / 8.0).sin());
        let data = Dataset::new(x.clone(), y.clone()).unwrap();
        let hyp = Hyperparameters::broadcast(1, &[0.2], 1.3, 1e-8, 0.4);
        let mut z = x.clone();
        z.push_row(ndarray::arr1(&[50.0]).view()).unwrap();
        let p = batchgp::predict(be, &data, &hyp, &Inputs::Shared(z), &PredictOptions::default()).unwrap();
        for i in 0..8 {
            assert_close(p.mean[[0, i]], y[[0, i]], 1e-5, "interpolation");
            assert!(p.var[[0, i]] < 1e-6);
        }
        assert_close(p.mean[[0, 8]], 0.4, 1e-12, "prior mean far away");
        assert_close(p.var[[0, 8]], 1.3, 1e-12, "prior variance far away");
    });
}

#[test]
fn posterior_samples_have_the_posterior_moments_and_are_reproducible() {
    on_every_backend(|be| {
        let (data, hyp) = random_batch(2, 15, 1, 32);
        let z = grid(5, 1);
        let s = 4000;
        let opts = PredictOptions { samples: Some((s, 11)), ..Default::default() };
        let p = batchgp::predict(be, &data, &hyp, &Inputs::Shared(z.clone()), &opts).unwrap();
        let samples = p.samples.as_ref().unwrap();
        assert_eq!(samples.dim(), (s, 2, 5));
        for b in 0..2 {
            for j in 0..5 {
                let col = samples.index_axis(Axis(1), b).column(j).to_owned();
                let m = col.mean().unwrap();
                let v = col.var(1.0);
                let se = (p.var[[b, j]] / s as f64).sqrt();
                assert!(
                    (m - p.mean[[b, j]]).abs() < 5.0 * se + 1e-9,
                    "sample mean {m} vs {} (se {se})",
                    p.mean[[b, j]]
                );
                assert!((v - p.var[[b, j]]).abs() < 0.15 * p.var[[b, j]] + 1e-9, "sample var {v} vs {}", p.var[[b, j]]);
            }
        }
        let again = batchgp::predict(be, &data, &hyp, &Inputs::Shared(z.clone()), &opts).unwrap();
        assert_eq!(again.samples, p.samples, "same seed, same samples");
        let other = PredictOptions { samples: Some((s, 12)), ..Default::default() };
        let p2 = batchgp::predict(be, &data, &hyp, &Inputs::Shared(z), &other).unwrap();
        assert_ne!(p2.samples, p.samples);
    });
}

#[test]
fn prior_samples_have_the_prior_covariance() {
    on_every_backend(|be| {
        let z = grid(4, 2);
        let hyp = Hyperparameters::broadcast(2, &[0.5, 0.3], 2.0, 0.1, 1.0);
        let s = 6000;
        let (f, st) = batchgp::sample_prior(be, &Inputs::Shared(z.clone()), &hyp, s, 3, false, Precision::F64).unwrap();
        let (y, _) = batchgp::sample_prior(be, &Inputs::Shared(z.clone()), &hyp, s, 3, true, Precision::F64).unwrap();
        assert!(st.iter().all(|s| s.is_ok()));
        let k = rbf(&z, &z, &[0.5, 0.3], 2.0);
        for (draws, extra) in [(&f, 0.0), (&y, 0.1)] {
            let d = draws.index_axis(Axis(1), 1);
            for i in 0..4 {
                for j in 0..4 {
                    let c: f64 = (0..s).map(|t| (d[[t, i]] - 1.0) * (d[[t, j]] - 1.0)).sum::<f64>() / s as f64;
                    let want = k[[i, j]] + if i == j { extra } else { 0.0 };
                    assert!((c - want).abs() < 0.12, "prior cov ({i}, {j}): {c} vs {want}");
                }
            }
        }
    });
}

#[test]
fn a_failing_member_predicts_nan_alone() {
    on_every_backend(|be| {
        let (data, mut hyp) = random_batch(3, 10, 2, 33);
        hyp.outputscale[0] = 800f64.exp();
        let p = batchgp::predict(be, &data, &hyp, &Inputs::Shared(grid(4, 2)), &PredictOptions::default()).unwrap();
        assert_eq!(p.status[0], Status::Failed);
        assert!(p.mean.row(0).iter().all(|v| v.is_nan()));
        for b in 1..3 {
            assert_eq!(p.status[b], Status::Ok);
            let one = batchgp::predict(
                be,
                &data.select(&[b]),
                &hyp.select(&[b]),
                &Inputs::Shared(grid(4, 2)),
                &PredictOptions::default(),
            )
            .unwrap();
            assert_eq!(p.mean.row(b), one.mean.row(0));
        }
    });
}
