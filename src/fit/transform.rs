//! The optimiser's unconstrained coordinates u and their map to natural values theta.
//!
//! Per member the vector is [l_1 .. l_D, outputscale, noise, mean] (P = D + 3 entries).
//! Positive hyperparameters use theta = exp(u); the mean uses theta = u; a hyperparameter with a
//! uniform prior (low, high) uses theta = low + (high - low) sigmoid(u), so that the optimiser
//! never leaves the interval (DESIGN.md section 2).

use crate::prior::{ResolvedPriors, Target};

/// How one coordinate maps to its natural value.
#[derive(Debug, Clone, Copy, PartialEq)]
pub(crate) enum Map {
    Log,
    Identity,
    Sigmoid { low: f64, high: f64 },
}

impl Map {
    pub fn for_coordinate(priors: &ResolvedPriors, t: Target, m: usize, k: usize) -> Map {
        match priors.bounds(t, m, k) {
            Some((low, high)) => Map::Sigmoid { low, high },
            None if t.positive() => Map::Log,
            None => Map::Identity,
        }
    }
    /// theta from u.
    pub fn theta(self, u: f64) -> f64 {
        match self {
            Map::Log => u.exp(),
            Map::Identity => u,
            Map::Sigmoid { low, high } => {
                let u = u.clamp(-40.0, 40.0);
                low + (high - low) / (1.0 + (-u).exp())
            }
        }
    }
    /// u from theta; theta outside a sigmoid's interval is first moved inside (0.1% of its
    /// width from the edge).
    pub fn u(self, theta: f64) -> f64 {
        match self {
            Map::Log => theta.ln(),
            Map::Identity => theta,
            Map::Sigmoid { low, high } => {
                let w = high - low;
                let t = theta.clamp(low + 1e-3 * w, high - 1e-3 * w);
                let p = (t - low) / w;
                (p / (1.0 - p)).ln()
            }
        }
    }
    /// d objective / du from the gradient in the reported coordinates: d/dlog theta for a
    /// positive hyperparameter, d/dtheta for the mean.
    pub fn grad_u(self, positive: bool, theta: f64, g_reported: f64) -> f64 {
        let g_theta = if positive { g_reported / theta } else { g_reported };
        match self {
            Map::Log => g_reported,
            Map::Identity => g_theta,
            Map::Sigmoid { low, high } => g_theta * (theta - low) * (high - theta) / (high - low),
        }
    }
}

/// The kind and index of coordinate c in a member's vector of P = D + 3 entries.
pub(crate) fn coordinate(c: usize, d: usize) -> (Target, usize) {
    if c < d {
        (Target::Lengthscale, c)
    } else {
        ([Target::Outputscale, Target::Noise, Target::Mean][c - d], 0)
    }
}
