//! Choosing a backend, at the edge: [`select`] by kind, [`available`] for the tests, the
//! request's own or a new one ([`given_or_select`]), and which one a `&dyn Backend` is
//! ([`kind`]). The one place above both backends.

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

/// Which concrete backend a `&dyn Backend` is: what a model's module matches on to call its own
/// CPU or CUDA functions (docs/design.md, "Adding a model").
pub enum Kind<'a> {
    Cpu(&'a CpuBackend),
    Cuda(&'a CudaBackend),
    /// A backend made outside this crate.
    Other,
}

/// The concrete backend behind `be`.
pub fn kind(be: &dyn Backend) -> Kind<'_> {
    let any = be.as_any();
    if let Some(c) = any.and_then(|a| a.downcast_ref::<CpuBackend>()) {
        Kind::Cpu(c)
    } else if let Some(g) = any.and_then(|a| a.downcast_ref::<CudaBackend>()) {
        Kind::Cuda(g)
    } else {
        Kind::Other
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::backend::BackendChoice;

    #[test]
    fn kind_names_the_backend_behind_a_trait_object() {
        let be = select(BackendChoice::Cpu).expect("cpu");
        assert!(matches!(kind(&*be), Kind::Cpu(_)));
        for be in available() {
            match (be.name(), kind(&*be)) {
                ("cpu", Kind::Cpu(_)) | ("cuda", Kind::Cuda(_)) => {}
                (name, _) => panic!("kind() does not match the backend `{name}`"),
            }
        }
    }
}
