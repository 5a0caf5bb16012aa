//! Branch-free loops that the compiler vectorises: exp over a slice and the reductions of
//! the Gram and gradient passes. Reductions keep four independent partial sums (a fixed
//! order, so results do not depend on the instruction set).
//!
//! The hot passes are compiled twice, for baseline x86-64 and with AVX2, and [`avx2`] picks at
//! run time. Rust never contracts a * b + c into an FMA on its own, so both versions give
//! bit-identical results.

/// Whether the AVX2 versions of the hot passes can run here (cached by std).
#[inline(always)]
pub(crate) fn avx2() -> bool {
    #[cfg(target_arch = "x86_64")]
    {
        std::is_x86_feature_detected!("avx2")
    }
    #[cfg(not(target_arch = "x86_64"))]
    {
        false
    }
}

/// Defines `$name` (dispatching) from `$body` (an `#[inline(always)]` generic function): on
/// x86-64 with AVX2 it runs a copy of the body compiled for AVX2.
macro_rules! dispatch_avx2 {
    ($(#[$m:meta])* $vis:vis fn $name:ident<T: $bound:ident>($($arg:ident: $ty:ty),*) $(-> $ret:ty)? => $body:ident) => {
        $(#[$m])*
        #[allow(clippy::too_many_arguments)]
        $vis fn $name<T: $bound>($($arg: $ty),*) $(-> $ret)? {
            #[cfg(target_arch = "x86_64")]
            {
                #[allow(clippy::too_many_arguments)]
                #[target_feature(enable = "avx2")]
                unsafe fn with_avx2<T: $bound>($($arg: $ty),*) $(-> $ret)? {
                    $body::<T>($($arg),*)
                }
                if $crate::numeric::simd::avx2() {
                    // SAFETY: AVX2 was detected on this CPU just above.
                    return unsafe { with_avx2::<T>($($arg),*) };
                }
            }
            $body::<T>($($arg),*)
        }
    };
}
pub(crate) use dispatch_avx2;

use super::Real;

/// 1.5 * 2^52 and 1.5 * 2^23: adding one rounds to an integer (ties to even) held in the low
/// mantissa bits.
const MAGIC_F64: f64 = 6_755_399_441_055_744.0;
const MAGIC_F32: f32 = 12_582_912.0;

/// exp(x) for every entry, in place: Cody-Waite reduction x = n ln 2 + r, |r| <= ln2 / 2, a
/// degree-12 Taylor polynomial in r (f64; error below 2e-16 relative) or degree 7 (f32),
/// and 2^n built from its bits. Arguments below the smallest normal result give 0.
#[inline(always)]
pub(crate) fn exp_in_place<T: Real>(v: &mut [T]) {
    T::exp_slice(v)
}

#[inline(always)]
pub(crate) fn exp_slice_f64(v: &mut [f64]) {
    const LOG2E: f64 = std::f64::consts::LOG2_E;
    const LN2_HI: f64 = 6.931_471_803_691_238e-1;
    const LN2_LO: f64 = 1.908_214_929_270_587_7e-10;
    // 1/k! for k = 12 .. 0.
    const C: [f64; 13] = [
        2.087_675_698_786_81e-9,
        2.505_210_838_544_172e-8,
        2.755_731_922_398_589e-7,
        2.755_731_922_398_589_3e-6,
        2.480_158_730_158_73e-5,
        1.984_126_984_126_984e-4,
        1.388_888_888_888_889e-3,
        8.333_333_333_333_333e-3,
        4.166_666_666_666_666_4e-2,
        1.666_666_666_666_666_6e-1,
        0.5,
        1.0,
        1.0,
    ];
    for x in v.iter_mut() {
        let xv = *x;
        let under = xv < -708.0;
        let xc = xv.clamp(-708.0, 709.0);
        // kn holds round(x log2 e) in the low bits of its mantissa: n as a float, and 2^n
        // from those bits, with no float-to-integer conversion (which would not vectorise).
        let kn = xc * LOG2E + MAGIC_F64;
        let n = kn - MAGIC_F64;
        let r = (xc - n * LN2_HI) - n * LN2_LO;
        let mut p = C[0];
        for c in &C[1..] {
            p = p * r + c;
        }
        let scale = f64::from_bits(kn.to_bits().wrapping_add(1023) << 52);
        let y = p * scale;
        *x = if under { 0.0 } else { y };
    }
}

#[inline(always)]
pub(crate) fn exp_slice_f32(v: &mut [f32]) {
    const LOG2E: f32 = std::f32::consts::LOG2_E;
    const LN2_HI: f32 = 0.693_145_75;
    const LN2_LO: f32 = 1.428_606_8e-6;
    const C: [f32; 8] = [1.984_127e-4, 1.388_888_9e-3, 8.333_333e-3, 4.166_666_8e-2, 0.166_666_67, 0.5, 1.0, 1.0];
    for x in v.iter_mut() {
        let xv = *x;
        let under = xv < -87.0;
        let xc = xv.clamp(-87.0, 88.0);
        let kn = xc * LOG2E + MAGIC_F32;
        let n = kn - MAGIC_F32;
        let r = (xc - n * LN2_HI) - n * LN2_LO;
        let mut p = C[0];
        for c in &C[1..] {
            p = p * r + c;
        }
        let scale = f32::from_bits(kn.to_bits().wrapping_add(127) << 23);
        let y = p * scale;
        *x = if under { 0.0 } else { y };
    }
}

/// out[i] += (a[i] - c)^2 for every i.
#[inline(always)]
pub(crate) fn add_sq_diff<T: Real>(out: &mut [T], a: &[T], c: T) {
    for (o, x) in out.iter_mut().zip(a) {
        let t = *x - c;
        *o += t * t;
    }
}

/// sum_i w[i], four partial sums.
#[inline(always)]
pub(crate) fn sum<T: Real>(w: &[T]) -> T {
    let zero = T::from_f64(0.0);
    let mut acc = [zero; 4];
    let chunks = w.chunks_exact(4);
    let rest = chunks.remainder();
    for c in chunks {
        for k in 0..4 {
            acc[k] += c[k];
        }
    }
    let mut s = (acc[0] + acc[1]) + (acc[2] + acc[3]);
    for v in rest {
        s += *v;
    }
    s
}

/// The largest squared distance the kernels see (1e300 in f64, 1e37 in f32): beyond it every
/// kernel's value and weights are their limit 0 (rq takes it explicitly there, see
/// src/kernel.rs; rbf and the Matérns are 0 anyway), and a weight times it stays finite, so that a tiny lengthscale's r^2 = inf never
/// meets a 0 weight as 0 * inf = NaN.
#[inline(always)]
pub(crate) fn r2_limit<T: Real>() -> T {
    let big = T::from_f64(1e300);
    if big.is_finite() {
        big
    } else {
        T::from_f64(1e37)
    }
}

/// The magnitude a scaled coordinate (x - c) / l is held to: half T's largest, so that the
/// difference of two stays finite.
#[inline(always)]
pub(crate) fn coordinate_limit<T: Real>() -> f64 {
    if T::from_f64(f64::MAX).is_finite() {
        f64::MAX / 2.0
    } else {
        f64::from(f32::MAX) / 2.0
    }
}

/// sum_i w[i] min((a[i] - c)^2, [`r2_limit`]), four partial sums: a zero weight at an infinite
/// distance contributes its limit 0.
#[inline(always)]
pub(crate) fn weighted_sq_diff<T: Real>(w: &[T], a: &[T], c: T) -> T {
    let lim = r2_limit::<T>();
    let cap = |t: T| {
        let tt = t * t;
        if tt > lim {
            lim
        } else {
            tt
        }
    };
    let zero = T::from_f64(0.0);
    let mut acc = [zero; 4];
    let n = w.len();
    let n4 = n / 4 * 4;
    for i in (0..n4).step_by(4) {
        for k in 0..4 {
            acc[k] += w[i + k] * cap(a[i + k] - c);
        }
    }
    let mut s = (acc[0] + acc[1]) + (acc[2] + acc[3]);
    for i in n4..n {
        s += w[i] * cap(a[i] - c);
    }
    s
}

/// sum_i a[i] b[i], four partial sums.
#[inline(always)]
pub(crate) fn dot<T: Real>(a: &[T], b: &[T]) -> T {
    let zero = T::from_f64(0.0);
    let mut acc = [zero; 4];
    let n = a.len().min(b.len());
    let n4 = n / 4 * 4;
    for i in (0..n4).step_by(4) {
        for k in 0..4 {
            acc[k] += a[i + k] * b[i + k];
        }
    }
    let mut s = (acc[0] + acc[1]) + (acc[2] + acc[3]);
    for i in n4..n {
        s += a[i] * b[i];
    }
    s
}

#[cfg(test)]
mod tests {
    use super::*;
    #[test]
    fn exp_matches_libm() {
        let xs: Vec<f64> =
            (0..20000).map(|i| -745.0 + i as f64 * 0.0375).chain([0.0, -0.0, 1e-300, -1e-12, 5.0]).collect();
        let mut v = xs.clone();
        exp_slice_f64(&mut v);
        for (x, y) in xs.iter().zip(&v) {
            let want = x.exp();
            if *x < -708.0 {
                assert!(*y == 0.0);
            } else {
                assert!((y - want).abs() <= 4e-16 * want, "exp({x}) = {y}, libm {want}");
            }
        }
        let xs32: Vec<f32> = (0..20000).map(|i| -86.0 + i as f32 * 0.0043).collect();
        let mut v32 = xs32.clone();
        exp_slice_f32(&mut v32);
        for (x, y) in xs32.iter().zip(&v32) {
            let want = x.exp();
            assert!((y - want).abs() <= 4e-7 * want, "expf({x}) = {y}, libm {want}");
        }
    }
}
