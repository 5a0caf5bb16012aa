//! Pyro's "Batching Gaussian Processes", end to end: four GPs over the same 264 points in three
//! dimensions (x_0 on [0, 500], x_1 and x_2 on [0, 50]), each with its own Gamma priors on its
//! lengthscales and a Uniform(10, 150) prior on its outputscale, fitted as one batch.
//!
//!     cargo run --release --example batch_priors [-- OUT_DIR]
//!
//! Prints the fitted hyperparameters of each GP against the values that generated its data,
//! and writes one posterior slice per GP to OUT_DIR/batch_priors.png (default
//! out/batch_priors/). Runs on the GPU when one is usable, else on the CPU. `batchgp demo`
//! runs the same code (batchgp::demo::run_batch_priors).

use batchgp::{backend, BackendChoice, Precision};
use std::path::PathBuf;

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let out = std::env::args().nth(1).map(PathBuf::from).unwrap_or_else(|| batchgp::plot::out_dir("batch_priors"));
    let be = backend::select(BackendChoice::Auto)?;
    println!("backend: {}", be.describe());
    let report = batchgp::demo::run_batch_priors(be.as_ref(), &out, Precision::F64)?;
    println!("{report}");
    Ok(())
}
