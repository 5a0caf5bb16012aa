//! The one error type of the crate.
//!
//! An `Err` means the whole request was meaningless (shapes that do not agree, a missing array,
//! non-finite input outside the mask, invalid prior parameters, a backend that cannot be had).
//! Numerical trouble in one member (a matrix that is not positive definite) is never an error:
//! it is reported in that member's [`Status`](crate::Status) and the others go on.

use thiserror::Error;

/// Everything that can reject a request, with the values that explain it.
#[derive(Debug, Error, Clone, PartialEq)]
#[non_exhaustive]
pub enum Error {
    /// An array has the wrong number of dimensions or the wrong extent.
    #[error("array `{array}` has shape {actual:?}, expected {expected}")]
    Shape { array: String, expected: String, actual: Vec<usize> },
    /// A required array was not given (for example missing from an .npz file).
    #[error("missing array `{array}`{context}")]
    Missing { array: String, context: String },
    /// A non-finite value where a finite one is required (outside the mask for x and y).
    #[error("array `{array}` holds a non-finite value {value} at (member {member}, index {index})")]
    NonFinite { array: String, member: usize, index: usize, value: f64 },
    /// A hyperparameter outside its domain (lengthscale <= 0, say).
    #[error("{name} must be {requirement}, got {value} at (member {member}, index {index})")]
    InvalidHyperparameter { name: String, requirement: String, member: usize, index: usize, value: f64 },
    /// A prior whose parameters are invalid, or whose shape does not broadcast.
    #[error("invalid prior on {target}: {reason}")]
    InvalidPrior { target: String, reason: String },
    /// An option outside its range.
    #[error("invalid option `{name}`: {reason}")]
    InvalidOption { name: String, reason: String },
    /// The requested backend cannot be used here.
    #[error("backend `{backend}` is not available: {reason}")]
    BackendUnavailable { backend: String, reason: String },
    /// A failure inside the CUDA driver or a kernel launch: what was being done, and the
    /// driver's error (its code: `source.0`).
    #[error("CUDA error: {what}: {source}")]
    Cuda { what: String, source: cudarc::driver::DriverError },
    /// One member alone needs more memory than the budget (`max_memory`, default the memory
    /// available): refused before any work.
    #[error(
        "one member with N = {n} needs {} of memory, more than the {} available (see --max-memory)",
        format_bytes(*needed),
        format_bytes(*budget)
    )]
    OutOfMemory { n: usize, needed: u64, budget: u64 },
    /// An allocation that planning let through failed: what it was for, its size and the
    /// limit in force (`ulimit -v` when set, else the memory available).
    #[error(
        "could not allocate {} for {what} ({limit}); lower --max-memory or free memory",
        format_bytes(*bytes)
    )]
    AllocationFailed { what: String, bytes: u64, limit: String },
    /// What a request's options imply (restarts x members, samples, inducing points, steps of
    /// loss history) needs more memory than the budget: refused before any allocation.
    #[error(
        "{request} needs {} of memory, more than the {} available",
        format_bytes(*needed),
        format_bytes(*budget)
    )]
    TooLarge { request: String, needed: u64, budget: u64 },
    /// The caller asked a long computation to stop (a KeyboardInterrupt, say).
    #[error("interrupted")]
    Interrupted,
    /// Reading or writing a file.
    #[error("{path}: {reason}")]
    Io { path: String, reason: String },
}

/// Shorthand for results of this crate.
pub type Result<T, E = Error> = std::result::Result<T, E>;

impl Error {
    pub(crate) fn shape(array: &str, expected: impl Into<String>, actual: &[usize]) -> Self {
        Error::Shape { array: array.to_string(), expected: expected.into(), actual: actual.to_vec() }
    }
    pub(crate) fn option(name: &str, reason: impl Into<String>) -> Self {
        Error::InvalidOption { name: name.to_string(), reason: reason.into() }
    }
}

/// A byte count for people: `1.5 GiB`.
pub fn format_bytes(b: u64) -> String {
    let units = ["B", "KiB", "MiB", "GiB", "TiB", "PiB"];
    let mut v = b as f64;
    let mut i = 0;
    while v >= 1024.0 && i + 1 < units.len() {
        v /= 1024.0;
        i += 1;
    }
    if i == 0 {
        format!("{b} B")
    } else {
        format!("{v:.1} {}", units[i])
    }
}
