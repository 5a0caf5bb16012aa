//! CPU-vs-CUDA agreement: gram, cholesky, mll + gradient and predict of the CUDA backend against
//! the CPU backend, to 1e-9 relative in f64 and 1e-4 in f32, over N in {1, 7, 32, 33, 64, 160,
//! 161, 500, 2048} (the three kernel variants and their boundaries), D in {1, 3, 8}, shared and
//! per-member x, with and without a mask (NaN in the masked entries), a fully masked member and
//! a member forced to fail (outputscale = exp(800) = inf).
//!
//! Without a usable GPU every test prints "skipped: <reason>" and passes, except
//! `kernels_in_host_emulation`, which needs only a C++20 compiler: it compiles kernels/*.cu as
//! host C++ (each CUDA thread a std::thread, barriers for the syncs) and checks their math
//! against a naive dense reference and central differences, with 1 and 32 threads per group.

use batchgp::backend::cpu::CpuBackend;
use batchgp::backend::cuda::CudaBackend;
use batchgp::{Backend, Dataset, Hyperparameters, Inputs, JitterPolicy, MllOptions, Precision, PredictOptions, Status};
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
        kernel: batchgp::Kernel::Rbf,
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

/// In f32 the two backends round differently (faer's blocked factorisation against the kernels'
/// unblocked one), so the difference grows with the condition number: keep it near 1e3.
fn well_conditioned_for(p: Precision, hyp: &mut Hyperparameters) {
    if p == Precision::F32 {
        hyp.noise.mapv_inplace(|v| 5.0 * v);
    }
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
                    v.push(Case { b: if n <= 64 { 6 } else { 3 }, n, d, shared, masked });
                }
            }
        }
    }
    if p == Precision::F64 {
        v.push(Case { b: 3, n: 500, d: 3, shared: false, masked: true });
        v.push(Case { b: 2, n: 500, d: 8, shared: true, masked: false });
        v.push(Case { b: 2, n: 2048, d: 3, shared: false, masked: true });
    }
    v
}

fn check_mll(gpu: &CudaBackend, p: Precision) {
    let cpu = CpuBackend::new();
    for (k, case) in cases(p).into_iter().enumerate() {
        let (data, mut hyp) = make(case, 100 + k as u64);
        well_conditioned_for(p, &mut hyp);
        let opts = MllOptions::new(p);
        let a = cpu.mll(&data, &hyp, None, &opts).expect("cpu mll");
        let g = gpu.mll(&data, &hyp, None, &opts).unwrap_or_else(|e| panic!("{case:?}: cuda mll: {e}"));
        let what = |s: &str| format!("{case:?} {p:?} mll {s}");
        assert_eq!(a.status, g.status, "{}", what("status"));
        if case.b >= 2 {
            assert_eq!(g.status[1], Status::Failed, "{}", what("forced failure"));
        }
        close_arr(&what("jitter"), &a.jitter, &g.jitter, tol(p));
        close_arr(&what("value"), &a.mll, &g.mll, tol(p));
        let (ga, gg) = (a.gradient.expect("cpu gradient"), g.gradient.expect("cuda gradient"));
        close_arr(&what("d/dlog lengthscale"), &ga.log_lengthscale, &gg.log_lengthscale, tol(p));
        close_arr(&what("d/dlog outputscale"), &ga.log_outputscale, &gg.log_outputscale, tol(p));
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
    let (data, hyp) = make(Case { b: 7, n: 40, d: 3, shared: false, masked: true }, 7);
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
            close_arr("listed gradient", &x.log_lengthscale, &y.log_lengthscale, 1e-9);
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
            let b = g.gram(&data, &hyp, p).unwrap_or_else(|e| panic!("{case:?}: cuda gram: {e}"));
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
            well_conditioned_for(p, &mut hyp);
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
            assert_eq!(y.status[0], Status::Jitter, "{what} member 0");
            close_arr(&format!("{what} jitter"), &x.jitter, &y.jitter, tol(p));
            close_arr(&format!("{what} factor"), &x.factor, &y.factor, tol(p));
        }
    }
}

fn check_predict(g: &CudaBackend, p: Precision) {
    let cpu = CpuBackend::new();
    for (k, case) in cases(p).into_iter().filter(|c| c.n <= 500).enumerate() {
        let (data, mut hyp) = make(case, 700 + k as u64);
        well_conditioned_for(p, &mut hyp);
        let m = 17;
        let mut rng = ChaCha8Rng::seed_from_u64(900 + k as u64);
        let test = if k % 2 == 0 {
            Inputs::Shared(Array2::from_shape_fn((m, case.d), |_| 3.5 * rng.random::<f64>() - 0.25))
        } else {
            Inputs::Batched(Array3::from_shape_fn((case.b, m, case.d), |_| 3.5 * rng.random::<f64>() - 0.25))
        };
        let opts =
            PredictOptions { precision: p, full_covariance: true, samples: (p == Precision::F64).then_some((3, 42)) };
        let a = cpu.predict(&data, &hyp, &test, &opts).expect("cpu predict");
        let b = g.predict(&data, &hyp, &test, &opts).unwrap_or_else(|e| panic!("{case:?}: cuda predict: {e}"));
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
        let (data, hyp) = make(Case { b: 5, n, d, shared: true, masked: true }, n as u64);
        let opts = MllOptions::new(Precision::F64);
        let a = whole.mll(&data, &hyp, None, &opts).expect("whole");
        let b = chunked.mll(&data, &hyp, None, &opts).expect("chunked");
        let bits = |v: &Array1<f64>| v.iter().map(|x| x.to_bits()).collect::<Vec<_>>();
        assert_eq!(a.status, b.status, "n = {n}: chunked status differs");
        assert_eq!(bits(&a.mll), bits(&b.mll), "n = {n}: chunked mll differs");
        assert_eq!(bits(&a.jitter), bits(&b.jitter), "n = {n}: chunked jitter differs");
        let (ga, gb) = (a.gradient.expect("gradient"), b.gradient.expect("gradient"));
        assert_eq!(bits(&ga.log_noise), bits(&gb.log_noise), "n = {n}: chunked gradient differs");
        let test = Inputs::Shared(Array2::from_shape_fn((9, d), |(i, k)| (i + k) as f64 * 0.3));
        let po = PredictOptions { precision: Precision::F64, full_covariance: true, samples: None };
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

/// The host emulation harness (C++20): see the comment at its top.
const EMULATION_HARNESS: &str = r##"// Host emulation of the batchgp kernels (generated by tests/cuda_agreement.rs). Each CUDA
// thread of a block is a std::thread; __syncthreads and __syncwarp are barriers over the block,
// __shfl_xor_sync goes through a shared array. Checks the kernels' math (MLL, gradient,
// prediction, jitter) against a naive dense reference and central differences, and, with
// several threads, that their synchronisation leaves no read-before-write.
#define BGP_HOST_EMULATION 1
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
using std::sqrt;
#define __global__
#define __device__
#define __forceinline__ inline
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
inline double __longlong_as_double(long long v) { double d; memcpy(&d, &v, 8); return d; }
inline float __int_as_float(int v) { float d; memcpy(&d, &v, 4); return d; }
double bgp_smem[1 << 20];
#include "gram.cu"
#include "gp.cu"
#include "predict.cu"

// The kernels of one precision.
template <typename T> struct K;
template <> struct K<double> {
    static constexpr auto warp = gp_mll_warp_f64; static constexpr auto block = gp_mll_block_f64;
    static constexpr auto global = gp_mll_global_f64; static constexpr auto predict = predict_f64;
    static constexpr auto cov = predict_cov_f64;
};
template <> struct K<float> {
    static constexpr auto warp = gp_mll_warp_f32; static constexpr auto block = gp_mll_block_f32;
    static constexpr auto global = gp_mll_global_f32; static constexpr auto predict = predict_f32;
    static constexpr auto cov = predict_cov_f32;
};

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

// Naive dense reference on the observed points: mll, and optionally k*^T K^-1 k* and
// k*^T K^-1 r for one test point z.
struct Ref { double mll, quad_z, mean_z; };
static Ref reference(int n, int d, const double* x, const double* y, const uint8_t* m, const double* ls,
                     double s, double noise, double mu, const double* z) {
    std::vector<int> o;
    for (int i = 0; i < n; ++i) if (m[i]) o.push_back(i);
    const int k = (int)o.size();
    auto kern = [&](const double* a, const double* b) {
        double q = 0;
        for (int t = 0; t < d; ++t) { double u = (a[t] - b[t]) / ls[t]; q += u * u; }
        return s * exp(-0.5 * q);
    };
    std::vector<double> K(k * k), r(k), kz(k);
    for (int a = 0; a < k; ++a) {
        r[a] = y[o[a]] - mu;
        if (z) kz[a] = kern(x + o[a] * d, z);
        for (int b = 0; b < k; ++b) K[a * k + b] = kern(x + o[a] * d, x + o[b] * d) + (a == b ? noise : 0);
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

static int fails = 0;
static void check(bool ok, const char* what, int n, int d, int v, int b, int idx, double got, double want) {
    if (ok) return;
    if (fails < 20) printf("FAIL %s n=%d d=%d variant=%d member=%d idx=%d got %.12g want %.12g\n", what, n, d, v, b, idx, got, want);
    ++fails;
}

template <typename T>
static void run_case(unsigned nt, std::mt19937_64& rng, int n, int d, int variant, double tol) {
    std::uniform_real_distribution<double> U(0, 1);
    const int B = 3, na = 3;
    std::vector<double> x(B * n * d), y(B * n), ls(B * d), s(B), noise(B), mean(B);
    std::vector<uint8_t> mask(B * n);
    for (auto& v : x) v = 3 * U(rng);
    for (auto& v : y) v = U(rng);
    for (int i = 0; i < B * n; ++i) mask[i] = (i % n == 0) || U(rng) > 0.2;
    for (int i = 0; i < B * n; ++i)
        if (!mask[i]) { y[i] = NAN; for (int t = 0; t < d; ++t) x[i * d + t] = NAN; }
    for (auto& v : ls) v = 0.5 + U(rng);
    for (int b = 0; b < B; ++b) { s[b] = 0.5 + U(rng); noise[b] = 0.05 + 0.1 * U(rng); mean[b] = U(rng) - 0.5; }
    // Host preparation as in src/backend/cuda.rs: scaled points (0 when masked), residuals,
    // unit lengthscales, zero mean.
    std::vector<T> xs(B * n * d, T(0)), r(B * n, T(0)), ones(B * d, T(1)), st(B), nt_(B), mt(B), zero(B, T(0)), jit(B * na, T(0));
    for (int b = 0; b < B; ++b) {
        for (int i = 0; i < n; ++i) {
            if (!mask[b * n + i]) continue;
            r[b * n + i] = T(y[b * n + i] - mean[b]);
            for (int t = 0; t < d; ++t) xs[(b * n + i) * d + t] = T(x[(b * n + i) * d + t] / ls[b * d + t]);
        }
        st[b] = T(s[b]); nt_[b] = T(noise[b]); mt[b] = T(mean[b]);
    }
    std::vector<T> mll(B), grad(B * (d + 3)), L(B * n * n), alpha(B * n), work(B * (n * n + 2 * n));
    std::vector<int> att(B, -7);
    auto fused = [&](int flags) {
        for (int b = 0; b < B; ++b) {
            if (variant == 2) {  // warp: member b is warp b of block 0
                blockIdx.x = 0;
                block(32, 128, [&] {
                    K<T>::warp(xs.data(), n * d, r.data(), mask.data(), ones.data(), st.data(), nt_.data(), zero.data(), jit.data(), na, B, n, d, flags, mll.data(), grad.data(), att.data(), L.data(), alpha.data());
                }, 32 * b);
            } else {
                blockIdx.x = b;
                block(nt, nt, [&] {
                    if (variant == 0)
                        K<T>::block(xs.data(), n * d, r.data(), mask.data(), ones.data(), st.data(), nt_.data(), zero.data(), jit.data(), na, B, n, d, flags, mll.data(), grad.data(), att.data(), L.data(), alpha.data());
                    else
                        K<T>::global(xs.data(), n * d, r.data(), mask.data(), ones.data(), st.data(), nt_.data(), zero.data(), jit.data(), na, B, n, d, flags, mll.data(), grad.data(), att.data(), L.data(), alpha.data(), work.data());
                });
            }
        }
    };
    fused(3);
    const int M = 4;
    std::vector<double> z(M * d);
    for (auto& v : z) v = 3 * U(rng);
    for (int b = 0; b < B; ++b) {
        const double* xb = x.data() + b * n * d;
        auto ref = [&](const double* lsv, double sv, double nv, double mv) {
            return reference(n, d, xb, y.data() + b * n, mask.data() + b * n, lsv, sv, nv, mv, nullptr).mll;
        };
        const double want = ref(ls.data() + b * d, s[b], noise[b], mean[b]);
        check(att[b] == 0, "attempt", n, d, variant, b, 0, att[b], 0);
        check(std::fabs(double(mll[b]) - want) <= tol * (1 + std::fabs(want)), "mll", n, d, variant, b, 0, mll[b], want);
        const double h = 1e-5;
        for (int p = 0; p < d + 3; ++p) {
            auto f = [&](double e) {
                std::vector<double> l2(ls.begin() + b * d, ls.begin() + b * d + d);
                double s2 = s[b], n2 = noise[b], m2 = mean[b];
                if (p < d) l2[p] *= exp(e); else if (p == d) s2 *= exp(e); else if (p == d + 1) n2 *= exp(e); else m2 += e;
                return ref(l2.data(), s2, n2, m2);
            };
            const double fd = (f(h) - f(-h)) / (2 * h);
            const double g = grad[b * (d + 3) + p];
            check(std::fabs(g - fd) <= std::max(tol, 1e-5) * 10 * (1 + std::fabs(fd)), "gradient", n, d, variant, b, p, g, fd);
        }
    }
    // Prediction from the factor and alpha the fused kernel writes.
    fused(2);
    std::vector<T> zt(B * M * d), V(B * n * M), om(B * M), ov(B * M), oc(B * M * M);
    for (int b = 0; b < B; ++b)
        for (int t = 0; t < M * d; ++t) zt[b * M * d + t] = T(z[t] / ls[b * d + t % d]);
    const int tiles = (M + 127) / 128;
    for (int blk = 0; blk < tiles * B; ++blk) {
        blockIdx.x = blk;
        block(128, 128, [&] {
            K<T>::predict(xs.data(), n * d, mask.data(), zt.data(), M * d, ones.data(), st.data(), mt.data(), L.data(), alpha.data(), att.data(), B, n, M, d, V.data(), om.data(), ov.data());
        });
    }
    gridDim.x = 1;
    blockIdx.x = 0;
    block(nt, nt, [&] { K<T>::cov(zt.data(), M * d, ones.data(), st.data(), att.data(), V.data(), B, n, M, d, oc.data()); });
    for (int b = 0; b < B; ++b)
        for (int t = 0; t < M; ++t) {
            Ref rf = reference(n, d, x.data() + b * n * d, y.data() + b * n, mask.data() + b * n, ls.data() + b * d, s[b], noise[b], mean[b], z.data() + t * d);
            const double wm = mean[b] + rf.mean_z, wv = std::max(s[b] - rf.quad_z, 0.0);
            check(std::fabs(double(om[b * M + t]) - wm) <= tol * (1 + std::fabs(wm)), "predict mean", n, d, variant, b, t, om[b * M + t], wm);
            check(std::fabs(double(ov[b * M + t]) - wv) <= tol * (1 + s[b]), "predict var", n, d, variant, b, t, ov[b * M + t], wv);
            check(std::fabs(double(oc[(b * M + t) * M + t]) - (s[b] - rf.quad_z)) <= tol * (1 + s[b]), "predict cov diag", n, d, variant, b, t, oc[(b * M + t) * M + t], s[b] - rf.quad_z);
        }
}

int main(int argc, char** argv) {
    const unsigned nt = argc > 1 ? (unsigned)atoi(argv[1]) : 1;
    std::mt19937_64 rng(3);
    for (int n : {1, 5, 12, 32, 40, 70, 100})
        for (int d : {1, 3, 9})
            for (int variant = 0; variant < 3; ++variant) {
                if (variant == 2 && n > 32) continue;
                if (variant != 1 && n > 40) continue;  // past one panel: the blocked global path
                run_case<double>(nt, rng, n, d, variant, 1e-10);
                if (variant != 2) run_case<float>(nt, rng, n, d, variant, 2e-3);
            }
    // Jitter: member 0 has a zero last row and column (attempt 0 meets a zero pivot, attempt 1
    // succeeds with pivot sqrt(jitter)); member 1 is a plain SPD matrix.
    {
        const int n = 6, B = 2, na = 3;
        std::vector<double> A(B * n * n, 0.0), jit = {0, 1e-8, 1e-7, 0, 1e-8, 1e-7}, L(B * n * n), work(B * (n * n + 2 * n));
        std::vector<int> att(B);
        for (int b = 0; b < B; ++b)
            for (int i = 0; i < n; ++i) A[b * n * n + i * n + i] = (b == 0 && i == n - 1) ? 0.0 : 2.0;
        A[n * n + 2 * n + 1] = A[n * n + n + 2] = 1.0;
        for (int b = 0; b < B; ++b) {
            blockIdx.x = b;
            block(nt, nt, [&] { chol_global_f64(A.data(), jit.data(), na, B, n, L.data(), att.data(), work.data()); });
        }
        check(att[0] == 1 && att[1] == 0, "chol attempts", n, 0, 1, 0, 0, att[0], att[1]);
        check(std::fabs(L[n * n - 1] - 1e-4) < 1e-12, "chol jitter pivot", n, 0, 1, 0, 0, L[n * n - 1], 1e-4);
        check(std::fabs(L[n * n + 2 * n + 1] - 1 / sqrt(2.0)) < 1e-15 && L[n * n + n + 2] == 0, "chol values", n, 0, 1, 1, 0, L[n * n + 2 * n + 1], 1 / sqrt(2.0));
    }
    printf("%d failures\n", fails);
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
