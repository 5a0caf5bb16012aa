//! Batch-shaped inputs: the training data of every member and its hyperparameters.
//!
//! Shapes: x is (B, N, D) per member or (N, D) shared by all members; y is (B, N); the optional
//! mask is (B, N) with 1 for an observed point and 0 for padding (docs/design.md section 3). Masked
//! entries of x and y may hold anything, NaN included.

use crate::error::{Error, Result};
use crate::kernel::Kernel;
pub use crate::precision::{Precision, Status};
use crate::target::Target;
use ndarray::{Array1, Array2, Array3, ArrayView1, ArrayView2, Axis};

/// Training or test inputs: one set shared by all members, or one set per member.
#[derive(Debug, Clone, PartialEq)]
pub enum Inputs {
    /// (N, D), the same points for every member.
    Shared(Array2<f64>),
    /// (B, N, D), each member its own points.
    Batched(Array3<f64>),
}

impl From<Array2<f64>> for Inputs {
    fn from(x: Array2<f64>) -> Self {
        Inputs::Shared(x)
    }
}
impl From<Array3<f64>> for Inputs {
    fn from(x: Array3<f64>) -> Self {
        Inputs::Batched(x)
    }
}

impl Inputs {
    /// Number of points N.
    pub fn n_points(&self) -> usize {
        match self {
            Inputs::Shared(x) => x.nrows(),
            Inputs::Batched(x) => x.shape()[1],
        }
    }
    /// Number of input dimensions D.
    pub fn n_dims(&self) -> usize {
        match self {
            Inputs::Shared(x) => x.ncols(),
            Inputs::Batched(x) => x.shape()[2],
        }
    }
    /// Members this array is for: `None` when shared.
    pub fn batch_size(&self) -> Option<usize> {
        match self {
            Inputs::Shared(_) => None,
            Inputs::Batched(x) => Some(x.shape()[0]),
        }
    }
    /// The (N, D) points of member `b`.
    pub fn member(&self, b: usize) -> ArrayView2<'_, f64> {
        match self {
            Inputs::Shared(x) => x.view(),
            Inputs::Batched(x) => x.index_axis(Axis(0), b),
        }
    }
    /// Copies the members listed in `rows` (a no-op copy for shared inputs).
    pub fn select(&self, rows: &[usize]) -> Inputs {
        match self {
            Inputs::Shared(x) => Inputs::Shared(x.clone()),
            Inputs::Batched(x) => Inputs::Batched(x.select(Axis(0), rows)),
        }
    }
    /// Checks the shape against B (when batched) and D, and that every value is finite.
    pub fn validate_test(&self, array: &str, b: usize, d: usize) -> Result<()> {
        let shape = match self {
            Inputs::Shared(x) => x.shape().to_vec(),
            Inputs::Batched(x) => x.shape().to_vec(),
        };
        let ok = match self {
            Inputs::Shared(x) => x.ncols() == d,
            Inputs::Batched(x) => x.shape()[0] == b && x.shape()[2] == d,
        };
        if !ok {
            return Err(Error::shape(array, format!("(M, {d}) or ({b}, M, {d})"), &shape));
        }
        for bb in 0..self.batch_size().unwrap_or(1) {
            for (i, row) in self.member(bb).outer_iter().enumerate() {
                if let Some(v) = row.iter().find(|v| !v.is_finite()) {
                    return Err(Error::NonFinite { array: array.into(), member: bb, index: i, value: *v });
                }
            }
        }
        Ok(())
    }
}

/// Training data of a batch of B GPs, validated once at construction.
#[derive(Debug, Clone)]
pub struct Dataset {
    x: Inputs,
    y: Array2<f64>,
    mask: Option<Array2<bool>>,
    /// Known noise variance per point (B, N), added to the learned noise on the diagonal.
    yvar: Option<Array2<f64>>,
    /// Identifies the contents: a fresh number whenever a dataset is built or changed (clones
    /// share it, as they share the contents), so a backend can keep what it derived from the
    /// data (the CUDA backend's device copies) across calls.
    id: u64,
}

/// A fresh [`Dataset`] id.
fn next_id() -> u64 {
    static NEXT: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(1);
    NEXT.fetch_add(1, std::sync::atomic::Ordering::Relaxed)
}

impl Dataset {
    /// Builds a dataset from x ((B, N, D) or (N, D)) and y (B, N), every point observed.
    ///
    /// # Errors
    /// [`Error::Shape`] when x and y disagree on B or N, or D = 0;
    /// [`Error::NonFinite`] naming (member, index) for NaN or infinity in x or y.
    pub fn new(x: impl Into<Inputs>, y: Array2<f64>) -> Result<Self> {
        Self::with_mask(x, y, None)
    }

    /// As [`Dataset::new`], with an optional mask (B, N): true (or 1) marks an observed point.
    /// Masked entries of x and y are never read, so they may hold NaN.
    pub fn with_mask(x: impl Into<Inputs>, y: Array2<f64>, mask: Option<Array2<bool>>) -> Result<Self> {
        let x = x.into();
        let (b, n) = y.dim();
        let xshape = match &x {
            Inputs::Shared(a) => a.shape().to_vec(),
            Inputs::Batched(a) => a.shape().to_vec(),
        };
        let d = x.n_dims();
        if b == 0 || n == 0 {
            return Err(Error::shape("y", "(B, N) with B >= 1 and N >= 1", &[b, n]));
        }
        let x_ok = match &x {
            Inputs::Shared(a) => a.nrows() == n,
            Inputs::Batched(a) => a.shape()[0] == b && a.shape()[1] == n,
        };
        if !x_ok || d == 0 {
            return Err(Error::shape(
                "x",
                format!("({b}, {n}, D) or ({n}, D) with D >= 1, to match y of shape ({b}, {n})"),
                &xshape,
            ));
        }
        if let Some(m) = &mask {
            if m.dim() != (b, n) {
                return Err(Error::shape("mask", format!("({b}, {n})"), m.shape()));
            }
        }
        let observed = |bb: usize, i: usize| mask.as_ref().is_none_or(|m| m[[bb, i]]);
        for bb in 0..b {
            for i in 0..n {
                if !observed(bb, i) {
                    continue;
                }
                let v = y[[bb, i]];
                if !v.is_finite() {
                    return Err(Error::NonFinite { array: "y".into(), member: bb, index: i, value: v });
                }
                if let Some(v) = x.member(bb).row(i).iter().find(|v| !v.is_finite()) {
                    return Err(Error::NonFinite { array: "x".into(), member: bb, index: i, value: *v });
                }
            }
        }
        Ok(Dataset { x, y, mask, yvar: None, id: next_id() })
    }

    /// Adds known noise variances `yvar` (B, N), >= 0 at every observed point (masked entries
    /// are never read): K = Kf + diag(noise + yvar_i + jitter) (docs/design.md section 10).
    /// Fixing the learned noise (at a tiny value) gives the fixed-noise GP of BoTorch.
    ///
    /// # Errors
    /// [`Error::Shape`] when yvar is not (B, N); [`Error::InvalidHyperparameter`] naming
    /// (member, index) for a negative or non-finite observed entry.
    pub fn with_yvar(mut self, yvar: Array2<f64>) -> Result<Self> {
        if yvar.dim() != self.y.dim() {
            return Err(Error::shape("yvar", format!("{:?}", self.y.dim()), yvar.shape()));
        }
        for ((b, i), v) in yvar.indexed_iter() {
            if self.is_observed(b, i) && !(v.is_finite() && *v >= 0.0) {
                return Err(Error::InvalidHyperparameter {
                    name: "yvar".into(),
                    requirement: "finite and >= 0".into(),
                    member: b,
                    index: i,
                    value: *v,
                });
            }
        }
        self.yvar = Some(yvar);
        self.id = next_id();
        Ok(self)
    }

    /// Builds the mask from numbers (1 observed, 0 padding), as stored in .npz files.
    ///
    /// # Errors
    /// [`Error::InvalidHyperparameter`] naming `mask` and (member, index) for a value other
    /// than 0 or 1 ("mask must be 0 (padding) or 1 (observed), got 2 at ...").
    pub fn mask_from_numbers(mask: &Array2<f64>) -> Result<Array2<bool>> {
        for ((bb, i), v) in mask.indexed_iter() {
            if *v != 0.0 && *v != 1.0 {
                return Err(Error::InvalidHyperparameter {
                    name: "mask".into(),
                    requirement: "0 (padding) or 1 (observed)".into(),
                    member: bb,
                    index: i,
                    value: *v,
                });
            }
        }
        Ok(mask.mapv(|v| v == 1.0))
    }

    /// B, the number of members.
    pub fn batch_size(&self) -> usize {
        self.y.nrows()
    }
    /// N, the padded number of points per member.
    pub fn n_points(&self) -> usize {
        self.y.ncols()
    }
    /// D, the number of input dimensions.
    pub fn n_dims(&self) -> usize {
        self.x.n_dims()
    }
    /// The inputs, shared or per member.
    pub fn x(&self) -> &Inputs {
        &self.x
    }
    /// y (B, N).
    pub fn y(&self) -> &Array2<f64> {
        &self.y
    }
    /// The mask (B, N), if any.
    pub fn mask(&self) -> Option<&Array2<bool>> {
        self.mask.as_ref()
    }
    /// The known noise variances (B, N), if any.
    pub fn yvar(&self) -> Option<&Array2<f64>> {
        self.yvar.as_ref()
    }
    /// Known noise variance of point i of member b (0 without yvar).
    pub fn yvar_at(&self, b: usize, i: usize) -> f64 {
        self.yvar.as_ref().map_or(0.0, |v| v[[b, i]])
    }
    /// Whether point i of member b is observed.
    pub fn is_observed(&self, b: usize, i: usize) -> bool {
        self.mask.as_ref().is_none_or(|m| m[[b, i]])
    }
    /// Indices of the observed points of member b, in order.
    pub fn observed(&self, b: usize) -> Vec<usize> {
        match &self.mask {
            None => (0..self.n_points()).collect(),
            Some(m) => m.row(b).iter().enumerate().filter_map(|(i, &v)| v.then_some(i)).collect(),
        }
    }
    /// n_b, the number of observed points of member b.
    pub fn n_observed(&self, b: usize) -> usize {
        match &self.mask {
            None => self.n_points(),
            Some(m) => m.row(b).iter().filter(|&&v| v).count(),
        }
    }
    /// y of member b (N,), padding included.
    pub fn y_member(&self, b: usize) -> ArrayView1<'_, f64> {
        self.y.row(b)
    }
    /// Mean and (population) variance of the observed y of member b: (0, 0) when it has no point.
    pub fn y_moments(&self, b: usize) -> (f64, f64) {
        let obs = self.observed(b);
        if obs.is_empty() {
            return (0.0, 0.0);
        }
        let n = obs.len() as f64;
        let mean = obs.iter().map(|&i| self.y[[b, i]]).sum::<f64>() / n;
        let var = obs.iter().map(|&i| (self.y[[b, i]] - mean).powi(2)).sum::<f64>() / n;
        (mean, var)
    }
    /// Standard deviation per dimension of the observed x of member b (D,).
    pub fn x_std(&self, b: usize) -> Array1<f64> {
        let obs = self.observed(b);
        let xb = self.x.member(b);
        let d = self.n_dims();
        let mut out = Array1::zeros(d);
        if obs.is_empty() {
            return out;
        }
        let n = obs.len() as f64;
        for k in 0..d {
            let mean = obs.iter().map(|&i| xb[[i, k]]).sum::<f64>() / n;
            out[k] = (obs.iter().map(|&i| (xb[[i, k]] - mean).powi(2)).sum::<f64>() / n).sqrt();
        }
        out
    }
    /// A dataset of the members listed in `rows` (repeats allowed: used for restarts).
    pub fn select(&self, rows: &[usize]) -> Dataset {
        Dataset {
            x: self.x.select(rows),
            y: self.y.select(Axis(0), rows),
            mask: self.mask.as_ref().map(|m| m.select(Axis(0), rows)),
            yvar: self.yvar.as_ref().map(|v| v.select(Axis(0), rows)),
            id: next_id(),
        }
    }
    /// A copy with x, y and yvar replaced (same shapes; used to fit in internal units).
    pub(crate) fn with_values(&self, x: Inputs, y: Array2<f64>, yvar: Option<Array2<f64>>) -> Dataset {
        Dataset { x, y, mask: self.mask.clone(), yvar, id: next_id() }
    }
    /// The id of the contents (see the field): equal ids, equal contents.
    pub(crate) fn id(&self) -> u64 {
        self.id
    }
}

/// Hyperparameters of every member, in natural units (not logs), with the kernel they are for.
///
/// lengthscale (B, D) > 0, outputscale (B,) > 0, noise (B,) > 0, mean (B,) finite, and for the
/// rq kernel alpha (B,) > 0 (absent for every other kernel).
#[derive(Debug, Clone, PartialEq)]
pub struct Hyperparameters {
    pub kernel: Kernel,
    pub lengthscale: Array2<f64>,
    pub outputscale: Array1<f64>,
    pub noise: Array1<f64>,
    pub mean: Array1<f64>,
    /// (B,) rq's shape parameter; None for the other kernels.
    pub alpha: Option<Array1<f64>>,
}

impl Hyperparameters {
    /// From the log form used in .npz files: log_lengthscale (B, D), log_outputscale (B,),
    /// log_noise (B,), mean (B,); rbf kernel (see [`Hyperparameters::with_kernel`]).
    pub fn from_log(
        log_lengthscale: &Array2<f64>,
        log_outputscale: &Array1<f64>,
        log_noise: &Array1<f64>,
        mean: &Array1<f64>,
    ) -> Self {
        Hyperparameters {
            kernel: Kernel::Rbf,
            lengthscale: log_lengthscale.mapv(f64::exp),
            outputscale: log_outputscale.mapv(f64::exp),
            noise: log_noise.mapv(f64::exp),
            mean: mean.clone(),
            alpha: None,
        }
    }

    /// The same values for every member: lengthscale (D,), scalars for the rest; rbf kernel.
    pub fn broadcast(b: usize, lengthscale: &[f64], outputscale: f64, noise: f64, mean: f64) -> Self {
        let d = lengthscale.len();
        Hyperparameters {
            kernel: Kernel::Rbf,
            lengthscale: Array2::from_shape_fn((b, d), |(_, k)| lengthscale[k]),
            outputscale: Array1::from_elem(b, outputscale),
            noise: Array1::from_elem(b, noise),
            mean: Array1::from_elem(b, mean),
            alpha: None,
        }
    }

    /// The same values for another kernel. Switching to rq without alpha sets alpha = 1 for
    /// every member; switching away from rq drops alpha.
    pub fn with_kernel(mut self, kernel: Kernel) -> Self {
        self.kernel = kernel;
        if !kernel.has_alpha() {
            self.alpha = None;
        } else if self.alpha.is_none() {
            self.alpha = Some(Array1::ones(self.batch_size()));
        }
        self
    }

    /// Sets rq's alpha (B,) (and the kernel to rq).
    pub fn with_alpha(mut self, alpha: Array1<f64>) -> Self {
        self.kernel = Kernel::Rq;
        self.alpha = Some(alpha);
        self
    }

    /// B.
    pub fn batch_size(&self) -> usize {
        self.outputscale.len()
    }
    /// D.
    pub fn n_dims(&self) -> usize {
        self.lengthscale.ncols()
    }
    /// rq's alpha of member b (1 for the other kernels, which do not read it).
    pub fn alpha_of(&self, b: usize) -> f64 {
        self.alpha.as_ref().map_or(1.0, |a| a[b])
    }

    /// The natural value of hyperparameter `t` of member `m` (index `k` for lengthscales).
    pub fn get(&self, t: Target, m: usize, k: usize) -> f64 {
        match t {
            Target::Lengthscale => self.lengthscale[[m, k]],
            Target::Outputscale => self.outputscale[m],
            Target::Noise => self.noise[m],
            Target::Mean => self.mean[m],
            Target::Alpha => self.alpha_of(m),
        }
    }

    /// Sets hyperparameter `t` of member `m` (index `k` for lengthscales). Setting alpha on a
    /// kernel without it does nothing.
    pub fn set(&mut self, t: Target, m: usize, k: usize, v: f64) {
        match t {
            Target::Lengthscale => self.lengthscale[[m, k]] = v,
            Target::Outputscale => self.outputscale[m] = v,
            Target::Noise => self.noise[m] = v,
            Target::Mean => self.mean[m] = v,
            Target::Alpha => {
                if let Some(a) = self.alpha.as_mut() {
                    a[m] = v
                }
            }
        }
    }

    /// Whether every hyperparameter of member `m` is NaN: how a fit reports a member that
    /// failed or was empty. Such a member is accepted everywhere and gets status Failed.
    pub fn is_failed(&self, m: usize) -> bool {
        self.lengthscale.row(m).iter().all(|v| v.is_nan())
            && self.outputscale[m].is_nan()
            && self.noise[m].is_nan()
            && self.mean[m].is_nan()
            && self.alpha.as_ref().is_none_or(|a| a[m].is_nan())
    }

    /// Checks shapes against (B, D) and domains: lengthscale, outputscale, noise, alpha > 0,
    /// mean not NaN; alpha present exactly when the kernel has it. A member whose values are
    /// all NaN (a failed member of a fit) is accepted: every backend reports it as failed. An infinite value (exp(800),
    /// say) is not rejected: it makes that member fail with status 3 while the others go on.
    ///
    /// # Errors
    /// [`Error::Shape`], [`Error::Missing`] (alpha for rq) or [`Error::InvalidHyperparameter`]
    /// naming (member, index).
    pub fn validate(&self, b: usize, d: usize) -> Result<()> {
        if self.lengthscale.dim() != (b, d) {
            return Err(Error::shape("lengthscale", format!("({b}, {d})"), self.lengthscale.shape()));
        }
        match (&self.alpha, self.kernel.has_alpha()) {
            (None, true) => {
                return Err(Error::Missing { array: "alpha".into(), context: " (the rq kernel needs it)".into() })
            }
            (Some(_), false) => {
                return Err(Error::option("alpha", format!("given for the {} kernel, which has none", self.kernel)))
            }
            _ => {}
        }
        let mut vectors = vec![("outputscale", &self.outputscale), ("noise", &self.noise), ("mean", &self.mean)];
        if let Some(a) = &self.alpha {
            vectors.push(("alpha", a));
        }
        for (name, a) in &vectors {
            if a.len() != b {
                return Err(Error::shape(name, format!("({b},)"), a.shape()));
            }
        }
        let bad = |name: &str, req: &str, member, index, value| Error::InvalidHyperparameter {
            name: name.into(),
            requirement: req.into(),
            member,
            index,
            value,
        };
        for ((m, k), v) in self.lengthscale.indexed_iter() {
            if (v.is_nan() || *v <= 0.0) && !self.is_failed(m) {
                return Err(bad("lengthscale", "> 0", m, k, *v));
            }
        }
        for (name, a) in &vectors {
            for (m, v) in a.iter().enumerate().filter(|(m, _)| !self.is_failed(*m)) {
                if *name == "mean" {
                    if v.is_nan() {
                        return Err(bad(name, "a number", m, 0, *v));
                    }
                } else if v.is_nan() || *v <= 0.0 {
                    return Err(bad(name, "> 0", m, 0, *v));
                }
            }
        }
        Ok(())
    }

    /// The members listed in `rows`, in that order (repeats allowed).
    pub fn select(&self, rows: &[usize]) -> Hyperparameters {
        Hyperparameters {
            kernel: self.kernel,
            lengthscale: self.lengthscale.select(Axis(0), rows),
            outputscale: self.outputscale.select(Axis(0), rows),
            noise: self.noise.select(Axis(0), rows),
            mean: self.mean.select(Axis(0), rows),
            alpha: self.alpha.as_ref().map(|a| a.select(Axis(0), rows)),
        }
    }
}
