//! The host side of one CUDA MLL evaluation, without a GPU: the backend's host path
//! (src/backend/cuda/host.rs) over the counting stand-in of the device (no copies, no kernels),
//! timed per call at the shapes of the GPU goals, beside the host-side work of the previous path
//! (residuals and jitter table formed and uploaded every call, a MemberView per member). What a
//! fit's every round costs the host; the device calls themselves are counted, not timed.
//!
//! `cargo bench --bench host_path` (`--quick`: fewer repetitions). Lines:
//! `<shape> now <min> <median> (<bytes up> B up, <bytes down> B down per call)  previous <min>
//! <median> (<bytes> B up)`.

use batchgp::backend::cuda::counting::{previous_host_work, Session};
use batchgp::{Hyperparameters, MllOptions, Precision};
use std::time::Instant;

mod common;
use common::problem;

/// (minimum, median): on a shared machine a call that outlasts a scheduler slice waits for the
/// others, so the minimum is the closer estimate of the work itself.
fn min_median(mut v: Vec<f64>) -> (f64, f64) {
    v.sort_by(f64::total_cmp);
    (v[0], v[v.len() / 2])
}

fn main() {
    let quick = std::env::args().any(|a| a == "--quick");
    let reps = if quick { 5 } else { 21 };
    println!("threads: {}", rayon::current_num_threads());
    for (b, n, d) in [(100_000, 32, 3), (10_000, 64, 3), (1000, 256, 8), (10, 1000, 3)] {
        let (data, hyp) = problem(b, n, d, 7);
        let opts = MllOptions::new(Precision::F64);
        let mut s = Session::default();
        s.mll(&data, &hyp, None, &opts).expect("first call");
        s.driver.take();
        // A fit's rounds: every call has new hyperparameters.
        let rounds: Vec<Hyperparameters> = (0..reps)
            .map(|r| {
                let mut h = hyp.clone();
                h.noise.mapv_inplace(|v| v * (1.0 + 0.01 * r as f64));
                h
            })
            .collect();
        let mut now = Vec::new();
        for h in &rounds {
            let t = Instant::now();
            std::hint::black_box(s.mll(&data, h, None, &opts).expect("call"));
            now.push(t.elapsed().as_secs_f64() * 1e3);
        }
        let c = s.driver.take();
        let mut prev = Vec::new();
        let mut prev_bytes = 0;
        for h in &rounds {
            let t = Instant::now();
            prev_bytes = std::hint::black_box(previous_host_work(&data, h, &opts));
            prev.push(t.elapsed().as_secs_f64() * 1e3);
        }
        let ((nmin, nmed), (pmin, pmed)) = (min_median(now), min_median(prev));
        println!(
            "b{b}_n{n}_d{d}  now {nmin:8.3} ms min {nmed:8.3} median ({} B up in {} copies, {} B down in {} copies, {} launches per call)  \
             previous {pmin:8.3} ms min {pmed:8.3} median ({} B up)",
            c.staged_upload_bytes / reps,
            c.staged_uploads / reps,
            c.download_bytes / reps,
            c.downloads / reps,
            c.launches / reps,
            prev_bytes
        );
    }
}
