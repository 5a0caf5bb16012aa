//! `batchgp elbo`: the SVGP's ELBO, log prior, objective and gradient at given SVGP parameters.

use super::summary::one_line;
use super::{
    add_hyperparameter_gradient, check_out, finish_evaluation, parse_count, read_priors, setup_svgp, timed, Compute,
};
use batchgp::io::{read_data, read_svgp_params, status_array, NpzOut};
use batchgp::svgp::ElboRequest;
use clap::Args;

#[derive(Args)]
pub struct ElboArgs {
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
}

pub fn run(a: ElboArgs) -> batchgp::Result<()> {
    let ElboArgs { data, params, priors, out, repeat, compute } = a;
    check_out(&out, &[("--data", Some(&data)), ("--params", Some(&params)), ("--priors", priors.as_deref())])?;
    let kernel = compute.kernel()?;
    let (be, precision) = setup_svgp(&compute.common)?;
    let data = read_data(&data)?;
    let params = read_svgp_params(&params, Some((data.batch_size(), data.n_dims())), kernel)?;
    let priors = read_priors(&priors)?;
    let request = || ElboRequest::new(&data, &params).priors(&priors).on(be.as_ref()).precision(precision);
    let (r, secs, seconds) = timed(repeat, compute.max_memory, || request().run())?;
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
        .add3("grad_q_sqrt", g.q_sqrt);
    add_hyperparameter_gradient(&mut o, g.hyp);
    finish_evaluation(o, repeat, seconds, &out, &line)
}
