//! The command line's .npz files (DESIGN.md section 7): arrays may be stored as f64, f32 or
//! (for the mask) integers or booleans; everything is read as f64 and written as f64.

use crate::data::{Dataset, Hyperparameters, Inputs};
use crate::error::{Error, Result};
use ndarray::{Array1, Array2, Array3, ArrayD, Ix1, Ix2, Ix3};
use ndarray_npy::npy::header::Header;
use ndarray_npy::{NpzWriter, ReadNpyError, ReadNpyExt};
use std::fs::File;
use std::io::Read;
use zip::ZipArchive;

/// An open .npz file.
pub struct Npz {
    zip: ZipArchive<File>,
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
        let zip = ZipArchive::new(file).map_err(|e| io(format!("not a readable .npz file: {e}")))?;
        let names = zip.file_names().map(|n| n.strip_suffix(".npy").unwrap_or(n).to_string()).collect();
        Ok(Npz { zip, names, path: path.to_string() })
    }

    /// Whether the file holds an array `name`.
    pub fn has(&self, name: &str) -> bool {
        self.names.iter().any(|n| n == name)
    }

    /// Reads array `name` as f64, whatever its stored numeric type; None when absent.
    ///
    /// The entry is read into memory first and its .npy header checked against the bytes it
    /// holds, so a header that claims a huge shape is an error, not an allocation of that size.
    ///
    /// # Errors
    /// [`Error::Io`] when it is present but not numeric, or not a well-formed .npy array.
    pub fn get_opt(&mut self, name: &str) -> Result<Option<ArrayD<f64>>> {
        if !self.has(name) {
            return Ok(None);
        }
        let io = |reason: String| Error::Io { path: self.path.clone(), reason: format!("array `{name}`: {reason}") };
        // As ndarray-npy's NpzReader: the entry `name` itself, else `name.npy`.
        let entry = if self.zip.index_for_name(name).is_some() { name.to_string() } else { format!("{name}.npy") };
        let bytes = {
            let mut entry = self.zip.by_name(&entry).map_err(|e| io(e.to_string()))?;
            // Room for the size the entry declares, within what its compressed bytes can hold
            // (deflate expands at most 1032-fold); try_reserve fails rather than aborting.
            let hint = entry.size().min(entry.compressed_size().saturating_mul(1032));
            let mut bytes = Vec::new();
            let _ = bytes.try_reserve_exact(usize::try_from(hint).unwrap_or(0));
            entry.read_to_end(&mut bytes).map_err(|e| io(e.to_string()))?;
            bytes
        };
        check_npy_header(&bytes).map_err(io)?;
        macro_rules! attempt {
            ($t:ty, $conv:expr) => {
                match ArrayD::<$t>::read_npy(bytes.as_slice()) {
                    Ok(a) => return Ok(Some(a.mapv($conv))),
                    Err(ReadNpyError::WrongDescriptor(_)) => {}
                    Err(e) => return Err(io(e.to_string())),
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
        Err(io("not stored as f64, f32, an integer type or bool".into()))
    }

    /// Reads array `name` as f64.
    ///
    /// # Errors
    /// [`Error::Missing`] naming the array and the file, and listing the arrays the file holds
    /// (`np.savez(path, a, b)` without names stores `arr_0`, `arr_1`), when it is absent.
    pub fn get(&mut self, name: &str) -> Result<ArrayD<f64>> {
        match self.get_opt(name)? {
            Some(a) => Ok(a),
            None => {
                let found = if self.names.is_empty() {
                    "no arrays".to_string()
                } else {
                    self.names.iter().map(|n| format!("`{n}`")).collect::<Vec<_>>().join(", ")
                };
                let hint = if self.names.iter().any(|n| n.starts_with("arr_")) {
                    " (np.savez without names stores arr_0, arr_1, ...: save with names, np.savez(path, x=..., y=...))"
                } else {
                    ""
                };
                Err(Error::Missing {
                    array: name.into(),
                    context: format!(" in {}; it holds {found}{hint}", self.path),
                })
            }
        }
    }
}

/// Checks an .npy header against the bytes that follow it before anything is allocated from
/// it: the header length, and a shape whose element count must not exceed the data bytes
/// (every element takes at least one byte). Malformed headers are left to the parser.
fn check_npy_header(bytes: &[u8]) -> std::result::Result<(), String> {
    if bytes.len() < 10 || !bytes.starts_with(b"\x93NUMPY") {
        return Ok(());
    }
    let (header_len, start) = match bytes[6] {
        1 => (u16::from_le_bytes([bytes[8], bytes[9]]) as usize, 10),
        2 | 3 if bytes.len() >= 12 => (u32::from_le_bytes([bytes[8], bytes[9], bytes[10], bytes[11]]) as usize, 12),
        _ => return Ok(()),
    };
    if header_len > bytes.len() - start {
        return Err(format!(
            "the .npy header claims {header_len} bytes, the entry holds only {} after the preamble",
            bytes.len() - start
        ));
    }
    let Ok(header) = Header::from_reader(&mut &bytes[..]) else { return Ok(()) };
    let data = bytes.len() - start - header_len;
    let count = |nonzero_only: bool| {
        header.shape.iter().filter(|&&n| !nonzero_only || n != 0).try_fold(1usize, |acc, &n| acc.checked_mul(n))
    };
    match (count(false), count(true)) {
        (Some(n), Some(m)) if n <= data && m <= isize::MAX as usize => Ok(()),
        _ => Err(format!("the .npy header claims shape {:?}, more elements than its {data} data bytes", header.shape)),
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
