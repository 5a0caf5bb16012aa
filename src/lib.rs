//! # batchgp
//!
//! Fit, evaluate and predict with many independent exact Gaussian processes at once: B GPs
//! (1 to 100,000+), each with its own N points, D input dimensions, hyperparameters and priors,
//! on NVIDIA GPUs (hand-written CUDA kernels launched through cudarc) or on CPUs (rayon), with
//! the same results on both.
//!
//! The model of member b (docs/design.md section 1):
//!
//! ```text
//! k_b(x, z) = s_b * exp(-0.5 * sum_d (x_d - z_d)^2 / l_{b,d}^2)
//! K_b       = k_b(X_b, X_b) + (sigma2_b + jitter_b) I
//! y_b       ~ N(m_b 1, K_b)
//! mll_b     = -0.5 r^T K^-1 r - 0.5 log|K| - (n_b / 2) log(2 pi),   r = y_b - m_b
//! ```
//!
//! ```
//! use batchgp::{Dataset, Hyperparameters, MllRequest};
//! use ndarray::{Array2, Array3};
//! // 4 GPs, 20 points each in 2 dimensions
//! let x = Array3::from_shape_fn((4, 20, 2), |(b, i, d)| ((b + 3 * i + 7 * d) % 11) as f64 / 11.0);
//! let y = Array2::from_shape_fn((4, 20), |(b, i)| (i as f64 * 0.3 + b as f64).sin());
//! let data = Dataset::new(x, y).unwrap();
//! let hyp = Hyperparameters::broadcast(4, &[0.5, 0.5], 1.0, 0.1, 0.0);
//! let out = MllRequest::new(&data, &hyp).run().unwrap();
//! assert_eq!(out.mll.len(), 4);
//! ```

pub mod backend;
pub mod data;
#[cfg(feature = "cli")]
pub mod demo;
pub mod error;
pub mod fit;
pub mod gradient;
pub mod io;
pub mod kernel;
pub mod layout;
pub mod model;
mod numeric;
#[cfg(feature = "cli")]
pub mod plot;
pub mod precision;
pub mod prior;
pub mod sample;
mod special;
pub mod svgp;
pub mod target;

pub use backend::{
    select, Backend, BackendChoice, CholeskyBatch, JitterPolicy, MllBatch, MllGradient, MllOptions, PredictOptions,
    Prediction,
};
pub use data::{Dataset, Hyperparameters, Inputs, Precision, Status};
pub use error::{Error, Result};
#[cfg(feature = "cli")]
pub use fit::ProgressBarObserver;
pub use fit::{
    Bounds, Degeneracy, Exact, ExactFit, FitObserver, FitProgress, FitRequest, FitResult, Model, Optimizer, Svgp,
    SvgpFit, SvgpFitRequest, SvgpFitResult, Termination,
};
pub use kernel::Kernel;
pub use layout::{Layout, SvgpLayout, Target};
pub use model::{predict, EvalRequest, Evaluate, MllReport, MllRequest};
pub use prior::{Prior, PriorFamily, Priors};
pub use sample::{draw_samples, sample_prior};

/// The README's code blocks, compiled and run as doctests.
#[cfg(doctest)]
#[doc = include_str!("../README.md")]
pub struct ReadmeDoctests;
