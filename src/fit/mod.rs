//! Placeholder.
pub struct FitRequest;
pub struct FitResult;
pub trait FitObserver {}
pub enum Optimizer { Lbfgs, Adam }
