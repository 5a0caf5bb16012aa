//! `batchgp show`: any batchgp .npz file as a table (or CSV) in natural units, one row per
//! member (and point), status codes in words.

use super::{option_error, parse_count};
use batchgp::io::Npz;
use batchgp::Status;
use clap::Args;
use ndarray::ArrayD;

#[derive(Args)]
pub struct ShowArgs {
    /// The .npz file.
    #[arg(value_name = "FILE.npz")]
    file: String,
    /// Only member B (counted from 0).
    #[arg(long, value_name = "B", value_parser = parse_count)]
    member: Option<usize>,
    /// Comma-separated values (full precision) instead of an aligned table.
    #[arg(long)]
    csv: bool,
}

pub fn run(a: ShowArgs) -> batchgp::Result<()> {
    show(&a.file, a.member, a.csv)
}

/// How a column's numbers are printed.
#[derive(Clone, Copy, PartialEq)]
enum Kind {
    Number,
    Integer,
    Status,
}

/// One column of the table: a value per member (`per_point` false) or per (member, point).
struct Column {
    name: String,
    kind: Kind,
    per_point: bool,
    /// Indexed by member (and point: member * M + point); text columns hold one value.
    values: Vec<f64>,
    text: Option<String>,
}

/// Names whose 2-d arrays are per member with one column per input dimension.
fn per_dimension(name: &str) -> bool {
    name.contains("lengthscale")
}

fn natural(name: &str) -> Option<&'static str> {
    match name {
        "log_lengthscale" => Some("lengthscale"),
        "log_outputscale" => Some("outputscale"),
        "log_noise" => Some("noise"),
        "log_alpha" => Some("alpha"),
        _ => None,
    }
}

fn show(path: &str, member: Option<usize>, csv: bool) -> batchgp::Result<()> {
    let mut f = Npz::open(path)?;
    let names = f.names().to_vec();
    let mut numeric: Vec<(String, ArrayD<f64>)> = Vec::new();
    let mut texts: Vec<(String, String)> = Vec::new();
    let mut skipped: Vec<String> = Vec::new();
    for name in &names {
        if let Some(s) = f.get_string(name)? {
            texts.push((name.clone(), s));
        } else {
            match f.get(name) {
                Ok(a) => numeric.push((name.clone(), a)),
                Err(e) => skipped.push(format!("{name} not shown ({e})")),
            }
        }
    }
    let find = |n: &str| numeric.iter().find(|(m, _)| m == n).map(|(_, a)| a);
    // B: from the arrays that are per member in every batchgp file.
    let b = ["status", "log_outputscale", "mll", "objective"]
        .iter()
        .find_map(|n| find(n).filter(|a| a.ndim() == 1).map(|a| a.len()))
        .or_else(|| find("y").filter(|a| a.ndim() == 2).map(|a| a.shape()[0]))
        .or_else(|| find("mean").filter(|a| a.ndim() == 2).map(|a| a.shape()[0]))
        .or_else(|| find("x").filter(|a| a.ndim() == 3).map(|a| a.shape()[0]));
    // M: points per member, from the per-point arrays (B, M) or x.
    let m = match b {
        Some(b) => numeric
            .iter()
            .find(|(n, a)| a.ndim() == 2 && a.shape()[0] == b && !per_dimension(n) && n != "x")
            .map(|(_, a)| a.shape()[1])
            .or_else(|| find("x").map(|x| x.shape()[x.ndim() - 2])),
        None => find("x").filter(|x| x.ndim() == 2).map(|x| x.shape()[0]),
    };
    if b.is_none() && m.is_none() {
        return Err(not_batchgp(path, &names));
    }
    let rows_b = b.unwrap_or(1);
    if let Some(want) = member {
        match b {
            Some(b) if want < b => {}
            Some(b) => {
                return Err(option_error(
                    "member",
                    format!("{path} has {b} members (0 to {}), no member {want}", b.saturating_sub(1)),
                ))
            }
            None => return Err(option_error("member", format!("{path} holds no per-member arrays"))),
        }
    }

    let mut cols: Vec<Column> = Vec::new();
    let mut notes: Vec<String> = skipped;
    for (name, text) in &texts {
        cols.push(Column {
            name: name.clone(),
            kind: Kind::Number,
            per_point: false,
            values: vec![],
            text: Some(text.clone()),
        });
    }
    for (name, a) in &numeric {
        let shape = a.shape().to_vec();
        let exp = natural(name);
        let label = exp.unwrap_or(name).to_string();
        let conv = |v: f64| if exp.is_some() { v.exp() } else { v };
        let kind = match name.as_str() {
            "status" => Kind::Status,
            "iterations" | "restart" | "reached_best" | "mask" => Kind::Integer,
            _ => Kind::Number,
        };
        let member_rows = b.is_some_and(|b| shape.first() == Some(&b));
        match shape.len() {
            1 if member_rows && name != "seconds" && name != "starts" => cols.push(Column {
                name: label,
                kind,
                per_point: false,
                values: a.iter().map(|v| conv(*v)).collect(),
                text: None,
            }),
            2 if member_rows && per_dimension(name) => {
                for k in 0..shape[1] {
                    cols.push(Column {
                        name: format!("{label}_{}", k + 1),
                        kind,
                        per_point: false,
                        values: (0..shape[0]).map(|r| conv(a[[r, k]])).collect(),
                        text: None,
                    });
                }
            }
            2 if member_rows && Some(shape[1]) == m && name != "x" => cols.push(Column {
                name: label,
                kind,
                per_point: true,
                values: a.iter().map(|v| conv(*v)).collect(),
                text: None,
            }),
            // x (B, M, D), or x (M, D) shared by every member: one column per dimension.
            3 if name == "x" && member_rows && Some(shape[1]) == m => {
                x_columns(&mut cols, kind, (shape[0], shape[1], shape[2]), |r, i, k| a[[r, i, k]])
            }
            2 if name == "x" && Some(shape[0]) == m => {
                x_columns(&mut cols, kind, (rows_b, shape[0], shape[1]), |_, i, k| a[[i, k]])
            }
            _ if (name == "seconds" || name == "starts") && a.len() == 1 => {
                notes.push(format!("{name}: {}", a.iter().next().copied().unwrap_or(f64::NAN)))
            }
            _ => notes.push(format!("{name} {shape:?} not shown")),
        }
    }

    let by_point = cols.iter().any(|c| c.per_point);
    let mut header: Vec<String> = Vec::new();
    if b.is_some() {
        header.push("member".into());
    }
    if by_point {
        header.push("point".into());
    }
    header.extend(cols.iter().map(|c| c.name.clone()));
    let members: Vec<usize> = match member {
        Some(w) => vec![w],
        None => (0..rows_b).collect(),
    };
    let points = if by_point { m.unwrap_or(0) } else { 1 };
    let mut rows: Vec<Vec<String>> = Vec::new();
    for &r in &members {
        for i in 0..points {
            let mut row = Vec::with_capacity(header.len());
            if b.is_some() {
                row.push(r.to_string());
            }
            if by_point {
                row.push(i.to_string());
            }
            for c in &cols {
                if let Some(t) = &c.text {
                    row.push(t.clone());
                    continue;
                }
                let v = if c.per_point { c.values[r * points + i] } else { c.values[r] };
                row.push(cell(v, c.kind, csv));
            }
            rows.push(row);
        }
    }

    let mut out = String::new();
    if csv {
        let quote = |s: &str| {
            if s.contains([',', '"', '\n']) {
                format!("\"{}\"", s.replace('"', "\"\""))
            } else {
                s.to_string()
            }
        };
        for row in std::iter::once(&header).chain(rows.iter()) {
            out.push_str(&row.iter().map(|s| quote(s)).collect::<Vec<_>>().join(","));
            out.push('\n');
        }
        for n in &notes {
            eprintln!("{path}: {n}");
        }
    } else {
        let what = match b {
            Some(b) => format!("{b} members"),
            None => format!("{} points", m.unwrap_or(0)),
        };
        out.push_str(&format!("{path}: {what}\n"));
        let widths: Vec<usize> = (0..header.len())
            .map(|j| rows.iter().map(|r| r[j].len()).chain([header[j].len()]).max().unwrap_or(0))
            .collect();
        // Words left-aligned, numbers right-aligned.
        let left: Vec<bool> = (0..header.len() - cols.len())
            .map(|_| false)
            .chain(cols.iter().map(|c| c.text.is_some() || c.kind == Kind::Status))
            .collect();
        let line = |cells: &[String]| -> String {
            let parts: Vec<String> = cells
                .iter()
                .zip(widths.iter().zip(&left))
                .map(|(s, (w, l))| if *l { format!("{s:<w$}") } else { format!("{s:>w$}") })
                .collect();
            parts.join("  ").trim_end().to_string()
        };
        out.push_str(&line(&header));
        out.push('\n');
        for r in &rows {
            out.push_str(&line(r));
            out.push('\n');
        }
        for n in &notes {
            out.push_str(&format!("{n}\n"));
        }
    }
    use std::io::Write;
    let mut stdout = std::io::stdout().lock();
    // A closed pipe (`| head`) ends the output quietly.
    let _ = stdout.write_all(out.as_bytes());
    Ok(())
}

/// The error for an .npz file that is none of batchgp's: no per-member array (status, mll,
/// log_outputscale, objective, y, mean, a batched x) and no test inputs x (M, D).
fn not_batchgp(path: &str, names: &[String]) -> batchgp::Error {
    let holds = if names.is_empty() {
        "no arrays".to_string()
    } else {
        names.iter().map(|n| format!("`{n}`")).collect::<Vec<_>>().join(", ")
    };
    batchgp::Error::Io {
        path: path.to_string(),
        reason: format!(
            "not a batchgp file (data, test points, parameters or an output): it holds {holds}, and none of \
             x, y, log_outputscale, status, mll, objective or mean in batchgp's shapes"
        ),
    }
}

/// x's columns x_1..x_D, per member and point: `at(member, point, k)` for (members, points, D) =
/// `dims`.
fn x_columns(cols: &mut Vec<Column>, kind: Kind, dims: (usize, usize, usize), at: impl Fn(usize, usize, usize) -> f64) {
    let (members, points, d) = dims;
    for k in 0..d {
        let values = (0..members).flat_map(|r| (0..points).map(move |i| (r, i))).map(|(r, i)| at(r, i, k)).collect();
        cols.push(Column { name: format!("x_{}", k + 1), kind, per_point: true, values, text: None });
    }
}

/// One cell: status codes in words; integers as such; numbers with 6 significant digits in a
/// table and in full (shortest round-trip) precision in CSV.
fn cell(v: f64, kind: Kind, csv: bool) -> String {
    match kind {
        Kind::Status => match (v >= 0.0 && v.fract() == 0.0 && v < 256.0).then(|| Status::from_code(v as u8)).flatten()
        {
            Some(s) => s.text().to_string(),
            None => format!("unknown ({v})"),
        },
        Kind::Integer if v.is_finite() && v.fract() == 0.0 => format!("{v:.0}"),
        _ if !v.is_finite() => {
            if v.is_nan() {
                "nan".into()
            } else if v > 0.0 {
                "inf".into()
            } else {
                "-inf".into()
            }
        }
        _ if csv => {
            let a = v.abs();
            if a == 0.0 || (1e-4..1e15).contains(&a) {
                format!("{v}")
            } else {
                format!("{v:e}")
            }
        }
        _ => {
            let a = v.abs();
            if a == 0.0 {
                "0".into()
            } else if (1e-3..1e5).contains(&a) {
                let decimals = (5 - a.log10().floor() as i32).max(0) as usize;
                let t = format!("{v:.decimals$}");
                if t.contains('.') {
                    t.trim_end_matches('0').trim_end_matches('.').to_string()
                } else {
                    t
                }
            } else {
                format!("{v:.5e}")
            }
        }
    }
}
