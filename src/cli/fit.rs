//! `batchgp fit`: fits every member, exact GPs (L-BFGS or Adam, restarts, bounds) or SVGPs
//! (`--model svgp`: Adam or L-BFGS steps, mini-batches, inducing points), and writes the result.

use super::summary::{duration, fit_summary, precision_name, status_counts, FitSetup};
use super::{check_out, option_error, parse_count, parse_seed, read_priors, setup, setup_svgp, Compute};
use batchgp::fit::DEFAULT_RESTARTS;
use batchgp::io::{read_data, read_params_with_kernel as read_params, read_svgp_params, status_array, NpzOut};
use batchgp::{FitRequest, Optimizer, ProgressBarObserver, SvgpFitRequest, Target};
use clap::Args;
use std::time::Instant;

#[derive(Args)]
pub struct FitArgs {
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
    /// Extra starts per member from spread points (the best is kept), a whole number >= 0
    /// (default: the library's DEFAULT_RESTARTS, 3; exact fits only).
    #[arg(long, value_name = "R", value_parser = parse_count)]
    restarts: Option<usize>,
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
}

pub fn run(a: FitArgs) -> batchgp::Result<()> {
    let FitArgs {
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
    } = a;
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
        for (flag, given) in
            [("--inducing", inducing.is_some()), ("--batch-size", batch_size.is_some()), ("--steps", steps.is_some())]
        {
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
                format!("unknown hyperparameter `{f}` (expected lengthscale, outputscale, noise, mean or alpha)"),
            )
        })?);
    }
    let (bounds, hyperparameter_bounds) = super::bounds::parse(&bounds)?;
    let (be, precision) = if svgp { setup_svgp(&compute.common)? } else { setup(&compute.common)? };
    let data = read_data(&data)?;
    let priors = read_priors(&priors)?;
    if svgp {
        if restarts.is_some() || bounds.is_some() || !hyperparameter_bounds.is_empty() || standardize {
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
        o.add_svgp(&r.model.params)
            .add1("elbo", r.model.elbo.clone())
            .add1("log_prior", r.log_prior.clone())
            .add1("objective", r.objective.clone())
            .add1("status", status_array(&r.status))
            .add1("jitter", r.jitter.clone())
            .add1("iterations", r.iterations.mapv(|v| v as f64))
            .add2("loss", r.model.loss.clone())
            .add1("seconds", ndarray::arr1(&[secs]));
        o.write(&out)?;
        eprintln!(
            "batchgp fit --model svgp: {} members, M = {}, {}; {} on {} ({}), kernel {kernel}, {optimizer_name}; wrote {out}",
            r.status.len(),
            r.model.params.n_inducing(),
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
    let restarts = restarts.unwrap_or(DEFAULT_RESTARTS);
    let mut observer = ProgressBarObserver::new();
    let mut req = FitRequest::new(&data)
        .kernel(kernel)
        .learning_rate(lr.unwrap_or(0.1))
        .priors(&priors)
        .optimizer(optimizer)
        .max_iter(max_iter)
        .restarts(restarts)
        .standardize_removed(standardize)?
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
    o.add_params(&r.model.hyperparameters)
        .add1("mll", r.model.mll.clone())
        .add1("log_prior", r.log_prior.clone())
        .add1("objective", r.objective.clone())
        .add1("status", status_array(&r.status))
        .add1("jitter", r.jitter.clone())
        .add1("iterations", r.iterations.mapv(|v| v as f64))
        // Which start each member kept, how many of its starts reached that optimum, and the
        // starts per member: a member whose starts disagree may deserve more restarts.
        .add1("restart", r.restart.mapv(|v| v as f64))
        .add1("reached_best", r.reached_best.mapv(|v| v as f64))
        .add1("starts", ndarray::arr1(&[r.starts as f64]))
        .add1("seconds", ndarray::arr1(&[secs]));
    o.write(&out)?;
    let setup = FitSetup { be: be.as_ref(), precision, optimizer: &optimizer_name, restarts, out: &out };
    eprintln!("{}", fit_summary(&r, secs, &setup));
    Ok(())
}
