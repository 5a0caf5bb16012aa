//! The one fit of the binding, for every model: what the exact GP's and the SVGP's fits share
//! (the data, kernel, priors, optimiser, iterations, learning rate, seed, fixed kinds, backend,
//! precision, the interruptible run and the result's common arrays) is read and written once;
//! the model's own options (restarts and bounds; z, num_inducing and batch_size)
//! and result arrays beside it.

use crate::arrays::{self, prior_views, FloatArray, ModelParams, ModelParamsArg, PriorArg, View};
use crate::models::{data_views, set_hyperparameters, set_objective, set_svgp_params};
use crate::{option_error, rejected, runtime};
use batchgp::svgp::SvgpParams;
use batchgp::{
    Bounds, FitObserver, FitRequest, FitResult, Kernel, Model, Optimizer, Precision, Priors, SvgpFitRequest,
    SvgpFitResult, Target,
};
use ndarray::{Array1, Array3, Axis, Ix2, Ix3};
use numpy::IntoPyArray;
use pyo3::prelude::*;
use pyo3::types::PyDict;

/// The exact GP's own fit options, from the dict the Python layer passes.
#[derive(FromPyObject)]
#[pyo3(from_item_all)]
struct ExactOptions<'py> {
    restarts: usize,
    bounds: Option<BoundsArg<'py>>,
}

/// `bounds` as `batchgp.fit` passes it: the single box (low, high), or (name, low, high) per
/// kind with low and high broadcast as prior parameters are.
#[derive(FromPyObject)]
enum BoundsArg<'py> {
    Single((f64, f64)),
    PerKind(Vec<(String, FloatArray<'py>, FloatArray<'py>)>),
}

/// The single box, if given, and the bounds per kind (copied, ready to leave the GIL).
fn bounds_arg(arg: Option<&BoundsArg<'_>>) -> batchgp::Result<(Option<(f64, f64)>, Bounds)> {
    let kinds = match arg {
        None => return Ok((None, Bounds::none())),
        Some(BoundsArg::Single(b)) => return Ok((Some(*b), Bounds::none())),
        Some(BoundsArg::PerKind(kinds)) => kinds,
    };
    let param = |a: &FloatArray<'_>| {
        arrays::prior_param(&a.view()).map_err(|shape| {
            option_error("bounds", format!("low and high must have at most 2 dimensions, got shape {shape:?}"))
        })
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

/// The SVGP's own fit options, from the dict the Python layer passes.
#[derive(FromPyObject)]
#[pyo3(from_item_all)]
struct SvgpOptions<'py> {
    z: Option<FloatArray<'py>>,
    num_inducing: Option<usize>,
    batch_size: Option<usize>,
}

/// What both fits are told, checked.
struct Shared<'a> {
    kernel: Kernel,
    priors: &'a Priors,
    optimizer: Option<Optimizer>,
    max_iter: Option<usize>,
    lr: Option<f64>,
    seed: u64,
    first_member: u64,
    fixed: &'a [Target],
    precision: Precision,
}

/// Both requests take the shared options through setters of the same names.
macro_rules! with_shared {
    ($req:expr, $s:expr, $backend:expr, $iterations:ident) => {{
        let s: &Shared<'_> = $s;
        let mut req = $req
            .kernel(s.kernel)
            .priors(s.priors)
            .seed(s.seed)
            .first_member(s.first_member)
            .on($backend)
            .precision(s.precision);
        if let Some(o) = s.optimizer {
            req = req.optimizer(o);
        }
        if let Some(n) = s.max_iter {
            req = req.$iterations(n);
        }
        if let Some(lr) = s.lr {
            req = req.learning_rate(lr);
        }
        for t in s.fixed {
            req = req.fix(*t);
        }
        req
    }};
}

/// A finished fit of either model.
#[allow(clippy::large_enum_variant)] // one per call, moved once: a Box would buy nothing
enum Fitted {
    Exact(FitResult),
    Svgp(SvgpFitResult),
}

/// Fits every member of the model `model` ("exact" or "svgp", with its `options`); see
/// `batchgp.fit`. `init` is a `batchgp.Params` or `batchgp.SvgpParams` of that model.
#[pyfunction]
#[pyo3(signature = (x, y, mask, yvar, kernel, priors, init, fix, optimizer, max_iter, lr, seed, first_member, backend, precision, progress, model, options))]
#[allow(clippy::too_many_arguments)]
pub fn fit<'py>(
    py: Python<'py>,
    x: FloatArray<'py>,
    y: FloatArray<'py>,
    mask: Option<FloatArray<'py>>,
    yvar: Option<FloatArray<'py>>,
    kernel: String,
    priors: Vec<PriorArg<'py>>,
    init: Option<ModelParamsArg<'py>>,
    fix: Vec<String>,
    optimizer: Option<String>,
    max_iter: Option<usize>,
    lr: Option<f64>,
    seed: u64,
    first_member: u64,
    backend: String,
    precision: String,
    progress: Option<Py<PyAny>>,
    model: &str,
    options: &Bound<'py, PyDict>,
) -> PyResult<Bound<'py, PyDict>> {
    let svgp: Option<SvgpOptions<'py>> = (model == "svgp").then(|| options.extract()).transpose()?;
    let exact: Option<ExactOptions<'py>> = (model == "exact").then(|| options.extract()).transpose()?;
    if svgp.is_none() && exact.is_none() {
        return Err(rejected(option_error("model", format!("expected exact or svgp, got `{model}`"))));
    }
    let data = data_views(&x, &y, &mask, &yvar);
    let init = init.as_ref().map(|p| p.views());
    let z = svgp.as_ref().and_then(|o| o.z.as_ref()).map(|a| a.view());
    // What the job reads of the SVGP's options (the arrays stay with the GIL).
    let svgp = svgp.as_ref().map(|o| (o.num_inducing, o.batch_size));
    let prior_spec = prior_views(&priors);
    let (bounds, per_kind) = bounds_arg(exact.as_ref().and_then(|o| o.bounds.as_ref())).map_err(rejected)?;
    // What the job reads of the exact GP's options (the bounds' arrays stay with the GIL).
    let exact = exact.as_ref().map(|o| o.restarts);
    let job = |observer: &mut dyn FitObserver| -> batchgp::Result<Fitted> {
        let data = data.dataset()?;
        let kernel: Kernel = kernel.parse()?;
        let priors = arrays::priors(&prior_spec)?;
        let init = init.as_ref().map(|p| p.params(None)).transpose()?;
        let optimizer = optimizer.as_deref().map(str::parse::<Optimizer>).transpose()?;
        let precision: Precision = precision.parse()?;
        let (mut fixed, mut fix_z) = (Vec::new(), false);
        for f in &fix {
            match Target::from_name(f) {
                Some(t) => fixed.push(t),
                None if f == "z" && svgp.is_some() => fix_z = true,
                None if f == "z" => return Err(option_error("fix", "z (the inducing inputs) needs model='svgp'")),
                None => {
                    let z = if svgp.is_some() { "z, " } else { "" };
                    let reason = format!(
                        "unknown hyperparameter `{f}` (expected {z}lengthscale, outputscale, noise, mean or alpha)"
                    );
                    return Err(option_error("fix", reason));
                }
            }
        }
        let shared =
            Shared { kernel, priors: &priors, optimizer, max_iter, lr, seed, first_member, fixed: &fixed, precision };
        if let Some(restarts) = exact {
            let init = match init {
                Some(ModelParams::Exact(h)) => Some(h),
                None => None,
                Some(ModelParams::Svgp(_)) => {
                    return Err(option_error("init", "holds SVGP parameters for an exact fit"))
                }
            };
            let be = runtime::backend(&backend)?;
            let mut req = with_shared!(FitRequest::new(&data), &shared, be.as_ref(), max_iter).restarts(restarts);
            if let Some((lo, hi)) = bounds {
                req = req.bounds(lo, hi);
            }
            req = req.hyperparameter_bounds(per_kind.clone());
            if let Some(h) = &init {
                req = req.init(h);
            }
            return Ok(Fitted::Exact(req.observer(observer).run()?));
        }
        let (num_inducing, batch_size) = svgp.expect("the model is exact or svgp");
        let start = svgp_start(&data, kernel, init, z.as_ref(), num_inducing)?;
        let be = runtime::svgp_backend(&backend)?;
        let mut req = with_shared!(SvgpFitRequest::new(&data), &shared, be.as_ref(), steps).fix_inducing(fix_z);
        if let Some(p) = &start {
            req = req.init(p);
        }
        if let Some(m) = num_inducing {
            req = req.num_inducing(m);
        }
        if let Some(s) = batch_size {
            req = req.batch_size(s);
        }
        Ok(Fitted::Svgp(req.observer(observer).run()?))
    };
    let fitted = runtime::fit_interruptible(py, progress, job)?.map_err(rejected)?;
    fit_dict(py, fitted)
}

/// An SVGP fit's start: `init`, or q = N(0, I) at the inducing inputs `z` with the exact GP's
/// data-driven hyperparameters, or None (the request's k-means++ start of `num_inducing`).
fn svgp_start(
    data: &batchgp::Dataset,
    kernel: Kernel,
    init: Option<ModelParams>,
    z: Option<&View<'_>>,
    num_inducing: Option<usize>,
) -> batchgp::Result<Option<SvgpParams>> {
    let start = match (init, z) {
        (Some(_), Some(_)) => return Err(option_error("z", "give z or init, not both (init holds its own z)")),
        (Some(ModelParams::Svgp(p)), None) => Some(p),
        (Some(ModelParams::Exact(_)), None) => {
            return Err(option_error("init", "holds an exact GP's hyperparameters for an SVGP fit"))
        }
        (None, Some(z)) => {
            let z = inducing_inputs(z, data.batch_size(), data.n_dims())?;
            if num_inducing.is_some_and(|m| m != z.shape()[1]) {
                return Err(option_error(
                    "num_inducing",
                    format!("{} contradicts z's {} inducing points", num_inducing.unwrap_or(0), z.shape()[1]),
                ));
            }
            let hyp = FitRequest::default_init(data).with_kernel(kernel);
            return Ok(Some(SvgpParams::whitened_prior(z, hyp)));
        }
        (None, None) => None,
    };
    if start.is_some() && num_inducing.is_some() {
        return Err(option_error("num_inducing", "init holds its own inducing inputs"));
    }
    Ok(start)
}

/// Inducing inputs (M, D) shared or (B, M, D) as (B, M, D) for `b` members of dimension `d`.
fn inducing_inputs(z: &View<'_>, b: usize, d: usize) -> batchgp::Result<Array3<f64>> {
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

/// A fit as the dict `batchgp.FitResult` or `batchgp.SvgpResult` wraps: the model's parameters
/// and own arrays, then the arrays every fit has.
fn fit_dict(py: Python<'_>, fitted: Fitted) -> PyResult<Bound<'_, PyDict>> {
    let out = PyDict::new(py);
    match fitted {
        Fitted::Exact(r) => {
            set_hyperparameters(&out, &r.model.hyperparameters)?;
            out.set_item("restart", r.restart.mapv(|v| v as i64).into_pyarray(py))?;
            out.set_item("reached_best", r.reached_best.mapv(|v| v as i64).into_pyarray(py))?;
            out.set_item("starts", r.starts)?;
            out.set_item("rounds", r.rounds)?;
            let mll = r.model.mll.clone();
            set_fit(&out, ("mll", mll), r)?;
        }
        Fitted::Svgp(r) => {
            set_svgp_params(&out, &r.model.params)?;
            out.set_item("loss", r.model.loss.clone().into_pyarray(py))?;
            let elbo = r.model.elbo.clone();
            set_fit(&out, ("elbo", elbo), r)?;
        }
    }
    Ok(out)
}

/// The arrays every fit has, whatever its model: its likelihood term `term` (mll, elbo), log
/// prior, objective, status, jitter, reason and outcome in words, iterations.
fn set_fit<M: Model>(out: &Bound<'_, PyDict>, term: (&str, Array1<f64>), r: FitResult<M>) -> PyResult<()> {
    let outcome: Vec<String> = (0..r.status.len()).map(|b| r.describe(b)).collect();
    out.set_item("reason", r.reason.iter().map(|t| t.text()).collect::<Vec<_>>())?;
    out.set_item("outcome", outcome)?;
    out.set_item("iterations", r.iterations.mapv(|v| v as i64).into_pyarray(out.py()))?;
    set_objective(out, term, r.log_prior, r.objective, &r.status, r.jitter)
}
