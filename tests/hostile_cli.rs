//! The command line against a hostile user (issue 21): an output never replaces an input under
//! another name, is written whole or not at all (a failed write leaves the old file byte for
//! byte and no temporary), write and allocation failures say what failed in one line, `show`
//! refuses files that are not batchgp's, `--repeat` is planned, f16 files are read, booleans
//! are numbers only in a mask, and `--covariance` is the old name of `--full-covariance`.

mod common;
use batchgp::io::{Npz, NpzOut};
use common::*;
use ndarray::{Array1, Array2, Array3};
use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};

fn dir(name: &str) -> PathBuf {
    let d = std::env::temp_dir().join(format!("batchgp-hostile-{}-{name}", std::process::id()));
    let _ = std::fs::remove_dir_all(&d);
    std::fs::create_dir_all(&d).unwrap();
    d
}

fn s(p: &Path) -> &str {
    p.to_str().unwrap()
}

fn run(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_batchgp")).args(args).output().expect("runs")
}

/// `batchgp ARGS` under `bash -c 'ulimit LIMIT; ...'`.
fn run_limited(limit: &str, args: &[&str]) -> Output {
    let quoted: Vec<String> = args.iter().map(|a| format!("'{a}'")).collect();
    let script = format!("ulimit {limit}; exec '{}' {}", env!("CARGO_BIN_EXE_batchgp"), quoted.join(" "));
    Command::new("bash").args(["-c", &script]).output().expect("bash runs")
}

fn stderr(o: &Output) -> String {
    String::from_utf8_lossy(&o.stderr).to_string()
}

/// Exit 2 with one line on stderr holding every needle.
fn assert_rejected(o: &Output, needles: &[&str]) {
    let e = stderr(o);
    assert_eq!(o.status.code(), Some(2), "{e}");
    assert_eq!(e.trim_end().lines().count(), 1, "one line: {e}");
    for n in needles {
        assert!(e.contains(n), "`{n}` not in: {e}");
    }
}

/// D.npz (3 members, 12 points, 2 dimensions) and P.npz in `d`.
fn write_case(d: &Path) {
    let (data, hyp) = random_batch(3, 12, 2, 7);
    let x = match data.x() {
        batchgp::Inputs::Batched(x) => x.clone(),
        _ => unreachable!(),
    };
    NpzOut::new().add3("x", x).add2("y", data.y().clone()).write(s(&d.join("D.npz"))).unwrap();
    NpzOut::new().add_params(&hyp).write(s(&d.join("P.npz"))).unwrap();
}

/// The names in `d` that look like batchgp's temporaries.
fn temporaries(d: &Path) -> Vec<String> {
    std::fs::read_dir(d)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().to_string())
        .filter(|n| n.contains(".batchgp-") && n.ends_with(".tmp"))
        .collect()
}

#[test]
fn an_output_that_is_an_input_under_another_name_is_refused() {
    let d = dir("links");
    write_case(&d);
    let data = std::fs::read(d.join("D.npz")).unwrap();
    std::fs::hard_link(d.join("D.npz"), d.join("H.npz")).unwrap();
    std::os::unix::fs::symlink(d.join("D.npz"), d.join("S.npz")).unwrap();
    for out in ["H.npz", "S.npz"] {
        let o = run(&["fit", "--data", s(&d.join("D.npz")), "--out", s(&d.join(out)), "--backend", "cpu"]);
        assert_rejected(&o, &["is the --data file", "never writes over an input"]);
        // And the other way round: the input named through the link, the output its target.
        let o = run(&["fit", "--data", s(&d.join(out)), "--out", s(&d.join("D.npz")), "--backend", "cpu"]);
        assert_rejected(&o, &["is the --data file"]);
    }
    assert_eq!(std::fs::read(d.join("D.npz")).unwrap(), data, "the input is untouched");
}

#[test]
fn a_write_past_ulimit_f_keeps_the_old_file_byte_for_byte() {
    let d = dir("ulimit-f");
    write_case(&d);
    let (data, out) = (d.join("D.npz"), d.join("F.npz"));
    let o = run(&["fit", "--data", s(&data), "--out", s(&out), "--backend", "cpu"]);
    assert!(o.status.success(), "{}", stderr(&o));
    let old = std::fs::read(&out).unwrap();
    assert!(old.len() > 2048, "the output is larger than the limit below");
    // 1 KiB: the new file cannot be written whole. SIGXFSZ is ignored, so the write fails with
    // EFBIG and the message says so.
    let o = run_limited("-f 1", &["fit", "--data", s(&data), "--out", s(&out), "--backend", "cpu", "--seed", "3"]);
    assert_rejected(&o, &["F.npz", "File too large"]);
    assert!(!stderr(&o).contains("ZipWriter"), "{}", stderr(&o));
    assert_eq!(std::fs::read(&out).unwrap(), old, "the old output survives byte for byte");
    assert_eq!(temporaries(&d), Vec::<String>::new(), "no temporary left behind");
    // A new output that cannot be written leaves nothing at all.
    let new = d.join("G.npz");
    let o = run_limited("-f 1", &["fit", "--data", s(&data), "--out", s(&new), "--backend", "cpu"]);
    assert_rejected(&o, &["File too large"]);
    assert!(!new.exists());
    assert_eq!(temporaries(&d), Vec::<String>::new());
}

#[test]
fn a_full_device_gives_one_line_with_the_reason() {
    if !Path::new("/dev/full").exists() {
        return;
    }
    let d = dir("full");
    write_case(&d);
    let o = run(&["fit", "--data", s(&d.join("D.npz")), "--out", "/dev/full", "--backend", "cpu"]);
    assert_rejected(&o, &["/dev/full", "No space left on device"]);
    assert!(!stderr(&o).contains("ZipWriter") && !stderr(&o).contains("Os {"), "{}", stderr(&o));
    assert!(Path::new("/dev/full").exists() && !Path::new("/dev/full").is_file(), "the device is still a device");
}

#[test]
fn temporaries_of_dead_processes_are_removed_and_live_ones_kept() {
    let d = dir("stale");
    write_case(&d);
    // A pid above the kernel's largest (4194304) is never running; this test's own pid is.
    let dead = d.join(".F.npz.batchgp-4294967295.tmp");
    let live = d.join(format!(".F.npz.batchgp-{}.tmp", std::process::id()));
    let other = d.join(".G.npz.batchgp-4294967295.tmp");
    for p in [&dead, &live, &other] {
        std::fs::File::create(p).unwrap().write_all(b"partial").unwrap();
    }
    let o = run(&["fit", "--data", s(&d.join("D.npz")), "--out", s(&d.join("F.npz")), "--backend", "cpu"]);
    assert!(o.status.success(), "{}", stderr(&o));
    assert!(!dead.exists(), "a dead process's temporary of F.npz is removed");
    assert!(live.exists(), "a running process's temporary is kept");
    assert!(other.exists(), "another target's temporary is not this write's business");
    assert!(Npz::open(s(&d.join("F.npz"))).unwrap().has("status"));
}

#[test]
fn an_overwritten_output_keeps_its_permissions() {
    use std::os::unix::fs::PermissionsExt;
    let d = dir("perms");
    write_case(&d);
    let out = d.join("F.npz");
    std::fs::write(&out, b"old").unwrap();
    std::fs::set_permissions(&out, std::fs::Permissions::from_mode(0o640)).unwrap();
    let o = run(&["fit", "--data", s(&d.join("D.npz")), "--out", s(&out), "--backend", "cpu"]);
    assert!(o.status.success(), "{}", stderr(&o));
    assert_eq!(std::fs::metadata(&out).unwrap().permissions().mode() & 0o777, 0o640);
    assert!(Npz::open(s(&out)).unwrap().has("mll"));
}

#[test]
fn a_repeat_whose_times_cannot_be_kept_is_refused_up_front() {
    let d = dir("repeat");
    write_case(&d);
    let args = |r: &'static str| {
        ["mll", "--data", "D.npz", "--params", "P.npz", "--out", "O.npz", "--backend", "cpu", "--repeat", r]
    };
    let t = std::time::Instant::now();
    let o = Command::new(env!("CARGO_BIN_EXE_batchgp")).current_dir(&d).args(args("1000000000000")).output().unwrap();
    assert_rejected(&o, &["invalid option `repeat`", "7.3 TiB", "available"]);
    assert!(t.elapsed().as_secs() < 30, "refused before running");
    assert!(!d.join("O.npz").exists());
    // Within a budget given by --max-memory: 10^8 runs need 762.9 MiB, more than 512M.
    let mut a = args("100000000").to_vec();
    a.extend(["--max-memory", "512M"]);
    let o = Command::new(env!("CARGO_BIN_EXE_batchgp")).current_dir(&d).args(a).output().unwrap();
    assert_rejected(&o, &["762.9 MiB", "512.0 MiB"]);
}

#[test]
fn a_failed_allocation_names_the_allocation_and_the_limit() {
    // N = 20000: a member's workspace is several GiB; --max-memory lets planning pass, and
    // ulimit -v (about 1.9 GiB) makes the allocation fail.
    let d = dir("alloc");
    let n = 20000;
    let x = Array2::from_shape_fn((n, 1), |(i, _)| i as f64 / n as f64);
    let y = Array2::from_shape_fn((1, n), |(_, i)| (i as f64 / 100.0).sin());
    NpzOut::new().add2("x", x).add2("y", y).write(s(&d.join("D.npz"))).unwrap();
    let z = |v: f64| Array1::from_elem(1, v);
    let p = NpzOut::new()
        .add2("log_lengthscale", Array2::zeros((1, 1)))
        .add1("log_outputscale", z(0.0))
        .add1("log_noise", z(-2.0))
        .add1("mean", z(0.0))
        .write(s(&d.join("P.npz")));
    p.unwrap();
    let o = run_limited(
        "-v 2000000",
        &[
            "mll",
            "--data",
            s(&d.join("D.npz")),
            "--params",
            s(&d.join("P.npz")),
            "--out",
            s(&d.join("O.npz")),
            "--backend",
            "cpu",
            "--max-memory",
            "1T",
        ],
    );
    assert_rejected(&o, &["could not allocate", "N = 20000", "ulimit -v", "1.9 GiB"]);
    assert!(!stderr(&o).contains("more than the"), "not the planning message: {}", stderr(&o));
}

#[test]
fn show_refuses_an_npz_that_is_not_batchgp_s() {
    let d = dir("show");
    NpzOut::new().add1("a", Array1::zeros(3)).add1("b", Array1::ones(2)).write(s(&d.join("other.npz"))).unwrap();
    let o = run(&["show", s(&d.join("other.npz"))]);
    assert_rejected(&o, &["not a batchgp file", "`a`, `b`"]);
    assert!(o.stdout.is_empty());
    write_case(&d);
    let o = run(&["show", s(&d.join("D.npz"))]);
    assert!(o.status.success(), "{}", stderr(&o));
    assert!(String::from_utf8_lossy(&o.stdout).contains("3 members"));
}

/// An .npz of raw .npy entries (name, descr, shape, data bytes), as numpy writes them.
fn raw_npz(path: &Path, entries: &[(&str, &str, &[usize], Vec<u8>)]) {
    let mut zip = zip::ZipWriter::new(std::fs::File::create(path).unwrap());
    for (name, descr, shape, data) in entries {
        let dims: Vec<String> = shape.iter().map(|n| format!("{n},")).collect();
        let dict = format!("{{'descr': '{descr}', 'fortran_order': False, 'shape': ({}), }}", dims.join(" "));
        let total = (10 + dict.len() + 1).div_ceil(64) * 64;
        let mut b = b"\x93NUMPY\x01\x00".to_vec();
        b.extend(((total - 10) as u16).to_le_bytes());
        b.extend(dict.as_bytes());
        b.resize(total - 1, b' ');
        b.push(b'\n');
        b.extend(data);
        let opts = zip::write::SimpleFileOptions::default().compression_method(zip::CompressionMethod::Stored);
        zip.start_file(format!("{name}.npy"), opts).unwrap();
        zip.write_all(&b).unwrap();
    }
    zip.finish().unwrap();
}

#[test]
fn f16_is_read_and_booleans_are_numbers_only_in_a_mask() {
    let d = dir("dtypes");
    // Halves chosen exactly: 1.5, -2, 0.25, 65504 (the largest), 2^-24 (the smallest subnormal), 0.
    let halves: [(u16, f64); 6] =
        [(0x3e00, 1.5), (0xc000, -2.0), (0x3400, 0.25), (0x7bff, 65504.0), (0x0001, 2f64.powi(-24)), (0x0000, 0.0)];
    let le: Vec<u8> = halves.iter().flat_map(|(h, _)| h.to_le_bytes()).collect();
    let be: Vec<u8> = halves.iter().flat_map(|(h, _)| h.to_be_bytes()).collect();
    let path = d.join("h.npz");
    raw_npz(&path, &[("a", "<f2", &[2, 3], le), ("b", ">f2", &[6], be)]);
    let mut f = Npz::open(s(&path)).unwrap();
    let want: Vec<f64> = halves.iter().map(|(_, v)| *v).collect();
    let a = f.get("a").unwrap();
    assert_eq!(a.shape(), &[2, 3]);
    assert_eq!(a.iter().copied().collect::<Vec<_>>(), want);
    assert_eq!(f.get("b").unwrap().iter().copied().collect::<Vec<_>>(), want);

    // A data file in f16 fits as its f64 values do.
    let (data, _) = random_batch(2, 10, 1, 3);
    let x = match data.x() {
        batchgp::Inputs::Batched(x) => x.clone(),
        _ => unreachable!(),
    };
    let to_half = |v: f64| -> u16 {
        // Values of the form k / 64 with |k| < 1024 are exact halves: round to that grid.
        let k = (v * 64.0).round().clamp(-1023.0, 1023.0);
        let (s, k) = (if k < 0.0 { 0x8000u16 } else { 0 }, k.abs() as u32);
        if k == 0 {
            return s;
        }
        let e = 31 - k.leading_zeros(); // k = 2^e * (1 + f), value = 2^(e - 6) * (1 + f)
        let frac = ((k << (10 - e)) & 0x3ff) as u16;
        s | (((e as i32 - 6 + 15) as u16) << 10) | frac
    };
    let grid = |v: f64| (v * 64.0).round().clamp(-1023.0, 1023.0) / 64.0;
    let bytes = |a: &[f64]| a.iter().flat_map(|v| to_half(*v).to_le_bytes()).collect::<Vec<u8>>();
    let xs: Vec<f64> = x.iter().copied().collect();
    let ys: Vec<f64> = data.y().iter().copied().collect();
    raw_npz(&d.join("D16.npz"), &[("x", "<f2", &[2, 10, 1], bytes(&xs)), ("y", "<f2", &[2, 10], bytes(&ys))]);
    let x64 = Array3::from_shape_vec((2, 10, 1), xs.iter().map(|v| grid(*v)).collect()).unwrap();
    let y64 = Array2::from_shape_vec((2, 10), ys.iter().map(|v| grid(*v)).collect()).unwrap();
    NpzOut::new().add3("x", x64).add2("y", y64.clone()).write(s(&d.join("D64.npz"))).unwrap();
    let read = batchgp::io::read_data(s(&d.join("D16.npz"))).unwrap();
    assert_eq!(read.y(), &y64);
    for (inp, out) in [("D16.npz", "F16.npz"), ("D64.npz", "F64.npz")] {
        let o = run(&["fit", "--data", s(&d.join(inp)), "--out", s(&d.join(out)), "--backend", "cpu"]);
        assert!(o.status.success(), "{inp}: {}", stderr(&o));
    }
    let mll = |f: &str| Npz::open(s(&d.join(f))).unwrap().get("mll").unwrap();
    assert_eq!(mll("F16.npz"), mll("F64.npz"));

    // Booleans: y refused (True is not the number 1), a mask accepted.
    let bools = |n: usize| (0..n).map(|i| u8::from(i % 3 != 0)).collect::<Vec<u8>>();
    let xb = bytes(&xs);
    raw_npz(&d.join("Yb.npz"), &[("x", "<f2", &[2, 10, 1], xb.clone()), ("y", "|b1", &[2, 10], bools(20))]);
    let o = run(&["fit", "--data", s(&d.join("Yb.npz")), "--out", s(&d.join("O.npz")), "--backend", "cpu"]);
    assert_rejected(&o, &["array `y`", "booleans, not numbers", "only a mask"]);
    raw_npz(
        &d.join("Mb.npz"),
        &[("x", "<f2", &[2, 10, 1], xb), ("y", "<f2", &[2, 10], bytes(&ys)), ("mask", "|b1", &[2, 10], bools(20))],
    );
    let read = batchgp::io::read_data(s(&d.join("Mb.npz"))).unwrap();
    assert_eq!(read.n_observed(0), 6, "a boolean mask is read as 0/1");
}

#[test]
fn covariance_is_the_old_name_of_full_covariance() {
    let d = dir("names");
    write_case(&d);
    let base = |flag: &'static str, out: &'static str| {
        ["predict", "--data", "D.npz", "--params", "P.npz", "--test", "D.npz", "--out", out, "--backend", "cpu", flag]
    };
    let new = Command::new(env!("CARGO_BIN_EXE_batchgp"))
        .current_dir(&d)
        .args(base("--full-covariance", "A.npz"))
        .output()
        .unwrap();
    assert!(new.status.success(), "{}", stderr(&new));
    assert!(!stderr(&new).contains("note"), "{}", stderr(&new));
    let old = Command::new(env!("CARGO_BIN_EXE_batchgp"))
        .current_dir(&d)
        .args(base("--covariance", "B.npz"))
        .output()
        .unwrap();
    assert!(old.status.success(), "{}", stderr(&old));
    assert!(stderr(&old).contains("--covariance is now --full-covariance"), "{}", stderr(&old));
    let cov = |f: &str| Npz::open(s(&d.join(f))).unwrap().get("covariance").unwrap();
    assert_eq!(cov("A.npz"), cov("B.npz"));
    assert_eq!(cov("A.npz").shape(), &[3, 12, 12]);
}
