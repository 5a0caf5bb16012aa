//! The vendor-library path for large N (src/backend/cuda/dense.rs) without a GPU: its plumbing
//! (chunks, the jitter loop with its per-member status and jitter, log|K| and alpha from the
//! factors, K^-1 from the factor, the pair pass and the gemm-based lengthscale gradient) run over
//! the CPU reference of every device operation (src/backend/cuda/dense_reference.rs), against the
//! CPU backend: MLL and gradient to 1e-9 relative, status and jitter equal, for every covariance
//! kernel, with a mask (NaN in masked entries), known noise, a member that needs jitter (exact
//! duplicate points), an empty one and a failing one (outputscale inf), in chunks of 1, 3 and all.
//! And the two kernels of that path (kernels/dense.cu) in the host emulation
//! (tests/emulation/dense_harness.cpp) at the backend's launch shapes.

mod common;

use batchgp::backend::cpu::CpuBackend;
use batchgp::backend::cuda::dense_check::{pairs_launch, reference_mll, DENSE_MIN_N};
use batchgp::{Backend, Dataset, Hyperparameters, Inputs, Kernel, MllOptions, Precision, Status};
use ndarray::{Array2, Array3};
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;

/// Member 1 fully masked (Empty), member 2 with outputscale inf (Failed), member 3 with all its
/// points equal and noise 1e-300 (singular K: factors only with jitter); a quarter of the other
/// points masked, NaN there.
fn batch(b: usize, n: usize, d: usize, kernel: Kernel, yvar: bool, seed: u64) -> (Dataset, Hyperparameters) {
    let mut rng = ChaCha8Rng::seed_from_u64(seed);
    let mask = Array2::from_shape_fn((b, n), |(m, i)| m != 1 && (i == 0 || m == 3 || rng.random::<f64>() > 0.25));
    let x = Array3::from_shape_fn((b, n, d), |(m, i, _)| match (mask[[m, i]], m) {
        (false, _) => f64::NAN,
        (true, 3) => 0.25,
        _ => 2.0 * rng.random::<f64>(),
    });
    let y = Array2::from_shape_fn((b, n), |(m, i)| {
        if mask[[m, i]] {
            (3.0 * i as f64).sin() + rng.random::<f64>()
        } else {
            f64::NAN
        }
    });
    let mut data = Dataset::with_mask(Inputs::Batched(x), y, Some(mask)).expect("data");
    if yvar {
        data = data.with_yvar(Array2::from_shape_fn((b, n), |_| 0.02 * rng.random::<f64>())).expect("yvar");
    }
    let mut hyp = Hyperparameters::broadcast(b, &vec![0.5; d], 1.0, 0.05, 0.0).with_kernel(kernel);
    for m in 0..b {
        for k in 0..d {
            hyp.lengthscale[[m, k]] = 0.3 + rng.random::<f64>();
        }
        hyp.outputscale[m] = 0.5 + rng.random::<f64>();
        hyp.noise[m] = 0.01 + 0.1 * rng.random::<f64>();
        hyp.mean[m] = rng.random::<f64>() - 0.5;
    }
    if let Some(a) = hyp.alpha.as_mut() {
        a.iter_mut().for_each(|v| *v = 0.5 + 2.0 * rng.random::<f64>());
    }
    hyp.outputscale[2] = f64::INFINITY;
    if !yvar {
        hyp.noise[3] = 1e-300;
    }
    (data, hyp)
}

fn close(what: &str, a: &[f64], b: &[f64]) {
    assert_eq!(a.len(), b.len(), "{what}: lengths");
    let floor = a.iter().filter(|v| v.is_finite()).fold(0.0f64, |m, v| m.max(v.abs())) * 1e-3;
    for (i, (x, y)) in a.iter().zip(b).enumerate() {
        if x.is_nan() && y.is_nan() {
            continue;
        }
        let scale = x.abs().max(y.abs()).max(floor);
        assert!((x - y).abs() <= 1e-9 * scale, "{what}: index {i}: cpu {x:e}, dense {y:e}");
    }
}

#[test]
fn dense_plumbing_agrees_with_the_cpu_backend() {
    let cpu = CpuBackend::new();
    let mut seed = 1;
    for kernel in Kernel::ALL {
        for (n, d, yvar) in [(1, 1, false), (9, 3, true), (40, 2, false), (33, 8, true)] {
            let b = 6;
            let (data, hyp) = batch(b, n, d, kernel, yvar, seed);
            seed += 1;
            let opts = MllOptions::new(Precision::F64);
            let want = cpu.mll(&data, &hyp, None, &opts).expect("cpu");
            let what = format!("{kernel} n = {n} d = {d} yvar = {yvar}");
            assert_eq!(want.status[1], Status::Empty, "{what}");
            assert_eq!(want.status[2], Status::Failed, "{what}");
            if n > 1 && !yvar {
                assert_eq!(want.status[3], Status::Jitter, "{what}: the singular member needs jitter");
            }
            for chunk in [1, 3, b] {
                let got = reference_mll(&data, &hyp, None, &opts, chunk).expect("dense");
                let w = format!("{what} chunk {chunk}");
                assert_eq!(got.status, want.status, "{w}: status");
                assert_eq!(got.jitter.to_vec(), want.jitter.to_vec(), "{w}: jitter");
                close(&format!("{w}: mll"), want.mll.as_slice().unwrap(), got.mll.as_slice().unwrap());
                // The member that needed jitter has a K of condition ~1e9 (exact duplicates, jitter
                // 1e-8 of its diagonal): its gradient sums cancel terms of ~1e9 and are not
                // determined to 1e-9 by either implementation; its status, jitter and MLL are.
                let (mut gw, mut gg) = (want.gradient.clone().unwrap(), got.gradient.clone().unwrap());
                if want.status[3] == Status::Jitter {
                    for g in [&mut gw, &mut gg] {
                        g.log_lengthscale.row_mut(3).fill(f64::NAN);
                        g.log_outputscale[3] = f64::NAN;
                        g.log_noise[3] = f64::NAN;
                        g.mean[3] = f64::NAN;
                        if let Some(a) = g.log_alpha.as_mut() {
                            a[3] = f64::NAN;
                        }
                    }
                }
                let (gw, gg) = (&gw, &gg);
                close(
                    &format!("{w}: d/dlog l"),
                    gw.log_lengthscale.as_slice().unwrap(),
                    gg.log_lengthscale.as_slice().unwrap(),
                );
                close(
                    &format!("{w}: d/dlog s"),
                    gw.log_outputscale.as_slice().unwrap(),
                    gg.log_outputscale.as_slice().unwrap(),
                );
                close(
                    &format!("{w}: d/dlog noise"),
                    gw.log_noise.as_slice().unwrap(),
                    gg.log_noise.as_slice().unwrap(),
                );
                close(&format!("{w}: d/dmean"), gw.mean.as_slice().unwrap(), gg.mean.as_slice().unwrap());
                if let (Some(a), Some(b)) = (&gw.log_alpha, &gg.log_alpha) {
                    close(&format!("{w}: d/dlog alpha"), a.as_slice().unwrap(), b.as_slice().unwrap());
                }
            }
        }
    }
}

#[test]
fn listed_members_and_no_gradient() {
    let (data, hyp) = batch(7, 20, 2, Kernel::Matern32, false, 99);
    let mut opts = MllOptions::new(Precision::F64);
    opts.gradient = false;
    let rows = [6, 3, 0, 2];
    let want = CpuBackend::new().mll(&data, &hyp, Some(&rows), &opts).expect("cpu");
    let got = reference_mll(&data, &hyp, Some(&rows), &opts, 2).expect("dense");
    assert!(got.gradient.is_none());
    assert_eq!(got.status, want.status);
    close("mll", want.mll.as_slice().unwrap(), got.mll.as_slice().unwrap());
    // The provisional threshold sits past the fused block kernel's largest N (168 in f64).
    assert!(DENSE_MIN_N > 168);
}

/// The launches of the dense.cu emulation: the shift over C N N entries (grid-stride) and the
/// pair pass (a block per member) for every kernel in both precisions, N across one and several
/// passes of a block's threads over the triangle, D = 1 and 3.
fn dense_plan() -> (String, usize) {
    use batchgp::backend::cuda::emulation as emu;
    let mut lines = Vec::new();
    let mut seed = 1u64;
    for dt in ["f64", "f32"] {
        for (c, n) in [(1, 1), (5, 7), (3, 40)] {
            let (g, b, sm) = emu::stride(c * n * n);
            lines.push(format!("shift dt={dt} C={c} N={n} shape={g},{b},{sm} seed={seed}"));
            seed += 1;
        }
        for k in Kernel::ALL {
            for (c, n, d) in [(2, 5, 1), (3, 30, 3)] {
                let (g, b, sm) = pairs_launch(c);
                lines.push(format!("pairs dt={dt} kernel={k} C={c} N={n} D={d} shape={g},{b},{sm} seed={seed}"));
                seed += 1;
            }
        }
    }
    let count = lines.len();
    (lines.join("\n") + "\n", count)
}

#[test]
fn dense_kernels_in_host_emulation() {
    let (plan, count) = dense_plan();
    common::emulation::run_harness("dense_harness.cpp", &plan, count);
}
