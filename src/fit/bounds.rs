//! Per-hyperparameter box bounds (GPyTorch's constraints, scikit-learn's `*_bounds`): a bound
//! (low, high) in natural units per kind of hyperparameter, broadcast per member and, for the
//! lengthscale, per dimension, as prior parameters are (docs/design.md section 2).
//!
//! A bound narrows what the fit may reach; it adds nothing to the objective. On a coordinate
//! that the optimiser runs on the log (or affine) scale it becomes a box in the optimiser's
//! coordinates, and L-BFGS then runs as L-BFGS-B on a boxed problem. On a coordinate with a
//! uniform prior (a sigmoid map on the prior's interval) bound and prior compose as their
//! intersection: the sigmoid then spans the intersection, and the prior's density is unchanged.
//! Bounds compose with the single box of [`super::FitRequest::bounds`] in the same way. A fixed
//! hyperparameter keeps its value: a bound does not move it.
//!
//! low may be 0 (no lower bound on a positive hyperparameter) and high +inf (no upper bound);
//! for the mean, low may be -inf.

use super::transform::Map;
use crate::error::{Error, Result};
use crate::layout::{Layout, Target};
use crate::prior::{broadcast, PriorParam};
use ndarray::Array2;

/// Bounds on some kinds of hyperparameter, their values not yet broadcast over (B, D).
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Bounds {
    entries: Vec<(Target, PriorParam, PriorParam)>,
}

impl Bounds {
    /// No bound.
    pub fn none() -> Self {
        Bounds::default()
    }
    /// Bounds (low, high) on one kind of hyperparameter, in natural units: each a number (every
    /// member and dimension), for the lengthscale D numbers (per dimension) or B lists of D,
    /// for the others B numbers (per member). A later call for the same kind replaces it.
    pub fn with(mut self, target: Target, low: impl Into<PriorParam>, high: impl Into<PriorParam>) -> Self {
        self.entries.retain(|(t, _, _)| *t != target);
        self.entries.push((target, low.into(), high.into()));
        self
    }
    /// Whether no kind has a bound.
    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }

    /// Broadcasts every bound to B members and D dimensions and checks it.
    ///
    /// # Errors
    /// [`Error::InvalidOption`] `bounds`, naming the hyperparameter and (member, index), for a
    /// shape that does not broadcast, a NaN, low >= high, low < 0 on a positive hyperparameter,
    /// or a kind the kernel does not have.
    pub fn resolve(&self, layout: Layout, b: usize) -> Result<ResolvedBounds> {
        let d = layout.n_dims();
        let mut out = ResolvedBounds { entries: Vec::new() };
        for (t, low, high) in &self.entries {
            if !layout.has(*t) {
                return Err(Error::option("bounds", format!("the {} kernel has no {}", layout.kernel(), t.name())));
            }
            let width = if *t == Target::Lengthscale { d } else { 1 };
            let cast = |v: &PriorParam, name: &str| {
                broadcast(v, *t, name, b, width).map_err(|e| match e {
                    Error::InvalidPrior { target, reason } => Error::option("bounds", format!("on {target}: {reason}")),
                    e => e,
                })
            };
            let (lo, hi) = (cast(low, "low")?, cast(high, "high")?);
            for ((m, k), &l) in lo.indexed_iter() {
                let h = hi[[m, k]];
                let floor = if t.positive() { 0.0 } else { f64::NEG_INFINITY };
                if l.is_nan() || h.is_nan() || l < floor || l >= h {
                    let need = if t.positive() { "0 <= low < high" } else { "low < high" };
                    return Err(Error::option(
                        "bounds",
                        format!("on {} (member {m}, index {k}): need {need}, got ({l}, {h})", t.name()),
                    ));
                }
            }
            out.entries.push((*t, lo, hi));
        }
        Ok(out)
    }
}

/// Bounds broadcast to (B, W): W = D for the lengthscale, 1 otherwise.
#[derive(Debug, Clone, PartialEq)]
pub struct ResolvedBounds {
    entries: Vec<(Target, Array2<f64>, Array2<f64>)>,
}

impl ResolvedBounds {
    /// The bound on hyperparameter (t, k) of GP m, if any.
    fn get(&self, t: Target, m: usize, k: usize) -> Option<(f64, f64)> {
        self.entries.iter().find(|(u, _, _)| *u == t).map(|(_, lo, hi)| (lo[[m, k]], hi[[m, k]]))
    }

    /// Narrows every member's coordinate maps and boxes to the bounds (member e fits GP gp[e]):
    /// a sigmoid's interval to its intersection with the bound, a log or affine coordinate's box
    /// (lower, upper) to the bound in the optimiser's coordinates. Where a degenerate member's
    /// limit and the bound do not meet, the bound wins.
    ///
    /// # Errors
    /// [`Error::InvalidOption`] `bounds` when a bound and a uniform prior do not intersect.
    pub(crate) fn apply(
        &self,
        layout: Layout,
        gp: &[usize],
        maps: &mut [Vec<Map>],
        lower: &mut [Vec<f64>],
        upper: &mut [Vec<f64>],
    ) -> Result<()> {
        for (e, &m) in gp.iter().enumerate() {
            for c in 0..layout.len() {
                let (t, k) = layout.coordinate(c);
                let Some((lo, hi)) = self.get(t, m, k) else { continue };
                match maps[e][c] {
                    Map::Fixed { .. } => {}
                    Map::Sigmoid { low, high } => {
                        let (l, h) = (low.max(lo), high.min(hi));
                        if l >= h {
                            return Err(Error::option(
                                "bounds",
                                format!(
                                    "on {} (member {m}, index {k}): ({lo}, {hi}) does not meet the uniform prior's ({low}, {high})",
                                    t.name()
                                ),
                            ));
                        }
                        maps[e][c] = Map::Sigmoid { low: l, high: h };
                    }
                    map => {
                        let (ul, uh) = (map.u(lo), map.u(hi));
                        let (l, h) = (lower[e][c].max(ul), upper[e][c].min(uh));
                        (lower[e][c], upper[e][c]) = if l <= h { (l, h) } else { (ul, uh) };
                    }
                }
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::kernel::Kernel;

    #[test]
    fn a_bound_narrows_boxes_and_sigmoids_and_is_checked() {
        let layout = Layout::new(Kernel::Rbf, 2);
        let bounds = Bounds::none()
            .with(Target::Lengthscale, vec![0.5, 1.0], 4.0)
            .with(Target::Noise, 1e-4, f64::INFINITY)
            .with(Target::Outputscale, 2.0, 3.0);
        let r = bounds.resolve(layout, 2).unwrap();
        let p = layout.len();
        let mut maps = vec![vec![Map::Log { scale: 2.0 }; p]; 2];
        maps[1][2] = Map::Sigmoid { low: 1.0, high: 2.5 };
        let (mut lo, mut hi) = (vec![vec![f64::NEG_INFINITY; p]; 2], vec![vec![f64::INFINITY; p]; 2]);
        r.apply(layout, &[0, 1], &mut maps, &mut lo, &mut hi).unwrap();
        assert_eq!((lo[0][0], hi[0][0]), ((0.25f64).ln(), (2.0f64).ln()));
        assert_eq!((lo[0][1], hi[0][1]), ((0.5f64).ln(), (2.0f64).ln()));
        assert_eq!((lo[0][3], hi[0][3]), ((0.5e-4f64).ln(), f64::INFINITY));
        assert_eq!(maps[1][2], Map::Sigmoid { low: 2.0, high: 2.5 });
        assert_eq!((lo[0][4], hi[0][4]), (f64::NEG_INFINITY, f64::INFINITY), "the mean has no bound");

        let disjoint = Bounds::none().with(Target::Outputscale, 3.0, 4.0).resolve(layout, 2).unwrap();
        let err = disjoint.apply(layout, &[0, 1], &mut maps, &mut lo, &mut hi).unwrap_err().to_string();
        assert!(err.contains("outputscale (member 1, index 0)") && err.contains("uniform prior"), "{err}");

        for (b, what) in [
            (Bounds::none().with(Target::Noise, 2.0, 1.0), "noise (member 0, index 0)"),
            (Bounds::none().with(Target::Lengthscale, -1.0, 1.0), "lengthscale (member 0, index 0)"),
            (Bounds::none().with(Target::Lengthscale, vec![1.0], 2.0), "D = 2"),
            (Bounds::none().with(Target::Alpha, 1.0, 2.0), "no alpha"),
            (Bounds::none().with(Target::Noise, vec![0.1, f64::NAN], 2.0), "noise (member 1, index 0)"),
        ] {
            let err = b.resolve(layout, 2).unwrap_err().to_string();
            assert!(err.contains("bounds") && err.contains(what), "{err}");
        }
        assert!(Bounds::none().with(Target::Mean, f64::NEG_INFINITY, 0.0).resolve(layout, 2).is_ok());
    }
}
