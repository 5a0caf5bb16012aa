//! The batched Gram matrices (gram_<kernel>_<T>) and the Cholesky factorisation of given
//! matrices with jitter (chol_<variant>_<T>) on the GPU.

use super::device::{arg_opt, Real};
use super::launch::{stride_launch, KernelId, Op, Variant};
use super::mll::{attempt_status, DeviceInputs, MemberInputs};
use super::CudaBackend;
use crate::backend::{CholeskyBatch, JitterPolicy};
use crate::data::{Dataset, Hyperparameters, Status};
use crate::error::Result;
use cudarc::driver::PushKernelArg;
use ndarray::{Array1, Array3};
use rayon::prelude::*;

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
            let id = KernelId::new(Op::Gram, hyp.kernel, T::DTYPE);
            let f = dev.func(id)?;
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
            unsafe { dev.launch(&mut lb, stride_launch(total), id, c) }?;
            let host = dev.down(&k, total)?;
            let dst = &mut out.as_slice_mut().expect("a new array is contiguous")[start * n * n..(start + c) * n * n];
            dst.par_iter_mut().zip(host.par_iter()).for_each(|(o, v)| *o = v.f64());
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
        let a = a.as_standard_layout();
        let a_flat = a.as_slice().expect("standard layout");
        let mean_diag: Vec<f64> = (0..b).map(|m| (0..n).map(|i| a[[m, i, i]]).sum::<f64>() / n as f64).collect();
        for start in (0..b).step_by(chunk) {
            let end = (start + chunk).min(b);
            let c = end - start;
            let host: Vec<T> = a_flat[start * n * n..end * n * n].par_iter().map(|&v| T::of(v)).collect();
            let mut jit = Vec::with_capacity(c * na);
            for &md in &mean_diag[start..end] {
                for t in 0..na {
                    jit.push(T::of(policy.jitter(t as u32, md)));
                }
            }
            let da = dev.up(&host)?;
            let djit = dev.up(&jit)?;
            let l = dev.zeros::<T>(c * n * n)?;
            let att = dev.zeros::<i32>(c)?;
            let work = dev.zeros::<T>(c * v.work_per_member(n))?;
            let id = KernelId::chol(v, T::DTYPE);
            let f = dev.func(id)?;
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
            unsafe { dev.launch(&mut lb, v.launch(n, sz, c), id, c) }?;
            let lh = dev.down(&l, c * n * n)?;
            let ah = dev.down(&att, c)?;
            let mut ok = vec![false; c];
            for q in 0..c {
                let m = start + q;
                if !mean_diag[m].is_finite() {
                    continue; // Failed, jitter 0, NaN: as the CPU backend reports it
                }
                let (st, j) = attempt_status(ah[q], policy, mean_diag[m]);
                status[m] = st;
                jitter[m] = j;
                ok[q] = st != Status::Failed;
            }
            let dst = &mut factor.as_slice_mut().expect("a new array is contiguous")[start * n * n..end * n * n];
            dst.par_chunks_mut(n * n).zip(lh.par_chunks(n * n)).zip(ok.par_iter()).for_each(|((o, l), &ok)| {
                if ok {
                    o.iter_mut().zip(l).for_each(|(o, v)| *o = v.f64());
                }
            });
        }
        Ok(CholeskyBatch { factor, status, jitter })
    }
}
