//! `batchgp._batchgp`: the Rust half of the Python package. Every function takes numpy arrays
//! (f64 or f32, any memory order) and plain options, releases the GIL for all the work, and
//! returns a dict of f64 numpy arrays that the Python layer (batchgp/) wraps in result classes.
//! A rejected request raises `batchgp.BatchGPError` (a ValueError) whose message is the core's
//! `Error` Display: the same line the CLI prints.

mod arrays;
mod runtime;

use arrays::{prior_views, status_codes, DataViews, FloatArray, ParamsArg, PriorArg};
use batchgp::backend::{self, Backend, PredictOptions};
use batchgp::{FitRequest, MllRequest, Optimizer, Precision, Target};
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
    out.set_item("grad_log_lengthscale", g.log_lengthscale.into_pyarray(py))?;
    out.set_item("grad_log_outputscale", g.log_outputscale.into_pyarray(py))?;
    out.set_item("grad_log_noise", g.log_noise.into_pyarray(py))?;
    out.set_item("grad_mean", g.mean.into_pyarray(py))?;
    if let Some(a) = g.log_alpha {
        out.set_item("grad_log_alpha", a.into_pyarray(py))?;
    }
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
    bounds: Option<(f64, f64)>,
    seed: u64,
    backend: String,
    precision: String,
    progress: Option<Py<PyAny>>,
    first_member: u64,
) -> PyResult<Bound<'py, PyDict>> {
    let data = data_views(&x, &y, &mask, &yvar);
    let init = init.as_ref().map(|p| p.views());
    let prior_spec = prior_views(&priors);
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
        if let Some(h) = &init {
            req = req.init(h);
        }
        for f in &fix {
            let t = Target::from_name(f).ok_or_else(|| batchgp::Error::InvalidOption {
                name: "fix".into(),
                reason: format!(
                    "unknown hyperparameter `{f}` (expected lengthscale, outputscale, noise, mean or alpha)"
                ),
            })?;
            req = req.fix(t);
        }
        req.observer(observer).run()
    };
    let r = runtime::fit_interruptible(py, progress, job)?.map_err(rejected)?;
    let h = &r.hyperparameters;
    let out = PyDict::new(py);
    out.set_item("kernel", h.kernel.name())?;
    out.set_item("lengthscale", h.lengthscale.clone().into_pyarray(py))?;
    out.set_item("outputscale", h.outputscale.clone().into_pyarray(py))?;
    out.set_item("noise", h.noise.clone().into_pyarray(py))?;
    out.set_item("mean", h.mean.clone().into_pyarray(py))?;
    if let Some(a) = &h.alpha {
        out.set_item("alpha", a.clone().into_pyarray(py))?;
    }
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
    m.add_function(wrap_pyfunction!(parse_kernel, m)?)?;
    m.add_function(wrap_pyfunction!(set_num_threads, m)?)?;
    m.add_function(wrap_pyfunction!(info, m)?)?;
    Ok(())
}
