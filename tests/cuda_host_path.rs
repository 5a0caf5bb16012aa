//! The CUDA MLL host path without a GPU (src/backend/cuda/host.rs): what one evaluation asks of
//! the device, counted by a stand-in (`batchgp::backend::cuda::counting`) that checks every
//! region a kernel would index, moves nothing and runs nothing; the screen's statuses against the
//! CPU backend's; and gp_mll_prep (kernels/prep.cu), which forms the residuals, the jitter table
//! and the hyperparameters on the device, in the host emulation (tests/emulation/prep_harness.cpp)
//! with the backend's launch shapes and parameter layout.
//!
//! The contract counted here (issue 19, point 1): after the first call on a dataset, a call
//! uploads only O(B (D + 4)) hyperparameters, in one copy per chunk from page-locked staging,
//! allocates nothing, launches two kernels per chunk and reads MLL, gradient and attempts back in
//! one copy.

mod common;

use batchgp::backend::cpu::CpuBackend;
use batchgp::backend::cuda::counting::{param_offsets, Counting, Counts, Session};
use batchgp::{Backend, Dataset, Hyperparameters, Inputs, Kernel, MllOptions, Precision, Status};
use ndarray::{Array2, Array3};
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;

/// B members of N points in D dimensions, a quarter of the points masked (NaN in x and y there),
/// member 1 fully masked (Empty) and member 2 with outputscale inf (Failed); with known noise when
/// `yvar`.
fn batch(b: usize, n: usize, d: usize, yvar: bool, seed: u64) -> (Dataset, Hyperparameters) {
    let mut rng = ChaCha8Rng::seed_from_u64(seed);
    let mask = Array2::from_shape_fn((b, n), |(m, i)| m != 1 && (i == 0 || rng.random::<f64>() > 0.25));
    let x = Array3::from_shape_fn((b, n, d), |(m, i, _)| if mask[[m, i]] { rng.random::<f64>() } else { f64::NAN });
    let y = Array2::from_shape_fn((b, n), |(m, i)| if mask[[m, i]] { rng.random::<f64>() } else { f64::NAN });
    let mut data = Dataset::with_mask(Inputs::Batched(x), y, Some(mask)).expect("data");
    if yvar {
        let yv = Array2::from_shape_fn((b, n), |_| 0.01 + 0.1 * rng.random::<f64>());
        data = data.with_yvar(yv).expect("yvar");
    }
    let mut hyp = Hyperparameters::broadcast(b, &vec![0.4; d], 1.0, 0.05, 0.1);
    for m in 0..b {
        hyp.outputscale[m] = 0.5 + rng.random::<f64>();
        hyp.mean[m] = rng.random::<f64>() - 0.5;
    }
    if b > 2 {
        hyp.outputscale[2] = f64::INFINITY;
    }
    (data, hyp)
}

/// The hyperparameters of the next round of a fit: every value moved.
fn moved(hyp: &Hyperparameters) -> Hyperparameters {
    let mut h = hyp.clone();
    h.lengthscale.mapv_inplace(|v| v * 1.1);
    h.noise.mapv_inplace(|v| v * 0.9);
    h.mean.mapv_inplace(|v| v + 0.01);
    h
}

/// Members that reach the kernels: not Empty, not Failed before the kernel (members 1 and 2).
fn live(b: usize, rows: &[usize]) -> usize {
    rows.iter().filter(|&&m| m >= 3 || m == 0).count().min(b)
}

/// The counts of a call that reuses the resident data and the workspace: one staged upload of
/// C (D + 5 [+ 1]) + attempts doubles and one download per chunk, two launches per chunk, and
/// nothing else.
fn repeated(c_per_chunk: &[usize], d: usize, alpha: bool, p: usize, sz: usize, na: usize) -> Counts {
    let mut k = Counts::default();
    for &c in c_per_chunk {
        k.staged_uploads += 1;
        k.staged_upload_bytes += 8 * param_offsets(c, d, alpha, na)[7];
        k.downloads += 1;
        k.download_bytes += sz * (c * (1 + p) + (4 * c).div_ceil(sz));
        k.launches += 2;
    }
    k
}

#[test]
fn a_repeated_call_uploads_only_hyperparameters() {
    let (b, n, d) = (3000, 32, 3);
    for (kernel, p, yvar) in [
        (Kernel::Rbf, Precision::F64, false),
        (Kernel::Rq, Precision::F64, true),
        (Kernel::Matern52, Precision::F32, true),
    ] {
        let (data, hyp) = batch(b, n, d, yvar, 3);
        let hyp = hyp.with_kernel(kernel);
        let alpha = kernel.has_alpha();
        let np = d + 3 + alpha as usize;
        let sz = if p == Precision::F64 { 8 } else { 4 };
        let opts = MllOptions::new(p);
        let na = opts.jitter.retries as usize + 1;
        let mut s = Session::default();
        let all: Vec<usize> = (0..b).collect();
        let first = s.mll(&data, &hyp, None, &opts).expect("first call");
        let c0 = s.driver.take();
        // The first call uploads the data once (x, y, mask [, yvar]) and allocates the fit's buffers.
        assert_eq!(c0.uploads, 3 + yvar as usize, "{kernel}: the data's uploads");
        assert_eq!(c0.upload_bytes, b * n * (d * sz + 8 + 1 + if yvar { sz } else { 0 }), "{kernel}: the data's bytes");
        assert_eq!(c0.host_allocs, 2, "{kernel}: page-locked staging and output");
        assert_eq!(first.status[1], Status::Empty);
        assert_eq!(first.status[2], Status::Failed);
        // Every later round: hyperparameters up, results down, nothing allocated.
        let h2 = moved(&hyp);
        let again = s.mll(&data, &h2, None, &opts).expect("second call");
        assert_eq!(s.driver.take(), repeated(&[live(b, &all)], d, alpha, np, sz, na), "{kernel}: a repeated call");
        assert_eq!(again.status, first.status);
        // 3 (D + 5) + ... doubles per member: O(B (D + 4)), against B N for the residuals alone.
        let per_member = 8 * param_offsets(1, d, alpha, 0)[7];
        assert!(per_member <= 8 * (d + 6) && per_member < sz * n, "{kernel}: {per_member} bytes per member");
        // A run of members is read in place; members out of order are gathered on the device
        // (their buffers allocated once, on the first such call).
        let run: Vec<usize> = (100..900).collect();
        s.mll(&data, &h2, Some(&run), &opts).expect("a run of members");
        assert_eq!(s.driver.take(), repeated(&[800], d, alpha, np, sz, na), "{kernel}: a run of members");
        // (Members 1 and 2 never reach a kernel, so the first call's members were not one run:
        // the gather buffers exist already.)
        let scattered: Vec<usize> = (0..b).filter(|m| m % 3 != 1).rev().collect();
        s.mll(&data, &h2, Some(&scattered), &opts).expect("scattered members");
        assert_eq!(
            s.driver.take(),
            repeated(&[live(b, &scattered)], d, alpha, np, sz, na),
            "{kernel}: scattered members"
        );
        s.mll(&data, &hyp, Some(&scattered), &opts).expect("scattered members again");
        assert_eq!(s.driver.take(), repeated(&[live(b, &scattered)], d, alpha, np, sz, na), "{kernel}: gathered again");
        // Other data (same shapes) replaces what is kept; so does a release.
        let (other, _) = batch(b, n, d, yvar, 4);
        s.mll(&other, &hyp, None, &opts).expect("other data");
        assert_eq!(s.driver.take().uploads, 3 + yvar as usize, "{kernel}: other data is uploaded");
        s.release();
        s.mll(&other, &hyp, None, &opts).expect("after release");
        assert_eq!(s.driver.take().uploads, 3 + yvar as usize, "{kernel}: released data is uploaded again");
    }
}

#[test]
fn members_out_of_order_are_gathered_in_buffers_made_once() {
    let (b, n, d) = (500, 16, 2);
    for yvar in [false, true] {
        let (data, hyp) = batch(b, n, d, yvar, 8);
        let opts = MllOptions::new(Precision::F64);
        let run: Vec<usize> = (3..b).collect();
        let mut s = Session::default();
        s.mll(&data, &hyp, Some(&run), &opts).expect("a run");
        let allocs_run = s.driver.take().allocs;
        let scattered: Vec<usize> = (3..b).step_by(2).rev().collect();
        s.mll(&data, &hyp, Some(&scattered), &opts).expect("scattered");
        let c = s.driver.take();
        assert_eq!(c.allocs, 2 + yvar as usize, "yvar {yvar}: x, mask [and yvar] gathered");
        assert_eq!(c.alloc_bytes, scattered.len().max(b - 3) * n * (8 * d + 1 + if yvar { 8 } else { 0 }));
        s.mll(&data, &hyp, Some(&scattered), &opts).expect("scattered again");
        assert_eq!(s.driver.take().allocs, 0, "yvar {yvar}: made once");
        // A first call whose members are not one run (members 1 and 2 drop out) gathers at once.
        let mut fresh = Session::default();
        fresh.mll(&data, &hyp, None, &opts).expect("all members");
        assert_eq!(fresh.driver.take().allocs, allocs_run + 2 + yvar as usize, "yvar {yvar}: the gather as well");
    }
}

#[test]
fn chunks_and_data_too_large_for_the_device() {
    let (b, n, d) = (2500, 24, 2);
    let (data, hyp) = batch(b, n, d, false, 5);
    let opts = MllOptions::new(Precision::F64);
    let all: Vec<usize> = (0..b).collect();
    let l = live(b, &all);
    // At most 1000 members per launch: three chunks, each one upload and one download.
    let mut s = Session::new(Counting::default().with_max_chunk(1000));
    s.mll(&data, &hyp, None, &opts).expect("first");
    s.driver.take();
    s.mll(&data, &moved(&hyp), None, &opts).expect("second");
    assert_eq!(s.driver.take(), repeated(&[1000, 1000, l - 2000], d, false, d + 3, 8, 7));
    // Device memory for a few hundred members and not for the data: each chunk brings its own
    // members' data, every call (the path of a dataset larger than the device).
    let resident = n * (d * 8 + 8 + 1);
    let mut s = Session::new(Counting::default().with_free(2 * 300 * resident * 10 / 7));
    let r = s.mll(&data, &hyp, None, &opts).expect("small device");
    assert_eq!(r.status[2], Status::Failed);
    s.driver.take();
    s.mll(&data, &moved(&hyp), None, &opts).expect("small device, again");
    let c = s.driver.take();
    let chunks = c.staged_uploads;
    assert!(chunks > 1, "{chunks} chunk(s)");
    assert_eq!(c.uploads, 3 * chunks, "each chunk uploads its members' x, y and mask");
    assert_eq!(c.upload_bytes, l * resident);
}

#[test]
fn the_screen_gives_the_cpu_backends_statuses() {
    // Members that never reach a kernel (Empty, Failed before the factorisation, a NaN
    // lengthscale, a non-finite mean diagonal) get the CPU backend's status and jitter 0.
    let (b, n, d) = (40, 12, 2);
    let (data, mut hyp) = batch(b, n, d, true, 6);
    hyp.lengthscale[[5, 1]] = f64::NAN;
    hyp.noise[6] = f64::INFINITY;
    hyp.mean[7] = f64::NAN;
    hyp.outputscale[8] = 1e308;
    hyp.noise[8] = 1e308; // s + noise overflows: the mean diagonal is inf
    let opts = MllOptions::new(Precision::F64);
    let cpu = CpuBackend::new().mll(&data, &hyp, None, &opts).expect("cpu");
    let mut s = Session::default();
    let host = s.mll(&data, &hyp, None, &opts).expect("host path");
    for m in [1, 2, 5, 6, 7, 8] {
        assert_eq!(host.status[m], cpu.status[m], "member {m}");
        assert!(cpu.status[m] == Status::Empty || cpu.status[m] == Status::Failed, "member {m}: {:?}", cpu.status[m]);
        assert_eq!(host.jitter[m], 0.0, "member {m}");
        assert!(host.mll[m].is_nan(), "member {m}");
    }
    // The others reached the stand-in's kernels (attempt 0: Ok).
    let reached = (0..b).filter(|m| ![1, 2, 5, 6, 7, 8].contains(m)).count();
    assert_eq!(host.status.iter().filter(|s| **s == Status::Ok).count(), reached);
    // Listed members keep their places.
    let rows = [8, 0, 2, 9];
    let part = s.mll(&data, &hyp, Some(&rows), &opts).expect("listed");
    assert_eq!(part.status, vec![cpu.status[8], Status::Ok, cpu.status[2], Status::Ok]);
}

/// The launches of the prep emulation: both precisions, with and without rq's alpha, known noise
/// and gathering, at the launch shape the backend uses (grid-stride over C N entries) and with the
/// parameter offsets the host writes.
fn prep_plan() -> (String, usize) {
    use batchgp::backend::cuda::emulation as emu;
    let mut lines = Vec::new();
    let mut seed = 1u64;
    for dt in ["f64", "f32"] {
        for (b, n, d, c) in [(1, 1, 1, 1), (9, 7, 3, 5), (40, 33, 2, 17), (300, 12, 9, 257)] {
            for (alpha, yvar, gather) in [(0, 0, 0), (1, 1, 0), (0, 1, 1), (1, 0, 1)] {
                let na = 7;
                let (g, blk, sm) = emu::stride((c * n).max(c));
                let off = param_offsets(c, d, alpha == 1, na).map(|o| o.to_string()).join(",");
                lines.push(format!(
                    "prep dt={dt} B={b} N={n} D={d} C={c} alpha={alpha} yvar={yvar} gather={gather} na={na} \
                     shape={g},{blk},{sm} seed={seed} off={off}"
                ));
                seed += 1;
            }
        }
    }
    let count = lines.len();
    (lines.join("\n") + "\n", count)
}

#[test]
fn prep_kernel_in_host_emulation() {
    let (plan, count) = prep_plan();
    common::emulation::run_harness("prep_harness.cpp", &plan, count);
}
