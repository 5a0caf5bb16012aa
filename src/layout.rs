//! The parameter layout: the one place that knows which hyperparameters a member has and where
//! each sits in the member's vector (the optimisers' coordinates, the gradient rows, the CUDA
//! kernels' gradient output):
//!
//! ```text
//! [ l_1 .. l_D | outputscale | noise | mean | alpha (rq only) ]      P = D + 3 (+ 1)
//! ```
//!
//! Positive hyperparameters (all but the mean) are reported and optimised on the log scale.

use crate::data::Hyperparameters;
use crate::kernel::Kernel;

pub use crate::target::Target;

/// Where each hyperparameter of a member sits in its vector of [`Layout::len`] entries.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Layout {
    d: usize,
    kernel: Kernel,
}

impl Layout {
    /// The layout of a `kernel` in `d` input dimensions.
    pub fn new(kernel: Kernel, d: usize) -> Self {
        Layout { d, kernel }
    }
    /// The layout of these hyperparameters.
    pub fn of(h: &Hyperparameters) -> Self {
        Layout::new(h.kernel, h.n_dims())
    }
    /// P, the entries per member.
    pub fn len(&self) -> usize {
        self.d + 3 + usize::from(self.kernel.has_alpha())
    }
    /// Never: every layout has at least outputscale, noise and mean.
    pub fn is_empty(&self) -> bool {
        false
    }
    /// D.
    pub fn n_dims(&self) -> usize {
        self.d
    }
    pub fn kernel(&self) -> Kernel {
        self.kernel
    }
    /// Whether the layout holds this kind of hyperparameter.
    pub fn has(&self, t: Target) -> bool {
        t != Target::Alpha || self.kernel.has_alpha()
    }
    /// The kinds it holds, in order.
    pub fn targets(&self) -> impl Iterator<Item = Target> + '_ {
        Target::ALL.into_iter().filter(|t| self.has(*t))
    }
    /// Entries of one kind: D for lengthscales, 1 for the others.
    pub fn width(&self, t: Target) -> usize {
        if t == Target::Lengthscale {
            self.d
        } else {
            1
        }
    }
    /// The kind and index of entry c.
    pub fn coordinate(&self, c: usize) -> (Target, usize) {
        debug_assert!(c < self.len());
        if c < self.d {
            (Target::Lengthscale, c)
        } else {
            ([Target::Outputscale, Target::Noise, Target::Mean, Target::Alpha][c - self.d], 0)
        }
    }
    /// The entry of kind `t`, index `k`.
    pub fn index(&self, t: Target, k: usize) -> usize {
        match t {
            Target::Lengthscale => k,
            Target::Outputscale => self.d,
            Target::Noise => self.d + 1,
            Target::Mean => self.d + 2,
            Target::Alpha => self.d + 3,
        }
    }
    /// The natural values of member `m`, in layout order.
    pub fn read(&self, h: &Hyperparameters, m: usize) -> Vec<f64> {
        (0..self.len())
            .map(|c| {
                let (t, k) = self.coordinate(c);
                h.get(t, m, k)
            })
            .collect()
    }
    /// Writes natural values in layout order into member `m` of `h`.
    pub fn write(&self, h: &mut Hyperparameters, m: usize, theta: &[f64]) {
        for (c, v) in theta.iter().enumerate() {
            let (t, k) = self.coordinate(c);
            h.set(t, m, k, *v);
        }
    }
}

/// Where each parameter of an SVGP member sits in its vector (docs/design.md section 11): the
/// hyperparameters first, in [`Layout`] order, then Z row by row, q_mu, and the lower triangle
/// of q_sqrt row by row:
///
/// ```text
/// [ hyperparameters (P) | z_11 .. z_1D .. z_MD | q_mu_1 .. q_mu_M | q_11, q_21, q_22, .. q_MM ]
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SvgpLayout {
    pub hyp: Layout,
    m: usize,
}

/// The kinds of entry of an SVGP member's vector.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SvgpEntry {
    /// A hyperparameter (kind, index).
    Hyper(Target, usize),
    /// Z (inducing point, dimension).
    Z(usize, usize),
    /// q_mu (index).
    QMu(usize),
    /// q_sqrt (row, column), column <= row.
    QSqrt(usize, usize),
}

impl SvgpLayout {
    /// The layout of M inducing points for a `kernel` in `d` dimensions.
    pub fn new(kernel: Kernel, d: usize, m: usize) -> Self {
        SvgpLayout { hyp: Layout::new(kernel, d), m }
    }
    /// M.
    pub fn n_inducing(&self) -> usize {
        self.m
    }
    /// Entries per member: P + M D + M + M (M + 1) / 2.
    pub fn len(&self) -> usize {
        self.hyp.len() + self.m * self.hyp.n_dims() + self.m + self.m * (self.m + 1) / 2
    }
    /// Never: every layout has hyperparameters.
    pub fn is_empty(&self) -> bool {
        false
    }
    /// What entry c is.
    pub fn entry(&self, c: usize) -> SvgpEntry {
        let (p, d, m) = (self.hyp.len(), self.hyp.n_dims(), self.m);
        if c < p {
            let (t, k) = self.hyp.coordinate(c);
            return SvgpEntry::Hyper(t, k);
        }
        let c = c - p;
        if c < m * d {
            return SvgpEntry::Z(c / d, c % d);
        }
        let c = c - m * d;
        if c < m {
            return SvgpEntry::QMu(c);
        }
        // Row i of the lower triangle starts at i (i + 1) / 2.
        let c = c - m;
        let mut i = ((((8 * c + 1) as f64).sqrt() - 1.0) / 2.0) as usize;
        while i * (i + 1) / 2 > c {
            i -= 1;
        }
        while (i + 1) * (i + 2) / 2 <= c {
            i += 1;
        }
        SvgpEntry::QSqrt(i, c - i * (i + 1) / 2)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn coordinates_and_indices_agree() {
        for kernel in Kernel::ALL {
            let l = Layout::new(kernel, 3);
            assert_eq!(l.len(), if kernel == Kernel::Rq { 7 } else { 6 });
            for c in 0..l.len() {
                let (t, k) = l.coordinate(c);
                assert_eq!(l.index(t, k), c);
                assert!(l.has(t));
            }
            let mut h = Hyperparameters::broadcast(2, &[1.0, 2.0, 3.0], 4.0, 5.0, 6.0).with_kernel(kernel);
            let theta: Vec<f64> = (0..l.len()).map(|c| 10.0 + c as f64).collect();
            l.write(&mut h, 1, &theta);
            assert_eq!(l.read(&h, 1), theta);
            assert_eq!(l.read(&h, 0)[..3], [1.0, 2.0, 3.0]);
        }
    }

    #[test]
    fn svgp_entries_cover_the_vector_once() {
        let l = SvgpLayout::new(Kernel::Rq, 2, 4);
        assert_eq!(l.len(), 6 + 8 + 4 + 10);
        let entries: Vec<SvgpEntry> = (0..l.len()).map(|c| l.entry(c)).collect();
        assert_eq!(entries[6], SvgpEntry::Z(0, 0));
        assert_eq!(entries[13], SvgpEntry::Z(3, 1));
        assert_eq!(entries[14], SvgpEntry::QMu(0));
        let q: Vec<(usize, usize)> =
            entries.iter().filter_map(|e| if let SvgpEntry::QSqrt(i, j) = e { Some((*i, *j)) } else { None }).collect();
        let want: Vec<(usize, usize)> = (0..4).flat_map(|i| (0..=i).map(move |j| (i, j))).collect();
        assert_eq!(q, want);
    }
}
