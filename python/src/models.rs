//! One evaluate and one predict for every model: the exact GP (a `batchgp.Params`) and the
//! SVGP (a `batchgp.SvgpParams`), chosen by the parameters passed. What the models share (the
//! data, priors, precision and backend, the report's objective, log prior, status and jitter,
//! the hyperparameters' gradient, a prediction's arrays) is read and written here once.

use crate::arrays::{self, prior_views, status_codes, DataViews, FloatArray, ModelParams, ModelParamsArg, PriorArg};
use crate::{rejected, runtime};
use batchgp::backend::{MllGradient, PredictOptions, Prediction};
use batchgp::svgp::{ElboReport, ElboRequest, SvgpParams};
use batchgp::{Error, Hyperparameters, MllReport, MllRequest, Precision, Status};
use ndarray::{Array1, Array3};
use numpy::IntoPyArray;
use pyo3::prelude::*;
use pyo3::types::PyDict;

pub fn data_views<'a>(
    x: &'a FloatArray<'_>,
    y: &'a FloatArray<'_>,
    mask: &'a Option<FloatArray<'_>>,
    yvar: &'a Option<FloatArray<'_>>,
) -> DataViews<'a> {
    DataViews { x: x.view(), y: y.view(), mask: mask.as_ref().map(|m| m.view()), yvar: yvar.as_ref().map(|v| v.view()) }
}

/// An evaluation of either model's objective.
#[allow(clippy::large_enum_variant)] // one per call, moved once: a Box would buy nothing
enum Evaluation {
    Exact(MllReport),
    Svgp(ElboReport),
}

/// The objective (mll + log prior for an exact GP, elbo + log prior for an SVGP) and its
/// gradient at `params`, as the CLI's `mll` and `elbo` write them.
#[pyfunction]
#[pyo3(signature = (x, y, params, mask, yvar, kernel, priors, backend, precision))]
#[allow(clippy::too_many_arguments)]
pub fn evaluate<'py>(
    py: Python<'py>,
    x: FloatArray<'py>,
    y: FloatArray<'py>,
    params: ModelParamsArg<'py>,
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
                let be = params.backend(&backend)?;
                Ok(match &params {
                    ModelParams::Exact(hyp) => Evaluation::Exact(
                        MllRequest::new(&data, hyp).priors(&priors).on(be.as_ref()).precision(precision).run()?,
                    ),
                    ModelParams::Svgp(p) => Evaluation::Svgp(
                        ElboRequest::new(&data, p).priors(&priors).on(be.as_ref()).precision(precision).run()?,
                    ),
                })
            })
        })
        .map_err(rejected)?;
    let out = PyDict::new(py);
    let (term, value, log_prior, objective, status, jitter, gradient) = match report {
        Evaluation::Exact(r) => ("mll", r.mll, r.log_prior, r.objective, r.status, r.jitter, r.gradient),
        Evaluation::Svgp(r) => {
            let g = r.gradient.expect("the gradient is always requested");
            out.set_item("grad_z", g.z.into_pyarray(py))?;
            out.set_item("grad_q_mu", g.q_mu.into_pyarray(py))?;
            out.set_item("grad_q_sqrt", g.q_sqrt.into_pyarray(py))?;
            ("elbo", r.elbo, r.log_prior, r.objective, r.status, r.jitter, Some(g.hyp))
        }
    };
    set_objective(&out, (term, value), log_prior, objective, &status, jitter)?;
    set_hyperparameter_gradient(&out, gradient.expect("the gradient is always requested"))?;
    Ok(out)
}

/// The posterior at `x_test` ((M, D) or (B, M, D)): an exact GP's conditions on the data x, y
/// (with mask and yvar); an SVGP's is in its parameters and takes no data.
#[pyfunction]
#[pyo3(signature = (x, y, params, x_test, mask, yvar, kernel, samples, seed, full_covariance, backend, precision, first_member=0))]
#[allow(clippy::too_many_arguments)]
pub fn predict<'py>(
    py: Python<'py>,
    x: Option<FloatArray<'py>>,
    y: Option<FloatArray<'py>>,
    params: ModelParamsArg<'py>,
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
    let data = match (&x, &y) {
        (Some(x), Some(y)) => Some(data_views(x, y, &mask, &yvar)),
        _ => None,
    };
    let params = params.views();
    let test = x_test.view();
    let p = py
        .detach(|| {
            runtime::in_pool(|| {
                let data = data.as_ref().map(|d| d.dataset()).transpose()?;
                let params = params.params(kernel.as_deref())?;
                let test = test.inputs("test x", "(M, D) or (B, M, D)")?;
                let opts = PredictOptions {
                    precision: precision.parse()?,
                    full_covariance,
                    samples: (samples > 0).then_some((samples, seed)),
                    first_member,
                    ..Default::default()
                };
                let be = params.backend(&backend)?;
                match (&params, &data) {
                    (ModelParams::Exact(hyp), Some(data)) => batchgp::predict(be.as_ref(), data, hyp, &test, &opts),
                    (ModelParams::Svgp(p), None) => batchgp::svgp::predict(be.as_ref(), p, &test, &opts),
                    (ModelParams::Exact(_), None) => Err(Error::Missing {
                        array: "x".into(),
                        context: " (an exact GP's prediction conditions on its training data x, y)".into(),
                    }),
                    (ModelParams::Svgp(_), Some(_)) => Err(Error::InvalidOption {
                        name: "x".into(),
                        reason: "an SVGP's prediction takes no training data (its posterior is in its parameters)"
                            .into(),
                    }),
                }
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

/// The arrays every model's objective report holds: its data term (`mll` or `elbo`), log_prior,
/// objective, status and jitter (B,).
pub fn set_objective(
    out: &Bound<'_, PyDict>,
    (term, value): (&str, Array1<f64>),
    log_prior: Array1<f64>,
    objective: Array1<f64>,
    status: &[Status],
    jitter: Array1<f64>,
) -> PyResult<()> {
    let py = out.py();
    out.set_item(term, value.into_pyarray(py))?;
    out.set_item("log_prior", log_prior.into_pyarray(py))?;
    out.set_item("objective", objective.into_pyarray(py))?;
    out.set_item("status", status_codes(status).into_pyarray(py))?;
    out.set_item("jitter", jitter.into_pyarray(py))?;
    Ok(())
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
pub fn set_hyperparameters(out: &Bound<'_, PyDict>, h: &Hyperparameters) -> PyResult<()> {
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
pub fn set_svgp_params(out: &Bound<'_, PyDict>, p: &SvgpParams) -> PyResult<()> {
    let py = out.py();
    set_hyperparameters(out, &p.hyp)?;
    out.set_item("z", p.z.clone().into_pyarray(py))?;
    out.set_item("q_mu", p.q_mu.clone().into_pyarray(py))?;
    let q = Array3::from_shape_fn(p.q_sqrt.dim(), |(b, i, j)| if j <= i { p.q_sqrt[[b, i, j]] } else { 0.0 });
    out.set_item("q_sqrt", q.into_pyarray(py))?;
    Ok(())
}
