//! Fuzzing the two readers of untrusted files: .npz (`batchgp::io`) and the priors TOML
//! (`Priors::from_toml`). Every input must give `Ok` or `Err`: never a panic, and never an
//! abort, which `catch_unwind` cannot see. For the aborts, this binary runs under an allocator
//! that refuses any single allocation above [`ALLOC_LIMIT`]: a reader that allocates what a
//! header claims (a shape of 2^40 elements, say) fails the run even where the machine would
//! have granted the allocation lazily.
//!
//! Each property runs a fixed number of cases from a fixed seed (fast in --release); set
//! `PROPTEST_CASES` for a longer run and `FUZZ_SEED` for other inputs. Each prints how many
//! inputs it ran.

use batchgp::io::{read_data, read_params, read_test, Npz, NpzOut};
use batchgp::{Error, Priors};
use ndarray::{Array1, Array2, Array3, ArrayD};
use ndarray_npy::{NpzWriter, WriteNpyExt};
use proptest::prelude::*;
use proptest::sample::Index;
use proptest::test_runner::{Config, RngSeed, TestCaseResult, TestRunner};
use std::alloc::{GlobalAlloc, Layout, System};
use std::fmt::Debug;
use std::io::{Cursor, Write};
use std::path::PathBuf;
use std::sync::atomic::{AtomicUsize, Ordering};
use zip::write::SimpleFileOptions;
use zip::{CompressionMethod, ZipWriter};

/// The largest single allocation this test binary grants (1 GiB); every input here is a few
/// KiB, so anything near this was sized from a header, not from data.
const ALLOC_LIMIT: usize = 1 << 30;

struct Capped;

// SAFETY: forwards to the system allocator; refusing (null) is allowed by GlobalAlloc.
unsafe impl GlobalAlloc for Capped {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        if layout.size() > ALLOC_LIMIT {
            return std::ptr::null_mut();
        }
        System.alloc(layout)
    }
    unsafe fn alloc_zeroed(&self, layout: Layout) -> *mut u8 {
        if layout.size() > ALLOC_LIMIT {
            return std::ptr::null_mut();
        }
        System.alloc_zeroed(layout)
    }
    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        System.dealloc(ptr, layout)
    }
    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        if new_size > ALLOC_LIMIT {
            return std::ptr::null_mut();
        }
        System.realloc(ptr, layout, new_size)
    }
}

#[global_allocator]
static ALLOCATOR: Capped = Capped;

// ---------------------------------------------------------------------------------------------
// Running a property

/// Runs `test` on `cases` inputs from `strategy` (PROPTEST_CASES overrides `cases`), from a
/// fixed seed (FUZZ_SEED overrides it), and prints how many inputs ran.
fn fuzz<S>(name: &str, cases: u32, strategy: S, test: impl Fn(S::Value) -> TestCaseResult)
where
    S: Strategy,
    S::Value: Debug,
{
    let cases = std::env::var("PROPTEST_CASES").ok().and_then(|s| s.parse().ok()).unwrap_or(cases);
    let seed = std::env::var("FUZZ_SEED").ok().and_then(|s| s.parse().ok()).unwrap_or(20_251_123);
    let config = Config {
        cases,
        failure_persistence: None,
        rng_seed: RngSeed::Fixed(seed),
        max_shrink_iters: 4096,
        ..Config::default()
    };
    let ran = AtomicUsize::new(0);
    let start = std::time::Instant::now();
    let result = TestRunner::new(config).run(&strategy, |v| {
        ran.fetch_add(1, Ordering::Relaxed);
        test(v)
    });
    println!(
        "{name}: {} inputs ran ({cases} cases, seed {seed}) in {:.1} s",
        ran.load(Ordering::Relaxed),
        start.elapsed().as_secs_f64()
    );
    if let Err(e) = result {
        panic!("{name}: {e}");
    }
}

/// A scratch file of this process for `tag`.
fn scratch(tag: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!("batchgp-fuzz-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    dir.join(format!("{tag}.npz"))
}

/// How far the inputs of one property got: counts of readers that returned Ok.
#[derive(Default)]
struct Tally {
    counts: [AtomicUsize; 4],
}

impl Tally {
    fn add(&self, i: usize, ok: bool) {
        if ok {
            self.counts[i].fetch_add(1, Ordering::Relaxed);
        }
    }
    fn print(&self, name: &str, labels: &[&str]) {
        let parts: Vec<String> =
            labels.iter().zip(&self.counts).map(|(l, c)| format!("{l} {}", c.load(Ordering::Relaxed))).collect();
        println!("{name}: Ok from {}", parts.join(", "));
    }
}

const NPZ_LABELS: [&str; 4] = ["Npz::open", "read_data", "read_test", "read_params"];

/// Every reader of .npz files, on `bytes` written to `path`: each must return, Ok or Err.
fn read_everything(path: &PathBuf, bytes: &[u8], tally: &Tally) -> TestCaseResult {
    // A new file each time: rewriting one in place can make the filesystem flush (ext4's
    // replace-via-truncate), which makes the run I/O bound.
    std::fs::remove_file(path).ok();
    std::fs::write(path, bytes).unwrap();
    let p = path.to_str().unwrap();
    tally.add(1, read_data(p).is_ok());
    tally.add(2, read_test(p).is_ok());
    let mut params = false;
    for (b, d) in [(1, 1), (2, 2), (2, 3), (0, 0)] {
        params |= read_params(p, b, d).is_ok();
    }
    tally.add(3, params);
    if let Ok(mut f) = Npz::open(p) {
        tally.add(0, true);
        for name in NAMES.iter().chain(&["arr_0", "a"]) {
            let _ = f.get_opt(name);
            let _ = f.get(name);
        }
    }
    Ok(())
}

const NAMES: [&str; 7] = ["x", "y", "mask", "log_lengthscale", "log_outputscale", "log_noise", "mean"];

/// A zip archive of `entries` (name, bytes), stored or deflated.
fn zip_of(entries: &[(String, Vec<u8>)], deflate: bool) -> Vec<u8> {
    let method = if deflate { CompressionMethod::Deflated } else { CompressionMethod::Stored };
    let mut z = ZipWriter::new(Cursor::new(Vec::new()));
    for (name, bytes) in entries {
        z.start_file(name.as_str(), SimpleFileOptions::default().compression_method(method)).unwrap();
        z.write_all(bytes).unwrap();
    }
    z.finish().unwrap().into_inner()
}

/// The bytes of a .npy file: preamble of `version`, `header_len` (the true one when None),
/// the header dictionary `dict`, then `data`.
fn npy(version: u8, header_len: Option<u32>, dict: &str, data: &[u8]) -> Vec<u8> {
    let mut header = dict.as_bytes().to_vec();
    let pre = if version == 1 { 10 } else { 12 };
    while !(pre + header.len() + 1).is_multiple_of(64) {
        header.push(b' ');
    }
    header.push(b'\n');
    let len = header_len.unwrap_or(header.len() as u32);
    let mut out = b"\x93NUMPY".to_vec();
    out.extend([version, 0]);
    if version == 1 {
        out.extend((len as u16).to_le_bytes());
    } else {
        out.extend(len.to_le_bytes());
    }
    out.extend(header);
    out.extend(data);
    out
}

fn dict(descr: &str, fortran: bool, shape: &[String]) -> String {
    let shape = match shape.len() {
        1 => format!("({},)", shape[0]),
        _ => format!("({})", shape.join(", ")),
    };
    let fortran = if fortran { "True" } else { "False" };
    format!("{{'descr': '{descr}', 'fortran_order': {fortran}, 'shape': {shape}, }}")
}

/// Well-formed files to mutate: a data file (x, y, mask), a params file, a test file.
fn valid_files() -> Vec<Vec<u8>> {
    let x = Array3::from_shape_fn((2, 5, 2), |(b, i, k)| (b + i + k) as f64 / 7.0);
    let y = Array2::from_shape_fn((2, 5), |(b, i)| (b * i) as f64 / 5.0);
    let mask = Array2::from_shape_fn((2, 5), |(_, i)| if i < 4 { 1.0 } else { 0.0 });
    let path = scratch("valid");
    let p = path.to_str().unwrap();
    let mut out = Vec::new();
    NpzOut::new().add3("x", x.clone()).add2("y", y.clone()).add2("mask", mask).write(p).unwrap();
    out.push(std::fs::read(&path).unwrap());
    let mut params = NpzOut::new();
    params
        .add2("log_lengthscale", Array2::zeros((2, 2)))
        .add1("log_outputscale", Array1::zeros(2))
        .add1("log_noise", Array1::from_elem(2, -2.0))
        .add1("mean", Array1::zeros(2));
    params.write(p).unwrap();
    out.push(std::fs::read(&path).unwrap());
    NpzOut::new().add2("x", Array2::from_elem((3, 2), 0.5)).write(p).unwrap();
    out.push(std::fs::read(&path).unwrap());
    // Compressed, with f32 x and a bool mask, as np.savez_compressed would write.
    let mut w = NpzWriter::new_compressed(Cursor::new(Vec::new()));
    w.add_array("x", &x.mapv(|v| v as f32)).unwrap();
    w.add_array("y", &y).unwrap();
    w.add_array("mask", &Array2::from_elem((2, 5), true)).unwrap();
    out.push(w.finish().unwrap().into_inner());
    std::fs::remove_file(&path).ok();
    out
}

// ---------------------------------------------------------------------------------------------
// .npz: arbitrary bytes

#[test]
fn fuzz_npz_arbitrary_bytes() {
    let path = scratch("arbitrary");
    // Raw bytes, and raw bytes behind a zip local-file signature.
    let strategy = (any::<bool>(), prop::collection::vec(any::<u8>(), 0..2048)).prop_map(|(zip_magic, mut b)| {
        if zip_magic {
            b.splice(0..0, *b"PK\x03\x04");
        }
        b
    });
    let tally = Tally::default();
    fuzz("npz: arbitrary bytes", 5000, strategy, |bytes| read_everything(&path, &bytes, &tally));
    tally.print("npz: arbitrary bytes", &NPZ_LABELS);
    std::fs::remove_file(&path).ok();
}

/// One shape entry of a header, as text: small, huge, negative or out of range.
fn shape_entry() -> impl Strategy<Value = String> {
    prop_oneof![
        4 => (0usize..6).prop_map(|n| n.to_string()),
        1 => prop::sample::select(vec![
            "268435456",
            "4294967296",
            "1099511627776",
            "4611686018427387904",
            "9223372036854775807",
            "18446744073709551615",
            "18446744073709551616",
            "-1",
            "1.5",
            "'a'",
            "None",
        ])
        .prop_map(String::from),
    ]
}

fn descr() -> impl Strategy<Value = String> {
    prop::sample::select(vec![
        "<f8", "<f4", "<i8", "<i4", "|u1", "|i1", "|b1", ">f8", ">f4", ">i8", ">i4", "<f2", "<u8", "<c16", "O", "<U3",
        "V8", "", "<f16",
    ])
    .prop_map(String::from)
}

/// The bytes of `n` elements of type `descr`, values from `seed`.
fn fill(descr: &str, n: usize, seed: &[u8]) -> Vec<u8> {
    let v = |i: usize| seed.get(i % seed.len().max(1)).copied().unwrap_or(3) as f64 / 37.0;
    let mut out = Vec::new();
    for i in 0..n {
        match descr {
            "<f8" => out.extend(v(i).to_le_bytes()),
            ">f8" => out.extend(v(i).to_be_bytes()),
            "<f4" => out.extend((v(i) as f32).to_le_bytes()),
            ">f4" => out.extend((v(i) as f32).to_be_bytes()),
            "<i8" => out.extend((v(i) as i64).to_le_bytes()),
            ">i8" => out.extend((v(i) as i64).to_be_bytes()),
            "<i4" => out.extend((v(i) as i32).to_le_bytes()),
            ">i4" => out.extend((v(i) as i32).to_be_bytes()),
            "|b1" => out.push(u8::from(v(i) > 3.0)),
            _ => out.push(seed.get(i % seed.len().max(1)).copied().unwrap_or(0)),
        }
    }
    out
}

#[derive(Debug, Clone)]
struct Entry {
    name: String,
    version: u8,
    header_len: Option<u32>,
    descr: String,
    fortran: bool,
    shape: Vec<String>,
    exact: bool,
    data: Vec<u8>,
    edits: Vec<(Index, u8)>,
}

impl Entry {
    fn bytes(&self) -> Vec<u8> {
        let count: Option<usize> = self.shape.iter().try_fold(1usize, |acc, s| acc.checked_mul(s.parse().ok()?));
        let data = match count {
            Some(n) if self.exact && n <= 512 => fill(&self.descr, n, &self.data),
            _ => self.data.clone(),
        };
        let mut b = npy(self.version, self.header_len, &dict(&self.descr, self.fortran, &self.shape), &data);
        for (i, byte) in &self.edits {
            let k = i.index(b.len());
            b[k] = *byte;
        }
        b
    }
}

fn entry() -> impl Strategy<Value = Entry> {
    (
        (prop::sample::select(NAMES.to_vec()), any::<bool>()),
        prop_oneof![8 => Just(1u8), 2 => Just(2u8), 1 => Just(3u8), 1 => any::<u8>()],
        prop_oneof![6 => Just(None), 1 => any::<u32>().prop_map(Some), 1 => (0u32..200).prop_map(Some)],
        descr(),
        any::<bool>(),
        prop::collection::vec(shape_entry(), 0..5),
        prop::bool::weighted(0.6),
        prop::collection::vec(any::<u8>(), 0..256),
        prop::collection::vec((any::<Index>(), any::<u8>()), 0..3),
    )
        .prop_map(|((name, suffix), version, header_len, descr, fortran, shape, exact, data, edits)| Entry {
            name: if suffix { format!("{name}.npy") } else { name.to_string() },
            version,
            header_len,
            descr,
            fortran,
            shape,
            exact,
            data,
            edits,
        })
}

#[test]
fn fuzz_npz_arbitrary_npy_entries() {
    // Well-formed archives (valid CRCs, stored or deflated) holding .npy entries with any
    // header: versions, header lengths, dtypes, shapes huge or negative, data short or long.
    let path = scratch("entries");
    let strategy = (prop::collection::vec(entry(), 1..5), any::<bool>());
    let tally = Tally::default();
    fuzz("npz: arbitrary .npy entries", 4000, strategy, |(entries, deflate)| {
        let mut seen = std::collections::HashSet::new();
        let files: Vec<(String, Vec<u8>)> =
            entries.iter().filter(|e| seen.insert(e.name.clone())).map(|e| (e.name.clone(), e.bytes())).collect();
        read_everything(&path, &zip_of(&files, deflate), &tally)
    });
    tally.print("npz: arbitrary .npy entries", &NPZ_LABELS);
    std::fs::remove_file(&path).ok();
}

// ---------------------------------------------------------------------------------------------
// .npz: mutations of valid files

#[derive(Debug, Clone)]
enum Mutation {
    FlipBit(Index, u8),
    SetByte(Index, u8),
    Truncate(Index),
    Delete(Index, usize),
    Insert(Index, Vec<u8>),
    /// Overwrite with a 2-, 4- or 8-byte little-endian integer (sizes and offsets in zip and npy headers).
    SetInt(Index, u64, u8),
}

fn mutation() -> impl Strategy<Value = Mutation> {
    let big = prop_oneof![any::<u64>(), 0u64..300, Just(u32::MAX as u64), Just(u64::MAX), Just(1 << 40)];
    prop_oneof![
        4 => (any::<Index>(), 0u8..8).prop_map(|(i, b)| Mutation::FlipBit(i, b)),
        3 => (any::<Index>(), any::<u8>()).prop_map(|(i, b)| Mutation::SetByte(i, b)),
        1 => any::<Index>().prop_map(Mutation::Truncate),
        1 => (any::<Index>(), 1usize..64).prop_map(|(i, n)| Mutation::Delete(i, n)),
        1 => (any::<Index>(), prop::collection::vec(any::<u8>(), 1..32)).prop_map(|(i, b)| Mutation::Insert(i, b)),
        2 => (any::<Index>(), big, prop::sample::select(vec![2u8, 4, 8])).prop_map(|(i, v, w)| Mutation::SetInt(i, v, w)),
    ]
}

fn mutate(mut b: Vec<u8>, mutations: &[Mutation]) -> Vec<u8> {
    for m in mutations {
        if b.is_empty() {
            break;
        }
        match m {
            Mutation::FlipBit(i, bit) => {
                let k = i.index(b.len());
                b[k] ^= 1 << bit;
            }
            Mutation::SetByte(i, v) => {
                let k = i.index(b.len());
                b[k] = *v;
            }
            Mutation::Truncate(i) => b.truncate(i.index(b.len())),
            Mutation::Delete(i, n) => {
                let k = i.index(b.len());
                let end = (k + n).min(b.len());
                b.drain(k..end);
            }
            Mutation::Insert(i, bytes) => {
                let k = i.index(b.len() + 1);
                b.splice(k..k, bytes.iter().copied());
            }
            Mutation::SetInt(i, v, w) => {
                let w = *w as usize;
                if b.len() >= w {
                    let k = i.index(b.len() - w + 1);
                    b[k..k + w].copy_from_slice(&v.to_le_bytes()[..w]);
                }
            }
        }
    }
    b
}

#[test]
fn fuzz_npz_mutated_files() {
    // Byte-level mutations of whole valid files: zip structures, CRCs, npy headers and data.
    let path = scratch("mutated");
    let files = valid_files();
    let strategy = (0..files.len(), prop::collection::vec(mutation(), 1..6));
    let tally = Tally::default();
    fuzz("npz: mutated valid files", 5000, strategy, |(k, mutations)| {
        read_everything(&path, &mutate(files[k].clone(), &mutations), &tally)
    });
    tally.print("npz: mutated valid files", &NPZ_LABELS);
    std::fs::remove_file(&path).ok();
}

/// The arrays of a valid data file and a valid params file, as (name, npy bytes).
fn valid_arrays() -> Vec<(String, Vec<u8>)> {
    let npy_of = |a: ArrayD<f64>| {
        let mut v = Vec::new();
        a.write_npy(&mut v).unwrap();
        v
    };
    vec![
        ("x".into(), npy_of(Array3::from_shape_fn((2, 5, 2), |(b, i, k)| (b + i + k) as f64 / 7.0).into_dyn())),
        ("y".into(), npy_of(Array2::from_shape_fn((2, 5), |(b, i)| (b * i) as f64 / 5.0).into_dyn())),
        ("mask".into(), npy_of(Array2::from_elem((2, 5), 1.0).into_dyn())),
        ("log_lengthscale".into(), npy_of(Array2::zeros((2, 2)).into_dyn())),
        ("log_outputscale".into(), npy_of(Array1::zeros(2).into_dyn())),
        ("log_noise".into(), npy_of(Array1::from_elem(2, -2.0).into_dyn())),
        ("mean".into(), npy_of(Array1::zeros(2).into_dyn())),
    ]
}

#[test]
fn fuzz_npz_mutated_npy_headers() {
    // Valid arrays whose .npy bytes are mutated (a new shape or dtype in the header, then
    // byte-level mutations), packed into archives with valid CRCs so the npy parser sees them.
    let path = scratch("headers");
    let arrays = valid_arrays();
    let strategy = (
        // Each array untouched (None) or changed; mostly untouched, so that some files get
        // past one array to the next and to the checks across arrays.
        prop::collection::vec(
            prop::option::weighted(
                0.3,
                (
                    prop::option::of(prop::collection::vec(shape_entry(), 0..4)),
                    prop::option::of(descr()),
                    prop::collection::vec(mutation(), 0..3),
                ),
            ),
            arrays.len(),
        ),
        any::<bool>(),
    );
    let tally = Tally::default();
    fuzz("npz: mutated .npy headers", 3000, strategy, |(changes, deflate)| {
        let files: Vec<(String, Vec<u8>)> = arrays
            .iter()
            .zip(&changes)
            .map(|((name, bytes), change)| {
                let Some((shape, descr, mutations)) = change else { return (format!("{name}.npy"), bytes.clone()) };
                let mut b = bytes.clone();
                let text = String::from_utf8_lossy(&b[10..]).into_owned();
                let mut header = text[..text.find('\n').unwrap()].to_string();
                if let Some(shape) = shape {
                    let (s, e) = (header.find("'shape': ").unwrap() + 9, header.rfind(')').unwrap() + 1);
                    let new =
                        if shape.len() == 1 { format!("({},)", shape[0]) } else { format!("({})", shape.join(", ")) };
                    header.replace_range(s..e, &new);
                }
                if let Some(d) = descr {
                    header = header.replace("'<f8'", &format!("'{d}'"));
                }
                let data = b.split_off(10 + text.find('\n').unwrap() + 1);
                let b = npy(1, None, header.trim_end(), &data);
                (format!("{name}.npy"), mutate(b, mutations))
            })
            .collect();
        read_everything(&path, &zip_of(&files, deflate), &tally)
    });
    tally.print("npz: mutated .npy headers", &NPZ_LABELS);
    std::fs::remove_file(&path).ok();
}

// ---------------------------------------------------------------------------------------------
// Priors TOML

const TOML_LABELS: [&str; 3] = ["from_toml", "resolve (some B, D)", "non-empty priors"];

/// Parses `text`; when it parses, resolving to a few (B, D) must return too.
fn parse_and_resolve(text: &str, tally: &Tally) -> TestCaseResult {
    if let Ok(p) = Priors::from_toml(text) {
        tally.add(0, true);
        tally.add(2, p != Priors::none());
        let mut resolved = false;
        for b in 0..4 {
            for d in 0..4 {
                resolved |= p.resolve(b, d).is_ok();
            }
        }
        tally.add(1, resolved);
    }
    Ok(())
}

#[rustfmt::skip]
const TOKENS: &[&str] = &[
    "[", "]", "[[", "]]", "{", "}", "=", ",", ".", "\"", "'", "\"\"\"", "'''", "#", "\n", " ", "\t", "\r\n", "\r",
    "\\", "lengthscale", "outputscale", "noise", "mean", "alpha", "gamma", "lognormal", "normal", "halfcauchy",
    "uniform", "concentration", "rate", "loc", "scale", "low", "high", "1", "0", "-1", "2.5", "1e308", "1e309",
    "-1e-320", "inf", "-inf", "nan", "+inf", "0x10", "1_000", "9223372036854775808", "-9223372036854775808", "true",
    "1979-05-27T07:32:00Z", "[1, 2]", "[[1, 2], [3, 4]]", "[[]]", "[]", "{}", "x", "é", "\u{0}", "\u{feff}",
    "\\u00e9", "𝔊",
];

const VALID_TOML: &[&str] = &[
    "[lengthscale]\ngamma = { concentration = [2.0, 2.0, 2.0], rate = [0.0075, 0.075, 0.075] }\n[outputscale]\nuniform = { low = 10.0, high = 150.0 }\n",
    "[noise]\nlognormal = { loc = -2.0, scale = 1.0 }\n[mean]\nnormal = { loc = 0.0, scale = 10.0 }\n",
    "[lengthscale.halfcauchy]\nscale = [[1.0, 2.0], [3.0, 4.0]]\n[outputscale.gamma]\nconcentration = 2\nrate = 0.5\n",
    "noise = { uniform = { low = 0.0, high = [1.0, 2.0] } }\nalpha = { gamma = { concentration = 1, rate = 1 } }\n",
];

#[test]
fn fuzz_toml_arbitrary_text() {
    let chars = prop::collection::vec(any::<char>(), 0..512).prop_map(String::from_iter);
    let tokens = prop::collection::vec(prop::sample::select(TOKENS.to_vec()), 0..64).prop_map(|t| t.concat());
    let bytes = prop::collection::vec(any::<u8>(), 0..512).prop_map(|b| String::from_utf8_lossy(&b).into_owned());
    let strategy = prop_oneof![chars, tokens, bytes];
    let tally = Tally::default();
    fuzz("toml: arbitrary text", 5000, strategy, |text| parse_and_resolve(&text, &tally));
    tally.print("toml: arbitrary text", &TOML_LABELS);
}

#[derive(Debug, Clone)]
enum Edit {
    Insert(Index, &'static str),
    Delete(Index, usize),
    Replace(Index, usize, &'static str),
    DuplicateLine(Index),
    Truncate(Index),
}

#[test]
fn fuzz_toml_mutated_priors() {
    let token = || prop::sample::select(TOKENS.to_vec());
    let edit = prop_oneof![
        3 => (any::<Index>(), token()).prop_map(|(i, t)| Edit::Insert(i, t)),
        2 => (any::<Index>(), 1usize..8).prop_map(|(i, n)| Edit::Delete(i, n)),
        3 => (any::<Index>(), 1usize..6, token()).prop_map(|(i, n, t)| Edit::Replace(i, n, t)),
        1 => any::<Index>().prop_map(Edit::DuplicateLine),
        1 => any::<Index>().prop_map(Edit::Truncate),
    ];
    let strategy = (0..VALID_TOML.len(), prop::collection::vec(edit, 1..6));
    let tally = Tally::default();
    fuzz("toml: mutated valid priors", 5000, strategy, |(k, edits)| {
        let mut c: Vec<char> = VALID_TOML[k].chars().collect();
        for e in &edits {
            match e {
                Edit::Insert(i, t) => {
                    let k = i.index(c.len() + 1);
                    c.splice(k..k, t.chars());
                }
                Edit::Delete(i, n) if !c.is_empty() => {
                    let k = i.index(c.len());
                    c.drain(k..(k + n).min(c.len()));
                }
                Edit::Replace(i, n, t) if !c.is_empty() => {
                    let k = i.index(c.len());
                    c.splice(k..(k + n).min(c.len()), t.chars());
                }
                Edit::DuplicateLine(i) if !c.is_empty() => {
                    let s: String = c.iter().collect();
                    let lines: Vec<&str> = s.split_inclusive('\n').collect();
                    let k = i.index(lines.len());
                    let mut out: Vec<&str> = lines.clone();
                    out.insert(k, lines[k]);
                    c = out.concat().chars().collect();
                }
                Edit::Truncate(i) => c.truncate(i.index(c.len() + 1)),
                _ => {}
            }
        }
        parse_and_resolve(&c.iter().collect::<String>(), &tally)
    });
    tally.print("toml: mutated valid priors", &TOML_LABELS);
}

/// A TOML value for a prior parameter: numbers of every kind, lists, lists of lists, others.
fn toml_value() -> impl Strategy<Value = String> {
    let number = prop::sample::select(vec![
        "0",
        "1",
        "-1",
        "2",
        "2.5",
        "0.5",
        "1e-3",
        "1e308",
        "-1e308",
        "5e-324",
        "-0.0",
        "inf",
        "-inf",
        "nan",
        "9223372036854775807",
        "-9223372036854775808",
    ]);
    let list = |n: std::ops::Range<usize>| {
        prop::collection::vec(
            prop::sample::select(vec!["0", "1", "-1", "2.5", "0.5", "1e308", "inf", "nan", "10", "150"]),
            n,
        )
        .prop_map(|v| format!("[{}]", v.join(", ")))
    };
    prop_oneof![
        4 => number.prop_map(String::from),
        3 => list(0..5),
        2 => prop::collection::vec(list(0..4), 0..5).prop_map(|v| format!("[{}]", v.join(", "))),
        1 => prop::sample::select(vec!["\"x\"", "true", "{}", "[[], 1]", "[1, [2]]", "[[1], [[2]]]", "1979-05-27"])
            .prop_map(String::from),
    ]
}

#[test]
fn fuzz_toml_generated_priors() {
    // Well-formed TOML built from the priors grammar (sections, families, parameters, values of
    // every shape and sign) so that most inputs parse and reach resolve.
    let section = prop::sample::select(vec![
        "lengthscale",
        "lengthscale",
        "outputscale",
        "noise",
        "mean",
        "alpha",
        "lengthscales",
        "x",
    ]);
    const FAMILIES: [(&str, &[&str]); 6] = [
        ("gamma", &["concentration", "rate"]),
        ("lognormal", &["loc", "scale"]),
        ("normal", &["loc", "scale"]),
        ("halfcauchy", &["scale"]),
        ("uniform", &["low", "high"]),
        ("weibull", &["shape", "scale"]),
    ];
    // A family with its own parameters, now and then one dropped or a stranger added.
    let prior = (
        section,
        0..FAMILIES.len(),
        prop::collection::vec(toml_value(), 2),
        prop::option::weighted(0.1, 0usize..2),
        prop::option::weighted(0.1, (prop::sample::select(vec!["rate", "scale", "shape", "low"]), toml_value())),
        any::<bool>(),
    );
    let strategy = prop::collection::vec(prior, 0..5);
    let tally = Tally::default();
    fuzz("toml: generated priors", 5000, strategy, |priors| {
        let mut text = String::new();
        for (section, f, values, drop, extra, inline) in &priors {
            let (family, names) = FAMILIES[*f];
            let mut kv: Vec<String> = names
                .iter()
                .zip(values)
                .enumerate()
                .filter(|(i, _)| Some(*i) != *drop)
                .map(|(_, (k, v))| format!("{k} = {v}"))
                .collect();
            if let Some((k, v)) = extra {
                kv.push(format!("{k} = {v}"));
            }
            if *inline {
                text += &format!("[{section}]\n{family} = {{ {} }}\n", kv.join(", "));
            } else {
                text += &format!("[{section}.{family}]\n{}\n", kv.join("\n"));
            }
        }
        parse_and_resolve(&text, &tally)
    });
    tally.print("toml: generated priors", &TOML_LABELS);
}

// ---------------------------------------------------------------------------------------------
// Ordinary tests: what the fuzzing found, and the messages the issue asks for

fn write_zip(tag: &str, entries: &[(String, Vec<u8>)], deflate: bool) -> PathBuf {
    let path = scratch(tag);
    std::fs::write(&path, zip_of(entries, deflate)).unwrap();
    path
}

fn io_reason(r: Result<impl Debug, Error>) -> String {
    match r {
        Err(Error::Io { reason, .. }) => reason,
        other => panic!("expected an I/O error, got {other:?}"),
    }
}

#[test]
fn a_header_claiming_a_huge_shape_is_an_error_not_an_allocation() {
    for deflate in [false, true] {
        for shape in [vec!["1099511627776".to_string()], vec!["4611686018427387904".into(), "2".into()]] {
            let x = npy(1, None, &dict("<f8", false, &shape), &[0; 16]);
            let path = write_zip("huge-shape", &[("x.npy".into(), x)], deflate);
            let reason = io_reason(read_test(path.to_str().unwrap()));
            assert!(reason.contains("array `x`") && reason.contains("claims shape"), "{reason}");
        }
    }
}

#[test]
fn a_zero_extent_with_huge_others_is_an_error_not_a_panic() {
    // 0 elements, but ndarray refuses a shape whose other extents overflow isize.
    let shape: Vec<String> = vec!["0".into(), "4294967296".into(), "4294967296".into()];
    let x = npy(1, None, &dict("<f8", false, &shape), &[]);
    let path = write_zip("zero-huge", &[("x.npy".into(), x)], false);
    let reason = io_reason(read_test(path.to_str().unwrap()));
    assert!(reason.contains("claims shape"), "{reason}");
}

#[test]
fn a_header_length_beyond_the_entry_is_an_error() {
    for version in [1u8, 2, 3] {
        let x = npy(version, Some(0xFFFF_FFF0), &dict("<f8", false, &["2".into()]), &[0; 16]);
        let path = write_zip("header-len", &[("x.npy".into(), x)], false);
        let reason = io_reason(read_test(path.to_str().unwrap()));
        assert!(reason.contains("header claims"), "{reason}");
    }
}

#[test]
fn truncated_data_and_wrong_dtypes_are_named() {
    let x = npy(1, None, &dict("<f8", false, &["3".into(), "2".into()]), &[0; 40]);
    let path = write_zip("short", &[("x.npy".into(), x)], false);
    let reason = io_reason(read_test(path.to_str().unwrap()));
    assert!(reason.contains("array `x`"), "{reason}");
    let x = npy(1, None, &dict("<c16", false, &["1".into(), "1".into()]), &[0; 16]);
    let path = write_zip("complex", &[("x.npy".into(), x)], false);
    let reason = io_reason(read_test(path.to_str().unwrap()));
    assert!(reason.contains("not stored as f64"), "{reason}");
}

#[test]
fn compressed_and_typed_files_still_read() {
    // np.savez_compressed with f32 x, i32 y and a bool mask; entries named with and without .npy.
    let x = Array3::from_shape_fn((2, 4, 1), |(b, i, _)| (b * 4 + i) as f32 / 8.0);
    let y = Array2::from_shape_fn((2, 4), |(b, i)| (b + i) as i32);
    let mask = Array2::from_shape_fn((2, 4), |(_, i)| i < 3);
    let bytes = |a: &dyn Fn(&mut Vec<u8>)| {
        let mut v = Vec::new();
        a(&mut v);
        v
    };
    let entries = vec![
        ("x.npy".to_string(), bytes(&|v| x.write_npy(v).unwrap())),
        ("y".to_string(), bytes(&|v| y.write_npy(v).unwrap())),
        ("mask.npy".to_string(), bytes(&|v| mask.write_npy(v).unwrap())),
    ];
    for deflate in [false, true] {
        let path = write_zip("typed", &entries, deflate);
        let data = read_data(path.to_str().unwrap()).unwrap();
        assert_eq!((data.batch_size(), data.n_points(), data.n_dims()), (2, 4, 1));
    }
}

#[test]
fn a_missing_array_lists_the_names_found() {
    // np.savez(path, a, b) without names stores arr_0 and arr_1.
    let path = scratch("unnamed");
    let p = path.to_str().unwrap();
    NpzOut::new().add3("arr_0", Array3::zeros((1, 3, 1))).add2("arr_1", Array2::zeros((1, 3))).write(p).unwrap();
    let e = read_data(p).unwrap_err();
    match &e {
        Error::Missing { array, context } => {
            assert_eq!(array, "x");
            assert!(context.contains("`arr_0`, `arr_1`"), "{context}");
        }
        other => panic!("expected a missing array, got {other:?}"),
    }
    let message = e.to_string();
    assert!(
        message.contains("missing array `x`") && message.contains("arr_0") && message.contains("np.savez"),
        "{message}"
    );
    // y missing from a file that has x: the message lists x.
    NpzOut::new().add3("x", Array3::zeros((1, 3, 1))).write(p).unwrap();
    let message = read_data(p).unwrap_err().to_string();
    assert!(message.contains("missing array `y`") && message.contains("holds `x`"), "{message}");
    let message = read_params(p, 1, 1).unwrap_err().to_string();
    assert!(message.contains("missing array `log_lengthscale`") && message.contains("holds `x`"), "{message}");
    // An empty archive says so.
    NpzOut::new().write(p).unwrap();
    let message = read_test(p).unwrap_err().to_string();
    assert!(message.contains("holds no arrays"), "{message}");
}

fn prior_reason(text: &str) -> String {
    match Priors::from_toml(text) {
        Err(Error::InvalidPrior { reason, .. }) => reason,
        other => panic!("expected an invalid prior for {text:?}, got {other:?}"),
    }
}

#[test]
fn a_toml_syntax_error_gives_its_line_and_column() {
    let text =
        "[lengthscale]\ngamma = { concentration = 2.0, rate = 1.0 }\n[noise]\nlognormal = { loc = , scale = 1.0 }\n";
    let reason = prior_reason(text);
    assert!(reason.starts_with("line 4, column 21:"), "{reason}");
    let reason = prior_reason("[noise\n");
    assert!(reason.starts_with("line 1, column "), "{reason}");
    // Columns count characters, not bytes.
    let reason = prior_reason("# é\n[noise]\nnormal = { loc = é }\n");
    assert!(reason.starts_with("line 3, column 18:"), "{reason}");
}

#[test]
fn a_toml_content_error_gives_the_line_of_its_key() {
    let text = "[lengthscale]\ngamma = { concentration = 2.0, rate = 1.0 }\n\n[noise]\nweibull = { scale = 1.0 }\n";
    let reason = prior_reason(text);
    assert!(reason.starts_with("line 5: unknown family `weibull`"), "{reason}");
    let reason = prior_reason("[outputscale]\ngamma = { concentration = 2.0,\n  rate = \"fast\" }\n");
    assert!(reason.starts_with("line 3: `rate` must be"), "{reason}");
    let reason = prior_reason("\n[lengthscales]\ngamma = { concentration = 2.0, rate = 1.0 }\n");
    assert!(reason.starts_with("line 2: unknown section"), "{reason}");
    let reason = prior_reason("[mean.normal]\nloc = 0.0\nshape = 1.0\n");
    assert!(reason.starts_with("line 3: unknown parameter `shape`"), "{reason}");
    let reason = prior_reason("[mean.normal]\nloc = 0.0\n");
    assert!(reason.starts_with("line 1: normal needs `scale`"), "{reason}");
}

#[test]
fn deeply_nested_toml_is_an_error_not_a_stack_overflow() {
    for open in ["[", "{ a = ", "[{ a = "] {
        let text = format!("[noise]\nnormal = {{ loc = {}1, scale = 1 }}\n", open.repeat(100_000));
        assert!(matches!(Priors::from_toml(&text), Err(Error::InvalidPrior { .. })));
    }
}
