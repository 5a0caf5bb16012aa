//! Numeric helpers at the bottom of the house: the arithmetic types of the CPU code ([`Real`]:
//! f64 and f32) and the vectorised loops over them ([`simd`]: exp, the reductions). They know
//! nothing of kernels, data or backends, so the kernel noun and the CPU backend both build on them.

pub(crate) mod simd;

/// Arithmetic type of the CPU kernels: f64 or f32.
pub(crate) trait Real: faer::traits::RealField + Copy + Send + Sync + 'static {
    fn from_f64(v: f64) -> Self;
    fn to_f64(self) -> f64;
    fn is_finite(self) -> bool;
    fn sqrt(self) -> Self;
    /// exp over a slice, vectorised (see `simd`).
    fn exp_slice(v: &mut [Self]);
}

macro_rules! impl_real {
    ($t:ty, $exp_slice:path) => {
        impl Real for $t {
            #[inline(always)]
            fn from_f64(v: f64) -> Self {
                v as $t
            }
            #[inline(always)]
            fn to_f64(self) -> f64 {
                self as f64
            }
            #[inline(always)]
            fn sqrt(self) -> Self {
                <$t>::sqrt(self)
            }
            #[inline(always)]
            fn is_finite(self) -> bool {
                <$t>::is_finite(self)
            }
            #[inline(always)]
            fn exp_slice(v: &mut [Self]) {
                $exp_slice(v)
            }
        }
    };
}
impl_real!(f64, simd::exp_slice_f64);
impl_real!(f32, simd::exp_slice_f32);
