//! The `batchgp` command line: a thin shell over the library on .npz files (DESIGN.md
//! section 7). Exit status 0 when the request ran (failed members are in `status`), 2 for a
//! rejected request, with one line on stderr.

use batchgp::backend::{self, Backend, BackendChoice, PredictOptions};
use batchgp::io::{read_data, read_params, read_test, status_array, NpzOut};
use batchgp::{FitRequest, MllRequest, Optimizer, Precision, Priors, ProgressBarObserver, Target};
use clap::{Args, Parser, Subcommand};
use std::process::ExitCode;
use std::time::Instant;

#[derive(Parser)]
#[command(name = "batchgp", version, about = "Fit and predict with many independent exact Gaussian processes at once")]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Args, Clone)]
struct Common {
    /// auto uses the GPU when one is usable, else the CPU.
    #[arg(long, default_value = "auto")]
    backend: String,
    /// Arithmetic precision: f64 (default) or f32 (faster, ~1e-4 relative).
    #[arg(long, default_value = "f64")]
    precision: String,
}

#[derive(Subcommand)]
enum Command {
    /// MLL, log prior, objective and its gradient at given hyperparameters.
    Mll {
        #[arg(long)]
        data: String,
        #[arg(long)]
        params: String,
        #[arg(long)]
        priors: Option<String>,
        #[arg(long)]
        out: String,
        /// Time R evaluations after one warm-up; their wall times go to `seconds` (R,).
        #[arg(long, default_value_t = 0)]
        repeat: usize,
        #[command(flatten)]
        common: Common,
    },
    /// Fit every member (MAP with priors, else maximum likelihood).
    Fit {
        #[arg(long)]
        data: String,
        #[arg(long)]
        init: Option<String>,
        #[arg(long)]
        priors: Option<String>,
        /// Comma-separated kinds held at their initial value: lengthscale,outputscale,noise,mean.
        #[arg(long, value_delimiter = ',')]
        fix: Vec<String>,
        #[arg(long, default_value = "lbfgs")]
        optimizer: String,
        #[arg(long, default_value_t = 1000)]
        max_iter: usize,
        #[arg(long, default_value_t = 0)]
        restarts: usize,
        /// Fit on y standardised per member; results are reported in the data's units.
        #[arg(long)]
        standardize: bool,
        /// Box bounds LOW,HIGH on every positive hyperparameter (natural units), as
        /// scikit-learn's; L-BFGS then runs as L-BFGS-B on a boxed problem.
        #[arg(long, value_name = "LOW,HIGH")]
        bounds: Option<String>,
        /// Seed of the restarts' spread.
        #[arg(long, default_value_t = 0)]
        seed: u64,
        #[arg(long)]
        out: String,
        #[command(flatten)]
        common: Common,
    },
    /// Posterior mean, variances and bounds (and samples) at test points.
    Predict {
        #[arg(long)]
        data: String,
        #[arg(long)]
        params: String,
        #[arg(long)]
        test: String,
        /// Posterior samples of f per member, written as `samples` (S, B, M).
        #[arg(long)]
        samples: Option<usize>,
        #[arg(long, default_value_t = 0)]
        seed: u64,
        /// Also write the full posterior covariance `covariance` (B, M, M).
        #[arg(long)]
        covariance: bool,
        #[arg(long)]
        out: String,
        #[command(flatten)]
        common: Common,
    },
    /// Backends found, GPU name, which kernels the build embeds.
    Info {
        #[command(flatten)]
        common: Common,
    },
    /// An embedded example (the Pyro batch-priors case), no files needed.
    Demo {
        /// Folder for the plot.
        #[arg(long, default_value = "out/demo")]
        out_dir: String,
        #[command(flatten)]
        common: Common,
    },
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    match run(cli) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("batchgp: error: {e}");
            ExitCode::from(2)
        }
    }
}

fn setup(c: &Common) -> batchgp::Result<(Box<dyn Backend>, Precision)> {
    let precision: Precision = c.precision.parse()?;
    let choice: BackendChoice = c.backend.parse()?;
    Ok((backend::select(choice)?, precision))
}

fn read_priors(path: &Option<String>) -> batchgp::Result<Priors> {
    match path {
        None => Ok(Priors::none()),
        Some(p) => {
            let text = std::fs::read_to_string(p)
                .map_err(|e| batchgp::Error::Io { path: p.clone(), reason: e.to_string() })?;
            Priors::from_toml(&text)
        }
    }
}

fn run(cli: Cli) -> batchgp::Result<()> {
    match cli.command {
        Command::Mll { data, params, priors, out, repeat, common } => {
            let (be, precision) = setup(&common)?;
            let data = read_data(&data)?;
            let hyp = read_params(&params, data.batch_size(), data.n_dims())?;
            let priors = read_priors(&priors)?;
            let request = || MllRequest::new(&data, &hyp).priors(&priors).on(be.as_ref()).precision(precision);
            let r = request().run()?;
            let mut seconds = Vec::with_capacity(repeat);
            for _ in 0..repeat {
                let t = Instant::now();
                std::hint::black_box(request().run()?);
                seconds.push(t.elapsed().as_secs_f64());
            }
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
            if repeat > 0 {
                o.add1("seconds", seconds.into());
            }
            o.write(&out)
        }
        Command::Fit {
            data,
            init,
            priors,
            fix,
            optimizer,
            max_iter,
            restarts,
            standardize,
            bounds,
            seed,
            out,
            common,
        } => {
            let (be, precision) = setup(&common)?;
            let data = read_data(&data)?;
            let priors = read_priors(&priors)?;
            let optimizer: Optimizer = optimizer.parse()?;
            let init = match &init {
                Some(p) => Some(read_params(p, data.batch_size(), data.n_dims())?),
                None => None,
            };
            let mut observer = ProgressBarObserver::new();
            let mut req = FitRequest::new(&data)
                .priors(&priors)
                .optimizer(optimizer)
                .max_iter(max_iter)
                .restarts(restarts)
                .standardize(standardize)
                .seed(seed)
                .on(be.as_ref())
                .precision(precision);
            for f in fix.iter().filter(|f| !f.is_empty()) {
                let t = Target::from_name(f.trim()).ok_or_else(|| batchgp::Error::InvalidOption {
                    name: "fix".into(),
                    reason: format!("unknown hyperparameter `{f}` (expected lengthscale, outputscale, noise or mean)"),
                })?;
                req = req.fix(t);
            }
            if let Some(h) = &init {
                req = req.init(h);
            }
            if let Some(b) = &bounds {
                let bad = || batchgp::Error::InvalidOption {
                    name: "bounds".into(),
                    reason: format!("expected LOW,HIGH, got `{b}`"),
                };
                let v: Vec<f64> =
                    b.split(',').map(|t| t.trim().parse::<f64>().map_err(|_| bad())).collect::<Result<_, _>>()?;
                let [lo, hi] = v[..] else { return Err(bad()) };
                req = req.bounds(lo, hi);
            }
            let t = Instant::now();
            let r = req.observer(&mut observer).run()?;
            let secs = t.elapsed().as_secs_f64();
            let mut o = NpzOut::new();
            o.add_params(&r.hyperparameters)
                .add1("mll", r.mll)
                .add1("log_prior", r.log_prior)
                .add1("objective", r.objective)
                .add1("status", status_array(&r.status))
                .add1("jitter", r.jitter)
                .add1("iterations", r.iterations.mapv(|v| v as f64))
                .add1("seconds", ndarray::arr1(&[secs]));
            o.write(&out)
        }
        Command::Predict { data, params, test, samples, seed, covariance, out, common } => {
            let (be, precision) = setup(&common)?;
            let data = read_data(&data)?;
            let hyp = read_params(&params, data.batch_size(), data.n_dims())?;
            let test = read_test(&test)?;
            let opts = PredictOptions { precision, full_covariance: covariance, samples: samples.map(|s| (s, seed)) };
            let p = batchgp::predict(be.as_ref(), &data, &hyp, &test, &opts)?;
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
            o.write(&out)
        }
        Command::Info { common } => {
            let _: Precision = common.precision.parse()?;
            println!("batchgp {}", env!("CARGO_PKG_VERSION"));
            println!("cpu: {}", backend::cpu::CpuBackend::new().describe());
            println!("kernels: {}", backend::cuda::build_info());
            println!("driver: {}", backend::cuda::probe());
            match backend::cuda::CudaBackend::new() {
                Ok(c) => println!("cuda: usable: {}", c.describe()),
                Err(e) => println!("cuda: not usable: {e}"),
            }
            let chosen = backend::select(common.backend.parse()?)?;
            println!("selected backend: {}", chosen.name());
            Ok(())
        }
        Command::Demo { out_dir, common } => {
            let (be, precision) = setup(&common)?;
            let report = batchgp::demo::run_batch_priors(be.as_ref(), std::path::Path::new(&out_dir), precision)?;
            println!("{report}");
            Ok(())
        }
    }
}
