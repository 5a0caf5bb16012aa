//! Posterior prediction on the GPU: the fused kernel factorises and solves (flag FACTOR), then
//! predict_<kernel>_<T> forms the mean, the variance and V = L^-1 K* without another Cholesky,
//! and predict_cov_<kernel>_<T> the covariance K** - V^T V when asked for.

use super::device::{arg_opt, Real};
use super::launch::{predict_launch, predict_tiles, stride_launch, KernelId, Op, Variant, FLAG_FACTOR};
use super::mll::{attempt_status, fused_bytes, run_fused, screen, DeviceInputs, MemberInputs};
use super::CudaBackend;
use crate::backend::member::MemberView;
use crate::backend::{JitterPolicy, PredictOptions};
use crate::data::{Dataset, Hyperparameters, Inputs, Status};
use crate::error::Result;
use cudarc::driver::PushKernelArg;
use ndarray::{Array1, Array2, Array3, Axis};

/// mean (B, M), var (B, M), covariance (B, M, M) when asked, status and jitter per member.
pub(super) type PredictParts = (Array2<f64>, Array2<f64>, Option<Array3<f64>>, Vec<Status>, Array1<f64>);

impl CudaBackend {
    pub(super) fn predict_t<T: Real>(
        &self,
        data: &Dataset,
        hyp: &Hyperparameters,
        test: &Inputs,
        opts: &PredictOptions,
    ) -> Result<PredictParts> {
        let dev = self.lock();
        let (b, n, d) = (data.batch_size(), data.n_points(), data.n_dims());
        let m = test.n_points();
        let want_cov = opts.full_covariance || opts.samples.is_some();
        let policy = JitterPolicy::for_precision(opts.precision);
        let na = policy.retries as usize + 1;
        let sz = std::mem::size_of::<T>();
        let mut mean = Array2::from_elem((b, m), f64::NAN);
        let mut var = Array2::from_elem((b, m), f64::NAN);
        let mut cov = want_cov.then(|| Array3::from_elem((b, m, m), f64::NAN));
        let mut status = vec![Status::Failed; b];
        let mut jitter = Array1::zeros(b);
        let mut mean_diag = vec![0.0; b];
        // Members that reach the kernels. An empty member does: its posterior is the prior,
        // which the kernels give (an identity K, alpha = 0, V = 0), with status Empty.
        let mut live = Vec::with_capacity(b);
        for bm in 0..b {
            let member = MemberView::new(data, hyp, bm);
            match screen(hyp, &member, bm) {
                Some(Status::Empty) | None => {
                    mean_diag[bm] = member.mean_diag();
                    live.push(bm);
                }
                Some(st) => status[bm] = st,
            }
        }
        let v = Variant::select(n, sz, dev.smem_optin);
        let per = fused_bytes::<T>(n, d, na, v)
            + sz * (n * n + n + m * d + n * m + 2 * m + 1 + if want_cov { m * m } else { 0 })
            + 4;
        let tiles = predict_tiles(m);
        let chunk = dev.chunk(per, live.len().max(1))?.min((i32::MAX as usize / tiles).max(1));
        for part in live.chunks(chunk) {
            let c = part.len();
            let inp = MemberInputs::<T>::new(data, hyp, part, policy);
            let dinp = DeviceInputs::upload(&dev, &inp)?;
            let fo = run_fused(&dev, hyp.kernel, &dinp, na, FLAG_FACTOR)?;
            // Test points centred on each member's centre, as its training points are.
            let mut xt = vec![T::of(0.0); c * m * d];
            let mut mu = Vec::with_capacity(c);
            for (q, &bm) in part.iter().enumerate() {
                let z = test.member(bm);
                let centre = &inp.centre[q * d..(q + 1) * d];
                for t in 0..m {
                    for j in 0..d {
                        xt[(q * m + t) * d + j] = T::of(z[[t, j]] - centre[j]);
                    }
                }
                mu.push(T::of(hyp.mean[bm]));
            }
            let dxt = dev.up(&xt)?;
            let dmu = dev.up(&mu)?;
            let vbuf = dev.zeros::<T>(c * n * m)?;
            let omean = dev.zeros::<T>(c * m)?;
            let ovar = dev.zeros::<T>(c * m)?;
            let (x_stride, xt_stride, bb, nn, mm, dd) =
                ((n * d) as i64, (m * d) as i64, c as i32, n as i32, m as i32, d as i32);
            if m > 0 {
                let id = KernelId::new(Op::Predict, hyp.kernel, T::DTYPE);
                let f = dev.func(id)?;
                let mut lb = dev.stream.launch_builder(f);
                lb.arg(&dinp.x).arg(&x_stride).arg(&dinp.mask).arg(&dxt).arg(&xt_stride).arg(&dinp.ls).arg(&dinp.s);
                arg_opt(&mut lb, &dinp.alpha);
                lb.arg(&dmu)
                    .arg(&fo.l)
                    .arg(&fo.alpha)
                    .arg(&fo.attempt)
                    .arg(&bb)
                    .arg(&nn)
                    .arg(&mm)
                    .arg(&dd)
                    .arg(&vbuf)
                    .arg(&omean)
                    .arg(&ovar);
                // SAFETY: predict_<kernel>_<T>(const T* x, long long x_stride, const uint8_t*
                // mask, const T* xt, long long xt_stride, const T* ls, const T* s,
                // const T* rq_alpha, const T* mean, const T* l, const T* alpha,
                // const int* attempt, int B, int N, int M, int D, T* v, T* out_mean,
                // T* out_var): in order and type; x c*N*D, mask c*N, xt c*M*D, ls c*D, s, mean
                // and rq_alpha c (null for a kernel without alpha, which never reads it), l
                // c*N*N and alpha c*N (written by gp_mll with FLAG_FACTOR on this stream),
                // attempt c, v c*N*M, outputs c*M elements; the grid is ceil(M/128)*c blocks of
                // 128 threads as the kernel expects.
                unsafe { dev.launch(&mut lb, predict_launch(m, c), id, c) }?;
            }
            let mut cov_host = Vec::new();
            if want_cov && m > 0 {
                let total = c * m * m;
                let oc = dev.zeros::<T>(total)?;
                let id = KernelId::new(Op::PredictCov, hyp.kernel, T::DTYPE);
                let f = dev.func(id)?;
                let mut lb = dev.stream.launch_builder(f);
                lb.arg(&dxt).arg(&xt_stride).arg(&dinp.ls).arg(&dinp.s);
                arg_opt(&mut lb, &dinp.alpha);
                lb.arg(&fo.attempt).arg(&vbuf).arg(&bb).arg(&nn).arg(&mm).arg(&dd).arg(&oc);
                // SAFETY: predict_cov_<kernel>_<T>(const T* xt, long long xt_stride,
                // const T* ls, const T* s, const T* rq_alpha, const int* attempt, const T* v,
                // int B, int N, int M, int D, T* out): in order and type; xt c*M*D, ls c*D, s,
                // rq_alpha (or null, as above) and attempt c, v c*N*M (filled by predict above,
                // same stream), out c*M*M elements.
                unsafe { dev.launch(&mut lb, stride_launch(total), id, c) }?;
                cov_host = dev.down(&oc, total)?;
            }
            let mh = dev.down(&omean, c * m)?;
            let vh = dev.down(&ovar, c * m)?;
            let ah = dev.down(&fo.attempt, c)?;
            for (q, &bm) in part.iter().enumerate() {
                let (st, j) = if data.n_observed(bm) == 0 {
                    (Status::Empty, 0.0)
                } else {
                    attempt_status(ah[q], policy, mean_diag[bm])
                };
                status[bm] = st;
                jitter[bm] = j;
                if st == Status::Failed {
                    continue;
                }
                for t in 0..m {
                    mean[[bm, t]] = mh[q * m + t].f64();
                    var[[bm, t]] = vh[q * m + t].f64();
                }
                if let Some(cv) = cov.as_mut() {
                    for (dst, src) in
                        cv.index_axis_mut(Axis(0), bm).iter_mut().zip(&cov_host[q * m * m..(q + 1) * m * m])
                    {
                        *dst = src.f64();
                    }
                }
            }
        }
        Ok((mean, var, cov, status, jitter))
    }
}
