//! CPU-vs-CUDA agreement: gram, cholesky, mll + gradient and predict of the CUDA backend against
//! the CPU backend, to 1e-9 relative in f64 and 1e-4 in f32, for every covariance kernel (rbf,
//! matern12, matern32, matern52, rq with alpha per member), with and without known noise (yvar),
//! over N in {1, 7, 32, 33, 64, 168, 169, 239, 240, 500, 2048} (the three kernel variants and
//! their boundaries on a 227 KiB opt-in GPU: f64 block up to 168, f32 up to 239), D in {1, 3, 8},
//! shared and per-member x, with and without a mask (NaN in the masked entries), a fully masked member (status Empty) and a member forced to fail
//! (outputscale = exp(800) = inf).
//!
//! The GPU tests are ignored by default, so cargo's output says "ignored, needs a GPU" for each;
//! with `--include-ignored` (where a GPU is lent) they require one and fail without it. The one
//! test that always runs is
//! `kernels_in_host_emulation`, which needs only a C++20 compiler: it compiles kernels/*.cu (the
//! sources nvcc compiles) as host C++ (each CUDA thread a std::thread, barriers for the syncs)
//! and checks every kernel, precision and variant against a naive dense reference and central
//! differences, with 1 and 32 threads per group.

use batchgp::backend::cpu::CpuBackend;
use batchgp::backend::cuda::CudaBackend;
use batchgp::backend::MllGradient;
use batchgp::{
    Backend, Dataset, Hyperparameters, Inputs, JitterPolicy, Kernel, Layout, MllOptions, Precision, PredictOptions,
    Status,
};
use ndarray::{Array1, Array2, Array3};
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;

/// The GPU these tests are for. They are ignored by default (cargo lists them as "ignored,
/// needs a GPU"); run where one is lent with `--include-ignored`, and there a GPU that cannot be
/// had (no driver, a module that does not load, a poisoned context) fails them, never skips.
fn gpu() -> CudaBackend {
    CudaBackend::new().unwrap_or_else(|e| panic!("no usable GPU: {e}"))
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
    let max = v.iter().filter(|x| x.is_finite()).fold(0.0f64, |m, x| m.max(x.abs()));
    if tol >= 1e-6 {
        max
    } else {
        max * 1e-3
    }
}

fn close_arr<D: ndarray::Dimension>(what: &str, cpu: &ndarray::Array<f64, D>, gpu: &ndarray::Array<f64, D>, tol: f64) {
    assert_eq!(cpu.shape(), gpu.shape(), "{what}: shapes differ");
    let a: Vec<f64> = cpu.iter().copied().collect();
    let b: Vec<f64> = gpu.iter().copied().collect();
    assert_close(what, cpu.shape(), &a, &b, tol, floor_of(&a, tol));
}

/// Runs `f` on every item and panics at the end with every failure, so that one run on a lent
/// GPU reports all the cases that disagree, not only the first.
fn each<I: IntoIterator>(items: I, mut f: impl FnMut(I::Item)) {
    let mut failed = Vec::new();
    for it in items {
        if let Err(p) = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| f(it))) {
            let msg = p
                .downcast_ref::<String>()
                .cloned()
                .or_else(|| p.downcast_ref::<&str>().map(|s| s.to_string()))
                .unwrap_or_else(|| "a panic without a message".into());
            failed.push(msg);
        }
    }
    assert!(failed.is_empty(), "{} case(s) failed:\n{}", failed.len(), failed.join("\n"));
}

#[derive(Clone, Copy, Debug)]
struct Case {
    b: usize,
    n: usize,
    d: usize,
    shared: bool,
    masked: bool,
}

/// Random data and rbf hyperparameters. Member 1 (when B >= 2) has outputscale exp(800) = inf
/// and must fail; with a mask, member 2 (when B >= 3) is fully masked (Empty); masked x and y
/// are NaN.
fn make(case: Case, seed: u64) -> (Dataset, Hyperparameters) {
    let Case { b, n, d, shared, masked } = case;
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
        kernel: Kernel::Rbf,
        alpha: None,
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

/// Switches to `kernel` (rq: alpha per member in [0.4, 2.4]) and, with `yvar`, adds known noise
/// in [0, 0.1] at every observed point (member 0: all zeros; NaN at masked points, which must
/// never be read).
fn dress(data: Dataset, hyp: Hyperparameters, kernel: Kernel, yvar: bool, seed: u64) -> (Dataset, Hyperparameters) {
    let mut rng = ChaCha8Rng::seed_from_u64(seed ^ 0x5eed);
    let b = hyp.batch_size();
    let mut hyp = hyp.with_kernel(kernel);
    if kernel.has_alpha() {
        hyp = hyp.with_alpha(Array1::from_shape_fn(b, |_| 0.4 + 2.0 * rng.random::<f64>()));
    }
    let data = if yvar {
        let (bb, n) = data.y().dim();
        let v = Array2::from_shape_fn((bb, n), |(m, i)| {
            let r = 0.1 * rng.random::<f64>();
            if !data.is_observed(m, i) {
                f64::NAN
            } else if m == 0 {
                0.0
            } else {
                r
            }
        });
        data.with_yvar(v).expect("valid yvar")
    } else {
        data
    };
    (data, hyp)
}

/// In f32 the two backends round differently (faer's blocked factorisation against the kernels'
/// unblocked one), so the difference grows with the condition number and with N (sums of N^2
/// terms in the gradient): keep the condition number near 1e3, and lower it for large N, where
/// the noise is raised to the outputscale's order (at N = 2048 and noise 5x, the outputscale
/// gradient differed by 5e-4 relative on an H200).
fn well_conditioned_for(p: Precision, n: usize, hyp: &mut Hyperparameters) {
    if p == Precision::F32 {
        let f = if n > 200 { 40.0 } else { 5.0 };
        hyp.noise.mapv_inplace(|v| f * v);
    }
}

fn cases(p: Precision) -> Vec<Case> {
    let mut v = Vec::new();
    let ns: &[usize] = match p {
        Precision::F64 => &[1, 7, 32, 33, 64, 168, 169],
        Precision::F32 => &[1, 7, 32, 33, 64, 239, 240],
    };
    for &n in ns {
        for d in [1, 3, 8] {
            for shared in [false, true] {
                for masked in [false, true] {
                    v.push(Case { b: if n <= 64 { 6 } else { 3 }, n, d, shared, masked });
                }
            }
        }
    }
    if p == Precision::F64 {
        v.push(Case { b: 3, n: 239, d: 3, shared: false, masked: true });
        v.push(Case { b: 3, n: 240, d: 2, shared: true, masked: false });
    }
    v.push(Case { b: 3, n: 500, d: 3, shared: false, masked: true });
    v.push(Case { b: 2, n: 500, d: 8, shared: true, masked: false });
    v.push(Case { b: 2, n: 2048, d: 3, shared: false, masked: true });
    v
}

/// Every (kernel, case, yvar) combination the agreement tests run: each case with every kernel,
/// known noise on every other one.
fn combos(p: Precision) -> Vec<(Kernel, usize, Case, bool)> {
    let mut v = Vec::new();
    for (ki, kernel) in Kernel::ALL.into_iter().enumerate() {
        for (k, case) in cases(p).into_iter().enumerate() {
            v.push((kernel, k, case, (k + ki) % 2 == 1));
        }
    }
    v
}

/// A gradient as rows in layout order (K, P), alpha included for rq.
fn rows(g: &MllGradient, layout: Layout) -> Array2<f64> {
    let k = g.mean.len();
    Array2::from_shape_fn((k, layout.len()), |(i, c)| {
        let (t, j) = layout.coordinate(c);
        g.get(t, i, j)
    })
}

fn check_mll(gpu: &CudaBackend, p: Precision) {
    let cpu = CpuBackend::new();
    each(combos(p), |(kernel, k, case, yvar)| {
        let (data, hyp) = make(case, 100 + k as u64);
        let (data, mut hyp) = dress(data, hyp, kernel, yvar, k as u64);
        well_conditioned_for(p, case.n, &mut hyp);
        let opts = MllOptions::new(p);
        let a = cpu.mll(&data, &hyp, None, &opts).expect("cpu mll");
        let g = gpu.mll(&data, &hyp, None, &opts).unwrap_or_else(|e| panic!("{case:?}: cuda mll: {e}"));
        let what = |s: &str| format!("{kernel} yvar={yvar} {case:?} {p:?} mll {s}");
        assert_eq!(a.status, g.status, "{}", what("status"));
        if case.b >= 2 {
            assert_eq!(g.status[1], Status::Failed, "{}", what("forced failure"));
        }
        if case.masked && case.b >= 3 && case.n > 1 {
            assert_eq!(g.status[2], Status::Empty, "{}", what("empty member"));
        }
        close_arr(&what("jitter"), &a.jitter, &g.jitter, tol(p));
        close_arr(&what("value"), &a.mll, &g.mll, tol(p));
        let layout = Layout::of(&hyp);
        let (ga, gg) = (a.gradient.expect("cpu gradient"), g.gradient.expect("cuda gradient"));
        assert_eq!(gg.log_alpha.is_some(), kernel.has_alpha(), "{}", what("alpha gradient present"));
        let (ra, rg) = (rows(&ga, layout), rows(&gg, layout));
        // f32 at N > 500: sums of N^2 rounded terms. Where the backends differ by more than
        // 1e-4, the CUDA value must be at least as close to the f64 answer as the CPU's f32
        // value is, within a factor 2 (at N = 2048 on an H200 they differed by 1.1e-4 to
        // 1.3e-4 in the outputscale gradient).
        let r64 = (p == Precision::F32 && case.n > 500).then(|| {
            let r = cpu.mll(&data, &hyp, None, &MllOptions::new(Precision::F64)).expect("cpu f64 mll");
            rows(&r.gradient.expect("cpu f64 gradient"), layout)
        });
        for c in 0..layout.len() {
            let (t, j) = layout.coordinate(c);
            let col = |r: &Array2<f64>| r.column(c).to_owned();
            let name = what(&format!("d/d {}[{j}]", t.name()));
            match &r64 {
                None => close_arr(&name, &col(&ra), &col(&rg), tol(p)),
                Some(r64) => {
                    let scale = floor_of(col(&ra).as_slice().expect("contiguous"), tol(p));
                    for m in 0..ra.nrows() {
                        let (a, g, r) = (ra[[m, c]], rg[[m, c]], r64[[m, c]]);
                        let ok = (a.is_nan() && g.is_nan())
                            || (a - g).abs() <= tol(p) * scale.max(a.abs())
                            || (g - r).abs() <= 2.0 * (a - r).abs();
                        assert!(ok, "{name} member {m}: cpu f32 {a:e}, cuda f32 {g:e}, cpu f64 {r:e}");
                    }
                }
            }
        }
    });
}

#[test]
#[ignore = "needs a GPU: cargo test --release --test cuda_agreement -- --include-ignored where one is lent"]
fn mll_and_gradient_agree_f64() {
    let g = gpu();
    check_mll(&g, Precision::F64);
}

#[test]
#[ignore = "needs a GPU: cargo test --release --test cuda_agreement -- --include-ignored where one is lent"]
fn mll_and_gradient_agree_f32() {
    let g = gpu();
    check_mll(&g, Precision::F32);
}

#[test]
#[ignore = "needs a GPU: cargo test --release --test cuda_agreement -- --include-ignored where one is lent"]
fn mll_of_listed_members_agrees() {
    let g = gpu();
    let cpu = CpuBackend::new();
    for (kernel, yvar) in [(Kernel::Rbf, false), (Kernel::Matern52, true), (Kernel::Rq, true)] {
        let (data, hyp) = make(Case { b: 7, n: 40, d: 3, shared: false, masked: true }, 7);
        let (data, hyp) = dress(data, hyp, kernel, yvar, 7);
        let rows_ = [6, 0, 3, 3, 1, 2];
        let mut opts = MllOptions::new(Precision::F64);
        for grad in [true, false] {
            opts.gradient = grad;
            let a = cpu.mll(&data, &hyp, Some(&rows_), &opts).expect("cpu");
            let b = g.mll(&data, &hyp, Some(&rows_), &opts).expect("cuda");
            assert_eq!(a.status, b.status, "{kernel}");
            assert_eq!(b.gradient.is_some(), grad);
            close_arr(&format!("{kernel} listed mll"), &a.mll, &b.mll, 1e-9);
            if let (Some(x), Some(y)) = (a.gradient, b.gradient) {
                let layout = Layout::of(&hyp);
                close_arr(&format!("{kernel} listed gradient"), &rows(&x, layout), &rows(&y, layout), 1e-9);
            }
        }
    }
}

#[test]
#[ignore = "needs a GPU: cargo test --release --test cuda_agreement -- --include-ignored where one is lent"]
fn gram_agrees() {
    let g = gpu();
    let cpu = CpuBackend::new();
    for p in [Precision::F64, Precision::F32] {
        each(combos(p).into_iter().filter(|c| c.2.n <= 500), |(kernel, k, case, yvar)| {
            let (data, hyp) = make(case, 300 + k as u64);
            let (data, mut hyp) = dress(data, hyp, kernel, yvar, k as u64);
            if case.b >= 2 {
                hyp.outputscale[1] = 1.0; // inf * 0 differs in no interesting way here
            }
            let a = cpu.gram(&data, &hyp, p).expect("cpu gram");
            let b = g.gram(&data, &hyp, p).unwrap_or_else(|e| panic!("{case:?}: cuda gram: {e}"));
            close_arr(&format!("{kernel} yvar={yvar} {case:?} {p:?} gram"), &a, &b, tol(p));
        });
    }
}

#[test]
#[ignore = "needs a GPU: cargo test --release --test cuda_agreement -- --include-ignored where one is lent"]
fn cholesky_agrees() {
    let g = gpu();
    let cpu = CpuBackend::new();
    for p in [Precision::F64, Precision::F32] {
        each(cases(p).into_iter().enumerate(), |(k, case)| {
            let (data, mut hyp) = make(case, 500 + k as u64);
            well_conditioned_for(p, case.n, &mut hyp);
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
            let y = g.cholesky(&a, p, policy).unwrap_or_else(|e| panic!("{case:?}: cuda cholesky: {e}"));
            let what = format!("{case:?} {p:?} cholesky");
            assert_eq!(x.status, y.status, "{what} status");
            // (At n = 1 member 0 is the zero matrix, whose relative jitter is 0: it fails.)
            let expect0 = if n == 1 { Status::Failed } else { Status::Jitter };
            assert_eq!(y.status[0], expect0, "{what} member 0");
            close_arr(&format!("{what} jitter"), &x.jitter, &y.jitter, tol(p));
            close_arr(&format!("{what} factor"), &x.factor, &y.factor, tol(p));
        });
    }
}

fn check_predict(g: &CudaBackend, p: Precision) {
    let cpu = CpuBackend::new();
    each(combos(p).into_iter().filter(|c| c.2.n <= 500), |(kernel, k, case, yvar)| {
        let (data, hyp) = make(case, 700 + k as u64);
        let (data, mut hyp) = dress(data, hyp, kernel, yvar, k as u64);
        well_conditioned_for(p, case.n, &mut hyp);
        let m = 17;
        let mut rng = ChaCha8Rng::seed_from_u64(900 + k as u64);
        let test = if k % 2 == 0 {
            Inputs::Shared(Array2::from_shape_fn((m, case.d), |_| 3.5 * rng.random::<f64>() - 0.25))
        } else {
            Inputs::Batched(Array3::from_shape_fn((case.b, m, case.d), |_| 3.5 * rng.random::<f64>() - 0.25))
        };
        let opts = PredictOptions {
            precision: p,
            full_covariance: true,
            samples: (p == Precision::F64).then_some((3, 42)),
            ..Default::default()
        };
        let a = cpu.predict(&data, &hyp, &test, &opts).expect("cpu predict");
        let b = g.predict(&data, &hyp, &test, &opts).unwrap_or_else(|e| panic!("{case:?}: cuda predict: {e}"));
        let what = |s: &str| format!("{kernel} yvar={yvar} {case:?} {p:?} predict {s}");
        assert_eq!(a.status, b.status, "{}", what("status"));
        if case.masked && case.b >= 3 && case.n > 1 {
            assert_eq!(b.status[2], Status::Empty, "{}", what("empty member"));
        }
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
        if let (Some(x), Some(y), Some(cov)) = (&a.samples, &b.samples, &b.covariance) {
            // The samples are drawn on the host from the backend's mean and covariance (checked
            // above against the CPU's to 1e-9): from the CUDA ones they must be exactly what
            // draw_samples gives. They are not compared with the CPU's draws: a posterior
            // covariance of 17 test points is singular to working precision, and its jittered
            // Cholesky factor is not a continuous function of it (on an H200, a 1e-9 difference
            // in the covariance moved some draws by 1e-2 while L L^T agreed).
            let (again, _) = batchgp::draw_samples(b.mean.view(), cov.view(), 3, 42, 0);
            let bits = |v: &Array3<f64>| v.iter().map(|x| x.to_bits()).collect::<Vec<_>>();
            assert_eq!(bits(y), bits(&again), "{}", what("samples drawn from the CUDA covariance"));
            assert_eq!(x.dim(), y.dim(), "{}", what("samples shape"));
        }
    });
}

#[test]
#[ignore = "needs a GPU: cargo test --release --test cuda_agreement -- --include-ignored where one is lent"]
fn predict_agrees_f64() {
    let g = gpu();
    check_predict(&g, Precision::F64);
}

#[test]
#[ignore = "needs a GPU: cargo test --release --test cuda_agreement -- --include-ignored where one is lent"]
fn predict_agrees_f32() {
    let g = gpu();
    check_predict(&g, Precision::F32);
}

#[test]
#[ignore = "needs a GPU: cargo test --release --test cuda_agreement -- --include-ignored where one is lent"]
fn chunking_does_not_change_results() {
    let whole = gpu();
    let chunked = gpu();
    let chunked = chunked.with_max_chunk(2);
    for (kernel, yvar) in [(Kernel::Rbf, false), (Kernel::Rq, true)] {
        for (n, d) in [(20, 2), (100, 3), (300, 2)] {
            let (data, hyp) = make(Case { b: 5, n, d, shared: true, masked: true }, n as u64);
            let (data, hyp) = dress(data, hyp, kernel, yvar, n as u64);
            let opts = MllOptions::new(Precision::F64);
            let a = whole.mll(&data, &hyp, None, &opts).expect("whole");
            let b = chunked.mll(&data, &hyp, None, &opts).expect("chunked");
            let bits = |v: &Array1<f64>| v.iter().map(|x| x.to_bits()).collect::<Vec<_>>();
            let bits2 = |v: &Array2<f64>| v.iter().map(|x| x.to_bits()).collect::<Vec<_>>();
            assert_eq!(a.status, b.status, "{kernel} n = {n}: chunked status differs");
            assert_eq!(bits(&a.mll), bits(&b.mll), "{kernel} n = {n}: chunked mll differs");
            assert_eq!(bits(&a.jitter), bits(&b.jitter), "{kernel} n = {n}: chunked jitter differs");
            let layout = Layout::of(&hyp);
            let (ga, gb) = (a.gradient.expect("gradient"), b.gradient.expect("gradient"));
            assert_eq!(
                bits2(&rows(&ga, layout)),
                bits2(&rows(&gb, layout)),
                "{kernel} n = {n}: chunked gradient differs"
            );
            let test = Inputs::Shared(Array2::from_shape_fn((9, d), |(i, k)| (i + k) as f64 * 0.3));
            let po = PredictOptions {
                precision: Precision::F64,
                full_covariance: true,
                samples: None,
                ..Default::default()
            };
            let a = whole.predict(&data, &hyp, &test, &po).expect("whole");
            let b = chunked.predict(&data, &hyp, &test, &po).expect("chunked");
            assert_eq!(a.status, b.status, "{kernel} n = {n}: chunked predict status differs");
            assert_eq!(bits2(&a.mean), bits2(&b.mean), "{kernel} n = {n}: chunked predict mean differs");
            assert_eq!(bits2(&a.var), bits2(&b.var), "{kernel} n = {n}: chunked predict var differs");
        }
    }
}

#[test]
#[ignore = "needs a GPU: cargo test --release --test cuda_agreement -- --include-ignored where one is lent"]
fn a_hundred_thousand_members_agree() {
    let g = gpu();
    let cpu = CpuBackend::new();
    for (kernel, p) in
        [(Kernel::Rbf, Precision::F64), (Kernel::Matern52, Precision::F64), (Kernel::Rbf, Precision::F32)]
    {
        let (data, hyp) = make(Case { b: 100_000, n: 32, d: 3, shared: false, masked: true }, 11);
        let (data, mut hyp) = dress(data, hyp, kernel, true, 11);
        well_conditioned_for(p, 32, &mut hyp);
        let opts = MllOptions::new(p);
        let a = cpu.mll(&data, &hyp, None, &opts).expect("cpu mll");
        let b = g.mll(&data, &hyp, None, &opts).expect("cuda mll");
        let what = format!("{kernel} {p:?} B = 100000");
        assert_eq!(a.status, b.status, "{what} status");
        close_arr(&format!("{what} mll"), &a.mll, &b.mll, tol(p));
        let layout = Layout::of(&hyp);
        let (ga, gb) = (a.gradient.expect("gradient"), b.gradient.expect("gradient"));
        close_arr(&format!("{what} gradient"), &rows(&ga, layout), &rows(&gb, layout), tol(p));
    }
}

#[test]
#[ignore = "needs a GPU: cargo test --release --test cuda_agreement -- --include-ignored where one is lent"]
fn cached_device_inputs_do_not_change_results() {
    // One backend evaluates the same data and members again with other hyperparameters (the
    // second call reuses the device copies of x, mask and yvar); a fresh backend evaluates the
    // second set from scratch. Bit for bit equal; then data with the same shape but another y,
    // and the same data with yvar added, must not reuse them.
    let warm = gpu();
    let fresh = || gpu();
    let bits = |v: &Array1<f64>| v.iter().map(|x| x.to_bits()).collect::<Vec<_>>();
    for (kernel, n, p) in
        [(Kernel::Rbf, 20, Precision::F64), (Kernel::Rq, 100, Precision::F64), (Kernel::Matern52, 300, Precision::F32)]
    {
        let (data, hyp1) = make(Case { b: 6, n, d: 3, shared: false, masked: true }, 40 + n as u64);
        let (data, hyp1) = dress(data, hyp1, kernel, false, 5);
        let mut hyp2 = hyp1.clone();
        hyp2.mean.mapv_inplace(|m| m + 0.25);
        hyp2.noise.mapv_inplace(|v| 2.0 * v);
        hyp2.lengthscale.mapv_inplace(|l| 0.8 * l);
        let opts = MllOptions::new(p);
        let _ = warm.mll(&data, &hyp1, None, &opts).expect("first call");
        let a = warm.mll(&data, &hyp2, None, &opts).expect("cached call");
        let b = fresh().mll(&data, &hyp2, None, &opts).expect("fresh call");
        assert_eq!(a.status, b.status, "{kernel} n = {n}: status");
        assert_eq!(bits(&a.mll), bits(&b.mll), "{kernel} n = {n}: mll with cached inputs");
        let layout = Layout::of(&hyp2);
        let (ga, gb) = (rows(&a.gradient.expect("gradient"), layout), rows(&b.gradient.expect("gradient"), layout));
        let bits2 = |v: &Array2<f64>| v.iter().map(|x| x.to_bits()).collect::<Vec<_>>();
        assert_eq!(bits2(&ga), bits2(&gb), "{kernel} n = {n}: gradient with cached inputs");
        // Other data of the same shape (y shifted) and the same data with yvar: fresh answers.
        let shifted =
            Dataset::with_mask(data.x().clone(), data.y().mapv(|v| v + 1.0), data.mask().cloned()).expect("data");
        let a = warm.mll(&shifted, &hyp2, None, &opts).expect("other data");
        let b = fresh().mll(&shifted, &hyp2, None, &opts).expect("other data, fresh");
        assert_eq!(bits(&a.mll), bits(&b.mll), "{kernel} n = {n}: other data must not reuse the inputs");
        let yv = data.y().mapv(|v| if v.is_nan() { f64::NAN } else { 0.05 });
        let with_yvar = data.clone().with_yvar(yv).expect("yvar");
        let _ = warm.mll(&data, &hyp2, None, &opts).expect("refill");
        let a = warm.mll(&with_yvar, &hyp2, None, &opts).expect("yvar");
        let b = fresh().mll(&with_yvar, &hyp2, None, &opts).expect("yvar, fresh");
        assert_eq!(bits(&a.mll), bits(&b.mll), "{kernel} n = {n}: added yvar must not reuse the inputs");
        warm.release_cached_inputs();
        let a = warm.mll(&data, &hyp1, None, &opts).expect("after release");
        let b = fresh().mll(&data, &hyp1, None, &opts).expect("fresh");
        assert_eq!(bits(&a.mll), bits(&b.mll), "{kernel} n = {n}: after release");
    }
}

#[test]
fn info_strings_do_not_panic() {
    let info = batchgp::backend::cuda::build_info();
    let probe = batchgp::backend::cuda::probe();
    assert!(!info.is_empty() && !probe.is_empty());
    println!("{info}\n{probe}");
}

/// The host emulation harness (C++20): see the comment at its top.
const EMULATION_HARNESS: &str = r##"// Host emulation of the batchgp kernels (generated by tests/cuda_agreement.rs). Each CUDA
// thread of a block is a std::thread; __syncthreads and __syncwarp are barriers over the block,
// __shfl_xor_sync and __shfl_sync go through a shared array. Checks the kernels' math for every covariance
// kernel, precision and variant (Gram, MLL, gradient incl. rq's alpha, prediction, jitter)
// against a naive dense reference with its own kernel functions and central differences, with
// known noise (yvar) on some launches, coincident points and fully masked members, and, with
// several threads, that their synchronisation leaves no read-before-write.
#define BGP_HOST_EMULATION 1
#include <algorithm>
#include <barrier>
#include <cmath>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <functional>
#include <random>
#include <thread>
#include <vector>
using std::exp;
using std::isfinite;
using std::log;
using std::log1p;
using std::sqrt;
#define __global__
#define __device__
#define __forceinline__ inline
#define __launch_bounds__(...)
#define __restrict__
#define __shared__ static
struct dim3_ { unsigned x = 0, y = 0, z = 0; };
thread_local dim3_ threadIdx;
dim3_ blockIdx, blockDim, gridDim;
static std::barrier<>* g_bar = nullptr;
static double g_shfl[1024];
inline void __syncthreads() { g_bar->arrive_and_wait(); }
inline void __syncwarp() { g_bar->arrive_and_wait(); }
inline double __shfl_xor_sync(unsigned, double v, int off) {
    g_shfl[threadIdx.x] = v;
    g_bar->arrive_and_wait();
    double r = g_shfl[threadIdx.x ^ off];
    g_bar->arrive_and_wait();
    return r;
}
template <typename V> inline V __shfl_sync(unsigned, V v, int src) {
    g_shfl[threadIdx.x] = (double)v;
    g_bar->arrive_and_wait();
    V r = (V)g_shfl[(threadIdx.x & ~31u) | (unsigned)src];
    g_bar->arrive_and_wait();
    return r;
}
inline double __longlong_as_double(long long v) { double d; memcpy(&d, &v, 8); return d; }
inline float __int_as_float(int v) { float d; memcpy(&d, &v, 4); return d; }
double bgp_smem[1 << 20];
#include "gram.cu"
#include "gp.cu"
#include "predict.cu"

// The entry points of one covariance kernel and precision, by the names the macros emit.
template <class Cov, typename T> struct K;
#define BGP_HARNESS_ENTRIES(COV, KN, T, DT)                                                       \
    template <> struct K<COV, T> {                                                                \
        static constexpr auto warp = gp_mll_warp_##KN##_##DT;                                     \
        static constexpr auto block = gp_mll_block_##KN##_##DT;                                   \
        static constexpr auto global = gp_mll_global_##KN##_##DT;                                 \
        static constexpr auto gram = gram_##KN##_##DT;                                            \
        static constexpr auto predict = predict_##KN##_##DT;                                      \
        static constexpr auto cov = predict_cov_##KN##_##DT;                                      \
        static constexpr const char* name = #KN "_" #DT;                                          \
    };
BGP_FOR_EACH_COVARIANCE(BGP_HARNESS_ENTRIES, double, f64)
BGP_FOR_EACH_COVARIANCE(BGP_HARNESS_ENTRIES, float, f32)

// The reference's own kernel functions (src/kernel.rs), by kind.
enum Kind { RBF, M12, M32, M52, RQ };
template <class Cov> constexpr Kind kind_of();
template <> constexpr Kind kind_of<RbfCov>() { return RBF; }
template <> constexpr Kind kind_of<Matern12Cov>() { return M12; }
template <> constexpr Kind kind_of<Matern32Cov>() { return M32; }
template <> constexpr Kind kind_of<Matern52Cov>() { return M52; }
template <> constexpr Kind kind_of<RqCov>() { return RQ; }
static double ref_phi(Kind k, double r2, double a) {
    const double r = sqrt(r2);
    switch (k) {
        case RBF: return exp(-0.5 * r2);
        case M12: return exp(-r);
        case M32: return (1 + sqrt(3.0) * r) * exp(-sqrt(3.0) * r);
        case M52: return (1 + sqrt(5.0) * r + 5.0 / 3.0 * r2) * exp(-sqrt(5.0) * r);
        default: return std::pow(1 + r2 / (2 * a), -a);
    }
}

// Runs fn as one block of nthreads threads with thread indices base .. base + nthreads - 1.
static void block(unsigned nthreads, unsigned dim, const std::function<void()>& fn, unsigned base = 0) {
    std::barrier<> bar(nthreads);
    g_bar = &bar;
    memset(g_shfl, 0, sizeof g_shfl);
    blockDim.x = dim;
    std::vector<std::thread> ts;
    for (unsigned t = 0; t < nthreads; ++t) ts.emplace_back([t, base, &fn] { threadIdx.x = base + t; fn(); });
    for (auto& t : ts) t.join();
}

// One member's hyperparameters in natural units.
struct Hyp { std::vector<double> ls; double s, noise, mu, alpha; };

// Naive dense reference on the observed points of one member (raw, uncentred x): mll, and
// optionally k*^T K^-1 k* and k*^T K^-1 r for one test point z. yv is the member's known noise
// (N,) or null.
struct Ref { double mll, quad_z, mean_z; };
static Ref reference(Kind kind, int n, int d, const double* x, const double* y, const uint8_t* m, const double* yv,
                     const Hyp& h, const double* z) {
    std::vector<int> o;
    for (int i = 0; i < n; ++i) if (m[i]) o.push_back(i);
    const int k = (int)o.size();
    auto kern = [&](const double* a, const double* b) {
        double q = 0;
        for (int t = 0; t < d; ++t) { double u = (a[t] - b[t]) / h.ls[t]; q += u * u; }
        return h.s * ref_phi(kind, q, h.alpha);
    };
    std::vector<double> K(k * k), r(k), kz(k);
    for (int a = 0; a < k; ++a) {
        r[a] = y[o[a]] - h.mu;
        if (z) kz[a] = kern(x + o[a] * d, z);
        for (int b = 0; b < k; ++b)
            K[a * k + b] = kern(x + o[a] * d, x + o[b] * d) + (a == b ? h.noise + (yv ? yv[o[a]] : 0.0) : 0.0);
    }
    for (int j = 0; j < k; ++j) {
        double p = K[j * k + j];
        for (int t = 0; t < j; ++t) p -= K[j * k + t] * K[j * k + t];
        if (!(p > 0)) return {NAN, NAN, NAN};
        const double lj = sqrt(p);
        K[j * k + j] = lj;
        for (int i = j + 1; i < k; ++i) {
            double v = K[i * k + j];
            for (int t = 0; t < j; ++t) v -= K[i * k + t] * K[j * k + t];
            K[i * k + j] = v / lj;
        }
    }
    auto fwd = [&](std::vector<double>& v) {
        for (int i = 0; i < k; ++i) {
            double a = v[i];
            for (int t = 0; t < i; ++t) a -= K[i * k + t] * v[t];
            v[i] = a / K[i * k + i];
        }
    };
    std::vector<double> u = r, w = kz;
    fwd(u);
    fwd(w);
    double ld = 0, qd = 0, qz = 0, mz = 0;
    for (int i = 0; i < k; ++i) { qd += u[i] * u[i]; ld += 2 * log(K[i * k + i]); qz += w[i] * w[i]; mz += w[i] * u[i]; }
    return {-0.5 * qd - 0.5 * ld - 0.5 * k * log(2 * M_PI), qz, mz};
}

static const char* VARIANT[] = {"block", "global", "warp"};
static int fails = 0, cases = 0;
static const char* g_name = "";
static bool g_yvar = false;
static void check(bool ok, const char* what, int n, int d, int v, int b, int idx, double got, double want) {
    if (ok) return;
    if (fails < 30)
        printf("FAIL %s %s%s n=%d d=%d %s member=%d idx=%d got %.12g want %.12g\n", g_name, what,
               g_yvar ? " (yvar)" : "", n, d, VARIANT[v], b, idx, got, want);
    ++fails;
}

// One launch of B = 3 members of n points in d dimensions through variant 0 (block), 1 (global)
// or 2 (warp) of kernel Cov in precision T. Member 0 has a coincident pair of points (rows 0 and
// 1); with `empty`, member 2 has no observed point; with `yvar`, known noise is passed (member 1
// all zeros), else a null pointer.
template <class Cov, typename T>
static void run_case(unsigned nt, std::mt19937_64& rng, int n, int d, int variant, double tol, bool with_yvar,
                     bool empty) {
    const Kind kind = kind_of<Cov>();
    g_name = K<Cov, T>::name;
    g_yvar = with_yvar;
    ++cases;
    std::uniform_real_distribution<double> U(0, 1);
    const int B = 3, na = 3, P = d + 3 + (Cov::has_alpha ? 1 : 0);
    std::vector<double> x(B * n * d), y(B * n), yv(B * n);
    std::vector<uint8_t> mask(B * n);
    std::vector<Hyp> hyp(B);
    for (auto& v : x) v = 3 * U(rng) + 10;  // an offset that the centring removes
    for (auto& v : y) v = U(rng);
    for (int i = 0; i < B * n; ++i) mask[i] = (i % n == 0) || U(rng) > 0.2;
    for (int i = 0; i < B * n; ++i) yv[i] = (i / n == 1) ? 0.0 : 0.2 * U(rng);
    if (n >= 2) {
        mask[1] = 1;
        for (int t = 0; t < d; ++t) x[d + t] = x[t];
    }
    if (empty) for (int i = 0; i < n; ++i) mask[2 * n + i] = 0;
    for (int i = 0; i < B * n; ++i)
        if (!mask[i]) { y[i] = NAN; yv[i] = NAN; for (int t = 0; t < d; ++t) x[i * d + t] = NAN; }
    for (auto& h : hyp) {
        h.ls.resize(d);
        for (auto& l : h.ls) l = 0.5 + U(rng);
        h.s = 0.5 + U(rng); h.noise = 0.05 + 0.1 * U(rng); h.mu = U(rng) - 0.5; h.alpha = 0.3 + 2 * U(rng);
    }
    // Host preparation as in src/backend/cuda/mll.rs: x centred on each member's observed
    // points (0 when masked), residuals, real lengthscales, yvar at observed points.
    std::vector<double> centre(B * d, 0.0);
    std::vector<T> xs(B * n * d, T(0)), r(B * n, T(0)), lt(B * d), st(B), nt_(B), mt(B), at(B), yt(B * n, T(0)),
        jit(B * na, T(0));
    for (int b = 0; b < B; ++b) {
        int cnt = 0;
        for (int i = 0; i < n; ++i)
            if (mask[b * n + i]) { ++cnt; for (int t = 0; t < d; ++t) centre[b * d + t] += x[(b * n + i) * d + t]; }
        for (int t = 0; t < d; ++t) centre[b * d + t] = cnt ? centre[b * d + t] / cnt : 0.0;
        for (int i = 0; i < n; ++i) {
            if (!mask[b * n + i]) continue;
            r[b * n + i] = T(y[b * n + i] - hyp[b].mu);
            yt[b * n + i] = T(yv[b * n + i]);
            for (int t = 0; t < d; ++t) xs[(b * n + i) * d + t] = T(x[(b * n + i) * d + t] - centre[b * d + t]);
        }
        for (int t = 0; t < d; ++t) lt[b * d + t] = T(hyp[b].ls[t]);
        st[b] = T(hyp[b].s); nt_[b] = T(hyp[b].noise); mt[b] = T(hyp[b].mu); at[b] = T(hyp[b].alpha);
    }
    const T* ap = Cov::has_alpha ? at.data() : nullptr;
    const T* yp = with_yvar ? yt.data() : nullptr;
    auto yv_of = [&](int b) { return with_yvar ? yv.data() + b * n : nullptr; };

    // Gram.
    {
        std::vector<T> G(B * n * n);
        gridDim.x = 1;
        blockIdx.x = 0;
        block(nt, nt, [&] { K<Cov, T>::gram(xs.data(), n * d, mask.data(), lt.data(), st.data(), nt_.data(), ap, yp, B, n, d, G.data()); });
        for (int b = 0; b < B; ++b)
            for (int i = 0; i < n; ++i)
                for (int j = 0; j < n; ++j) {
                    const bool oi = mask[b * n + i], oj = mask[b * n + j];
                    double want;
                    if (!oi || !oj) want = i == j ? 1.0 : 0.0;
                    else {
                        double q = 0;
                        for (int t = 0; t < d; ++t) { double u = (x[(b * n + i) * d + t] - x[(b * n + j) * d + t]) / hyp[b].ls[t]; q += u * u; }
                        want = hyp[b].s * ref_phi(kind, q, hyp[b].alpha);
                        if (i == j) want += hyp[b].noise + (with_yvar ? yv[b * n + i] : 0.0);
                    }
                    const double got = G[(b * n + i) * n + j];
                    check(std::fabs(got - want) <= tol * (1 + std::fabs(want)), "gram", n, d, variant, b, i * n + j, got, want);
                }
    }

    std::vector<T> mll(B), grad(B * P), L(B * n * n), alpha(B * n), work(B * (n * n + 2 * n));
    std::vector<int> att(B, -7);
    auto fused = [&](int flags) {
        for (int b = 0; b < B; ++b) {
            if (variant == 2) {  // warp: member b is warp b of block 0
                blockIdx.x = 0;
                block(32, 128, [&] {
                    K<Cov, T>::warp(xs.data(), n * d, r.data(), mask.data(), lt.data(), st.data(), nt_.data(), ap, yp, jit.data(), na, B, n, d, flags, mll.data(), grad.data(), att.data(), L.data(), alpha.data());
                }, 32 * b);
            } else {
                blockIdx.x = b;
                block(nt, nt, [&] {
                    if (variant == 0)
                        K<Cov, T>::block(xs.data(), n * d, r.data(), mask.data(), lt.data(), st.data(), nt_.data(), ap, yp, jit.data(), na, B, n, d, flags, mll.data(), grad.data(), att.data(), L.data(), alpha.data());
                    else
                        K<Cov, T>::global(xs.data(), n * d, r.data(), mask.data(), lt.data(), st.data(), nt_.data(), ap, yp, jit.data(), na, B, n, d, flags, mll.data(), grad.data(), att.data(), L.data(), alpha.data(), work.data());
                });
            }
        }
    };
    fused(3);
    for (int b = 0; b < B; ++b) {
        const double* xb = x.data() + b * n * d;
        auto ref = [&](const Hyp& h) { return reference(kind, n, d, xb, y.data() + b * n, mask.data() + b * n, yv_of(b), h, nullptr).mll; };
        const double want = ref(hyp[b]);
        check(att[b] == 0, "attempt", n, d, variant, b, 0, att[b], 0);
        check(std::fabs(double(mll[b]) - want) <= tol * (1 + std::fabs(want)), "mll", n, d, variant, b, 0, mll[b], want);
        const double h = 1e-5;
        for (int p = 0; p < P; ++p) {
            auto f = [&](double e) {
                Hyp h2 = hyp[b];
                if (p < d) h2.ls[p] *= exp(e);
                else if (p == d) h2.s *= exp(e);
                else if (p == d + 1) h2.noise *= exp(e);
                else if (p == d + 2) h2.mu += e;
                else h2.alpha *= exp(e);
                return ref(h2);
            };
            const double fd = (f(h) - f(-h)) / (2 * h);
            const double g = grad[b * P + p];
            check(std::fabs(g - fd) <= std::max(tol, 1e-5) * 10 * (1 + std::fabs(fd)), "gradient", n, d, variant, b, p, g, fd);
        }
    }
    // Prediction from the factor and alpha the fused kernel writes; test points centred as the
    // member's training points.
    fused(2);
    const int M = 4;
    std::vector<double> z(M * d);
    for (auto& v : z) v = 3 * U(rng) + 10;
    std::vector<T> zt(B * M * d), V(B * n * M), om(B * M), ov(B * M), oc(B * M * M);
    for (int b = 0; b < B; ++b)
        for (int t = 0; t < M * d; ++t) zt[b * M * d + t] = T(z[t] - centre[b * d + t % d]);
    const int tiles = (M + 127) / 128;
    for (int blk = 0; blk < tiles * B; ++blk) {
        blockIdx.x = blk;
        block(128, 128, [&] {
            K<Cov, T>::predict(xs.data(), n * d, mask.data(), zt.data(), M * d, lt.data(), st.data(), ap, mt.data(), L.data(), alpha.data(), att.data(), B, n, M, d, V.data(), om.data(), ov.data());
        });
    }
    gridDim.x = 1;
    blockIdx.x = 0;
    block(nt, nt, [&] { K<Cov, T>::cov(zt.data(), M * d, lt.data(), st.data(), ap, att.data(), V.data(), B, n, M, d, oc.data()); });
    for (int b = 0; b < B; ++b) {
        const double s = hyp[b].s;
        for (int t = 0; t < M; ++t) {
            Ref rf = reference(kind, n, d, x.data() + b * n * d, y.data() + b * n, mask.data() + b * n, yv_of(b), hyp[b], z.data() + t * d);
            const double wm = hyp[b].mu + rf.mean_z, wv = std::max(s - rf.quad_z, 0.0);
            check(std::fabs(double(om[b * M + t]) - wm) <= tol * (1 + std::fabs(wm)), "predict mean", n, d, variant, b, t, om[b * M + t], wm);
            check(std::fabs(double(ov[b * M + t]) - wv) <= tol * (1 + s), "predict var", n, d, variant, b, t, ov[b * M + t], wv);
            check(std::fabs(double(oc[(b * M + t) * M + t]) - (s - rf.quad_z)) <= tol * (1 + s), "predict cov diag", n, d, variant, b, t, oc[(b * M + t) * M + t], s - rf.quad_z);
        }
        // An off-diagonal entry of the covariance of an empty member is the prior's.
        if (empty && b == 2 && M >= 2) {
            double q = 0;
            for (int t = 0; t < d; ++t) { double u = (z[t] - z[d + t]) / hyp[b].ls[t]; q += u * u; }
            const double want = s * ref_phi(kind, q, hyp[b].alpha);
            check(std::fabs(double(oc[(b * M) * M + 1]) - want) <= tol * (1 + s), "prior cov", n, d, variant, b, 1, oc[(b * M) * M + 1], want);
        }
    }
}

// Every variant of one kernel and precision over a list of (n, d).
template <class Cov, typename T>
static void sweep(unsigned nt, std::mt19937_64& rng, const std::vector<std::pair<int, int>>& sizes, double tol) {
    int k = 0;
    for (auto [n, d] : sizes)
        for (int variant = 0; variant < 3; ++variant) {
            if (variant == 2 && n > 32) continue;
            if (variant != 1 && n > 40) continue;  // past one panel: the blocked global path
            run_case<Cov, T>(nt, rng, n, d, variant, tol, k % 2 == 1, k % 3 == 2);
            ++k;
        }
}

template <class Cov>
static void both_precisions(unsigned nt, std::mt19937_64& rng, const std::vector<std::pair<int, int>>& sizes) {
    sweep<Cov, double>(nt, rng, sizes, 1e-10);
    sweep<Cov, float>(nt, rng, sizes, 2e-3);
}

int main(int argc, char** argv) {
    const unsigned nt = argc > 1 ? (unsigned)atoi(argv[1]) : 1;
    std::mt19937_64 rng(3);
    // rbf over the sizes that reach every path of the linear algebra (warp, block, global,
    // blocked global past one panel, D past one gradient chunk); the other kernels share that
    // code and differ only in their policy, so a smaller set covers them.
    std::vector<std::pair<int, int>> full, small = {{1, 1}, {7, 3}, {12, 9}, {33, 2}};
    for (int n : {1, 5, 12, 32, 40, 70, 100})
        for (int d : {1, 3, 9}) full.push_back({n, d});
    both_precisions<RbfCov>(nt, rng, full);
    both_precisions<Matern12Cov>(nt, rng, small);
    both_precisions<Matern32Cov>(nt, rng, small);
    both_precisions<Matern52Cov>(nt, rng, small);
    both_precisions<RqCov>(nt, rng, small);
    // Jitter: member 0 has a zero last row and column (attempt 0 meets a zero pivot, attempt 1
    // succeeds with pivot sqrt(jitter)); member 1 is a plain SPD matrix.
    {
        const int n = 6, B = 2, na = 3;
        std::vector<double> A(B * n * n, 0.0), jit = {0, 1e-8, 1e-7, 0, 1e-8, 1e-7}, L(B * n * n), work(B * (n * n + 2 * n));
        std::vector<int> att(B);
        for (int b = 0; b < B; ++b)
            for (int i = 0; i < n; ++i) A[b * n * n + i * n + i] = (b == 0 && i == n - 1) ? 0.0 : 2.0;
        A[n * n + 2 * n + 1] = A[n * n + n + 2] = 1.0;
        g_name = "chol_global_f64";
        for (int b = 0; b < B; ++b) {
            blockIdx.x = b;
            block(nt, nt, [&] { chol_global_f64(A.data(), jit.data(), na, B, n, L.data(), att.data(), work.data()); });
        }
        check(att[0] == 1 && att[1] == 0, "chol attempts", n, 0, 1, 0, 0, att[0], att[1]);
        check(std::fabs(L[n * n - 1] - 1e-4) < 1e-12, "chol jitter pivot", n, 0, 1, 0, 0, L[n * n - 1], 1e-4);
        check(std::fabs(L[n * n + 2 * n + 1] - 1 / sqrt(2.0)) < 1e-15 && L[n * n + n + 2] == 0, "chol values", n, 0, 1, 1, 0, L[n * n + 2 * n + 1], 1 / sqrt(2.0));
    }
    printf("%d cases (5 kernels x f64, f32 x block, global, warp), %d failures\n", cases, fails);
    return fails != 0;
}
"##;

fn cxx() -> Option<String> {
    let candidates = std::env::var("CXX").ok().into_iter().chain(["c++".to_string(), "g++".to_string()]);
    candidates
        .into_iter()
        .find(|c| std::process::Command::new(c).arg("--version").output().map(|o| o.status.success()).unwrap_or(false))
}

#[test]
fn kernels_in_host_emulation() {
    let Some(cxx) = cxx() else {
        println!("skipped: no C++ compiler");
        return;
    };
    let dir = std::env::temp_dir().join(format!("batchgp-emulation-{}", std::process::id()));
    std::fs::create_dir_all(&dir).expect("temp dir");
    let src = dir.join("harness.cpp");
    let exe = dir.join("harness");
    std::fs::write(&src, EMULATION_HARNESS).expect("write harness");
    let kernels = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("kernels");
    let out = std::process::Command::new(&cxx)
        .args(["-O1", "-std=c++20", "-pthread", "-I"])
        .arg(&kernels)
        .arg(&src)
        .arg("-o")
        .arg(&exe)
        .output()
        .expect("run the C++ compiler");
    assert!(
        out.status.success(),
        "{cxx} could not compile the kernels as host C++:\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    for threads in ["1", "32"] {
        let run = std::process::Command::new(&exe).arg(threads).output().expect("run the harness");
        let text = String::from_utf8_lossy(&run.stdout);
        println!("{threads} thread(s) per group: {}", text.lines().last().unwrap_or(""));
        assert!(run.status.success(), "host emulation with {threads} thread(s) per group:\n{text}");
    }
    let _ = std::fs::remove_dir_all(&dir);
}
