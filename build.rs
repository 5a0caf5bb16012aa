//! Compiles kernels/*.cu into one fatbin embedded in the library (docs/design.md section 8).
//!
//! nvcc is looked for in $NVCC, then $CUDA_HOME/bin/nvcc, then PATH. With it, every kernels/*.cu
//! is #included by one generated umbrella source and compiled to SASS for sm_80, sm_86, sm_89 and
//! sm_90 plus PTX for compute_90 (never an "a" target, whose code runs on one chip only); a kernel
//! that does not compile fails the build with nvcc's messages. The entry points are named
//! `<op>_<kernel>_<dtype>` (`gp_mll_warp_matern52_f64`, one per covariance kernel of
//! kernels/covariance.cuh and precision) and `chol_<variant>_<dtype>`; src/backend/cuda/launch.rs
//! builds the same names. Without nvcc the crate still builds, with one warning, and the CUDA
//! backend reports "built without CUDA kernels".
//!
//! Output: $OUT_DIR/kernels.rs, included by src/backend/cuda, defining
//! `FATBIN: Option<&[u8]>`, `TARGETS: &[&str]` and `NVCC_VERSION: &str`.

use std::env;
use std::fmt::Write as _;
use std::fs;
use std::path::{Path, PathBuf};
use std::process::Command;

/// (virtual architecture, real architecture) pairs: SASS for each real one.
const SASS: [(&str, &str); 4] =
    [("compute_80", "sm_80"), ("compute_86", "sm_86"), ("compute_89", "sm_89"), ("compute_90", "sm_90")];
/// PTX embedded for JIT on newer GPUs.
const PTX: &str = "compute_90";

fn main() {
    println!("cargo:rerun-if-env-changed=NVCC");
    println!("cargo:rerun-if-env-changed=CUDA_HOME");
    println!("cargo:rerun-if-changed=kernels");

    let manifest = PathBuf::from(env::var("CARGO_MANIFEST_DIR").expect("cargo sets CARGO_MANIFEST_DIR"));
    let out_dir = PathBuf::from(env::var("OUT_DIR").expect("cargo sets OUT_DIR"));
    let kdir = manifest.join("kernels");

    // Every kernel file (.cu and .cuh) and, among them, the sources compiled.
    let mut files = Vec::new();
    if let Ok(rd) = fs::read_dir(&kdir) {
        for e in rd.flatten() {
            let p = e.path();
            if matches!(p.extension().and_then(|x| x.to_str()), Some("cu" | "cuh")) {
                println!("cargo:rerun-if-changed={}", p.display());
                files.push(p);
            }
        }
    }
    files.sort();
    let sources: Vec<PathBuf> =
        files.iter().filter(|p| p.extension().and_then(|x| x.to_str()) == Some("cu")).cloned().collect();

    let rs = match find_nvcc() {
        None => {
            println!(
                "cargo:warning=batchgp: nvcc not found (set NVCC or CUDA_HOME, or source .ci/install-nvcc.sh); \
                 building without CUDA kernels, the CUDA backend will be unavailable"
            );
            generated(None, &[], "none")
        }
        Some(nvcc) => {
            let version = nvcc_version(&nvcc);
            let fatbin = cached_compile(&nvcc, &version, &kdir, &files, &sources, &out_dir);
            let mut targets: Vec<String> = SASS.iter().map(|(_, s)| s.to_string()).collect();
            targets.push(PTX.to_string());
            generated(Some(&fatbin), &targets, &version)
        }
    };
    fs::write(out_dir.join("kernels.rs"), rs).expect("write kernels.rs to OUT_DIR");
}

fn find_nvcc() -> Option<PathBuf> {
    if let Some(p) = env::var_os("NVCC").filter(|p| !p.is_empty()) {
        let p = PathBuf::from(p);
        if runs(&p) {
            return Some(p);
        }
        println!("cargo:warning=batchgp: NVCC={} does not run; looking further", p.display());
    }
    if let Some(home) = env::var_os("CUDA_HOME").filter(|p| !p.is_empty()) {
        let p = Path::new(&home).join("bin").join("nvcc");
        if runs(&p) {
            return Some(p);
        }
    }
    let p = PathBuf::from("nvcc");
    runs(&p).then_some(p)
}

fn runs(nvcc: &Path) -> bool {
    Command::new(nvcc).arg("--version").output().map(|o| o.status.success()).unwrap_or(false)
}

fn nvcc_version(nvcc: &Path) -> String {
    Command::new(nvcc)
        .arg("--version")
        .output()
        .ok()
        .and_then(|o| {
            let s = String::from_utf8_lossy(&o.stdout).into_owned();
            s.lines().find(|l| l.contains("release")).map(|l| l.trim().to_string())
        })
        .unwrap_or_else(|| "unknown".into())
}

/// The fatbin for these sources, from the profile's cache when the same sources were compiled
/// by the same nvcc with the same flags before. The kernels take many minutes to compile and
/// cargo reruns this script whenever the crate's features change (a `cargo test --workspace`
/// and maturin's build of the Python package unify features differently), so the compiled
/// fatbin is kept under the profile's folder (target/<profile>/nvcc-cache), keyed by an FNV-1a
/// hash of every kernel file (`files`: kernels/*.cu and *.cuh), the nvcc version and the flags.
fn cached_compile(
    nvcc: &Path,
    version: &str,
    kdir: &Path,
    files: &[PathBuf],
    sources: &[PathBuf],
    out_dir: &Path,
) -> PathBuf {
    let mut key = Fnv::new();
    key.add(version.as_bytes());
    key.add(format!("{SASS:?} {PTX} -O3 -std=c++17 -lineinfo -compress-all").as_bytes());
    for f in files {
        key.add(f.file_name().map(|n| n.as_encoded_bytes()).unwrap_or_default());
        key.add(&fs::read(f).unwrap_or_default());
    }
    // OUT_DIR is target/<profile>/build/batchgp-<hash>/out.
    let cache = out_dir.ancestors().nth(3).map(|p| p.join("nvcc-cache"));
    let hit = cache.as_ref().map(|c| c.join(format!("{:016x}.fatbin", key.0)));
    let fatbin = out_dir.join("batchgp_kernels.fatbin");
    if let Some(h) = hit.as_ref().filter(|h| h.is_file()) {
        if fs::copy(h, &fatbin).is_ok() {
            return fatbin;
        }
    }
    let fatbin = compile(nvcc, kdir, sources, out_dir);
    if let (Some(c), Some(h)) = (cache, hit) {
        // Written beside, then renamed: a concurrent build never reads half a fatbin.
        let tmp = c.join(format!("{}.tmp", std::process::id()));
        if fs::create_dir_all(&c).is_ok() && fs::copy(&fatbin, &tmp).is_ok() {
            let _ = fs::rename(&tmp, &h);
        }
    }
    fatbin
}

/// 64-bit FNV-1a: a hash that is the same on every run and toolchain.
struct Fnv(u64);

impl Fnv {
    fn new() -> Self {
        Fnv(0xcbf2_9ce4_8422_2325)
    }
    fn add(&mut self, bytes: &[u8]) {
        for &b in bytes {
            self.0 = (self.0 ^ u64::from(b)).wrapping_mul(0x0100_0000_01b3);
        }
        // A separator, so that ("ab", "c") and ("a", "bc") differ.
        self.0 = (self.0 ^ 0xff).wrapping_mul(0x0100_0000_01b3);
    }
}

/// One umbrella translation unit that #includes every kernel source, so that one nvcc call makes
/// one fatbin holding every kernel.
fn compile(nvcc: &Path, kdir: &Path, sources: &[PathBuf], out_dir: &Path) -> PathBuf {
    let umbrella = out_dir.join("batchgp_kernels.cu");
    let mut text = String::from("// Generated by build.rs: every kernels/*.cu in one translation unit.\n");
    for s in sources {
        let _ = writeln!(text, "#include \"{}\"", s.display());
    }
    fs::write(&umbrella, text).expect("write the umbrella kernel source to OUT_DIR");
    let fatbin = out_dir.join("batchgp_kernels.fatbin");
    let mut cmd = Command::new(nvcc);
    // Every kernel is instantiated for five covariance kernels and two precisions: --threads 0
    // compiles the targets in parallel (one per CPU), and -compress-all compresses every object
    // in the fatbin (about 8x smaller SASS; nvcc's default leaves these uncompressed).
    cmd.arg("--fatbin").arg("-O3").arg("-std=c++17").arg("-lineinfo").arg("-I").arg(kdir);
    cmd.arg("--threads").arg("0").arg("-Xfatbin=-compress-all");
    for (virt, real) in SASS {
        cmd.arg("-gencode").arg(format!("arch={virt},code={real}"));
    }
    cmd.arg("-gencode").arg(format!("arch={PTX},code={PTX}"));
    cmd.arg(&umbrella).arg("-o").arg(&fatbin);
    let out = cmd.output().unwrap_or_else(|e| panic!("batchgp: cannot run {}: {e}", nvcc.display()));
    if !out.status.success() {
        panic!(
            "batchgp: nvcc failed to compile the CUDA kernels ({:?})\n{}\n{}",
            cmd,
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
    }
    fatbin
}

fn generated(fatbin: Option<&Path>, targets: &[String], nvcc: &str) -> String {
    let mut s = String::from("// Generated by build.rs.\n");
    match fatbin {
        Some(p) => {
            let _ = writeln!(
                s,
                "pub(crate) const FATBIN: Option<&[u8]> = Some(include_bytes!({:?}));",
                p.display().to_string()
            );
        }
        None => s.push_str("pub(crate) const FATBIN: Option<&[u8]> = None;\n"),
    }
    let _ = writeln!(s, "pub(crate) const TARGETS: &[&str] = &{targets:?};");
    let _ = writeln!(s, "pub(crate) const NVCC_VERSION: &str = {nvcc:?};");
    s
}
