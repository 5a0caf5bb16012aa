//! Criterion benchmarks of the batched numerical core (DESIGN.md section 9).
//!
//! Groups are named `<op>/<backend>/b{B}_n{N}_d{D}` (Cholesky: `b{B}_n{N}`), with the precision
//! as the function name. The MLL + gradient groups carry the kernel in the op, one group per
//! kernel, so an id reads `mll_rbf/cpu/b100_n264_d3/f64` or `mll_matern52/cpu/b100_n264_d3/f64`.
//! Throughput is counted in elements = B, so criterion prints GP evaluations (factorisations,
//! predictions) per second.
//!
//! - every available backend: mll_rbf and mll_matern52 on the CPU shapes (b100_n264_d3,
//!   b1000_n50_d3, b4_n264_d3, b10000_n32_d3), mll_matern12, mll_matern32 and mll_rq on the
//!   first two; gram, cholesky and predict (rbf) on the first two; all f64;
//! - the CUDA backend only: mll_rbf and mll_matern52 b1000_n256_d8 and b100000_n32_d3,
//!   cholesky b10000_n64 and b64_n2048, each in f64 and f32. The backend methods return host
//!   arrays, so every timed call has synchronised the device before the clock stops.
//!
//! Every kernel sees the same data and hyperparameters (rq with alpha = 1), and a shape's
//! kernels run one after another, so their ratios are taken under the same machine load.
//!
//! After the criterion run, a summary line per mll/cholesky benchmark gives the median time
//! per batch, GP evaluations per second and GFLOP/s counting N^3 per member (a nominal count,
//! for comparing shapes and machines, not a tally of the flops done), and each kernel's time as
//! a multiple of rbf's at the same shape.
//!
//! Run: `cargo bench --bench mll` (a few minutes on 2 cores); a subset:
//! `cargo bench --bench mll -- mll_rbf/cpu`, `cargo bench --bench mll -- 'mll_(rbf|matern52)/cpu'`
//! (the filter is a regular expression). The side-by-side comparison with GPyTorch and
//! scikit-learn is benches/peers/compare.py.

use batchgp::backend::{self, Backend, JitterPolicy, PredictOptions};
use batchgp::{Hyperparameters, Inputs, Kernel, MllOptions, Precision};
use criterion::{BenchmarkId, Criterion, Throughput};
use ndarray::Array2;
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use std::cell::RefCell;
use std::time::{Duration, Instant};

mod common;
use common::problem;

/// The kernels of the MLL groups: every shape runs the first two, the two main CPU shapes all.
const KERNELS: [Kernel; 5] = [Kernel::Rbf, Kernel::Matern52, Kernel::Matern32, Kernel::Matern12, Kernel::Rq];
const MAIN_KERNELS: usize = 2;

/// `hyp` with the kernel `k` (rq gets alpha = 1 for every member).
fn set_kernel(hyp: &Hyperparameters, k: Kernel) -> Hyperparameters {
    hyp.clone().with_kernel(k)
}

fn name(p: Precision) -> &'static str {
    match p {
        Precision::F64 => "f64",
        Precision::F32 => "f32",
    }
}

/// Per-batch wall times of every timed call, kept for the summary lines.
#[derive(Default)]
struct Summary {
    rows: Vec<(String, usize, usize, Vec<f64>)>,
}

impl Summary {
    fn record(&mut self, id: &str, b: usize, n: usize, per_batch: f64) {
        match self.rows.iter_mut().find(|r| r.0 == id) {
            Some(r) => r.3.push(per_batch),
            None => self.rows.push((id.to_string(), b, n, vec![per_batch])),
        }
    }

    fn print(&self) {
        if self.rows.is_empty() {
            return;
        }
        println!("\nsummary (median per batch; GFLOP/s counts N^3 per member):");
        let median = |times: &[f64]| {
            let mut t = times.to_vec();
            t.sort_by(f64::total_cmp);
            t[t.len() / 2]
        };
        for (id, b, n, times) in &self.rows {
            let med = median(times);
            let evals = *b as f64 / med;
            let gflops = *b as f64 * (*n as f64).powi(3) / med / 1e9;
            println!("  {id:<40} {:>10.3} ms  {evals:>12.0} GP/s  {gflops:>8.2} GFLOP/s", med * 1e3);
        }
        // mll_<kernel>/<backend>/<shape>/<precision> against mll_rbf/<backend>/<shape>/<precision>.
        let mut ratios = Vec::new();
        for (id, _, _, times) in &self.rows {
            let Some((kernel, rest)) = id.strip_prefix("mll_").and_then(|r| r.split_once('/')) else { continue };
            if kernel == "rbf" {
                continue;
            }
            let rbf = format!("mll_rbf/{rest}");
            if let Some(r) = self.rows.iter().find(|r| r.0 == rbf) {
                ratios.push(format!("  {id:<40} {:>6.2}x rbf", median(times) / median(&r.3)));
            }
        }
        if !ratios.is_empty() {
            println!("\nMLL + gradient time relative to rbf at the same shape (medians):");
            for line in ratios {
                println!("{line}");
            }
        }
    }
}

/// Times `f` with criterion's iteration count and records the time per call.
fn timed(
    g: &mut criterion::BenchmarkGroup<'_, criterion::measurement::WallTime>,
    summary: &RefCell<Summary>,
    id: String,
    fname: &str,
    (b, n): (usize, usize),
    mut f: impl FnMut(),
) {
    let full = format!("{id}/{fname}");
    g.bench_function(BenchmarkId::from_parameter(fname), |bench| {
        bench.iter_custom(|iters| {
            let t0 = Instant::now();
            for _ in 0..iters {
                f();
            }
            let el = t0.elapsed();
            summary.borrow_mut().record(&full, b, n, el.as_secs_f64() / iters as f64);
            el
        })
    });
}

fn group<'a>(
    c: &'a mut Criterion,
    id: &str,
    b: usize,
) -> criterion::BenchmarkGroup<'a, criterion::measurement::WallTime> {
    let mut g = c.benchmark_group(id);
    g.throughput(Throughput::Elements(b as u64));
    g.sample_size(10);
    g.warm_up_time(Duration::from_millis(500));
    g.measurement_time(Duration::from_secs(3));
    g
}

fn bench_mll(
    c: &mut Criterion,
    be: &dyn Backend,
    s: &RefCell<Summary>,
    (b, n, d): (usize, usize, usize),
    kernels: &[Kernel],
    precisions: &[Precision],
) {
    let (data, rbf) = problem(b, n, d, 1);
    for &k in kernels {
        let hyp = set_kernel(&rbf, k);
        let id = format!("mll_{}/{}/b{b}_n{n}_d{d}", k.name(), be.name());
        let mut g = group(c, &id, b);
        for &p in precisions {
            let opts = MllOptions::new(p);
            timed(&mut g, s, id.clone(), name(p), (b, n), || {
                let r = be.mll(&data, &hyp, None, &opts).expect("mll");
                std::hint::black_box(r);
            });
        }
        g.finish();
    }
}

fn bench_gram(c: &mut Criterion, be: &dyn Backend, (b, n, d): (usize, usize, usize)) {
    let (data, hyp) = problem(b, n, d, 2);
    let mut g = group(c, &format!("gram/{}/b{b}_n{n}_d{d}", be.name()), b);
    g.bench_function("f64", |bench| bench.iter(|| be.gram(&data, &hyp, Precision::F64).expect("gram")));
    g.finish();
}

fn bench_cholesky(
    c: &mut Criterion,
    be: &dyn Backend,
    s: &RefCell<Summary>,
    (b, n): (usize, usize),
    precisions: &[Precision],
) {
    let (data, hyp) = problem(b, n, 3, 3);
    let k = be.gram(&data, &hyp, Precision::F64).expect("gram");
    let id = format!("cholesky/{}/b{b}_n{n}", be.name());
    let mut g = group(c, &id, b);
    for &p in precisions {
        let jitter = JitterPolicy::for_precision(p);
        timed(&mut g, s, id.clone(), name(p), (b, n), || {
            std::hint::black_box(be.cholesky(&k, p, jitter).expect("cholesky"));
        });
    }
    g.finish();
}

fn bench_predict(c: &mut Criterion, be: &dyn Backend, (b, n, d): (usize, usize, usize), m: usize) {
    let (data, hyp) = problem(b, n, d, 4);
    let mut rng = ChaCha8Rng::seed_from_u64(5);
    let test = Inputs::Shared(Array2::from_shape_fn((m, d), |_| rng.random::<f64>()));
    let opts = PredictOptions::default();
    let mut g = group(c, &format!("predict/{}/b{b}_n{n}_d{d}_m{m}", be.name()), b);
    g.bench_function("f64", |bench| bench.iter(|| be.predict(&data, &hyp, &test, &opts).expect("predict")));
    g.finish();
}

fn main() {
    let mut c = Criterion::default().configure_from_args();
    let timing = std::env::args().any(|a| a == "--bench");
    let summary = RefCell::new(Summary::default());
    let f64_only = [Precision::F64];
    let both = [Precision::F64, Precision::F32];
    for be in backend::available() {
        let be = be.as_ref();
        if timing {
            println!("backend: {}", be.describe());
        }
        for shape in [(100, 264, 3), (1000, 50, 3)] {
            bench_mll(&mut c, be, &summary, shape, &KERNELS, &f64_only);
            bench_gram(&mut c, be, shape);
            bench_cholesky(&mut c, be, &summary, (shape.0, shape.1), &f64_only);
            bench_predict(&mut c, be, shape, 100);
        }
        for shape in [(4, 264, 3), (10_000, 32, 3)] {
            bench_mll(&mut c, be, &summary, shape, &KERNELS[..MAIN_KERNELS], &f64_only);
        }
        if be.name() == "cuda" {
            for shape in [(1000, 256, 8), (100_000, 32, 3)] {
                bench_mll(&mut c, be, &summary, shape, &KERNELS[..MAIN_KERNELS], &both);
            }
            for shape in [(10_000, 64), (64, 2048)] {
                bench_cholesky(&mut c, be, &summary, shape, &both);
            }
        }
    }
    c.final_summary();
    if timing {
        summary.borrow().print();
    }
}
