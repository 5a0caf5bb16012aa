//! The driver calls of the MLL host path ([`super::host`]) behind one trait, so that the host
//! path runs, is tested and is timed without a GPU: [`Device`] implements it with cudarc, and
//! [`Counting`] is a stand-in that counts calls and bytes, keeps no device memory and runs no
//! kernel (its downloads read back as zeros: attempt 0, every member factored).

use super::device::{cuda_err, Device, Real};
use super::launch::{stride_launch, KernelId, Op, Variant};
use crate::error::Result;
use crate::kernel::Kernel;
use cudarc::driver::{sys, CudaSlice, DevicePtr, DeviceRepr, PinnedHostSlice, PushKernelArg, ValidAsZeroBits};
use std::cell::Cell;

/// An element of a device or staging buffer.
pub(super) trait Elem: DeviceRepr + ValidAsZeroBits + Copy + Default + Send + Sync + Unpin + 'static {}
impl Elem for f64 {}
impl Elem for f32 {}
impl Elem for u8 {}
impl Elem for i32 {}

/// A place in a device buffer: the buffer and an element offset into it. The kernels get
/// `buf + off` as a pointer, whatever the element type they read there (the fused kernel's
/// attempts are i32 in the tail of a buffer of T, so that every output comes back in one copy).
pub(super) struct At<'a, B> {
    pub buf: &'a B,
    pub off: usize,
}

impl<'a, B> At<'a, B> {
    pub fn of(buf: &'a B) -> Self {
        At { buf, off: 0 }
    }
    pub fn plus(buf: &'a B, off: usize) -> Self {
        At { buf, off }
    }
}

/// The arguments of gp_mll_prep_<T> (kernels/prep.cu), in its order.
pub(super) struct PrepArgs<'a, D: Driver + ?Sized, T: Real> {
    pub params: At<'a, D::Buf<f64>>,
    pub c: usize,
    pub n: usize,
    pub d: usize,
    pub has_alpha: bool,
    pub nattempts: usize,
    pub jit_start: f64,
    pub x_res: At<'a, D::Buf<T>>,
    pub y_res: At<'a, D::Buf<f64>>,
    pub mask_res: At<'a, D::Buf<u8>>,
    pub yvar_res: Option<At<'a, D::Buf<T>>>,
    /// Gather the members' rows of x, mask and yvar into the three buffers below (else they
    /// are not touched and may be None).
    pub gather: Option<(At<'a, D::Buf<T>>, At<'a, D::Buf<u8>>, Option<At<'a, D::Buf<T>>>)>,
    pub r: At<'a, D::Buf<T>>,
    pub ls: At<'a, D::Buf<T>>,
    pub s: At<'a, D::Buf<T>>,
    pub noise: At<'a, D::Buf<T>>,
    pub alpha: Option<At<'a, D::Buf<T>>>,
    pub jit: At<'a, D::Buf<T>>,
}

/// The arguments of gp_mll_<variant>_<kernel>_<T> (kernels/gp.cu) without the factor outputs.
pub(super) struct FusedArgs<'a, D: Driver + ?Sized, T: Real> {
    pub variant: Variant,
    pub x: At<'a, D::Buf<T>>,
    pub r: At<'a, D::Buf<T>>,
    pub mask: At<'a, D::Buf<u8>>,
    pub ls: At<'a, D::Buf<T>>,
    pub s: At<'a, D::Buf<T>>,
    pub noise: At<'a, D::Buf<T>>,
    pub alpha: Option<At<'a, D::Buf<T>>>,
    pub yvar: Option<At<'a, D::Buf<T>>>,
    pub jit: At<'a, D::Buf<T>>,
    pub nattempts: usize,
    pub c: usize,
    pub n: usize,
    pub d: usize,
    pub flags: i32,
    pub out_mll: At<'a, D::Buf<T>>,
    pub out_grad: At<'a, D::Buf<T>>,
    /// i32 per member, at an offset into a buffer of T.
    pub out_attempt: At<'a, D::Buf<T>>,
    /// The global variant's workspace.
    pub work: Option<At<'a, D::Buf<T>>>,
}

/// What the MLL host path asks of a device.
pub(super) trait Driver {
    /// Device memory of `len` elements.
    type Buf<E: Elem>: Send;
    /// Page-locked host memory (staging for the per-call copies).
    type Host<E: Elem>: Send;
    /// Zeroed device memory of at least one element.
    fn alloc<E: Elem>(&self, len: usize) -> Result<Self::Buf<E>>;
    /// Page-locked host memory of at least one element; `readback` when the host reads it
    /// (downloads), else it is only written (uploads).
    fn alloc_host<E: Elem>(&self, len: usize, readback: bool) -> Result<Self::Host<E>>;
    /// The staging buffer's contents, once the copies that use it are done.
    fn host_mut<'a, E: Elem>(&self, h: &'a mut Self::Host<E>) -> Result<&'a mut [E]>;
    /// Copies `src` (pageable: the once-per-fit data) into the start of `dst`.
    fn upload<E: Elem>(&self, src: &[E], dst: &mut Self::Buf<E>) -> Result<()>;
    /// Copies the first `len` elements of the staging buffer `src` to `dst`.
    fn upload_staged<E: Elem>(&self, src: &mut Self::Host<E>, len: usize, dst: &mut Self::Buf<E>) -> Result<()>;
    /// Waits for the stream and copies the first `len` elements of `src` into `dst`.
    fn download_staged<E: Elem>(&self, src: &Self::Buf<E>, len: usize, dst: &mut Self::Host<E>) -> Result<()>;
    /// Free device memory, bytes.
    fn free_bytes(&self) -> Result<usize>;
    /// Opt-in shared memory per block, bytes (the variant choice).
    fn smem_optin(&self) -> usize;
    /// Upper bound on members per launch.
    fn max_chunk(&self) -> usize;
    /// Launches gp_mll_prep_<T>.
    fn prep<T: Real>(&self, a: &PrepArgs<'_, Self, T>) -> Result<()>;
    /// Launches the fused MLL kernel of `a.variant` for covariance `kernel`.
    fn fused<T: Real>(&self, kernel: Kernel, a: &FusedArgs<'_, Self, T>) -> Result<()>;
}

/// The device address of `a` (its buffer's address plus the offset in elements of E).
fn addr<E: Elem>(dev: &Device, a: &At<'_, CudaSlice<E>>) -> u64 {
    let (p, _sync) = a.buf.device_ptr(&dev.stream);
    p + (a.off * std::mem::size_of::<E>()) as u64
}

fn addr_opt<E: Elem>(dev: &Device, a: &Option<At<'_, CudaSlice<E>>>) -> u64 {
    a.as_ref().map_or(0, |a| addr(dev, a))
}

impl Driver for Device {
    type Buf<E: Elem> = CudaSlice<E>;
    type Host<E: Elem> = PinnedHostSlice<E>;

    fn alloc<E: Elem>(&self, len: usize) -> Result<CudaSlice<E>> {
        self.zeros(len)
    }

    fn alloc_host<E: Elem>(&self, len: usize, readback: bool) -> Result<PinnedHostSlice<E>> {
        // Write-combined memory is fast to fill and for the device to read, slow for the host
        // to read: staging for uploads only.
        let flags = if readback { 0 } else { sys::CU_MEMHOSTALLOC_WRITECOMBINED };
        // SAFETY: the memory is uninitialised until written; every element is a plain number
        // type (Elem: ValidAsZeroBits) that the host path writes before it uploads or reads it
        // after a download.
        unsafe { self.stream.context().alloc_pinned_with_flags::<E>(len.max(1), flags) }
            .map_err(cuda_err("page-locked host allocation"))
    }

    fn host_mut<'a, E: Elem>(&self, h: &'a mut PinnedHostSlice<E>) -> Result<&'a mut [E]> {
        h.as_mut_slice().map_err(cuda_err("page-locked host buffer"))
    }

    fn upload<E: Elem>(&self, src: &[E], dst: &mut CudaSlice<E>) -> Result<()> {
        if src.is_empty() {
            return Ok(());
        }
        self.stream.memcpy_htod(src, &mut dst.slice_mut(0..src.len())).map_err(cuda_err("upload"))
    }

    fn upload_staged<E: Elem>(&self, src: &mut PinnedHostSlice<E>, len: usize, dst: &mut CudaSlice<E>) -> Result<()> {
        if len == 0 {
            return Ok(());
        }
        let host = src.as_mut_slice().map_err(cuda_err("page-locked host buffer"))?;
        self.stream.memcpy_htod(&host[..len], &mut dst.slice_mut(0..len)).map_err(cuda_err("upload"))
    }

    fn download_staged<E: Elem>(&self, src: &CudaSlice<E>, len: usize, dst: &mut PinnedHostSlice<E>) -> Result<()> {
        // Kernel faults surface here, named as such, rather than in the copy.
        self.stream.synchronize().map_err(cuda_err("kernel execution"))?;
        let host = dst.as_mut_slice().map_err(cuda_err("page-locked host buffer"))?;
        self.stream.memcpy_dtoh(&src.slice(0..len), &mut host[..len]).map_err(cuda_err("download"))?;
        self.stream.synchronize().map_err(cuda_err("download"))
    }

    fn free_bytes(&self) -> Result<usize> {
        Device::free_bytes(self)
    }

    fn smem_optin(&self) -> usize {
        self.smem_optin
    }

    fn max_chunk(&self) -> usize {
        self.max_chunk
    }

    fn prep<T: Real>(&self, a: &PrepArgs<'_, Self, T>) -> Result<()> {
        let id = KernelId::new(Op::MllPrep, Kernel::Rbf, T::DTYPE);
        let f = self.func(id)?;
        let (gx, gm, gy) = match &a.gather {
            Some((x, m, y)) => (addr(self, x), addr(self, m), addr_opt(self, y)),
            None => (0, 0, 0),
        };
        let ptrs = [
            addr(self, &a.params),
            addr(self, &a.x_res),
            addr(self, &a.y_res),
            addr(self, &a.mask_res),
            addr_opt(self, &a.yvar_res),
            gx,
            gm,
            gy,
            addr(self, &a.r),
            addr(self, &a.ls),
            addr(self, &a.s),
            addr(self, &a.noise),
            addr_opt(self, &a.alpha),
            addr(self, &a.jit),
        ];
        let ints =
            [a.c as i32, a.n as i32, a.d as i32, a.has_alpha as i32, a.nattempts as i32, a.gather.is_some() as i32];
        let mut lb = self.stream.launch_builder(f);
        lb.arg(&ptrs[0]).arg(&ints[0]).arg(&ints[1]).arg(&ints[2]).arg(&ints[3]).arg(&ints[4]).arg(&a.jit_start);
        lb.arg(&ptrs[1]).arg(&ptrs[2]).arg(&ptrs[3]).arg(&ptrs[4]).arg(&ints[5]);
        for p in &ptrs[5..] {
            lb.arg(p);
        }
        // SAFETY: gp_mll_prep_<T>(const double* params, int C, int N, int D, int has_alpha, int
        // nattempts, double jit_start, const T* x_res, const double* y_res, const uint8_t*
        // mask_res, const T* yvar_res, int gather, T* x, uint8_t* mask, T* yvar, T* r, T* ls,
        // T* s, T* noise, T* rq_alpha, T* jit): in order and type (device addresses as u64,
        // null for an absent yvar, alpha or gather target, which the kernel never touches);
        // the host path sizes every buffer for the C members it describes (host.rs Workspace
        // and Resident), and params holds ParamLayout's doubles.
        unsafe { self.launch(&mut lb, stride_launch((a.c * a.n).max(a.c)), id, a.c) }
    }

    fn fused<T: Real>(&self, kernel: Kernel, a: &FusedArgs<'_, Self, T>) -> Result<()> {
        let v = a.variant;
        let id = KernelId::new(Op::mll(v), kernel, T::DTYPE);
        let f = self.func(id)?;
        let sz = std::mem::size_of::<T>();
        let ptrs = [
            addr(self, &a.x),
            addr(self, &a.r),
            addr(self, &a.mask),
            addr(self, &a.ls),
            addr(self, &a.s),
            addr(self, &a.noise),
            addr_opt(self, &a.alpha),
            addr_opt(self, &a.yvar),
            addr(self, &a.jit),
            addr(self, &a.out_mll),
            addr(self, &a.out_grad),
            addr(self, &a.out_attempt),
            0,
            0,
            addr_opt(self, &a.work),
        ];
        let x_stride = (a.n * a.d) as i64;
        let ints = [a.nattempts as i32, a.c as i32, a.n as i32, a.d as i32, a.flags];
        let mut lb = self.stream.launch_builder(f);
        lb.arg(&ptrs[0]).arg(&x_stride);
        for p in &ptrs[1..9] {
            lb.arg(p);
        }
        for i in &ints {
            lb.arg(i);
        }
        for p in &ptrs[9..14] {
            lb.arg(p);
        }
        if v == Variant::Global {
            lb.arg(&ptrs[14]);
        }
        // SAFETY: gp_mll_<variant>_<kernel>_<T>(const T* x, long long x_stride, const T* r,
        // const uint8_t* mask, const T* ls, const T* s, const T* noise, const T* rq_alpha,
        // const T* yvar, const T* jit, int nattempts, int B, int N, int D, int flags, T*
        // out_mll, T* out_grad, int* out_attempt, T* out_l, T* out_alpha[, T* work]): in order
        // and type (device addresses as u64; out_l and out_alpha null, read only under
        // FLAG_FACTOR, which the host path never sets; rq_alpha null for the kernels that never
        // read it, yvar null when absent, which the kernel tests); every region holds what the
        // kernel indexes for B = c members (host.rs Workspace: x c*N*D, r, mask and yvar c*N, ls
        // c*D, s, noise, rq_alpha c, jit c*nattempts, out_grad c*P, out_attempt c i32 at a
        // 4-byte aligned offset, work c*(N*N+2N) for the global variant), and the launch shape
        // and shared memory are the variant's.
        unsafe { self.launch(&mut lb, v.launch(a.n, sz, a.c), id, a.c) }
    }
}

/// Panics unless the region `a` of a stand-in buffer holds `len` elements.
fn need(what: &str, a: &At<'_, usize>, len: usize) {
    assert!(a.off + len <= *a.buf, "{what}: {len} elements at offset {} of a buffer of {}", a.off, a.buf);
}

/// What a host path asked of the [`Counting`] stand-in.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Counts {
    /// Device allocations and their bytes.
    pub allocs: usize,
    pub alloc_bytes: usize,
    /// Page-locked host allocations.
    pub host_allocs: usize,
    /// Uploads from pageable memory (the once-per-fit data) and their bytes.
    pub uploads: usize,
    pub upload_bytes: usize,
    /// Uploads from page-locked staging and their bytes.
    pub staged_uploads: usize,
    pub staged_upload_bytes: usize,
    /// Downloads and their bytes.
    pub downloads: usize,
    pub download_bytes: usize,
    /// Kernel launches.
    pub launches: usize,
}

/// A stand-in for the device: counts what the host path asks for, moves nothing and runs
/// nothing. Device buffers are lengths; staging buffers are host vectors (zeros unless the
/// host path wrote them). Free memory and the opt-in shared memory are an H200's.
#[derive(Debug)]
pub struct Counting {
    counts: Cell<Counts>,
    /// Free device memory the stand-in reports, bytes.
    pub free: usize,
    /// Opt-in shared memory per block it reports, bytes.
    pub smem_optin: usize,
    /// Upper bound on members per launch.
    pub max_chunk: usize,
}

impl Default for Counting {
    fn default() -> Self {
        Counting {
            counts: Cell::new(Counts::default()),
            free: 140 << 30,
            smem_optin: 227 * 1024,
            max_chunk: usize::MAX,
        }
    }
}

impl Counting {
    /// Reports `bytes` of free device memory.
    pub fn with_free(self, bytes: usize) -> Self {
        Counting { free: bytes, ..self }
    }

    /// Takes at most `members` members per launch.
    pub fn with_max_chunk(self, members: usize) -> Self {
        Counting { max_chunk: members.max(1), ..self }
    }

    /// The counts so far, which are then reset.
    pub fn take(&self) -> Counts {
        self.counts.replace(Counts::default())
    }

    fn add(&self, f: impl FnOnce(&mut Counts)) {
        let mut c = self.counts.get();
        f(&mut c);
        self.counts.set(c);
    }
}

impl Driver for Counting {
    type Buf<E: Elem> = usize;
    type Host<E: Elem> = Vec<E>;

    fn alloc<E: Elem>(&self, len: usize) -> Result<usize> {
        self.add(|c| {
            c.allocs += 1;
            c.alloc_bytes += len.max(1) * std::mem::size_of::<E>();
        });
        Ok(len.max(1))
    }

    fn alloc_host<E: Elem>(&self, len: usize, _readback: bool) -> Result<Vec<E>> {
        self.add(|c| c.host_allocs += 1);
        Ok(vec![E::default(); len.max(1)])
    }

    fn host_mut<'a, E: Elem>(&self, h: &'a mut Vec<E>) -> Result<&'a mut [E]> {
        Ok(h)
    }

    fn upload<E: Elem>(&self, src: &[E], dst: &mut usize) -> Result<()> {
        assert!(src.len() <= *dst, "upload of {} elements into {}", src.len(), dst);
        self.add(|c| {
            c.uploads += 1;
            c.upload_bytes += std::mem::size_of_val(src);
        });
        Ok(())
    }

    fn upload_staged<E: Elem>(&self, src: &mut Vec<E>, len: usize, dst: &mut usize) -> Result<()> {
        assert!(
            len <= src.len() && len <= *dst,
            "staged upload of {len} elements ({} staged, {dst} on the device)",
            src.len()
        );
        self.add(|c| {
            c.staged_uploads += 1;
            c.staged_upload_bytes += len * std::mem::size_of::<E>();
        });
        Ok(())
    }

    fn download_staged<E: Elem>(&self, src: &usize, len: usize, dst: &mut Vec<E>) -> Result<()> {
        assert!(
            len <= *src && len <= dst.len(),
            "download of {len} elements ({src} on the device, {} staged)",
            dst.len()
        );
        self.add(|c| {
            c.downloads += 1;
            c.download_bytes += len * std::mem::size_of::<E>();
        });
        Ok(())
    }

    fn free_bytes(&self) -> Result<usize> {
        Ok(self.free)
    }

    fn smem_optin(&self) -> usize {
        self.smem_optin
    }

    fn max_chunk(&self) -> usize {
        self.max_chunk
    }

    /// Checks that every region holds what the kernel indexes (kernels/prep.cu).
    fn prep<T: Real>(&self, a: &PrepArgs<'_, Self, T>) -> Result<()> {
        let (c, n, d) = (a.c, a.n, a.d);
        let pl = super::host::ParamLayout { c, d, alpha: a.has_alpha, na: a.nattempts };
        need("params", &a.params, pl.len());
        need("r", &a.r, c * n);
        need("ls", &a.ls, c * d);
        need("s", &a.s, c);
        need("noise", &a.noise, c);
        need("jit", &a.jit, c * a.nattempts);
        assert_eq!(a.has_alpha, a.alpha.is_some(), "prep: rq_alpha given exactly for rq");
        if let Some(al) = &a.alpha {
            need("rq_alpha", al, c);
        }
        if let Some((x, m, y)) = &a.gather {
            need("gather x", x, c * n * d);
            need("gather mask", m, c * n);
            assert_eq!(y.is_some(), a.yvar_res.is_some(), "prep: a yvar target exactly with yvar");
            if let Some(y) = y {
                need("gather yvar", y, c * n);
            }
        }
        self.add(|c| c.launches += 1);
        Ok(())
    }

    /// Checks that every region holds what the kernel indexes (kernels/gp.cu).
    fn fused<T: Real>(&self, kernel: Kernel, a: &FusedArgs<'_, Self, T>) -> Result<()> {
        let (c, n, d) = (a.c, a.n, a.d);
        let p = crate::layout::Layout::new(kernel, d).len();
        need("x", &a.x, c * n * d);
        need("r", &a.r, c * n);
        need("mask", &a.mask, c * n);
        need("ls", &a.ls, c * d);
        need("s", &a.s, c);
        need("noise", &a.noise, c);
        need("jit", &a.jit, c * a.nattempts);
        if let Some(y) = &a.yvar {
            need("yvar", y, c * n);
        }
        assert_eq!(kernel.has_alpha(), a.alpha.is_some(), "fused: rq_alpha given exactly for rq");
        need("out_mll", &a.out_mll, c);
        need("out_grad", &a.out_grad, c * p);
        need("out_attempt", &a.out_attempt, (4 * c).div_ceil(std::mem::size_of::<T>()));
        assert!(
            a.out_mll.off + c <= a.out_grad.off && a.out_grad.off + c * p <= a.out_attempt.off,
            "fused: outputs overlap"
        );
        assert_eq!((a.out_attempt.off * std::mem::size_of::<T>()) % 4, 0, "fused: attempts misaligned");
        assert_eq!(a.variant == Variant::Global, a.work.is_some(), "fused: a workspace exactly for the global variant");
        if let Some(w) = &a.work {
            need("work", w, c * a.variant.work_per_member(n));
        }
        self.add(|c| c.launches += 1);
        Ok(())
    }
}
