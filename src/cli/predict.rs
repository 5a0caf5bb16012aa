//! `batchgp predict`: the posterior mean, variances, bounds (and samples, covariance) at test
//! points, from exact GP hyperparameters and their training data or from SVGP parameters alone.

use super::summary::one_line;
use super::{check_out, parse_count, parse_seed, setup, setup_svgp, Compute};
use batchgp::backend::PredictOptions;
use batchgp::io::{is_svgp_params, read_data, read_params_with_kernel as read_params, read_svgp_params, read_test};
use batchgp::io::{status_array, NpzOut};
use batchgp::Error;
use clap::Args;
use std::time::Instant;

#[derive(Args)]
pub struct PredictArgs {
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
    /// Also write the full posterior covariance `covariance` (B, M, M) (the Python API's
    /// `full_covariance`).
    #[arg(long)]
    full_covariance: bool,
    /// The old name of --full-covariance, accepted with a note for this release.
    #[arg(long, hide = true)]
    covariance: bool,
    /// Output: mean, var (of f), var_y, lower, upper (B, M), status, jitter (B,).
    #[arg(long, value_name = "O.npz")]
    out: String,
    #[command(flatten)]
    compute: Compute,
}

pub fn run(a: PredictArgs) -> batchgp::Result<()> {
    let PredictArgs { data, params, test, samples, seed, full_covariance, covariance, out, compute } = a;
    if covariance {
        eprintln!("batchgp predict: note: --covariance is now --full-covariance (as Python's full_covariance); the old name goes in the next release");
    }
    check_out(&out, &[("--data", data.as_deref()), ("--params", Some(&params)), ("--test", Some(&test))])?;
    let kernel = compute.kernel()?;
    let svgp = is_svgp_params(&params)?;
    let (be, precision) = if svgp { setup_svgp(&compute.common)? } else { setup(&compute.common)? };
    let test = read_test(&test)?;
    let opts = PredictOptions {
        precision,
        full_covariance: full_covariance || covariance,
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
            context: format!(" ({params} holds exact GP hyperparameters, whose posterior needs the training data)"),
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
