//! GPU kernel timings: the CUDA backend's kernels timed with device events, beside the wall time
//! of the whole backend call (host preparation, copies and the kernels), at the shapes the GPU
//! targets name (docs/design.md section 9). Not criterion: one warm-up, then R timed calls, and the
//! median of each. Needs a usable GPU; without one it says why and exits 1.
//!
//! Run where a GPU is lent: `cargo bench --bench gpu` (or the carried binary with `--bench`);
//! `--quick` runs each shape 3 times; `--json PATH` writes every number.
//!
//! Lines: `<op> [fused|vendor] <kernel> <dtype> b<B>_n<N>[_d<D>]  kernel <ms>  wall <ms>
//! <members/s>`, with the kernel time the sum over the call's launches (a call can chunk; the
//! vendor path's cuSOLVER/cuBLAS calls are not launches of ours, so its `kernel` column counts our
//! kernels only: read its wall time) and members/s from it. The wall time of the MLL is a repeated
//! call's: the dataset stays on the device between calls (src/backend/cuda/host.rs), as in a fit.

use batchgp::backend::cpu::CpuBackend;
use batchgp::backend::cuda::CudaBackend;
use batchgp::backend::{Backend, JitterPolicy};
use batchgp::{Kernel, MllOptions, Precision};
use std::fmt::Write as _;
use std::time::Instant;

mod common;
use common::problem;

fn median(v: &mut [f64]) -> f64 {
    v.sort_by(f64::total_cmp);
    let n = v.len();
    if n == 0 {
        f64::NAN
    } else if n % 2 == 1 {
        v[n / 2]
    } else {
        0.5 * (v[n / 2 - 1] + v[n / 2])
    }
}

struct Row {
    what: String,
    members: usize,
    kernel_ms: f64,
    wall_ms: f64,
    launches: String,
}

/// Runs `call` once to warm up and `reps` times timed; returns the medians of kernel and wall ms.
fn measure(gpu: &CudaBackend, reps: usize, mut call: impl FnMut()) -> (f64, f64, String) {
    call();
    let warm = gpu.take_kernel_times();
    let launches = warm.iter().map(|t| t.kernel.clone()).collect::<Vec<_>>().join("+");
    let (mut k, mut w) = (Vec::new(), Vec::new());
    for _ in 0..reps {
        let t0 = Instant::now();
        call();
        w.push(t0.elapsed().as_secs_f64() * 1e3);
        k.push(gpu.take_kernel_times().iter().map(|t| t.ms).sum::<f64>());
    }
    (median(&mut k), median(&mut w), launches)
}

fn main() {
    let args: Vec<String> = std::env::args().collect();
    let quick = args.iter().any(|a| a == "--quick");
    let json = args.iter().position(|a| a == "--json").and_then(|i| args.get(i + 1)).cloned();
    let gpu = match CudaBackend::new() {
        Ok(g) => g.with_kernel_times(),
        Err(e) => {
            eprintln!("gpu bench: no usable GPU: {e}");
            std::process::exit(1);
        }
    };
    println!("backend: {}", gpu.describe());
    let reps = |b: usize, n: usize| {
        if quick {
            3
        } else if b * n * n > 50_000_000 {
            7
        } else {
            15
        }
    };
    let mut rows = Vec::new();
    // The goal shapes of issue 19 and the vendor threshold's candidates (N = 264, 512, 1000,
    // 2048). Past the fused block kernel (N > 168 in f64) each f64 shape runs twice: `fused`
    // (BATCHGP_CUDA_VENDOR=off: the global kernel) and `vendor` (=on: cuSOLVER/cuBLAS), the old
    // and the new variant side by side; the crossing sets dense::DENSE_MIN_N.
    let mll_shapes = [
        (100_000, 32, 3),
        (10_000, 64, 3),
        (1000, 256, 8),
        (4, 264, 3),
        (100, 264, 3),
        (20, 512, 3),
        (10, 1000, 3),
        (64, 2048, 1),
    ];
    for (b, n, d) in mll_shapes {
        let (data, hyp) = problem(b, n, d, 7);
        for (kernel, p) in
            [(Kernel::Rbf, Precision::F64), (Kernel::Rbf, Precision::F32), (Kernel::Matern52, Precision::F64)]
        {
            if kernel != Kernel::Rbf && n > 1000 {
                continue;
            }
            let hyp = hyp.clone().with_kernel(kernel);
            let modes: &[&str] = if p == Precision::F64 && n > 168 { &["off", "on"] } else { &["auto"] };
            for &mode in modes {
                // Read by the backend at every call (src/backend/cuda/vendor.rs); set between
                // calls of this single-threaded program.
                std::env::set_var("BATCHGP_CUDA_VENDOR", mode);
                let opts = MllOptions::new(p);
                let (kernel_ms, wall_ms, launches) = measure(&gpu, reps(b, n), || {
                    gpu.mll(&data, &hyp, None, &opts).expect("cuda mll");
                });
                let tag = match mode {
                    "off" => " fused",
                    "on" => " vendor",
                    _ => "",
                };
                let what = format!("mll{tag} {kernel} {p:?} b{b}_n{n}_d{d}");
                rows.push(Row { what, members: b, kernel_ms, wall_ms, launches });
                print_row(rows.last().expect("a row"));
            }
            std::env::remove_var("BATCHGP_CUDA_VENDOR");
        }
    }
    let cpu = CpuBackend::new();
    for (b, n) in [(64, 2048), (10_000, 64), (1000, 256), (100_000, 32)] {
        let (data, hyp) = problem(b, n, 3, 11);
        let a = cpu.gram(&data, &hyp, Precision::F64).expect("cpu gram");
        for p in [Precision::F64, Precision::F32] {
            let policy = JitterPolicy::for_precision(p);
            let (kernel_ms, wall_ms, launches) = measure(&gpu, reps(b, n), || {
                gpu.cholesky(&a, p, policy).expect("cuda cholesky");
            });
            let what = format!("cholesky {p:?} b{b}_n{n}");
            rows.push(Row { what, members: b, kernel_ms, wall_ms, launches });
            print_row(rows.last().expect("a row"));
        }
    }
    if let Some(path) = json {
        let mut s = String::from("[\n");
        for (i, r) in rows.iter().enumerate() {
            let _ = writeln!(
                s,
                "  {{\"what\": \"{}\", \"members\": {}, \"kernel_ms\": {}, \"wall_ms\": {}, \"launches\": \"{}\"}}{}",
                r.what,
                r.members,
                r.kernel_ms,
                r.wall_ms,
                r.launches,
                if i + 1 < rows.len() { "," } else { "" }
            );
        }
        s.push_str("]\n");
        std::fs::write(&path, s).unwrap_or_else(|e| eprintln!("gpu bench: cannot write {path}: {e}"));
    }
}

fn print_row(r: &Row) {
    println!(
        "{:<40} kernel {:>10.4} ms  wall {:>10.3} ms  {:>12.3e} members/s (kernel)  [{}]",
        r.what,
        r.kernel_ms,
        r.wall_ms,
        r.members as f64 / (r.kernel_ms * 1e-3),
        r.launches
    );
}
