//! Choosing a backend, at the edge: [`select`] by kind, [`available`] for the tests, and the
//! request's own or a new one ([`given_or_select`]). The one place above both backends.

use crate::backend::cpu::CpuBackend;
use crate::backend::cuda::CudaBackend;
use crate::backend::{Backend, BackendChoice};
use crate::error::Result;

/// Chooses a backend once, at the edge.
///
/// # Errors
/// [`Error::BackendUnavailable`] when `Cuda` is asked for and no usable GPU, driver or embedded
/// kernels are there (the reason says which).
pub fn select(choice: BackendChoice) -> Result<Box<dyn Backend>> {
    match choice {
        BackendChoice::Cpu => Ok(Box::new(CpuBackend::new())),
        BackendChoice::Cuda => Ok(Box::new(CudaBackend::new()?)),
        BackendChoice::Auto => match CudaBackend::new() {
            Ok(b) => Ok(Box::new(b)),
            Err(_) => Ok(Box::new(CpuBackend::new())),
        },
    }
}

/// The backend a request runs on: the one it was given, else a new one of the chosen kind,
/// kept alive in `slot`.
pub(crate) fn given_or_select<'a>(
    given: Option<&'a dyn Backend>,
    choice: BackendChoice,
    slot: &'a mut Option<Box<dyn Backend>>,
) -> Result<&'a dyn Backend> {
    match given {
        Some(be) => Ok(be),
        None => {
            let be: &'a mut Box<dyn Backend> = slot.insert(select(choice)?);
            Ok(&**be)
        }
    }
}

/// Every backend usable here, CPU first: what the backend-agnostic tests loop over.
pub fn available() -> Vec<Box<dyn Backend>> {
    let mut v: Vec<Box<dyn Backend>> = vec![Box::new(CpuBackend::new())];
    if let Ok(c) = CudaBackend::new() {
        v.push(Box::new(c));
    }
    v
}
