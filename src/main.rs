//! The `batchgp` command line: a thin shell over the library on .npz files (docs/design.md sections 7,
//! 10 and 14). Exit status 0 when the request ran (failed members are in `status`), 2 for a
//! rejected request, with one line on stderr. Output paths are checked before any work, an
//! output never overwrites an input, and an output is written whole or not at all
//! (`batchgp::io::write_atomically`). This file parses and dispatches; each command lives in its
//! module under src/cli/.

mod cli;

use clap::{CommandFactory, Parser, Subcommand};
use cli::{demo, elbo, fit, info, mll, predict, show};
use std::process::ExitCode;

#[derive(Parser)]
#[command(
    name = "batchgp",
    version,
    about = "Fit and predict with many independent exact Gaussian processes at once",
    after_help = "Files are .npz (numpy's np.savez); arrays may be any float or integer type (bool only for a \
                  mask); outputs are f64, written whole or not at all.\n\
                  Exit status: 0 when the request ran (failed members are in `status`), 2 when it was rejected."
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// MLL, log prior, objective and its gradient at given hyperparameters.
    #[command(allow_negative_numbers = true)]
    Mll(mll::MllArgs),
    /// SVGP ELBO, log prior, objective and its gradient at given SVGP parameters
    /// (docs/design.md section 11).
    #[command(allow_negative_numbers = true)]
    Elbo(elbo::ElboArgs),
    /// Fit every member (MAP with priors, else maximum likelihood).
    #[command(allow_negative_numbers = true)]
    Fit(fit::FitArgs),
    /// Posterior mean, variances and bounds (and samples) at test points.
    #[command(allow_negative_numbers = true)]
    Predict(predict::PredictArgs),
    /// Print any batchgp .npz file as a table, in natural units.
    ///
    /// Data, parameters or an output file: lengthscale_1..D, outputscale, noise and alpha
    /// instead of their logs, status in words, one row per member (one per member and point
    /// for per-point arrays such as y or a prediction's mean).
    #[command(allow_negative_numbers = true)]
    Show(show::ShowArgs),
    /// Backends found, GPU name, which kernels the build embeds.
    Info(info::InfoArgs),
    /// An embedded example (the Pyro batch-priors case), no files needed.
    Demo(demo::DemoArgs),
}

fn main() -> ExitCode {
    // A write past `ulimit -f` then fails with EFBIG (reported, the old output kept) instead of
    // the signal killing the process half way through the file.
    #[cfg(unix)]
    // SAFETY: setting a signal's disposition to SIG_IGN, before any thread is started.
    unsafe {
        libc::signal(libc::SIGXFSZ, libc::SIG_IGN);
    }
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
    match run(cli.command) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("batchgp: error: {e}");
            ExitCode::from(2)
        }
    }
}

fn run(command: Command) -> batchgp::Result<()> {
    match command {
        Command::Mll(a) => mll::run(a),
        Command::Elbo(a) => elbo::run(a),
        Command::Fit(a) => fit::run(a),
        Command::Predict(a) => predict::run(a),
        Command::Show(a) => show::run(a),
        Command::Info(a) => info::run(a),
        Command::Demo(a) => demo::run(a),
    }
}
