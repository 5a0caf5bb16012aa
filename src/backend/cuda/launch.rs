//! Launch shapes and kernel selection: the typed id of every entry point of the embedded
//! fatbin (and the one place that spells its name), which per-member variant handles a matrix
//! of order n, which generation of the fused per-member kernels runs, and the grid, block and
//! shared memory of each launch. The constants mirror kernels/common.cuh, covariance.cuh,
//! gp.cu, gp_warp.cuh and predict.cu.

use crate::kernel::Kernel;
use cudarc::driver::LaunchConfig;
use std::fmt;

/// Threads of the block-per-member kernels and of the grid-stride kernels (BGP_BLOCK).
pub(super) const BLOCK: u32 = 256;
/// Members per block of the warp-per-member kernels (BGP_WARPS_PER_BLOCK).
pub(super) const WARPS_PER_BLOCK: u32 = 4;
/// Threads per block of predict (BGP_PREDICT_THREADS).
pub(super) const PREDICT_THREADS: u32 = 128;
/// gp_mll flags (BGP_FLAG_GRAD, BGP_FLAG_FACTOR).
pub(super) const FLAG_GRAD: i32 = 1;
pub(super) const FLAG_FACTOR: i32 = 2;
/// Largest N of the warp-per-member kernels.
const WARP_MAX_N: usize = 32;
/// Grid size of the grid-stride kernels.
const STRIDE_GRID_MAX: usize = 65_535 * 4;
/// Shared memory every block can have without opting in.
pub(super) const SMEM_DEFAULT: usize = 48 * 1024;
/// Inverse lengthscales kept in shared memory per member by the v1 kernels (BGP_IL_MAX).
const IL_MAX: usize = 32;

/// Generation of the fused per-member kernels (gp_mll_*, chol_*). V1 (the default): row loops
/// instead of tri_index, one barrier per Cholesky column, solves in one warp, lengthscales
/// inverted once per member, two or four members per warp for N <= 16. V0: the kernels as they
/// were before (entry points `*_v0_*`), kept so that a GPU run can time both on one card;
/// `BATCHGP_CUDA_KERNELS=v0` selects them for the whole process.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub(super) enum Generation {
    V0,
    V1,
}

impl Generation {
    /// The process's generation: BATCHGP_CUDA_KERNELS=v0 or v1 (default v1), read once.
    pub fn current() -> Generation {
        static GEN: std::sync::OnceLock<Generation> = std::sync::OnceLock::new();
        *GEN.get_or_init(|| Generation::parse(std::env::var("BATCHGP_CUDA_KERNELS").ok().as_deref()))
    }

    /// `v0` selects V0; anything else (unset included) V1.
    fn parse(v: Option<&str>) -> Generation {
        match v.map(str::trim) {
            Some("v0") => Generation::V0,
            _ => Generation::V1,
        }
    }
}

/// What an entry point computes (kernels/gp.cu, gram.cu, predict.cu).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub(super) enum Op {
    MllWarp,
    MllBlock,
    MllGlobal,
    Gram,
    CholWarp,
    CholBlock,
    CholGlobal,
    Predict,
    PredictCov,
    SvgpElbo,
    SvgpPredict,
    MllWarpV0,
    MllBlockV0,
    MllGlobalV0,
    CholWarpV0,
    CholBlockV0,
    CholGlobalV0,
    MllWarp8,
    MllWarp16,
    MllPrep,
    DenseShift,
    DensePairs,
}

impl Op {
    pub const ALL: [Op; 22] = [
        Op::MllWarp,
        Op::MllBlock,
        Op::MllGlobal,
        Op::Gram,
        Op::CholWarp,
        Op::CholBlock,
        Op::CholGlobal,
        Op::Predict,
        Op::PredictCov,
        Op::SvgpElbo,
        Op::SvgpPredict,
        Op::MllWarpV0,
        Op::MllBlockV0,
        Op::MllGlobalV0,
        Op::CholWarpV0,
        Op::CholBlockV0,
        Op::CholGlobalV0,
        Op::MllWarp8,
        Op::MllWarp16,
        Op::MllPrep,
        Op::DenseShift,
        Op::DensePairs,
    ];

    /// The first part of the entry point's name.
    fn stem(self) -> &'static str {
        match self {
            Op::MllWarp => "gp_mll_warp",
            Op::MllBlock => "gp_mll_block",
            Op::MllGlobal => "gp_mll_global",
            Op::Gram => "gram",
            Op::CholWarp => "chol_warp",
            Op::CholBlock => "chol_block",
            Op::CholGlobal => "chol_global",
            Op::Predict => "predict",
            Op::PredictCov => "predict_cov",
            Op::SvgpElbo => "svgp_elbo",
            Op::SvgpPredict => "svgp_predict",
            Op::MllWarpV0 => "gp_mll_warp_v0",
            Op::MllBlockV0 => "gp_mll_block_v0",
            Op::MllGlobalV0 => "gp_mll_global_v0",
            Op::CholWarpV0 => "chol_warp_v0",
            Op::CholBlockV0 => "chol_block_v0",
            Op::CholGlobalV0 => "chol_global_v0",
            Op::MllWarp8 => "gp_mll_warp8",
            Op::MllWarp16 => "gp_mll_warp16",
            Op::MllPrep => "gp_mll_prep",
            Op::DenseShift => "dense_shift",
            Op::DensePairs => "dense_pairs",
        }
    }

    /// Whether the op is instantiated per covariance kernel (all but the Cholesky of given
    /// matrices, the MLL preparation and the dense shift).
    fn has_covariance(self) -> bool {
        !matches!(
            self,
            Op::CholWarp
                | Op::CholBlock
                | Op::CholGlobal
                | Op::CholWarpV0
                | Op::CholBlockV0
                | Op::CholGlobalV0
                | Op::MllPrep
                | Op::DenseShift
        )
    }

    /// Whether the op takes dynamic shared memory (whose limit is raised to the opt-in maximum
    /// when the module loads).
    pub fn dynamic_shared(self) -> bool {
        matches!(
            self,
            Op::MllWarp
                | Op::MllBlock
                | Op::CholWarp
                | Op::CholBlock
                | Op::SvgpElbo
                | Op::SvgpPredict
                | Op::MllWarpV0
                | Op::MllBlockV0
                | Op::CholWarpV0
                | Op::CholBlockV0
                | Op::MllWarp8
                | Op::MllWarp16
        )
    }

    /// The fused MLL kernel of a variant, in the process's generation.
    pub fn mll(v: Variant) -> Op {
        Op::mll_of(v, Generation::current())
    }

    fn mll_of(v: Variant, g: Generation) -> Op {
        match (v, g) {
            (Variant::Warp8, Generation::V1) => Op::MllWarp8,
            (Variant::Warp16, Generation::V1) => Op::MllWarp16,
            (Variant::Warp, Generation::V1) => Op::MllWarp,
            (Variant::Block, Generation::V1) => Op::MllBlock,
            (Variant::Global, Generation::V1) => Op::MllGlobal,
            (Variant::Warp | Variant::Warp8 | Variant::Warp16, Generation::V0) => Op::MllWarpV0,
            (Variant::Block, Generation::V0) => Op::MllBlockV0,
            (Variant::Global, Generation::V0) => Op::MllGlobalV0,
        }
    }

    /// The Cholesky kernel of a variant, in the process's generation.
    fn chol(v: Variant) -> Op {
        // chol_warp (v1) takes every warp launch: it runs a warp's members one after another.
        match (v, Generation::current()) {
            (Variant::Warp | Variant::Warp8 | Variant::Warp16, Generation::V1) => Op::CholWarp,
            (Variant::Block, Generation::V1) => Op::CholBlock,
            (Variant::Global, Generation::V1) => Op::CholGlobal,
            (Variant::Warp | Variant::Warp8 | Variant::Warp16, Generation::V0) => Op::CholWarpV0,
            (Variant::Block, Generation::V0) => Op::CholBlockV0,
            (Variant::Global, Generation::V0) => Op::CholGlobalV0,
        }
    }
}

/// Arithmetic type of a kernel.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub(super) enum Dtype {
    F64,
    F32,
}

impl Dtype {
    pub const ALL: [Dtype; 2] = [Dtype::F64, Dtype::F32];
    fn name(self) -> &'static str {
        match self {
            Dtype::F64 => "f64",
            Dtype::F32 => "f32",
        }
    }
}

/// One entry point of the embedded kernels: op, covariance kernel (None for the ops that have
/// none) and precision.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub(super) struct KernelId {
    pub op: Op,
    kernel: Option<Kernel>,
    pub dtype: Dtype,
}

impl KernelId {
    /// The entry point of `op` for covariance `kernel` (ignored by the Cholesky ops) in `dtype`.
    pub fn new(op: Op, kernel: Kernel, dtype: Dtype) -> Self {
        KernelId { op, kernel: op.has_covariance().then_some(kernel), dtype }
    }

    /// The Cholesky kernel of a variant (no covariance kernel involved).
    pub fn chol(v: Variant, dtype: Dtype) -> Self {
        KernelId { op: Op::chol(v), kernel: None, dtype }
    }

    /// Every entry point the fatbin holds.
    pub fn all() -> impl Iterator<Item = KernelId> {
        Dtype::ALL.into_iter().flat_map(|dtype| {
            Op::ALL.into_iter().flat_map(move |op| {
                let kernels: &'static [Kernel] = if op.has_covariance() { &Kernel::ALL } else { &Kernel::ALL[..1] };
                kernels.iter().map(move |&k| KernelId::new(op, k, dtype))
            })
        })
    }
}

/// The entry point's name, as the kernels' macros emit it: `<op>_<kernel>_<dtype>`
/// (gp_mll_warp_matern52_f64), or `<op>_<dtype>` for the Cholesky ops (chol_block_f32).
impl fmt::Display for KernelId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.kernel {
            Some(k) => write!(f, "{}_{}_{}", self.op.stem(), k.name(), self.dtype.name()),
            None => write!(f, "{}_{}", self.op.stem(), self.dtype.name()),
        }
    }
}

/// Which per-member kernel variant handles matrices of order n. Warp8 and Warp16 (v1 only): the
/// warp kernel with four and two members per warp (N <= 8, N <= 16).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Variant {
    Warp8,
    Warp16,
    Warp,
    Block,
    Global,
}

/// Elements of one member's shared-memory region of the v0 warp kernels (kernels/gp.cu
/// warp_elems); v1 adds the inverse lengthscales (gp_warp.cuh warp_region_v1).
fn warp_elems(n: usize, g: Generation) -> usize {
    let e = n * (n + 1) + 2 * n;
    ((e + 1) & !1) + if g == Generation::V1 { IL_MAX } else { 0 }
}

/// Members per warp of the v1 warp kernels for order n (gp_warp.cuh warp_members_v1).
fn warp_members(n: usize) -> usize {
    if n <= 8 {
        4
    } else if n <= 16 {
        2
    } else {
        1
    }
}

/// Dynamic shared memory of a warp-variant launch (one block of BGP_WARPS_PER_BLOCK warps of
/// `mpw` members each).
fn warp_smem(n: usize, sz: usize, mpw: usize, g: Generation) -> usize {
    WARPS_PER_BLOCK as usize * mpw * warp_elems(n, g) * sz
}

/// Dynamic shared memory of a block-variant launch (kernels/gp.cu BGP_GP_GEN): 32 doubles of
/// scratch, the matrix, two columns and (v1) the inverse lengthscales.
fn block_smem(n: usize, sz: usize, g: Generation) -> usize {
    32 * 8 + (n * (n + 1) + 2 * n + if g == Generation::V1 { IL_MAX } else { 0 }) * sz
}

/// Elements of one member's global workspace (kernels/gp.cu WORK_STRIDE).
pub(super) fn work_elems(n: usize) -> usize {
    n * n + 2 * n
}

impl Variant {
    /// The variant for order n in elements of `sz` bytes, given the opt-in shared memory limit,
    /// in the process's generation.
    pub fn select(n: usize, sz: usize, smem_optin: usize) -> Variant {
        Variant::select_for(n, sz, smem_optin, Generation::current())
    }

    fn select_for(n: usize, sz: usize, smem_optin: usize, g: Generation) -> Variant {
        let warp = match (g, warp_members(n)) {
            (Generation::V1, 4) => Variant::Warp8,
            (Generation::V1, 2) => Variant::Warp16,
            _ => Variant::Warp,
        };
        if n <= WARP_MAX_N && warp_smem(n, sz, warp.members(), g) <= smem_optin.max(SMEM_DEFAULT) {
            warp
        } else if block_smem(n, sz, g) <= smem_optin {
            Variant::Block
        } else {
            Variant::Global
        }
    }

    /// Elements of T of global workspace per member (the global variant's).
    pub fn work_per_member(self, n: usize) -> usize {
        if self == Variant::Global {
            work_elems(n)
        } else {
            0
        }
    }

    /// Launch shape for `count` members, in the process's generation.
    pub fn launch(self, n: usize, sz: usize, count: usize) -> LaunchConfig {
        self.launch_for(n, sz, count, Generation::current())
    }

    /// Members per warp (the warp variants; 1 for the others).
    fn members(self) -> usize {
        match self {
            Variant::Warp8 => 4,
            Variant::Warp16 => 2,
            _ => 1,
        }
    }

    fn launch_for(self, n: usize, sz: usize, count: usize, g: Generation) -> LaunchConfig {
        match self {
            Variant::Warp | Variant::Warp8 | Variant::Warp16 => LaunchConfig {
                grid_dim: (count.div_ceil(WARPS_PER_BLOCK as usize * self.members()) as u32, 1, 1),
                block_dim: (32 * WARPS_PER_BLOCK, 1, 1),
                shared_mem_bytes: warp_smem(n, sz, self.members(), g) as u32,
            },
            Variant::Block => LaunchConfig {
                grid_dim: (count as u32, 1, 1),
                block_dim: (BLOCK, 1, 1),
                shared_mem_bytes: block_smem(n, sz, g) as u32,
            },
            Variant::Global => {
                LaunchConfig { grid_dim: (count as u32, 1, 1), block_dim: (BLOCK, 1, 1), shared_mem_bytes: 0 }
            }
        }
    }
}

/// Launch shape of a grid-stride kernel over `total` entries.
pub(super) fn stride_launch(total: usize) -> LaunchConfig {
    LaunchConfig {
        grid_dim: (total.div_ceil(BLOCK as usize).clamp(1, STRIDE_GRID_MAX) as u32, 1, 1),
        block_dim: (BLOCK, 1, 1),
        shared_mem_bytes: 0,
    }
}

/// Launch shape of predict: ceil(M / 128) blocks of 128 threads per member.
pub(super) fn predict_launch(m: usize, count: usize) -> LaunchConfig {
    LaunchConfig {
        grid_dim: ((predict_tiles(m) * count) as u32, 1, 1),
        block_dim: (PREDICT_THREADS, 1, 1),
        shared_mem_bytes: 0,
    }
}

/// Blocks of predict per member.
pub(super) fn predict_tiles(m: usize) -> usize {
    m.div_ceil(PREDICT_THREADS as usize).max(1)
}

/// The launch shapes of the backend, for the host emulation of the kernels
/// (tests/cuda_agreement.rs `kernels_in_host_emulation`, tests/svgp_cuda.rs
/// `svgp_kernels_in_host_emulation`): it runs every kernel with the grid,
/// block and exactly the dynamic shared memory these functions give, so that the emulation and
/// the launches cannot drift apart. Not an API.
#[doc(hidden)]
pub mod emulation {
    use super::{predict_launch, stride_launch, Generation, LaunchConfig, Variant};

    /// (grid.x, block.x, dynamic shared memory bytes) of a launch.
    pub type Shape = (u32, u32, u32);

    fn shape(c: LaunchConfig) -> Shape {
        (c.grid_dim.0, c.block_dim.0, c.shared_mem_bytes)
    }

    /// A variant by name; `warp` is the warp kernel the v1 backend launches for order n.
    fn variant(name: &str, n: usize) -> Variant {
        match name {
            "warp" => match Variant::select_for(n, 8, 0, Generation::V1) {
                v @ (Variant::Warp8 | Variant::Warp16) => v,
                _ => Variant::Warp,
            },
            "block" => Variant::Block,
            "global" => Variant::Global,
            _ => panic!("no variant {name:?}"),
        }
    }

    /// The variant (`warp`, `block` or `global`) the backend picks for order n in elements of
    /// `sz` bytes on a device with `smem_optin` bytes of opt-in shared memory per block (v1
    /// kernels).
    pub fn select(n: usize, sz: usize, smem_optin: usize) -> &'static str {
        match Variant::select_for(n, sz, smem_optin, Generation::V1) {
            Variant::Warp | Variant::Warp8 | Variant::Warp16 => "warp",
            Variant::Block => "block",
            Variant::Global => "global",
        }
    }

    /// The launch of a variant's v1 per-member kernels (gp_mll_*, chol_*) for `count` members
    /// (tests/emulation/harness.cpp derives the v0 kernels' launch from it as
    /// `launch_shapes_by_generation` below pins them).
    pub fn member_launch(name: &str, n: usize, sz: usize, count: usize) -> Shape {
        shape(variant(name, n).launch_for(n, sz, count, Generation::V1))
    }

    /// Elements of the global workspace per member of a variant.
    pub fn work_per_member(name: &str, n: usize) -> usize {
        variant(name, n).work_per_member(n)
    }

    /// The launch of a grid-stride kernel (gram, predict_cov) over `total` entries.
    pub fn stride(total: usize) -> Shape {
        shape(stride_launch(total))
    }

    /// The launch of predict for `m` test points and `count` members.
    pub fn predict(m: usize, count: usize) -> Shape {
        shape(predict_launch(m, count))
    }

    /// The launch of the SVGP kernels (svgp_elbo_*, svgp_predict_*) for `count` members of `m`
    /// inducing points in elements of `sz` bytes with `smem_optin` bytes of opt-in shared
    /// memory: (grid.x, block.x, dynamic shared memory bytes, the factor in shared memory).
    pub fn svgp_launch(m: usize, sz: usize, count: usize, smem_optin: usize) -> (u32, u32, u32, bool) {
        let (c, smem) = super::svgp_launch(m, sz, count, smem_optin);
        let (g, b, s) = shape(c);
        (g, b, s, smem)
    }
}

/// Points per tile of the SVGP kernels (BGP_SVGP_TILE).
const SVGP_TILE: usize = 32;
/// svgp flags (BGP_SVGP_GRAD, BGP_SVGP_YVAR, BGP_SVGP_SMEM, BGP_SVGP_WANT_A).
pub(super) const SVGP_GRAD: i32 = 1;
pub(super) const SVGP_YVAR: i32 = 2;
pub(super) const SVGP_SMEM: i32 = 4;
pub(super) const SVGP_WANT_A: i32 = 8;

/// Elements of T of an SVGP member's factor, tile and column (kernels/svgp.cu svgp_smem_elems,
/// svgp_twork_elems).
pub(super) fn svgp_t_elems(m: usize) -> usize {
    m * (m + 1) + m * SVGP_TILE + m
}

/// Doubles of an SVGP member's global workspace (kernels/svgp.cu svgp_dwork_elems).
pub(super) fn svgp_d_elems(m: usize, d: usize) -> usize {
    3 * m * m + 2 * m + m * (d + 2) + m * SVGP_TILE + 2 * SVGP_TILE
}

/// Launch shape of the SVGP kernels for `count` members of M inducing points in elements of
/// `sz` bytes: one block of BLOCK threads per member, with the factor and the tile in shared
/// memory when they fit in the opt-in limit (the flag SVGP_SMEM, returned), else only the 32
/// doubles of reduction scratch (the factor and the tile then live in the global workspace).
pub(super) fn svgp_launch(m: usize, sz: usize, count: usize, smem_optin: usize) -> (LaunchConfig, bool) {
    let full = 32 * 8 + svgp_t_elems(m) * sz;
    let smem = full <= smem_optin.max(SMEM_DEFAULT);
    let cfg = LaunchConfig {
        grid_dim: (count as u32, 1, 1),
        block_dim: (BLOCK, 1, 1),
        shared_mem_bytes: if smem { full as u32 } else { 32 * 8 },
    };
    (cfg, smem)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_follow_the_kernels_macros() {
        let id = KernelId::new(Op::MllWarp, Kernel::Matern52, Dtype::F64);
        assert_eq!(id.to_string(), "gp_mll_warp_matern52_f64");
        assert_eq!(KernelId::new(Op::Gram, Kernel::Rq, Dtype::F32).to_string(), "gram_rq_f32");
        assert_eq!(KernelId::new(Op::PredictCov, Kernel::Rbf, Dtype::F64).to_string(), "predict_cov_rbf_f64");
        assert_eq!(KernelId::new(Op::CholBlock, Kernel::Rq, Dtype::F32).to_string(), "chol_block_f32");
        assert_eq!(KernelId::new(Op::SvgpElbo, Kernel::Matern32, Dtype::F32).to_string(), "svgp_elbo_matern32_f32");
        assert_eq!(KernelId::new(Op::MllPrep, Kernel::Rq, Dtype::F64).to_string(), "gp_mll_prep_f64");
        assert_eq!(KernelId::new(Op::DensePairs, Kernel::Rq, Dtype::F32).to_string(), "dense_pairs_rq_f32");
        // 14 covariance ops x 5 kernels + 6 Cholesky ops (v1 and v0) + the MLL preparation and
        // the dense shift, in two precisions, all distinct.
        let names: std::collections::HashSet<String> = KernelId::all().map(|k| k.to_string()).collect();
        assert_eq!(names.len(), 2 * (14 * 5 + 6 + 2));
    }

    #[test]
    fn variants_by_size() {
        let optin = 227 * 1024;
        assert_eq!(Variant::select_for(8, 8, optin, Generation::V1), Variant::Warp8);
        assert_eq!(Variant::select_for(9, 8, optin, Generation::V1), Variant::Warp16);
        assert_eq!(Variant::select_for(16, 4, optin, Generation::V1), Variant::Warp16);
        assert_eq!(Variant::select_for(17, 8, optin, Generation::V1), Variant::Warp);
        assert_eq!(Variant::select_for(8, 8, optin, Generation::V0), Variant::Warp);
        for g in [Generation::V0, Generation::V1] {
            assert_eq!(Variant::select_for(32, 8, optin, g), Variant::Warp);
            assert_eq!(Variant::select_for(33, 8, optin, g), Variant::Block);
            assert_eq!(Variant::select_for(168, 8, optin, g), Variant::Block);
            assert_eq!(Variant::select_for(169, 8, optin, g), Variant::Global);
            assert_eq!(Variant::select_for(239, 4, optin, g), Variant::Block);
            assert_eq!(Variant::select_for(240, 4, optin, g), Variant::Global);
        }
    }

    #[test]
    fn generations_name_their_entry_points_and_parse() {
        assert_eq!(Generation::parse(None), Generation::V1);
        assert_eq!(Generation::parse(Some("v0")), Generation::V0);
        assert_eq!(Generation::parse(Some(" v0 ")), Generation::V0);
        assert_eq!(Generation::parse(Some("v1")), Generation::V1);
        let v0 = KernelId::new(Op::mll_of(Variant::Block, Generation::V0), Kernel::Rbf, Dtype::F64);
        assert_eq!(v0.to_string(), "gp_mll_block_v0_rbf_f64");
        let v1 = KernelId::new(Op::mll_of(Variant::Warp, Generation::V1), Kernel::Rq, Dtype::F32);
        assert_eq!(v1.to_string(), "gp_mll_warp_rq_f32");
        let v1 = KernelId::new(Op::mll_of(Variant::Warp16, Generation::V1), Kernel::Rbf, Dtype::F64);
        assert_eq!(v1.to_string(), "gp_mll_warp16_rbf_f64");
        assert_eq!(KernelId::new(Op::CholGlobalV0, Kernel::Rq, Dtype::F64).to_string(), "chol_global_v0_f64");
    }

    /// The v0 launches are the kernels' as they were (one member per warp, no inverse
    /// lengthscales), which tests/emulation/harness.cpp's v0_shape also computes; v1 packs
    /// members for N <= 16.
    #[test]
    fn launch_shapes_by_generation() {
        for (n, sz, count) in [(6, 8, 37), (12, 4, 9), (16, 8, 5), (17, 8, 5), (32, 4, 100)] {
            let v0 = Variant::Warp.launch_for(n, sz, count, Generation::V0);
            let old_elems = (n * (n + 1) + 2 * n + 1) & !1;
            assert_eq!(v0.grid_dim.0 as usize, count.div_ceil(4));
            assert_eq!(v0.shared_mem_bytes as usize, 4 * old_elems * sz);
            let w = Variant::select_for(n, sz, 227 * 1024, Generation::V1);
            let v1 = w.launch_for(n, sz, count, Generation::V1);
            let mpw = if n <= 8 {
                4
            } else if n <= 16 {
                2
            } else {
                1
            };
            assert_eq!(v1.grid_dim.0 as usize, count.div_ceil(4 * mpw), "n = {n}");
            assert_eq!(v1.shared_mem_bytes as usize, 4 * mpw * (old_elems + IL_MAX) * sz);
            let b0 = Variant::Block.launch_for(n, sz, count, Generation::V0);
            let b1 = Variant::Block.launch_for(n, sz, count, Generation::V1);
            assert_eq!(b0.shared_mem_bytes as usize, 32 * 8 + (n * (n + 1) + 2 * n) * sz);
            assert_eq!(b1.shared_mem_bytes - b0.shared_mem_bytes, (IL_MAX * sz) as u32);
            assert_eq!((b0.grid_dim, b0.block_dim), (b1.grid_dim, b1.block_dim));
        }
    }

    #[test]
    fn svgp_shared_memory_by_size() {
        let optin = 227 * 1024;
        assert!(svgp_launch(128, 8, 1, optin).1);
        assert!(svgp_launch(154, 8, 1, optin).1);
        assert!(!svgp_launch(155, 8, 1, optin).1);
        assert!(svgp_launch(224, 4, 1, optin).1);
        assert!(!svgp_launch(225, 4, 1, optin).1);
    }
}
