//! `batchgp demo`: the embedded example (the Pyro batch-priors case) with its report and plot.

use super::{setup, Common};
use clap::Args;
use std::path::Path;

#[derive(Args)]
pub struct DemoArgs {
    /// Folder for the plot (created when missing).
    #[arg(long, default_value = "out/demo", value_name = "DIR")]
    out_dir: String,
    #[command(flatten)]
    common: Common,
}

pub fn run(a: DemoArgs) -> batchgp::Result<()> {
    let DemoArgs { out_dir, common } = a;
    let (be, precision) = setup(&common)?;
    let report = batchgp::demo::run_batch_priors(be.as_ref(), Path::new(&out_dir), precision)?;
    say!("{report}");
    Ok(())
}
