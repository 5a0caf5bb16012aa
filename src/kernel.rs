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
        let r = r2.sqrt();
        match self {
            Kernel::Rbf => (-0.5 * r2).exp(),
            Kernel::Matern12 => (-r).exp(),
            Kernel::Matern32 => (1.0 + SQRT3 * r) * (-SQRT3 * r).exp(),
            Kernel::Matern52 => (1.0 + SQRT5 * r + 5.0 / 3.0 * r2) * (-SQRT5 * r).exp(),
            Kernel::Rq => (-alpha * (r2 / (2.0 * alpha)).ln_1p()).exp(),
        }
    }

    /// The lengthscale weight psi(r^2) = -2 d phi / d r^2 (0 at r = 0 for Matérn 1/2).
    pub fn psi(self, r2: f64, alpha: f64) -> f64 {
        let r = r2.sqrt();
        match self {
            Kernel::Rbf => (-0.5 * r2).exp(),
            Kernel::Matern12 if r > 0.0 => (-r).exp() / r,
            Kernel::Matern12 => 0.0,
            Kernel::Matern32 => 3.0 * (-SQRT3 * r).exp(),
            Kernel::Matern52 => 5.0 / 3.0 * (1.0 + SQRT5 * r) * (-SQRT5 * r).exp(),
            Kernel::Rq => (-(alpha + 1.0) * (r2 / (2.0 * alpha)).ln_1p()).exp(),
        }
    }

    /// d phi / d log alpha (rq; 0 for the others).
    pub fn dphi_dlog_alpha(self, r2: f64, alpha: f64) -> f64 {
        match self {
            Kernel::Rq => {
                let t = r2 / (2.0 * alpha);
                let phi = self.phi(r2, alpha);
                phi * (r2 / (2.0 * (1.0 + t)) - alpha * t.ln_1p())
            }
            _ => 0.0,
        }
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
                let inv2a = c(0.5 / alpha);
                for (x, ei) in vs.iter_mut().zip(es.iter_mut()) {
                    *ei = T::from_f64(-alpha * (*x * inv2a).to_f64().ln_1p());
                }
                if let Some(ds) = ds.as_deref_mut() {
                    // ds temporarily holds -alpha ln base.
                    ds.copy_from_slice(es);
                }
                exp_in_place(es);
                for (i, x) in vs.iter_mut().enumerate() {
                    let r2 = *x;
                    let base = c(1.0) + r2 * inv2a;
                    let phi = es[i];
                    if let Some(ps) = ps.as_deref_mut() {
                        ps[i] = phi / base;
                    }
                    if let Some(ds) = ds.as_deref_mut() {
                        ds[i] = phi * (r2 / (c(2.0) * base) + ds[i]);
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
