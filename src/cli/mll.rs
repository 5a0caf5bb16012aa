//! `batchgp mll`: the exact GP's MLL, log prior, objective and gradient at given hyperparameters.

use super::summary::one_line;
use super::{
    add_hyperparameter_gradient, check_out, finish_evaluation, parse_count, read_priors, setup, timed, Compute,
};
use batchgp::io::{read_data, read_params_with_kernel as read_params, status_array, NpzOut};
use batchgp::MllRequest;
use clap::Args;

#[derive(Args)]
pub struct MllArgs {
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
}

pub fn run(a: MllArgs) -> batchgp::Result<()> {
    let MllArgs { data, params, priors, out, repeat, compute } = a;
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
    let (r, secs, seconds) = timed(repeat, compute.max_memory, || request().run())?;
    let line = one_line("mll", &r.status, secs, be.as_ref(), precision, hyp.kernel);
    let g = r.gradient.expect("gradient requested");
    let mut o = NpzOut::new();
    o.add1("mll", r.mll)
        .add1("log_prior", r.log_prior)
        .add1("objective", r.objective)
        .add1("status", status_array(&r.status))
        .add1("jitter", r.jitter);
    add_hyperparameter_gradient(&mut o, g);
    finish_evaluation(o, repeat, seconds, &out, &line)
}
