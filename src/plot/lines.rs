//! The lines panel: lines against a common x (loss or a hyperparameter against the iteration)
//! on linear, logarithmic or symlog axes, with dashed horizontal reference lines.

use super::axes::{chart_builder, draw_mesh, symlog, symlog_inv, Chart, Frame, Ranges, SymlogCoord};
use super::legend::{draw_header, Key};
use super::{padded_range, RGBColor, Style};
use plotters::coord::ranged1d::ValueFormatter;
use plotters::coord::Shift;
use plotters::prelude::*;

/// One line of a [`LinePanel`].
#[derive(Debug, Clone)]
pub struct Line {
    pub label: String,
    pub points: Vec<(f64, f64)>,
    pub color: RGBColor,
}

/// Lines against a common x (the iteration, say), with horizontal reference lines.
#[derive(Debug, Clone, Default)]
pub struct LinePanel {
    pub title: String,
    pub x_label: String,
    pub y_label: String,
    /// A logarithmic x axis (values <= 0 are dropped).
    pub log_x: bool,
    /// A logarithmic y axis (values <= 0 are dropped).
    pub log_y: bool,
    /// A symmetric logarithmic y axis with linear scale `c` (matplotlib's "symlog"; overrides
    /// `log_y`): v is drawn at sign(v) log10(1 + |v| / c), about linear for |v| < c and
    /// logarithmic beyond, so values of both signs and many magnitudes fit. Ticks at 0 and
    /// +-10^k for 10^k >= c, labelled with their values.
    pub symlog_y: Option<f64>,
    pub lines: Vec<Line>,
    /// Horizontal dashed lines (label, y, colour); the label is for the caller's keys only.
    pub hlines: Vec<(String, f64, RGBColor)>,
    /// This panel's legend, drawn under its title (none when empty; see [`line_keys`]).
    pub keys: Vec<(Key, String)>,
}

/// The legend entries of the labelled lines of `lines` (solid, in their colours).
pub fn line_keys(lines: &[Line]) -> Vec<(Key, String)> {
    lines.iter().filter(|l| !l.label.is_empty()).map(|l| (Key::Line(l.color), l.label.clone())).collect()
}

pub(super) fn line_ranges(p: &LinePanel) -> Ranges {
    let range = |vals: Vec<f64>, log: bool, pad: f64| {
        if log {
            let (lo, hi) = padded_range(vals.into_iter().filter(|v| *v > 0.0).map(f64::log10), pad);
            (10f64.powf(lo), 10f64.powf(hi))
        } else {
            padded_range(vals.into_iter(), pad)
        }
    };
    let xs: Vec<f64> = p.lines.iter().flat_map(|l| l.points.iter().map(|pt| pt.0)).collect();
    let ys: Vec<f64> =
        p.lines.iter().flat_map(|l| l.points.iter().map(|pt| pt.1)).chain(p.hlines.iter().map(|h| h.1)).collect();
    let y = match p.symlog_y {
        Some(c) => {
            let (lo, hi) = padded_range(ys.into_iter().map(|v| symlog(v, c)), 0.05);
            (symlog_inv(lo, c), symlog_inv(hi, c))
        }
        None => range(ys, p.log_y, 0.05),
    };
    let log_y = p.log_y && p.symlog_y.is_none();
    Ranges { x: range(xs, p.log_x, 0.0), y, log_x: p.log_x, log_y, symlog_y: p.symlog_y }
}

pub(super) fn draw_lines(
    area: &DrawingArea<BitMapBackend<'_>, Shift>,
    p: &LinePanel,
    st: Style,
    f: &Frame,
) -> std::result::Result<(), String> {
    let plot = draw_header(area, st, &p.title, &p.keys, f.header)?;
    let Ranges { x: (x0, x1), y: (y0, y1), .. } = f.ranges;
    let b = chart_builder;
    let e = |e: DrawingAreaErrorKind<_>| e.to_string();
    if let Some(c) = p.symlog_y {
        let y = SymlogCoord::new((y0, y1), c);
        return if p.log_x {
            fill_lines(b(&plot, f).build_cartesian_2d((x0..x1).log_scale(), y).map_err(e)?, p, st, f)
        } else {
            fill_lines(b(&plot, f).build_cartesian_2d(x0..x1, y).map_err(e)?, p, st, f)
        };
    }
    match (p.log_x, p.log_y) {
        (false, false) => fill_lines(b(&plot, f).build_cartesian_2d(x0..x1, y0..y1).map_err(e)?, p, st, f),
        (true, false) => fill_lines(b(&plot, f).build_cartesian_2d((x0..x1).log_scale(), y0..y1).map_err(e)?, p, st, f),
        (false, true) => fill_lines(b(&plot, f).build_cartesian_2d(x0..x1, (y0..y1).log_scale()).map_err(e)?, p, st, f),
        (true, true) => {
            fill_lines(b(&plot, f).build_cartesian_2d((x0..x1).log_scale(), (y0..y1).log_scale()).map_err(e)?, p, st, f)
        }
    }
}

fn fill_lines<X: Ranged<ValueType = f64> + ValueFormatter<f64>, Y: Ranged<ValueType = f64> + ValueFormatter<f64>>(
    mut chart: Chart<'_, X, Y>,
    p: &LinePanel,
    st: Style,
    f: &Frame,
) -> std::result::Result<(), String> {
    draw_mesh(&mut chart, st, f, &p.x_label, &p.y_label)?;
    let (x0, x1) = f.ranges.x;
    let w = st.u(1.8).max(2);
    for (_, y, color) in &p.hlines {
        chart
            .draw_series(DashedLineSeries::new(vec![(x0, *y), (x1, *y)], st.u(7.0), st.u(5.0), color.stroke_width(w)))
            .map_err(|e| e.to_string())?;
    }
    for l in &p.lines {
        let keep = |pt: &(f64, f64)| {
            pt.0.is_finite() && pt.1.is_finite() && (!p.log_x || pt.0 > 0.0) && (!p.log_y || pt.1 > 0.0)
        };
        chart
            .draw_series(LineSeries::new(l.points.iter().copied().filter(keep), l.color.stroke_width(w)))
            .map_err(|e| e.to_string())?;
    }
    Ok(())
}
