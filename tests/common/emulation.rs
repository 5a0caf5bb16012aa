//! Compiles and runs one host-emulation harness of the CUDA kernels (tests/emulation/*.cpp,
//! which include kernels/*.cu as C++ with the emulation layer of tests/emulation/cuda_host.h)
//! on a plan of launches written by the calling test.

use std::path::{Path, PathBuf};

/// A working C++ compiler: $CXX, else c++, else g++.
pub fn cxx() -> Option<String> {
    let candidates = std::env::var("CXX").ok().into_iter().chain(["c++".to_string(), "g++".to_string()]);
    candidates
        .into_iter()
        .find(|c| std::process::Command::new(c).arg("--version").output().map(|o| o.status.success()).unwrap_or(false))
}

/// Compiles tests/emulation/`source` with the kernels (AddressSanitizer where the compiler has
/// it, else the emulation's guard pages); returns the executable and what checks bounds.
fn compile(cxx: &str, source: &str, exe: PathBuf) -> (PathBuf, &'static str) {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let mut last = String::new();
    for (flags, how) in
        [(&["-fsanitize=address", "-fno-omit-frame-pointer"][..], "AddressSanitizer"), (&[][..], "guard pages")]
    {
        let out = std::process::Command::new(cxx)
            .args(["-O1", "-std=c++20"])
            .args(flags)
            .arg("-I")
            .arg(root.join("kernels"))
            .arg(root.join("tests").join("emulation").join(source))
            .arg("-o")
            .arg(&exe)
            .output()
            .expect("run the C++ compiler");
        if out.status.success() {
            return (exe, how);
        }
        last = String::from_utf8_lossy(&out.stderr).into_owned();
    }
    panic!("{cxx} could not compile tests/emulation/{source} with the kernels as host C++:\n{last}");
}

/// Runs tests/emulation/`source` on `plan` (`count` lines) and fails the test when any check
/// fails. Without a C++ compiler it says it skipped. BATCHGP_EMULATION_DIR keeps the plan and
/// the executable there (to rerun or debug them).
pub fn run_harness(source: &str, plan: &str, count: usize) {
    let Some(cxx) = cxx() else {
        println!("skipped: no C++ compiler");
        return;
    };
    let stem = source.trim_end_matches(".cpp");
    let keep = std::env::var_os("BATCHGP_EMULATION_DIR").map(PathBuf::from);
    let dir =
        keep.clone().unwrap_or_else(|| std::env::temp_dir().join(format!("batchgp-{stem}-{}", std::process::id())));
    std::fs::create_dir_all(&dir).expect("temp dir");
    let plan_path = dir.join(format!("{stem}_plan.txt"));
    std::fs::write(&plan_path, plan).expect("write the plan");
    let t0 = std::time::Instant::now();
    let (exe, bounds) = compile(&cxx, source, dir.join(stem));
    let compiled = t0.elapsed();
    let t1 = std::time::Instant::now();
    let run = std::process::Command::new(&exe)
        .arg(&plan_path)
        .env("ASAN_OPTIONS", "detect_leaks=0:abort_on_error=0")
        .output()
        .expect("run the harness");
    let text = String::from_utf8_lossy(&run.stdout);
    println!(
        "{count} plan lines, bounds by {bounds}; compiled in {:.1} s, ran in {:.1} s: {}",
        compiled.as_secs_f64(),
        t1.elapsed().as_secs_f64(),
        text.lines().last().unwrap_or("")
    );
    assert!(
        run.status.success(),
        "host emulation {source} failed ({}):\n{text}\n{}",
        run.status,
        String::from_utf8_lossy(&run.stderr)
    );
    if keep.is_none() {
        let _ = std::fs::remove_dir_all(&dir);
    }
}
