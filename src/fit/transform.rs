//! The optimiser's unconstrained coordinates u and their map to natural values theta.
//!
//! The coordinates do not depend on the data's units (docs/design.md section 14): a positive
//! hyperparameter is theta = scale exp(u), where scale is the member's own unit for it (the
//! spread of x per dimension for a lengthscale, var(y) for the outputscale and the noise, 1 for
//! rq's alpha); the mean is theta = offset + scale u with the member's mean(y) and sd(y); a
//! hyperparameter with a uniform prior (low, high) is theta = low + (high - low) sigmoid(u), so
//! the optimiser never leaves the interval (docs/design.md section 2); a fixed hyperparameter
//! is its given value, exactly, whatever u is.

/// How one coordinate maps to its natural value.
#[derive(Debug, Clone, Copy, PartialEq)]
pub(crate) enum Map {
    /// theta = scale exp(u).
    Log { scale: f64 },
    /// theta = offset + scale u.
    Affine { offset: f64, scale: f64 },
    /// theta = low + (high - low) sigmoid(u).
    Sigmoid { low: f64, high: f64 },
    /// theta = value.
    Fixed { value: f64 },
}

impl Map {
    /// theta from u.
    pub fn theta(self, u: f64) -> f64 {
        match self {
            Map::Log { scale } => scale * u.exp(),
            Map::Affine { offset, scale } => offset + scale * u,
            Map::Sigmoid { low, high } => {
                let u = u.clamp(-40.0, 40.0);
                low + (high - low) / (1.0 + (-u).exp())
            }
            Map::Fixed { value } => value,
        }
    }
    /// u from theta; theta outside a sigmoid's interval is first moved inside (0.1% of its
    /// width from the edge). A fixed coordinate's u is 0.
    pub fn u(self, theta: f64) -> f64 {
        match self {
            Map::Log { scale } => (theta / scale).ln(),
            Map::Affine { offset, scale } => (theta - offset) / scale,
            Map::Sigmoid { low, high } => {
                let w = high - low;
                let t = theta.clamp(low + 1e-3 * w, high - 1e-3 * w);
                let p = (t - low) / w;
                (p / (1.0 - p)).ln()
            }
            Map::Fixed { .. } => 0.0,
        }
    }
    /// d objective / du from the gradient in the reported coordinates: d/dlog theta for a
    /// positive hyperparameter, d/dtheta for the mean.
    pub fn grad_u(self, positive: bool, theta: f64, g_reported: f64) -> f64 {
        let g_theta = if positive { g_reported / theta } else { g_reported };
        match self {
            Map::Log { .. } => g_reported,
            Map::Affine { scale, .. } => scale * g_theta,
            Map::Sigmoid { low, high } => g_theta * (theta - low) * (high - theta) / (high - low),
            Map::Fixed { .. } => 0.0,
        }
    }
    /// Whether the optimiser may move the coordinate.
    pub fn free(self) -> bool {
        !matches!(self, Map::Fixed { .. })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn maps_invert_and_differentiate() {
        let maps = [
            (Map::Log { scale: 3.0 }, true),
            (Map::Affine { offset: -2.0, scale: 0.5 }, false),
            (Map::Sigmoid { low: 1.0, high: 4.0 }, true),
        ];
        for (m, positive) in maps {
            for u in [-1.3, 0.0, 0.7] {
                let t = m.theta(u);
                assert!((m.u(t) - u).abs() < 1e-12, "{m:?}");
                // d theta / du by central differences, against grad_u of g_theta = 1.
                let h = 1e-6;
                let fd = (m.theta(u + h) - m.theta(u - h)) / (2.0 * h);
                let g_rep = if positive { t } else { 1.0 };
                assert!((m.grad_u(positive, t, g_rep) - fd).abs() < 1e-7 * (1.0 + fd.abs()), "{m:?}");
            }
        }
        assert_eq!(Map::Fixed { value: 0.27 }.theta(12.0), 0.27);
    }
}
