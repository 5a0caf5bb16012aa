//! Member preparation and the status rules that both backends share, so that a member gives
//! the same numbers and the same status on the CPU and on the GPU.
//!
//! - Points: only observed points enter the arithmetic. Every member's x is centred on the mean
//!   of its observed points (per dimension) before distances are formed, so that an offset
//!   (timestamps, coordinates) costs no precision in f32; distances do not change.
//! - Residuals r_i = y_i - m and the diagonal extras yvar_i are taken in f64.
//! - [`precheck`]: a member with no observed point is [`Status::Empty`]; one whose scalars are
//!   not finite is [`Status::Failed`]; neither reaches a kernel.
//! - [`finite_or_failed`]: a member whose results are not all finite is [`Status::Failed`].
//! - The jitter policy's mean diagonal is s + noise + mean(yvar) ([`MemberView::mean_diag`]).

use crate::data::{Dataset, Hyperparameters, Status};
use ndarray::{ArrayView1, ArrayView2};

/// One member of a batch, ready to be loaded into a backend's layout. Its rows of x, y and
/// yvar are viewed once, so that loading a small member costs no more than reading it.
pub(crate) struct MemberView<'a> {
    hyp: &'a Hyperparameters,
    /// The hyperparameter row (may differ from the data row when members are selected).
    b: usize,
    xb: ArrayView2<'a, f64>,
    yb: ArrayView1<'a, f64>,
    yvar: Option<ArrayView1<'a, f64>>,
    mean: f64,
    /// Observed indices into the padded N points; None when every point is observed (no
    /// list is built for an unmasked member).
    obs: Option<Vec<usize>>,
    /// n_b.
    n: usize,
    /// Mean of the observed x per dimension (D,).
    centre: Vec<f64>,
}

impl<'a> MemberView<'a> {
    /// Member `b` of `data` with the hyperparameters of row `b` of `hyp`.
    pub fn new(data: &'a Dataset, hyp: &'a Hyperparameters, b: usize) -> Self {
        let obs = data.mask().map(|_| data.observed(b));
        let n = obs.as_ref().map_or(data.n_points(), Vec::len);
        let d = data.n_dims();
        let xb = data.x().member(b);
        let mut centre = vec![0.0; d];
        if n > 0 {
            match xb.as_slice() {
                // Contiguous rows, all observed (the usual case): one pass over the array.
                Some(flat) if obs.is_none() => {
                    for row in flat.chunks_exact(d) {
                        for (c, v) in centre.iter_mut().zip(row) {
                            *c += v;
                        }
                    }
                }
                // Contiguous rows: one pass over the observed rows.
                Some(flat) => {
                    for i in Observed::of(obs.as_deref(), n) {
                        for (c, v) in centre.iter_mut().zip(&flat[i * d..(i + 1) * d]) {
                            *c += v;
                        }
                    }
                }
                None => {
                    for i in Observed::of(obs.as_deref(), n) {
                        for (k, c) in centre.iter_mut().enumerate() {
                            *c += xb[[i, k]];
                        }
                    }
                }
            }
            let inv = 1.0 / n as f64;
            centre.iter_mut().for_each(|c| *c *= inv);
        }
        MemberView {
            hyp,
            b,
            xb,
            yb: data.y().row(b),
            yvar: data.yvar().map(|v| v.row(b)),
            mean: hyp.mean[b],
            obs,
            n,
            centre,
        }
    }
    /// n_b, the observed points.
    pub fn n(&self) -> usize {
        self.n
    }
    /// The observed indices into the padded points, in order.
    pub fn observed(&self) -> Observed<'_> {
        Observed::of(self.obs.as_deref(), self.n)
    }
    /// The centre subtracted from every point (D,).
    pub fn centre(&self) -> &[f64] {
        &self.centre
    }
    /// Centred x of padded point `i`, dimension `k`.
    #[inline]
    pub fn x(&self, i: usize, k: usize) -> f64 {
        self.xb[[i, k]] - self.centre[k]
    }
    /// The uncentred padded points (N, D) as one row-major slice, when contiguous in memory.
    #[inline]
    pub fn raw_rows(&self) -> Option<&[f64]> {
        self.xb.as_slice()
    }
    /// Residual y_i - m of padded point `i`.
    #[inline]
    pub fn residual(&self, i: usize) -> f64 {
        self.yb[i] - self.mean
    }
    /// Known noise variance of padded point `i` (0 without yvar).
    #[inline]
    pub fn yvar(&self, i: usize) -> f64 {
        self.yvar.map_or(0.0, |v| v[i])
    }
    /// Whether the data carries known noise.
    pub fn has_yvar(&self) -> bool {
        self.yvar.is_some()
    }
    /// s + noise + mean of the observed yvar: the scale of the jitter policy.
    pub fn mean_diag(&self) -> f64 {
        let yv = if self.has_yvar() && self.n > 0 {
            self.observed().map(|i| self.yvar(i)).sum::<f64>() / self.n as f64
        } else {
            0.0
        };
        self.hyp.outputscale[self.b] + self.hyp.noise[self.b] + yv
    }
    /// The outputscale of the member.
    pub fn outputscale(&self) -> f64 {
        self.hyp.outputscale[self.b]
    }
    /// The constant mean of the member.
    pub fn mean(&self) -> f64 {
        self.hyp.mean[self.b]
    }
    /// The learned noise variance of the member.
    pub fn noise(&self) -> f64 {
        self.hyp.noise[self.b]
    }
    /// The lengthscales of the member (D,).
    pub fn lengthscale(&self) -> ArrayView1<'_, f64> {
        self.hyp.lengthscale.row(self.b)
    }
    /// Points (m, D) centred as the training points are: row i, dimension k.
    pub fn centred(&self, z: ndarray::ArrayView2<f64>, i: usize, k: usize) -> f64 {
        z[[i, k]] - self.centre[k]
    }
}

/// The observed indices of a member, in order: 0..n when unmasked, else its list.
#[derive(Clone)]
pub(crate) enum Observed<'a> {
    All(std::ops::Range<usize>),
    Listed(std::slice::Iter<'a, usize>),
}

impl<'a> Observed<'a> {
    fn of(list: Option<&'a [usize]>, n: usize) -> Self {
        match list {
            Some(l) => Observed::Listed(l.iter()),
            None => Observed::All(0..n),
        }
    }
}

impl Iterator for Observed<'_> {
    type Item = usize;
    #[inline]
    fn next(&mut self) -> Option<usize> {
        match self {
            Observed::All(r) => r.next(),
            Observed::Listed(it) => it.next().copied(),
        }
    }
    fn size_hint(&self) -> (usize, Option<usize>) {
        match self {
            Observed::All(r) => r.size_hint(),
            Observed::Listed(it) => it.size_hint(),
        }
    }
}

impl ExactSizeIterator for Observed<'_> {}

/// The status a member gets before any arithmetic, when it cannot be evaluated: Empty with no
/// observed point, Failed when its outputscale, noise, mean or alpha is not finite or a
/// lengthscale is NaN (a failed member of a fit).
pub(crate) fn precheck(hyp: &Hyperparameters, b: usize, n_observed: usize) -> Option<Status> {
    if n_observed == 0 {
        return Some(Status::Empty);
    }
    let finite = hyp.outputscale[b].is_finite()
        && hyp.lengthscale.row(b).iter().all(|l| !l.is_nan())
        && hyp.noise[b].is_finite()
        && hyp.mean[b].is_finite()
        && hyp.alpha_of(b).is_finite();
    (!finite).then_some(Status::Failed)
}

/// `status` when every value is finite, else Failed.
pub(crate) fn finite_or_failed(status: Status, values: impl IntoIterator<Item = f64>) -> Status {
    if values.into_iter().all(f64::is_finite) {
        status
    } else {
        Status::Failed
    }
}
