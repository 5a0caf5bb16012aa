//! What the benchmarks share: the batch of problems they time.

use batchgp::{Dataset, Hyperparameters, Kernel};
use ndarray::{Array1, Array2, Array3};
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;

/// A batch of B smooth 1-output problems in [0, 1]^D with per-member hyperparameters (rbf).
pub fn problem(b: usize, n: usize, d: usize, seed: u64) -> (Dataset, Hyperparameters) {
    let mut rng = ChaCha8Rng::seed_from_u64(seed);
    let x = Array3::from_shape_fn((b, n, d), |_| rng.random::<f64>());
    let y = Array2::from_shape_fn((b, n), |(m, i)| {
        let xi = x.slice(ndarray::s![m, i, ..]);
        let f = (6.0 * xi[0]).sin() + 0.5 * xi.iter().skip(1).map(|v| (3.0 * v).cos()).sum::<f64>();
        f + 0.1 * (rng.random::<f64>() - 0.5)
    });
    let lengthscale = Array2::from_shape_fn((b, d), |_| 0.3 + 0.4 * rng.random::<f64>());
    let outputscale = Array1::from_shape_fn(b, |_| 0.5 + rng.random::<f64>());
    let noise = Array1::from_shape_fn(b, |_| 0.01 + 0.05 * rng.random::<f64>());
    let mean = Array1::from_shape_fn(b, |_| 0.2 * (rng.random::<f64>() - 0.5));
    let data = Dataset::new(x, y).expect("valid data");
    (data, Hyperparameters { kernel: Kernel::Rbf, lengthscale, outputscale, noise, mean, alpha: None })
}
