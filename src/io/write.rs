//! Writing .npz files without ever losing the file they replace: [`NpzOut`] collects the arrays
//! of one output, and [`write_atomically`] writes them to a temporary file in the target's folder
//! (`.NAME.batchgp-PID.tmp`), syncs it and renames it over the target. A write that fails part
//! way (disk full, `ulimit -f`) removes the temporary and leaves the old file as it was; a
//! temporary left by a killed process is removed by the next write of the same target once its
//! process is gone.

use super::npy_string;
use crate::data::Hyperparameters;
use crate::error::{Error, Result};
use crate::svgp::SvgpParams;
use ndarray::{Array1, Array2, Array3, ArrayD};
use ndarray_npy::WriteNpyExt;
use std::fs::File;
use std::io::{self, Seek, SeekFrom, Write};
use std::path::{Path, PathBuf};

/// A writer that keeps the first I/O error and takes everything after it without writing, so
/// that the format writer above it (zip) finishes quietly and the caller reports the error.
pub struct Guarded<W> {
    inner: W,
    error: Option<io::Error>,
    pos: u64,
    len: u64,
}

impl<W> Guarded<W> {
    fn new(inner: W) -> Self {
        Guarded { inner, error: None, pos: 0, len: 0 }
    }
    fn advance(&mut self, n: usize) {
        self.pos += n as u64;
        self.len = self.len.max(self.pos);
    }
}

impl<W: Write> Write for Guarded<W> {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        if self.error.is_none() {
            match self.inner.write(buf) {
                Ok(n) => {
                    self.advance(n);
                    return Ok(n);
                }
                Err(e) if e.kind() == io::ErrorKind::Interrupted => return Err(e),
                Err(e) => self.error = Some(e),
            }
        }
        self.advance(buf.len());
        Ok(buf.len())
    }
    fn flush(&mut self) -> io::Result<()> {
        if self.error.is_none() {
            if let Err(e) = self.inner.flush() {
                self.error = Some(e);
            }
        }
        Ok(())
    }
}

impl<W: Seek> Seek for Guarded<W> {
    fn seek(&mut self, to: SeekFrom) -> io::Result<u64> {
        if self.error.is_none() {
            match self.inner.seek(to) {
                Ok(p) => {
                    self.pos = p;
                    self.len = self.len.max(p);
                    return Ok(p);
                }
                Err(e) => self.error = Some(e),
            }
        }
        let base = |b: u64, d: i64| b.saturating_add_signed(d);
        self.pos = match to {
            SeekFrom::Start(p) => p,
            SeekFrom::Current(d) => base(self.pos, d),
            SeekFrom::End(d) => base(self.len, d),
        };
        Ok(self.pos)
    }
}

/// The system's reason for an I/O error, without Rust's debug form: "No space left on device
/// (os error 28)".
fn reason(e: &io::Error) -> String {
    e.to_string()
}

/// Writes `path` through `fill` so that it is never left half written.
///
/// A regular file (or a new one) is written to `.NAME.batchgp-PID.tmp` in its folder, synced and
/// renamed over it, taking the old file's permissions; a symbolic link is followed, so the file
/// it names is replaced. Anything else that exists (a device such as /dev/null, a pipe) is
/// written in place. On any failure the temporary is removed and the old file is untouched.
///
/// # Errors
/// [`Error::Io`] naming `path` with the system's reason (or `fill`'s message).
pub fn write_atomically(
    path: &str,
    fill: impl FnOnce(&mut Guarded<File>) -> std::result::Result<(), String>,
) -> Result<()> {
    let io = |reason: String| Error::Io { path: path.to_string(), reason };
    let given = Path::new(path);
    let target = match std::fs::symlink_metadata(given) {
        Ok(m) if m.file_type().is_symlink() => given.canonicalize().unwrap_or_else(|_| given.to_path_buf()),
        _ => given.to_path_buf(),
    };
    let existing = std::fs::metadata(&target).ok();
    if existing.as_ref().is_some_and(|m| !m.is_file()) {
        let file = File::create(&target).map_err(|e| io(reason(&e)))?;
        let mut w = Guarded::new(file);
        fill(&mut w).map_err(io)?;
        return match w.error {
            Some(e) => Err(io(reason(&e))),
            None => Ok(()),
        };
    }
    let folder = match target.parent() {
        Some(p) if !p.as_os_str().is_empty() => p.to_path_buf(),
        _ => PathBuf::from("."),
    };
    let name = target.file_name().ok_or_else(|| io("does not name a file".into()))?.to_string_lossy().to_string();
    remove_stale(&folder, &name);
    let temp = folder.join(temporary_name(&name, std::process::id()));
    let _ = std::fs::remove_file(&temp); // only this process writes this name
    let file = std::fs::OpenOptions::new().write(true).create_new(true).open(&temp).map_err(|e| io(reason(&e)))?;
    let written = (|| {
        if let Some(m) = &existing {
            file.set_permissions(m.permissions()).map_err(|e| reason(&e))?;
        }
        let mut w = Guarded::new(file);
        fill(&mut w)?;
        if let Some(e) = w.error.take() {
            return Err(reason(&e));
        }
        w.inner.sync_all().map_err(|e| reason(&e))?;
        drop(w);
        std::fs::rename(&temp, &target).map_err(|e| reason(&e))
    })();
    if let Err(e) = written {
        let _ = std::fs::remove_file(&temp);
        return Err(io(e));
    }
    // The rename itself reaches the disk with the folder.
    if let Ok(dir) = File::open(&folder) {
        let _ = dir.sync_all();
    }
    Ok(())
}

/// The temporary that process `pid` writes `name` through.
fn temporary_name(name: &str, pid: u32) -> String {
    format!(".{name}.batchgp-{pid}.tmp")
}

/// Removes temporaries of `name` in `folder` left by processes that are gone (a write killed
/// part way). Where processes cannot be looked up (no /proc), nothing is removed.
fn remove_stale(folder: &Path, name: &str) {
    if !Path::new("/proc/self").exists() {
        return;
    }
    let Ok(entries) = std::fs::read_dir(folder) else { return };
    let prefix = format!(".{name}.batchgp-");
    for entry in entries.flatten() {
        let file = entry.file_name().to_string_lossy().to_string();
        let pid = file.strip_prefix(&prefix).and_then(|r| r.strip_suffix(".tmp")).and_then(|p| p.parse::<u32>().ok());
        if let Some(pid) = pid {
            if !Path::new(&format!("/proc/{pid}")).exists() {
                let _ = std::fs::remove_file(entry.path());
            }
        }
    }
}

/// One entry of an [`NpzOut`].
enum Entry {
    Array(ArrayD<f64>),
    Text(String),
}

/// Arrays to write into one .npz file, in order.
#[derive(Default)]
pub struct NpzOut {
    entries: Vec<(String, Entry)>,
}

impl NpzOut {
    pub fn new() -> Self {
        NpzOut::default()
    }
    pub fn add1(&mut self, name: &str, a: Array1<f64>) -> &mut Self {
        self.entries.push((name.into(), Entry::Array(a.into_dyn())));
        self
    }
    pub fn add2(&mut self, name: &str, a: Array2<f64>) -> &mut Self {
        self.entries.push((name.into(), Entry::Array(a.into_dyn())));
        self
    }
    pub fn add3(&mut self, name: &str, a: Array3<f64>) -> &mut Self {
        self.entries.push((name.into(), Entry::Array(a.into_dyn())));
        self
    }
    /// Adds a string as a 0-d numpy unicode array (`np.load(f)[name]` gives `array('rbf')`).
    pub fn add_str(&mut self, name: &str, s: &str) -> &mut Self {
        self.entries.push((name.into(), Entry::Text(s.to_string())));
        self
    }
    /// Adds the log form of hyperparameters: kernel (its name), log_lengthscale,
    /// log_outputscale, log_noise, mean, and log_alpha for rq.
    pub fn add_params(&mut self, h: &Hyperparameters) -> &mut Self {
        self.add_str("kernel", h.kernel.name());
        self.add2("log_lengthscale", h.lengthscale.mapv(f64::ln));
        self.add1("log_outputscale", h.outputscale.mapv(f64::ln));
        self.add1("log_noise", h.noise.mapv(f64::ln));
        self.add1("mean", h.mean.clone());
        if let Some(a) = &h.alpha {
            self.add1("log_alpha", a.mapv(f64::ln));
        }
        self
    }
    /// Adds SVGP parameters: the hyperparameters as [`NpzOut::add_params`], then z, q_mu and
    /// q_sqrt (its lower triangle; zeros above).
    pub fn add_svgp(&mut self, p: &SvgpParams) -> &mut Self {
        self.add_params(&p.hyp);
        self.add3("z", p.z.clone());
        self.add2("q_mu", p.q_mu.clone());
        let q = Array3::from_shape_fn(p.q_sqrt.dim(), |(b, i, j)| if j <= i { p.q_sqrt[[b, i, j]] } else { 0.0 });
        self.add3("q_sqrt", q)
    }
    /// Writes the file (uncompressed, as `np.savez`) through [`write_atomically`]: the file at
    /// `path` is either the complete new one or, when anything fails, the old one untouched.
    ///
    /// # Errors
    /// [`Error::Io`] naming `path` and the system's reason ("No space left on device").
    pub fn write(&self, path: &str) -> Result<()> {
        write_atomically(path, |w| self.write_zip(w))
    }

    fn write_zip(&self, w: &mut Guarded<File>) -> std::result::Result<(), String> {
        // After a failed write the guard takes the rest without writing, so the zip writer never
        // sees an error (and never prints one when dropped); the guard's error is reported.
        let mut zip = zip::ZipWriter::new(std::io::BufWriter::new(&mut *w));
        for (name, entry) in &self.entries {
            let bytes = match entry {
                Entry::Array(a) => 8 * a.len() as u64,
                Entry::Text(s) => 4 * s.len() as u64,
            };
            let options = zip::write::SimpleFileOptions::default()
                .compression_method(zip::CompressionMethod::Stored)
                .large_file(bytes > u32::MAX as u64 / 2);
            zip.start_file(format!("{name}.npy"), options).map_err(|e| e.to_string())?;
            match entry {
                Entry::Array(a) => a.write_npy(&mut zip).map_err(|e| e.to_string())?,
                Entry::Text(s) => zip.write_all(&npy_string(s)).map_err(|e| e.to_string())?,
            }
        }
        let mut buffered = zip.finish().map_err(|e| e.to_string())?;
        buffered.flush().map_err(|e| e.to_string())
    }
}

/// Status codes as f64 (the CLI writes every output as f64).
pub fn status_array(s: &[crate::Status]) -> Array1<f64> {
    s.iter().map(|v| v.code() as f64).collect()
}
