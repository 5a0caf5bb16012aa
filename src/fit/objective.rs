//! The model-agnostic batched objective that the optimisers see: per member, an unconstrained
//! vector in; a value to minimise, its gradient and a numerical status out. The exact GP
//! ([`super::exact::ExactObjective`]) is one implementation; a sparse variational GP is
//! another, and neither the optimisers nor the driver know which they run.

use crate::data::Status;
use crate::error::Result;

/// One member's evaluation.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct MemberEval {
    /// The value to minimise (+inf when the evaluation failed).
    pub f: f64,
    /// Its gradient with respect to the member's vector (NaN when failed).
    pub grad: Vec<f64>,
    /// The numerical status of the evaluation (Ok, Jitter or Failed).
    pub status: Status,
    /// Jitter added to the member's matrices.
    pub jitter: f64,
}

impl MemberEval {
    /// A failed evaluation of a member with `p` coordinates: f = +inf, a NaN gradient.
    pub fn failed(p: usize, jitter: f64) -> Self {
        MemberEval { f: f64::INFINITY, grad: vec![f64::NAN; p], status: Status::Failed, jitter }
    }
}

/// A batch of independent objectives, one per member, evaluated together.
pub(crate) trait BatchObjective {
    /// Members in the batch.
    fn members(&self) -> usize;
    /// Evaluates the members listed in `active` at `points` (one vector per listed member).
    ///
    /// # Errors
    /// Only for a failure of the whole batch (a backend that fails); a member's numerical
    /// trouble is its status.
    fn evaluate(&mut self, active: &[usize], points: &[&[f64]]) -> Result<Vec<MemberEval>>;
}
