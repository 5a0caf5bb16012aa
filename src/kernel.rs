//! The covariance kernels (docs/design.md section 10): every one is stationary and ARD, a
//! function phi of the squared scaled distance, times the outputscale s:
//!
//! ```text
//! r^2 = sum_d (x_d - z_d)^2 / l_d^2,   k(x, z) = s phi(r^2)
//! rbf       phi = exp(-r^2 / 2)
//! matern12  phi = exp(-r)
//! matern32  phi = (1 + sqrt(3) r) exp(-sqrt(3) r)
//! matern52  phi = (1 + sqrt(5) r + 5 r^2 / 3) exp(-sqrt(5) r)
//! rq        phi = (1 + r^2 / (2 alpha))^(-alpha)                  alpha > 0 per member
//!           (computed as exp(-alpha ln_1p(r^2 / (2 alpha))), exact as alpha grows to infinity,
//!           where rq tends to rbf)
//! ```
//!
//! r^2 at or beyond [`r2_limit`] (1e300 in f64, 1e37 in f32; a tiny lengthscale's r^2 = inf)
//! is infinite distance: every phi, psi and d phi / d log alpha there is its limit 0. For rq
//! with alpha < 0.5 the value at the limit itself is not negligible ((1 + 1e300 / (2 alpha))^-alpha
//! is 0.5 at alpha = 1e-3), so rq takes the limit explicitly rather than its value at 1e300:
//! below the limit rq is exact (its ln base is ln(r^2 / 2) - ln(alpha) once r^2 / (2 alpha) is
//! beyond 1e30, which never overflows), at or beyond it the answer is the r -> infinity limit.
//!
//! Everything the gradient needs is per pair: with u_d = (x_d - z_d) / l_d,
//! d k / d log l_d = s psi(r^2) u_d^2, where psi = -2 d phi / d r^2 is the *lengthscale weight*,
//! and for rq d k / d log alpha = s alpha d phi / d alpha. Every phi has phi(0) = 1, and every
//! psi is finite at r = 0 except Matérn 1/2's exp(-r) / r; there u_d^2 <= r^2 makes the product
//! vanish, so psi(0) is defined as 0 (no NaN from coincident points).
//!
//! This module is the kernel's one home: the scalar forms (references, prior samples), the
//! vectorised CPU form ([`transform`], applied to a slice of r^2), and the name of the CUDA
//! policy (`kernels/covariance.cuh`, one struct per kernel with the same three functions) that
//! the fused CUDA kernels are instantiated with. Adding a kernel means a variant here, its
//! policy there, and its tests.

use crate::error::{Error, Result};
use crate::numeric::simd::{dispatch_avx2, exp_in_place, r2_limit};
use crate::numeric::Real;

/// A covariance kernel, chosen by name (`rbf`, `matern12`, `matern32`, `matern52`, `rq`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
pub enum Kernel {
    /// Squared exponential: exp(-r^2 / 2). The default.
    #[default]
    Rbf,
    /// Matérn nu = 1/2 (exponential): exp(-r).
    Matern12,
    /// Matérn nu = 3/2.
    Matern32,
    /// Matérn nu = 5/2 (BoTorch's default).
    Matern52,
    /// Rational quadratic with one shape parameter alpha per member.
    Rq,
}

const SQRT3: f64 = 1.732_050_807_568_877_2;
const SQRT5: f64 = 2.236_067_977_499_79;

impl Kernel {
    /// Every kernel, in the order of docs/design.md section 10.
    pub const ALL: [Kernel; 5] = [Kernel::Rbf, Kernel::Matern12, Kernel::Matern32, Kernel::Matern52, Kernel::Rq];

    /// Its name in files, on the command line and in the CUDA entry points.
    pub fn name(self) -> &'static str {
        match self {
            Kernel::Rbf => "rbf",
            Kernel::Matern12 => "matern12",
            Kernel::Matern32 => "matern32",
            Kernel::Matern52 => "matern52",
            Kernel::Rq => "rq",
        }
    }

    /// Whether the kernel has the shape hyperparameter alpha (rq).
    pub fn has_alpha(self) -> bool {
        self == Kernel::Rq
    }

    /// phi(r^2) = k / s. `alpha` is read by rq only.
    pub fn phi(self, r2: f64, alpha: f64) -> f64 {
        let r2 = capped(r2);
        let r = r2.sqrt();
        match self {
            Kernel::Rbf => (-0.5 * r2).exp(),
            Kernel::Matern12 => (-r).exp(),
            Kernel::Matern32 => (1.0 + SQRT3 * r) * (-SQRT3 * r).exp(),
            Kernel::Matern52 => (1.0 + SQRT5 * r + 5.0 / 3.0 * r2) * (-SQRT5 * r).exp(),
            Kernel::Rq if r2 >= r2_limit::<f64>() => 0.0,
            Kernel::Rq => (-alpha * rq_ln_base(r2, alpha)).exp(),
        }
    }

    /// The lengthscale weight psi(r^2) = -2 d phi / d r^2 (0 at r = 0 for Matérn 1/2).
    pub fn psi(self, r2: f64, alpha: f64) -> f64 {
        let r2 = capped(r2);
        let r = r2.sqrt();
        match self {
            Kernel::Rbf => (-0.5 * r2).exp(),
            Kernel::Matern12 if r > 0.0 => (-r).exp() / r,
            Kernel::Matern12 => 0.0,
            Kernel::Matern32 => 3.0 * (-SQRT3 * r).exp(),
            Kernel::Matern52 => 5.0 / 3.0 * (1.0 + SQRT5 * r) * (-SQRT5 * r).exp(),
            Kernel::Rq if r2 >= r2_limit::<f64>() => 0.0,
            Kernel::Rq => (-(alpha + 1.0) * rq_ln_base(r2, alpha)).exp(),
        }
    }

    /// d phi / d log alpha (rq; 0 for the others).
    pub fn dphi_dlog_alpha(self, r2: f64, alpha: f64) -> f64 {
        let r2 = capped(r2);
        match self {
            Kernel::Rq if r2 >= r2_limit::<f64>() => 0.0,
            Kernel::Rq => {
                let lb = rq_ln_base(r2, alpha);
                (-alpha * lb).exp() * (rq_half_r2_over_base(r2, alpha) - alpha * lb)
            }
            _ => 0.0,
        }
    }
}

/// r^2 held to [`r2_limit`] (inf and NaN taken as the limit), as [`transform`] holds it.
#[inline(always)]
fn capped(r2: f64) -> f64 {
    let lim = r2_limit::<f64>();
    if r2 < lim {
        r2
    } else {
        lim
    }
}

/// rq's ln base = ln(1 + r^2 / (2 alpha)) for r^2 below the limit: ln_1p while r^2 / (2 alpha)
/// is below 1e30, then ln(r^2 / 2) - ln(alpha) (equal to 1e-30 relative), which stays finite
/// where r^2 / (2 alpha) overflows (a small alpha).
#[inline(always)]
fn rq_ln_base(r2: f64, alpha: f64) -> f64 {
    let t = r2 * (0.5 / alpha);
    if t < 1e30 {
        t.ln_1p()
    } else {
        (0.5 * r2).ln() - alpha.ln()
    }
}

/// r^2 / (2 base) = alpha t / (1 + t) with t = r^2 / (2 alpha): finite (alpha) where t overflows.
#[inline(always)]
fn rq_half_r2_over_base(r2: f64, alpha: f64) -> f64 {
    let t = r2 * (0.5 / alpha);
    if t > 1.0 {
        alpha / (1.0 + 1.0 / t)
    } else {
        r2 / (2.0 * (1.0 + t))
    }
}

impl std::fmt::Display for Kernel {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.name())
    }
}

impl std::str::FromStr for Kernel {
    type Err = Error;
    fn from_str(s: &str) -> Result<Self> {
        Kernel::ALL.into_iter().find(|k| k.name() == s).ok_or_else(|| {
            Error::option("kernel", format!("expected rbf, matern12, matern32, matern52 or rq, got `{s}`"))
        })
    }
}

/// Entries transformed per pass of [`transform`]: the exp of a chunk goes through a buffer on
/// the stack, so no caller needs to lend scratch memory.
const CHUNK: usize = 256;

dispatch_avx2! {
    /// The vectorised CPU form: `v` holds r^2 on entry and phi(r^2) on exit; when given, `psi`
    /// receives the lengthscale weight and `dalpha` d phi / d log alpha (same length as `v`).
    /// For rbf, psi equals phi, and callers that want both read phi twice instead of asking.
    pub(crate) fn transform<T: Real>(kernel: Kernel, v: &mut [T], alpha: f64, psi: Option<&mut [T]>, dalpha: Option<&mut [T]>) => transform_body
}

#[inline(always)]
fn transform_body<T: Real>(
    kernel: Kernel,
    v: &mut [T],
    alpha: f64,
    mut psi: Option<&mut [T]>,
    mut dalpha: Option<&mut [T]>,
) {
    let c = T::from_f64;
    if kernel == Kernel::Rbf {
        debug_assert!(psi.is_none() && dalpha.is_none());
        for x in v.iter_mut() {
            *x *= c(-0.5);
        }
        exp_in_place(v);
        return;
    }
    let mut e = [T::from_f64(0.0); CHUNK];
    let mut start = 0;
    while start < v.len() {
        let len = CHUNK.min(v.len() - start);
        let vs = &mut v[start..start + len];
        let es = &mut e[..len];
        // r^2 beyond the limit (inf for a tiny lengthscale) is the limit: the Matérns' (1 + r)
        // exp(-r) and rq's weights are then their limit 0, not inf * 0.
        let lim = r2_limit::<T>();
        for x in vs.iter_mut() {
            if !Real::is_finite(*x) || *x > lim {
                *x = lim;
            }
        }
        let mut ps = psi.as_deref_mut().map(|p| &mut p[start..start + len]);
        let mut ds = dalpha.as_deref_mut().map(|p| &mut p[start..start + len]);
        match kernel {
            Kernel::Rbf => unreachable!("handled above"),
            Kernel::Matern12 | Kernel::Matern32 | Kernel::Matern52 => {
                let rate = c(match kernel {
                    Kernel::Matern12 => 1.0,
                    Kernel::Matern32 => SQRT3,
                    _ => SQRT5,
                });
                for (x, ei) in vs.iter_mut().zip(es.iter_mut()) {
                    *x = x.sqrt();
                    *ei = -rate * *x;
                }
                exp_in_place(es);
                // vs holds r, es holds exp(-rate r).
                match kernel {
                    Kernel::Matern12 => {
                        if let Some(ps) = ps.as_deref_mut() {
                            for ((p, r), ei) in ps.iter_mut().zip(vs.iter()).zip(es.iter()) {
                                *p = if *r > c(0.0) { *ei / *r } else { c(0.0) };
                            }
                        }
                        vs.copy_from_slice(es);
                    }
                    Kernel::Matern32 => {
                        if let Some(ps) = ps.as_deref_mut() {
                            for (p, ei) in ps.iter_mut().zip(es.iter()) {
                                *p = c(3.0) * *ei;
                            }
                        }
                        for (x, ei) in vs.iter_mut().zip(es.iter()) {
                            *x = (c(1.0) + rate * *x) * *ei;
                        }
                    }
                    _ => {
                        if let Some(ps) = ps.as_deref_mut() {
                            for ((p, r), ei) in ps.iter_mut().zip(vs.iter()).zip(es.iter()) {
                                *p = c(5.0 / 3.0) * (c(1.0) + rate * *r) * *ei;
                            }
                        }
                        for (x, ei) in vs.iter_mut().zip(es.iter()) {
                            let r = *x;
                            *x = (c(1.0) + rate * r + c(5.0 / 3.0) * r * r) * *ei;
                        }
                    }
                }
            }
            Kernel::Rq => {
                // phi = base^-alpha = exp(-alpha ln base); psi = phi / base. ln base is taken as
                // ln_1p(r^2 / (2 alpha)): for a large alpha (rq tending to rbf) ln(1 + tiny)
                // would keep only the digits of 1 + tiny.
                // In f64 whatever T (r^2 / (2 alpha) overflows f32 for a small alpha); r^2 at
                // the limit is infinite distance, where phi, psi and d phi / d log alpha are 0.
                for (x, ei) in vs.iter_mut().zip(es.iter_mut()) {
                    let far = *x >= lim;
                    *ei = if far { c(f64::NEG_INFINITY) } else { c(-alpha * rq_ln_base(x.to_f64(), alpha)) };
                }
                if let Some(ds) = ds.as_deref_mut() {
                    // ds temporarily holds -alpha ln base.
                    ds.copy_from_slice(es);
                }
                exp_in_place(es);
                for (i, x) in vs.iter_mut().enumerate() {
                    let (far, r2) = (*x >= lim, x.to_f64());
                    let phi = if far { c(0.0) } else { es[i] };
                    if let Some(ps) = ps.as_deref_mut() {
                        ps[i] = if far { c(0.0) } else { phi / c(1.0 + r2 * (0.5 / alpha)) };
                    }
                    if let Some(ds) = ds.as_deref_mut() {
                        ds[i] = if far { c(0.0) } else { phi * (c(rq_half_r2_over_base(r2, alpha)) + ds[i]) };
                    }
                    *x = phi;
                }
            }
        }
        start += len;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// psi and d phi / d log alpha against central differences of the scalar phi.
    #[test]
    fn scalar_derivatives_match_finite_differences() {
        let alpha = 0.7;
        for k in Kernel::ALL {
            for r2 in [1e-3, 0.1, 0.5, 1.3, 4.0, 11.0] {
                let h = 1e-6 * r2;
                let fd = -2.0 * (k.phi(r2 + h, alpha) - k.phi(r2 - h, alpha)) / (2.0 * h);
                let psi = k.psi(r2, alpha);
                assert!((psi - fd).abs() <= 1e-6 * (1.0 + fd.abs()), "{k} psi({r2}) = {psi}, fd {fd}");
                let ha: f64 = 1e-6;
                let fda = (k.phi(r2, alpha * ha.exp()) - k.phi(r2, alpha * (-ha).exp())) / (2.0 * ha);
                let da = k.dphi_dlog_alpha(r2, alpha);
                assert!((da - fda).abs() <= 1e-7 * (1.0 + fda.abs()), "{k} dalpha({r2}) = {da}, fd {fda}");
            }
            assert_eq!(k.phi(0.0, alpha), 1.0, "{k} phi(0)");
            assert!(k.psi(0.0, alpha).is_finite(), "{k} psi(0)");
        }
    }

    /// At and beyond the limit of r^2 (inf from a tiny lengthscale) every kernel's phi,
    /// psi and d phi / d log alpha are 0, in the scalar and the vector forms, f64 and f32, rq
    /// included for a small alpha (whose value at the limit itself is not negligible); just
    /// below it, rq with a small alpha is exp(-alpha ln(r^2 / (2 alpha))) to 1e-12.
    #[test]
    fn every_kernel_is_its_limit_at_infinite_distance() {
        for alpha in [1e-12, 1e-3, 0.1, 0.49, 1.9] {
            for k in Kernel::ALL {
                for x in [1e300, 1e301, f64::MAX, f64::INFINITY, f64::NAN] {
                    let what = format!("{k} alpha {alpha} r2 {x:e}");
                    assert_eq!(
                        (k.phi(x, alpha), k.psi(x, alpha), k.dphi_dlog_alpha(x, alpha)),
                        (0.0, 0.0, 0.0),
                        "{what}"
                    );
                    if x.is_nan() {
                        // The vector form never sees NaN from a lengthscale (differences of
                        // clamped coordinates overflow to inf at worst); the scalar form takes
                        // it as the limit.
                        continue;
                    }
                    let (mut v, mut p, mut d) = (vec![x; 5], vec![1.0; 5], vec![1.0; 5]);
                    let (mut v32, mut p32, mut d32) = (vec![x as f32; 5], vec![1.0f32; 5], vec![1.0f32; 5]);
                    if k == Kernel::Rbf {
                        transform(k, &mut v, alpha, None, None);
                        transform(k, &mut v32, alpha, None, None);
                        assert!(v.iter().all(|&y| y == 0.0) && v32.iter().all(|&y| y == 0.0), "{what}");
                        continue;
                    }
                    let a = k.has_alpha();
                    transform(k, &mut v, alpha, Some(&mut p), a.then_some(&mut d[..]));
                    transform(k, &mut v32, alpha, Some(&mut p32), a.then_some(&mut d32[..]));
                    assert!(v.iter().chain(&p).all(|&y| y == 0.0), "{what}: f64 {v:?} {p:?}");
                    assert!(v32.iter().chain(&p32).all(|&y| y == 0.0), "{what}: f32 {v32:?} {p32:?}");
                    if a {
                        assert!(d.iter().all(|&y| y == 0.0) && d32.iter().all(|&y| y == 0.0), "{what}: {d:?} {d32:?}");
                    }
                }
            }
            // Just below the limit: rq exact, in the scalar and the vector form.
            let x: f64 = 1e299;
            let want = (-alpha * ((0.5 * x).ln() - alpha.ln())).exp();
            let mut v = vec![x];
            transform(Kernel::Rq, &mut v, alpha, Some(&mut [0.0][..]), Some(&mut [0.0][..]));
            for got in [Kernel::Rq.phi(x, alpha), v[0]] {
                assert!((got - want).abs() <= 1e-12 * want, "rq alpha {alpha} at 1e299: {got} vs {want}");
            }
        }
    }

    #[test]
    fn vector_form_matches_scalar_form() {
        let alpha = 1.9;
        let r2: Vec<f64> = (0..700).map(|i| (i as f64 * 0.37) % 13.0).collect();
        for k in Kernel::ALL {
            let mut v = r2.clone();
            let mut psi = vec![0.0; r2.len()];
            let mut da = vec![0.0; r2.len()];
            if k == Kernel::Rbf {
                transform(k, &mut v, alpha, None, None);
                psi.copy_from_slice(&v);
            } else {
                transform(k, &mut v, alpha, Some(&mut psi), k.has_alpha().then_some(&mut da[..]));
            }
            for (i, &x) in r2.iter().enumerate() {
                let tol = |w: f64| 1e-14 * (1.0 + w.abs());
                assert!((v[i] - k.phi(x, alpha)).abs() <= tol(v[i]), "{k} phi({x})");
                assert!((psi[i] - k.psi(x, alpha)).abs() <= tol(psi[i]), "{k} psi({x})");
                if k.has_alpha() {
                    assert!((da[i] - k.dphi_dlog_alpha(x, alpha)).abs() <= tol(da[i]), "{k} dalpha({x})");
                }
            }
        }
    }

    #[test]
    fn names_round_trip() {
        for k in Kernel::ALL {
            assert_eq!(k.name().parse::<Kernel>().unwrap(), k);
        }
        assert!("matern".parse::<Kernel>().is_err());
    }
}
