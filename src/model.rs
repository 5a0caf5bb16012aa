//! The public entry points on a whole batch: the MAP objective (MLL plus log prior) with its
//! gradient and posterior prediction (prior sampling: `crate::sample`). Each validates its request once, then
//! hands the numbers to a [`Backend`].

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
pub struct MllRequest<'a> {
    data: &'a Dataset,
    hyp: &'a Hyperparameters,
    priors: Option<&'a Priors>,
    backend: Option<&'a dyn Backend>,
    choice: BackendChoice,
    opts: MllOptions,
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

impl<'a> MllRequest<'a> {
    /// The objective of `data` at `hyp` (B members), with the defaults of the table above.
    pub fn new(data: &'a Dataset, hyp: &'a Hyperparameters) -> Self {
        MllRequest { data, hyp, priors: None, backend: None, choice: BackendChoice::Auto, opts: MllOptions::default() }
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
        self.opts = MllOptions { gradient: self.opts.gradient, max_memory: self.opts.max_memory, ..MllOptions::new(p) };
        self
    }
    /// Memory budget in bytes (default: the memory available); a member that cannot fit alone
    /// is rejected with [`Error::OutOfMemory`] before any work.
    pub fn max_memory(mut self, bytes: u64) -> Self {
        self.opts.max_memory = Some(bytes);
        self
    }
    /// Whether to compute the gradient.
    pub fn gradient(mut self, on: bool) -> Self {
        self.opts.gradient = on;
        self
    }
    /// Evaluates.
    ///
    /// # Errors
    /// Shapes or domains of the hyperparameters ([`Error::Shape`],
    /// [`Error::InvalidHyperparameter`]), invalid priors ([`Error::InvalidPrior`]), an
    /// unavailable backend.
    pub fn run(self) -> Result<MllReport> {
        let (b, d) = (self.data.batch_size(), self.data.n_dims());
        self.hyp.validate(b, d)?;
        let priors = match self.priors {
            Some(p) => p.resolve(b, d)?,
            None => ResolvedPriors::flat(b, d),
        };
        let mut owned = None;
        let be = backend::given_or_select(self.backend, self.choice, &mut owned)?;
        let raw = be.mll(self.data, self.hyp, None, &self.opts)?;
        Ok(combine(raw, &priors, self.hyp, None))
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
    test.validate_test("test x", b, d)?;
    if let Some((count, _)) = opts.samples {
        if count == 0 {
            return Err(Error::option("samples", "must be >= 1"));
        }
    }
    be.predict(data, hyp, test, opts)
}
