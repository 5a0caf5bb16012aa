//! From numpy arrays to the core's types, and back.
//!
//! The Python layer hands over f64 or f32 arrays as they are (any memory order), so an f64
//! array reaches this module without a copy. Views are taken under the GIL; everything else
//! (the one copy into the core's owned arrays, the checks) runs after the GIL is released.
//! Rejected input is a `batchgp::Error`, so its message is the CLI's.
//!
//! A model's parameters arrive as one argument ([`ModelParamsArg`]): a `batchgp.Params` (the
//! exact GP) or a `batchgp.SvgpParams` (the SVGP), and the model is the one they are for.

use batchgp::backend::Backend;
use batchgp::prior::PriorParam;
use batchgp::svgp::SvgpParams;
use batchgp::{Dataset, Error, Hyperparameters, Inputs, Kernel, Prior, PriorFamily, Priors, Result, Target};
use ndarray::{Array1, ArrayD, ArrayViewD, Dimension, Ix1, Ix2, Ix3, Zip};
use numpy::PyReadonlyArrayDyn;
use pyo3::prelude::*;
use std::sync::Arc;

/// A numpy array of f64 or f32, borrowed read-only.
#[derive(FromPyObject)]
pub enum FloatArray<'py> {
    F64(PyReadonlyArrayDyn<'py, f64>),
    F32(PyReadonlyArrayDyn<'py, f32>),
}

impl<'py> FloatArray<'py> {
    /// A view of the numpy buffer (no copy). It may be sent to a thread without the GIL.
    pub fn view(&self) -> View<'_> {
        match self {
            FloatArray::F64(a) => View::F64(a.as_array()),
            FloatArray::F32(a) => View::F32(a.as_array()),
        }
    }
}

/// A view of an f64 or f32 buffer.
#[derive(Clone)]
pub enum View<'a> {
    F64(ArrayViewD<'a, f64>),
    F32(ArrayViewD<'a, f32>),
}

fn shape_error(array: &str, expected: impl Into<String>, actual: &[usize]) -> Error {
    Error::Shape { array: array.into(), expected: expected.into(), actual: actual.to_vec() }
}

impl View<'_> {
    pub fn shape(&self) -> &[usize] {
        match self {
            View::F64(a) => a.shape(),
            View::F32(a) => a.shape(),
        }
    }

    /// An owned f64 copy in standard (C) layout: the one copy the core's owned arrays need.
    pub fn to_f64(&self) -> ArrayD<f64> {
        match self {
            View::F64(a) => a.as_standard_layout().into_owned(),
            View::F32(a) => {
                let mut out = ArrayD::<f64>::zeros(a.raw_dim());
                Zip::from(&mut out).and(a).for_each(|o, &v| *o = v as f64);
                out
            }
        }
    }

    /// As [`View::to_f64`] with `D` dimensions, else a shape error naming `array`.
    pub fn to<D: Dimension>(&self, array: &str, expected: &str) -> Result<ndarray::Array<f64, D>> {
        if self.shape().len() != D::NDIM.unwrap_or(self.shape().len()) {
            return Err(shape_error(array, expected, self.shape()));
        }
        Ok(self.to_f64().into_dimensionality::<D>().expect("dimensions checked"))
    }

    /// x (B, N, D) or (N, D) as the core's inputs.
    pub fn inputs(&self, array: &str, expected: &str) -> Result<Inputs> {
        match self.shape().len() {
            2 => Ok(Inputs::Shared(self.to::<Ix2>(array, expected)?)),
            3 => Ok(Inputs::Batched(self.to::<Ix3>(array, expected)?)),
            _ => Err(shape_error(array, expected, self.shape())),
        }
    }
}

/// Training data as views: x, y, and the optional mask and yvar.
pub struct DataViews<'a> {
    pub x: View<'a>,
    pub y: View<'a>,
    pub mask: Option<View<'a>>,
    pub yvar: Option<View<'a>>,
}

impl DataViews<'_> {
    /// The validated dataset (shapes, finiteness outside the mask, mask of 0/1, yvar >= 0).
    pub fn dataset(&self) -> Result<Dataset> {
        let x = self.x.inputs("x", "(B, N, D) or (N, D)")?;
        let y = self.y.to::<Ix2>("y", "(B, N)")?;
        let mask = match &self.mask {
            Some(m) => Some(Dataset::mask_from_numbers(&m.to::<Ix2>("mask", "(B, N)")?)?),
            None => None,
        };
        let data = Dataset::with_mask(x, y, mask)?;
        match &self.yvar {
            Some(v) => {
                let expected = format!("({}, {})", data.batch_size(), data.n_points());
                data.with_yvar(v.to::<Ix2>("yvar", &expected)?)
            }
            None => Ok(data),
        }
    }
}

/// A `batchgp.Params` as the binding reads it: its attributes, by name.
#[derive(FromPyObject)]
pub struct ParamsArg<'py> {
    pub kernel: String,
    pub lengthscale: FloatArray<'py>,
    pub outputscale: FloatArray<'py>,
    pub noise: FloatArray<'py>,
    pub mean: FloatArray<'py>,
    pub alpha: Option<FloatArray<'py>>,
}

impl<'py> ParamsArg<'py> {
    pub fn views(&self) -> ParamsViews<'_> {
        ParamsViews {
            kernel: self.kernel.clone(),
            lengthscale: self.lengthscale.view(),
            outputscale: self.outputscale.view(),
            noise: self.noise.view(),
            mean: self.mean.view(),
            alpha: self.alpha.as_ref().map(|a| a.view()),
        }
    }
}

pub struct ParamsViews<'a> {
    pub kernel: String,
    pub lengthscale: View<'a>,
    pub outputscale: View<'a>,
    pub noise: View<'a>,
    pub mean: View<'a>,
    pub alpha: Option<View<'a>>,
}

impl ParamsViews<'_> {
    /// The hyperparameters with their kernel; `kernel` (a request's own choice), when given,
    /// must agree with the params' kernel. Domains are checked by the request that uses them.
    pub fn hyperparameters(&self, kernel: Option<&str>) -> Result<Hyperparameters> {
        let own: Kernel = self.kernel.parse()?;
        if let Some(k) = kernel {
            let k: Kernel = k.parse()?;
            if k != own {
                return Err(Error::InvalidOption {
                    name: "kernel".into(),
                    reason: format!("`{k}` contradicts the params' kernel `{own}`"),
                });
            }
        }
        let vector = |v: &View<'_>, name: &str| -> Result<Array1<f64>> { v.to::<Ix1>(name, "(B,)") };
        Ok(Hyperparameters {
            kernel: own,
            lengthscale: self.lengthscale.to::<Ix2>("lengthscale", "(B, D)")?,
            outputscale: vector(&self.outputscale, "outputscale")?,
            noise: vector(&self.noise, "noise")?,
            mean: vector(&self.mean, "mean")?,
            alpha: self.alpha.as_ref().map(|a| vector(a, "alpha")).transpose()?,
        })
    }
}

/// One prior as the Python layer passes it: (hyperparameter, family, parameter arrays).
pub type PriorArg<'py> = (String, String, Vec<FloatArray<'py>>);

/// Views of the priors, ready to leave the GIL.
pub type PriorViews<'a> = Vec<(String, String, Vec<View<'a>>)>;

pub fn prior_views<'a>(priors: &'a [PriorArg<'_>]) -> PriorViews<'a> {
    priors.iter().map(|(t, f, p)| (t.clone(), f.clone(), p.iter().map(|a| a.view()).collect())).collect()
}

const FAMILIES: [PriorFamily; 5] =
    [PriorFamily::Gamma, PriorFamily::LogNormal, PriorFamily::Normal, PriorFamily::HalfCauchy, PriorFamily::Uniform];

/// The core's priors: parameters broadcast later, by the request (number, D list, B list, B x D).
pub fn priors(spec: &PriorViews<'_>) -> Result<Priors> {
    let mut out = Priors::none();
    for (target, family, params) in spec {
        let bad = |reason: String| Error::InvalidPrior { target: target.clone(), reason };
        let t = Target::from_name(target).ok_or_else(|| {
            bad("unknown hyperparameter (expected lengthscale, outputscale, noise, mean or alpha)".into())
        })?;
        let fam = FAMILIES.into_iter().find(|f| f.names().0 == family).ok_or_else(|| {
            bad(format!("unknown family `{family}` (expected gamma, lognormal, normal, halfcauchy or uniform)"))
        })?;
        let names = fam.names().1;
        if params.len() != names.len() {
            return Err(bad(format!(
                "{family} takes {} parameters ({}), got {}",
                names.len(),
                names.join(", "),
                params.len()
            )));
        }
        let params = params
            .iter()
            .zip(names)
            .map(|(v, name)| {
                prior_param(v).map_err(|shape| {
                    bad(format!(
                        "`{name}` must be a number, a list of numbers or a list of lists of numbers, got shape {shape:?}"
                    ))
                })
            })
            .collect::<Result<Vec<_>>>()?;
        out = out.with(t, Prior { family: fam, params });
    }
    Ok(out)
}

/// A parameter broadcast later by the request (a number, a list, a list of lists), from an
/// array of at most 2 dimensions; Err holds the shape of a deeper one.
pub fn prior_param(v: &View<'_>) -> std::result::Result<PriorParam, Vec<usize>> {
    let a = v.to_f64();
    match a.ndim() {
        0 => Ok(PriorParam::Scalar(a[[]])),
        1 => Ok(PriorParam::List(a.iter().copied().collect())),
        2 => Ok(PriorParam::Nested(a.outer_iter().map(|r| r.iter().copied().collect()).collect())),
        _ => Err(a.shape().to_vec()),
    }
}

/// Status codes as numbers, as in the CLI's files.
pub fn status_codes(status: &[batchgp::Status]) -> Array1<i64> {
    status.iter().map(|s| s.code() as i64).collect()
}

/// A `batchgp.svgp.SvgpParams` as the binding reads it: z, q_mu, q_sqrt and its
/// `hyperparameters` (a `batchgp.Params`).
#[derive(FromPyObject)]
pub struct SvgpParamsArg<'py> {
    pub z: FloatArray<'py>,
    pub q_mu: FloatArray<'py>,
    pub q_sqrt: FloatArray<'py>,
    pub hyperparameters: ParamsArg<'py>,
}

impl<'py> SvgpParamsArg<'py> {
    pub fn views(&self) -> SvgpParamsViews<'_> {
        SvgpParamsViews {
            z: self.z.view(),
            q_mu: self.q_mu.view(),
            q_sqrt: self.q_sqrt.view(),
            hyp: self.hyperparameters.views(),
        }
    }
}

pub struct SvgpParamsViews<'a> {
    pub z: View<'a>,
    pub q_mu: View<'a>,
    pub q_sqrt: View<'a>,
    pub hyp: ParamsViews<'a>,
}

impl SvgpParamsViews<'_> {
    /// The core's SVGP parameters, checked ([`SvgpParams::new`]: shapes, finite z, q_mu and
    /// lower triangle of q_sqrt, the hyperparameters' domains); `kernel` as in
    /// [`ParamsViews::hyperparameters`].
    pub fn params(&self, kernel: Option<&str>) -> Result<SvgpParams> {
        let z = self.z.to::<Ix3>("z", "(B, M, D)")?;
        let (b, m, _) = z.dim();
        let q_mu = self.q_mu.to::<Ix2>("q_mu", &format!("({b}, {m})"))?;
        let q_sqrt = self.q_sqrt.to::<Ix3>("q_sqrt", &format!("({b}, {m}, {m})"))?;
        SvgpParams::new(z, q_mu, q_sqrt, self.hyp.hyperparameters(kernel)?)
    }
}

/// The parameters of either model, as the Python layer passes them: an object with z, q_mu,
/// q_sqrt and hyperparameters is an SVGP's, one with only the hyperparameters an exact GP's.
#[derive(FromPyObject)]
pub enum ModelParamsArg<'py> {
    Svgp(SvgpParamsArg<'py>),
    Exact(ParamsArg<'py>),
}

impl<'py> ModelParamsArg<'py> {
    pub fn views(&self) -> ModelParamsViews<'_> {
        match self {
            ModelParamsArg::Svgp(p) => ModelParamsViews::Svgp(p.views()),
            ModelParamsArg::Exact(p) => ModelParamsViews::Exact(p.views()),
        }
    }
}

/// Views of either model's parameters, ready to leave the GIL.
#[allow(clippy::large_enum_variant)] // one per call, moved once: a Box would buy nothing
pub enum ModelParamsViews<'a> {
    Svgp(SvgpParamsViews<'a>),
    Exact(ParamsViews<'a>),
}

impl ModelParamsViews<'_> {
    /// The checked parameters; `kernel` as in [`ParamsViews::hyperparameters`].
    pub fn params(&self, kernel: Option<&str>) -> Result<ModelParams> {
        match self {
            ModelParamsViews::Svgp(p) => p.params(kernel).map(ModelParams::Svgp),
            ModelParamsViews::Exact(p) => p.hyperparameters(kernel).map(ModelParams::Exact),
        }
    }
}

/// The parameters of an exact GP or of an SVGP, checked.
#[allow(clippy::large_enum_variant)] // one per call, moved once: a Box would buy nothing
pub enum ModelParams {
    Exact(Hyperparameters),
    Svgp(SvgpParams),
}

impl ModelParams {
    /// The backend this model's work runs on for `choice`: an SVGP's auto is the CPU for now
    /// ([`crate::runtime::svgp_backend`]).
    pub fn backend(&self, choice: &str) -> Result<Arc<dyn Backend>> {
        match self {
            ModelParams::Exact(_) => crate::runtime::backend(choice),
            ModelParams::Svgp(_) => crate::runtime::svgp_backend(choice),
        }
    }
}
