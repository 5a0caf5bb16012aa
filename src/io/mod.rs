//! The command line's .npz files (docs/design.md sections 7 and 10): arrays may be stored as f64,
//! f32 or (for the mask) integers or booleans; everything is read as f64 and written as f64.
//! The one non-numeric entry is `kernel`, a 0-d numpy unicode string (`np.array('matern52')`,
//! dtype `<U8`), which ndarray-npy cannot read or write: [`npy_string`] and
//! [`parse_npy_string`] handle that .npy format themselves.

use crate::data::{Dataset, Hyperparameters, Inputs};
use crate::error::{Error, Result};
use crate::kernel::Kernel;
use crate::svgp::SvgpParams;
use ndarray::{Array1, Array2, Array3, ArrayD, Ix1, Ix2, Ix3};
use ndarray_npy::npy::header::Header;
use ndarray_npy::{ReadNpyError, ReadNpyExt};
use std::fs::File;
use std::io::Read;
use zip::ZipArchive;

mod write;
pub use write::{status_array, write_atomically, Guarded, NpzOut};

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

    /// Reads array `name` as f64 from any float (f64, f32, f16) or integer type, and from bool
    /// only for `mask`; None when absent.
    ///
    /// The entry is read into memory first and its .npy header checked against the bytes it
    /// holds, so a header that claims a huge shape is an error, not an allocation of that size.
    ///
    /// # Errors
    /// [`Error::Io`] when it is present but not numeric (a boolean array other than `mask`, a
    /// string or object array), or not a well-formed .npy array.
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
        if let Some(a) = read_f16(&bytes).map_err(io)? {
            return Ok(Some(a));
        }
        attempt!(i64, |v| v as f64);
        attempt!(i32, |v| v as f64);
        attempt!(i16, |v| v as f64);
        attempt!(i8, |v| v as f64);
        attempt!(u64, |v| v as f64);
        attempt!(u32, |v| v as f64);
        attempt!(u16, |v| v as f64);
        attempt!(u8, |v| v as f64);
        // True is not the number 1: booleans only for a mask, the rule of the Python package.
        if name == "mask" {
            attempt!(bool, |v| if v { 1.0 } else { 0.0 });
        } else if ArrayD::<bool>::read_npy(bytes.as_slice()).is_ok() {
            return Err(io("holds booleans, not numbers (only a mask may be boolean)".into()));
        }
        Err(io("not stored as f64, f32, f16, an integer type or (for a mask) bool".into()))
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

/// Reads an .npy array of IEEE half floats (`<f2` or `>f2`, as numpy's float16) as f64; None
/// for any other dtype. Call after [`check_npy_header`].
fn read_f16(bytes: &[u8]) -> std::result::Result<Option<ArrayD<f64>>, String> {
    use ndarray::ShapeBuilder;
    use ndarray_npy::npy::header::Layout;
    let mut data = bytes;
    let Ok(header) = Header::from_reader(&mut data) else { return Ok(None) };
    let text = header.to_string();
    let big = if text.contains("'descr': '<f2'") || text.contains("'descr': '=f2'") {
        false
    } else if text.contains("'descr': '>f2'") {
        true
    } else {
        return Ok(None);
    };
    let count = header.shape.iter().try_fold(1usize, |a, &n| a.checked_mul(n));
    let data = count.and_then(|n| data.get(..n.checked_mul(2)?)).ok_or("the f16 data is shorter than its shape")?;
    let values: Vec<f64> = data
        .chunks_exact(2)
        .map(|c| f16_to_f64(if big { u16::from_be_bytes([c[0], c[1]]) } else { u16::from_le_bytes([c[0], c[1]]) }))
        .collect();
    let shape = header.shape.clone();
    let a = match header.layout {
        Layout::Fortran => ArrayD::from_shape_vec(ndarray::IxDyn(&shape).f(), values),
        _ => ArrayD::from_shape_vec(ndarray::IxDyn(&shape), values),
    };
    a.map(Some).map_err(|e| e.to_string())
}

/// An IEEE 754 half float's bits as f64 (every half is exact in f64).
fn f16_to_f64(h: u16) -> f64 {
    let sign = if h & 0x8000 != 0 { -1.0 } else { 1.0 };
    let exp = i32::from((h >> 10) & 0x1f);
    let frac = f64::from(h & 0x3ff);
    sign * match exp {
        0 => frac * 2f64.powi(-24),
        31 if frac == 0.0 => f64::INFINITY,
        31 => f64::NAN,
        _ => (1.0 + frac / 1024.0) * 2f64.powi(exp - 15),
    }
}

impl Npz {
    /// The names of the arrays in the file, in the file's order.
    pub fn names(&self) -> &[String] {
        &self.names
    }

    /// The path the file was opened from.
    pub fn path(&self) -> &str {
        &self.path
    }

    /// Reads entry `name` as a string when it is a numpy string array with one element (a 0-d
    /// `<U..` or `|S..` array, as `np.array('matern52')` stores); None when it is absent or
    /// not a string array.
    ///
    /// # Errors
    /// [`Error::Io`] when the entry cannot be read, or is a string array of more than one
    /// element or with a malformed header.
    pub fn get_string(&mut self, name: &str) -> Result<Option<String>> {
        if !self.has(name) {
            return Ok(None);
        }
        let io = |reason: String| Error::Io { path: self.path.clone(), reason: format!("array `{name}`: {reason}") };
        let entry = if self.zip.index_for_name(name).is_some() { name.to_string() } else { format!("{name}.npy") };
        let mut entry = self.zip.by_name(&entry).map_err(|e| io(e.to_string()))?;
        // The header and a short string fit in the first MiB; a numeric array is told apart by
        // its header alone, so a large one is not read here.
        let mut bytes = Vec::new();
        entry.by_ref().take(1 << 20).read_to_end(&mut bytes).map_err(|e| io(e.to_string()))?;
        parse_npy_string(&bytes).map_err(io)
    }
}

/// The bytes of a .npy file holding one string as a 0-d numpy unicode array (dtype `<U{len}`,
/// UTF-32 little-endian), as `np.save(f, np.array(s))` writes it.
pub fn npy_string(s: &str) -> Vec<u8> {
    let chars: Vec<char> = s.chars().collect();
    let dict = format!("{{'descr': '<U{}', 'fortran_order': False, 'shape': (), }}", chars.len().max(1));
    // magic (6) + version (2) + header length (2) + dict + padding + newline, a multiple of 64.
    let unpadded = 10 + dict.len() + 1;
    let total = unpadded.div_ceil(64) * 64;
    let header_len = total - 10;
    let mut out = Vec::with_capacity(total + 4 * chars.len().max(1));
    out.extend_from_slice(b"\x93NUMPY\x01\x00");
    out.extend_from_slice(&(header_len as u16).to_le_bytes());
    out.extend_from_slice(dict.as_bytes());
    out.resize(total - 1, b' ');
    out.push(b'\n');
    if chars.is_empty() {
        out.extend_from_slice(&[0; 4]);
    }
    for c in chars {
        out.extend_from_slice(&(c as u32).to_le_bytes());
    }
    out
}

/// The string held by a .npy file of one numpy string element (`<U`, `>U` or `|S` dtype,
/// shape `()` or `(1,)`); Ok(None) when the dtype is not a string type.
///
/// # Errors
/// A message for a malformed file or a string array of more than one element.
pub fn parse_npy_string(bytes: &[u8]) -> std::result::Result<Option<String>, String> {
    if bytes.len() < 10 || &bytes[..6] != b"\x93NUMPY" {
        return Err("not a .npy file".into());
    }
    let (len, start) = match bytes[6] {
        1 => (u16::from_le_bytes([bytes[8], bytes[9]]) as usize, 10),
        2 | 3 if bytes.len() >= 12 => (u32::from_le_bytes([bytes[8], bytes[9], bytes[10], bytes[11]]) as usize, 12),
        v => return Err(format!("unsupported .npy version {v}")),
    };
    let header = bytes.get(start..start + len).ok_or("truncated .npy header")?;
    let header = std::str::from_utf8(header).map_err(|_| "a .npy header that is not text")?;
    let field = |key: &str| -> Option<&str> {
        let at = header.find(&format!("'{key}'"))? + key.len() + 2;
        let rest = header[at..].trim_start().strip_prefix(':')?.trim_start();
        Some(rest)
    };
    let descr = field("descr").and_then(|r| r.strip_prefix('\'')).and_then(|r| r.split('\'').next());
    let descr = descr.ok_or("a .npy header without descr")?;
    let (order, kind, width) = {
        let mut c = descr.chars();
        let order = c.next().ok_or("empty descr")?;
        let kind = c.next().ok_or("short descr")?;
        (order, kind, c.as_str())
    };
    if !matches!(kind, 'U' | 'S') {
        return Ok(None);
    }
    let width: usize = width.parse().map_err(|_| format!("unreadable string dtype `{descr}`"))?;
    let shape = field("shape").and_then(|r| r.strip_prefix('(')).and_then(|r| r.split(')').next());
    let shape = shape.ok_or("a .npy header without shape")?;
    let count: usize = shape
        .split(',')
        .map(str::trim)
        .filter(|t| !t.is_empty())
        .map(|t| t.parse::<usize>().map_err(|_| format!("unreadable shape ({shape})")))
        .product::<std::result::Result<usize, String>>()?;
    if count != 1 {
        return Err(format!("a string array of shape ({shape}); expected one string, as np.array('rbf')"));
    }
    let data = &bytes[start + len..];
    if kind == 'S' {
        let raw = data.get(..width).ok_or("truncated string data")?;
        let end = raw.iter().position(|&b| b == 0).unwrap_or(width);
        return String::from_utf8(raw[..end].to_vec()).map(Some).map_err(|_| "a byte string that is not UTF-8".into());
    }
    let raw = data.get(..4 * width).ok_or("truncated string data")?;
    let mut out = String::with_capacity(width);
    for c in raw.chunks_exact(4) {
        let b = [c[0], c[1], c[2], c[3]];
        let v = if order == '>' { u32::from_be_bytes(b) } else { u32::from_le_bytes(b) };
        if v == 0 {
            break;
        }
        out.push(char::from_u32(v).ok_or("an invalid character in a unicode string")?);
    }
    Ok(Some(out))
}

fn dim<D: ndarray::Dimension>(a: ArrayD<f64>, name: &str, expected: &str) -> Result<ndarray::Array<f64, D>> {
    let shape = a.shape().to_vec();
    a.into_dimensionality::<D>().map_err(|_| Error::shape(name, expected, &shape))
}

/// Reads a data file: x (B, N, D) or (N, D), y (B, N), optional mask (B, N), optional known
/// noise variances yvar (B, N) (docs/design.md section 10).
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
    let data = Dataset::with_mask(x, y, mask)?;
    match f.get_opt("yvar")? {
        Some(v) => {
            let (b, n) = (data.batch_size(), data.n_points());
            data.with_yvar(dim::<Ix2>(v, "yvar", &format!("({b}, {n})"))?)
        }
        None => Ok(data),
    }
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

/// [`read_params_with_kernel`] without a command-line kernel: the file's kernel, else rq when
/// it holds log_alpha, else rbf.
pub fn read_params(path: &str, b: usize, d: usize) -> Result<Hyperparameters> {
    read_params_with_kernel(path, b, d, None)
}

/// Reads hyperparameters in log form: log_lengthscale (B, D), log_outputscale (B,),
/// log_noise (B,), mean (B,), and for rq log_alpha (B,), and checks them against (B, D).
///
/// The kernel is the file's `kernel` entry when it has one, else `kernel` (the command line's
/// `--kernel`), else rq when the file holds log_alpha, else rbf.
///
/// # Errors
/// Missing arrays, shapes that disagree, NaN values; [`Error::InvalidOption`] naming `kernel`
/// when `kernel` contradicts the file's, or when log_alpha is there for a kernel without alpha;
/// [`Error::Missing`] for log_alpha when the kernel is rq.
pub fn read_params_with_kernel(path: &str, b: usize, d: usize, kernel: Option<Kernel>) -> Result<Hyperparameters> {
    let mut f = Npz::open(path)?;
    let file_kernel = match f.get_string("kernel")? {
        Some(s) => Some(s.parse::<Kernel>().map_err(|_| Error::Io {
            path: path.to_string(),
            reason: format!("array `kernel` holds `{s}`, not a kernel (rbf, matern12, matern32, matern52 or rq)"),
        })?),
        None if f.has("kernel") => {
            return Err(Error::Io {
                path: path.to_string(),
                reason: "array `kernel` is not a string (expected a 0-d string array, as np.array('rbf'))".into(),
            })
        }
        None => None,
    };
    let ll: Array2<f64> = dim::<Ix2>(f.get("log_lengthscale")?, "log_lengthscale", &format!("({b}, {d})"))?;
    let mut one = |name: &str| -> Result<Array1<f64>> { dim::<Ix1>(f.get(name)?, name, &format!("({b},)")) };
    let (lo, ln, mean) = (one("log_outputscale")?, one("log_noise")?, one("mean")?);
    let log_alpha = match f.get_opt("log_alpha")? {
        Some(a) => Some(dim::<Ix1>(a, "log_alpha", &format!("({b},)"))?),
        None => None,
    };
    let contradiction = |k: Kernel, fk: Kernel| {
        let reason = format!("--kernel {k} contradicts {path}, which holds kernel {fk}");
        Error::option("kernel", format!("{reason} (drop --kernel or pass --kernel {fk})"))
    };
    let kernel = match (file_kernel, kernel) {
        (Some(fk), Some(k)) if fk != k => return Err(contradiction(k, fk)),
        (Some(fk), _) => fk,
        (None, Some(k)) => k,
        (None, None) if log_alpha.is_some() => Kernel::Rq,
        (None, None) => Kernel::Rbf,
    };
    if ll.dim() != (b, d) {
        return Err(Error::shape("log_lengthscale", format!("({b}, {d})"), ll.shape()));
    }
    let mut vectors = vec![("log_outputscale", &lo), ("log_noise", &ln), ("mean", &mean)];
    match (&log_alpha, kernel.has_alpha()) {
        (None, true) => {
            return Err(Error::Missing {
                array: "log_alpha".into(),
                context: format!(" in {path} (the {kernel} kernel needs it)"),
            })
        }
        (Some(_), false) => {
            return Err(Error::option(
                "kernel",
                format!("{path} holds log_alpha, which only the rq kernel has, but the kernel is {kernel}"),
            ))
        }
        (Some(a), true) => vectors.push(("log_alpha", a)),
        (None, false) => {}
    }
    for (name, a) in &vectors {
        if a.len() != b {
            return Err(Error::shape(name, format!("({b},)"), a.shape()));
        }
    }
    // A member whose values are all NaN is a failed member of a fit (F.npz): it is passed on and
    // reported as failed; a NaN anywhere else is an error.
    let failed = |m: usize| ll.row(m).iter().all(|v| v.is_nan()) && vectors.iter().all(|(_, a)| a[m].is_nan());
    if let Some(((m, k), v)) = ll.indexed_iter().find(|((m, _), v)| v.is_nan() && !failed(*m)) {
        return Err(Error::NonFinite { array: "log_lengthscale".into(), member: m, index: k, value: *v });
    }
    for (name, a) in vectors.iter().filter(|(n, _)| *n != "mean") {
        if let Some((m, v)) = a.indexed_iter().find(|(m, v)| v.is_nan() && !failed(*m)) {
            return Err(Error::NonFinite { array: name.to_string(), member: m, index: 0, value: *v });
        }
    }
    let h = Hyperparameters::from_log(&ll, &lo, &ln, &mean);
    let h = match log_alpha {
        Some(a) => h.with_alpha(a.mapv(f64::exp)),
        None => h.with_kernel(kernel),
    };
    h.validate(b, d)?;
    Ok(h)
}

/// Whether a parameters file holds SVGP parameters (it has `z`).
pub fn is_svgp_params(path: &str) -> Result<bool> {
    Ok(Npz::open(path)?.has("z"))
}

/// Reads SVGP parameters (docs/design.md section 11): z (B, M, D), q_mu (B, M), q_sqrt
/// (B, M, M; entries above the diagonal ignored) and the hyperparameters in log form, as
/// [`read_params_with_kernel`] reads them. B and D come from z; `expect` (B, D), when given,
/// is checked against them (the data's).
///
/// # Errors
/// Missing arrays, shapes that disagree, non-finite values (naming the member and index).
pub fn read_svgp_params(path: &str, expect: Option<(usize, usize)>, kernel: Option<Kernel>) -> Result<SvgpParams> {
    let mut f = Npz::open(path)?;
    let z: Array3<f64> = dim::<Ix3>(f.get("z")?, "z", "(B, M, D)")?;
    let (b, m, d) = z.dim();
    if let Some((eb, ed)) = expect {
        if (eb, ed) != (b, d) {
            return Err(Error::shape("z", format!("({eb}, M, {ed}) (the data's B and D)"), z.shape()));
        }
    }
    let q_mu: Array2<f64> = dim::<Ix2>(f.get("q_mu")?, "q_mu", &format!("({b}, {m})"))?;
    let q_sqrt: Array3<f64> = dim::<Ix3>(f.get("q_sqrt")?, "q_sqrt", &format!("({b}, {m}, {m})"))?;
    drop(f);
    let hyp = read_params_with_kernel(path, b, d, kernel)?;
    SvgpParams::new(z, q_mu, q_sqrt, hyp)
}
