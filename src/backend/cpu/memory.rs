//! Memory planning (docs/design.md section 14): before any work, a request's peak is estimated
//! as the workspace of one member times the members in flight, plus its output arrays; members
//! then run in chunks that fit the budget (`max_memory`, default the memory available), and a
//! member that cannot fit alone is rejected before anything is allocated. Allocations of the
//! workspaces are fallible, so a failure that planning did not foresee is an error, not an
//! abort.

use crate::data::Precision;
use crate::error::{Error, Result};
use crate::kernel::Kernel;

/// The memory available to this process now (MemAvailable of /proc/meminfo, and the cgroup
/// limit when one is set), or None where it cannot be read.
pub fn available() -> Option<u64> {
    let meminfo = std::fs::read_to_string("/proc/meminfo").ok()?;
    let kb: u64 = meminfo.lines().find(|l| l.starts_with("MemAvailable:"))?.split_whitespace().nth(1)?.parse().ok()?;
    let mut bytes = kb.saturating_mul(1024);
    for path in ["/sys/fs/cgroup/memory.max", "/sys/fs/cgroup/memory/memory.limit_in_bytes"] {
        let limit = std::fs::read_to_string(path).ok().and_then(|s| s.trim().parse::<u64>().ok());
        let used = std::fs::read_to_string(path.replace("max", "current").replace("limit_in_bytes", "usage_in_bytes"))
            .ok()
            .and_then(|s| s.trim().parse::<u64>().ok());
        if let (Some(l), Some(u)) = (limit, used) {
            bytes = bytes.min(l.saturating_sub(u));
        }
    }
    Some(bytes)
}

/// Parses a byte count with an optional K, M, G or T suffix (powers of 1024; a trailing B or
/// iB is accepted): `512M`, `4G`, `1.5GiB`, `1000000`.
///
/// # Errors
/// [`Error::InvalidOption`] naming `max-memory` for anything else, or a value below 1.
pub fn parse_bytes(s: &str) -> Result<u64> {
    let bad = || Error::option("max-memory", format!("expected BYTES with an optional K, M, G or T suffix, got `{s}`"));
    let t = s.trim();
    let t = t.strip_suffix("iB").or_else(|| t.strip_suffix('B')).unwrap_or(t);
    let (num, mult) = match t.chars().last() {
        Some(c @ ('K' | 'k' | 'M' | 'm' | 'G' | 'g' | 'T' | 't')) => {
            let p = match c.to_ascii_uppercase() {
                'K' => 1,
                'M' => 2,
                'G' => 3,
                _ => 4,
            };
            (&t[..t.len() - 1], 1024f64.powi(p))
        }
        _ => (t, 1.0),
    };
    let v: f64 = num.trim().parse().map_err(|_| bad())?;
    let bytes = v * mult;
    if !(bytes >= 1.0 && bytes < u64::MAX as f64) {
        return Err(bad());
    }
    Ok(bytes as u64)
}

pub use crate::error::format_bytes;

/// Requests that need less than this with every thread busy run without asking the system
/// what is available (reading /proc costs more than a small evaluation).
const SMALL_REQUEST: u64 = 256 << 20;

/// How many members may be in flight at once: each needs `per_member` bytes beyond the
/// `fixed` bytes of the request (its outputs), within `max_memory` or else what is available.
///
/// # Errors
/// [`Error::OutOfMemory`] naming N and the bytes needed when one member does not fit.
pub(crate) fn in_flight(per_member: u64, fixed: u64, max_memory: Option<u64>, n: usize) -> Result<usize> {
    let threads = rayon::current_num_threads() as u64;
    if max_memory.is_none() && per_member.saturating_mul(threads).saturating_add(fixed) <= SMALL_REQUEST {
        return Ok(usize::MAX);
    }
    let Some(budget) = max_memory.or_else(available) else { return Ok(usize::MAX) };
    let need = per_member.saturating_add(fixed);
    if need > budget {
        return Err(Error::OutOfMemory { n, needed: need, budget });
    }
    Ok(((budget - fixed) / per_member.max(1)).max(1).min(usize::MAX as u64) as usize)
}

/// Plans what a request's options imply beyond its members (restarts x members, samples x B x
/// M, inducing points, steps x B of loss history): `needed` bytes, all allocated up front, must
/// fit `max_memory`, else the memory available. `request` says what asked for them, in the
/// user's words (`restarts = 1000000000000 for 3 members`). Sizes are computed saturating, so
/// a product that overflows u64 is refused as such.
///
/// # Errors
/// [`Error::TooLarge`] with the bytes needed and the budget.
pub(crate) fn plan(request: impl FnOnce() -> String, needed: u64, max_memory: Option<u64>) -> Result<()> {
    if max_memory.is_none() && needed <= SMALL_REQUEST {
        return Ok(());
    }
    let budget = max_memory.or_else(available).unwrap_or(u64::MAX - 1);
    if needed > budget {
        return Err(Error::TooLarge { request: request(), needed, budget });
    }
    Ok(())
}

/// The product of sizes, saturating at u64::MAX (a size no budget admits).
pub(crate) fn product(sizes: &[u64]) -> u64 {
    sizes.iter().fold(1u64, |acc, &s| acc.saturating_mul(s))
}

/// Bytes one optimised member's state needs for `p` coordinates: its maps, box, start and
/// L-BFGS's ten pairs with its working vectors (Adam needs less), plus its fixed overhead.
pub(crate) fn member_state_bytes(p: u64) -> u64 {
    p.saturating_mul(40 * 8).saturating_add(1024)
}

fn size_of(p: Precision) -> u64 {
    match p {
        Precision::F64 => 8,
        Precision::F32 => 4,
    }
}

/// Bytes one CPU member's MLL needs: points, residuals and three vectors, the Gram, its
/// factor and inverse, the kernel's gradient weights (not for rbf; two for rq), faer's
/// scratch (bounded by one more n x n) and, for small n, the small path's L^-1.
pub(crate) fn cpu_mll_bytes(n: usize, d: usize, kernel: Kernel, precision: Precision, gradient: bool) -> u64 {
    let (n, d) = (n as u64, d as u64);
    let sq = n.saturating_mul(n);
    let weights = match (gradient, kernel) {
        (false, _) | (true, Kernel::Rbf) => 0,
        (true, Kernel::Rq) => 2,
        (true, _) => 1,
    };
    let small = super::small_scratch(n as usize) as u64;
    size_of(precision).saturating_mul(n * d + 4 * n + small + sq.saturating_mul(4 + weights))
}

/// Bytes one CPU member's prediction at m points needs: the MLL's workspace without
/// gradient, the cross covariance (n, m), and with the covariance two (m, m) matrices and its
/// f64 copy.
pub(crate) fn cpu_predict_bytes(n: usize, d: usize, m: usize, precision: Precision, covariance: bool) -> u64 {
    let base = cpu_mll_bytes(n, d, Kernel::Rbf, precision, false);
    let (n, m) = (n as u64, m as u64);
    let cov = if covariance { m.saturating_mul(m).saturating_mul(2 * size_of(precision) + 8) } else { 0 };
    base.saturating_add(n.saturating_mul(m).saturating_mul(size_of(precision))).saturating_add(cov)
}

/// Bytes one CPU member's ELBO needs with n points and m inducing points (`backend/cpu/svgp/`):
/// in the working precision the scaled points (D (n + m)), the m x n blocks k(Z, X), A and A W
/// (two more and the kernel's weights for the gradient), the m x m blocks k(Z, Z), L, P, Q and
/// S (five more and the weights for the gradient) and one m x m of faer's scratch; in f64 the
/// three n-vectors and, for the gradient, its m x n and two m x m blocks.
pub(crate) fn cpu_elbo_bytes(
    n: usize,
    m: usize,
    d: usize,
    kernel: Kernel,
    precision: Precision,
    gradient: bool,
) -> u64 {
    let (n, m, d) = (n as u64, m as u64, d as u64);
    let (mn, mm) = (m.saturating_mul(n), m.saturating_mul(m));
    let (w_mn, w_mm) = match (gradient, kernel) {
        (false, _) => (0, 0),
        (true, Kernel::Rbf) => (0, 1),
        (true, Kernel::Rq) => (2, 2),
        (true, _) => (1, 1),
    };
    let g = u64::from(gradient);
    let working =
        d.saturating_mul(n + m) + m + mn.saturating_mul(3 + 2 * g + w_mn) + mm.saturating_mul(6 + 5 * g + w_mm);
    let wide = 3 * n + 2 * m + g * (mn.saturating_add(mm.saturating_mul(2)) + m * d + m);
    size_of(precision).saturating_mul(working).saturating_add(wide.saturating_mul(8))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_and_formats_byte_counts() {
        assert_eq!(parse_bytes("512").unwrap(), 512);
        assert_eq!(parse_bytes("4K").unwrap(), 4096);
        assert_eq!(parse_bytes("1.5G").unwrap(), 1_610_612_736);
        assert_eq!(parse_bytes("2GiB").unwrap(), 2 << 30);
        assert_eq!(parse_bytes("3MB").unwrap(), 3 << 20);
        for bad in ["", "G", "-1G", "1X", "0"] {
            assert!(parse_bytes(bad).is_err(), "{bad}");
        }
        assert_eq!(format_bytes(320_000_000_000), "298.0 GiB");
    }

    #[test]
    fn one_member_that_does_not_fit_is_refused() {
        // N = 200000 in f64: 4 n^2 doubles alone are 1.28 TB.
        let per = cpu_mll_bytes(200_000, 3, Kernel::Rbf, Precision::F64, true);
        assert!(per > 1_200_000_000_000);
        let e = in_flight(per, 0, Some(16 << 30), 200_000).unwrap_err();
        assert!(e.to_string().contains("N = 200000"), "{e}");
        assert_eq!(in_flight(100, 50, Some(1050), 10).unwrap(), 10);
        assert_eq!(in_flight(100, 0, None, 10).unwrap(), usize::MAX);
        assert!(in_flight(per, 0, None, 200_000).is_err() || available().is_none());
    }
}
