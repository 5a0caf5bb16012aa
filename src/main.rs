//! The `batchgp` command line: a thin shell over the library on .npz files (docs/design.md sections 7,
//! 10 and 14). Exit status 0 when the request ran (failed members are in `status`), 2 for a
//! rejected request, with one line on stderr. Output paths are checked before any work, and an
//! output never overwrites an input.

use batchgp::backend::{self, Backend, BackendChoice, PredictOptions};
use batchgp::io::{
    is_svgp_params, read_data, read_params_with_kernel as read_params, read_svgp_params, read_test, status_array, Npz,
    NpzOut,
};
use batchgp::svgp::ElboRequest;
use batchgp::{
    Error, FitRequest, FitResult, Kernel, MllRequest, Optimizer, Precision, Priors, ProgressBarObserver, Status,
    SvgpFitRequest, Target,
};
use clap::{Args, CommandFactory, Parser, Subcommand};
use ndarray::ArrayD;
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::time::Instant;

#[path = "cli/bounds.rs"]
mod cli_bounds;

#[derive(Parser)]
#[command(
    name = "batchgp",
    version,
    about = "Fit and predict with many independent exact Gaussian processes at once",
    after_help = "Files are .npz (numpy's np.savez); arrays may be f32 or f64, outputs are f64.\n\
                  Exit status: 0 when the request ran (failed members are in `status`), 2 when it was rejected."
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

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

#[derive(Subcommand)]
enum Command {
    /// MLL, log prior, objective and its gradient at given hyperparameters.
    #[command(allow_negative_numbers = true)]
    Mll {
        /// Training data: x (B, N, D) or (N, D), y (B, N), optional mask (B, N) of 0/1, optional
        /// known noise variances yvar (B, N).
        #[arg(long, value_name = "D.npz")]
        data: String,
        /// Hyperparameters: log_lengthscale (B, D), log_outputscale (B,), log_noise (B,), mean
        /// (B,), log_alpha (B,) for rq, optional kernel (a fit's output is one).
        #[arg(long, value_name = "P.npz")]
        params: String,
        /// Priors (TOML): sections [lengthscale], [outputscale], [noise], [mean], [alpha] with
        /// gamma, lognormal, normal, halfcauchy or uniform.
        #[arg(long, value_name = "P.toml")]
        priors: Option<String>,
        /// Output: mll, log_prior, objective, status, jitter and the objective's gradient.
        #[arg(long, value_name = "O.npz")]
        out: String,
        /// Time R evaluations after one warm-up; their wall times go to `seconds` (R,). A
        /// whole number >= 0.
        #[arg(long, default_value_t = 0, value_name = "R", value_parser = parse_count)]
        repeat: usize,
        #[command(flatten)]
        compute: Compute,
    },
    /// SVGP ELBO, log prior, objective and its gradient at given SVGP parameters
    /// (docs/design.md section 11).
    #[command(allow_negative_numbers = true)]
    Elbo {
        /// Training data: x (B, N, D) or (N, D), y (B, N), optional mask (B, N) of 0/1, optional
        /// known noise variances yvar (B, N).
        #[arg(long, value_name = "D.npz")]
        data: String,
        /// SVGP parameters: z (B, M, D), q_mu (B, M), q_sqrt (B, M, M) and the hyperparameters
        /// in log form, as `fit --model svgp` writes them.
        #[arg(long, value_name = "S.npz")]
        params: String,
        /// Priors (TOML) on the hyperparameters, as for mll.
        #[arg(long, value_name = "P.toml")]
        priors: Option<String>,
        /// Output: elbo, log_prior, objective, status, jitter and the objective's gradient
        /// (grad_z, grad_q_mu, grad_q_sqrt, grad_log_lengthscale, ...).
        #[arg(long, value_name = "O.npz")]
        out: String,
        /// Time R evaluations after one warm-up; their wall times go to `seconds` (R,).
        #[arg(long, default_value_t = 0, value_name = "R", value_parser = parse_count)]
        repeat: usize,
        #[command(flatten)]
        compute: Compute,
    },
    /// Fit every member (MAP with priors, else maximum likelihood).
    #[command(allow_negative_numbers = true)]
    Fit {
        /// Training data: x (B, N, D) or (N, D), y (B, N), optional mask (B, N) of 0/1, optional
        /// known noise variances yvar (B, N).
        #[arg(long, value_name = "D.npz")]
        data: String,
        /// Starting hyperparameters (a parameters file). Default: lengthscale = std of x,
        /// outputscale = var(y), noise = var(y) / 10, mean = mean(y), per member.
        #[arg(long, value_name = "P.npz")]
        init: Option<String>,
        /// Priors (TOML): sections [lengthscale], [outputscale], [noise], [mean], [alpha] with
        /// gamma, lognormal, normal, halfcauchy or uniform.
        #[arg(long, value_name = "P.toml")]
        priors: Option<String>,
        /// Hyperparameters held at their initial value, comma-separated: lengthscale,
        /// outputscale, noise, mean, alpha, and z (the inducing inputs) for --model svgp.
        #[arg(long, value_delimiter = ',', value_name = "KINDS")]
        fix: Vec<String>,
        /// The model: exact (exact GPs) or svgp (sparse variational GPs; --init then takes an
        /// S.npz and the output is one).
        #[arg(long, default_value = "exact", value_parser = ["exact", "svgp"])]
        model: String,
        /// svgp: inducing points per member, chosen by k-means++ on each member's x (without
        /// --init). Default min(N, 64).
        #[arg(long, value_name = "M", value_parser = parse_count)]
        inducing: Option<usize>,
        /// svgp: mini-batch size per member and step (Adam only); the data term is scaled by
        /// n / S. Default: the full data.
        #[arg(long, value_name = "S", value_parser = parse_count)]
        batch_size: Option<usize>,
        /// svgp: optimiser steps per member (default 1000).
        #[arg(long, value_name = "T", value_parser = parse_count)]
        steps: Option<usize>,
        /// Adam's learning rate (default 0.1 for exact, 0.05 for svgp).
        #[arg(long, value_name = "R")]
        lr: Option<f64>,
        /// Optimiser: lbfgs (batched L-BFGS) or adam. Default lbfgs for exact, adam for svgp.
        #[arg(long, value_parser = ["lbfgs", "adam"])]
        optimizer: Option<String>,
        /// Iterations per member, a whole number >= 0.
        #[arg(long, default_value_t = 1000, value_name = "N", value_parser = parse_count)]
        max_iter: usize,
        /// Extra starts per member from spread points (the best is kept), a whole number >= 0.
        #[arg(long, default_value_t = 0, value_name = "R", value_parser = parse_count)]
        restarts: usize,
        /// Fit on y standardised per member; results are reported in the data's units.
        #[arg(long)]
        standardize: bool,
        /// Box bounds LOW,HIGH on every positive hyperparameter (natural units, 0 < LOW <
        /// HIGH), as scikit-learn's, and/or NAME=LOW,HIGH per kind, repeated or space-separated
        /// (--bounds lengthscale=0.025,inf --bounds noise=1e-4,inf); L-BFGS then runs as
        /// L-BFGS-B on a boxed problem.
        #[arg(long, value_name = "[NAME=]LOW,HIGH", allow_hyphen_values = true)]
        bounds: Vec<String>,
        /// Seed of the restarts' spread (svgp: of k-means++ and the mini-batches), a whole
        /// number >= 0.
        #[arg(long, default_value_t = 0, value_name = "SEED", value_parser = parse_seed)]
        seed: u64,
        /// Output: kernel, the parameters (log form), mll, log_prior, objective, status,
        /// jitter, iterations, seconds. svgp: z, q_mu, q_sqrt and the hyperparameters, elbo
        /// instead of mll, and loss (T, B).
        #[arg(long, value_name = "F.npz")]
        out: String,
        #[command(flatten)]
        compute: Compute,
    },
    /// Posterior mean, variances and bounds (and samples) at test points.
    #[command(allow_negative_numbers = true)]
    Predict {
        /// Training data: x (B, N, D) or (N, D), y (B, N), optional mask (B, N) of 0/1, optional
        /// known noise variances yvar (B, N). Not needed for SVGP parameters.
        #[arg(long, value_name = "D.npz")]
        data: Option<String>,
        /// Hyperparameters: log_lengthscale (B, D), log_outputscale (B,), log_noise (B,), mean
        /// (B,), log_alpha (B,) for rq, optional kernel (a fit's output is one); or SVGP
        /// parameters (an S.npz, with z), whose posterior needs no data.
        #[arg(long, value_name = "P.npz")]
        params: String,
        /// Test inputs: x (M, D) shared by every member, or (B, M, D).
        #[arg(long, value_name = "T.npz")]
        test: String,
        /// Posterior samples of f per member, written as `samples` (S, B, M); a whole number >= 0.
        #[arg(long, value_name = "S", value_parser = parse_count)]
        samples: Option<usize>,
        /// Seed of the samples, a whole number >= 0.
        #[arg(long, default_value_t = 0, value_name = "SEED", value_parser = parse_seed)]
        seed: u64,
        /// Also write the full posterior covariance `covariance` (B, M, M).
        #[arg(long)]
        covariance: bool,
        /// Output: mean, var (of f), var_y, lower, upper (B, M), status, jitter (B,).
        #[arg(long, value_name = "O.npz")]
        out: String,
        #[command(flatten)]
        compute: Compute,
    },
    /// Print any batchgp .npz file as a table, in natural units.
    ///
    /// Data, parameters or an output file: lengthscale_1..D, outputscale, noise and alpha
    /// instead of their logs, status in words, one row per member (one per member and point
    /// for per-point arrays such as y or a prediction's mean).
    #[command(allow_negative_numbers = true)]
    Show {
        /// The .npz file.
        #[arg(value_name = "FILE.npz")]
        file: String,
        /// Only member B (counted from 0).
        #[arg(long, value_name = "B", value_parser = parse_count)]
        member: Option<usize>,
        /// Comma-separated values (full precision) instead of an aligned table.
        #[arg(long)]
        csv: bool,
    },
    /// Backends found, GPU name, which kernels the build embeds.
    Info {
        #[command(flatten)]
        common: Common,
    },
    /// An embedded example (the Pyro batch-priors case), no files needed.
    Demo {
        /// Folder for the plot (created when missing).
        #[arg(long, default_value = "out/demo", value_name = "DIR")]
        out_dir: String,
        #[command(flatten)]
        common: Common,
    },
}

/// A line on stdout. A closed stdout (`batchgp info | head -1`) drops the rest quietly instead
/// of panicking, as `show` does.
macro_rules! say {
    ($($t:tt)*) => {{
        use std::io::Write as _;
        let _ = writeln!(std::io::stdout(), $($t)*);
    }};
}

fn main() -> ExitCode {
    let cli = match Cli::try_parse() {
        Ok(c) => c,
        Err(e) => match e.kind() {
            clap::error::ErrorKind::DisplayHelp
            | clap::error::ErrorKind::DisplayVersion
            | clap::error::ErrorKind::DisplayHelpOnMissingArgumentOrSubcommand => e.exit(),
            _ => {
                // One line: clap's message without its usage block.
                let text = e.render().to_string();
                let message: Vec<&str> = text
                    .lines()
                    .take_while(|l| !l.starts_with("Usage:"))
                    .map(str::trim)
                    .filter(|l| !l.is_empty() && !l.starts_with("For more information"))
                    .collect();
                let message = message.join(" ");
                let message = message.strip_prefix("error: ").unwrap_or(&message);
                let sub = std::env::args()
                    .nth(1)
                    .filter(|a| Cli::command().get_subcommands().any(|c| c.get_name() == a))
                    .map(|a| format!(" {a}"))
                    .unwrap_or_default();
                eprintln!("batchgp: error: {message} (see batchgp{sub} --help)");
                return ExitCode::from(2);
            }
        },
    };
    match run(cli) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("batchgp: error: {e}");
            ExitCode::from(2)
        }
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
/// (`--repeat`: the first run is the warm-up).
fn timed<R>(repeat: usize, f: impl Fn() -> batchgp::Result<R>) -> batchgp::Result<(R, f64, Vec<f64>)> {
    let t = Instant::now();
    let r = f()?;
    let secs = t.elapsed().as_secs_f64();
    let mut seconds = Vec::with_capacity(repeat);
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
/// none of the inputs (compared as canonical paths).
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
        if Path::new(input).canonicalize().is_ok_and(|c| c == target) {
            return Err(bad(format!(
                "{out} is the {flag} file; batchgp never writes over an input (choose another --out)"
            )));
        }
    }
    // Writable: an existing file is opened for writing (not truncated); otherwise a probe file
    // is created in the folder and removed.
    if path.exists() {
        std::fs::OpenOptions::new().write(true).open(path).map_err(|e| bad(format!("{out} cannot be written: {e}")))?;
    } else {
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

/// "(3 ok, 1 ok (jitter), 2 failed)": counts per status, in code order, the nonzero ones.
fn status_counts(status: &[Status]) -> String {
    Status::ALL
        .iter()
        .filter_map(|s| {
            let n = status.iter().filter(|t| *t == s).count();
            (n > 0).then(|| format!("{n} {}", s.text()))
        })
        .collect::<Vec<_>>()
        .join(", ")
}

/// Seconds for people: "12.3 ms", "1.234 s", "2 min 3.4 s".
fn duration(secs: f64) -> String {
    if secs < 1.0 {
        format!("{:.3} ms", secs * 1e3)
    } else if secs < 120.0 {
        format!("{secs:.3} s")
    } else {
        format!("{} min {:.1} s", (secs / 60.0).floor(), secs % 60.0)
    }
}

/// The one line after mll and predict.
fn one_line(
    what: &str,
    status: &[Status],
    secs: f64,
    be: &dyn Backend,
    precision: Precision,
    kernel: Kernel,
) -> String {
    let ok = status.iter().filter(|s| s.is_ok()).count();
    // The counts per status when they say more than "all ok".
    let detail =
        if status.iter().all(|s| *s == Status::Ok) { String::new() } else { format!(" ({})", status_counts(status)) };
    format!(
        "batchgp {what}: {} members, {ok} ok, {} failed{detail}; {} on {} ({}), kernel {kernel}",
        status.len(),
        status.len() - ok,
        duration(secs),
        be.name(),
        precision_name(precision),
    )
}

fn precision_name(p: Precision) -> &'static str {
    match p {
        Precision::F64 => "f64",
        Precision::F32 => "f32",
    }
}

/// The screen after a fit: members converged / at the limit / degenerate / failed with the
/// counts per status and per reason, iterations, time, backend, kernel.
/// What the fit ran with, for its summary.
struct FitSetup<'a> {
    be: &'a dyn Backend,
    precision: Precision,
    optimizer: &'a str,
    restarts: usize,
    out: &'a str,
}

fn fit_summary(r: &FitResult, secs: f64, s: &FitSetup<'_>) -> String {
    let b = r.status.len();
    let group = |set: &[Status]| -> (usize, String) {
        let members: Vec<Status> = r.status.iter().copied().filter(|s| set.contains(s)).collect();
        (members.len(), status_counts(&members))
    };
    let kernel = r.hyperparameters.kernel;
    let mut lines = vec![format!(
        "batchgp fit: {b} members, kernel {kernel}, {}{} on {} ({}), {}, {} evaluation rounds",
        s.optimizer,
        if s.restarts > 0 { format!(" (best of {} starts)", s.restarts + 1) } else { String::new() },
        s.be.name(),
        precision_name(s.precision),
        duration(secs),
        r.rounds
    )];
    for (label, set) in [
        ("converged", &[Status::Ok, Status::Jitter][..]),
        ("at the limit", &[Status::MaxIter][..]),
        ("degenerate (flagged)", &[Status::Degenerate][..]),
        ("failed", &[Status::Failed, Status::Empty][..]),
    ] {
        let (n, detail) = group(set);
        let detail = if n > 0 && set.len() > 1 { format!("  ({detail})") } else { String::new() };
        lines.push(format!("  {label:<24}{n:>8}{detail}"));
    }
    let mut reasons: Vec<(&str, usize)> = Vec::new();
    for t in &r.reason {
        match reasons.iter_mut().find(|(w, _)| *w == t.text()) {
            Some((_, n)) => *n += 1,
            None => reasons.push((t.text(), 1)),
        }
    }
    let reasons: Vec<String> = reasons.iter().map(|(w, n)| format!("{n} {w}")).collect();
    lines.push(format!("  {:<24}{}", "stopped because", reasons.join(", ")));
    let mut it: Vec<usize> = r.iterations.to_vec();
    it.sort_unstable();
    if !it.is_empty() {
        let median = if it.len() % 2 == 1 {
            it[it.len() / 2] as f64
        } else {
            (it[it.len() / 2 - 1] + it[it.len() / 2]) as f64 / 2.0
        };
        lines.push(format!("  {:<24}median {median}, max {}", "iterations", it[it.len() - 1]));
    }
    lines.push(format!("  {:<24}{}", "wrote", s.out));
    lines.join("\n")
}

fn run(cli: Cli) -> batchgp::Result<()> {
    match cli.command {
        Command::Mll { data, params, priors, out, repeat, compute } => {
            check_out(&out, &[("--data", Some(&data)), ("--params", Some(&params)), ("--priors", priors.as_deref())])?;
            let kernel = compute.kernel()?;
            let (be, precision) = setup(&compute.common)?;
            let data = read_data(&data)?;
            let hyp = read_params(&params, data.batch_size(), data.n_dims(), kernel)?;
            let priors = read_priors(&priors)?;
            let request = || {
                let r = MllRequest::new(&data, &hyp).priors(&priors).on(be.as_ref()).precision(precision);
                match compute.max_memory {
                    Some(bytes) => r.max_memory(bytes),
                    None => r,
                }
            };
            let (r, secs, seconds) = timed(repeat, || request().run())?;
            let line = one_line("mll", &r.status, secs, be.as_ref(), precision, hyp.kernel);
            let g = r.gradient.expect("gradient requested");
            let mut o = NpzOut::new();
            o.add1("mll", r.mll)
                .add1("log_prior", r.log_prior)
                .add1("objective", r.objective)
                .add1("status", status_array(&r.status))
                .add1("jitter", r.jitter)
                .add2("grad_log_lengthscale", g.log_lengthscale)
                .add1("grad_log_outputscale", g.log_outputscale)
                .add1("grad_log_noise", g.log_noise)
                .add1("grad_mean", g.mean);
            if let Some(a) = g.log_alpha {
                o.add1("grad_log_alpha", a);
            }
            if repeat > 0 {
                o.add1("seconds", seconds.into());
            }
            o.write(&out)?;
            eprintln!("{line}");
            Ok(())
        }
        Command::Elbo { data, params, priors, out, repeat, compute } => {
            check_out(&out, &[("--data", Some(&data)), ("--params", Some(&params)), ("--priors", priors.as_deref())])?;
            let kernel = compute.kernel()?;
            let (be, precision) = setup_svgp(&compute.common)?;
            let data = read_data(&data)?;
            let params = read_svgp_params(&params, Some((data.batch_size(), data.n_dims())), kernel)?;
            let priors = read_priors(&priors)?;
            let request = || ElboRequest::new(&data, &params).priors(&priors).on(be.as_ref()).precision(precision);
            let (r, secs, seconds) = timed(repeat, || request().run())?;
            let line = one_line("elbo", &r.status, secs, be.as_ref(), precision, params.kernel());
            let g = r.gradient.expect("gradient requested");
            let mut o = NpzOut::new();
            o.add1("elbo", r.elbo)
                .add1("log_prior", r.log_prior)
                .add1("objective", r.objective)
                .add1("status", status_array(&r.status))
                .add1("jitter", r.jitter)
                .add3("grad_z", g.z)
                .add2("grad_q_mu", g.q_mu)
                .add3("grad_q_sqrt", g.q_sqrt)
                .add2("grad_log_lengthscale", g.hyp.log_lengthscale)
                .add1("grad_log_outputscale", g.hyp.log_outputscale)
                .add1("grad_log_noise", g.hyp.log_noise)
                .add1("grad_mean", g.hyp.mean);
            if let Some(a) = g.hyp.log_alpha {
                o.add1("grad_log_alpha", a);
            }
            if repeat > 0 {
                o.add1("seconds", seconds.into());
            }
            o.write(&out)?;
            eprintln!("{line}");
            Ok(())
        }
        Command::Fit {
            data,
            init,
            priors,
            fix,
            model,
            inducing,
            batch_size,
            steps,
            lr,
            optimizer,
            max_iter,
            restarts,
            standardize,
            bounds,
            seed,
            out,
            compute,
        } => {
            check_out(&out, &[("--data", Some(&data)), ("--init", init.as_deref()), ("--priors", priors.as_deref())])?;
            let kernel = compute.kernel()?;
            let svgp = model == "svgp";
            let optimizer_name = optimizer.unwrap_or_else(|| if svgp { "adam" } else { "lbfgs" }.to_string());
            let optimizer: Optimizer = optimizer_name.parse()?;
            if let Some(lr) = lr {
                if !(lr > 0.0 && lr.is_finite()) {
                    return Err(option_error("lr", format!("must be > 0, got {lr}")));
                }
            }
            if !svgp {
                for (flag, given) in [
                    ("--inducing", inducing.is_some()),
                    ("--batch-size", batch_size.is_some()),
                    ("--steps", steps.is_some()),
                ] {
                    if given {
                        return Err(option_error(
                            &flag[2..],
                            format!("{flag} needs --model svgp (exact fits take --max-iter)"),
                        ));
                    }
                }
            }
            let fix_z = fix.iter().any(|f| f.trim() == "z");
            if fix_z && !svgp {
                return Err(option_error("fix", "z (the inducing inputs) needs --model svgp"));
            }
            let mut fixed = Vec::new();
            for f in fix.iter().map(|f| f.trim()).filter(|f| !f.is_empty() && *f != "z") {
                fixed.push(Target::from_name(f).ok_or_else(|| {
                    option_error(
                        "fix",
                        format!(
                            "unknown hyperparameter `{f}` (expected lengthscale, outputscale, noise, mean or alpha)"
                        ),
                    )
                })?);
            }
            let (bounds, hyperparameter_bounds) = cli_bounds::parse(&bounds)?;
            let (be, precision) = if svgp { setup_svgp(&compute.common)? } else { setup(&compute.common)? };
            let data = read_data(&data)?;
            let priors = read_priors(&priors)?;
            if svgp {
                if restarts > 0 || bounds.is_some() || !hyperparameter_bounds.is_empty() || standardize {
                    return Err(option_error("model", "--restarts, --bounds and --standardize are for exact fits"));
                }
                let init = match &init {
                    Some(p) => Some(read_svgp_params(p, Some((data.batch_size(), data.n_dims())), kernel)?),
                    None => None,
                };
                let kernel = init.as_ref().map(|p| p.kernel()).or(kernel).unwrap_or_default();
                let mut observer = ProgressBarObserver::new();
                let mut req = SvgpFitRequest::new(&data)
                    .kernel(kernel)
                    .priors(&priors)
                    .optimizer(optimizer)
                    .steps(steps.unwrap_or(1000))
                    .fix_inducing(fix_z)
                    .seed(seed)
                    .on(be.as_ref())
                    .precision(precision);
                for t in fixed {
                    req = req.fix(t);
                }
                if let Some(p) = &init {
                    req = req.init(p);
                }
                if let Some(m) = inducing {
                    req = req.num_inducing(m);
                }
                if let Some(sz) = batch_size {
                    req = req.batch_size(sz);
                }
                if let Some(lr) = lr {
                    req = req.learning_rate(lr);
                }
                let t = Instant::now();
                let r = req.observer(&mut observer).run()?;
                let secs = t.elapsed().as_secs_f64();
                let mut o = NpzOut::new();
                o.add_svgp(&r.params)
                    .add1("elbo", r.elbo.clone())
                    .add1("log_prior", r.log_prior.clone())
                    .add1("objective", r.objective.clone())
                    .add1("status", status_array(&r.status))
                    .add1("jitter", r.jitter.clone())
                    .add1("iterations", r.iterations.mapv(|v| v as f64))
                    .add2("loss", r.loss.clone())
                    .add1("seconds", ndarray::arr1(&[secs]));
                o.write(&out)?;
                eprintln!(
                    "batchgp fit --model svgp: {} members, M = {}, {}; {} on {} ({}), kernel {kernel}, {optimizer_name}; wrote {out}",
                    r.status.len(),
                    r.params.n_inducing(),
                    status_counts(&r.status),
                    duration(secs),
                    be.name(),
                    precision_name(precision),
                );
                return Ok(());
            }
            let init = match &init {
                Some(p) => Some(read_params(p, data.batch_size(), data.n_dims(), kernel)?),
                None => None,
            };
            let kernel = init.as_ref().map(|h| h.kernel).or(kernel).unwrap_or_default();
            let mut observer = ProgressBarObserver::new();
            let mut req = FitRequest::new(&data)
                .kernel(kernel)
                .learning_rate(lr.unwrap_or(0.1))
                .priors(&priors)
                .optimizer(optimizer)
                .max_iter(max_iter)
                .restarts(restarts)
                .standardize(standardize)
                .seed(seed)
                .on(be.as_ref())
                .precision(precision);
            for t in fixed {
                req = req.fix(t);
            }
            if let Some(h) = &init {
                req = req.init(h);
            }
            if let Some((lo, hi)) = bounds {
                req = req.bounds(lo, hi);
            }
            req = req.hyperparameter_bounds(hyperparameter_bounds);
            if let Some(bytes) = compute.max_memory {
                req = req.max_memory(bytes);
            }
            let t = Instant::now();
            let r = req.observer(&mut observer).run()?;
            let secs = t.elapsed().as_secs_f64();
            let mut o = NpzOut::new();
            o.add_params(&r.hyperparameters)
                .add1("mll", r.mll.clone())
                .add1("log_prior", r.log_prior.clone())
                .add1("objective", r.objective.clone())
                .add1("status", status_array(&r.status))
                .add1("jitter", r.jitter.clone())
                .add1("iterations", r.iterations.mapv(|v| v as f64))
                .add1("seconds", ndarray::arr1(&[secs]));
            o.write(&out)?;
            let setup = FitSetup { be: be.as_ref(), precision, optimizer: &optimizer_name, restarts, out: &out };
            eprintln!("{}", fit_summary(&r, secs, &setup));
            Ok(())
        }
        Command::Predict { data, params, test, samples, seed, covariance, out, compute } => {
            check_out(&out, &[("--data", data.as_deref()), ("--params", Some(&params)), ("--test", Some(&test))])?;
            let kernel = compute.kernel()?;
            let svgp = is_svgp_params(&params)?;
            let (be, precision) = if svgp { setup_svgp(&compute.common)? } else { setup(&compute.common)? };
            let test = read_test(&test)?;
            let opts = PredictOptions {
                precision,
                full_covariance: covariance,
                samples: samples.map(|s| (s, seed)),
                max_memory: compute.max_memory,
                ..Default::default()
            };
            let t = Instant::now();
            let (p, kernel) = if svgp {
                // The SVGP posterior needs no data; when given, its B and D must agree.
                let expect = match &data {
                    Some(d) => {
                        let d = read_data(d)?;
                        Some((d.batch_size(), d.n_dims()))
                    }
                    None => None,
                };
                let params = read_svgp_params(&params, expect, kernel)?;
                (batchgp::svgp::predict(be.as_ref(), &params, &test, &opts)?, params.kernel())
            } else {
                let data = data.as_deref().ok_or_else(|| Error::Missing {
                    array: "--data".into(),
                    context: format!(
                        " ({params} holds exact GP hyperparameters, whose posterior needs the training data)"
                    ),
                })?;
                let data = read_data(data)?;
                let hyp = read_params(&params, data.batch_size(), data.n_dims(), kernel)?;
                (batchgp::predict(be.as_ref(), &data, &hyp, &test, &opts)?, hyp.kernel)
            };
            let secs = t.elapsed().as_secs_f64();
            let line = one_line("predict", &p.status, secs, be.as_ref(), precision, kernel);
            let mut o = NpzOut::new();
            o.add2("mean", p.mean)
                .add2("var", p.var)
                .add2("var_y", p.var_y)
                .add2("lower", p.lower)
                .add2("upper", p.upper)
                .add1("status", status_array(&p.status))
                .add1("jitter", p.jitter);
            if let Some(c) = p.covariance {
                o.add3("covariance", c);
            }
            if let Some(s) = p.samples {
                o.add3("samples", s);
            }
            o.write(&out)?;
            eprintln!("{line}");
            Ok(())
        }
        Command::Show { file, member, csv } => show(&file, member, csv),
        Command::Info { common } => {
            let _: Precision = common.precision.parse()?;
            say!("batchgp {}", env!("CARGO_PKG_VERSION"));
            say!("cpu: {}", backend::cpu::CpuBackend::new().describe());
            say!("kernels: {}", backend::cuda::build_info());
            say!("driver: {}", backend::cuda::probe());
            match backend::cuda::CudaBackend::new() {
                Ok(c) => say!("cuda: usable: {}", c.describe()),
                Err(e) => {
                    say!("cuda: not usable: {e}");
                    // Where a GPU is expected (a lent GPU machine, a GPU CI runner), its absence
                    // is an error, not a fallback.
                    if std::env::var_os("BATCHGP_REQUIRE_CUDA").is_some_and(|v| !v.is_empty() && v != "0") {
                        return Err(e);
                    }
                }
            }
            let chosen = backend::select(common.backend.parse()?)?;
            say!("selected backend: {}", chosen.name());
            Ok(())
        }
        Command::Demo { out_dir, common } => {
            let (be, precision) = setup(&common)?;
            let report = batchgp::demo::run_batch_priors(be.as_ref(), Path::new(&out_dir), precision)?;
            say!("{report}");
            Ok(())
        }
    }
}

// ---------------------------------------------------------------------------------------------
// show

/// How a column's numbers are printed.
#[derive(Clone, Copy, PartialEq)]
enum Kind {
    Number,
    Integer,
    Status,
}

/// One column of the table: a value per member (`per_point` false) or per (member, point).
struct Column {
    name: String,
    kind: Kind,
    per_point: bool,
    /// Indexed by member (and point: member * M + point); text columns hold one value.
    values: Vec<f64>,
    text: Option<String>,
}

/// Names whose 2-d arrays are per member with one column per input dimension.
fn per_dimension(name: &str) -> bool {
    name.contains("lengthscale")
}

fn natural(name: &str) -> Option<&'static str> {
    match name {
        "log_lengthscale" => Some("lengthscale"),
        "log_outputscale" => Some("outputscale"),
        "log_noise" => Some("noise"),
        "log_alpha" => Some("alpha"),
        _ => None,
    }
}

fn show(path: &str, member: Option<usize>, csv: bool) -> batchgp::Result<()> {
    let mut f = Npz::open(path)?;
    let names = f.names().to_vec();
    let mut numeric: Vec<(String, ArrayD<f64>)> = Vec::new();
    let mut texts: Vec<(String, String)> = Vec::new();
    let mut skipped: Vec<String> = Vec::new();
    for name in &names {
        if let Some(s) = f.get_string(name)? {
            texts.push((name.clone(), s));
        } else {
            match f.get(name) {
                Ok(a) => numeric.push((name.clone(), a)),
                Err(e) => skipped.push(format!("{name} not shown ({e})")),
            }
        }
    }
    let find = |n: &str| numeric.iter().find(|(m, _)| m == n).map(|(_, a)| a);
    // B: from the arrays that are per member in every batchgp file.
    let b = ["status", "log_outputscale", "mll", "objective"]
        .iter()
        .find_map(|n| find(n).filter(|a| a.ndim() == 1).map(|a| a.len()))
        .or_else(|| find("y").filter(|a| a.ndim() == 2).map(|a| a.shape()[0]))
        .or_else(|| find("mean").filter(|a| a.ndim() == 2).map(|a| a.shape()[0]))
        .or_else(|| find("x").filter(|a| a.ndim() == 3).map(|a| a.shape()[0]));
    // M: points per member, from the per-point arrays (B, M) or x.
    let m = match b {
        Some(b) => numeric
            .iter()
            .find(|(n, a)| a.ndim() == 2 && a.shape()[0] == b && !per_dimension(n) && n != "x")
            .map(|(_, a)| a.shape()[1])
            .or_else(|| find("x").map(|x| x.shape()[x.ndim() - 2])),
        None => find("x").filter(|x| x.ndim() == 2).map(|x| x.shape()[0]),
    };
    let rows_b = b.unwrap_or(1);
    if let Some(want) = member {
        match b {
            Some(b) if want < b => {}
            Some(b) => {
                return Err(option_error(
                    "member",
                    format!("{path} has {b} members (0 to {}), no member {want}", b.saturating_sub(1)),
                ))
            }
            None => return Err(option_error("member", format!("{path} holds no per-member arrays"))),
        }
    }

    let mut cols: Vec<Column> = Vec::new();
    let mut notes: Vec<String> = skipped;
    for (name, text) in &texts {
        cols.push(Column {
            name: name.clone(),
            kind: Kind::Number,
            per_point: false,
            values: vec![],
            text: Some(text.clone()),
        });
    }
    for (name, a) in &numeric {
        let shape = a.shape().to_vec();
        let exp = natural(name);
        let label = exp.unwrap_or(name).to_string();
        let conv = |v: f64| if exp.is_some() { v.exp() } else { v };
        let kind = match name.as_str() {
            "status" => Kind::Status,
            "iterations" | "restart" | "mask" => Kind::Integer,
            _ => Kind::Number,
        };
        let member_rows = b.is_some_and(|b| shape.first() == Some(&b));
        match shape.len() {
            1 if member_rows && name != "seconds" => cols.push(Column {
                name: label,
                kind,
                per_point: false,
                values: a.iter().map(|v| conv(*v)).collect(),
                text: None,
            }),
            2 if member_rows && per_dimension(name) => {
                for k in 0..shape[1] {
                    cols.push(Column {
                        name: format!("{label}_{}", k + 1),
                        kind,
                        per_point: false,
                        values: (0..shape[0]).map(|r| conv(a[[r, k]])).collect(),
                        text: None,
                    });
                }
            }
            2 if member_rows && Some(shape[1]) == m && name != "x" => cols.push(Column {
                name: label,
                kind,
                per_point: true,
                values: a.iter().map(|v| conv(*v)).collect(),
                text: None,
            }),
            // x (B, M, D), or x (M, D) shared by every member: one column per dimension.
            3 if name == "x" && member_rows && Some(shape[1]) == m => {
                for k in 0..shape[2] {
                    let values =
                        (0..shape[0]).flat_map(|r| (0..shape[1]).map(move |i| (r, i))).map(|(r, i)| a[[r, i, k]]);
                    cols.push(Column {
                        name: format!("x_{}", k + 1),
                        kind,
                        per_point: true,
                        values: values.collect(),
                        text: None,
                    });
                }
            }
            2 if name == "x" && Some(shape[0]) == m => {
                for k in 0..shape[1] {
                    let values = (0..rows_b).flat_map(|_| (0..shape[0]).map(move |i| a[[i, k]]));
                    cols.push(Column {
                        name: format!("x_{}", k + 1),
                        kind,
                        per_point: true,
                        values: values.collect(),
                        text: None,
                    });
                }
            }
            _ if name == "seconds" && a.len() == 1 => {
                notes.push(format!("seconds: {}", a.iter().next().copied().unwrap_or(f64::NAN)))
            }
            _ => notes.push(format!("{name} {shape:?} not shown")),
        }
    }

    let by_point = cols.iter().any(|c| c.per_point);
    let mut header: Vec<String> = Vec::new();
    if b.is_some() {
        header.push("member".into());
    }
    if by_point {
        header.push("point".into());
    }
    header.extend(cols.iter().map(|c| c.name.clone()));
    let members: Vec<usize> = match member {
        Some(w) => vec![w],
        None => (0..rows_b).collect(),
    };
    let points = if by_point { m.unwrap_or(0) } else { 1 };
    let mut rows: Vec<Vec<String>> = Vec::new();
    for &r in &members {
        for i in 0..points {
            let mut row = Vec::with_capacity(header.len());
            if b.is_some() {
                row.push(r.to_string());
            }
            if by_point {
                row.push(i.to_string());
            }
            for c in &cols {
                if let Some(t) = &c.text {
                    row.push(t.clone());
                    continue;
                }
                let v = if c.per_point { c.values[r * points + i] } else { c.values[r] };
                row.push(cell(v, c.kind, csv));
            }
            rows.push(row);
        }
    }

    let mut out = String::new();
    if csv {
        let quote = |s: &str| {
            if s.contains([',', '"', '\n']) {
                format!("\"{}\"", s.replace('"', "\"\""))
            } else {
                s.to_string()
            }
        };
        for row in std::iter::once(&header).chain(rows.iter()) {
            out.push_str(&row.iter().map(|s| quote(s)).collect::<Vec<_>>().join(","));
            out.push('\n');
        }
        for n in &notes {
            eprintln!("{path}: {n}");
        }
    } else {
        let what = match b {
            Some(b) => format!("{b} members"),
            None => format!("{} points", m.unwrap_or(0)),
        };
        out.push_str(&format!("{path}: {what}\n"));
        let widths: Vec<usize> = (0..header.len())
            .map(|j| rows.iter().map(|r| r[j].len()).chain([header[j].len()]).max().unwrap_or(0))
            .collect();
        // Words left-aligned, numbers right-aligned.
        let left: Vec<bool> = (0..header.len() - cols.len())
            .map(|_| false)
            .chain(cols.iter().map(|c| c.text.is_some() || c.kind == Kind::Status))
            .collect();
        let line = |cells: &[String]| -> String {
            let parts: Vec<String> = cells
                .iter()
                .zip(widths.iter().zip(&left))
                .map(|(s, (w, l))| if *l { format!("{s:<w$}") } else { format!("{s:>w$}") })
                .collect();
            parts.join("  ").trim_end().to_string()
        };
        out.push_str(&line(&header));
        out.push('\n');
        for r in &rows {
            out.push_str(&line(r));
            out.push('\n');
        }
        for n in &notes {
            out.push_str(&format!("{n}\n"));
        }
    }
    use std::io::Write;
    let mut stdout = std::io::stdout().lock();
    // A closed pipe (`| head`) ends the output quietly.
    let _ = stdout.write_all(out.as_bytes());
    Ok(())
}

/// One cell: status codes in words; integers as such; numbers with 6 significant digits in a
/// table and in full (shortest round-trip) precision in CSV.
fn cell(v: f64, kind: Kind, csv: bool) -> String {
    match kind {
        Kind::Status => match (v >= 0.0 && v.fract() == 0.0 && v < 256.0).then(|| Status::from_code(v as u8)).flatten()
        {
            Some(s) => s.text().to_string(),
            None => format!("unknown ({v})"),
        },
        Kind::Integer if v.is_finite() && v.fract() == 0.0 => format!("{v:.0}"),
        _ if !v.is_finite() => {
            if v.is_nan() {
                "nan".into()
            } else if v > 0.0 {
                "inf".into()
            } else {
                "-inf".into()
            }
        }
        _ if csv => {
            let a = v.abs();
            if a == 0.0 || (1e-4..1e15).contains(&a) {
                format!("{v}")
            } else {
                format!("{v:e}")
            }
        }
        _ => {
            let a = v.abs();
            if a == 0.0 {
                "0".into()
            } else if (1e-3..1e5).contains(&a) {
                let decimals = (5 - a.log10().floor() as i32).max(0) as usize;
                let t = format!("{v:.decimals$}");
                if t.contains('.') {
                    t.trim_end_matches('0').trim_end_matches('.').to_string()
                } else {
                    t
                }
            } else {
                format!("{v:.5e}")
            }
        }
    }
}
