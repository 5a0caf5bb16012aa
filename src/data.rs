//! Batch-shaped inputs: the training data of every member and its hyperparameters.
//!
//! Shapes: x is (B, N, D) per member or (N, D) shared by all members; y is (B, N); the optional
//! mask is (B, N) with 1 for an observed point and 0 for padding (DESIGN.md section 3). Masked
//! entries of x and y may hold anything, NaN included.

use crate::error::{Error, Result};
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
            return Err(Error::shape("x", format!("({b}, {n}, D) or ({n}, D) with D >= 1"), &xshape));
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
        Ok(Dataset { x, y, mask })
    }

    /// Builds the mask from numbers (1 observed, 0 padding), as stored in .npz files.
    ///
    /// # Errors
    /// [`Error::NonFinite`] for a value other than 0 or 1, naming (member, index).
    pub fn mask_from_numbers(mask: &Array2<f64>) -> Result<Array2<bool>> {
        for ((bb, i), v) in mask.indexed_iter() {
            if *v != 0.0 && *v != 1.0 {
                return Err(Error::NonFinite {
                    array: "mask (must be 0 or 1)".into(),
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
    /// Whether point i of member b is observed.
    pub fn is_observed(&self, b: usize, i: usize) -> bool {
        self.mask.as_ref().is_none_or(|m| m[[b, i]])
    }
    /// Indices of the observed points of member b, in order.
    pub fn observed(&self, b: usize) -> Vec<usize> {
        (0..self.n_points()).filter(|&i| self.is_observed(b, i)).collect()
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
        }
    }
    /// A copy with y replaced (same shape; used for standardisation).
    pub(crate) fn with_y(&self, y: Array2<f64>) -> Dataset {
        Dataset { x: self.x.clone(), y, mask: self.mask.clone() }
    }
}

/// Arithmetic precision of the computation. Inputs and outputs are f64 either way.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Precision {
    /// Double precision: the default, ~1e-9 relative agreement between backends.
    #[default]
    F64,
    /// Single precision: faster, above all on GPUs; ~1e-4 relative, jitter starts at 1e-6.
    F32,
}

impl std::str::FromStr for Precision {
    type Err = Error;
    fn from_str(s: &str) -> Result<Self> {
        match s {
            "f64" => Ok(Precision::F64),
            "f32" => Ok(Precision::F32),
            _ => Err(Error::option("precision", format!("expected f64 or f32, got `{s}`"))),
        }
    }
}

/// Outcome per member (DESIGN.md section 4), stored as its code in .npz files.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
#[repr(u8)]
pub enum Status {
    /// 0: factorised without added jitter.
    Ok = 0,
    /// 1: factorised after adding jitter (reported per member).
    Jitter = 1,
    /// 2: the optimiser stopped at its iteration limit.
    MaxIter = 2,
    /// 3: not positive definite at the largest jitter, or non-finite values; numbers are NaN.
    Failed = 3,
}

impl Status {
    /// The numeric code written to files.
    pub fn code(self) -> u8 {
        self as u8
    }
    /// From a numeric code; None for an unknown one.
    pub fn from_code(c: u8) -> Option<Status> {
        match c {
            0 => Some(Status::Ok),
            1 => Some(Status::Jitter),
            2 => Some(Status::MaxIter),
            3 => Some(Status::Failed),
            _ => None,
        }
    }
    /// Whether the member's numbers are usable.
    pub fn is_ok(self) -> bool {
        self != Status::Failed
    }
}

/// Hyperparameters of every member, in natural units (not logs).
///
/// lengthscale (B, D) > 0, outputscale (B,) > 0, noise (B,) > 0, mean (B,) finite.
#[derive(Debug, Clone, PartialEq)]
pub struct Hyperparameters {
    pub lengthscale: Array2<f64>,
    pub outputscale: Array1<f64>,
    pub noise: Array1<f64>,
    pub mean: Array1<f64>,
}

impl Hyperparameters {
    /// From the log form used in .npz files: log_lengthscale (B, D), log_outputscale (B,),
    /// log_noise (B,), mean (B,).
    pub fn from_log(
        log_lengthscale: &Array2<f64>,
        log_outputscale: &Array1<f64>,
        log_noise: &Array1<f64>,
        mean: &Array1<f64>,
    ) -> Self {
        Hyperparameters {
            lengthscale: log_lengthscale.mapv(f64::exp),
            outputscale: log_outputscale.mapv(f64::exp),
            noise: log_noise.mapv(f64::exp),
            mean: mean.clone(),
        }
    }

    /// The same values for every member: lengthscale (D,), scalars for the rest.
    pub fn broadcast(b: usize, lengthscale: &[f64], outputscale: f64, noise: f64, mean: f64) -> Self {
        let d = lengthscale.len();
        Hyperparameters {
            lengthscale: Array2::from_shape_fn((b, d), |(_, k)| lengthscale[k]),
            outputscale: Array1::from_elem(b, outputscale),
            noise: Array1::from_elem(b, noise),
            mean: Array1::from_elem(b, mean),
        }
    }

    /// B.
    pub fn batch_size(&self) -> usize {
        self.outputscale.len()
    }
    /// D.
    pub fn n_dims(&self) -> usize {
        self.lengthscale.ncols()
    }

    /// Checks shapes against (B, D) and domains: lengthscale, outputscale, noise > 0, mean not
    /// NaN. An infinite value (exp(800), say) is not rejected: it makes that member fail with
    /// status 3 while the others go on.
    ///
    /// # Errors
    /// [`Error::Shape`] or [`Error::InvalidHyperparameter`] naming (member, index).
    pub fn validate(&self, b: usize, d: usize) -> Result<()> {
        if self.lengthscale.dim() != (b, d) {
            return Err(Error::shape("lengthscale", format!("({b}, {d})"), self.lengthscale.shape()));
        }
        for (name, a) in [("outputscale", &self.outputscale), ("noise", &self.noise), ("mean", &self.mean)] {
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
            if v.is_nan() || *v <= 0.0 {
                return Err(bad("lengthscale", "> 0", m, k, *v));
            }
        }
        for (name, a) in [("outputscale", &self.outputscale), ("noise", &self.noise)] {
            for (m, v) in a.iter().enumerate() {
                if v.is_nan() || *v <= 0.0 {
                    return Err(bad(name, "> 0", m, 0, *v));
                }
            }
        }
        for (m, v) in self.mean.iter().enumerate() {
            if v.is_nan() {
                return Err(bad("mean", "a number", m, 0, *v));
            }
        }
        Ok(())
    }

    /// The members listed in `rows`, in that order (repeats allowed).
    pub fn select(&self, rows: &[usize]) -> Hyperparameters {
        Hyperparameters {
            lengthscale: self.lengthscale.select(Axis(0), rows),
            outputscale: self.outputscale.select(Axis(0), rows),
            noise: self.noise.select(Axis(0), rows),
            mean: self.mean.select(Axis(0), rows),
        }
    }
}
