//! The MLL and its gradient for members too large for the fused block kernel, through dense
//! linear algebra on batches of matrices: the factorisation and the inverse from a vendor library
//! (cuSOLVER, cuBLAS: [`super::vendor`]), the O(N^2) passes (Gram, the jitter shift, the
//! per-pair gradient weights) in our own kernels. The plumbing is generic over [`DenseOps`], so
//! that a CPU reference ([`super::dense_reference`]) runs it here and the tests compare it with the
//! CPU backend.
//!
//! Per chunk of c members of N (padded) points, matrices column-major, symmetric ones full:
//! 1. K0 = the Gram matrices (noise and yvar on the diagonal, identity at masked points).
//! 2. For attempt t = 0.. while a member has not factored: A = K0 + jit_t diag(mask) for those
//!    members, potrf; a member whose factorisation succeeds keeps attempt t (its status and
//!    jitter as the CPU backend reports them), one that never does fails.
//! 3. alpha = K^-1 r (potrs), log|K| = 2 sum log L_ii, mll = -0.5 r.alpha - 0.5 log|K| -
//!    (n / 2) log(2 pi).
//! 4. K^-1 from L (trsm and a product: the vendor's business); the pair pass forms, over the
//!    observed pairs, W = alpha alpha^T - K^-1 and returns sum W Kf, tr W, sum W A (rq), writing
//!    M = W o G (G the lengthscale weight s psi) over K^-1.
//! 5. The lengthscale gradient from one batched product P = M U with U = [x / l, 1] (N x (D + 1)):
//!    0.5 sum_ij M_ij (v_i - v_j)^2 = sum_i v_i (v_i P_iD - P_id) for v = x_d / l_d, M symmetric.

use super::mll::{attempt_status, screen, MemberInputs};
use crate::backend::member::{finite_or_failed, MemberView};
use crate::backend::{JitterPolicy, MllBatch, MllGradient, MllOptions};
use crate::data::{Dataset, Hyperparameters, Status};
use crate::error::Result;
use crate::kernel::Kernel;
use crate::layout::Layout;
use ndarray::{Array1, Array2};

/// The smallest N whose members go through the vendor libraries rather than the fused global
/// kernel (when cuSOLVER and cuBLAS load). Provisional until measured on a GPU: the device
/// script (scripts/gpu/device.sh) times both at N = 264, 512, 1000 and 2048, and this constant
/// becomes the measured crossing.
pub(super) const DENSE_MIN_N: usize = 384;

/// A chunk's inputs on the host in f64, prepared as the CPU backend prepares them
/// ([`MemberInputs`]: x centred per member, 0 at masked points, residuals, jitter table).
pub(super) struct Chunk<'a> {
    pub kernel: Kernel,
    pub inp: &'a MemberInputs<f64>,
}

impl Chunk<'_> {
    pub fn c(&self) -> usize {
        self.inp.dims.c
    }
    pub fn n(&self) -> usize {
        self.inp.dims.n
    }
    pub fn d(&self) -> usize {
        self.inp.dims.d
    }
}

/// The per-member sums of the pair pass: sum_ij W_ij Kf_ij, tr W, sum_ij W_ij A_ij (rq's alpha
/// weight; 0 for the other kernels), over the observed points.
pub(super) type PairSums = [f64; 3];

/// What the plumbing asks of a device: batches of c matrices N x N (`Mats`) and of c blocks of
/// k columns of N (`Cols`), column-major per member, and the operations on them.
pub(super) trait DenseOps {
    type Mats;
    type Cols;
    /// c matrices of order n (contents unspecified).
    fn mats(&self, c: usize, n: usize) -> Result<Self::Mats>;
    /// c blocks of N x k from the host (c * n * k values, member by member, column-major).
    fn cols(&self, host: &[f64], c: usize, n: usize, k: usize) -> Result<Self::Cols>;
    /// The values of a block (as [`DenseOps::cols`] takes them).
    fn read_cols(&self, v: &Self::Cols) -> Result<Vec<f64>>;
    /// Our kernel: the Gram matrices of the chunk into `k0`.
    fn gram(&self, ch: &Chunk<'_>, k0: &mut Self::Mats) -> Result<()>;
    /// Our kernel: a_q = k0_q + jit_q diag(mask_q) for every member q with jit_q = Some.
    fn shifted(&self, ch: &Chunk<'_>, k0: &Self::Mats, a: &mut Self::Mats, jit: &[Option<f64>]) -> Result<()>;
    /// Vendor: lower Cholesky in place of the members q with `which[q]`; the LAPACK info per
    /// member (0: factored; i > 0: the leading minor of order i is not positive definite; 0
    /// for members not asked for).
    fn potrf(&self, a: &mut Self::Mats, which: &[bool]) -> Result<Vec<i32>>;
    /// Vendor: b_q <- K_q^-1 b_q from the factors (one column per member).
    fn potrs(&self, l: &Self::Mats, b: &mut Self::Cols) -> Result<()>;
    /// The diagonals of the factors (c * n values).
    fn diagonals(&self, l: &Self::Mats) -> Result<Vec<f64>>;
    /// Vendor: the full symmetric K^-1 = L^-T L^-1 into `out`.
    fn inverse(&self, l: &Self::Mats, out: &mut Self::Mats) -> Result<()>;
    /// Our kernel: the pair pass (module doc, step 4) over `kinv`, which becomes M = W o G.
    fn pair_pass(&self, ch: &Chunk<'_>, alpha: &Self::Cols, kinv: &mut Self::Mats) -> Result<Vec<PairSums>>;
    /// Vendor: p_q = m_q u_q (N x N times N x k, batched).
    fn gemm(&self, m: &Self::Mats, u: &Self::Cols, p: &mut Self::Cols) -> Result<()>;
}

/// MLL and gradient of `rows` through `ops`, `chunk` members at a time, with the CPU
/// backend's screen, statuses and jitter.
pub(super) fn mll<O: DenseOps>(
    ops: &O,
    data: &Dataset,
    hyp: &Hyperparameters,
    rows: &[usize],
    opts: &MllOptions,
    chunk: usize,
) -> Result<MllBatch> {
    let k = rows.len();
    let layout = Layout::of(hyp);
    let p = layout.len();
    let policy = opts.jitter;
    let mut mll = Array1::from_elem(k, f64::NAN);
    let mut grad = Array2::from_elem((k, p), f64::NAN);
    let mut status = vec![Status::Failed; k];
    let mut jitter = Array1::zeros(k);
    let mut live = Vec::with_capacity(k);
    let mut mean_diag = vec![0.0; k];
    for (i, &b) in rows.iter().enumerate() {
        let member = MemberView::new(data, hyp, b);
        match screen(hyp, &member, b) {
            Some(st) => status[i] = st,
            None => {
                mean_diag[i] = member.mean_diag();
                live.push(i);
            }
        }
    }
    for part in live.chunks(chunk.max(1)) {
        let members: Vec<usize> = part.iter().map(|&i| rows[i]).collect();
        let inp = MemberInputs::<f64>::new(data, hyp, &members, policy);
        let ch = Chunk { kernel: hyp.kernel, inp: &inp };
        let out = chunk_mll(ops, &ch, policy, opts.gradient)?;
        for (q, &i) in part.iter().enumerate() {
            let (st, jit) = attempt_status(out.attempt[q], policy, mean_diag[i]);
            jitter[i] = jit;
            if st == Status::Failed {
                continue;
            }
            let gm = if opts.gradient { &out.grad[q * p..(q + 1) * p] } else { &[][..] };
            let st = finite_or_failed(st, std::iter::once(out.mll[q]).chain(gm.iter().copied()));
            if st == Status::Failed {
                continue;
            }
            status[i] = st;
            mll[i] = out.mll[q];
            grad.row_mut(i).iter_mut().zip(gm).for_each(|(o, v)| *o = *v);
        }
    }
    Ok(MllBatch { mll, gradient: opts.gradient.then(|| MllGradient::from_rows(&grad, layout)), status, jitter })
}

/// One chunk's results: attempt per member (-1: none factored), MLL (c), gradient (c * P).
struct ChunkOut {
    attempt: Vec<i32>,
    mll: Vec<f64>,
    grad: Vec<f64>,
}

fn chunk_mll<O: DenseOps>(ops: &O, ch: &Chunk<'_>, policy: JitterPolicy, gradient: bool) -> Result<ChunkOut> {
    let (c, n, d) = (ch.c(), ch.n(), ch.d());
    let inp = ch.inp;
    let na = policy.retries as usize + 1;
    let p = Layout::new(ch.kernel, d).len();
    let mut k0 = ops.mats(c, n)?;
    ops.gram(ch, &mut k0)?;
    // The jitter loop: each attempt refactors only the members that have not factored.
    let mut a = ops.mats(c, n)?;
    let mut attempt = vec![-1i32; c];
    for t in 0..na {
        let jit: Vec<Option<f64>> = (0..c).map(|q| (attempt[q] < 0).then(|| inp.params.jit[q * na + t])).collect();
        if jit.iter().all(Option::is_none) {
            break;
        }
        ops.shifted(ch, &k0, &mut a, &jit)?;
        let which: Vec<bool> = jit.iter().map(Option::is_some).collect();
        let info = ops.potrf(&mut a, &which)?;
        for q in 0..c {
            if which[q] && info[q] == 0 {
                attempt[q] = t as i32;
            }
        }
    }
    drop(k0);
    let mut alpha = ops.cols(&inp.params.r, c, n, 1)?;
    ops.potrs(&a, &mut alpha)?;
    let al = ops.read_cols(&alpha)?;
    let diag = ops.diagonals(&a)?;
    let ln2pi = (2.0 * std::f64::consts::PI).ln();
    let mut mll = vec![f64::NAN; c];
    for q in 0..c {
        if attempt[q] < 0 {
            continue;
        }
        let (mut quad, mut logdet, mut nobs) = (0.0, 0.0, 0usize);
        for i in 0..n {
            if inp.mask[q * n + i] != 0 {
                quad += inp.params.r[q * n + i] * al[q * n + i];
                logdet += diag[q * n + i].ln();
                nobs += 1;
            }
        }
        mll[q] = -0.5 * quad - logdet - 0.5 * nobs as f64 * ln2pi;
    }
    let mut grad = vec![f64::NAN; c * p];
    if gradient {
        let mut m = ops.mats(c, n)?;
        ops.inverse(&a, &mut m)?;
        drop(a);
        let sums = ops.pair_pass(ch, &alpha, &mut m)?;
        // U = [x_1 / l_1, .., x_D / l_D, 1] per member, column-major.
        let mut u = vec![0.0; c * n * (d + 1)];
        for q in 0..c {
            let ub = &mut u[q * n * (d + 1)..(q + 1) * n * (d + 1)];
            for i in 0..n {
                for j in 0..d {
                    ub[j * n + i] = inp.x[(q * n + i) * d + j] / inp.params.ls[q * d + j];
                }
                ub[d * n + i] = 1.0;
            }
        }
        let uc = ops.cols(&u, c, n, d + 1)?;
        let mut pc = ops.cols(&u, c, n, d + 1)?;
        ops.gemm(&m, &uc, &mut pc)?;
        let pm = ops.read_cols(&pc)?;
        for q in 0..c {
            if attempt[q] < 0 {
                continue;
            }
            let (ub, pb) = (&u[q * n * (d + 1)..], &pm[q * n * (d + 1)..]);
            let g = &mut grad[q * p..(q + 1) * p];
            for j in 0..d {
                g[j] = (0..n)
                    .filter(|&i| inp.mask[q * n + i] != 0)
                    .map(|i| {
                        let v = ub[j * n + i];
                        v * (v * pb[d * n + i] - pb[j * n + i])
                    })
                    .sum();
            }
            let [wk, trw, wa] = sums[q];
            g[d] = 0.5 * wk;
            g[d + 1] = 0.5 * inp.params.noise[q] * trw;
            g[d + 2] = (0..n).map(|i| al[q * n + i]).sum();
            if ch.kernel.has_alpha() {
                g[d + 3] = 0.5 * wa;
            }
        }
    }
    Ok(ChunkOut { attempt, mll, grad })
}
