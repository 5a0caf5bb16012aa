//! Shared test helpers: a dense, textbook reference of the model (independent of faer and of
//! the backends), random batches, and a loop over every usable backend.
#![allow(dead_code)]

pub mod emulation;

use batchgp::backend::cuda::CudaBackend;
use batchgp::backend::{self, Backend};
use batchgp::{Dataset, Hyperparameters, Inputs, Kernel, Precision};
use ndarray::{Array1, Array2, Array3};
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;

pub const LN_2PI: f64 = 1.837_877_066_409_345_5;

/// The GPU the CUDA tests are for. They are ignored by default (cargo lists them as "ignored,
/// needs a GPU"); run where one is lent with `--include-ignored`, and there a GPU that cannot be
/// had (no driver, a module that does not load, a poisoned context) fails them, never skips.
pub fn gpu() -> CudaBackend {
    CudaBackend::new().unwrap_or_else(|e| panic!("no usable GPU: {e}"))
}

/// How closely the CUDA backend must agree with the CPU backend, relative: 1e-9 in f64, 1e-4
/// in f32.
pub fn tol(p: Precision) -> f64 {
    match p {
        Precision::F64 => 1e-9,
        Precision::F32 => 1e-4,
    }
}

/// Runs `body` on every usable backend (the CPU always; CUDA when a GPU is usable, else it
/// says it skipped).
pub fn on_every_backend(mut body: impl FnMut(&dyn Backend)) {
    let all = backend::available();
    if all.len() == 1 {
        eprintln!("cuda: skipped (no usable GPU here)");
    }
    for be in &all {
        body(be.as_ref());
    }
}

/// Plain Cholesky of a dense SPD matrix; None when not positive definite.
pub fn dense_cholesky(a: &Array2<f64>) -> Option<Array2<f64>> {
    let n = a.nrows();
    let mut l = Array2::<f64>::zeros((n, n));
    for j in 0..n {
        let mut s = a[[j, j]];
        for k in 0..j {
            s -= l[[j, k]] * l[[j, k]];
        }
        if s.is_nan() || s <= 0.0 {
            return None;
        }
        l[[j, j]] = s.sqrt();
        for i in j + 1..n {
            let mut t = a[[i, j]];
            for k in 0..j {
                t -= l[[i, k]] * l[[j, k]];
            }
            l[[i, j]] = t / l[[j, j]];
        }
    }
    Some(l)
}

/// Solves K v = r with the dense Cholesky factor.
pub fn dense_solve(l: &Array2<f64>, r: &Array1<f64>) -> Array1<f64> {
    let n = l.nrows();
    let mut z = r.clone();
    for i in 0..n {
        for k in 0..i {
            z[i] -= l[[i, k]] * z[k];
        }
        z[i] /= l[[i, i]];
    }
    for i in (0..n).rev() {
        for k in i + 1..n {
            z[i] -= l[[k, i]] * z[k];
        }
        z[i] /= l[[i, i]];
    }
    z
}

/// Observed points and residuals of member b.
pub fn member_points(data: &Dataset, hyp: &Hyperparameters, b: usize) -> (Array2<f64>, Array1<f64>) {
    let obs = data.observed(b);
    let d = data.n_dims();
    let xb = data.x().member(b);
    let x = Array2::from_shape_fn((obs.len(), d), |(i, k)| xb[[obs[i], k]]);
    let r = Array1::from_shape_fn(obs.len(), |i| data.y()[[b, obs[i]]] - hyp.mean[b]);
    (x, r)
}

pub fn rbf(x: &Array2<f64>, z: &Array2<f64>, ls: &[f64], s: f64) -> Array2<f64> {
    Array2::from_shape_fn((x.nrows(), z.nrows()), |(i, j)| {
        let q: f64 = (0..ls.len()).map(|k| ((x[[i, k]] - z[[j, k]]) / ls[k]).powi(2)).sum();
        s * (-0.5 * q).exp()
    })
}

/// k(x, z) of any kernel, from the textbook formulas of docs/design.md section 10 written out
/// here (not through the crate's kernel module).
pub fn dense_kernel(kernel: Kernel, x: &Array2<f64>, z: &Array2<f64>, ls: &[f64], s: f64, alpha: f64) -> Array2<f64> {
    Array2::from_shape_fn((x.nrows(), z.nrows()), |(i, j)| {
        let r2: f64 = (0..ls.len()).map(|k| ((x[[i, k]] - z[[j, k]]) / ls[k]).powi(2)).sum();
        let r = r2.sqrt();
        let (s3, s5) = (3f64.sqrt(), 5f64.sqrt());
        s * match kernel {
            Kernel::Rbf => (-0.5 * r2).exp(),
            Kernel::Matern12 => (-r).exp(),
            Kernel::Matern32 => (1.0 + s3 * r) * (-s3 * r).exp(),
            Kernel::Matern52 => (1.0 + s5 * r + 5.0 * r2 / 3.0) * (-s5 * r).exp(),
            Kernel::Rq => (1.0 + r2 / (2.0 * alpha)).powf(-alpha),
        }
    })
}

/// The textbook MLL of member b (no jitter), any kernel, with yvar when the data has it.
pub fn dense_mll(data: &Dataset, hyp: &Hyperparameters, b: usize) -> f64 {
    let (x, r) = member_points(data, hyp, b);
    let n = x.nrows();
    let ls: Vec<f64> = hyp.lengthscale.row(b).to_vec();
    let mut k = dense_kernel(hyp.kernel, &x, &x, &ls, hyp.outputscale[b], hyp.alpha_of(b));
    let obs = data.observed(b);
    for i in 0..n {
        k[[i, i]] += hyp.noise[b] + data.yvar_at(b, obs[i]);
    }
    let l = dense_cholesky(&k).expect("SPD");
    let alpha = dense_solve(&l, &r);
    let logdet: f64 = (0..n).map(|i| l[[i, i]].ln()).sum::<f64>() * 2.0;
    -0.5 * r.dot(&alpha) - 0.5 * logdet - 0.5 * n as f64 * LN_2PI
}

/// A random batch: x per member (B, N, D) on [0, 1], y smooth plus noise, and hyperparameters
/// that differ per member.
pub fn random_batch(b: usize, n: usize, d: usize, seed: u64) -> (Dataset, Hyperparameters) {
    let mut rng = ChaCha8Rng::seed_from_u64(seed);
    let x = Array3::from_shape_fn((b, n, d), |_| rng.random::<f64>());
    let y = Array2::from_shape_fn((b, n), |(m, i)| {
        let s: f64 = (0..d).map(|k| (3.0 * x[[m, i, k]] + m as f64).sin()).sum();
        s + 0.1 * (rng.random::<f64>() - 0.5)
    });
    let mut hyp = Hyperparameters::broadcast(b, &vec![0.3; d], 1.0, 0.05, 0.1);
    for m in 0..b {
        for k in 0..d {
            hyp.lengthscale[[m, k]] = 0.2 + 0.5 * rng.random::<f64>();
        }
        hyp.outputscale[m] = 0.5 + rng.random::<f64>();
        hyp.noise[m] = 0.01 + 0.1 * rng.random::<f64>();
        hyp.mean[m] = rng.random::<f64>() - 0.5;
    }
    (Dataset::new(Inputs::Batched(x), y).unwrap(), hyp)
}

/// |a - b| <= tol * max(1, |a|, |b|), with a message naming `what`.
pub fn assert_close(a: f64, b: f64, tol: f64, what: &str) {
    let scale = 1f64.max(a.abs()).max(b.abs());
    assert!((a - b).abs() <= tol * scale, "{what}: {a} vs {b} (diff {:e}, tol {tol:e})", (a - b).abs());
}

/// Element-wise closeness that reports the first index that differs.
pub fn assert_all_close(a: &[f64], b: &[f64], tol: f64, what: &str) {
    assert_eq!(a.len(), b.len(), "{what}: lengths");
    for (i, (x, y)) in a.iter().zip(b).enumerate() {
        let scale = 1f64.max(x.abs()).max(y.abs());
        assert!((x - y).abs() <= tol * scale, "{what}: first difference at index {i}: {x} vs {y}");
    }
}
