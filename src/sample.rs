//! Sampling, in one place: draws from N(mean_b, cov_b) per member (posterior samples of a
//! prediction, prior samples of a teacher GP), reproducible per seed with one ChaCha8 stream per
//! member, so that samples do not depend on the thread count or on the backend that computed
//! the covariance.

use crate::backend::cpu::factor_with_jitter;
use crate::backend::{Backend, JitterPolicy};
use crate::data::{Dataset, Hyperparameters, Inputs, Precision, Status};
use crate::error::Result;
use faer::Par;
use ndarray::{Array2, Array3, ArrayView2, ArrayView3, Axis};
use rand::SeedableRng;
use rand_chacha::ChaCha8Rng;
use rand_distr::{Distribution, StandardNormal};
use rayon::prelude::*;

/// Draws `count` samples from the prior of every member at inputs `x` ((M, D) or (B, M, D)):
/// f ~ N(m, Kf(x, x)), plus independent N(0, noise) when `with_noise` (then they are draws of
/// y, as a teacher GP would generate training data). Returns (count, B, M) and a status per
/// member. Reproducible for a seed (one stream per member).
///
/// # Errors
/// Hyperparameter shapes or domains, inputs of the wrong shape or non-finite.
pub fn sample_prior(
    be: &dyn Backend,
    x: &Inputs,
    hyp: &Hyperparameters,
    count: usize,
    seed: u64,
    with_noise: bool,
    precision: Precision,
) -> Result<(Array3<f64>, Vec<Status>)> {
    let (b, d) = (hyp.batch_size(), hyp.n_dims());
    hyp.validate(b, d)?;
    x.validate_test("x", b, d)?;
    let m = x.n_points();
    let data = Dataset::new(x.clone(), Array2::zeros((b, m)))?;
    let mut gram = be.gram(&data, hyp, precision)?;
    if !with_noise {
        for k in 0..b {
            for i in 0..m {
                gram[[k, i, i]] -= hyp.noise[k];
            }
        }
    }
    let mean = Array2::from_shape_fn((b, m), |(k, _)| hyp.mean[k]);
    Ok(draw_samples(mean.view(), gram.view(), count, seed, 0))
}

/// Draws `count` samples from N(mean_b, cov_b) for every member: mean (B, M), cov (B, M, M)
/// -> (count, B, M), with a status per member (Jitter when the covariance needed jitter to
/// factorise, Failed with NaN samples when it could not be).
///
/// Reproducible: member b draws from its own ChaCha8 stream (seed, stream first_member + b), so
/// the samples do not depend on the thread count, on the backend that computed the covariance,
/// or (given each chunk's first member) on how a batch was split into chunks.
pub fn draw_samples(
    mean: ArrayView2<f64>,
    cov: ArrayView3<f64>,
    count: usize,
    seed: u64,
    first_member: u64,
) -> (Array3<f64>, Vec<Status>) {
    let (b, m) = mean.dim();
    let mut out = Array3::<f64>::zeros((count, b, m));
    // Posterior covariances are often singular to working precision: start the jitter small
    // and allow more retries than a training Gram gets.
    let policy = JitterPolicy { start: 1e-10, retries: 9 };
    let per_member: Vec<(Vec<f64>, Status)> = (0..b)
        .into_par_iter()
        .map(|k| {
            let c = cov.index_axis(Axis(0), k);
            let mean_diag = if m > 0 { (0..m).map(|i| c[[i, i]]).sum::<f64>() / m as f64 } else { 0.0 };
            let scale = if mean_diag > 0.0 { mean_diag } else { 1.0 };
            let mut l = vec![0.0f64; m * m];
            let mut mem = Some(faer::dyn_stack::MemBuffer::new(
                faer::linalg::cholesky::llt::factor::cholesky_in_place_scratch::<f64>(m, Par::Seq, Default::default()),
            ));
            let (status, _) = factor_with_jitter::<f64>(&mut l, m, scale, policy, Par::Seq, &mut mem, |a, jit| {
                for j in 0..m {
                    for i in j..m {
                        a[j * m + i] = c[[i, j]];
                    }
                    a[j * m + j] += jit;
                }
            });
            let mut rng = ChaCha8Rng::seed_from_u64(seed);
            rng.set_stream(first_member + k as u64);
            let mut draws = vec![0.0; count * m];
            let mut zbuf = vec![0.0; m];
            for sidx in 0..count {
                for z in zbuf.iter_mut() {
                    *z = StandardNormal.sample(&mut rng);
                }
                for i in 0..m {
                    let mut acc = mean[[k, i]];
                    for j in 0..=i {
                        acc += l[j * m + i] * zbuf[j];
                    }
                    draws[sidx * m + i] = if status == Status::Failed { f64::NAN } else { acc };
                }
            }
            (draws, status)
        })
        .collect();
    let mut status = Vec::with_capacity(b);
    for (k, (draws, st)) in per_member.into_iter().enumerate() {
        for sidx in 0..count {
            for i in 0..m {
                out[[sidx, k, i]] = draws[sidx * m + i];
            }
        }
        status.push(if st == Status::Jitter { Status::Ok } else { st });
    }
    (out, status)
}
