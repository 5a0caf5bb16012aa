//! Sampling, in one place: draws from N(mean_b, cov_b) per member (posterior samples of a
//! prediction, prior samples of a teacher GP), reproducible per seed with one ChaCha8 stream per
//! member, so that samples do not depend on the thread count or on the backend that computed
//! the covariance.

pub use crate::backend::cpu::sample::draw_samples;
use crate::backend::{memory, Backend};
use crate::data::{Dataset, Hyperparameters, Inputs, Precision, Status};
use crate::error::Result;
use ndarray::{Array2, Array3};

/// Draws `count` samples from the prior of every member at inputs `x` ((M, D) or (B, M, D)):
/// f ~ N(m, Kf(x, x)), plus independent N(0, noise) when `with_noise` (then they are draws of
/// y, as a teacher GP would generate training data). Returns (count, B, M) and a status per
/// member. Reproducible for a seed (one stream per member).
///
/// # Errors
/// Hyperparameter shapes or domains, inputs of the wrong shape or non-finite;
/// [`Error::TooLarge`](crate::Error::TooLarge) when the samples (count x B x M, twice: drawn
/// and returned), the covariances (B x M x M) and one factor per thread exceed the memory
/// available.
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
    let (b64, m64) = (b as u64, m as u64);
    let threads = rayon::current_num_threads() as u64;
    let needed = memory::product(&[16, count as u64, b64, m64]).saturating_add(memory::product(&[
        8,
        b64.saturating_add(threads),
        m64,
        m64,
    ]));
    memory::plan(|| format!("sample_prior with samples = {count} for {b} members at M = {m} points"), needed, None)?;
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
