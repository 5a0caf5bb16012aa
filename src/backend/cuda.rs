//! CUDA backend (placeholder until the kernels land): reports itself unavailable.

use super::{Backend, CholeskyBatch, JitterPolicy, MllBatch, MllOptions, PredictOptions, Prediction};
use crate::data::{Dataset, Hyperparameters, Inputs, Precision};
use crate::error::{Error, Result};
use ndarray::Array3;

/// The GPU backend.
pub struct CudaBackend {
    _private: (),
}

impl CudaBackend {
    /// Opens the first CUDA device.
    ///
    /// # Errors
    /// [`Error::BackendUnavailable`] when libcuda, a device or the embedded kernels are missing.
    pub fn new() -> Result<Self> {
        Err(Error::BackendUnavailable { backend: "cuda".into(), reason: "built without CUDA kernels".into() })
    }
}

impl Backend for CudaBackend {
    fn name(&self) -> &'static str {
        "cuda"
    }
    fn describe(&self) -> String {
        "cuda".into()
    }
    fn gram(&self, _: &Dataset, _: &Hyperparameters, _: Precision) -> Result<Array3<f64>> {
        unreachable!()
    }
    fn cholesky(&self, _: &Array3<f64>, _: Precision, _: JitterPolicy) -> Result<CholeskyBatch> {
        unreachable!()
    }
    fn mll(&self, _: &Dataset, _: &Hyperparameters, _: Option<&[usize]>, _: &MllOptions) -> Result<MllBatch> {
        unreachable!()
    }
    fn predict(&self, _: &Dataset, _: &Hyperparameters, _: &Inputs, _: &PredictOptions) -> Result<Prediction> {
        unreachable!()
    }
}
