//! `batchgp info`: the backends found, the GPU's name and which kernels the build embeds.

use super::Common;
use batchgp::backend::{self, Backend};
use batchgp::Precision;
use clap::Args;

#[derive(Args)]
pub struct InfoArgs {
    #[command(flatten)]
    common: Common,
}

pub fn run(a: InfoArgs) -> batchgp::Result<()> {
    let InfoArgs { common } = a;
    let _: Precision = common.precision.parse()?;
    say!("batchgp {}", env!("CARGO_PKG_VERSION"));
    say!("cpu: {}", backend::cpu::CpuBackend::new().describe());
    say!("kernels: {}", backend::cuda::build_info());
    say!("driver: {}", backend::cuda::probe());
    match backend::cuda::CudaBackend::new() {
        Ok(c) => say!("cuda: usable: {}", c.describe()),
        Err(e) => {
            say!("cuda: not usable: {e}");
            // Where a GPU is expected (a lent GPU machine, a GPU CI runner), its absence
            // is an error, not a fallback.
            if std::env::var_os("BATCHGP_REQUIRE_CUDA").is_some_and(|v| !v.is_empty() && v != "0") {
                return Err(e);
            }
        }
    }
    let chosen = backend::select(common.backend.parse()?)?;
    say!("selected backend: {}", chosen.name());
    Ok(())
}
