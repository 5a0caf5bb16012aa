//! CPU-vs-CUDA agreement: gram, cholesky, mll + gradient and predict of the CUDA backend against
//! the CPU backend, to 1e-9 relative in f64 and 1e-4 in f32, over N in {1, 7, 32, 33, 64, 160,
//! 161, 500, 2048} (the three kernel variants and their boundaries), D in {1, 3, 8}, shared and
//! per-member x, with and without a mask (NaN in the masked entries), a fully masked member and
//! a member forced to fail (outputscale = exp(800) = inf).
//!
//! Without a usable GPU every test prints "skipped: <reason>" and passes.

use batchgp::backend::cpu::CpuBackend;
use batchgp::backend::cuda::CudaBackend;
use batchgp::{
    Backend, Dataset, Hyperparameters, Inputs, JitterPolicy, MllOptions, Precision, PredictOptions,
    Status,
};
use ndarray::{Array1, Array2, Array3};
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;

fn gpu() -> Option<CudaBackend> {
    match CudaBackend::new() {
        Ok(g) => Some(g),
        Err(e) => {
            println!("skipped: {e}");
            None
        }
    }
}

fn tol(p: Precision) -> f64 {
    match p {
        Precision::F64 => 1e-9,
        Precision::F32 => 1e-4,
    }
}

/// Panics at the first index where `cpu` and `gpu` differ by more than `tol` relative to the
/// larger of the two magnitudes and `floor` (the array's scale, for entries that cancel to ~0).
/// Two NaNs agree.
fn assert_close(what: &str, shape: &[usize], cpu: &[f64], gpu: &[f64], tol: f64, floor: f64) {
    assert_eq!(cpu.len(), gpu.len(), "{what}: lengths differ");
    for (k, (a, b)) in cpu.iter().zip(gpu).enumerate() {
        if a.is_nan() && b.is_nan() {
            continue;
        }
        let scale = a.abs().max(b.abs()).max(floor);
        let ok = (a - b).abs() <= tol * scale;
        if !ok {
            let mut idx = vec![0; shape.len()];
            let mut r = k;
            for (i, &e) in shape.iter().enumerate().rev() {
                idx[i] = r % e.max(1);
                r /= e.max(1);
            }
            panic!("{what}: first difference at {idx:?}: cpu {a:e}, cuda {b:e} (tolerance {tol:e} x {scale:e})");
        }
    }
}

/// The magnitude below which differences are judged against the array's largest entry rather
/// than the entry itself: cancellation (a gradient component near 0, a posterior variance near
/// 0) loses digits relative to the entry but not relative to the array. In f32 the whole array
/// shares one scale.
fn floor_of(v: &[f64], tol: f64) -> f64 {
    let max = v
        .iter()
        .filter(|x| x.is_finite())
        .fold(0.0f64, |m, x| m.max(x.abs()));
    if tol >= 1e-6 {
        max
    } else {
        max * 1e-3
    }
}

fn close_arr<D: ndarray::Dimension>(
    what: &str,
    cpu: &ndarray::Array<f64, D>,
    gpu: &ndarray::Array<f64, D>,
    tol: f64,
) {
    assert_eq!(cpu.shape(), gpu.shape(), "{what}: shapes differ");
    let a: Vec<f64> = cpu.iter().copied().collect();
    let b: Vec<f64> = gpu.iter().copied().collect();
    assert_close(what, cpu.shape(), &a, &b, tol, floor_of(&a, tol));
}

#[derive(Clone, Copy, Debug)]
struct Case {
    b: usize,
    n: usize,
    d: usize,
    shared: bool,
    masked: bool,
}

/// Random data and hyperparameters. Member 1 (when B >= 2) has outputscale exp(800) = inf and
/// must fail; with a mask, member 2 (when B >= 3) is fully masked; masked x and y are NaN.
fn make(case: Case, seed: u64) -> (Dataset, Hyperparameters) {
    let Case {
        b,
        n,
        d,
        shared,
        masked,
    } = case;
    let mut rng = ChaCha8Rng::seed_from_u64(seed);
    let mask = masked.then(|| {
        Array2::from_shape_fn((b, n), |(m, i)| {
            if m == 0 || n == 1 {
                true
            } else if m == 2 {
                false
            } else {
                i % 5 != 3 && rng.random::<f64>() > 0.15
            }
        })
    });
    let mut rng = ChaCha8Rng::seed_from_u64(seed + 1);
    let obs = |m: usize, i: usize| mask.as_ref().is_none_or(|k| k[[m, i]]);
    let x: Inputs = if shared {
        Inputs::Shared(Array2::from_shape_fn((n, d), |_| 3.0 * rng.random::<f64>()))
    } else {
        Inputs::Batched(Array3::from_shape_fn((b, n, d), |(m, i, _)| {
            let v = 3.0 * rng.random::<f64>();
            if obs(m, i) {
                v
            } else {
                f64::NAN
            }
        }))
    };
    let y = Array2::from_shape_fn((b, n), |(m, i)| {
        let xi = x.member(m);
        let v = xi.row(i).iter().sum::<f64>().sin() + 0.1 * rng.random::<f64>();
        if obs(m, i) {
            v
        } else {
            f64::NAN
        }
    });
    let data = Dataset::with_mask(x, y, mask).expect("valid data");
    let mut hyp = Hyperparameters {
        lengthscale: Array2::from_shape_fn((b, d), |_| 0.5 + 1.5 * rng.random::<f64>()),
        outputscale: Array1::from_shape_fn(b, |_| 0.5 + 1.5 * rng.random::<f64>()),
        noise: Array1::from_shape_fn(b, |_| 0.02 + 0.2 * rng.random::<f64>()),
        mean: Array1::from_shape_fn(b, |_| rng.random::<f64>() - 0.5),
    };
    if b >= 2 {
        hyp.outputscale[1] = f64::exp(800.0);
    }
    (data, hyp)
}

fn cases(p: Precision) -> Vec<Case> {
    let mut v = Vec::new();
    let ns: &[usize] = match p {
        Precision::F64 => &[1, 7, 32, 33, 64, 160, 161],
        Precision::F32 => &[1, 7, 32, 33, 64, 161],
    };
    for &n in ns {
        for d in [1, 3, 8] {
            for shared in [false, true] {
                for masked in [false, true] {
                    v.push(Case {
                        b: if n <= 64 { 6 } else { 3 },
                        n,
                        d,
                        shared,
                        masked,
                    });
                }
            }
        }
    }
    if p == Precision::F64 {
        v.push(Case {
            b: 3,
            n: 500,
            d: 3,
            shared: false,
            masked: true,
        });
        v.push(Case {
            b: 2,
            n: 500,
            d: 8,
            shared: true,
            masked: false,
        });
        v.push(Case {
            b: 2,
            n: 2048,
            d: 3,
            shared: false,
            masked: true,
        });
    }
    v
}

fn check_mll(gpu: &CudaBackend, p: Precision) {
    let cpu = CpuBackend::new();
    for (k, case) in cases(p).into_iter().enumerate() {
        let (data, hyp) = make(case, 100 + k as u64);
        let opts = MllOptions::new(p);
        let a = cpu.mll(&data, &hyp, None, &opts).expect("cpu mll");
        let g = gpu
            .mll(&data, &hyp, None, &opts)
            .unwrap_or_else(|e| panic!("{case:?}: cuda mll: {e}"));
        let what = |s: &str| format!("{case:?} {p:?} mll {s}");
        assert_eq!(a.status, g.status, "{}", what("status"));
        if case.b >= 2 {
            assert_eq!(g.status[1], Status::Failed, "{}", what("forced failure"));
        }
        close_arr(&what("jitter"), &a.jitter, &g.jitter, tol(p));
        close_arr(&what("value"), &a.mll, &g.mll, tol(p));
        let (ga, gg) = (
            a.gradient.expect("cpu gradient"),
            g.gradient.expect("cuda gradient"),
        );
        close_arr(
            &what("d/dlog lengthscale"),
            &ga.log_lengthscale,
            &gg.log_lengthscale,
            tol(p),
        );
        close_arr(
            &what("d/dlog outputscale"),
            &ga.log_outputscale,
            &gg.log_outputscale,
            tol(p),
        );
        close_arr(&what("d/dlog noise"), &ga.log_noise, &gg.log_noise, tol(p));
        close_arr(&what("d/dmean"), &ga.mean, &gg.mean, tol(p));
    }
}

#[test]
fn mll_and_gradient_agree_f64() {
    let Some(g) = gpu() else { return };
    check_mll(&g, Precision::F64);
}

#[test]
fn mll_and_gradient_agree_f32() {
    let Some(g) = gpu() else { return };
    check_mll(&g, Precision::F32);
}

#[test]
fn mll_of_listed_members_agrees() {
    let Some(g) = gpu() else { return };
    let cpu = CpuBackend::new();
    let (data, hyp) = make(
        Case {
            b: 7,
            n: 40,
            d: 3,
            shared: false,
            masked: true,
        },
        7,
    );
    let rows = [6, 0, 3, 3, 1];
    let mut opts = MllOptions::new(Precision::F64);
    for grad in [true, false] {
        opts.gradient = grad;
        let a = cpu.mll(&data, &hyp, Some(&rows), &opts).expect("cpu");
        let b = g.mll(&data, &hyp, Some(&rows), &opts).expect("cuda");
        assert_eq!(a.status, b.status);
        assert_eq!(b.gradient.is_some(), grad);
        close_arr("listed mll", &a.mll, &b.mll, 1e-9);
        if let (Some(x), Some(y)) = (a.gradient, b.gradient) {
            close_arr(
                "listed gradient",
                &x.log_lengthscale,
                &y.log_lengthscale,
                1e-9,
            );
        }
    }
}

#[test]
fn gram_agrees() {
    let Some(g) = gpu() else { return };
    let cpu = CpuBackend::new();
    for p in [Precision::F64, Precision::F32] {
        for (k, case) in cases(p).into_iter().filter(|c| c.n <= 500).enumerate() {
            let (data, mut hyp) = make(case, 300 + k as u64);
            if case.b >= 2 {
                hyp.outputscale[1] = 1.0; // inf * 0 differs in no interesting way here
            }
            let a = cpu.gram(&data, &hyp, p).expect("cpu gram");
            let b = g
                .gram(&data, &hyp, p)
                .unwrap_or_else(|e| panic!("{case:?}: cuda gram: {e}"));
            close_arr(&format!("{case:?} {p:?} gram"), &a, &b, tol(p));
        }
    }
}

#[test]
fn cholesky_agrees() {
    let Some(g) = gpu() else { return };
    let cpu = CpuBackend::new();
    for p in [Precision::F64, Precision::F32] {
        for (k, case) in cases(p).into_iter().enumerate() {
            let (data, mut hyp) = make(case, 500 + k as u64);
            if case.b >= 2 {
                hyp.outputscale[1] = 1.0;
            }
            let mut a = cpu.gram(&data, &hyp, Precision::F64).expect("cpu gram");
            let n = case.n;
            // Member 0: last row and column zero, so attempt 0 meets a zero pivot exactly and the
            // first jitter fixes it (status Jitter on both backends). Member 1 (when there):
            // negative definite, fails at every jitter.
            for i in 0..n {
                a[[0, n - 1, i]] = 0.0;
                a[[0, i, n - 1]] = 0.0;
            }
            if case.b >= 2 {
                a.index_axis_mut(ndarray::Axis(0), 1).mapv_inplace(|v| -v);
            }
            let policy = JitterPolicy::for_precision(p);
            let x = cpu.cholesky(&a, p, policy).expect("cpu cholesky");
            let y = g
                .cholesky(&a, p, policy)
                .unwrap_or_else(|e| panic!("{case:?}: cuda cholesky: {e}"));
            let what = format!("{case:?} {p:?} cholesky");
            assert_eq!(x.status, y.status, "{what} status");
            assert_eq!(y.status[0], Status::Jitter, "{what} member 0");
            close_arr(&format!("{what} jitter"), &x.jitter, &y.jitter, tol(p));
            close_arr(&format!("{what} factor"), &x.factor, &y.factor, tol(p));
        }
    }
}

fn check_predict(g: &CudaBackend, p: Precision) {
    let cpu = CpuBackend::new();
    for (k, case) in cases(p).into_iter().filter(|c| c.n <= 500).enumerate() {
        let (data, hyp) = make(case, 700 + k as u64);
        let m = 17;
        let mut rng = ChaCha8Rng::seed_from_u64(900 + k as u64);
        let test = if k % 2 == 0 {
            Inputs::Shared(Array2::from_shape_fn((m, case.d), |_| {
                3.5 * rng.random::<f64>() - 0.25
            }))
        } else {
            Inputs::Batched(Array3::from_shape_fn((case.b, m, case.d), |_| {
                3.5 * rng.random::<f64>() - 0.25
            }))
        };
        let opts = PredictOptions {
            precision: p,
            full_covariance: true,
            samples: (p == Precision::F64).then_some((3, 42)),
        };
        let a = cpu.predict(&data, &hyp, &test, &opts).expect("cpu predict");
        let b = g
            .predict(&data, &hyp, &test, &opts)
            .unwrap_or_else(|e| panic!("{case:?}: cuda predict: {e}"));
        let what = |s: &str| format!("{case:?} {p:?} predict {s}");
        assert_eq!(a.status, b.status, "{}", what("status"));
        close_arr(&what("jitter"), &a.jitter, &b.jitter, tol(p));
        close_arr(&what("mean"), &a.mean, &b.mean, tol(p));
        close_arr(&what("var"), &a.var, &b.var, tol(p));
        close_arr(&what("var_y"), &a.var_y, &b.var_y, tol(p));
        close_arr(&what("lower"), &a.lower, &b.lower, tol(p));
        close_arr(&what("upper"), &a.upper, &b.upper, tol(p));
        close_arr(
            &what("covariance"),
            a.covariance.as_ref().expect("cpu cov"),
            b.covariance.as_ref().expect("cuda cov"),
            tol(p),
        );
        if let (Some(x), Some(y)) = (&a.samples, &b.samples) {
            // Samples go through a Cholesky of a nearly singular covariance: looser.
            close_arr(&what("samples"), x, y, 1e-6);
        }
    }
}

#[test]
fn predict_agrees_f64() {
    let Some(g) = gpu() else { return };
    check_predict(&g, Precision::F64);
}

#[test]
fn predict_agrees_f32() {
    let Some(g) = gpu() else { return };
    check_predict(&g, Precision::F32);
}

#[test]
fn chunking_does_not_change_results() {
    let Some(whole) = gpu() else { return };
    let Some(chunked) = gpu() else { return };
    let chunked = chunked.with_max_chunk(2);
    for (n, d) in [(20, 2), (100, 3), (300, 2)] {
        let (data, hyp) = make(
            Case {
                b: 5,
                n,
                d,
                shared: true,
                masked: true,
            },
            n as u64,
        );
        let opts = MllOptions::new(Precision::F64);
        let a = whole.mll(&data, &hyp, None, &opts).expect("whole");
        let b = chunked.mll(&data, &hyp, None, &opts).expect("chunked");
        let bits = |v: &Array1<f64>| v.iter().map(|x| x.to_bits()).collect::<Vec<_>>();
        assert_eq!(a.status, b.status, "n = {n}: chunked status differs");
        assert_eq!(bits(&a.mll), bits(&b.mll), "n = {n}: chunked mll differs");
        assert_eq!(
            bits(&a.jitter),
            bits(&b.jitter),
            "n = {n}: chunked jitter differs"
        );
        let (ga, gb) = (a.gradient.expect("gradient"), b.gradient.expect("gradient"));
        assert_eq!(
            bits(&ga.log_noise),
            bits(&gb.log_noise),
            "n = {n}: chunked gradient differs"
        );
        let test = Inputs::Shared(Array2::from_shape_fn((9, d), |(i, k)| (i + k) as f64 * 0.3));
        let po = PredictOptions {
            precision: Precision::F64,
            full_covariance: true,
            samples: None,
        };
        let a = whole.predict(&data, &hyp, &test, &po).expect("whole");
        let b = chunked.predict(&data, &hyp, &test, &po).expect("chunked");
        assert_eq!(
            a.mean.iter().map(|v| v.to_bits()).collect::<Vec<_>>(),
            b.mean.iter().map(|v| v.to_bits()).collect::<Vec<_>>()
        );
    }
}

#[test]
fn info_strings_do_not_panic() {
    let info = batchgp::backend::cuda::build_info();
    let probe = batchgp::backend::cuda::probe();
    assert!(!info.is_empty() && !probe.is_empty());
    println!("{info}\n{probe}");
}
