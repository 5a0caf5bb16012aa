//! PNG figures for the examples and `batchgp demo`: grids of panels, each a GP posterior
//! (mean, 2-sigma band, data, optionally the true function) or a set of lines (loss or a
//! hyperparameter against the iteration, with reference values as horizontal lines).
//!
//! Drawn with plotters' bitmap backend. Text uses DejaVu Sans, embedded in the library and
//! registered with plotters through `ab_glyph`, so plotting needs no system fontconfig or
//! freetype (license: assets/fonts/LICENSE-DejaVu.txt).

use crate::error::{Error, Result};
use plotters::coord::ranged1d::ValueFormatter;
use plotters::coord::Shift;
use plotters::prelude::*;
use plotters::style::text_anchor::{HPos, Pos, VPos};
use std::path::{Path, PathBuf};
use std::sync::Once;

/// The font family name every plot uses.
pub const FONT: &str = "sans-serif";

static FONT_BYTES: &[u8] = include_bytes!("../assets/fonts/DejaVuSans.ttf");

/// Registers the embedded font with plotters (idempotent; called by [`figure`]).
pub fn register_font() {
    static ONCE: Once = Once::new();
    ONCE.call_once(|| {
        // The font is embedded and known to parse; a failure would only lose the text.
        let _ = plotters::style::register_font(FONT, FontStyle::Normal, FONT_BYTES);
    });
}

/// Colours used across the figures (matplotlib's "tab10", which most readers know).
pub mod colors {
    use plotters::style::RGBColor;
    pub const BLUE: RGBColor = RGBColor(31, 119, 180);
    pub const ORANGE: RGBColor = RGBColor(255, 127, 14);
    pub const GREEN: RGBColor = RGBColor(44, 160, 44);
    pub const RED: RGBColor = RGBColor(214, 39, 40);
    pub const PURPLE: RGBColor = RGBColor(148, 103, 189);
    pub const BROWN: RGBColor = RGBColor(140, 86, 75);
    pub const GRAY: RGBColor = RGBColor(90, 90, 90);
    /// One colour per series, cycling.
    pub const CYCLE: [RGBColor; 6] = [BLUE, ORANGE, GREEN, RED, PURPLE, BROWN];
}

/// A posterior along one input: x (M,) with the mean and the lower/upper band at each x, the
/// training points to show, and optionally a reference curve (the true function).
#[derive(Debug, Clone, Default)]
pub struct PosteriorPanel {
    pub title: String,
    pub x_label: String,
    pub y_label: String,
    /// (M,) increasing.
    pub x: Vec<f64>,
    /// (M,) posterior mean.
    pub mean: Vec<f64>,
    /// (M,) lower edge of the band (mean - 2 sd).
    pub lower: Vec<f64>,
    /// (M,) upper edge of the band (mean + 2 sd).
    pub upper: Vec<f64>,
    /// Training points (x, y) to draw as dots.
    pub points: Vec<(f64, f64)>,
    /// A reference curve (x, y) (the true function, say), drawn dashed red.
    pub reference: Option<Vec<(f64, f64)>>,
}

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
    pub lines: Vec<Line>,
    /// Horizontal dashed lines (label, y, colour).
    pub hlines: Vec<(String, f64, RGBColor)>,
    pub legend: bool,
}

/// One panel of a [`figure`].
#[derive(Debug, Clone)]
pub enum Panel {
    Posterior(PosteriorPanel),
    Lines(LinePanel),
    /// Leaves the cell empty.
    Empty,
}

/// Draws `panels` row by row on a grid of `cols` columns, each cell `cell` = (width, height)
/// pixels, under `title` and a legend strip of `keys` (none when empty; see [`posterior_keys`]),
/// and writes the PNG to `path` (creating its folder).
///
/// # Errors
/// [`Error::Io`] naming the path when the folder or the file cannot be written.
pub fn figure(
    path: &Path,
    title: &str,
    keys: &[(Key, String)],
    panels: &[Panel],
    cols: usize,
    cell: (u32, u32),
) -> Result<PathBuf> {
    register_font();
    let io = |reason: String| Error::Io { path: path.display().to_string(), reason };
    if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
        std::fs::create_dir_all(dir).map_err(|e| io(e.to_string()))?;
    }
    let cols = cols.max(1);
    let rows = panels.len().div_ceil(cols).max(1);
    let title_h = if title.is_empty() { 0 } else { (cell.1 / 8).clamp(30, 44) };
    let key_h = if keys.is_empty() { 0 } else { 26 };
    let size = (cell.0 * cols as u32, cell.1 * rows as u32 + title_h + key_h);
    {
        let root = BitMapBackend::new(path, size).into_drawing_area();
        root.fill(&WHITE).map_err(|e| io(e.to_string()))?;
        let (top, body) = root.split_vertically(title_h);
        if title_h > 0 {
            let style =
                TextStyle::from((FONT, title_h as f64 * 0.55).into_font()).pos(Pos::new(HPos::Center, VPos::Center));
            top.draw_text(title, &style, (size.0 as i32 / 2, title_h as i32 / 2)).map_err(|e| io(e.to_string()))?;
        }
        let (strip, body) = body.split_vertically(key_h);
        if key_h > 0 {
            draw_keys(&strip, keys, size.0).map_err(io)?;
        }
        let cells = body.split_evenly((rows, cols));
        for (area, panel) in cells.iter().zip(panels) {
            let r = match panel {
                Panel::Posterior(p) => draw_posterior(area, p, cell),
                Panel::Lines(p) => draw_lines(area, p, cell),
                Panel::Empty => Ok(()),
            };
            r.map_err(io)?;
        }
        root.present().map_err(|e| io(e.to_string()))?;
    }
    Ok(path.to_path_buf())
}

/// How an entry of a figure's legend strip is drawn.
#[derive(Debug, Clone, Copy)]
pub enum Key {
    /// A filled band (the 2-sd region).
    Band(RGBColor),
    /// Data points.
    Dots,
    /// A solid line.
    Line(RGBColor),
    /// A dashed line (a reference curve or value).
    Dashed(RGBColor),
}

/// The legend of posterior panels: band, data, mean, and the reference curve when given.
pub fn posterior_keys(data: &str, reference: Option<&str>) -> Vec<(Key, String)> {
    let mut v = vec![
        (Key::Line(colors::BLUE), "posterior mean".to_string()),
        (Key::Band(colors::BLUE), "mean +/- 2 sd of y".to_string()),
        (Key::Dots, data.to_string()),
    ];
    if let Some(r) = reference {
        v.push((Key::Dashed(colors::RED), r.to_string()));
    }
    v
}

fn draw_keys(
    area: &DrawingArea<BitMapBackend<'_>, Shift>,
    keys: &[(Key, String)],
    width: u32,
) -> std::result::Result<(), String> {
    let font = (FONT, 15.0).into_font();
    let swatch = 26;
    let gap = 28;
    let widths: Vec<i32> = keys
        .iter()
        .map(|(_, label)| {
            area.estimate_text_size(label, &TextStyle::from(font.clone())).map(|(w, _)| w as i32 + swatch + 10)
        })
        .collect::<std::result::Result<_, _>>()
        .map_err(|e| e.to_string())?;
    let total: i32 = widths.iter().sum::<i32>() + gap * (keys.len() as i32 - 1);
    let mut x = ((width as i32 - total) / 2).max(4);
    let y = 13;
    let style = TextStyle::from(font.clone()).pos(Pos::new(HPos::Left, VPos::Center));
    for ((key, label), w) in keys.iter().zip(widths) {
        let e = |e: DrawingAreaErrorKind<_>| e.to_string();
        match key {
            Key::Band(c) => {
                area.draw(&Rectangle::new([(x, y - 6), (x + swatch - 4, y + 6)], c.mix(0.2).filled())).map_err(e)?
            }
            Key::Dots => {
                for dx in [5, 12, 19] {
                    area.draw(&Circle::new((x + dx, y + (dx % 3) - 1), 2, BLACK.mix(0.6).filled())).map_err(e)?;
                }
            }
            Key::Line(c) => {
                area.draw(&PathElement::new(vec![(x, y), (x + swatch - 4, y)], c.stroke_width(2))).map_err(e)?
            }
            Key::Dashed(c) => {
                for s in [0, 9, 18] {
                    area.draw(&PathElement::new(vec![(x + s, y), (x + s + 5, y)], c.stroke_width(2))).map_err(e)?;
                }
            }
        }
        area.draw_text(label, &style, (x + swatch + 4, y)).map_err(|e| e.to_string())?;
        x += w + gap;
    }
    Ok(())
}

/// Font sizes (title, labels, ticks) for a cell of this size.
fn font_sizes(cell: (u32, u32)) -> (f64, f64, f64) {
    let s = (cell.0.min(cell.1 * 4 / 3) as f64 / 400.0).clamp(0.45, 1.3);
    ((18.0 * s).max(10.0), (15.0 * s).max(9.0), (13.0 * s).max(8.0))
}

/// Min and max of the finite values, padded by `pad` of the span (a unit span when flat).
fn padded_range(values: impl Iterator<Item = f64>, pad: f64) -> (f64, f64) {
    let (lo, hi) =
        values.filter(|v| v.is_finite()).fold((f64::INFINITY, f64::NEG_INFINITY), |(a, b), v| (a.min(v), b.max(v)));
    if !lo.is_finite() {
        return (0.0, 1.0);
    }
    let span = if hi > lo { hi - lo } else { lo.abs().max(1.0) };
    (lo - pad * span, hi + pad * span)
}

type Chart<'a, X, Y> = ChartContext<'a, BitMapBackend<'a>, Cartesian2d<X, Y>>;

fn draw_posterior(
    area: &DrawingArea<BitMapBackend<'_>, Shift>,
    p: &PosteriorPanel,
    cell: (u32, u32),
) -> std::result::Result<(), String> {
    let (f_title, f_label, f_tick) = font_sizes(cell);
    let small = cell.0 < 300;
    let (x0, x1) = padded_range(p.x.iter().copied(), 0.0);
    let ys = p
        .lower
        .iter()
        .chain(&p.upper)
        .copied()
        .chain(p.points.iter().filter(|(x, _)| *x >= x0 && *x <= x1).map(|pt| pt.1))
        .chain(p.reference.iter().flat_map(|r| r.iter().map(|pt| pt.1)));
    let (y0, y1) = padded_range(ys, 0.05);
    let mut chart = ChartBuilder::on(area)
        .caption(&p.title, (FONT, f_title))
        .margin(if small { 4 } else { 10 })
        .x_label_area_size(if small {
            18
        } else if p.x_label.is_empty() {
            28
        } else {
            44
        })
        .y_label_area_size(if small {
            30
        } else if p.y_label.is_empty() {
            44
        } else {
            60
        })
        .build_cartesian_2d(x0..x1, y0..y1)
        .map_err(|e| e.to_string())?;
    draw_mesh(&mut chart, &p.x_label, &p.y_label, if small { (3, 3) } else { (8, 7) }, (f_label, f_tick))?;

    let band: Vec<(f64, f64)> =
        p.x.iter()
            .zip(&p.upper)
            .map(|(x, u)| (*x, *u))
            .chain(p.x.iter().zip(&p.lower).rev().map(|(x, l)| (*x, *l)))
            .collect();
    chart
        .draw_series(std::iter::once(Polygon::new(band, colors::BLUE.mix(0.2).filled())))
        .map_err(|e| e.to_string())?;
    let dot = if small || p.points.len() > 400 { 1 } else { 2 };
    chart
        .draw_series(
            p.points
                .iter()
                .filter(|(x, _)| *x >= x0 && *x <= x1)
                .map(|&pt| Circle::new(pt, dot, BLACK.mix(0.6).filled())),
        )
        .map_err(|e| e.to_string())?;
    if let Some(r) = &p.reference {
        chart
            .draw_series(DashedLineSeries::new(
                r.iter().copied(),
                6,
                4,
                colors::RED.stroke_width(if small { 1 } else { 2 }),
            ))
            .map_err(|e| e.to_string())?;
    }
    chart
        .draw_series(LineSeries::new(
            p.x.iter().zip(&p.mean).map(|(x, m)| (*x, *m)),
            colors::BLUE.stroke_width(if small { 1 } else { 2 }),
        ))
        .map_err(|e| e.to_string())?;
    Ok(())
}

fn legend<X: Ranged<ValueType = f64>, Y: Ranged<ValueType = f64>>(
    chart: &mut Chart<'_, X, Y>,
    size: f64,
) -> std::result::Result<(), String> {
    chart
        .configure_series_labels()
        .position(SeriesLabelPosition::UpperRight)
        .background_style(WHITE.mix(0.85))
        .border_style(BLACK.mix(0.3))
        .label_font((FONT, size))
        .draw()
        .map_err(|e| e.to_string())
}

fn draw_lines(
    area: &DrawingArea<BitMapBackend<'_>, Shift>,
    p: &LinePanel,
    cell: (u32, u32),
) -> std::result::Result<(), String> {
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
    let (x0, x1) = range(xs, p.log_x, 0.0);
    let (y0, y1) = range(ys, p.log_y, 0.05);
    let b = chart_builder;
    let e = |e: DrawingAreaErrorKind<_>| e.to_string();
    match (p.log_x, p.log_y) {
        (false, false) => fill_lines(b(area, p, cell).build_cartesian_2d(x0..x1, y0..y1).map_err(e)?, p, cell),
        (true, false) => {
            fill_lines(b(area, p, cell).build_cartesian_2d((x0..x1).log_scale(), y0..y1).map_err(e)?, p, cell)
        }
        (false, true) => {
            fill_lines(b(area, p, cell).build_cartesian_2d(x0..x1, (y0..y1).log_scale()).map_err(e)?, p, cell)
        }
        (true, true) => fill_lines(
            b(area, p, cell).build_cartesian_2d((x0..x1).log_scale(), (y0..y1).log_scale()).map_err(e)?,
            p,
            cell,
        ),
    }
}

fn chart_builder<'a, 'b>(
    area: &'a DrawingArea<BitMapBackend<'b>, Shift>,
    p: &LinePanel,
    cell: (u32, u32),
) -> ChartBuilder<'a, 'b, BitMapBackend<'b>> {
    let (f_title, _, _) = font_sizes(cell);
    let mut b = ChartBuilder::on(area);
    b.caption(&p.title, (FONT, f_title)).margin(10).x_label_area_size(44).y_label_area_size(66);
    b
}

/// The axes, labels and light grid every panel shares; `labels` is (x, y) label counts and
/// `fonts` (axis description, tick) sizes.
fn draw_mesh<X: Ranged<ValueType = f64> + ValueFormatter<f64>, Y: Ranged<ValueType = f64> + ValueFormatter<f64>>(
    chart: &mut Chart<'_, X, Y>,
    x_label: &str,
    y_label: &str,
    labels: (usize, usize),
    fonts: (f64, f64),
) -> std::result::Result<(), String> {
    chart
        .configure_mesh()
        .x_desc(x_label)
        .y_desc(y_label)
        .x_labels(labels.0)
        .y_labels(labels.1)
        .label_style((FONT, fonts.1))
        .axis_desc_style((FONT, fonts.0))
        .light_line_style(WHITE.mix(0.0))
        .bold_line_style(BLACK.mix(0.08))
        .x_label_formatter(&|v| short_number(*v))
        .y_label_formatter(&|v| short_number(*v))
        .draw()
        .map_err(|e| e.to_string())
}

fn fill_lines<X: Ranged<ValueType = f64> + ValueFormatter<f64>, Y: Ranged<ValueType = f64> + ValueFormatter<f64>>(
    mut chart: Chart<'_, X, Y>,
    p: &LinePanel,
    cell: (u32, u32),
) -> std::result::Result<(), String> {
    let (_, f_label, f_tick) = font_sizes(cell);
    draw_mesh(&mut chart, &p.x_label, &p.y_label, (6, 6), (f_label, f_tick))?;
    let (x0, x1) = {
        let r = chart.x_range();
        (r.start, r.end)
    };
    for (label, y, color) in &p.hlines {
        let c = *color;
        chart
            .draw_series(DashedLineSeries::new(vec![(x0, *y), (x1, *y)], 8, 5, c.stroke_width(2)))
            .map_err(|e| e.to_string())?
            .label(label.as_str())
            .legend(move |(x, y)| PathElement::new(vec![(x, y), (x + 16, y)], c.stroke_width(2)));
    }
    for l in &p.lines {
        let c = l.color;
        let keep = |pt: &(f64, f64)| {
            pt.0.is_finite() && pt.1.is_finite() && (!p.log_x || pt.0 > 0.0) && (!p.log_y || pt.1 > 0.0)
        };
        chart
            .draw_series(LineSeries::new(l.points.iter().copied().filter(keep), c.stroke_width(2)))
            .map_err(|e| e.to_string())?
            .label(l.label.as_str())
            .legend(move |(x, y)| PathElement::new(vec![(x, y), (x + 16, y)], c.stroke_width(2)));
    }
    if p.legend {
        legend(&mut chart, f_tick)?;
    }
    Ok(())
}

/// A tick label: plain for moderate magnitudes, scientific otherwise.
pub fn short_number(v: f64) -> String {
    let a = v.abs();
    if v == 0.0 {
        "0".into()
    } else if !(1e-3..1e5).contains(&a) {
        format!("{v:.0e}")
    } else if a >= 100.0 {
        format!("{v:.0}")
    } else {
        let s = format!("{v:.3}");
        let s = s.trim_end_matches('0').trim_end_matches('.');
        s.to_string()
    }
}

/// `n` evenly spaced values from `a` to `b` inclusive.
pub fn linspace(a: f64, b: f64, n: usize) -> Vec<f64> {
    match n {
        0 => Vec::new(),
        1 => vec![a],
        _ => (0..n).map(|i| a + (b - a) * i as f64 / (n - 1) as f64).collect(),
    }
}

/// The folder an example writes to: `$BATCHGP_OUT/<name>` when that variable is set, else
/// `out/<name>` (relative to the working directory).
pub fn out_dir(name: &str) -> PathBuf {
    let base = std::env::var_os("BATCHGP_OUT").map(PathBuf::from).unwrap_or_else(|| PathBuf::from("out"));
    base.join(name)
}
