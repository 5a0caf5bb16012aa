//! Batched fitting (docs/design.md sections 5 and 14): every member keeps its own optimiser
//! state, line search and convergence test, and a converged member stops costing work.
//!
//! The pieces, one noun each:
//! - [`objective`]: the model-agnostic batched objective the optimisers see (per member, an
//!   unconstrained vector in; a value, a gradient and a status out);
//! - [`exact`]: the exact GP as a [`Model`] and such an objective (kernel, layout, coordinate
//!   maps, priors, units); [`svgp`]: the sparse variational GP as another, with mini-batches;
//! - [`transform`]: the scale-free coordinate maps;
//! - [`lbfgs`], [`adam`]: one member's optimiser each; [`driver`]: the batched loop over them;
//! - [`request`]: the one [`FitRequest`], generic over the [`Model`] it fits, with the options
//!   every fit shares and their checks;
//! - [`result`]: the one [`FitResult`] of every model, its own part beside the fields every fit
//!   reports;
//! - this module: the optimiser's and the result's words (termination, degeneracy, progress).
//!
//! Restarts are extra members started from spread points; the best one per GP is kept.

mod adam;
mod bounds;
mod driver;
mod exact;
mod lbfgs;
mod linesearch;
mod minibatch;
mod objective;
#[cfg(feature = "cli")]
mod progress;
mod request;
mod result;
mod starts;
mod svgp;
mod transform;

pub use bounds::Bounds;
pub use exact::ExactFit;
#[cfg(feature = "cli")]
pub use progress::ProgressBarObserver;
pub use request::{Exact, ExactOptions, FitRequest, Model, Svgp, SvgpFitRequest, SvgpOptions};
pub use result::FitResult;
pub use starts::{DEFAULT_RESTARTS, SAME_OPTIMUM_NATS};
pub use svgp::{SvgpFit, SvgpFitResult};

use crate::data::{Hyperparameters, Status};
use crate::error::{Error, Result};
use crate::prior::{Priors, ResolvedPriors};
use driver::MemberOptimizer;
use transform::Map;

/// Why `standardize` was removed (Rust: a deprecated no-op setter; Python and the CLI refuse
/// it with this reason).
pub const STANDARDIZE_REMOVED: &str = "standardize was removed: it did nothing, as every fit already runs on y \
     standardised per member and reports in the data's units";

/// rq's alpha is fitted within (0, ALPHA_MAX]: there rq differs from rbf by at most
/// r^4 exp(-r^2 / 2) / (8 alpha) < 1e-7 of the outputscale.
pub const ALPHA_MAX: f64 = 1e6;

/// Fewer observed points than this make a member degenerate: with a free mean, the MLL of one
/// or two points grows without bound as the noise and the outputscale shrink.
pub const MIN_POINTS: usize = 3;

/// The optimiser.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Optimizer {
    /// Batched L-BFGS with a per-member history of 10 pairs (the default).
    #[default]
    Lbfgs,
    /// Adam, as in GPyTorch's tutorials (learning rate 0.1 by default).
    Adam,
}

impl std::str::FromStr for Optimizer {
    type Err = Error;
    fn from_str(s: &str) -> Result<Self> {
        match s {
            "lbfgs" => Ok(Optimizer::Lbfgs),
            "adam" => Ok(Optimizer::Adam),
            _ => Err(Error::option("optimizer", format!("expected lbfgs or adam, got `{s}`"))),
        }
    }
}

/// Progress of a fit, passed to a [`FitObserver`] after every batched evaluation.
pub struct FitProgress<'a> {
    /// Batched evaluation rounds so far.
    pub iteration: usize,
    /// Members (restarts included) still running.
    pub running: usize,
    /// Members (restarts included) that have converged.
    pub converged: usize,
    /// Members (restarts included) in all.
    pub total: usize,
    /// Current objective (mll + log prior, in standardised units) of every member (restarts
    /// included), NaN until known.
    pub objective: &'a [f64],
    snapshot: &'a dyn Fn() -> Hyperparameters,
}

impl FitProgress<'_> {
    /// Current hyperparameters of every member (restarts included), in the data's units.
    pub fn hyperparameters(&self) -> Hyperparameters {
        (self.snapshot)()
    }
}

/// Receives progress (init / iter / finish), so the core needs no terminal code.
pub trait FitObserver {
    /// Before the first evaluation: members in all (restarts included).
    fn init(&mut self, _members: usize) {}
    /// After every batched evaluation.
    fn iter(&mut self, _progress: &FitProgress<'_>) {}
    /// Asked after every batched evaluation: true stops the fit with [`Error::Interrupted`]
    /// (a KeyboardInterrupt in Python, say).
    fn stop(&mut self) -> bool {
        false
    }
    /// When the fit has ended: each member's final status (B entries, restarts folded in).
    fn finish(&mut self, _status: &[Status]) {}
}

/// Why a member's optimiser stopped, beside its numerical [`Status`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Termination {
    /// The projected gradient or the relative decrease of the objective met its tolerance.
    Converged,
    /// The iteration limit was reached first.
    IterationLimit,
    /// No step decreased the objective, not even along the gradient: no progress at working
    /// precision, without the convergence test met.
    LineSearchStalled,
    /// Converged as far as f32 evaluations can tell: after real progress no step along the
    /// gradient decreased the objective beyond its rounding (their tolerances are already
    /// scaled to f32's epsilon; this is the rest).
    AtResolution,
    /// Every evaluation failed (not positive definite at the largest jitter, or non-finite).
    Failed,
    /// The member has no observed point: nothing was fitted.
    NoData,
}

impl Termination {
    /// A member's status after its fit, from the status of the evaluation at its kept point and
    /// why its optimiser stopped: Empty, Failed, Degenerate (a degenerate member that did not
    /// fail), MaxIter (stopped unconverged), else the evaluation's (Ok or Jitter).
    pub(crate) fn final_status(self, evaluated: Status, degenerate: bool) -> Status {
        match (evaluated, self) {
            (Status::Empty, _) | (_, Termination::NoData) => Status::Empty,
            (Status::Failed, _) | (_, Termination::Failed) => Status::Failed,
            _ if degenerate => Status::Degenerate,
            (_, Termination::IterationLimit | Termination::LineSearchStalled) => Status::MaxIter,
            (st, _) => st,
        }
    }
    /// Whether the optimiser met its convergence test (at the evaluations' resolution or not).
    pub fn converged(self) -> bool {
        matches!(self, Termination::Converged | Termination::AtResolution)
    }
    /// In words.
    pub fn text(self) -> &'static str {
        match self {
            Termination::Converged => "converged",
            Termination::IterationLimit => "iteration limit",
            Termination::LineSearchStalled => "line search stalled",
            Termination::AtResolution => "converged at the precision's resolution",
            Termination::Failed => "failed",
            Termination::NoData => "no observed point",
        }
    }
}

/// Why a member is degenerate ([`Status::Degenerate`]): its fit is held to a defined limit
/// (noise and outputscale >= 1e-6 var(y), lengthscales within 1e-3..1e3 times the spread of x;
/// for constant y, var(y) is taken as mean(y)^2, or 1 when that is 0).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Degeneracy {
    /// Fewer than [`MIN_POINTS`] observed points.
    TooFewPoints,
    /// Every observed y is the same.
    ConstantY,
}

impl Degeneracy {
    pub fn text(self) -> &'static str {
        match self {
            Degeneracy::TooFewPoints => "too few points",
            Degeneracy::ConstantY => "constant y",
        }
    }
}

/// The optimiser options every fit shares: gtol > 0, ftol >= 0, a finite learning rate > 0.
fn check_steps(gtol: f64, ftol: f64, learning_rate: f64) -> Result<()> {
    if gtol.is_nan() || gtol <= 0.0 || ftol.is_nan() || ftol < 0.0 {
        return Err(Error::option("tolerances", "need gtol > 0 and ftol >= 0"));
    }
    if !(learning_rate > 0.0 && learning_rate.is_finite()) {
        return Err(Error::option("learning_rate", "must be > 0"));
    }
    Ok(())
}

/// The natural values of a member at u, through its maps.
fn theta_of(maps: &[Map], u: &[f64]) -> Vec<f64> {
    u.iter().zip(maps).map(|(u, m)| m.theta(*u)).collect()
}

/// A member that is not optimised (no observed point): stopped from the start.
struct NotRun(Vec<f64>);

impl MemberOptimizer for NotRun {
    fn trial(&self) -> Option<&[f64]> {
        None
    }
    fn observe(&mut self, _f: f64, _g: &[f64]) -> bool {
        false
    }
    fn point(&self) -> (&[f64], f64) {
        (&self.0, f64::NAN)
    }
    fn iterations(&self) -> usize {
        0
    }
    fn termination(&self) -> Option<Termination> {
        Some(Termination::NoData)
    }
}

/// Used by the CLI: the resolved priors of a request (validated), for reporting.
pub fn resolve_priors(priors: &Priors, b: usize, d: usize) -> Result<ResolvedPriors> {
    priors.resolve(b, d)
}
