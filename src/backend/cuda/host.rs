//! The MLL host path: what one evaluation (a round of a fit) costs on the host and on the bus.
//!
//! - The data stays on the device for the whole fit ([`Resident`]): centred x and yvar in the
//!   working precision, y in f64, the mask, uploaded once per dataset (keyed by
//!   [`Dataset::id`] and the precision), with the per-member numbers the screening needs (observed
//!   points, mean yvar) kept on the host.
//! - A call uploads only its hyperparameters: one copy of [`ParamLayout`]'s doubles per chunk
//!   (member rows, lengthscales, s, noise, mean, mean diagonal, alpha: C (D + 5 [+ 1]) + the
//!   attempts' powers of ten) from page-locked staging. gp_mll_prep (kernels/prep.cu) forms the
//!   residuals y - m, the jitter of every attempt and the hyperparameters in T on the device, and
//!   gathers the members' rows when the call's members are not one run of rows (a fit whose
//!   converged members stopped).
//! - The buffers (staging, parameters, outputs, the global variant's workspace) are allocated
//!   once per fit ([`Workspace`]) and reused; the outputs (MLL, gradient, attempts) come back in
//!   one copy into page-locked memory.
//! - The host's work per call is O(B (D + 4)): the screen (`precheck` and the mean diagonal from
//!   the kept numbers), filling the staging buffer, and reading the results back.
//!
//! Generic over [`Driver`], so that the counting stand-in runs it without a GPU (tests and
//! benches time the host side with it).

use super::device::Real;
use super::driver::{At, Driver, FusedArgs, PrepArgs};
use super::launch::{Variant, FLAG_GRAD};
use super::mll::attempt_status;
use crate::backend::member::{finite_or_failed, precheck, MemberView};
use crate::backend::{MllBatch, MllGradient, MllOptions};
use crate::data::{Dataset, Hyperparameters, Status};
use crate::error::Result;
use crate::layout::Layout;
use ndarray::{Array1, Array2};
use rayon::prelude::*;
use std::any::{Any, TypeId};

/// The doubles of one chunk's upload, in kernels/prep.cu's order: idx (C) | ls (C D) | s | noise |
/// mean | md (C each) | alpha (C, rq only) | pow10 (nattempts).
#[derive(Clone, Copy, Debug)]
pub(super) struct ParamLayout {
    pub c: usize,
    pub d: usize,
    pub alpha: bool,
    pub na: usize,
}

impl ParamLayout {
    fn ls(&self) -> usize {
        self.c
    }
    fn s(&self) -> usize {
        self.ls() + self.c * self.d
    }
    fn noise(&self) -> usize {
        self.s() + self.c
    }
    fn mean(&self) -> usize {
        self.noise() + self.c
    }
    fn md(&self) -> usize {
        self.mean() + self.c
    }
    fn alpha(&self) -> usize {
        self.md() + self.c
    }
    fn pow10(&self) -> usize {
        self.alpha() + if self.alpha { self.c } else { 0 }
    }
    pub fn len(&self) -> usize {
        self.pow10() + self.na
    }
    /// (ls, s, noise, mean, md, alpha, pow10, len), for the emulation of kernels/prep.cu.
    pub fn offsets(&self) -> [usize; 8] {
        [self.ls(), self.s(), self.noise(), self.mean(), self.md(), self.alpha(), self.pow10(), self.len()]
    }
}

/// Elements of T of a chunk's output buffer: mll (C) | gradient (C P) | attempts (C i32).
fn out_len<T>(c: usize, p: usize) -> usize {
    c * (1 + p) + (4 * c).div_ceil(std::mem::size_of::<T>())
}

/// The dataset on the device, for the whole fit: centred x (B, N, D) and yvar (B, N) in T, y
/// (B, N) in f64, the mask (B, N); masked entries of x and yvar are 0. `rows` None: every
/// member of the data, at its own row; Some: those members, in order (a chunk's own copy when
/// the whole dataset does not fit).
pub(super) struct Resident<D: Driver, T: Real> {
    x: D::Buf<T>,
    y: D::Buf<f64>,
    mask: D::Buf<u8>,
    yvar: Option<D::Buf<T>>,
    whole: bool,
}

/// Bytes of device memory of one member of a [`Resident`].
fn resident_bytes<T>(n: usize, d: usize, yvar: bool) -> usize {
    let sz = std::mem::size_of::<T>();
    n * (d * sz + 8 + 1 + if yvar { sz } else { 0 })
}

impl<D: Driver, T: Real> Resident<D, T> {
    /// Uploads `rows` of `data` (every member when None), prepared as the CPU backend prepares
    /// them ([`MemberView`]).
    fn new(drv: &D, data: &Dataset, hyp: &Hyperparameters, rows: Option<&[usize]>) -> Result<Self> {
        let (n, d) = (data.n_points(), data.n_dims());
        let all: Vec<usize>;
        let rows = match rows {
            Some(r) => r,
            None => {
                all = (0..data.batch_size()).collect();
                &all
            }
        };
        let c = rows.len();
        let mut x = vec![T::of(0.0); c * n * d];
        let mut y = vec![0.0f64; c * n];
        let mut mask = vec![0u8; c * n];
        let mut yvar = data.yvar().is_some().then(|| vec![T::of(0.0); c * n]);
        let yv_parts: Vec<Option<&mut [T]>> = match yvar.as_deref_mut() {
            Some(v) if n > 0 => v.chunks_mut(n).map(Some).collect(),
            _ => (0..c).map(|_| None).collect(),
        };
        let nd = (n * d).max(1);
        x.par_chunks_mut(nd)
            .zip(y.par_chunks_mut(n.max(1)))
            .zip(mask.par_chunks_mut(n.max(1)))
            .zip(yv_parts.into_par_iter())
            .zip(rows.par_iter())
            .for_each(|((((xk, yk), mk), yvk), &b)| {
                // Centring and the observed points do not depend on the hyperparameters.
                let member = MemberView::new(data, hyp, b);
                yk.iter_mut().zip(data.y().row(b)).for_each(|(o, &v)| *o = v);
                let mut yvk = yvk;
                for i in member.observed() {
                    mk[i] = 1;
                    for (j, v) in xk[i * d..(i + 1) * d].iter_mut().enumerate() {
                        *v = T::of(member.x(i, j));
                    }
                    if let Some(yv) = yvk.as_deref_mut() {
                        yv[i] = T::of(member.yvar(i));
                    }
                }
            });
        let mut res = Resident {
            x: drv.alloc(x.len())?,
            y: drv.alloc(y.len())?,
            mask: drv.alloc(mask.len())?,
            yvar: yvar.as_ref().map(|v| drv.alloc(v.len())).transpose()?,
            whole: c == data.batch_size() && rows.iter().enumerate().all(|(i, &b)| i == b),
        };
        drv.upload(&x, &mut res.x)?;
        drv.upload(&y, &mut res.y)?;
        drv.upload(&mask, &mut res.mask)?;
        if let (Some(src), Some(dst)) = (&yvar, &mut res.yvar) {
            drv.upload(src, dst)?;
        }
        Ok(res)
    }
}

/// The per-member numbers of a dataset that the screen needs, kept for the fit: observed
/// points and the mean of the observed yvar (0 without yvar), summed as
/// [`MemberView::mean_diag`] sums them.
struct Summary {
    n_obs: Vec<usize>,
    yvar_mean: Vec<f64>,
}

impl Summary {
    fn new(data: &Dataset) -> Self {
        let (n_obs, yvar_mean) = (0..data.batch_size())
            .into_par_iter()
            .map(|b| {
                let n = data.n_observed(b);
                let yv = match data.yvar() {
                    Some(v) if n > 0 => {
                        let row = v.row(b);
                        (0..data.n_points()).filter(|&i| data.is_observed(b, i)).map(|i| row[i]).sum::<f64>() / n as f64
                    }
                    _ => 0.0,
                };
                (n, yv)
            })
            .unzip();
        Summary { n_obs, yvar_mean }
    }
}

/// The buffers of a fit's calls, for up to `cap` members per launch, allocated on the first
/// call and reused while the shapes stay (the gather buffers on the first call that needs
/// them).
pub(super) struct Workspace<D: Driver, T: Real> {
    cap: usize,
    stage: D::Host<f64>,
    params: D::Buf<f64>,
    r: D::Buf<T>,
    ls: D::Buf<T>,
    s: D::Buf<T>,
    noise: D::Buf<T>,
    alpha: Option<D::Buf<T>>,
    jit: D::Buf<T>,
    out: D::Buf<T>,
    out_host: D::Host<T>,
    work: Option<D::Buf<T>>,
    gather: Option<(D::Buf<T>, D::Buf<u8>, Option<D::Buf<T>>)>,
}

/// The extents a workspace is made for.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
struct Shape {
    n: usize,
    d: usize,
    p: usize,
    na: usize,
    alpha: bool,
    yvar: bool,
    variant: Variant,
}

impl Shape {
    /// Device bytes of one member of a workspace (the gather buffers included).
    fn bytes<T>(&self) -> usize {
        let sz = std::mem::size_of::<T>();
        let pl = ParamLayout { c: 1, d: self.d, alpha: self.alpha, na: 0 };
        8 * pl.len()
            + sz * (self.n * self.d + 2 * self.n + self.d + 3 + self.na + 1 + self.p + 1)
            + self.n
            + sz * self.variant.work_per_member(self.n)
    }
}

impl<D: Driver, T: Real> Workspace<D, T> {
    fn new(drv: &D, cap: usize, sh: Shape) -> Result<Self> {
        let pl = ParamLayout { c: cap, d: sh.d, alpha: sh.alpha, na: sh.na };
        Ok(Workspace {
            cap,
            stage: drv.alloc_host(pl.len(), false)?,
            params: drv.alloc(pl.len())?,
            r: drv.alloc(cap * sh.n)?,
            ls: drv.alloc(cap * sh.d)?,
            s: drv.alloc(cap)?,
            noise: drv.alloc(cap)?,
            alpha: sh.alpha.then(|| drv.alloc(cap)).transpose()?,
            jit: drv.alloc(cap * sh.na)?,
            out: drv.alloc(out_len::<T>(cap, sh.p))?,
            out_host: drv.alloc_host(out_len::<T>(cap, sh.p), true)?,
            work: (sh.variant == Variant::Global)
                .then(|| drv.alloc(cap * sh.variant.work_per_member(sh.n)))
                .transpose()?,
            gather: None,
        })
    }
}

/// What a [`HostCache`] holds for one dataset and precision.
struct Kept<D: Driver, T: Real> {
    summary: Summary,
    /// None when the dataset does not fit on the device beside a chunk's workspace: each
    /// chunk then uploads its own members.
    resident: Option<Resident<D, T>>,
    ws: Option<(Shape, Workspace<D, T>)>,
}

/// The device state a fit keeps between calls: one dataset's [`Resident`] copy, its
/// [`Summary`] and the [`Workspace`]; another dataset or precision replaces it.
#[derive(Default)]
pub(super) struct HostCache {
    kept: Option<((u64, usize, usize, usize, TypeId), Box<dyn Any + Send>)>,
}

impl HostCache {
    /// Frees what is kept.
    pub fn clear(&mut self) {
        self.kept = None;
    }
}

/// MLL (and gradient) of `rows` of `data` through `drv`, keeping the dataset on the device in
/// `cache` for the next call. The numbers and statuses are the CPU backend's rules
/// (`backend::member`), as [`super::mll`] documents.
pub(super) fn mll<D: Driver + 'static, T: Real>(
    drv: &D,
    cache: &mut HostCache,
    data: &Dataset,
    hyp: &Hyperparameters,
    rows: &[usize],
    opts: &MllOptions,
) -> Result<MllBatch> {
    let (n, d) = (data.n_points(), data.n_dims());
    let k = rows.len();
    let layout = Layout::of(hyp);
    let p = layout.len();
    let policy = opts.jitter;
    let na = policy.retries as usize + 1;
    let sz = std::mem::size_of::<T>();
    let key = (data.id(), data.batch_size(), n, d, TypeId::of::<T>());
    let mut kept: Kept<D, T> = match cache.kept.take() {
        Some((k, v)) if k == key => *v.downcast::<Kept<D, T>>().expect("the key names the type"),
        _ => Kept { summary: Summary::new(data), resident: None, ws: None },
    };
    let mut mll = Array1::from_elem(k, f64::NAN);
    let mut grad = Array2::from_elem((k, p), f64::NAN);
    let mut status = vec![Status::Failed; k];
    let mut jitter = Array1::zeros(k);
    let mut mean_diag = vec![0.0; k];
    // The screen, from the kept numbers: O(D + 4) per member.
    let mut live = Vec::with_capacity(k);
    for (i, &b) in rows.iter().enumerate() {
        let md = hyp.outputscale[b] + hyp.noise[b] + kept.summary.yvar_mean[b];
        match precheck(hyp, b, kept.summary.n_obs[b]).or_else(|| (!md.is_finite()).then_some(Status::Failed)) {
            Some(st) => status[i] = st,
            None => {
                mean_diag[i] = md;
                live.push(i);
            }
        }
    }
    let sh = Shape {
        n,
        d,
        p,
        na,
        alpha: hyp.kernel.has_alpha(),
        yvar: data.yvar().is_some(),
        variant: Variant::select(n, sz, drv.smem_optin()),
    };
    // The workspace: kept while the shapes stay and it holds the call's members (or as many
    // as fit), else made anew; the dataset is made resident with it when both fit.
    let want = live.len().max(1).min(drv.max_chunk());
    let reuse = matches!(&kept.ws, Some((s, w)) if *s == sh && (w.cap >= want || kept.resident.is_none()));
    if !reuse {
        kept.ws = None;
        let free = drv.free_bytes()?;
        let budget = free / 10 * 7;
        let res_bytes =
            if kept.resident.is_some() { 0 } else { data.batch_size() * resident_bytes::<T>(n, d, sh.yvar) };
        let per = sh.bytes::<T>();
        let whole = res_bytes <= budget / 2 && (budget - res_bytes) / per.max(1) >= 1;
        if !whole {
            kept.resident = None;
        }
        let left = if whole { budget - res_bytes } else { budget };
        let per = per + if whole { 0 } else { resident_bytes::<T>(n, d, sh.yvar) };
        let cap = (left / per.max(1)).min(want).min(i32::MAX as usize / 2);
        if cap == 0 {
            return Err(super::device::out_of_memory(per, free));
        }
        if whole && kept.resident.is_none() {
            kept.resident = Some(Resident::new(drv, data, hyp, None)?);
        }
        kept.ws = Some((sh, Workspace::new(drv, cap, sh)?));
    }
    let ws = &mut kept.ws.as_mut().expect("made above").1;
    let flags = if opts.gradient { FLAG_GRAD } else { 0 };
    for part in live.chunks(ws.cap) {
        let c = part.len();
        let members: Vec<usize> = part.iter().map(|&i| rows[i]).collect();
        // Resident rows: the dataset's own, or a copy of this chunk's members.
        let own;
        let res = match &kept.resident {
            Some(r) => r,
            None => {
                own = Resident::<D, T>::new(drv, data, hyp, Some(&members))?;
                &own
            }
        };
        let pos = |q: usize| if res.whole { members[q] } else { q };
        // One run of rows: the kernels read the resident arrays in place, else gather.
        let first = pos(0);
        let run = (0..c).all(|q| pos(q) == first + q);
        let pl = ParamLayout { c, d, alpha: sh.alpha, na };
        {
            let st = drv.host_mut(&mut ws.stage)?;
            for (q, (&i, &b)) in part.iter().zip(&members).enumerate() {
                st[q] = pos(q) as f64;
                for (j, &l) in hyp.lengthscale.row(b).iter().enumerate() {
                    st[pl.ls() + q * d + j] = l;
                }
                st[pl.s() + q] = hyp.outputscale[b];
                st[pl.noise() + q] = hyp.noise[b];
                st[pl.mean() + q] = hyp.mean[b];
                st[pl.md() + q] = mean_diag[i];
                if sh.alpha {
                    st[pl.alpha() + q] = hyp.alpha_of(b);
                }
            }
            for t in 0..na {
                st[pl.pow10() + t] = if t == 0 { 0.0 } else { 10f64.powi(t as i32 - 1) };
            }
        }
        drv.upload_staged(&mut ws.stage, pl.len(), &mut ws.params)?;
        if !run && ws.gather.is_none() {
            ws.gather = Some((
                drv.alloc(ws.cap * n * d)?,
                drv.alloc(ws.cap * n)?,
                sh.yvar.then(|| drv.alloc(ws.cap * n)).transpose()?,
            ));
        }
        let gather = (!run).then(|| {
            let (x, m, y) = ws.gather.as_ref().expect("allocated above");
            (At::of(x), At::of(m), y.as_ref().map(At::of))
        });
        drv.prep::<T>(&PrepArgs {
            params: At::of(&ws.params),
            c,
            n,
            d,
            has_alpha: sh.alpha,
            nattempts: na,
            jit_start: policy.start,
            x_res: At::of(&res.x),
            y_res: At::of(&res.y),
            mask_res: At::of(&res.mask),
            yvar_res: res.yvar.as_ref().map(At::of),
            gather,
            r: At::of(&ws.r),
            ls: At::of(&ws.ls),
            s: At::of(&ws.s),
            noise: At::of(&ws.noise),
            alpha: ws.alpha.as_ref().map(At::of),
            jit: At::of(&ws.jit),
        })?;
        let (x, mask, yvar) = match &ws.gather {
            Some((x, m, y)) if !run => (At::of(x), At::of(m), y.as_ref().map(At::of)),
            _ => (
                At::plus(&res.x, first * n * d),
                At::plus(&res.mask, first * n),
                res.yvar.as_ref().map(|y| At::plus(y, first * n)),
            ),
        };
        drv.fused::<T>(
            hyp.kernel,
            &FusedArgs {
                variant: sh.variant,
                x,
                r: At::of(&ws.r),
                mask,
                ls: At::of(&ws.ls),
                s: At::of(&ws.s),
                noise: At::of(&ws.noise),
                alpha: ws.alpha.as_ref().map(At::of),
                yvar,
                jit: At::of(&ws.jit),
                nattempts: na,
                c,
                n,
                d,
                flags,
                out_mll: At::of(&ws.out),
                out_grad: At::plus(&ws.out, c),
                out_attempt: At::plus(&ws.out, c * (1 + p)),
                work: ws.work.as_ref().map(At::of),
            },
        )?;
        let len = out_len::<T>(c, p);
        drv.download_staged(&ws.out, len, &mut ws.out_host)?;
        let out = &drv.host_mut(&mut ws.out_host)?[..len];
        let (m, rest) = out.split_at(c);
        let (g, att) = rest.split_at(c * p);
        // SAFETY: `att` is the tail of a slice of T (f64 or f32: no padding, any bit pattern
        // valid) that holds at least 4 c bytes (out_len), read as bytes.
        let att = unsafe { std::slice::from_raw_parts(att.as_ptr() as *const u8, 4 * c) };
        for (q, &i) in part.iter().enumerate() {
            let a = i32::from_ne_bytes(att[4 * q..4 * q + 4].try_into().expect("4 bytes"));
            let (st, jit) = attempt_status(a, policy, mean_diag[i]);
            jitter[i] = jit;
            if st == Status::Failed {
                continue;
            }
            let gm = if opts.gradient { &g[q * p..(q + 1) * p] } else { &[][..] };
            let st = finite_or_failed(st, std::iter::once(m[q].f64()).chain(gm.iter().map(|v| v.f64())));
            if st == Status::Failed {
                continue;
            }
            status[i] = st;
            mll[i] = m[q].f64();
            for (dst, src) in grad.row_mut(i).iter_mut().zip(gm) {
                *dst = src.f64();
            }
        }
    }
    cache.kept = Some((key, Box::new(kept)));
    Ok(MllBatch { mll, gradient: opts.gradient.then(|| MllGradient::from_rows(&grad, layout)), status, jitter })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::data::Inputs;
    use ndarray::Array3;

    #[test]
    fn the_kept_numbers_give_the_cpu_backends_mean_diagonal() {
        // The screen's mean diagonal s + noise + mean(yvar) from Summary, bit for bit the one
        // MemberView (the CPU backend's preparation) computes, with a mask and known noise.
        let (b, n, d) = (30, 17, 2);
        let x = Array3::from_shape_fn((b, n, d), |(m, i, k)| ((m * 7 + i * 3 + k) as f64).sin());
        let y = Array2::from_shape_fn((b, n), |(m, i)| ((m + 2 * i) as f64).cos());
        let mask = Array2::from_shape_fn((b, n), |(m, i)| m != 3 && (i * 5 + m) % 4 != 0);
        let yv = Array2::from_shape_fn((b, n), |(m, i)| 0.01 + ((m * i) as f64).sin().abs() * 0.3);
        let data = Dataset::with_mask(Inputs::Batched(x), y, Some(mask)).unwrap().with_yvar(yv).unwrap();
        let mut hyp = Hyperparameters::broadcast(b, &[0.5, 0.7], 1.3, 0.07, 0.0);
        for m in 0..b {
            hyp.outputscale[m] = 0.3 + 0.11 * m as f64;
        }
        let sm = Summary::new(&data);
        for m in 0..b {
            let view = MemberView::new(&data, &hyp, m);
            assert_eq!(sm.n_obs[m], view.n(), "member {m}");
            let md = hyp.outputscale[m] + hyp.noise[m] + sm.yvar_mean[m];
            assert_eq!(md.to_bits(), view.mean_diag().to_bits(), "member {m}");
        }
    }

    #[test]
    fn param_layout_is_packed_in_the_kernels_order() {
        let pl = ParamLayout { c: 5, d: 3, alpha: true, na: 7 };
        assert_eq!(pl.offsets(), [5, 20, 25, 30, 35, 40, 45, 52]);
        let pl = ParamLayout { alpha: false, ..pl };
        assert_eq!(pl.offsets(), [5, 20, 25, 30, 35, 40, 40, 47]);
    }
}
