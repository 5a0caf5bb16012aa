//! `batchgp._batchgp`: the Rust half of the Python package. Every function takes numpy arrays
//! (f64 or f32, any memory order) and plain options, releases the GIL for all the work, and
//! returns a dict of f64 numpy arrays that the Python layer (batchgp/) wraps in result classes.
//! One `fit`, `evaluate` and `predict` serve every model (fit.rs, models.rs): the model is the
//! one the parameters are for (`batchgp.Params`: the exact GP, `batchgp.SvgpParams`: the SVGP).
//! A rejected request raises `batchgp.BatchGPError` (a ValueError) whose message is the core's
//! `Error` Display: the same line the CLI prints.

mod arrays;
mod fit;
mod models;
mod runtime;

use arrays::{status_codes, FloatArray, ParamsArg};
use batchgp::backend::{self, Backend};
use batchgp::Precision;
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
pub(crate) fn rejected(e: batchgp::Error) -> PyErr {
    BatchGPError::new_err(e.to_string())
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

pub(crate) fn option_error(name: &str, reason: impl Into<String>) -> batchgp::Error {
    batchgp::Error::InvalidOption { name: name.into(), reason: reason.into() }
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
    m.add("DEFAULT_RESTARTS", batchgp::fit::DEFAULT_RESTARTS)?;
    // Status codes in words (index = code), as `batchgp show` prints them.
    m.add("STATUS_TEXT", batchgp::Status::ALL.iter().map(|s| s.text()).collect::<Vec<_>>())?;
    m.add_function(wrap_pyfunction!(models::evaluate, m)?)?;
    m.add_function(wrap_pyfunction!(models::predict, m)?)?;
    m.add_function(wrap_pyfunction!(fit::fit, m)?)?;
    m.add_function(wrap_pyfunction!(sample_prior, m)?)?;
    m.add_function(wrap_pyfunction!(parse_kernel, m)?)?;
    m.add_function(wrap_pyfunction!(set_num_threads, m)?)?;
    m.add_function(wrap_pyfunction!(info, m)?)?;
    Ok(())
}
