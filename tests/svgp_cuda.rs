//! The SVGP on the GPU (kernels/svgp.cu, src/backend/cuda/svgp.rs).
//!
//! `svgp_kernels_in_host_emulation` always runs (it needs only a C++20 compiler): it compiles
//! tests/emulation/svgp_harness.cpp, which includes kernels/svgp.cu as host C++ through the
//! CUDA emulation layer tests/emulation/cuda_host.h that `kernels_in_host_emulation`
//! (tests/cuda_agreement.rs) uses too (each thread a fiber, block and warp-scoped barriers and
//! shuffles, per-block NaN-filled shared memory of exactly the launch's size, bounds checked
//! by AddressSanitizer or guard pages), and runs a plan of launches written here from the
//! backend's own `svgp_launch` (`batchgp::backend::cuda::emulation`: 256-thread blocks, one per
//! member, the exact dynamic shared memory, the shared-memory and the global-workspace paths).
//! It checks the kernels' ELBO and every gradient against an independent dense reference and
//! central differences, and the posterior against the dense formula, for every covariance
//! kernel in f64 and f32, with known noise, masks, c != 1, a forced jitter retry, an empty and a
//! failing member, and requires bit-identical outputs under two thread schedules.
//!
//! The GPU tests compare `CudaBackend::elbo` and `svgp_predict` with the CPU backend's (1e-9
//! relative in f64, 1e-4 in f32, against the larger of the value and the array's scale). They
//! are ignored by default; with `--include-ignored` they need a GPU and fail without one.

mod common;

use batchgp::backend::cpu::CpuBackend;
use batchgp::svgp::{ElboBatch, ElboOptions, SvgpParams};
use batchgp::{Dataset, Hyperparameters, Inputs, Kernel, Precision, PredictOptions, Status};
use common::{gpu, random_batch, tol};
use ndarray::{Array2, Array3};
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;

/// The launches of the SVGP host emulation (tests/emulation/svgp_harness.cpp reads one per
/// line), with the grid, block, dynamic shared memory bytes and SVGP_SMEM decision of the
/// backend's `svgp_launch` on a 227 KiB opt-in GPU: for every covariance kernel in f64 and f32
/// and (M, N, D) in (5, 45, 2), (3, 7, 1), (34, 40, 3), once with the factor in shared memory
/// (no known noise) and once through the global-workspace path's launch (with known noise; its
/// shape does not depend on M), gradients checked; and rbf at the last M in shared memory and
/// the first past it (f64 154 | 155, f32 224 | 225), ELBO and posterior only.
fn svgp_emulation_plan() -> (String, usize) {
    use batchgp::backend::cuda::emulation as emu;
    const OPTIN: usize = 227 * 1024;
    const B: usize = 5;
    let mut lines = Vec::new();
    let mut k = 0u64;
    let mut line = |kernel: &str,
                    dt: &str,
                    (m, n, d): (usize, usize, usize),
                    yvar: bool,
                    grad: bool,
                    sz: usize,
                    at: usize| {
        let (g, b, s, smem) = emu::svgp_launch(at, sz, B, OPTIN);
        lines.push(format!(
            "svgp kernel={kernel} dtype={dt} m={m} n={n} d={d} yvar={} grad={} shape={g},{b},{s} smem={} order={} order2={} seed={k}",
            yvar as u8,
            grad as u8,
            smem as u8,
            k % 3,
            (k + 1) % 3,
        ));
        k += 1;
        smem
    };
    for (dt, sz) in [("f64", 8), ("f32", 4)] {
        let first_global = (1..=4096).find(|&m| !emu::svgp_launch(m, sz, B, OPTIN).3).expect("a global-path M");
        assert_eq!(first_global, if sz == 8 { 155 } else { 225 }, "{dt}: the first M past shared memory");
        for kernel in Kernel::ALL {
            for shape in [(5, 45, 2), (3, 7, 1), (34, 40, 3)] {
                assert!(line(kernel.name(), dt, shape, false, true, sz, shape.0), "{dt} M={}: shared memory", shape.0);
                assert!(!line(kernel.name(), dt, shape, true, true, sz, first_global), "{dt}: the global path");
            }
        }
        for (m, yvar) in [(first_global - 1, true), (first_global, false)] {
            line("rbf", dt, (m, 40, 1), yvar, false, sz, m);
        }
    }
    let count = lines.len();
    (lines.join("\n") + "\n", count)
}

#[test]
fn svgp_kernels_in_host_emulation() {
    let (plan, count) = svgp_emulation_plan();
    common::emulation::run_harness("svgp_harness.cpp", &plan, count);
}

/// Panics where `a` (CPU) and `b` (GPU) differ by more than `tol` relative to the larger of
/// the two magnitudes and the scale of `a` (its largest magnitude) times `floor`. NaNs agree.
fn close(what: &str, a: &[f64], b: &[f64], tol: f64, floor: f64) {
    assert_eq!(a.len(), b.len(), "{what}: lengths");
    let scale = a.iter().filter(|v| v.is_finite()).fold(0f64, |m, v| m.max(v.abs())) * floor;
    for (i, (x, y)) in a.iter().zip(b).enumerate() {
        if x.is_nan() && y.is_nan() {
            continue;
        }
        let bound = tol * x.abs().max(y.abs()).max(scale).max(1e-300);
        assert!((x - y).abs() <= bound, "{what}[{i}]: cpu {x} gpu {y} (tol {tol}, scale {scale})");
    }
}

/// Random parameters at M inducing points spread over the data's range (k(Z, Z) well
/// conditioned for the f32 comparisons).
fn params(hyp: &Hyperparameters, m: usize, seed: u64) -> SvgpParams {
    let mut rng = ChaCha8Rng::seed_from_u64(seed);
    let (b, d) = (hyp.batch_size(), hyp.n_dims());
    let z = Array3::from_shape_fn((b, m, d), |(_, j, k)| {
        if k == 0 {
            (j as f64 + 0.5 * rng.random::<f64>()) / m as f64
        } else {
            rng.random::<f64>()
        }
    });
    let q_mu = Array2::from_shape_fn((b, m), |_| rng.random::<f64>() - 0.5);
    let q_sqrt = Array3::from_shape_fn((b, m, m), |(_, i, j)| match i.cmp(&j) {
        std::cmp::Ordering::Equal => 0.4 + 0.6 * rng.random::<f64>(),
        std::cmp::Ordering::Greater => 0.1 * (rng.random::<f64>() - 0.5),
        std::cmp::Ordering::Less => 7.0,
    });
    let mut hyp = hyp.clone();
    // Long lengthscales relative to the spacing of Z make k(Z, Z) ill conditioned: keep them
    // near the spacing.
    hyp.lengthscale.mapv_inplace(|l| l.min(2.0 / m as f64));
    if let Some(a) = hyp.alpha.as_mut() {
        for (i, v) in a.iter_mut().enumerate() {
            *v = 0.7 + 0.3 * i as f64;
        }
    }
    SvgpParams::new(z, q_mu, q_sqrt, hyp).unwrap()
}

/// B members of N points with a mask (member 0 has every third point masked, the last member
/// none observed), known noise when `yvar`.
fn data_for(b: usize, n: usize, d: usize, yvar: bool, seed: u64) -> (Dataset, Hyperparameters) {
    let (data, hyp) = random_batch(b, n, d, seed);
    let mask = Array2::from_shape_fn((b, n), |(m, i)| !(m == 0 && i % 3 == 1) && m + 1 != b);
    let mut y = data.y().clone();
    for ((m, i), v) in y.indexed_iter_mut() {
        if !mask[[m, i]] {
            *v = f64::NAN;
        }
    }
    let mut data = Dataset::with_mask(data.x().clone(), y, Some(mask)).unwrap();
    if yvar {
        let mut rng = ChaCha8Rng::seed_from_u64(seed + 1);
        data = data.with_yvar(Array2::from_shape_fn((b, n), |_| 0.05 * rng.random::<f64>())).unwrap();
    }
    (data, hyp)
}

fn compare_elbo(what: &str, cpu: &ElboBatch, gpu: &ElboBatch, p: Precision) {
    assert_eq!(cpu.status, gpu.status, "{what}: status");
    close(&format!("{what} jitter"), cpu.jitter.as_slice().unwrap(), gpu.jitter.as_slice().unwrap(), 1e-12, 0.0);
    close(&format!("{what} elbo"), cpu.elbo.as_slice().unwrap(), gpu.elbo.as_slice().unwrap(), tol(p), 1e-3);
    if let (Some(a), Some(b)) = (&cpu.gradient, &gpu.gradient) {
        let t = tol(p) * if p == Precision::F32 { 10.0 } else { 1.0 };
        close(&format!("{what} d/dz"), a.z.as_slice().unwrap(), b.z.as_slice().unwrap(), t, 1e-2);
        close(&format!("{what} d/dq_mu"), a.q_mu.as_slice().unwrap(), b.q_mu.as_slice().unwrap(), t, 1e-2);
        close(&format!("{what} d/dq_sqrt"), a.q_sqrt.as_slice().unwrap(), b.q_sqrt.as_slice().unwrap(), t, 1e-2);
        let rows = |g: &batchgp::backend::MllGradient| {
            let mut v: Vec<f64> = g.log_lengthscale.iter().copied().collect();
            v.extend(g.log_outputscale.iter().chain(g.log_noise.iter()).chain(g.mean.iter()));
            if let Some(al) = &g.log_alpha {
                v.extend(al.iter());
            }
            v
        };
        close(&format!("{what} d/dhyp"), &rows(&a.hyp), &rows(&b.hyp), t, 1e-2);
    }
    assert!(gpu.gradient.is_some() == cpu.gradient.is_some(), "{what}: gradient presence");
}

fn check_elbo(p: Precision) {
    let g = gpu();
    let cpu = CpuBackend::new();
    // (M, N, D): one tile, partial tiles, M past the tile width, the f64 shared-memory limit
    // (154) and past it (global workspace), f32's (224).
    let shapes: &[(usize, usize, usize)] =
        &[(1, 5, 1), (4, 33, 2), (16, 100, 3), (40, 257, 2), (128, 300, 2), (160, 200, 1), (230, 100, 1)];
    for &(m, n, d) in shapes {
        for kernel in Kernel::ALL {
            for yvar in [false, true] {
                let (data, hyp) = data_for(4, n, d, yvar, (m * 31 + n) as u64);
                let mut pr = params(&hyp.with_kernel(kernel), m, m as u64 + 5);
                pr.hyp.outputscale[2] = f64::INFINITY; // fails
                let scale = [1.0, 2.5, 1.0, 0.5];
                for gradient in [true, false] {
                    let opts = ElboOptions { gradient, ..ElboOptions::new(p) };
                    let what = format!("{kernel} {p:?} M={m} N={n} D={d} yvar={yvar} grad={gradient}");
                    let a = cpu.elbo(&data, &pr, None, Some(&scale), &opts).unwrap();
                    let b = g.elbo(&data, &pr, None, Some(&scale), &opts).unwrap();
                    assert_eq!(b.status[2], Status::Failed, "{what}");
                    assert_eq!(b.status[3], Status::Empty, "{what}");
                    compare_elbo(&what, &a, &b, p);
                }
                // A member list with a repeat.
                let rows = [3, 1, 1, 0];
                let opts = ElboOptions::new(p);
                let a = cpu.elbo(&data, &pr, Some(&rows), Some(&scale), &opts).unwrap();
                let b = g.elbo(&data, &pr, Some(&rows), Some(&scale), &opts).unwrap();
                compare_elbo(&format!("{kernel} {p:?} M={m} rows"), &a, &b, p);
            }
        }
    }
}

#[test]
#[ignore = "needs a GPU: cargo test --release --test svgp_cuda -- --include-ignored where one is lent"]
fn elbo_and_gradient_agree_f64() {
    check_elbo(Precision::F64);
}

#[test]
#[ignore = "needs a GPU: cargo test --release --test svgp_cuda -- --include-ignored where one is lent"]
fn elbo_and_gradient_agree_f32() {
    check_elbo(Precision::F32);
}

fn check_predict(p: Precision) {
    let g = gpu();
    let cpu = CpuBackend::new();
    for &(m, mt, d) in &[(3, 1, 1), (8, 45, 2), (64, 100, 3), (160, 33, 1)] {
        for kernel in Kernel::ALL {
            let (_, hyp) = random_batch(3, 10, d, m as u64);
            let mut pr = params(&hyp.with_kernel(kernel), m, m as u64 + 1);
            pr.hyp.outputscale[1] = f64::INFINITY;
            let mut rng = ChaCha8Rng::seed_from_u64(mt as u64);
            let shared = Inputs::Shared(Array2::from_shape_fn((mt, d), |_| rng.random::<f64>()));
            let per = Inputs::Batched(Array3::from_shape_fn((3, mt, d), |_| rng.random::<f64>()));
            for test in [&shared, &per] {
                let opts = PredictOptions { precision: p, full_covariance: true, ..Default::default() };
                let a = batchgp::svgp::predict(&cpu, &pr, test, &opts).unwrap();
                let b = batchgp::svgp::predict(&g, &pr, test, &opts).unwrap();
                let what = format!("{kernel} {p:?} M={m} Mt={mt} D={d}");
                assert_eq!(a.status, b.status, "{what} status");
                let s = pr.hyp.outputscale.iter().filter(|v| v.is_finite()).fold(0f64, |x, v| x.max(*v));
                close(&format!("{what} mean"), a.mean.as_slice().unwrap(), b.mean.as_slice().unwrap(), tol(p), 1e-3);
                // Variances cancel to the jitter's size near Z: compared against s.
                let fl = s / a.var.iter().filter(|v| v.is_finite()).fold(1e-300f64, |x, v| x.max(v.abs()));
                close(&format!("{what} var"), a.var.as_slice().unwrap(), b.var.as_slice().unwrap(), 10.0 * tol(p), fl);
                let (ca, cb) = (a.covariance.unwrap(), b.covariance.unwrap());
                close(&format!("{what} cov"), ca.as_slice().unwrap(), cb.as_slice().unwrap(), 10.0 * tol(p), 1.0);
            }
        }
    }
}

#[test]
#[ignore = "needs a GPU: cargo test --release --test svgp_cuda -- --include-ignored where one is lent"]
fn svgp_predict_agrees_f64() {
    check_predict(Precision::F64);
}

#[test]
#[ignore = "needs a GPU: cargo test --release --test svgp_cuda -- --include-ignored where one is lent"]
fn svgp_predict_agrees_f32() {
    check_predict(Precision::F32);
}

#[test]
#[ignore = "needs a GPU: cargo test --release --test svgp_cuda -- --include-ignored where one is lent"]
fn svgp_chunking_does_not_change_results() {
    let (data, hyp) = data_for(7, 60, 2, true, 3);
    let pr = params(&hyp, 12, 4);
    let opts = ElboOptions::new(Precision::F64);
    let whole = gpu().elbo(&data, &pr, None, None, &opts).unwrap();
    let chunked = gpu().with_max_chunk(2).elbo(&data, &pr, None, None, &opts).unwrap();
    assert_eq!(whole, chunked);
}
