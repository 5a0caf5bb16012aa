//! The leaf words every layer shares: the arithmetic [`Precision`], a member's outcome
//! ([`Status`]) and the jitter escalation of a failed factorisation ([`JitterPolicy`]).

use crate::error::{Error, Result};

/// Arithmetic precision of the computation. Inputs and outputs are f64 either way.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Precision {
    /// Double precision: the default, ~1e-9 relative agreement between backends.
    #[default]
    F64,
    /// Single precision: faster, above all on GPUs; ~1e-4 relative, jitter starts at 1e-6.
    F32,
}

impl std::str::FromStr for Precision {
    type Err = Error;
    fn from_str(s: &str) -> Result<Self> {
        match s {
            "f64" => Ok(Precision::F64),
            "f32" => Ok(Precision::F32),
            _ => Err(Error::option("precision", format!("expected f64 or f32, got `{s}`"))),
        }
    }
}

/// Outcome per member (docs/design.md sections 4 and 14), stored as its code in .npz files.
/// Codes are ordered by severity: combining two outcomes keeps the larger.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
#[repr(u8)]
pub enum Status {
    /// 0: factorised without added jitter (after a fit: converged).
    Ok = 0,
    /// 1: factorised after adding jitter (reported per member).
    Jitter = 1,
    /// 2: the optimiser stopped before converging: at its iteration limit, or in a line search
    /// that stalled above the tolerance (the fit's reason says which).
    MaxIter = 2,
    /// 3: not positive definite at the largest jitter, or non-finite values; numbers are NaN.
    Failed = 3,
    /// 4: the member has no observed point: an MLL or a fit has no number (NaN); a prediction
    /// is the prior.
    Empty = 4,
    /// 5: too few points or constant y: fitted to a defined limit and flagged.
    Degenerate = 5,
}

impl Status {
    /// Every status, by code.
    pub const ALL: [Status; 6] =
        [Status::Ok, Status::Jitter, Status::MaxIter, Status::Failed, Status::Empty, Status::Degenerate];
    /// The numeric code written to files.
    pub fn code(self) -> u8 {
        self as u8
    }
    /// From a numeric code; None for an unknown one.
    pub fn from_code(c: u8) -> Option<Status> {
        Status::ALL.get(c as usize).copied()
    }
    /// Whether the member's numbers are usable.
    pub fn is_ok(self) -> bool {
        !matches!(self, Status::Failed | Status::Empty)
    }
    /// A short word for tables and summaries.
    pub fn text(self) -> &'static str {
        match self {
            Status::Ok => "ok",
            Status::Jitter => "ok (jitter)",
            Status::MaxIter => "not converged",
            Status::Failed => "failed",
            Status::Empty => "empty",
            Status::Degenerate => "degenerate",
        }
    }
}

/// Jitter policy (docs/design.md section 4): on a failed factorisation of member b, retry with
/// jitter = start * mean(diag K_b) * 10^k for k = 0..retries.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct JitterPolicy {
    /// Relative jitter of the first retry: 1e-8 for f64, 1e-6 for f32 by default.
    pub start: f64,
    /// Retries after the jitter-free attempt (default 6: up to 1e-2 relative in f64).
    pub retries: u32,
}

impl JitterPolicy {
    /// The default for a precision.
    pub fn for_precision(p: Precision) -> Self {
        match p {
            Precision::F64 => JitterPolicy { start: 1e-8, retries: 6 },
            Precision::F32 => JitterPolicy { start: 1e-6, retries: 5 },
        }
    }
    /// Absolute jitter of attempt `k` (0 = none) for a matrix whose mean diagonal is `mean_diag`.
    pub fn jitter(&self, k: u32, mean_diag: f64) -> f64 {
        if k == 0 {
            0.0
        } else {
            self.start * mean_diag * 10f64.powi(k as i32 - 1)
        }
    }
}
