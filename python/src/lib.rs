//! `batchgp._batchgp`: the Rust half of the Python package. Every function takes numpy arrays
//! (f64 or f32, any memory order) and plain options, releases the GIL for all the work, and
//! returns a dict of f64 numpy arrays that the Python layer (batchgp/) wraps in result classes.
//! A rejected request raises `batchgp.BatchGPError` (a ValueError) whose message is the core's
//! `Error` Display: the same line the CLI prints.

mod arrays;
mod runtime;

use arrays::{prior_views, status_codes, DataViews, FloatArray, ParamsArg, PriorArg, SvgpParamsArg};
use batchgp::backend::{self, Backend, MllGradient, PredictOptions, Prediction};
use batchgp::fit::Bounds;
use batchgp::prior::PriorParam;
use batchgp::svgp::{ElboRequest, SvgpParams};
use batchgp::{FitRequest, Hyperparameters, MllRequest, Optimizer, Precision, Status, SvgpFitRequest, Target};
use ndarray::{Array3, Axis, Ix2, Ix3};
use numpy::IntoPyArray;
use pyo3::create_exception;
use pyo3::exceptions::PyValueError;
use pyo3::prelude::*;
use pyo3::types::PyDict;

create_exception!(
    batchgp,
    BatchGPError,
    PyValueError,
    "A rejected request: shapes that do not agree, non-finite data outside the mask, invalid\nhyperparameters, priors or options, an unavailable backend. The message is the CLI's."
);

/// The core's error as a Python exception.
fn rejected(e: batchgp::Error) -> PyErr {
    BatchGPError::new_err(e.to_string())
}

fn data_views<'a>(
    x: &'a FloatArray<'_>,
    y: &'a FloatArray<'_>,
    mask: &'a Option<FloatArray<'_>>,
    yvar: &'a Option<FloatArray<'_>>,
) -> DataViews<'a> {
    DataViews { x: x.view(), y: y.view(), mask: mask.as_ref().map(|m| m.view()), yvar: yvar.as_ref().map(|v| v.view()) }
}

/// MLL, log prior, objective and the objective's gradient at `params`.
#[pyfunction]
#[pyo3(signature = (x, y, params, mask, yvar, kernel, priors, backend, precision))]
#[allow(clippy::too_many_arguments)]
fn mll<'py>(
    py: Python<'py>,
    x: FloatArray<'py>,
    y: FloatArray<'py>,
    params: ParamsArg<'py>,
    mask: Option<FloatArray<'py>>,
    yvar: Option<FloatArray<'py>>,
    kernel: Option<String>,
    priors: Vec<PriorArg<'py>>,
    backend: String,
    precision: String,
) -> PyResult<Bound<'py, PyDict>> {
    let data = data_views(&x, &y, &mask, &yvar);
    let params = params.views();
    let prior_spec = prior_views(&priors);
    let report = py
        .detach(|| {
            runtime::in_pool(|| {
                let data = data.dataset()?;
                let hyp = params.hyperparameters(kernel.as_deref())?;
                let priors = arrays::priors(&prior_spec)?;
                let precision: Precision = precision.parse()?;
                let be = runtime::backend(&backend)?;
                MllRequest::new(&data, &hyp).priors(&priors).on(be.as_ref()).precision(precision).run()
            })
        })
        .map_err(rejected)?;
    let out = PyDict::new(py);
    let g = report.gradient.expect("the gradient is always requested");
    out.set_item("mll", report.mll.into_pyarray(py))?;
    out.set_item("log_prior", report.log_prior.into_pyarray(py))?;
    out.set_item("objective", report.objective.into_pyarray(py))?;
    out.set_item("status", status_codes(&report.status).into_pyarray(py))?;
    out.set_item("jitter", report.jitter.into_pyarray(py))?;
    set_hyperparameter_gradient(&out, g)?;
    Ok(out)
}

/// Posterior at `x_test` ((M, D) or (B, M, D)).
#[pyfunction]
#[pyo3(signature = (x, y, params, x_test, mask, yvar, kernel, samples, seed, full_covariance, backend, precision, first_member=0))]
#[allow(clippy::too_many_arguments)]
fn predict<'py>(
    py: Python<'py>,
    x: FloatArray<'py>,
    y: FloatArray<'py>,
    params: ParamsArg<'py>,
    x_test: FloatArray<'py>,
    mask: Option<FloatArray<'py>>,
    yvar: Option<FloatArray<'py>>,
    kernel: Option<String>,
    samples: usize,
    seed: u64,
    full_covariance: bool,
    backend: String,
    precision: String,
    first_member: u64,
) -> PyResult<Bound<'py, PyDict>> {
    let data = data_views(&x, &y, &mask, &yvar);
    let params = params.views();
    let test = x_test.view();
    let p = py
        .detach(|| {
            runtime::in_pool(|| {
                let data = data.dataset()?;
                let hyp = params.hyperparameters(kernel.as_deref())?;
                let test = test.inputs("test x", "(M, D) or (B, M, D)")?;
                let opts = PredictOptions {
                    precision: precision.parse()?,
                    full_covariance,
                    samples: (samples > 0).then_some((samples, seed)),
                    first_member,
                    ..Default::default()
                };
                let be = runtime::backend(&backend)?;
                batchgp::predict(be.as_ref(), &data, &hyp, &test, &opts)
            })
        })
        .map_err(rejected)?;
    prediction_dict(py, p)
}

/// A prediction as the dict `batchgp.Prediction` wraps.
fn prediction_dict(py: Python<'_>, p: Prediction) -> PyResult<Bound<'_, PyDict>> {
    let out = PyDict::new(py);
    out.set_item("mean", p.mean.into_pyarray(py))?;
    out.set_item("var", p.var.into_pyarray(py))?;
    out.set_item("var_y", p.var_y.into_pyarray(py))?;
    out.set_item("lower", p.lower.into_pyarray(py))?;
    out.set_item("upper", p.upper.into_pyarray(py))?;
    out.set_item("status", status_codes(&p.status).into_pyarray(py))?;
    out.set_item("jitter", p.jitter.into_pyarray(py))?;
    if let Some(c) = p.covariance {
        out.set_item("covariance", c.into_pyarray(py))?;
    }
    if let Some(s) = p.samples {
        out.set_item("samples", s.into_pyarray(py))?;
    }
    Ok(out)
}

/// Draws from the prior of every member at `x` ((N, D) or (B, N, D)): (samples, B, N).
#[pyfunction]
#[pyo3(signature = (x, params, kernel, samples, seed, noise, backend, precision))]
#[allow(clippy::too_many_arguments)]
fn sample_prior<'py>(
    py: Python<'py>,
    x: FloatArray<'py>,
    params: ParamsArg<'py>,
    kernel: Option<String>,
    samples: usize,
    seed: u64,
    noise: bool,
    backend: String,
    precision: String,
) -> PyResult<Bound<'py, PyDict>> {
    let params = params.views();
    let xv = x.view();
    let (draws, status) = py
        .detach(|| {
            runtime::in_pool(|| {
                if samples == 0 {
                    return Err(batchgp::Error::InvalidOption {
                        name: "samples".into(),
                        reason: "must be >= 1".into(),
                    });
                }
                let hyp = params.hyperparameters(kernel.as_deref())?;
                let x = xv.inputs("x", "(N, D) or (B, N, D)")?;
                let precision: Precision = precision.parse()?;
                let be = runtime::backend(&backend)?;
                batchgp::sample_prior(be.as_ref(), &x, &hyp, samples, seed, noise, precision)
            })
        })
        .map_err(rejected)?;
    let out = PyDict::new(py);
    out.set_item("samples", draws.into_pyarray(py))?;
    out.set_item("status", status_codes(&status).into_pyarray(py))?;
    Ok(out)
}

/// Fits every member; see `batchgp.fit`.
#[pyfunction]
#[pyo3(signature = (x, y, mask, yvar, kernel, priors, init, fix, optimizer, max_iter, restarts, standardize, bounds, seed, backend, precision, progress, first_member=0))]
#[allow(clippy::too_many_arguments)]
fn fit<'py>(
    py: Python<'py>,
    x: FloatArray<'py>,
    y: FloatArray<'py>,
    mask: Option<FloatArray<'py>>,
    yvar: Option<FloatArray<'py>>,
    kernel: String,
    priors: Vec<PriorArg<'py>>,
    init: Option<ParamsArg<'py>>,
    fix: Vec<String>,
    optimizer: String,
    max_iter: Option<usize>,
    restarts: usize,
    standardize: bool,
    bounds: Option<BoundsArg<'py>>,
    seed: u64,
    backend: String,
    precision: String,
    progress: Option<Py<PyAny>>,
    first_member: u64,
) -> PyResult<Bound<'py, PyDict>> {
    let data = data_views(&x, &y, &mask, &yvar);
    let init = init.as_ref().map(|p| p.views());
    let prior_spec = prior_views(&priors);
    let (bounds, per_kind) = bounds_arg(bounds).map_err(rejected)?;
    let job = |observer: &mut dyn batchgp::FitObserver| -> batchgp::Result<batchgp::FitResult> {
        let data = data.dataset()?;
        let kernel: batchgp::Kernel = kernel.parse()?;
        let priors = arrays::priors(&prior_spec)?;
        let init = init.as_ref().map(|p| p.hyperparameters(None)).transpose()?;
        let optimizer: Optimizer = optimizer.parse()?;
        let precision: Precision = precision.parse()?;
        let be = runtime::backend(&backend)?;
        let mut req = FitRequest::new(&data)
            .kernel(kernel)
            .priors(&priors)
            .optimizer(optimizer)
            .restarts(restarts)
            .standardize(standardize)
            .seed(seed)
            .first_member(first_member)
            .on(be.as_ref())
            .precision(precision);
        if let Some(n) = max_iter {
            req = req.max_iter(n);
        }
        if let Some((lo, hi)) = bounds {
            req = req.bounds(lo, hi);
        }
        req = req.hyperparameter_bounds(per_kind.clone());
        if let Some(h) = &init {
            req = req.init(h);
        }
        for f in &fix {
            req = req.fix(fix_target(f, "lengthscale, outputscale, noise, mean or alpha")?);
        }
        req.observer(observer).run()
    };
    let r = runtime::fit_interruptible(py, progress, job)?.map_err(rejected)?;
    let out = PyDict::new(py);
    set_hyperparameters(&out, &r.hyperparameters)?;
    out.set_item("reason", r.reason.iter().map(|t| t.text()).collect::<Vec<_>>())?;
    out.set_item("outcome", (0..r.status.len()).map(|b| r.describe(b)).collect::<Vec<_>>())?;
    out.set_item("status", status_codes(&r.status).into_pyarray(py))?;
    out.set_item("mll", r.mll.into_pyarray(py))?;
    out.set_item("log_prior", r.log_prior.into_pyarray(py))?;
    out.set_item("objective", r.objective.into_pyarray(py))?;
    out.set_item("jitter", r.jitter.into_pyarray(py))?;
    out.set_item("iterations", r.iterations.mapv(|v| v as i64).into_pyarray(py))?;
    out.set_item("restart", r.restart.mapv(|v| v as i64).into_pyarray(py))?;
    out.set_item("rounds", r.rounds)?;
    Ok(out)
}

fn option_error(name: &str, reason: impl Into<String>) -> batchgp::Error {
    batchgp::Error::InvalidOption { name: name.into(), reason: reason.into() }
}

/// The hyperparameter kind named `name` for `fix`, or the CLI's message listing `expected`.
/// `bounds` as `batchgp.fit` passes it: the single box (low, high), or (name, low, high) per
/// kind with low and high broadcast as prior parameters are.
#[derive(FromPyObject)]
enum BoundsArg<'py> {
    Single((f64, f64)),
    PerKind(Vec<(String, FloatArray<'py>, FloatArray<'py>)>),
}

fn bounds_arg(arg: Option<BoundsArg<'_>>) -> batchgp::Result<(Option<(f64, f64)>, Bounds)> {
    let kinds = match arg {
        None => return Ok((None, Bounds::none())),
        Some(BoundsArg::Single(b)) => return Ok((Some(b), Bounds::none())),
        Some(BoundsArg::PerKind(kinds)) => kinds,
    };
    let param = |a: &FloatArray<'_>| -> batchgp::Result<PriorParam> {
        let a = a.view().to_f64();
        match a.ndim() {
            0 => Ok(PriorParam::Scalar(a[[]])),
            1 => Ok(PriorParam::List(a.iter().copied().collect())),
            2 => Ok(PriorParam::Nested(a.outer_iter().map(|r| r.iter().copied().collect()).collect())),
            _ => {
                Err(option_error("bounds", format!("low and high must have at most 2 dimensions, got {:?}", a.shape())))
            }
        }
    };
    let per = kinds.iter().try_fold(Bounds::none(), |acc, (name, lo, hi)| {
        let t = Target::from_name(name).ok_or_else(|| {
            option_error(
                "bounds",
                format!("unknown hyperparameter `{name}` (expected lengthscale, outputscale, noise, mean or alpha)"),
            )
        })?;
        Ok(acc.with(t, param(lo)?, param(hi)?))
    })?;
    Ok((None, per))
}

fn fix_target(name: &str, expected: &str) -> batchgp::Result<Target> {
    Target::from_name(name)
        .ok_or_else(|| option_error("fix", format!("unknown hyperparameter `{name}` (expected {expected})")))
}

/// grad_log_lengthscale, grad_log_outputscale, grad_log_noise, grad_mean and [grad_log_alpha]
/// into `out`.
fn set_hyperparameter_gradient(out: &Bound<'_, PyDict>, g: MllGradient) -> PyResult<()> {
    let py = out.py();
    out.set_item("grad_log_lengthscale", g.log_lengthscale.into_pyarray(py))?;
    out.set_item("grad_log_outputscale", g.log_outputscale.into_pyarray(py))?;
    out.set_item("grad_log_noise", g.log_noise.into_pyarray(py))?;
    out.set_item("grad_mean", g.mean.into_pyarray(py))?;
    if let Some(a) = g.log_alpha {
        out.set_item("grad_log_alpha", a.into_pyarray(py))?;
    }
    Ok(())
}

/// kernel, lengthscale, outputscale, noise, mean and [alpha] into `out`.
fn set_hyperparameters(out: &Bound<'_, PyDict>, h: &Hyperparameters) -> PyResult<()> {
    let py = out.py();
    out.set_item("kernel", h.kernel.name())?;
    out.set_item("lengthscale", h.lengthscale.clone().into_pyarray(py))?;
    out.set_item("outputscale", h.outputscale.clone().into_pyarray(py))?;
    out.set_item("noise", h.noise.clone().into_pyarray(py))?;
    out.set_item("mean", h.mean.clone().into_pyarray(py))?;
    if let Some(a) = &h.alpha {
        out.set_item("alpha", a.clone().into_pyarray(py))?;
    }
    Ok(())
}

/// z, q_mu, q_sqrt (its lower triangle, zeros above) and the hyperparameters into `out`.
fn set_svgp_params(out: &Bound<'_, PyDict>, p: &SvgpParams) -> PyResult<()> {
    let py = out.py();
    set_hyperparameters(out, &p.hyp)?;
    out.set_item("z", p.z.clone().into_pyarray(py))?;
    out.set_item("q_mu", p.q_mu.clone().into_pyarray(py))?;
    let q = Array3::from_shape_fn(p.q_sqrt.dim(), |(b, i, j)| if j <= i { p.q_sqrt[[b, i, j]] } else { 0.0 });
    out.set_item("q_sqrt", q.into_pyarray(py))?;
    Ok(())
}

/// The SVGP ELBO, log prior, objective and the objective's gradient at `params`.
#[pyfunction]
#[pyo3(signature = (x, y, params, mask, yvar, kernel, priors, backend, precision))]
#[allow(clippy::too_many_arguments)]
fn svgp_elbo<'py>(
    py: Python<'py>,
    x: FloatArray<'py>,
    y: FloatArray<'py>,
    params: SvgpParamsArg<'py>,
    mask: Option<FloatArray<'py>>,
    yvar: Option<FloatArray<'py>>,
    kernel: Option<String>,
    priors: Vec<PriorArg<'py>>,
    backend: String,
    precision: String,
) -> PyResult<Bound<'py, PyDict>> {
    let data = data_views(&x, &y, &mask, &yvar);
    let params = params.views();
    let prior_spec = prior_views(&priors);
    let report = py
        .detach(|| {
            runtime::in_pool(|| {
                let data = data.dataset()?;
                let params = params.params(kernel.as_deref())?;
                let priors = arrays::priors(&prior_spec)?;
                let precision: Precision = precision.parse()?;
                let be = runtime::svgp_backend(&backend)?;
                ElboRequest::new(&data, &params).priors(&priors).on(be.as_ref()).precision(precision).run()
            })
        })
        .map_err(rejected)?;
    let out = PyDict::new(py);
    let g = report.gradient.expect("the gradient is always requested");
    out.set_item("elbo", report.elbo.into_pyarray(py))?;
    out.set_item("log_prior", report.log_prior.into_pyarray(py))?;
    out.set_item("objective", report.objective.into_pyarray(py))?;
    out.set_item("status", status_codes(&report.status).into_pyarray(py))?;
    out.set_item("jitter", report.jitter.into_pyarray(py))?;
    out.set_item("grad_z", g.z.into_pyarray(py))?;
    out.set_item("grad_q_mu", g.q_mu.into_pyarray(py))?;
    out.set_item("grad_q_sqrt", g.q_sqrt.into_pyarray(py))?;
    set_hyperparameter_gradient(&out, g.hyp)?;
    Ok(out)
}

/// The SVGP posterior at `x_test` ((M, D) or (B, M, D)); no training data needed.
#[pyfunction]
#[pyo3(signature = (params, x_test, kernel, samples, seed, full_covariance, backend, precision))]
#[allow(clippy::too_many_arguments)]
fn svgp_predict<'py>(
    py: Python<'py>,
    params: SvgpParamsArg<'py>,
    x_test: FloatArray<'py>,
    kernel: Option<String>,
    samples: usize,
    seed: u64,
    full_covariance: bool,
    backend: String,
    precision: String,
) -> PyResult<Bound<'py, PyDict>> {
    let params = params.views();
    let test = x_test.view();
    let p = py
        .detach(|| {
            runtime::in_pool(|| {
                let params = params.params(kernel.as_deref())?;
                let test = test.inputs("test x", "(M, D) or (B, M, D)")?;
                let opts = PredictOptions {
                    precision: precision.parse()?,
                    full_covariance,
                    samples: (samples > 0).then_some((samples, seed)),
                    ..Default::default()
                };
                let be = runtime::svgp_backend(&backend)?;
                batchgp::svgp::predict(be.as_ref(), &params, &test, &opts)
            })
        })
        .map_err(rejected)?;
    prediction_dict(py, p)
}

/// Inducing inputs (M, D) shared or (B, M, D) as (B, M, D) for `b` members of dimension `d`.
fn inducing_inputs(z: &arrays::View<'_>, b: usize, d: usize) -> batchgp::Result<Array3<f64>> {
    let expected = format!("(M, {d}) or ({b}, M, {d})");
    let z = match z.shape().len() {
        2 => {
            let z = z.to::<Ix2>("z", &expected)?;
            let (m, zd) = z.dim();
            z.insert_axis(Axis(0)).broadcast((b, m, zd)).expect("broadcast to B").to_owned()
        }
        _ => z.to::<Ix3>("z", &expected)?,
    };
    let (zb, m, zd) = z.dim();
    if zb != b || zd != d || m == 0 {
        return Err(batchgp::Error::Shape { array: "z".into(), expected, actual: z.shape().to_vec() });
    }
    Ok(z)
}

/// Fits every member's SVGP; see `batchgp.svgp.fit`.
#[pyfunction]
#[pyo3(signature = (x, y, mask, yvar, kernel, priors, init, z, num_inducing, fix, optimizer, steps, lr, batch_size, seed, backend, precision, progress))]
#[allow(clippy::too_many_arguments)]
fn svgp_fit<'py>(
    py: Python<'py>,
    x: FloatArray<'py>,
    y: FloatArray<'py>,
    mask: Option<FloatArray<'py>>,
    yvar: Option<FloatArray<'py>>,
    kernel: String,
    priors: Vec<PriorArg<'py>>,
    init: Option<SvgpParamsArg<'py>>,
    z: Option<FloatArray<'py>>,
    num_inducing: Option<usize>,
    fix: Vec<String>,
    optimizer: String,
    steps: usize,
    lr: f64,
    batch_size: Option<usize>,
    seed: u64,
    backend: String,
    precision: String,
    progress: Option<Py<PyAny>>,
) -> PyResult<Bound<'py, PyDict>> {
    let data = data_views(&x, &y, &mask, &yvar);
    let init = init.as_ref().map(|p| p.views());
    let z = z.as_ref().map(|a| a.view());
    let prior_spec = prior_views(&priors);
    let job = |observer: &mut dyn batchgp::FitObserver| -> batchgp::Result<batchgp::SvgpFitResult> {
        let data = data.dataset()?;
        let kernel: batchgp::Kernel = kernel.parse()?;
        let priors = arrays::priors(&prior_spec)?;
        let optimizer: Optimizer = optimizer.parse()?;
        let precision: Precision = precision.parse()?;
        let start = match (&init, &z) {
            (Some(_), Some(_)) => return Err(option_error("z", "give z or init, not both (init holds its own z)")),
            (Some(p), None) => Some(p.params(None)?),
            (None, Some(z)) => {
                let z = inducing_inputs(z, data.batch_size(), data.n_dims())?;
                if num_inducing.is_some_and(|m| m != z.shape()[1]) {
                    return Err(option_error(
                        "num_inducing",
                        format!("{} contradicts z's {} inducing points", num_inducing.unwrap_or(0), z.shape()[1]),
                    ));
                }
                let hyp = FitRequest::default_init(&data).with_kernel(kernel);
                Some(SvgpParams::whitened_prior(z, hyp))
            }
            (None, None) => None,
        };
        if start.is_some() && z.is_none() && num_inducing.is_some() {
            return Err(option_error("num_inducing", "init holds its own inducing inputs"));
        }
        let be = runtime::svgp_backend(&backend)?;
        let mut req = SvgpFitRequest::new(&data)
            .kernel(kernel)
            .priors(&priors)
            .optimizer(optimizer)
            .steps(steps)
            .learning_rate(lr)
            .seed(seed)
            .on(be.as_ref())
            .precision(precision);
        for f in &fix {
            if f == "z" {
                req = req.fix_inducing(true);
            } else {
                req = req.fix(fix_target(f, "z, lengthscale, outputscale, noise, mean or alpha")?);
            }
        }
        if let Some(p) = &start {
            req = req.init(p);
        }
        if let Some(m) = num_inducing {
            req = req.num_inducing(m);
        }
        if let Some(s) = batch_size {
            req = req.batch_size(s);
        }
        req.observer(observer).run()
    };
    let r = runtime::fit_interruptible(py, progress, job)?.map_err(rejected)?;
    let out = PyDict::new(py);
    set_svgp_params(&out, &r.params)?;
    let outcome: Vec<String> = r
        .status
        .iter()
        .zip(&r.reason)
        .map(|(s, t)| match s {
            Status::MaxIter => format!("not converged ({})", t.text()),
            s => s.text().to_string(),
        })
        .collect();
    out.set_item("reason", r.reason.iter().map(|t| t.text()).collect::<Vec<_>>())?;
    out.set_item("outcome", outcome)?;
    out.set_item("status", status_codes(&r.status).into_pyarray(py))?;
    out.set_item("elbo", r.elbo.into_pyarray(py))?;
    out.set_item("log_prior", r.log_prior.into_pyarray(py))?;
    out.set_item("objective", r.objective.into_pyarray(py))?;
    out.set_item("jitter", r.jitter.into_pyarray(py))?;
    out.set_item("iterations", r.iterations.mapv(|v| v as i64).into_pyarray(py))?;
    out.set_item("loss", r.loss.into_pyarray(py))?;
    Ok(out)
}

/// The canonical name of a kernel, or BatchGPError with the CLI's message.
#[pyfunction]
fn parse_kernel(name: &str) -> PyResult<&'static str> {
    name.parse::<batchgp::Kernel>().map(|k| k.name()).map_err(rejected)
}

/// Sets the number of threads of all later numerical work (n >= 1).
#[pyfunction]
fn set_num_threads(n: usize) -> PyResult<()> {
    runtime::set_num_threads(n).map_err(rejected)
}

/// What this build and machine offer.
#[pyfunction]
fn info(py: Python<'_>) -> PyResult<Bound<'_, PyDict>> {
    let (gpu, cuda_reason) = py.detach(runtime::cuda_status);
    let out = PyDict::new(py);
    let mut backends = vec!["cpu"];
    if gpu.is_some() {
        backends.push("cuda");
    }
    out.set_item("version", env!("CARGO_PKG_VERSION"))?;
    out.set_item("backends", backends)?;
    out.set_item("default_backend", if gpu.is_some() { "cuda" } else { "cpu" })?;
    out.set_item("gpu", gpu)?;
    out.set_item("cuda", cuda_reason.unwrap_or_else(|| "usable".into()))?;
    out.set_item("kernels", backend::cuda::build_info())?;
    out.set_item("kernel_targets", backend::cuda::embedded_targets().to_vec())?;
    out.set_item("driver", py.detach(backend::cuda::probe))?;
    out.set_item("cpu", runtime::in_pool(|| backend::cpu::CpuBackend::new().describe()))?;
    out.set_item("threads", runtime::num_threads())?;
    Ok(out)
}

#[pymodule]
fn _batchgp(m: &Bound<'_, PyModule>) -> PyResult<()> {
    m.add("BatchGPError", m.py().get_type::<BatchGPError>())?;
    m.add("__version__", env!("CARGO_PKG_VERSION"))?;
    // Status codes in words (index = code), as `batchgp show` prints them.
    m.add("STATUS_TEXT", batchgp::Status::ALL.iter().map(|s| s.text()).collect::<Vec<_>>())?;
    m.add_function(wrap_pyfunction!(mll, m)?)?;
    m.add_function(wrap_pyfunction!(predict, m)?)?;
    m.add_function(wrap_pyfunction!(sample_prior, m)?)?;
    m.add_function(wrap_pyfunction!(fit, m)?)?;
    m.add_function(wrap_pyfunction!(svgp_elbo, m)?)?;
    m.add_function(wrap_pyfunction!(svgp_predict, m)?)?;
    m.add_function(wrap_pyfunction!(svgp_fit, m)?)?;
    m.add_function(wrap_pyfunction!(parse_kernel, m)?)?;
    m.add_function(wrap_pyfunction!(set_num_threads, m)?)?;
    m.add_function(wrap_pyfunction!(info, m)?)?;
    Ok(())
}
