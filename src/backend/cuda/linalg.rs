//! The batched Gram matrices (gram_<kernel>_<T>) and the Cholesky factorisation of given
//! matrices with jitter (chol_<variant>_<T>) on the GPU.

use super::device::{arg_opt, cuda_err, Real};
use super::launch::{stride_launch, KernelId, Op, Variant};
use super::mll::{attempt_status, DeviceInputs, MemberInputs};
use super::CudaBackend;
use crate::backend::{CholeskyBatch, JitterPolicy};
use crate::data::{Dataset, Hyperparameters, Status};
use crate::error::Result;
use cudarc::driver::PushKernelArg;
use ndarray::{Array1, Array3, Axis};

impl CudaBackend {
    pub(super) fn gram_t<T: Real>(&self, data: &Dataset, hyp: &Hyperparameters) -> Result<Array3<f64>> {
        let dev = self.lock();
        let (b, n, d) = (data.batch_size(), data.n_points(), data.n_dims());
        let sz = std::mem::size_of::<T>();
        let mut out = Array3::<f64>::zeros((b, n, n));
        let per = sz * (n * n + n * d + 2 * n + d + 4) + n;
        let chunk = dev.chunk(per, b.max(1))?;
        let rows: Vec<usize> = (0..b).collect();
        let policy = JitterPolicy { start: 0.0, retries: 0 };
        for (ci, part) in rows.chunks(chunk).enumerate() {
            let start = ci * chunk;
            let c = part.len();
            let inp = MemberInputs::<T>::new(data, hyp, part, policy);
            let dinp = DeviceInputs::upload(&dev, &inp)?;
            let k = dev.zeros::<T>(c * n * n)?;
            let f = dev.func(KernelId::new(Op::Gram, hyp.kernel, T::DTYPE))?;
            let total = c * n * n;
            let (x_stride, bb, nn, dd) = ((n * d) as i64, c as i32, n as i32, d as i32);
            let mut lb = dev.stream.launch_builder(f);
            lb.arg(&dinp.x).arg(&x_stride).arg(&dinp.mask).arg(&dinp.ls).arg(&dinp.s).arg(&dinp.noise);
            arg_opt(&mut lb, &dinp.alpha);
            arg_opt(&mut lb, &dinp.yvar);
            lb.arg(&bb).arg(&nn).arg(&dd).arg(&k);
            // SAFETY: gram_<kernel>_<T>(const T* x, long long x_stride, const uint8_t* mask,
            // const T* ls, const T* s, const T* noise, const T* rq_alpha, const T* yvar, int B,
            // int N, int D, T* out): in order and type; x holds c*N*D, mask c*N, ls c*D, s,
            // noise and rq_alpha c, yvar c*N elements (rq_alpha null for a kernel that never
            // reads it, yvar null when absent, which the kernel tests), out c*N*N elements.
            unsafe { lb.launch(stride_launch(total)) }.map_err(cuda_err("gram launch"))?;
            let host = dev.down(&k, total)?;
            for (q, v) in host.iter().enumerate() {
                let (m, r) = (start + q / (n * n), q % (n * n));
                out[[m, r / n, r % n]] = v.f64();
            }
        }
        Ok(out)
    }

    pub(super) fn cholesky_t<T: Real>(&self, a: &Array3<f64>, policy: JitterPolicy) -> Result<CholeskyBatch> {
        let dev = self.lock();
        let (b, n, _) = a.dim();
        let mut factor = Array3::<f64>::from_elem((b, n, n), f64::NAN);
        let mut status = vec![Status::Failed; b];
        let mut jitter = Array1::zeros(b);
        if n == 0 {
            return Ok(CholeskyBatch { factor: Array3::zeros((b, 0, 0)), status: vec![Status::Ok; b], jitter });
        }
        let sz = std::mem::size_of::<T>();
        let na = policy.retries as usize + 1;
        let v = Variant::select(n, sz, dev.smem_optin);
        let per = sz * (2 * n * n + na + v.work_per_member(n)) + 4;
        let chunk = dev.chunk(per, b.max(1))?;
        let mean_diag: Vec<f64> = (0..b).map(|m| (0..n).map(|i| a[[m, i, i]]).sum::<f64>() / n as f64).collect();
        for start in (0..b).step_by(chunk) {
            let end = (start + chunk).min(b);
            let c = end - start;
            let mut host = Vec::with_capacity(c * n * n);
            let mut jit = Vec::with_capacity(c * na);
            for (m, &md) in mean_diag.iter().enumerate().take(end).skip(start) {
                host.extend(a.index_axis(Axis(0), m).iter().map(|&v| T::of(v)));
                for t in 0..na {
                    jit.push(T::of(policy.jitter(t as u32, md)));
                }
            }
            let da = dev.up(&host)?;
            let djit = dev.up(&jit)?;
            let l = dev.zeros::<T>(c * n * n)?;
            let att = dev.zeros::<i32>(c)?;
            let work = dev.zeros::<T>(c * v.work_per_member(n))?;
            let f = dev.func(KernelId::chol(v, T::DTYPE))?;
            let (nat, bb, nn) = (na as i32, c as i32, n as i32);
            let mut lb = dev.stream.launch_builder(f);
            lb.arg(&da).arg(&djit).arg(&nat).arg(&bb).arg(&nn).arg(&l).arg(&att);
            if v == Variant::Global {
                lb.arg(&work);
            }
            // SAFETY: chol_<variant>_<T>(const T* a, const T* jit, int nattempts, int B, int N,
            // T* out_l, int* out_attempt[, T* work]): in order and type; a and out_l hold c*N*N,
            // jit c*nattempts, out_attempt c, work c*(N*N+2N) elements for the global variant;
            // the launch shape and shared memory are the variant's.
            unsafe { lb.launch(v.launch(n, sz, c)) }.map_err(cuda_err("chol launch"))?;
            let lh = dev.down(&l, c * n * n)?;
            let ah = dev.down(&att, c)?;
            for q in 0..c {
                let m = start + q;
                if !mean_diag[m].is_finite() {
                    continue; // Failed, jitter 0, NaN: as the CPU backend reports it
                }
                let (st, j) = attempt_status(ah[q], policy, mean_diag[m]);
                status[m] = st;
                jitter[m] = j;
                if st == Status::Failed {
                    continue;
                }
                for (dst, src) in factor.index_axis_mut(Axis(0), m).iter_mut().zip(&lh[q * n * n..(q + 1) * n * n]) {
                    *dst = src.f64();
                }
            }
        }
        Ok(CholeskyBatch { factor, status, jitter })
    }
}
