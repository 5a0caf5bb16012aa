//! The MLL and its gradient on the GPU: member preparation (shared with the CPU backend through
//! [`MemberView`]), the fused gp_mll kernel, and the status rules of the CPU backend.

use super::device::{arg_opt, Device, Real};
use super::launch::{KernelId, Op, Variant, FLAG_FACTOR, FLAG_GRAD};
use super::CudaBackend;
use crate::backend::member::{precheck, MemberView};
use crate::backend::{JitterPolicy, MllBatch, MllOptions};
use crate::data::{Dataset, Hyperparameters, Status};
use crate::kernel::Kernel;
use crate::layout::Layout;
use cudarc::driver::{CudaSlice, PushKernelArg};

use rayon::prelude::*;

/// Host copies of the inputs of a chunk of members, prepared as the CPU backend prepares them
/// (`backend::member`): x centred per member on its observed points and known noise in f64, then
/// converted to the working precision, with the hyperparameter-dependent part in `params`.
/// Masked entries are 0 (and never read).
pub(super) struct MemberInputs<T> {
    /// (c, N, D) centred points.
    pub x: Vec<T>,
    /// (c, N) 1 observed, 0 padding.
    pub mask: Vec<u8>,
    /// (c, N) known noise variances; None when the data has none.
    pub yvar: Option<Vec<T>>,
    /// (c, D) the centre subtracted from each member's points, in f64 (test points are centred
    /// on it too).
    pub centre: Vec<f64>,
    /// Residuals, hyperparameters and jitter.
    pub params: ParamInputs<T>,
    /// Members c, padded points N, dimensions D.
    pub dims: Dims,
}

/// The extents of a chunk: c members of N (padded) points in D dimensions.
#[derive(Debug, Clone, Copy)]
pub(super) struct Dims {
    pub c: usize,
    pub n: usize,
    pub d: usize,
}

impl<T: Real> MemberInputs<T> {
    /// The members `rows` of `data` (with the same rows of `hyp`); jitter from `policy` scaled
    /// by each member's mean diagonal. Members are prepared in parallel (rayon), each into its
    /// own slices of the chunk's arrays.
    pub fn new(data: &Dataset, hyp: &Hyperparameters, rows: &[usize], policy: JitterPolicy) -> Self {
        let (n, d) = (data.n_points(), data.n_dims());
        let c = rows.len();
        let mut x = vec![T::of(0.0); c * n * d];
        let mut mask = vec![0u8; c * n];
        let mut yvar = data.yvar().is_some().then(|| vec![T::of(0.0); c * n]);
        // One (x, mask, yvar) set of slices per member, split off sequentially (c steps).
        let mut parts = Vec::with_capacity(c);
        {
            let (mut xs, mut ms) = (&mut x[..], &mut mask[..]);
            let mut ys = yvar.as_deref_mut();
            for &b in rows {
                let (xk, xt) = std::mem::take(&mut xs).split_at_mut(n * d);
                let (mk, mt) = std::mem::take(&mut ms).split_at_mut(n);
                let yk = ys.take().map(|y| {
                    let (yk, yt) = y.split_at_mut(n);
                    ys = Some(yt);
                    yk
                });
                (xs, ms) = (xt, mt);
                parts.push((b, xk, mk, yk));
            }
        }
        // Per member: its centre and mean diagonal (the jitter's scale).
        let per_member: Vec<(Vec<f64>, f64)> = parts
            .into_par_iter()
            .map(|(b, xk, mk, mut yk)| {
                let member = MemberView::new(data, hyp, b);
                for i in member.observed() {
                    mk[i] = 1;
                    for (j, v) in xk[i * d..(i + 1) * d].iter_mut().enumerate() {
                        *v = T::of(member.x(i, j));
                    }
                    if let Some(yv) = yk.as_deref_mut() {
                        yv[i] = T::of(member.yvar(i));
                    }
                }
                (member.centre().to_vec(), member.mean_diag())
            })
            .collect();
        let mean_diag: Vec<f64> = per_member.iter().map(|p| p.1).collect();
        MemberInputs {
            x,
            mask,
            yvar,
            centre: per_member.into_iter().flat_map(|p| p.0).collect(),
            params: ParamInputs::new(data, hyp, rows, policy, &mean_diag),
            dims: Dims { c, n, d },
        }
    }
}

/// The inputs of a chunk that depend on the hyperparameters: residuals y - m (c, N) in f64 then
/// the working precision (0 at masked points), the real lengthscales, s, noise, rq's alpha and
/// the jitter of every attempt from each member's mean diagonal (`mean_diag`, one per member).
pub(super) struct ParamInputs<T> {
    pub r: Vec<T>,
    pub ls: Vec<T>,
    pub s: Vec<T>,
    pub noise: Vec<T>,
    pub alpha: Option<Vec<T>>,
    pub jit: Vec<T>,
}

impl<T: Real> ParamInputs<T> {
    pub fn new(data: &Dataset, hyp: &Hyperparameters, rows: &[usize], policy: JitterPolicy, mean_diag: &[f64]) -> Self {
        let n = data.n_points();
        let na = policy.retries as usize + 1;
        let mut r = vec![T::of(0.0); rows.len() * n];
        if n > 0 {
            r.par_chunks_mut(n).zip(rows.par_iter()).for_each(|(rk, &b)| {
                let (y, m) = (data.y().row(b), hyp.mean[b]);
                for (i, v) in rk.iter_mut().enumerate() {
                    if data.is_observed(b, i) {
                        *v = T::of(y[i] - m);
                    }
                }
            });
        }
        ParamInputs {
            r,
            ls: rows.iter().flat_map(|&b| hyp.lengthscale.row(b).into_iter().map(|&l| T::of(l))).collect(),
            s: rows.iter().map(|&b| T::of(hyp.outputscale[b])).collect(),
            noise: rows.iter().map(|&b| T::of(hyp.noise[b])).collect(),
            alpha: hyp.kernel.has_alpha().then(|| rows.iter().map(|&b| T::of(hyp.alpha_of(b))).collect()),
            jit: mean_diag.iter().flat_map(|&md| (0..na).map(move |t| T::of(policy.jitter(t as u32, md)))).collect(),
        }
    }
}

/// The inputs on the device.
pub(super) struct DeviceInputs<T> {
    pub x: CudaSlice<T>,
    pub r: CudaSlice<T>,
    pub mask: CudaSlice<u8>,
    pub ls: CudaSlice<T>,
    pub s: CudaSlice<T>,
    pub noise: CudaSlice<T>,
    pub alpha: Option<CudaSlice<T>>,
    pub yvar: Option<CudaSlice<T>>,
    pub jit: CudaSlice<T>,
    pub dims: Dims,
}

impl<T: Real> DeviceInputs<T> {
    pub fn upload(dev: &Device, inp: &MemberInputs<T>) -> crate::error::Result<Self> {
        let p = &inp.params;
        Ok(DeviceInputs {
            x: dev.up(&inp.x)?,
            r: dev.up(&p.r)?,
            mask: dev.up(&inp.mask)?,
            ls: dev.up(&p.ls)?,
            s: dev.up(&p.s)?,
            noise: dev.up(&p.noise)?,
            alpha: dev.up_opt(p.alpha.as_deref())?,
            yvar: dev.up_opt(inp.yvar.as_deref())?,
            jit: dev.up(&p.jit)?,
            dims: inp.dims,
        })
    }
}

/// Device results of the fused kernel for one chunk.
pub(super) struct FactorOut<T> {
    pub mll: CudaSlice<T>,
    pub grad: CudaSlice<T>,
    pub attempt: CudaSlice<i32>,
    pub l: CudaSlice<T>,
    pub alpha: CudaSlice<T>,
}

/// Bytes of device memory one member of the fused kernel needs besides its outputs: inputs
/// and the global variant's workspace.
pub(super) fn fused_bytes<T>(n: usize, d: usize, attempts: usize, v: Variant) -> usize {
    let sz = std::mem::size_of::<T>();
    sz * (n * d + 2 * n + d + 4 + attempts + v.work_per_member(n)) + n
}

/// Status and reported jitter of a member from the attempt that factored (-1: none), as the
/// CPU backend reports them.
pub(super) fn attempt_status(attempt: i32, policy: JitterPolicy, mean_diag: f64) -> (Status, f64) {
    if attempt < 0 {
        (Status::Failed, policy.jitter(policy.retries, mean_diag))
    } else {
        (if attempt == 0 { Status::Ok } else { Status::Jitter }, policy.jitter(attempt as u32, mean_diag))
    }
}

/// Runs gp_mll_<variant>_<kernel>_<T> on a chunk of members, with `attempts` jitter attempts
/// and the kernel's `flags`.
pub(super) fn run_fused<T: Real>(
    dev: &Device,
    kernel: Kernel,
    inp: &DeviceInputs<T>,
    attempts: usize,
    flags: i32,
) -> crate::error::Result<FactorOut<T>> {
    let Dims { c, n, d } = inp.dims;
    let sz = std::mem::size_of::<T>();
    let v = Variant::select(n, sz, dev.smem_optin);
    let p = Layout::new(kernel, d).len();
    let out = FactorOut {
        mll: dev.zeros::<T>(c)?,
        grad: dev.zeros::<T>(if flags & FLAG_GRAD != 0 { c * p } else { 1 })?,
        attempt: dev.zeros::<i32>(c)?,
        l: dev.zeros::<T>(if flags & FLAG_FACTOR != 0 { c * n * n } else { 1 })?,
        alpha: dev.zeros::<T>(if flags & FLAG_FACTOR != 0 { c * n } else { 1 })?,
    };
    let work = dev.zeros::<T>(c * v.work_per_member(n))?;
    let id = KernelId::new(Op::mll(v), kernel, T::DTYPE);
    let f = dev.func(id)?;
    let cfg = v.launch(n, sz, c);
    let (x_stride, na, bb, nn, dd) = ((n * d) as i64, attempts as i32, c as i32, n as i32, d as i32);
    let mut lb = dev.stream.launch_builder(f);
    lb.arg(&inp.x).arg(&x_stride).arg(&inp.r).arg(&inp.mask).arg(&inp.ls).arg(&inp.s).arg(&inp.noise);
    arg_opt(&mut lb, &inp.alpha);
    arg_opt(&mut lb, &inp.yvar);
    lb.arg(&inp.jit)
        .arg(&na)
        .arg(&bb)
        .arg(&nn)
        .arg(&dd)
        .arg(&flags)
        .arg(&out.mll)
        .arg(&out.grad)
        .arg(&out.attempt)
        .arg(&out.l)
        .arg(&out.alpha);
    if v == Variant::Global {
        lb.arg(&work);
    }
    // SAFETY: the arguments follow gp_mll_<variant>_<kernel>_<T>(const T* x, long long
    // x_stride, const T* r, const uint8_t* mask, const T* ls, const T* s, const T* noise,
    // const T* rq_alpha, const T* yvar, const T* jit, int nattempts, int B, int N, int D,
    // int flags, T* out_mll, T* out_grad, int* out_attempt, T* out_l, T* out_alpha[, T* work])
    // in order and type (i64 = long long, i32 = int, CudaSlice<T> = T*, a null pointer for an
    // absent rq_alpha, which only rq reads, or yvar, which the kernel tests); every buffer holds
    // what the kernel indexes for B = c members (x c*N*D, r, mask and yvar c*N, ls c*D, s,
    // noise and rq_alpha c, jit c*nattempts, grad c*P with P = D+3(+1 for rq), l c*N*N and
    // alpha c*N when their flag is set, work c*(N*N+2N) for the global variant), and the launch
    // shape and shared memory are the variant's.
    unsafe { dev.launch(&mut lb, cfg, id, c) }?;
    Ok(out)
}

/// Whether member `b` (with `n` observed points) reaches a kernel: None when it does, else its
/// status (Empty or Failed) with NaN numbers and jitter 0, as on the CPU. A member whose mean
/// diagonal is not finite fails before any attempt, as the CPU's factorisation decides.
pub(super) fn screen(hyp: &Hyperparameters, member: &MemberView, b: usize) -> Option<Status> {
    precheck(hyp, b, member.n()).or_else(|| (!member.mean_diag().is_finite()).then_some(Status::Failed))
}

impl CudaBackend {
    /// The f64 MLL: members past the fused block kernel through cuSOLVER and cuBLAS when
    /// [`super::vendor::wanted`], else the fused kernels.
    pub(super) fn mll_f64(
        &self,
        data: &Dataset,
        hyp: &Hyperparameters,
        rows: &[usize],
        opts: &MllOptions,
    ) -> crate::error::Result<MllBatch> {
        let n = data.n_points();
        let global = Variant::select(n, 8, self.lock().smem_optin) == Variant::Global;
        if !super::vendor::wanted(n, global) {
            return self.mll_t::<f64>(data, hyp, rows, opts);
        }
        let mut dev = self.lock();
        if dev.vendor.is_none() {
            dev.vendor = Some(super::vendor::Handles::new(&dev)?);
        }
        let dev = &*dev;
        let ops = super::vendor::Vendor::new(dev, dev.vendor.as_ref().expect("made above"));
        let d = data.n_dims();
        let per = 8 * (3 * n * n + 3 * n * (d + 1) + n * d + 4 * n + d + 8) + n;
        let chunk = dev.chunk(per, rows.len().max(1))?;
        super::dense::mll(&ops, data, hyp, rows, opts, chunk)
    }

    /// The MLL through the host path of [`super::host`], which keeps the dataset on the device
    /// between calls.
    pub(super) fn mll_t<T: Real>(
        &self,
        data: &Dataset,
        hyp: &Hyperparameters,
        rows: &[usize],
        opts: &MllOptions,
    ) -> crate::error::Result<MllBatch> {
        let mut dev = self.lock();
        let mut cache = std::mem::take(&mut dev.host_cache);
        let r = super::host::mll::<Device, T>(&dev, &mut cache, data, hyp, rows, opts);
        dev.host_cache = cache;
        r
    }
}
