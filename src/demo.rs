//! The embedded demo (`batchgp demo`, `cargo run --release --example batch_priors`): Pyro's
//! "Batching Gaussian Processes" case, end to end and without files.
//!
//! Four GPs share 264 inputs in 3 dimensions whose scales differ tenfold (x_0 in [0, 500],
//! x_1 and x_2 in [0, 50]). Each GP's outputs are drawn from a GP prior with its own
//! lengthscales, outputscale, noise and mean ([`sample_prior`] with noise, fixed seed). The four
//! are then fitted as one batch by MAP with a Gamma(2, rate) prior per GP and per lengthscale
//! dimension (prior means near, but not at, the generating values; GP 0 uses the rates of Pyro's
//! original, Gamma(2, 0.0075) and Gamma(2, 0.075)) and a Uniform(10, 150) prior on the
//! outputscale, which is also a hard bound. The report compares fitted and generating values,
//! and a figure shows one posterior slice per GP.

use crate::backend::{Backend, PredictOptions};
use crate::data::{Dataset, Hyperparameters, Inputs, Precision, Status};
use crate::error::Result;
use crate::fit::{FitRequest, ProgressBarObserver};
use crate::model::predict;
use crate::plot::{self, Panel, PosteriorPanel};
use crate::prior::{Prior, Priors};
use crate::sample::sample_prior;
use ndarray::{Array1, Array2};
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use std::fmt;
use std::path::{Path, PathBuf};
use std::time::Instant;

/// Number of training points, as in Pyro's example.
pub const N_POINTS: usize = 264;
/// Upper ends of the input ranges per dimension (the lower ends are 0).
pub const X_RANGE: [f64; 3] = [500.0, 50.0, 50.0];
/// Bounds of the uniform prior on the outputscale.
pub const OUTPUTSCALE_BOUNDS: (f64, f64) = (10.0, 150.0);
/// Concentration of every Gamma prior on a lengthscale.
pub const GAMMA_CONCENTRATION: f64 = 2.0;
const SEED: u64 = 2024;
/// Training points shown in a slice's panel: those within this many lengthscales of it.
const NEAR: f64 = 0.4;

/// The generating ("true") hyperparameters of the four GPs.
pub fn batch_priors_truth() -> Hyperparameters {
    Hyperparameters {
        kernel: crate::Kernel::Rbf,
        lengthscale: ndarray::arr2(&[[250.0, 25.0, 25.0], [120.0, 12.0, 35.0], [60.0, 40.0, 10.0], [180.0, 8.0, 20.0]]),
        outputscale: ndarray::arr1(&[60.0, 30.0, 100.0, 20.0]),
        noise: ndarray::arr1(&[1.0, 0.5, 2.0, 0.2]),
        mean: ndarray::arr1(&[0.0, 5.0, -10.0, 2.0]),
        alpha: None,
    }
}

/// Rates of the Gamma(2, rate) lengthscale priors, (B, D): GP 0 has Pyro's rates; the others
/// put the prior mean (2 / rate) at 1.2, 0.85 and 1.1 times the generating lengthscale.
pub fn batch_priors_rates() -> Array2<f64> {
    let truth = batch_priors_truth().lengthscale;
    let factor = [f64::NAN, 1.2, 0.85, 1.1];
    Array2::from_shape_fn(truth.dim(), |(b, d)| {
        if b == 0 {
            [0.0075, 0.075, 0.075][d]
        } else {
            GAMMA_CONCENTRATION / (factor[b] * truth[[b, d]])
        }
    })
}

/// The priors of the demo: Gamma(2, rate) per GP and lengthscale dimension (B lists of D rates),
/// Uniform(10, 150) on the outputscale.
pub fn batch_priors_priors() -> Priors {
    let rates: Vec<Vec<f64>> = batch_priors_rates().outer_iter().map(|r| r.to_vec()).collect();
    Priors::none()
        .with(crate::Target::Lengthscale, Prior::gamma(GAMMA_CONCENTRATION, rates))
        .with(crate::Target::Outputscale, Prior::uniform(OUTPUTSCALE_BOUNDS.0, OUTPUTSCALE_BOUNDS.1))
}

/// The demo's data: x (264, 3) uniform on [0, 500] x [0, 50] x [0, 50] shared by the four GPs,
/// y (4, 264) one prior draw (with noise) per GP at [`batch_priors_truth`]. Deterministic.
///
/// # Errors
/// Only those of the backend.
pub fn batch_priors_data(backend: &dyn Backend, precision: Precision) -> Result<Dataset> {
    let mut rng = ChaCha8Rng::seed_from_u64(SEED);
    let x = Array2::from_shape_fn((N_POINTS, 3), |(_, d)| rng.random::<f64>() * X_RANGE[d]);
    let truth = batch_priors_truth();
    let (y, _) = sample_prior(backend, &Inputs::Shared(x.clone()), &truth, 1, SEED, true, precision)?;
    Dataset::new(x, y.index_axis(ndarray::Axis(0), 0).to_owned())
}

/// What [`run_batch_priors`] found.
#[derive(Debug, Clone)]
pub struct DemoReport {
    /// The backend that ran, as it describes itself.
    pub backend: String,
    pub precision: Precision,
    /// Generating hyperparameters (4 GPs, 3 dimensions).
    pub truth: Hyperparameters,
    /// (B, D) rates of the Gamma(2, rate) lengthscale priors.
    pub prior_rates: Array2<f64>,
    /// Fitted (MAP) hyperparameters.
    pub fitted: Hyperparameters,
    pub status: Vec<Status>,
    /// L-BFGS iterations per GP.
    pub iterations: Array1<usize>,
    /// (B,) MLL at the fitted point.
    pub mll: Array1<f64>,
    /// (B,) MLL + log prior at the fitted point.
    pub objective: Array1<f64>,
    /// Wall-clock seconds of the fit.
    pub fit_seconds: f64,
    /// The PNG written: one posterior slice per GP.
    pub plot: PathBuf,
}

/// Runs the demo on `backend`: draws the data, fits the four GPs as one batch with their priors
/// (a progress bar on stderr when it is a terminal), and writes `batch_priors.png` into `out_dir`
/// (created if needed): one panel per GP, the posterior along x_0 with x_1 and x_2 held at their
/// medians (mean, 2-sd band of y, the training points near that slice, and the posterior mean
/// under the generating hyperparameters for comparison).
///
/// # Errors
/// Those of the backend, and [`crate::Error::Io`] when the figure cannot be written.
pub fn run_batch_priors(backend: &dyn Backend, out_dir: &Path, precision: Precision) -> Result<DemoReport> {
    let data = batch_priors_data(backend, precision)?;
    let priors = batch_priors_priors();
    let truth = batch_priors_truth();
    let mut bar = ProgressBarObserver::new();
    let start = Instant::now();
    let fit = FitRequest::new(&data).priors(&priors).on(backend).precision(precision).observer(&mut bar).run()?;
    let fit_seconds = start.elapsed().as_secs_f64();
    let plot =
        plot_slices(backend, &data, &fit.model.hyperparameters, &truth, precision, &out_dir.join("batch_priors.png"))?;
    Ok(DemoReport {
        backend: backend.describe(),
        precision,
        truth,
        prior_rates: batch_priors_rates(),
        fitted: fit.model.hyperparameters,
        status: fit.status,
        iterations: fit.iterations,
        mll: fit.model.mll,
        objective: fit.objective,
        fit_seconds,
        plot,
    })
}

fn median(mut v: Vec<f64>) -> f64 {
    v.sort_by(f64::total_cmp);
    let n = v.len();
    if n % 2 == 1 {
        v[n / 2]
    } else {
        0.5 * (v[n / 2 - 1] + v[n / 2])
    }
}

/// One panel per GP: the posterior along x_0, x_1 and x_2 at their medians.
fn plot_slices(
    backend: &dyn Backend,
    data: &Dataset,
    fitted: &Hyperparameters,
    truth: &Hyperparameters,
    precision: Precision,
    path: &Path,
) -> Result<PathBuf> {
    let x = data.x().member(0).to_owned();
    let med = [median(x.column(1).to_vec()), median(x.column(2).to_vec())];
    let grid = plot::linspace(0.0, X_RANGE[0], 200);
    let test = Array2::from_shape_fn((grid.len(), 3), |(i, d)| if d == 0 { grid[i] } else { med[d - 1] });
    let test = Inputs::Shared(test);
    let opts = PredictOptions { precision, ..Default::default() };
    let post = predict(backend, data, fitted, &test, &opts)?;
    let post_true = predict(backend, data, truth, &test, &opts)?;
    let panels = (0..data.batch_size())
        .map(|b| {
            // "Near the slice": within 0.4 fitted lengthscales of it in (x_1, x_2), where the
            // kernel's correlation with the slice is above exp(-0.08) = 0.92.
            let l = fitted.lengthscale.row(b);
            let near: Vec<(f64, f64)> = (0..data.n_points())
                .filter(|&i| ((x[[i, 1]] - med[0]) / l[1]).hypot((x[[i, 2]] - med[1]) / l[2]) < NEAR)
                .map(|i| (x[[i, 0]], data.y()[[b, i]]))
                .collect();
            Panel::Posterior(PosteriorPanel {
                title: format!(
                    "GP {b}: l = ({}, {}, {}), s = {}, noise = {}",
                    sig3(l[0]),
                    sig3(l[1]),
                    sig3(l[2]),
                    sig3(fitted.outputscale[b]),
                    sig3(fitted.noise[b])
                ),
                x_label: format!("x0   (x1 = {:.1}, x2 = {:.1})", med[0], med[1]),
                y_label: "y".into(),
                x: grid.clone(),
                mean: post.mean.row(b).to_vec(),
                lower: post.lower.row(b).to_vec(),
                upper: post.upper.row(b).to_vec(),
                points: near,
                reference: Some(grid.iter().zip(post_true.mean.row(b)).map(|(a, m)| (*a, *m)).collect()),
                ..Default::default()
            })
        })
        .collect::<Vec<_>>();
    plot::figure(
        path,
        "Four GPs fitted as one batch, each with its own priors: posterior along x0",
        &plot::posterior_keys(
            &format!("data within {NEAR} lengthscales of the slice"),
            Some("posterior mean with the generating hyperparameters"),
        ),
        &panels,
        plot::Grid::new(2, (560, 400)),
    )
}

/// Three significant digits, without a trailing exponent for ordinary magnitudes.
fn sig3(v: f64) -> String {
    if !v.is_finite() {
        return format!("{v}");
    }
    let a = v.abs();
    if a >= 100.0 {
        format!("{v:.0}")
    } else if a >= 10.0 {
        format!("{v:.1}")
    } else if a >= 1.0 {
        format!("{v:.2}")
    } else if a >= 0.01 || a == 0.0 {
        format!("{v:.3}")
    } else {
        format!("{v:.2e}")
    }
}

/// Three significant digits in plain notation, trailing zeros dropped (0.0075, 0.0139).
fn plain3(v: f64) -> String {
    if !(v.is_finite() && v != 0.0) {
        return format!("{v}");
    }
    let digits = (2 - v.abs().log10().floor() as i32).max(0) as usize;
    let s = format!("{v:.digits$}");
    if s.contains('.') {
        s.trim_end_matches('0').trim_end_matches('.').to_string()
    } else {
        s
    }
}

impl fmt::Display for DemoReport {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let (b, d) = self.fitted.lengthscale.dim();
        writeln!(
            f,
            "Batching Gaussian processes (Pyro's example): {b} GPs, {N_POINTS} shared points in {d} dimensions,"
        )?;
        writeln!(
            f,
            "fitted as one batch (MAP, L-BFGS) on {} ({:?}) in {:.2} s.",
            self.backend, self.precision, self.fit_seconds
        )?;
        writeln!(
            f,
            "Priors: lengthscale[d] ~ Gamma({GAMMA_CONCENTRATION}, rate) per GP and dimension; outputscale ~ Uniform({}, {}).",
            OUTPUTSCALE_BOUNDS.0, OUTPUTSCALE_BOUNDS.1
        )?;
        for m in 0..b {
            writeln!(f)?;
            writeln!(
                f,
                "GP {m}: {}, {} iterations, mll {:.2}, mll + log prior {:.2}",
                status_word(self.status[m]),
                self.iterations[m],
                self.mll[m],
                self.objective[m]
            )?;
            writeln!(f, "  {:<16}{:>10}{:>10}{:>8}   prior", "hyperparameter", "true", "fitted", "ratio")?;
            let row = |f: &mut fmt::Formatter<'_>, name: &str, t: f64, v: f64, prior: String| {
                let ratio = if name != "mean" && t != 0.0 { format!("{:.2}", v / t) } else { "-".into() };
                writeln!(f, "  {name:<16}{:>10}{:>10}{ratio:>8}   {prior}", sig3(t), sig3(v))
            };
            for k in 0..d {
                let rate = self.prior_rates[[m, k]];
                row(
                    f,
                    &format!("lengthscale[{k}]"),
                    self.truth.lengthscale[[m, k]],
                    self.fitted.lengthscale[[m, k]],
                    format!(
                        "Gamma({GAMMA_CONCENTRATION}, {}), mean {}",
                        plain3(rate),
                        sig3(GAMMA_CONCENTRATION / rate)
                    ),
                )?;
            }
            let (lo, hi) = OUTPUTSCALE_BOUNDS;
            row(
                f,
                "outputscale",
                self.truth.outputscale[m],
                self.fitted.outputscale[m],
                format!("Uniform({lo}, {hi})"),
            )?;
            row(f, "noise", self.truth.noise[m], self.fitted.noise[m], "none".into())?;
            row(f, "mean", self.truth.mean[m], self.fitted.mean[m], "none".into())?;
        }
        writeln!(f)?;
        write!(f, "Plot: {}", self.plot.display())
    }
}

/// A member's status in words.
pub fn status_word(s: Status) -> &'static str {
    match s {
        Status::Ok => "converged",
        Status::Jitter => "converged (with jitter)",
        Status::MaxIter => "stopped at the iteration limit",
        Status::Failed => "FAILED",
        Status::Empty => "empty (no observed point)",
        Status::Degenerate => "degenerate (flagged)",
    }
}
