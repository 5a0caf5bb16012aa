//! What the `batchgp` commands share: the options of every computing command ([`Common`],
//! [`Compute`]) and their parsers, the backend set-up, the `--out` check, the priors file, the
//! `--repeat` timing and the end of an evaluation's output; one module per command below.

use batchgp::backend::{self, Backend};
use batchgp::io::NpzOut;
use batchgp::{BackendChoice, Error, Kernel, MllGradient, Precision, Priors};
use clap::Args;
use std::path::{Path, PathBuf};
use std::time::Instant;

/// A line on stdout. A closed stdout (`batchgp info | head -1`) drops the rest quietly instead
/// of panicking, as `show` does.
macro_rules! say {
    ($($t:tt)*) => {{
        use std::io::Write as _;
        let _ = writeln!(std::io::stdout(), $($t)*);
    }};
}

mod bounds;
pub mod demo;
pub mod elbo;
pub mod fit;
pub mod info;
pub mod mll;
pub mod predict;
pub mod show;
mod summary;

// The options of every command that reaches a backend (info and demo too).
#[derive(Args, Clone)]
struct Common {
    /// Where to compute: auto (the GPU when one is usable, else the CPU), cpu or cuda.
    #[arg(long, default_value = "auto", value_parser = ["auto", "cpu", "cuda"])]
    backend: String,
    /// Arithmetic precision: f64 (~1e-9 relative) or f32 (faster, ~1e-4 relative).
    #[arg(long, default_value = "f64", value_parser = ["f64", "f32"])]
    precision: String,
}

/// Options of every command that computes.
#[derive(Args, Clone)]
struct Compute {
    /// Covariance kernel: rbf, matern12, matern32, matern52 or rq. Default: the kernel stored in
    /// the parameters file, else rbf; a --kernel that contradicts the file's is an error.
    #[arg(long, value_parser = ["rbf", "matern12", "matern32", "matern52", "rq"])]
    kernel: Option<String>,
    /// Memory budget in bytes, with an optional K, M, G or T suffix (powers of 1024), e.g.
    /// 512M or 8G. Default: the memory available.
    #[arg(long, value_name = "BYTES", value_parser = parse_bytes)]
    max_memory: Option<u64>,
    #[command(flatten)]
    common: Common,
}

impl Compute {
    fn kernel(&self) -> batchgp::Result<Option<Kernel>> {
        self.kernel.as_deref().map(str::parse).transpose()
    }
}

fn option_error(name: &str, reason: impl Into<String>) -> Error {
    Error::InvalidOption { name: name.to_string(), reason: reason.into() }
}

/// A whole number >= 0, with a message that names the value.
fn parse_count(s: &str) -> Result<usize, String> {
    s.trim().parse::<usize>().map_err(|_| format!("expected a whole number >= 0, got `{s}`"))
}

/// A seed: a whole number from 0 to 2^64 - 1.
fn parse_seed(s: &str) -> Result<u64, String> {
    s.trim().parse::<u64>().map_err(|_| format!("expected a whole number from 0 to 18446744073709551615, got `{s}`"))
}

/// BYTES with an optional K, M, G or T suffix (the library's reading of --max-memory).
fn parse_bytes(s: &str) -> Result<u64, String> {
    batchgp::backend::memory::parse_bytes(s).map_err(|e| match e {
        Error::InvalidOption { reason, .. } => reason,
        e => e.to_string(),
    })
}

fn setup(c: &Common) -> batchgp::Result<(Box<dyn Backend>, Precision)> {
    let precision: Precision = c.precision.parse()?;
    let choice: BackendChoice = c.backend.parse()?;
    Ok((backend::select(choice)?, precision))
}

/// [`setup`] for SVGP work, whose `auto` is the CPU (`batchgp::svgp::backend_choice`).
fn setup_svgp(c: &Common) -> batchgp::Result<(Box<dyn Backend>, Precision)> {
    let precision: Precision = c.precision.parse()?;
    let choice = batchgp::svgp::backend_choice(c.backend.parse()?);
    Ok((backend::select(choice)?, precision))
}

/// Runs `f` once for its answer and its time, then `repeat` more times for their wall times
/// (`--repeat`: the first run is the warm-up). The times are kept, 8 bytes a run: a `repeat`
/// whose times do not fit the memory budget (`max_memory`, else the memory available) is
/// refused before the first run, with the bytes it needs.
fn timed<R>(
    repeat: usize,
    max_memory: Option<u64>,
    f: impl Fn() -> batchgp::Result<R>,
) -> batchgp::Result<(R, f64, Vec<f64>)> {
    let needed = (repeat as u64).saturating_mul(8);
    let refuse = |budget: String| {
        let needs = batchgp::backend::memory::format_bytes(needed);
        option_error("repeat", format!("--repeat {repeat} keeps one time per run: {needs}, more than {budget}"))
    };
    let budget = if needed > 64 << 20 { max_memory.or_else(batchgp::backend::memory::available) } else { None };
    if let Some(budget) = budget.filter(|&b| needed > b) {
        let budget = batchgp::backend::memory::format_bytes(budget);
        return Err(refuse(format!("the {budget} available (see --max-memory)")));
    }
    let mut seconds = Vec::new();
    seconds.try_reserve_exact(repeat).map_err(|_| refuse("could be allocated".into()))?;
    let t = Instant::now();
    let r = f()?;
    let secs = t.elapsed().as_secs_f64();
    for _ in 0..repeat {
        let t = Instant::now();
        std::hint::black_box(f()?);
        seconds.push(t.elapsed().as_secs_f64());
    }
    Ok((r, secs, seconds))
}

fn read_priors(path: &Option<String>) -> batchgp::Result<Priors> {
    match path {
        None => Ok(Priors::none()),
        Some(p) => {
            let text = std::fs::read_to_string(p).map_err(|e| Error::Io { path: p.clone(), reason: e.to_string() })?;
            Priors::from_toml(&text)
        }
    }
}

/// Checks `--out` before any work: not a folder, its folder exists and is writable, and it is
/// none of the inputs: not the same path, nor the same file under another name (a hard or
/// symbolic link: the same device and inode).
fn check_out(out: &str, inputs: &[(&str, Option<&str>)]) -> batchgp::Result<()> {
    let bad = |reason: String| option_error("out", reason);
    let path = Path::new(out);
    if out.is_empty() {
        return Err(bad("an empty path".into()));
    }
    if path.is_dir() {
        return Err(bad(format!("{out} is a folder; give a file path such as {}", path.join("out.npz").display())));
    }
    let folder = match path.parent() {
        Some(p) if !p.as_os_str().is_empty() => p.to_path_buf(),
        _ => PathBuf::from("."),
    };
    if !folder.is_dir() {
        return Err(bad(format!("the folder {} of {out} does not exist", folder.display())));
    }
    let file_name = path.file_name().ok_or_else(|| bad(format!("{out} does not name a file")))?;
    let canonical_folder = folder.canonicalize().map_err(|e| bad(format!("{}: {e}", folder.display())))?;
    let target = canonical_folder.join(file_name);
    let target = target.canonicalize().unwrap_or(target);
    for (flag, input) in inputs {
        let Some(input) = input else { continue };
        if Path::new(input).canonicalize().is_ok_and(|c| c == target) || same_file(input, out) {
            return Err(bad(format!(
                "{out} is the {flag} file; batchgp never writes over an input (choose another --out)"
            )));
        }
    }
    // Writable: an existing file is opened for writing (not truncated); a regular file (or a
    // new one) is written through a temporary in its folder (batchgp::io::write_atomically), so
    // a probe file is created there and removed.
    if path.exists() {
        std::fs::OpenOptions::new().write(true).open(path).map_err(|e| bad(format!("{out} cannot be written: {e}")))?;
    }
    if !path.exists() || path.is_file() {
        let probe = canonical_folder.join(format!(".batchgp-write-check-{}", std::process::id()));
        std::fs::OpenOptions::new()
            .write(true)
            .create_new(true)
            .open(&probe)
            .map_err(|e| bad(format!("the folder {} cannot be written: {e}", folder.display())))?;
        let _ = std::fs::remove_file(&probe);
    }
    Ok(())
}

/// Whether paths `a` and `b` name the same file (links followed): the same device and inode.
fn same_file(a: &str, b: &str) -> bool {
    #[cfg(unix)]
    {
        use std::os::unix::fs::MetadataExt;
        match (std::fs::metadata(a), std::fs::metadata(b)) {
            (Ok(x), Ok(y)) => x.dev() == y.dev() && x.ino() == y.ino(),
            _ => false,
        }
    }
    #[cfg(not(unix))]
    {
        let _ = (a, b);
        false
    }
}

/// The exact GP's hyperparameter gradient as the output arrays `grad_log_lengthscale`, ...,
/// `grad_log_alpha` (rq only), in that order (`mll`, and `elbo` after its variational arrays).
fn add_hyperparameter_gradient(o: &mut NpzOut, g: MllGradient) {
    o.add2("grad_log_lengthscale", g.log_lengthscale)
        .add1("grad_log_outputscale", g.log_outputscale)
        .add1("grad_log_noise", g.log_noise)
        .add1("grad_mean", g.mean);
    if let Some(a) = g.log_alpha {
        o.add1("grad_log_alpha", a);
    }
}

/// The end of an evaluation (`mll`, `elbo`): the timed runs' `seconds` when `--repeat` asked for
/// them, the file written, then the one line on stderr.
fn finish_evaluation(mut o: NpzOut, repeat: usize, seconds: Vec<f64>, out: &str, line: &str) -> batchgp::Result<()> {
    if repeat > 0 {
        o.add1("seconds", seconds.into());
    }
    o.write(out)?;
    eprintln!("{line}");
    Ok(())
}
