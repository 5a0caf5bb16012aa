//! The public entry points on a whole batch: one evaluation request for every model's MAP
//! objective ([`EvalRequest`], through [`Evaluate`]; the exact GP's MLL here, the SVGP's ELBO in
//! `svgp`) and the exact GP's posterior prediction (prior sampling: `crate::sample`). Each
//! validates its request once, then hands the numbers to a [`Backend`].

use crate::backend::{self, Backend, BackendChoice, MllGradient, MllOptions, PredictOptions, Prediction};
use crate::data::{Dataset, Hyperparameters, Inputs, Precision, Status};
use crate::error::{Error, Result};
use crate::prior::{Priors, ResolvedPriors};
use ndarray::Array1;

/// The MAP objective of a batch: `mll + log_prior`, with its gradient.
///
/// # Parameters
/// | name      | default        | purpose                                             |
/// |-----------|----------------|-----------------------------------------------------|
/// | priors    | none (flat)    | priors per hyperparameter, see [`Priors`]           |
/// | backend   | auto           | where to compute: GPU when usable, else CPU         |
/// | precision | f64            | arithmetic inside the backend                       |
/// | gradient  | true           | also compute the gradient (about 2x the work)       |
///
/// ```
/// # use batchgp::*;
/// # use ndarray::*;
/// let x = Array2::from_shape_fn((10, 1), |(i, _)| i as f64 / 10.0);
/// let y = Array2::from_shape_fn((2, 10), |(b, i)| (i as f64 + b as f64).sin());
/// let data = Dataset::new(x, y)?;
/// let hyp = Hyperparameters::broadcast(2, &[0.3], 1.0, 0.1, 0.0);
/// let r = MllRequest::new(&data, &hyp).backend(BackendChoice::Cpu).run()?;
/// assert!(r.mll.iter().all(|v| v.is_finite()));
/// # Ok::<(), batchgp::Error>(())
/// ```
pub type MllRequest<'a> = EvalRequest<'a, Hyperparameters>;

/// A model's parameters that an [`EvalRequest`] evaluates: the exact GP's [`Hyperparameters`]
/// (the MLL) and the SVGP's `SvgpParams` (the ELBO). The request's builder, priors, backend
/// choice and checks are written once; the parameters bring their options, their report and
/// the backend call.
pub trait Evaluate {
    /// Options of one batched evaluation (precision, gradient, jitter).
    type Options: Copy;
    /// What an evaluation returns: the objective and its parts over the B members.
    type Report;
    /// The default options for a precision (gradient on).
    fn options(precision: Precision) -> Self::Options;
    /// `opts` at another precision (the jitter reset to its default, the rest kept).
    fn with_precision(opts: Self::Options, precision: Precision) -> Self::Options;
    /// Turns the gradient on or off.
    fn set_gradient(opts: &mut Self::Options, on: bool);
    /// The backend a choice means for this model (the exact GP: as chosen).
    fn backend_choice(choice: BackendChoice) -> BackendChoice {
        choice
    }
    /// Checks the parameters against the data's (B, D).
    fn validate(&self, data: &Dataset) -> Result<()>;
    /// The objective (and gradient) of every member, the log prior added.
    fn evaluate(
        &self,
        be: &dyn Backend,
        data: &Dataset,
        priors: &ResolvedPriors,
        opts: &Self::Options,
    ) -> Result<Self::Report>;
}

/// One batched evaluation of a model's objective (MLL or ELBO) plus log prior, with its
/// gradient: [`MllRequest`] for the exact GP, `ElboRequest` for the SVGP.
pub struct EvalRequest<'a, P: Evaluate> {
    data: &'a Dataset,
    params: &'a P,
    priors: Option<&'a Priors>,
    backend: Option<&'a dyn Backend>,
    choice: BackendChoice,
    pub(crate) opts: P::Options,
}

/// The result of an [`MllRequest`]: arrays over the B members.
#[derive(Debug, Clone, PartialEq)]
pub struct MllReport {
    /// (B,) exact MLL (a total, not divided by n).
    pub mll: Array1<f64>,
    /// (B,) sum of log prior densities (0 without priors).
    pub log_prior: Array1<f64>,
    /// (B,) mll + log_prior.
    pub objective: Array1<f64>,
    /// Gradient of the objective w.r.t. log lengthscale, log outputscale, log noise, mean.
    pub gradient: Option<MllGradient>,
    pub status: Vec<Status>,
    /// (B,) jitter added to each member's diagonal.
    pub jitter: Array1<f64>,
}

impl<'a, P: Evaluate> EvalRequest<'a, P> {
    /// The objective of `data` at `params` (B members), with the defaults of the table above.
    pub fn new(data: &'a Dataset, params: &'a P) -> Self {
        EvalRequest {
            data,
            params,
            priors: None,
            backend: None,
            choice: BackendChoice::Auto,
            opts: P::options(Precision::F64),
        }
    }
    /// Adds priors (MAP objective).
    pub fn priors(mut self, priors: &'a Priors) -> Self {
        self.priors = Some(priors);
        self
    }
    /// Chooses the backend by kind.
    pub fn backend(mut self, choice: BackendChoice) -> Self {
        self.choice = choice;
        self
    }
    /// Uses a backend already made (no device start-up per call).
    pub fn on(mut self, backend: &'a dyn Backend) -> Self {
        self.backend = Some(backend);
        self
    }
    /// Arithmetic precision (resets the jitter policy to that precision's default).
    pub fn precision(mut self, p: Precision) -> Self {
        self.opts = P::with_precision(self.opts, p);
        self
    }
    /// Whether to compute the gradient.
    pub fn gradient(mut self, on: bool) -> Self {
        P::set_gradient(&mut self.opts, on);
        self
    }
    /// Evaluates.
    ///
    /// # Errors
    /// Shapes or domains of the parameters ([`Error::Shape`], [`Error::NonFinite`],
    /// [`Error::InvalidHyperparameter`]), invalid priors ([`Error::InvalidPrior`]), an
    /// unavailable backend.
    pub fn run(self) -> Result<P::Report> {
        let (b, d) = (self.data.batch_size(), self.data.n_dims());
        self.params.validate(self.data)?;
        let priors = match self.priors {
            Some(p) => p.resolve(b, d)?,
            None => ResolvedPriors::flat(b, d),
        };
        let mut owned = None;
        let be = backend::given_or_select(self.backend, P::backend_choice(self.choice), &mut owned)?;
        self.params.evaluate(be, self.data, &priors, &self.opts)
    }
}

impl MllRequest<'_> {
    /// Memory budget in bytes (default: the memory available); a member that cannot fit alone
    /// is rejected with [`Error::OutOfMemory`] before any work.
    pub fn max_memory(mut self, bytes: u64) -> Self {
        self.opts.max_memory = Some(bytes);
        self
    }
}

impl Evaluate for Hyperparameters {
    type Options = MllOptions;
    type Report = MllReport;
    fn options(precision: Precision) -> MllOptions {
        MllOptions::new(precision)
    }
    fn with_precision(o: MllOptions, p: Precision) -> MllOptions {
        MllOptions { gradient: o.gradient, max_memory: o.max_memory, ..MllOptions::new(p) }
    }
    fn set_gradient(o: &mut MllOptions, on: bool) {
        o.gradient = on;
    }
    fn validate(&self, data: &Dataset) -> Result<()> {
        Hyperparameters::validate(self, data.batch_size(), data.n_dims())
    }
    fn evaluate(
        &self,
        be: &dyn Backend,
        data: &Dataset,
        priors: &ResolvedPriors,
        opts: &MllOptions,
    ) -> Result<MllReport> {
        let raw = be.mll(data, self, None, opts)?;
        Ok(combine(raw, priors, self, None))
    }
}

/// Adds the log prior (and its gradient) to a backend's MLL for the members `rows`.
pub(crate) fn combine(
    raw: backend::MllBatch,
    priors: &ResolvedPriors,
    hyp: &Hyperparameters,
    rows: Option<&[usize]>,
) -> MllReport {
    let p = priors.evaluate(hyp, rows);
    let objective = &raw.mll + &p.log_prior;
    let gradient = raw.gradient.map(|g| g.with_prior(&p));
    MllReport { mll: raw.mll, log_prior: p.log_prior, objective, gradient, status: raw.status, jitter: raw.jitter }
}

/// Posterior of every member at test points `test` ((M, D) shared or (B, M, D)).
///
/// # Errors
/// Hyperparameter shapes or domains, test points of the wrong shape or non-finite
/// ([`Error::Shape`], [`Error::NonFinite`] naming (member, index)).
pub fn predict(
    be: &dyn Backend,
    data: &Dataset,
    hyp: &Hyperparameters,
    test: &Inputs,
    opts: &PredictOptions,
) -> Result<Prediction> {
    let (b, d) = (data.batch_size(), data.n_dims());
    hyp.validate(b, d)?;
    check_prediction(b, d, test, opts)?;
    be.predict(data, hyp, test, opts)
}

/// The checks every model's prediction shares: test points of shape (M, D) or (B, M, D), finite,
/// and at least one sample when samples are asked for.
pub(crate) fn check_prediction(b: usize, d: usize, test: &Inputs, opts: &PredictOptions) -> Result<()> {
    test.validate_test("test x", b, d)?;
    if let Some((count, _)) = opts.samples {
        if count == 0 {
            return Err(Error::option("samples", "must be >= 1"));
        }
    }
    Ok(())
}
