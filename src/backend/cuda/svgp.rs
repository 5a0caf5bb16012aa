//! The SVGP on the GPU (docs/design.md section 11; kernels/svgp.cu): the ELBO with its gradient
//! and the posterior, one block per member. The host prepares every input as the CPU backend
//! (`backend/cpu/svgp/`) does: Z centred on its mean per dimension and, with the data and test
//! points, divided by the lengthscales in f64 before the conversion to the working precision;
//! residuals, sigma2 = noise + yvar, q_mu and the jitter table (attempt k adds start 10^k s) in
//! f64. Status and jitter follow the CPU's rules: a member whose hyperparameters fail the
//! precheck is Failed with jitter 0 and is not launched; one whose k(Z, Z) factors at no attempt
//! is Failed with the last attempt's jitter; a non-finite ELBO or gradient is Failed; a member
//! with no observed point is Empty with the ELBO -KL.

use super::device::{arg_opt, guarded, Real};
use super::launch::{
    svgp_d_elems, svgp_launch, svgp_t_elems, KernelId, Op, SVGP_GRAD, SVGP_SMEM, SVGP_WANT_A, SVGP_YVAR,
};
use super::CudaBackend;
use crate::backend::member::{finite_or_failed, precheck};
use crate::backend::{member_rows, MllGradient, PredictOptions, Prediction};
use crate::data::{Dataset, Inputs, Precision, Status};
use crate::error::{Error, Result};
use crate::layout::Layout;
use crate::svgp::params::{ElboBatch, ElboOptions, SvgpGradient, SvgpParams};
use cudarc::driver::PushKernelArg;
use ndarray::{Array1, Array2, Array3, ArrayView2, Axis};
use rayon::prelude::*;

/// mean (B, Mt), var (B, Mt), covariance (B, Mt, Mt) when asked, status and jitter per member.
type SvgpPredictParts = (Array2<f64>, Array2<f64>, Option<Array3<f64>>, Vec<Status>, Array1<f64>);

/// Whether member b can be evaluated at all (the CPU's precheck).
fn usable(params: &SvgpParams, b: usize) -> bool {
    !params.hyp.is_failed(b) && precheck(&params.hyp, b, 1).is_none()
}

/// Member b's centre (the mean of its Z per dimension, summed as the CPU sums it).
fn centre_of(params: &SvgpParams, b: usize) -> Vec<f64> {
    let zb = params.z.index_axis(Axis(0), b);
    let m = params.n_inducing();
    (0..params.n_dims()).map(|k| zb.column(k).sum() / m as f64).collect()
}

/// Points `pts` (n, D) centred on `centre` and divided by the lengthscales of member b, appended
/// to `out` in T (masked points, `keep(i)` false, as 0).
fn push_scaled<T: Real>(
    out: &mut Vec<T>,
    pts: ArrayView2<f64>,
    centre: &[f64],
    ls: ndarray::ArrayView1<f64>,
    keep: impl Fn(usize) -> bool,
) {
    for (i, row) in pts.outer_iter().enumerate() {
        for (k, l) in ls.iter().enumerate() {
            out.push(if keep(i) { T::of((row[k] - centre[k]) / l) } else { T::of(0.0) });
        }
    }
}

/// The inducing side of a chunk of members: scaled Z, q_mu, q_sqrt (lower), s, rq's alpha and
/// the jitter table.
struct InducingInputs<T> {
    zs: Vec<T>,
    q_mu: Vec<f64>,
    q_sqrt: Vec<T>,
    s: Vec<f64>,
    alpha: Option<Vec<f64>>,
    jit: Vec<f64>,
    centres: Vec<Vec<f64>>,
}

impl<T: Real> InducingInputs<T> {
    fn new(params: &SvgpParams, rows: &[usize], opts: &ElboOptions) -> Self {
        let (m, d) = (params.n_inducing(), params.n_dims());
        let hyp = &params.hyp;
        let na = opts.jitter.retries as usize + 1;
        let mut zs = Vec::with_capacity(rows.len() * m * d);
        let mut q_sqrt = Vec::with_capacity(rows.len() * m * m);
        let mut centres = Vec::with_capacity(rows.len());
        for &b in rows {
            let centre = centre_of(params, b);
            push_scaled(&mut zs, params.z.index_axis(Axis(0), b), &centre, hyp.lengthscale.row(b), |_| true);
            let q = params.q_sqrt.index_axis(Axis(0), b);
            q_sqrt.extend(q.indexed_iter().map(|((i, j), v)| T::of(if j <= i { *v } else { 0.0 })));
            centres.push(centre);
        }
        InducingInputs {
            zs,
            q_mu: rows.iter().flat_map(|&b| params.q_mu.row(b).to_vec()).collect(),
            q_sqrt,
            s: rows.iter().map(|&b| hyp.outputscale[b]).collect(),
            alpha: hyp.kernel.has_alpha().then(|| rows.iter().map(|&b| hyp.alpha_of(b)).collect()),
            jit: rows
                .iter()
                .flat_map(|&b| (0..na as u32).map(move |k| opts.jitter_at(k, hyp.outputscale[b])))
                .collect(),
            centres,
        }
    }
}

/// The status and jitter of a launched member from its attempt (-1: none factored).
fn attempt_status(attempt: i32, opts: &ElboOptions, s: f64) -> (Status, f64) {
    if attempt < 0 {
        (Status::Failed, opts.jitter_at(opts.jitter.retries, s))
    } else {
        (if attempt == 0 { Status::Ok } else { Status::Jitter }, opts.jitter_at(attempt as u32, s))
    }
}

/// The SVGP's operations on the GPU, reached through the model (`svgp::ElboRequest`,
/// `svgp::predict`) and callable on the backend itself; the `Backend` trait names no model's.
impl CudaBackend {
    /// SVGP ELBO (and gradient) of the members listed in `members` (all when None), in that
    /// order (docs/design.md section 11): as `CpuBackend::elbo`. Chunks follow the free device
    /// memory; `opts.max_memory` is not read (as for the MLL).
    ///
    /// # Errors
    /// A listed member out of range, `scale` of the wrong length, a driver failure.
    pub fn elbo(
        &self,
        data: &Dataset,
        params: &SvgpParams,
        members: Option<&[usize]>,
        scale: Option<&[f64]>,
        opts: &ElboOptions,
    ) -> Result<ElboBatch> {
        let rows = member_rows(members, data.batch_size())?;
        let rows: &[usize] = &rows;
        if let Some(s) = scale {
            if s.len() != rows.len() {
                return Err(Error::shape("scale", format!("({},)", rows.len()), &[s.len()]));
            }
        }
        guarded(|| match opts.precision {
            Precision::F64 => self.elbo_t::<f64>(data, params, rows, scale, opts),
            Precision::F32 => self.elbo_t::<f32>(data, params, rows, scale, opts),
        })
    }

    /// SVGP posterior at test points `test` ((M, D) shared or (B, M, D)); needs no data.
    pub fn svgp_predict(&self, params: &SvgpParams, test: &Inputs, opts: &PredictOptions) -> Result<Prediction> {
        let (mean, var, cov, status, jitter) = guarded(|| match opts.precision {
            Precision::F64 => self.svgp_predict_t::<f64>(params, test, opts),
            Precision::F32 => self.svgp_predict_t::<f32>(params, test, opts),
        })?;
        Ok(Prediction::assemble(mean, var, &params.hyp.noise, cov, status, jitter, opts))
    }

    fn elbo_t<T: Real>(
        &self,
        data: &Dataset,
        params: &SvgpParams,
        rows: &[usize],
        scale: Option<&[f64]>,
        opts: &ElboOptions,
    ) -> Result<ElboBatch> {
        let dev = self.lock();
        let hyp = &params.hyp;
        let (k, m, d, n) = (rows.len(), params.n_inducing(), params.n_dims(), data.n_points());
        let layout = Layout::new(hyp.kernel, d);
        let np = layout.len();
        let na = opts.jitter.retries as usize + 1;
        let sz = std::mem::size_of::<T>();
        let mut elbo = Array1::from_elem(k, f64::NAN);
        let mut status = vec![Status::Failed; k];
        let mut jitter = Array1::zeros(k);
        let mut gradient = opts.gradient.then(|| SvgpGradient {
            z: Array3::from_elem((k, m, d), f64::NAN),
            q_mu: Array2::from_elem((k, m), f64::NAN),
            q_sqrt: Array3::from_elem((k, m, m), f64::NAN),
            hyp: nan_hyp(k, layout),
        });
        // Listed positions that reach the kernel.
        let live: Vec<usize> = (0..k).filter(|&i| usable(params, rows[i])).collect();
        let (_, smem) = svgp_launch(m, sz, 1, dev.smem_optin);
        let per = sz * (m * d + n * d + m * m + if smem { 0 } else { svgp_t_elems(m) })
            + n
            + 8 * (2 * n + m + 2 * d + 4 + na + svgp_d_elems(m, d) + 1 + m * d + m + m * m + np)
            + 4;
        let chunk = dev.chunk(per, live.len().max(1))?;
        for part in live.chunks(chunk) {
            let c = part.len();
            let members: Vec<usize> = part.iter().map(|&i| rows[i]).collect();
            let ind = InducingInputs::<T>::new(params, &members, opts);
            let mut xs: Vec<T> = Vec::with_capacity(c * n * d);
            let mut mask = vec![0u8; c * n];
            let mut r = vec![0.0; c * n];
            let mut sig2 = vec![1.0; c * n];
            for (q, &b) in members.iter().enumerate() {
                push_scaled(&mut xs, data.x().member(b), &ind.centres[q], hyp.lengthscale.row(b), |i| {
                    data.is_observed(b, i)
                });
                let y = data.y().row(b);
                for i in data.observed(b) {
                    mask[q * n + i] = 1;
                    r[q * n + i] = y[i] - hyp.mean[b];
                    sig2[q * n + i] = hyp.noise[b] + data.yvar_at(b, i);
                }
            }
            let ls: Vec<f64> = members.iter().flat_map(|&b| hyp.lengthscale.row(b).to_vec()).collect();
            let noise: Vec<f64> = members.iter().map(|&b| hyp.noise[b]).collect();
            let cscale: Vec<f64> = part.iter().map(|&i| scale.map_or(1.0, |s| s[i])).collect();
            let (cfg, smem) = svgp_launch(m, sz, c, dev.smem_optin);
            let mut flags = if smem { SVGP_SMEM } else { 0 };
            if opts.gradient {
                flags |= SVGP_GRAD;
            }
            if data.yvar().is_some() {
                flags |= SVGP_YVAR;
            }
            let d_zs = dev.up(&ind.zs)?;
            let d_xs = dev.up(&xs)?;
            let d_mask = dev.up(&mask)?;
            let d_r = dev.up(&r)?;
            let d_sig2 = dev.up(&sig2)?;
            let d_qmu = dev.up(&ind.q_mu)?;
            let d_q = dev.up(&ind.q_sqrt)?;
            let d_ls = dev.up(&ls)?;
            let d_s = dev.up(&ind.s)?;
            let d_alpha = dev.up_opt(ind.alpha.as_deref())?;
            let d_noise = dev.up(&noise)?;
            let d_c = dev.up(&cscale)?;
            let d_jit = dev.up(&ind.jit)?;
            let twork = dev.zeros::<T>(if smem { 1 } else { c * svgp_t_elems(m) })?;
            let dwork = dev.zeros::<f64>(c * svgp_d_elems(m, d))?;
            let o_elbo = dev.zeros::<f64>(c)?;
            let o_att = dev.zeros::<i32>(c)?;
            let gl = |len: usize| if opts.gradient { c * len } else { 1 };
            let o_gz = dev.zeros::<f64>(gl(m * d))?;
            let o_gqmu = dev.zeros::<f64>(gl(m))?;
            let o_gq = dev.zeros::<f64>(gl(m * m))?;
            let o_gh = dev.zeros::<f64>(gl(np))?;
            let (nat, bb, mm, nn, dd) = (na as i32, c as i32, m as i32, n as i32, d as i32);
            let id = KernelId::new(Op::SvgpElbo, hyp.kernel, T::DTYPE);
            let f = dev.func(id)?;
            let mut lb = dev.stream.launch_builder(f);
            lb.arg(&d_zs).arg(&d_xs).arg(&d_mask).arg(&d_r).arg(&d_sig2).arg(&d_qmu).arg(&d_q).arg(&d_ls).arg(&d_s);
            arg_opt(&mut lb, &d_alpha);
            lb.arg(&d_noise)
                .arg(&d_c)
                .arg(&d_jit)
                .arg(&nat)
                .arg(&bb)
                .arg(&mm)
                .arg(&nn)
                .arg(&dd)
                .arg(&flags)
                .arg(&twork)
                .arg(&dwork)
                .arg(&o_elbo)
                .arg(&o_att)
                .arg(&o_gz)
                .arg(&o_gqmu)
                .arg(&o_gq)
                .arg(&o_gh);
            // SAFETY: svgp_elbo_<kernel>_<T>(const T* zs, const T* xs, const uint8_t* mask,
            // const double* r, const double* sig2, const double* q_mu, const T* q_sqrt,
            // const double* ls, const double* s, const double* rq_alpha, const double* noise,
            // const double* cscale, const double* jit, int nattempts, int B, int M, int N, int D,
            // int flags, T* twork, double* dwork, double* out_elbo, int* out_attempt,
            // double* out_gz, double* out_gqmu, double* out_gq, double* out_ghyp): in order and
            // type; zs c*M*D, xs c*N*D, mask, r and sig2 c*N, q_mu c*M, q_sqrt c*M*M, ls c*D,
            // s, noise, cscale and rq_alpha c (null for a kernel without alpha, never read),
            // jit c*nattempts, twork c*svgp_t_elems(M) unless SVGP_SMEM (then the launch's
            // dynamic shared memory holds them), dwork c*svgp_d_elems(M, D), outputs c, c, and
            // with SVGP_GRAD c*M*D, c*M, c*M*M, c*P elements (never written without it); one
            // block per member.
            unsafe { dev.launch(&mut lb, cfg, id, c) }?;
            let eh = dev.down(&o_elbo, c)?;
            let ah = dev.down(&o_att, c)?;
            let grads = if opts.gradient {
                Some((
                    dev.down(&o_gz, c * m * d)?,
                    dev.down(&o_gqmu, c * m)?,
                    dev.down(&o_gq, c * m * m)?,
                    dev.down(&o_gh, c * np)?,
                ))
            } else {
                None
            };
            for (q, &i) in part.iter().enumerate() {
                let b = rows[i];
                let (st, jit) = attempt_status(ah[q], opts, hyp.outputscale[b]);
                jitter[i] = jit;
                if st == Status::Failed || finite_or_failed(st, [eh[q]]) == Status::Failed {
                    continue;
                }
                let st = if data.n_observed(b) == 0 { Status::Empty } else { st };
                if let (Some(g), Some((gz, gqmu, gq, gh))) = (gradient.as_mut(), grads.as_ref()) {
                    let (gz, gqmu, gq, gh) = (
                        &gz[q * m * d..(q + 1) * m * d],
                        &gqmu[q * m..(q + 1) * m],
                        &gq[q * m * m..(q + 1) * m * m],
                        &gh[q * np..(q + 1) * np],
                    );
                    let all = gz.iter().chain(gqmu).chain(gq).chain(gh).copied();
                    if finite_or_failed(st, all) == Status::Failed {
                        continue;
                    }
                    g.z.index_axis_mut(Axis(0), i).iter_mut().zip(gz).for_each(|(a, v)| *a = *v);
                    g.q_mu.row_mut(i).iter_mut().zip(gqmu).for_each(|(a, v)| *a = *v);
                    g.q_sqrt.index_axis_mut(Axis(0), i).iter_mut().zip(gq).for_each(|(a, v)| *a = *v);
                    for (cc, v) in gh.iter().enumerate() {
                        let (t, kk) = layout.coordinate(cc);
                        *g.hyp.get_mut(t, i, kk) = *v;
                    }
                }
                status[i] = st;
                elbo[i] = eh[q];
            }
        }
        Ok(ElboBatch { elbo, gradient, status, jitter })
    }

    fn svgp_predict_t<T: Real>(
        &self,
        params: &SvgpParams,
        test: &Inputs,
        opts: &PredictOptions,
    ) -> Result<SvgpPredictParts> {
        let dev = self.lock();
        let hyp = &params.hyp;
        let (b, m, d, mt) = (params.batch_size(), params.n_inducing(), params.n_dims(), test.n_points());
        let eopts = ElboOptions::new(opts.precision);
        let na = eopts.jitter.retries as usize + 1;
        let want_cov = opts.full_covariance || opts.samples.is_some();
        let sz = std::mem::size_of::<T>();
        let mut mean = Array2::from_elem((b, mt), f64::NAN);
        let mut var = Array2::from_elem((b, mt), f64::NAN);
        let mut cov = want_cov.then(|| Array3::from_elem((b, mt, mt), f64::NAN));
        let mut status = vec![Status::Failed; b];
        let mut jitter = Array1::zeros(b);
        let live: Vec<usize> = (0..b).filter(|&mb| usable(params, mb)).collect();
        let (_, smem) = svgp_launch(m, sz, 1, dev.smem_optin);
        let per = sz
            * (m * d + mt * d + m * m + if smem { 0 } else { svgp_t_elems(m) } + if want_cov { m * mt } else { 0 })
            + 8 * (2 * mt + m + 3 + na)
            + 4;
        let chunk = dev.chunk(per, live.len().max(1))?;
        for part in live.chunks(chunk) {
            let c = part.len();
            let ind = InducingInputs::<T>::new(params, part, &eopts);
            let mut ts: Vec<T> = Vec::with_capacity(c * mt * d);
            for (q, &mb) in part.iter().enumerate() {
                push_scaled(&mut ts, test.member(mb), &ind.centres[q], hyp.lengthscale.row(mb), |_| true);
            }
            let means: Vec<f64> = part.iter().map(|&mb| hyp.mean[mb]).collect();
            let (cfg, smem) = svgp_launch(m, sz, c, dev.smem_optin);
            let flags = if smem { SVGP_SMEM } else { 0 } | if want_cov { SVGP_WANT_A } else { 0 };
            let d_zs = dev.up(&ind.zs)?;
            let d_ts = dev.up(&ts)?;
            let d_qmu = dev.up(&ind.q_mu)?;
            let d_q = dev.up(&ind.q_sqrt)?;
            let d_s = dev.up(&ind.s)?;
            let d_alpha = dev.up_opt(ind.alpha.as_deref())?;
            let d_mean = dev.up(&means)?;
            let d_jit = dev.up(&ind.jit)?;
            let twork = dev.zeros::<T>(if smem { 1 } else { c * svgp_t_elems(m) })?;
            let o_mean = dev.zeros::<f64>(c * mt)?;
            let o_var = dev.zeros::<f64>(c * mt)?;
            let o_att = dev.zeros::<i32>(c)?;
            let o_a = dev.zeros::<T>(if want_cov { c * m * mt } else { 1 })?;
            let (nat, bb, mm, mtt, dd) = (na as i32, c as i32, m as i32, mt as i32, d as i32);
            let id = KernelId::new(Op::SvgpPredict, hyp.kernel, T::DTYPE);
            let f = dev.func(id)?;
            let mut lb = dev.stream.launch_builder(f);
            lb.arg(&d_zs).arg(&d_ts).arg(&d_qmu).arg(&d_q).arg(&d_s);
            arg_opt(&mut lb, &d_alpha);
            lb.arg(&d_mean)
                .arg(&d_jit)
                .arg(&nat)
                .arg(&bb)
                .arg(&mm)
                .arg(&mtt)
                .arg(&dd)
                .arg(&flags)
                .arg(&twork)
                .arg(&o_mean)
                .arg(&o_var)
                .arg(&o_att)
                .arg(&o_a);
            // SAFETY: svgp_predict_<kernel>_<T>(const T* zs, const T* ts, const double* q_mu,
            // const T* q_sqrt, const double* s, const double* rq_alpha, const double* mean,
            // const double* jit, int nattempts, int B, int M, int Mt, int D, int flags,
            // T* twork, double* out_mean, double* out_var, int* out_attempt, T* out_a): in order
            // and type; zs c*M*D, ts c*Mt*D, q_mu c*M, q_sqrt c*M*M, s, mean and rq_alpha c (null
            // for a kernel without alpha), jit c*nattempts, twork as for the ELBO, outputs c*Mt,
            // c*Mt, c and, with SVGP_WANT_A, c*M*Mt elements; one block per member.
            unsafe { dev.launch(&mut lb, cfg, id, c) }?;
            let mh = dev.down(&o_mean, c * mt)?;
            let vh = dev.down(&o_var, c * mt)?;
            let ah = dev.down(&o_att, c)?;
            let a_host = if want_cov { dev.down(&o_a, c * m * mt)? } else { Vec::new() };
            let covs: Vec<Option<Vec<f64>>> = (0..c)
                .into_par_iter()
                .map(|q| {
                    want_cov.then(|| {
                        let mb = part[q];
                        let a = &a_host[q * m * mt..(q + 1) * m * mt];
                        let qs = &ind.q_sqrt[q * m * m..(q + 1) * m * m];
                        let zt = &ts[q * mt * d..(q + 1) * mt * d];
                        posterior_cov(params, mb, a, qs, zt, m, mt, d)
                    })
                })
                .collect();
            for (q, &mb) in part.iter().enumerate() {
                let (st, jit) = attempt_status(ah[q], &eopts, hyp.outputscale[mb]);
                jitter[mb] = jit;
                let vals = mh[q * mt..(q + 1) * mt].iter().chain(&vh[q * mt..(q + 1) * mt]).copied();
                if st == Status::Failed || finite_or_failed(st, vals) == Status::Failed {
                    continue;
                }
                status[mb] = st;
                for t in 0..mt {
                    mean[[mb, t]] = mh[q * mt + t];
                    var[[mb, t]] = vh[q * mt + t];
                }
                if let (Some(cv), Some(src)) = (cov.as_mut(), covs[q].as_ref()) {
                    cv.index_axis_mut(Axis(0), mb).iter_mut().zip(src).for_each(|(o, v)| *o = *v);
                }
            }
        }
        Ok((mean, var, cov, status, jitter))
    }
}

/// The posterior covariance of f at member mb's test points from A* = L^-1 k(Z, x*) (M, Mt) in T:
/// k(x*, x*) - A*^T A* + (Q^T A*)^T (Q^T A*), with k(x*, x*) from the scaled test points zt
/// (Mt, D) in T as the CPU forms it.
#[allow(clippy::too_many_arguments)]
fn posterior_cov<T: Real>(
    params: &SvgpParams,
    mb: usize,
    a: &[T],
    qs: &[T],
    zt: &[T],
    m: usize,
    mt: usize,
    d: usize,
) -> Vec<f64> {
    let hyp = &params.hyp;
    let (s, alpha) = (hyp.outputscale[mb], hyp.alpha_of(mb));
    // B = Q^T A (M, Mt).
    let mut bq = vec![0.0; m * mt];
    for k in 0..m {
        for j in k..m {
            let qjk = qs[j * m + k].f64();
            if qjk != 0.0 {
                for t in 0..mt {
                    bq[k * mt + t] += qjk * a[j * mt + t].f64();
                }
            }
        }
    }
    let mut out = vec![0.0; mt * mt];
    for t in 0..mt {
        for u in 0..=t {
            let r2: f64 = (0..d)
                .map(|k| {
                    let v = zt[t * d + k].f64() - zt[u * d + k].f64();
                    v * v
                })
                .sum();
            let mut v = s * hyp.kernel.phi(r2, alpha);
            for k in 0..m {
                v += bq[k * mt + t] * bq[k * mt + u] - a[k * mt + t].f64() * a[k * mt + u].f64();
            }
            out[t * mt + u] = v;
            out[u * mt + t] = v;
        }
    }
    out
}

/// A gradient of K members, NaN everywhere (rows are filled as members succeed).
fn nan_hyp(k: usize, layout: Layout) -> MllGradient {
    let mut g = MllGradient::zeros(k, layout);
    g.log_lengthscale.fill(f64::NAN);
    g.log_outputscale.fill(f64::NAN);
    g.log_noise.fill(f64::NAN);
    g.mean.fill(f64::NAN);
    if let Some(a) = g.log_alpha.as_mut() {
        a.fill(f64::NAN);
    }
    g
}
