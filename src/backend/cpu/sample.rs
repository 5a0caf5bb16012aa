//! Sampling on the host, in one place: draws from N(mean_b, cov_b) per member (posterior
//! samples of a prediction, prior samples of a teacher GP), reproducible per seed with one
//! ChaCha8 stream per member, so that samples do not depend on the thread count or on the
//! backend that computed the covariance; and the completion of a [`Prediction`] from the
//! posterior of f, which the CUDA backend also finishes on the host here.

use super::factor_with_jitter;
use crate::backend::{PredictOptions, Prediction};
use crate::data::Status;
use crate::precision::JitterPolicy;
use faer::Par;
use ndarray::{Array1, Array2, Array3, ArrayView2, ArrayView3, Axis};
use rand::SeedableRng;
use rand_chacha::ChaCha8Rng;
use rand_distr::{Distribution, StandardNormal};
use rayon::prelude::*;

impl Prediction {
    /// Completes a prediction from the posterior of f: var_y = var + noise, the +/- 2 sd(y)
    /// bounds, and samples drawn from `cov` when `opts` asks for them (a member whose covariance
    /// cannot be factorised gets the worse of the two statuses). `cov` must be present when
    /// samples or the full covariance are asked for.
    pub(crate) fn assemble(
        mean: Array2<f64>,
        var: Array2<f64>,
        noise: &Array1<f64>,
        cov: Option<Array3<f64>>,
        mut status: Vec<Status>,
        jitter: Array1<f64>,
        opts: &PredictOptions,
    ) -> Prediction {
        let var_y = &var + &noise.view().insert_axis(Axis(1));
        let sd = var_y.mapv(f64::sqrt);
        let samples = match (opts.samples, cov.as_ref()) {
            (Some((count, seed)), Some(c)) => {
                let (s, st) = draw_samples(mean.view(), c.view(), count, seed, opts.first_member);
                for (a, b) in status.iter_mut().zip(st) {
                    *a = (*a).max(b);
                }
                Some(s)
            }
            _ => None,
        };
        Prediction {
            lower: &mean - &(2.0 * &sd),
            upper: &mean + &(2.0 * &sd),
            mean,
            var,
            var_y,
            covariance: if opts.full_covariance { cov } else { None },
            samples,
            status,
            jitter,
        }
    }
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
