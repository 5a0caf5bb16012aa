//! The command line's .npz files (DESIGN.md section 7): arrays may be stored as f64, f32 or
//! (for the mask) integers or booleans; everything is read as f64 and written as f64.

use crate::data::{Dataset, Hyperparameters, Inputs};
use crate::error::{Error, Result};
use ndarray::{Array1, Array2, Array3, ArrayD, Ix1, Ix2, Ix3, IxDyn, OwnedRepr};
use ndarray_npy::{NpzReader, NpzWriter};
use std::fs::File;

/// An open .npz file.
pub struct Npz {
    reader: NpzReader<File>,
    names: Vec<String>,
    path: String,
}

impl Npz {
    /// Opens `path`.
    ///
    /// # Errors
    /// [`Error::Io`] when it cannot be opened or is not an .npz archive.
    pub fn open(path: &str) -> Result<Self> {
        let io = |reason: String| Error::Io { path: path.to_string(), reason };
        let file = File::open(path).map_err(|e| io(e.to_string()))?;
        let mut reader = NpzReader::new(file).map_err(|e| io(format!("not a readable .npz file: {e}")))?;
        let names = reader.names().map_err(|e| io(e.to_string()))?;
        Ok(Npz { reader, names, path: path.to_string() })
    }

    /// Whether the file holds an array `name`.
    pub fn has(&self, name: &str) -> bool {
        self.names.iter().any(|n| n == name)
    }

    /// Reads array `name` as f64, whatever its stored numeric type; None when absent.
    ///
    /// # Errors
    /// [`Error::Io`] when it is present but not numeric.
    pub fn get_opt(&mut self, name: &str) -> Result<Option<ArrayD<f64>>> {
        if !self.has(name) {
            return Ok(None);
        }
        macro_rules! attempt {
            ($t:ty, $conv:expr) => {
                if let Ok(a) = self.reader.by_name::<OwnedRepr<$t>, IxDyn>(name) {
                    return Ok(Some(a.mapv($conv)));
                }
            };
        }
        attempt!(f64, |v| v);
        attempt!(f32, |v| v as f64);
        attempt!(i64, |v| v as f64);
        attempt!(i32, |v| v as f64);
        attempt!(u8, |v| v as f64);
        attempt!(i8, |v| v as f64);
        attempt!(bool, |v| if v { 1.0 } else { 0.0 });
        Err(Error::Io {
            path: self.path.clone(),
            reason: format!("array `{name}` is not stored as f64, f32, an integer type or bool"),
        })
    }

    /// Reads array `name` as f64.
    ///
    /// # Errors
    /// [`Error::Missing`] naming the array and the file when it is absent.
    pub fn get(&mut self, name: &str) -> Result<ArrayD<f64>> {
        self.get_opt(name)?.ok_or_else(|| Error::Missing { array: name.into(), context: format!(" in {}", self.path) })
    }
}

fn dim<D: ndarray::Dimension>(a: ArrayD<f64>, name: &str, expected: &str) -> Result<ndarray::Array<f64, D>> {
    let shape = a.shape().to_vec();
    a.into_dimensionality::<D>().map_err(|_| Error::shape(name, expected, &shape))
}

/// Reads a data file: x (B, N, D) or (N, D), y (B, N), optional mask (B, N).
///
/// # Errors
/// Missing arrays, shapes that disagree, non-finite values outside the mask.
pub fn read_data(path: &str) -> Result<Dataset> {
    let mut f = Npz::open(path)?;
    let x = f.get("x")?;
    let y: Array2<f64> = dim::<Ix2>(f.get("y")?, "y", "(B, N)")?;
    let x = match x.ndim() {
        2 => Inputs::Shared(dim::<Ix2>(x, "x", "(B, N, D) or (N, D)")?),
        3 => Inputs::Batched(dim::<Ix3>(x, "x", "(B, N, D) or (N, D)")?),
        _ => return Err(Error::shape("x", "(B, N, D) or (N, D)", x.shape())),
    };
    let mask = match f.get_opt("mask")? {
        Some(m) => Some(Dataset::mask_from_numbers(&dim::<Ix2>(m, "mask", "(B, N)")?)?),
        None => None,
    };
    Dataset::with_mask(x, y, mask)
}

/// Reads test inputs: x (M, D) or (B, M, D).
pub fn read_test(path: &str) -> Result<Inputs> {
    let mut f = Npz::open(path)?;
    let x = f.get("x")?;
    match x.ndim() {
        2 => Ok(Inputs::Shared(dim::<Ix2>(x, "test x", "(M, D) or (B, M, D)")?)),
        3 => Ok(Inputs::Batched(dim::<Ix3>(x, "test x", "(M, D) or (B, M, D)")?)),
        _ => Err(Error::shape("test x", "(M, D) or (B, M, D)", x.shape())),
    }
}

/// Reads hyperparameters in log form: log_lengthscale (B, D), log_outputscale (B,),
/// log_noise (B,), mean (B,), and checks them against (B, D).
pub fn read_params(path: &str, b: usize, d: usize) -> Result<Hyperparameters> {
    let mut f = Npz::open(path)?;
    let ll: Array2<f64> = dim::<Ix2>(f.get("log_lengthscale")?, "log_lengthscale", &format!("({b}, {d})"))?;
    let mut one = |name: &str| -> Result<Array1<f64>> { dim::<Ix1>(f.get(name)?, name, &format!("({b},)")) };
    let (lo, ln, mean) = (one("log_outputscale")?, one("log_noise")?, one("mean")?);
    if ll.dim() != (b, d) {
        return Err(Error::shape("log_lengthscale", format!("({b}, {d})"), ll.shape()));
    }
    for (name, a) in [("log_outputscale", &lo), ("log_noise", &ln), ("mean", &mean)] {
        if a.len() != b {
            return Err(Error::shape(name, format!("({b},)"), a.shape()));
        }
    }
    if let Some(((m, k), v)) = ll.indexed_iter().find(|(_, v)| v.is_nan()) {
        return Err(Error::NonFinite { array: "log_lengthscale".into(), member: m, index: k, value: *v });
    }
    for (name, a) in [("log_outputscale", &lo), ("log_noise", &ln)] {
        if let Some((m, v)) = a.indexed_iter().find(|(_, v)| v.is_nan()) {
            return Err(Error::NonFinite { array: name.into(), member: m, index: 0, value: *v });
        }
    }
    let h = Hyperparameters::from_log(&ll, &lo, &ln, &mean);
    h.validate(b, d)?;
    Ok(h)
}

/// Arrays to write into one .npz file, in order.
#[derive(Default)]
pub struct NpzOut {
    arrays: Vec<(String, ArrayD<f64>)>,
}

impl NpzOut {
    pub fn new() -> Self {
        NpzOut::default()
    }
    pub fn add1(&mut self, name: &str, a: Array1<f64>) -> &mut Self {
        self.arrays.push((name.into(), a.into_dyn()));
        self
    }
    pub fn add2(&mut self, name: &str, a: Array2<f64>) -> &mut Self {
        self.arrays.push((name.into(), a.into_dyn()));
        self
    }
    pub fn add3(&mut self, name: &str, a: Array3<f64>) -> &mut Self {
        self.arrays.push((name.into(), a.into_dyn()));
        self
    }
    /// Adds the log form of hyperparameters: log_lengthscale, log_outputscale, log_noise, mean.
    pub fn add_params(&mut self, h: &Hyperparameters) -> &mut Self {
        self.add2("log_lengthscale", h.lengthscale.mapv(f64::ln));
        self.add1("log_outputscale", h.outputscale.mapv(f64::ln));
        self.add1("log_noise", h.noise.mapv(f64::ln));
        self.add1("mean", h.mean.clone())
    }
    /// Writes the file.
    pub fn write(&self, path: &str) -> Result<()> {
        let io = |reason: String| Error::Io { path: path.to_string(), reason };
        let file = File::create(path).map_err(|e| io(e.to_string()))?;
        let mut w = NpzWriter::new(file);
        for (name, a) in &self.arrays {
            w.add_array(name.as_str(), a).map_err(|e| io(e.to_string()))?;
        }
        w.finish().map_err(|e| io(e.to_string()))?;
        Ok(())
    }
}

/// Status codes as f64 (the CLI writes every output as f64).
pub fn status_array(s: &[crate::Status]) -> Array1<f64> {
    s.iter().map(|v| v.code() as f64).collect()
}
