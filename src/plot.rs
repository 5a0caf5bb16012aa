//! PNG figures for the examples and `batchgp demo`: grids of panels, each a GP posterior
//! (mean, 2-sigma band, data, optionally the true function and the region the data covers) or a
//! set of lines (loss or a hyperparameter against the iteration, with reference values as
//! horizontal lines).
//!
//! Every size is chosen for the figure as it is shown: a figure is assumed to be displayed
//! [`SHOWN_WIDTH`] pixels wide (GitHub's README column) when it is wider than that, and text,
//! margins and strokes are scaled so that tick labels are [`TICK_PX`] pixels high there, axis
//! labels and legends a little larger. A panel's legend is drawn under its own title (never over
//! the data); a legend for all panels goes under the figure's title. A [`Grid`] with shared
//! axes gives every panel the same x and y ranges and labels only the outer axes.
//!
//! Drawn with plotters' bitmap backend. Text uses DejaVu Sans, embedded in the library and
//! registered with plotters through `ab_glyph`, so plotting needs no system fontconfig or
//! freetype (license: assets/fonts/LICENSE-DejaVu.txt).

use crate::error::{Error, Result};
use plotters::coord::ranged1d::ValueFormatter;
use plotters::coord::types::RangedCoordf64;
use plotters::coord::Shift;
use plotters::prelude::*;
use plotters::style::text_anchor::{HPos, Pos, VPos};
use std::path::{Path, PathBuf};
use std::sync::Once;

/// The colour type of [`Line`] and [`Key`] (plotters' RGB colour).
pub use plotters::style::RGBColor;

/// The font family name every plot uses.
pub const FONT: &str = "sans-serif";

/// The width, in pixels, at which a figure is assumed to be shown when it is wider (the README's
/// column on GitHub). Text is sized for that width.
pub const SHOWN_WIDTH: f64 = 860.0;
/// Height of tick labels at the shown size, in pixels.
pub const TICK_PX: f64 = 14.0;
/// Axis descriptions at the shown size.
const LABEL_PX: f64 = 15.0;
/// Legend entries at the shown size.
const KEY_PX: f64 = 14.0;
/// Panel titles at the shown size.
const PANEL_TITLE_PX: f64 = 15.5;
/// The figure's title at the shown size.
const TITLE_PX: f64 = 18.0;

static FONT_BYTES: &[u8] = include_bytes!("../assets/fonts/DejaVuSans.ttf");

/// Registers the embedded font with plotters (idempotent; called by [`figure`]).
pub fn register_font() {
    static ONCE: Once = Once::new();
    ONCE.call_once(|| {
        // The font is embedded and known to parse; a failure would only lose the text.
        let _ = plotters::style::register_font(FONT, FontStyle::Normal, FONT_BYTES);
    });
}

/// Colours used across the figures (matplotlib's "tab10", which most readers know). Blue is
/// the posterior mean and its band in every figure, dashed red the true function.
pub mod colors {
    use plotters::style::RGBColor;
    pub const BLUE: RGBColor = RGBColor(31, 119, 180);
    pub const ORANGE: RGBColor = RGBColor(255, 127, 14);
    pub const GREEN: RGBColor = RGBColor(44, 160, 44);
    pub const RED: RGBColor = RGBColor(214, 39, 40);
    pub const PURPLE: RGBColor = RGBColor(148, 103, 189);
    pub const BROWN: RGBColor = RGBColor(140, 86, 75);
    pub const GRAY: RGBColor = RGBColor(90, 90, 90);
    /// The shading of x outside the training data.
    pub const SHADE: RGBColor = RGBColor(238, 238, 238);
    /// One colour per series, cycling.
    pub const CYCLE: [RGBColor; 6] = [BLUE, ORANGE, GREEN, RED, PURPLE, BROWN];
}

/// A posterior along one input: x (M,) with the mean and the lower/upper band at each x, the
/// training points to show, and optionally a reference curve (the true function).
#[derive(Debug, Clone, Default)]
pub struct PosteriorPanel {
    /// The title above the panel (one line per line of the string).
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
    /// The x range shown (default: that of `x`); curves are cut at its ends.
    pub x_range: Option<(f64, f64)>,
    /// The y range shown (default: band, points and reference, padded); what leaves it is cut.
    pub y_range: Option<(f64, f64)>,
    /// The x interval the training data covers: x outside it is shaded (see [`region_key`]).
    pub data_region: Option<(f64, f64)>,
    /// x intervals inside the data's span without training data (gaps), shaded the same way.
    pub gaps: Vec<(f64, f64)>,
    /// Sets of marked points drawn over everything else (inducing inputs, say).
    pub markers: Vec<Markers>,
    /// Thin grey segments drawn under the markers (how each inducing input moved, say).
    pub links: Vec<((f64, f64), (f64, f64))>,
    /// This panel's legend, drawn under its title (none when empty).
    pub keys: Vec<(Key, String)>,
}

/// Points drawn as triangles on a [`PosteriorPanel`] (legend: [`Key::Marker`]).
#[derive(Debug, Clone)]
pub struct Markers {
    pub points: Vec<(f64, f64)>,
    pub color: RGBColor,
    /// Filled (with a dark edge), or an outline only.
    pub filled: bool,
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

/// One panel of a [`figure`].
// A figure holds a few panels, built once: boxing the larger variant would buy nothing.
#[allow(clippy::large_enum_variant)]
#[derive(Debug, Clone)]
pub enum Panel {
    Posterior(PosteriorPanel),
    Lines(LinePanel),
    /// Leaves the cell empty.
    Empty,
}

/// How the panels of a [`figure`] are laid out.
#[derive(Debug, Clone, Copy)]
pub struct Grid {
    /// Panels per row (filled row by row).
    pub cols: usize,
    /// (width, height) of a cell in pixels. With shared axes the cells hold the panels' plots
    /// and titles; the outer axes' labels are added around the grid.
    pub cell: (u32, u32),
    /// One x and one y range for every panel (the union of theirs), with tick labels and axis
    /// descriptions (the first panel's) only on the left column and the bottom row.
    pub shared_axes: bool,
}

impl Grid {
    /// `cols` panels per row in cells of `cell` pixels, each panel with its own axes.
    pub fn new(cols: usize, cell: (u32, u32)) -> Self {
        Grid { cols: cols.max(1), cell, shared_axes: false }
    }

    /// The same grid with shared axes.
    pub fn shared_axes(self) -> Self {
        Grid { shared_axes: true, ..self }
    }
}

/// How an entry of a legend is drawn.
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
    /// The shading of x outside the training data.
    Shade,
    /// A triangle marker ([`Markers`]): colour, filled.
    Marker(RGBColor, bool),
}

/// The legend of posterior panels: mean, band, data, and the reference curve when given.
pub fn posterior_keys(data: &str, reference: Option<&str>) -> Vec<(Key, String)> {
    let mut v = vec![
        (Key::Line(colors::BLUE), "posterior mean".to_string()),
        (Key::Band(colors::BLUE), "mean ± 2 sd of y".to_string()),
        (Key::Dots, data.to_string()),
    ];
    if let Some(r) = reference {
        v.push((Key::Dashed(colors::RED), r.to_string()));
    }
    v
}

/// The legend entry of a [`PosteriorPanel::data_region`]'s shading.
pub fn region_key(label: &str) -> (Key, String) {
    (Key::Shade, label.to_string())
}

/// Sizes of a figure: every length is given at the shown size and multiplied by `k`, the
/// figure's width over [`SHOWN_WIDTH`] (at least 1).
#[derive(Debug, Clone, Copy)]
struct Style {
    k: f64,
}

impl Style {
    fn for_width(width: u32) -> Self {
        Style { k: (width as f64 / SHOWN_WIDTH).max(1.0) }
    }
    fn px(self, shown: f64) -> f64 {
        shown * self.k
    }
    fn i(self, shown: f64) -> i32 {
        self.px(shown).round() as i32
    }
    fn u(self, shown: f64) -> u32 {
        self.px(shown).round().max(0.0) as u32
    }
    fn font(self, shown: f64) -> FontDesc<'static> {
        (FONT, self.px(shown)).into_font()
    }
    /// Length of a tick mark.
    fn tick(self) -> u32 {
        self.u(4.0).max(3)
    }
}

/// Width in pixels of `text` in `font`.
fn text_width(font: &FontDesc<'_>, text: &str) -> i32 {
    font.box_size(text).map(|(w, _)| w as i32).unwrap_or((text.chars().count() as f64 * font.get_size() * 0.6) as i32)
}

/// The shown ranges of a panel.
#[derive(Debug, Clone, Copy)]
struct Ranges {
    x: (f64, f64),
    y: (f64, f64),
    log_x: bool,
    log_y: bool,
    /// The linear scale c of a symlog y axis.
    symlog_y: Option<f64>,
}

fn posterior_ranges(p: &PosteriorPanel) -> Ranges {
    let x = p.x_range.unwrap_or_else(|| padded_range(p.x.iter().copied(), 0.0));
    let inside = |v: &f64| *v >= x.0 && *v <= x.1;
    let y = p.y_range.unwrap_or_else(|| {
        let band =
            p.x.iter().zip(p.lower.iter().zip(&p.upper)).filter(|(v, _)| inside(v)).flat_map(|(_, (l, u))| [*l, *u]);
        let points = p.points.iter().filter(|pt| inside(&pt.0)).map(|pt| pt.1);
        let reference = p.reference.iter().flatten().filter(|pt| inside(&pt.0)).map(|pt| pt.1);
        let markers = p.markers.iter().flat_map(|m| &m.points).filter(|pt| inside(&pt.0)).map(|pt| pt.1);
        padded_range(band.chain(points).chain(reference).chain(markers), 0.05)
    });
    Ranges { x, y, log_x: false, log_y: false, symlog_y: None }
}

fn line_ranges(p: &LinePanel) -> Ranges {
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

/// A panel's title, x label, y label and legend.
type PanelTexts<'a> = (&'a str, &'a str, &'a str, &'a [(Key, String)]);

impl Panel {
    fn ranges(&self) -> Option<Ranges> {
        match self {
            Panel::Posterior(p) => Some(posterior_ranges(p)),
            Panel::Lines(p) => Some(line_ranges(p)),
            Panel::Empty => None,
        }
    }
    /// Title, x label, y label and legend.
    fn texts(&self) -> Option<PanelTexts<'_>> {
        match self {
            Panel::Posterior(p) => Some((&p.title, &p.x_label, &p.y_label, &p.keys)),
            Panel::Lines(p) => Some((&p.title, &p.x_label, &p.y_label, &p.keys)),
            Panel::Empty => None,
        }
    }
}

/// The tick values plotters will label on a range with at most `n` labels.
fn tick_values(r: (f64, f64), log: bool, symlog: Option<f64>, n: usize) -> Vec<f64> {
    if let Some(c) = symlog {
        symlog_ticks(r, c, n)
    } else if log {
        let c: LogCoord<f64> = (r.0..r.1).log_scale().into();
        c.key_points(n)
    } else {
        RangedCoordf64::from(r.0..r.1).key_points(n)
    }
}

/// Where a symlog axis of linear scale `c` draws `v`: sign(v) log10(1 + |v| / c).
fn symlog(v: f64, c: f64) -> f64 {
    v.signum() * (v.abs() / c).ln_1p() / std::f64::consts::LN_10
}

/// The value a symlog axis of linear scale `c` draws at `t` (the inverse of [`symlog`]).
fn symlog_inv(t: f64, c: f64) -> f64 {
    t.signum() * c * (10f64.powf(t.abs()) - 1.0)
}

/// Ticks of a symlog axis on `r`: 0 and +-10^k for 10^k >= c inside the range, every second
/// (third, ...) power dropped until at most `n` remain.
fn symlog_ticks(r: (f64, f64), c: f64, n: usize) -> Vec<f64> {
    let top = r.0.abs().max(r.1.abs());
    if !(top > 0.0 && c > 0.0) {
        return vec![0.0];
    }
    let (k0, k1) = (c.log10().ceil() as i32, top.log10().floor() as i32);
    let inside = |v: f64| v >= r.0 && v <= r.1;
    for step in 1.. {
        let mut ticks: Vec<f64> = (k0..=k1.max(k0))
            .filter(|k| (k - k0) % step == 0)
            .flat_map(|k| [-(10f64.powi(k)), 10f64.powi(k)])
            .chain([0.0])
            .filter(|v| inside(*v))
            .collect();
        if ticks.len() <= n.max(2) || step > 12 {
            ticks.sort_by(f64::total_cmp);
            return ticks;
        }
    }
    unreachable!()
}

/// A symlog axis for plotters (see [`LinePanel::symlog_y`]).
#[derive(Clone)]
struct SymlogCoord {
    range: (f64, f64),
    c: f64,
    /// The linear axis of symlog values it draws on.
    inner: RangedCoordf64,
}

impl SymlogCoord {
    fn new(range: (f64, f64), c: f64) -> Self {
        SymlogCoord { range, c, inner: (symlog(range.0, c)..symlog(range.1, c)).into() }
    }
}

impl Ranged for SymlogCoord {
    type FormatOption = plotters::coord::ranged1d::DefaultFormatting;
    type ValueType = f64;
    fn map(&self, value: &f64, limit: (i32, i32)) -> i32 {
        self.inner.map(&symlog(*value, self.c), limit)
    }
    fn key_points<H: plotters::coord::ranged1d::KeyPointHint>(&self, hint: H) -> Vec<f64> {
        symlog_ticks(self.range, self.c, hint.max_num_points())
    }
    fn range(&self) -> std::ops::Range<f64> {
        self.range.0..self.range.1
    }
}

/// Everything a panel needs to draw its plot inside its cell, worked out by [`figure`].
#[derive(Debug, Clone, Copy)]
struct Frame {
    ranges: Ranges,
    /// Height of the title and legend above the plot.
    header: u32,
    /// Label areas below and left of the plot.
    x_area: u32,
    y_area: u32,
    /// Whether tick labels and the axis description are drawn on each axis.
    x_text: bool,
    y_text: bool,
    /// Label counts (also the grid lines).
    n_x: usize,
    n_y: usize,
    /// Margins: right (room for the last x tick label), top (half a y tick label), left.
    right: u32,
    top: u32,
    left: u32,
    /// Room below the plot's labels (before the next row's title).
    bottom: u32,
}

/// Width of the y label area: tick marks, the widest tick label and the description.
fn y_area_width(st: Style, r: Ranges, n: usize, desc: bool) -> u32 {
    let font = st.font(TICK_PX);
    let widest = tick_values(r.y, r.log_y, r.symlog_y, n)
        .iter()
        .map(|v| text_width(&font, &short_number(*v)))
        .max()
        .unwrap_or(0);
    let desc_w = if desc { st.px(LABEL_PX * 1.2 + 2.0) } else { 0.0 };
    2 * st.tick() + widest.max(0) as u32 + st.u(5.0) + desc_w.round() as u32
}

/// Height of the x label area: tick marks, tick labels and the description.
fn x_area_height(st: Style, desc: bool) -> u32 {
    let desc_h = if desc { st.px(LABEL_PX * 1.2 + 2.0) } else { 0.0 };
    2 * st.tick() + st.u(TICK_PX * 1.05 + 1.0) + desc_h.round() as u32
}

/// Room right of the plot for half of the widest x tick label (the last one may sit at the end).
fn right_margin(st: Style, r: Ranges, n: usize) -> u32 {
    let font = st.font(TICK_PX);
    let widest =
        tick_values(r.x, r.log_x, None, n).iter().map(|v| text_width(&font, &short_number(*v))).max().unwrap_or(0);
    (widest.max(0) as u32 / 2 + st.u(4.0)).max(st.u(10.0))
}

/// Height of a title of size `title_px` and `keys` wrapped in `width`.
fn header_height(st: Style, title: &str, title_px: f64, keys: &[(Key, String)], width: i32) -> u32 {
    let t = if title.is_empty() {
        0.0
    } else {
        title.lines().count() as f64 * st.px(title_px * 1.3) + st.px(title_px * 0.25)
    };
    let rows = key_rows(st, keys, width).len() as f64;
    let k = if rows > 0.0 { rows * st.px(KEY_PX * 1.55) + st.px(3.0) } else { 0.0 };
    (t + k).round() as u32 + if t > 0.0 && k == 0.0 { st.u(3.0) } else { 0 }
}

/// Draws `panels` on a [`Grid`] under `title` and a legend of `keys` for all panels (none when
/// empty; see [`posterior_keys`]), and writes the PNG to `path` (creating its folder).
///
/// # Errors
/// [`Error::Io`] naming the path when the folder or the file cannot be written.
pub fn figure(path: &Path, title: &str, keys: &[(Key, String)], panels: &[Panel], grid: Grid) -> Result<PathBuf> {
    register_font();
    let io = |reason: String| Error::Io { path: path.display().to_string(), reason };
    if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
        std::fs::create_dir_all(dir).map_err(|e| io(e.to_string()))?;
    }
    let cols = grid.cols.max(1);
    let rows = panels.len().div_ceil(cols).max(1);
    let (cw, ch) = grid.cell;

    // Ranges, shared or not.
    let mut ranges: Vec<Option<Ranges>> = panels.iter().map(Panel::ranges).collect();
    if grid.shared_axes {
        let all: Vec<Ranges> = ranges.iter().flatten().copied().collect();
        if let Some(first) = all.first() {
            let u = all.iter().fold(*first, |a, r| Ranges {
                x: (a.x.0.min(r.x.0), a.x.1.max(r.x.1)),
                y: (a.y.0.min(r.y.0), a.y.1.max(r.y.1)),
                ..a
            });
            for r in ranges.iter_mut().flatten() {
                *r = u;
            }
        }
    }
    let (x_desc, y_desc) = panels.iter().find_map(Panel::texts).map(|t| (t.1, t.2)).unwrap_or(("", ""));

    // The scale: text is sized for the figure shown SHOWN_WIDTH wide. With shared axes the
    // y label area widens the figure, so the scale is worked out twice.
    let mut st = Style::for_width(cw * cols as u32);
    let label_counts = |st: Style, w: f64, h: f64| {
        (((w / st.px(TICK_PX * 3.5)) as usize).clamp(2, 10), ((h / st.px(TICK_PX * 2.6)) as usize).clamp(3, 10))
    };
    let shared_y_area = |st: Style| -> u32 {
        let r = ranges.iter().flatten().next();
        r.map(|r| y_area_width(st, *r, label_counts(st, cw as f64, ch as f64).1, !y_desc.is_empty())).unwrap_or(0)
    };
    let mut left_extra = 0;
    if grid.shared_axes {
        left_extra = shared_y_area(st);
        st = Style::for_width(cw * cols as u32 + left_extra);
        left_extra = shared_y_area(st);
    }
    let bottom_extra = if grid.shared_axes { x_area_height(st, !x_desc.is_empty()) + st.u(3.0) } else { 0 };
    let width = cw * cols as u32 + left_extra;

    let title_font = st.font(TITLE_PX);
    let title_h = if title.is_empty() { 0 } else { st.u(TITLE_PX * 1.7) };
    let key_rows_all = key_rows(st, keys, width as i32 - st.i(16.0));
    let key_h =
        if keys.is_empty() { 0 } else { (key_rows_all.len() as f64 * st.px(KEY_PX * 1.55) + st.px(6.0)) as u32 };

    // Per panel: header height (the row's tallest, so plots line up) and axes.
    let mut headers = vec![0u32; rows];
    for (i, p) in panels.iter().enumerate() {
        if let Some((t, _, _, k)) = p.texts() {
            headers[i / cols] = headers[i / cols].max(header_height(st, t, PANEL_TITLE_PX, k, cw as i32 - st.i(8.0)));
        }
    }
    let frames: Vec<Option<Frame>> = panels
        .iter()
        .enumerate()
        .map(|(i, p)| {
            let (r, (_, xl, yl, _)) = (ranges[i]?, p.texts()?);
            let header = headers[i / cols];
            let (first_col, bottom) = (i % cols == 0, i + cols >= panels.len());
            Some(if grid.shared_axes {
                let (n_x, n_y) = label_counts(st, cw as f64, (ch - header) as f64);
                let x_area = if bottom { bottom_extra - st.u(3.0) } else { st.tick() };
                let y_area = if first_col { left_extra } else { st.tick() };
                Frame {
                    ranges: r,
                    header,
                    x_area,
                    y_area,
                    x_text: bottom,
                    y_text: first_col,
                    n_x,
                    n_y,
                    right: right_margin(st, r, n_x).min(st.u(8.0)),
                    top: st.u(TICK_PX * 0.6),
                    left: 0,
                    bottom: st.u(3.0),
                }
            } else {
                let x_area = x_area_height(st, !xl.is_empty());
                let (n_x, n_y) = label_counts(st, cw as f64 * 0.8, (ch - header - x_area) as f64);
                Frame {
                    ranges: r,
                    header,
                    x_area,
                    y_area: y_area_width(st, r, n_y, !yl.is_empty()),
                    x_text: true,
                    y_text: true,
                    n_x,
                    n_y,
                    right: right_margin(st, r, n_x),
                    top: st.u(TICK_PX * 0.6),
                    left: st.u(4.0),
                    bottom: st.u(10.0),
                }
            })
        })
        .collect();

    let height = title_h + key_h + ch * rows as u32 + bottom_extra;
    {
        let root = BitMapBackend::new(path, (width, height)).into_drawing_area();
        root.fill(&WHITE).map_err(|e| io(e.to_string()))?;
        let (top, body) = root.split_vertically(title_h);
        if title_h > 0 {
            let style = TextStyle::from(title_font).pos(Pos::new(HPos::Center, VPos::Center));
            top.draw_text(title, &style, (width as i32 / 2, title_h as i32 / 2)).map_err(|e| io(e.to_string()))?;
        }
        let (strip, body) = body.split_vertically(key_h);
        if key_h > 0 {
            draw_keys(&strip, st, keys, &key_rows_all, st.i(3.0), width as i32).map_err(io)?;
        }
        let xs: Vec<u32> = (1..cols as u32).map(|c| left_extra + c * cw).collect();
        let ys: Vec<u32> = (1..rows as u32).map(|r| r * ch).collect();
        let cells = body.split_by_breakpoints(xs, ys);
        for ((area, panel), frame) in cells.iter().zip(panels).zip(&frames) {
            let Some(frame) = frame else { continue };
            let r = match panel {
                Panel::Posterior(p) => draw_posterior(area, p, st, frame, (x_desc, y_desc), grid.shared_axes),
                Panel::Lines(p) => draw_lines(area, p, st, frame),
                Panel::Empty => Ok(()),
            };
            r.map_err(io)?;
        }
        root.present().map_err(|e| io(e.to_string()))?;
    }
    Ok(path.to_path_buf())
}

/// Legend entries wrapped into rows of at most `width` pixels, as few rows as fit and those as
/// even as they can be: per row, the entries' indices.
fn key_rows(st: Style, keys: &[(Key, String)], width: i32) -> Vec<Vec<usize>> {
    let rows = wrap_keys(st, keys, width).len();
    // The narrowest width that still needs no more rows.
    let (mut lo, mut hi) = (1, width.max(1));
    while lo < hi {
        let mid = (lo + hi) / 2;
        if wrap_keys(st, keys, mid).len() <= rows {
            hi = mid;
        } else {
            lo = mid + 1;
        }
    }
    wrap_keys(st, keys, hi)
}

/// Legend entries wrapped greedily into rows of at most `width` pixels.
fn wrap_keys(st: Style, keys: &[(Key, String)], width: i32) -> Vec<Vec<usize>> {
    let font = st.font(KEY_PX);
    let gap = st.i(18.0);
    let mut rows: Vec<Vec<usize>> = Vec::new();
    let mut used = 0;
    for (i, (_, label)) in keys.iter().enumerate() {
        let w = key_width(st, &font, label);
        match rows.last_mut() {
            Some(row) if used + gap + w <= width => {
                row.push(i);
                used += gap + w;
            }
            _ => {
                rows.push(vec![i]);
                used = w;
            }
        }
    }
    rows
}

fn key_width(st: Style, font: &FontDesc<'_>, label: &str) -> i32 {
    st.i(26.0) + text_width(font, label)
}

/// Draws the legend `keys` laid out in `rows`, centred in `width`, from `top` down.
fn draw_keys(
    area: &DrawingArea<BitMapBackend<'_>, Shift>,
    st: Style,
    keys: &[(Key, String)],
    rows: &[Vec<usize>],
    top: i32,
    width: i32,
) -> std::result::Result<(), String> {
    let font = st.font(KEY_PX);
    let gap = st.i(18.0);
    let row_h = st.px(KEY_PX * 1.55);
    let swatch = st.i(20.0);
    let style = TextStyle::from(font.clone()).pos(Pos::new(HPos::Left, VPos::Center));
    let e = |e: DrawingAreaErrorKind<_>| e.to_string();
    let line_w = st.u(2.0).max(2);
    for (r, row) in rows.iter().enumerate() {
        let widths: Vec<i32> = row.iter().map(|&i| key_width(st, &font, &keys[i].1)).collect();
        let total: i32 = widths.iter().sum::<i32>() + gap * (row.len() as i32 - 1);
        let mut x = ((width - total) / 2).max(st.i(4.0));
        let y = top + (row_h * (r as f64 + 0.5)).round() as i32;
        for (&i, w) in row.iter().zip(widths) {
            let (key, label) = &keys[i];
            let half = st.i(6.0);
            match key {
                Key::Band(c) => area
                    .draw(&Rectangle::new([(x, y - half), (x + swatch, y + half)], c.mix(0.2).filled()))
                    .map_err(e)?,
                Key::Shade => {
                    area.draw(&Rectangle::new([(x, y - half), (x + swatch, y + half)], colors::SHADE.filled()))
                        .map_err(e)?;
                    area.draw(&Rectangle::new([(x, y - half), (x + swatch, y + half)], colors::GRAY.mix(0.5)))
                        .map_err(e)?
                }
                Key::Dots => {
                    for (j, dy) in [(0, 1), (1, -2), (2, 0)] {
                        let cx = x + st.i(3.0) + j * (swatch - st.i(6.0)) / 2;
                        area.draw(&Circle::new((cx, y + st.i(dy as f64)), st.u(2.0).max(2), BLACK.mix(0.6).filled()))
                            .map_err(e)?;
                    }
                }
                Key::Line(c) => {
                    area.draw(&PathElement::new(vec![(x, y), (x + swatch, y)], c.stroke_width(line_w))).map_err(e)?
                }
                Key::Marker(c, filled) => {
                    let (corners, fill, edge) = marker_shape(st.i(5.0).max(3), *c, *filled);
                    let shape = EmptyElement::at((x + swatch / 2, y))
                        + Polygon::new(corners.clone(), fill.filled())
                        + PathElement::new(corners, edge.stroke_width(st.u(1.0).max(1)));
                    area.draw(&shape).map_err(e)?
                }
                Key::Dashed(c) => {
                    let d = swatch / 7;
                    for s in [0, 3, 6] {
                        area.draw(&PathElement::new(
                            vec![(x + s * d, y), (x + (s + 2) * d, y)],
                            c.stroke_width(line_w),
                        ))
                        .map_err(e)?;
                    }
                }
            }
            area.draw_text(label, &style, (x + swatch + st.i(6.0), y)).map_err(|e| e.to_string())?;
            x += w + gap;
        }
    }
    Ok(())
}

/// Draws a panel's title and legend at the top of `area` and returns the area left for the plot.
fn draw_header<'a>(
    area: &DrawingArea<BitMapBackend<'a>, Shift>,
    st: Style,
    title: &str,
    keys: &[(Key, String)],
    header: u32,
) -> std::result::Result<DrawingArea<BitMapBackend<'a>, Shift>, String> {
    let (w, _) = area.dim_in_pixel();
    let (top, plot) = area.split_vertically(header);
    let mut y = 0;
    if !title.is_empty() {
        // One line of text per line of the title. A line that would not fit is shrunk (down to
        // 85%) rather than cut.
        let line_h = st.px(PANEL_TITLE_PX * 1.3);
        let mut at = st.px(PANEL_TITLE_PX * 0.15);
        for line in title.lines() {
            let mut font = st.font(PANEL_TITLE_PX);
            let tw = text_width(&font, line);
            let room = w as i32 - st.i(6.0);
            if tw > room {
                font = (FONT, st.px(PANEL_TITLE_PX) * (room as f64 / tw as f64).max(0.85)).into_font();
            }
            let style = TextStyle::from(font).pos(Pos::new(HPos::Center, VPos::Center));
            top.draw_text(line, &style, (w as i32 / 2, (at + line_h / 2.0).round() as i32))
                .map_err(|e| e.to_string())?;
            at += line_h;
        }
        y = (at + st.px(PANEL_TITLE_PX * 0.1)).round() as i32;
    }
    if !keys.is_empty() {
        let rows = key_rows(st, keys, w as i32 - st.i(8.0));
        draw_keys(&top, st, keys, &rows, y, w as i32)?;
    }
    Ok(plot)
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

/// The parts of the polyline `pts` inside the box `xr` x `yr` (cut where it crosses the edges).
fn clip_polyline(pts: &[(f64, f64)], xr: (f64, f64), yr: (f64, f64)) -> Vec<Vec<(f64, f64)>> {
    let mut out = Vec::new();
    let mut cur: Vec<(f64, f64)> = Vec::new();
    for w in pts.windows(2) {
        match clip_segment(w[0], w[1], xr, yr) {
            Some((a, b)) => {
                if cur.last() != Some(&a) {
                    if cur.len() > 1 {
                        out.push(std::mem::take(&mut cur));
                    }
                    cur.clear();
                    cur.push(a);
                }
                cur.push(b);
            }
            None => {
                if cur.len() > 1 {
                    out.push(std::mem::take(&mut cur));
                }
                cur.clear();
            }
        }
    }
    if cur.len() > 1 {
        out.push(cur);
    }
    out
}

/// Liang-Barsky: the part of the segment p-q inside the box, if any.
fn clip_segment(p: (f64, f64), q: (f64, f64), xr: (f64, f64), yr: (f64, f64)) -> Option<((f64, f64), (f64, f64))> {
    if !(p.0.is_finite() && p.1.is_finite() && q.0.is_finite() && q.1.is_finite()) {
        return None;
    }
    let (dx, dy) = (q.0 - p.0, q.1 - p.1);
    let (mut t0, mut t1) = (0.0f64, 1.0f64);
    for (den, num) in [(-dx, p.0 - xr.0), (dx, xr.1 - p.0), (-dy, p.1 - yr.0), (dy, yr.1 - p.1)] {
        if den == 0.0 {
            if num < 0.0 {
                return None;
            }
        } else {
            let t = num / den;
            if den < 0.0 {
                t0 = t0.max(t);
            } else {
                t1 = t1.min(t);
            }
        }
    }
    if t0 > t1 {
        return None;
    }
    let at = |t: f64| {
        if t == 0.0 {
            p
        } else if t == 1.0 {
            q
        } else {
            (p.0 + t * dx, p.1 + t * dy)
        }
    };
    Some((at(t0), at(t1)))
}

/// The band between `lower` and `upper` over `x`, cut to `xr` (interpolated at its ends) and
/// clamped to `yr`, as a polygon.
fn band_polygon(x: &[f64], lower: &[f64], upper: &[f64], xr: (f64, f64), yr: (f64, f64)) -> Vec<(f64, f64)> {
    let n = x.len().min(lower.len()).min(upper.len());
    let interp = |xv: f64, v: &[f64]| -> Option<f64> {
        let j = x[..n].windows(2).position(|w| w[0] <= xv && xv <= w[1])?;
        let t = if x[j + 1] > x[j] { (xv - x[j]) / (x[j + 1] - x[j]) } else { 0.0 };
        Some(v[j] + t * (v[j + 1] - v[j]))
    };
    let mut col: Vec<(f64, f64, f64)> = Vec::with_capacity(n + 2);
    if let (Some(l), Some(u)) = (interp(xr.0, lower), interp(xr.0, upper)) {
        col.push((xr.0, l, u));
    }
    col.extend((0..n).filter(|&i| x[i] > xr.0 && x[i] < xr.1).map(|i| (x[i], lower[i], upper[i])));
    if let (Some(l), Some(u)) = (interp(xr.1, lower), interp(xr.1, upper)) {
        col.push((xr.1, l, u));
    }
    let c = |v: f64| v.clamp(yr.0, yr.1);
    col.iter().map(|&(a, _, u)| (a, c(u))).chain(col.iter().rev().map(|&(a, l, _)| (a, c(l)))).collect()
}

type Chart<'a, X, Y> = ChartContext<'a, BitMapBackend<'a>, Cartesian2d<X, Y>>;

fn chart_builder<'a, 'b>(
    area: &'a DrawingArea<BitMapBackend<'b>, Shift>,
    f: &Frame,
) -> ChartBuilder<'a, 'b, BitMapBackend<'b>> {
    let mut b = ChartBuilder::on(area);
    b.margin_top(f.top)
        .margin_right(f.right)
        .margin_left(f.left)
        .margin_bottom(f.bottom)
        .x_label_area_size(f.x_area)
        .y_label_area_size(f.y_area);
    b
}

fn draw_posterior(
    area: &DrawingArea<BitMapBackend<'_>, Shift>,
    p: &PosteriorPanel,
    st: Style,
    f: &Frame,
    shared_desc: (&str, &str),
    shared: bool,
) -> std::result::Result<(), String> {
    let plot = draw_header(area, st, &p.title, &p.keys, f.header)?;
    let Ranges { x: (x0, x1), y: (y0, y1), .. } = f.ranges;
    let mut chart = chart_builder(&plot, f).build_cartesian_2d(x0..x1, y0..y1).map_err(|e| e.to_string())?;
    let (xd, yd) = if shared { shared_desc } else { (p.x_label.as_str(), p.y_label.as_str()) };
    draw_mesh(&mut chart, st, f, xd, yd)?;
    let err = |e: DrawingAreaErrorKind<_>| e.to_string();

    let thin = f.n_x <= 3;
    let stroke = st.u(if thin { 1.3 } else { 1.8 }).max(1);
    // Shaded x intervals without data (outside the data region, and gaps), dashed edges.
    let mut shaded: Vec<(f64, f64)> = p.gaps.clone();
    let mut edges: Vec<f64> = p.gaps.iter().flat_map(|g| [g.0, g.1]).collect();
    if let Some((a, b)) = p.data_region {
        shaded.extend([(x0, a.min(x1)), (b.max(x0), x1)]);
        edges.extend([a, b]);
    }
    for (lo, hi) in shaded {
        let (lo, hi) = (lo.max(x0), hi.min(x1));
        if hi > lo {
            chart
                .draw_series(std::iter::once(Rectangle::new([(lo, y0), (hi, y1)], colors::SHADE.filled())))
                .map_err(err)?;
        }
    }
    for edge in edges {
        if edge > x0 && edge < x1 {
            chart
                .draw_series(DashedLineSeries::new(
                    vec![(edge, y0), (edge, y1)],
                    st.u(4.0),
                    st.u(3.0),
                    colors::GRAY.mix(0.7).stroke_width(st.u(1.0).max(1)),
                ))
                .map_err(err)?;
        }
    }
    let band = band_polygon(&p.x, &p.lower, &p.upper, (x0, x1), (y0, y1));
    if band.len() > 2 {
        chart.draw_series(std::iter::once(Polygon::new(band, colors::BLUE.mix(0.2).filled()))).map_err(err)?;
    }
    let inside = |pt: &&(f64, f64)| pt.0 >= x0 && pt.0 <= x1 && pt.1 >= y0 && pt.1 <= y1;
    let dense = p.points.len() > 400;
    let dot = st.u(if thin || dense { 1.0 } else { 1.6 }).max(1);
    // Dense data lighter, so that the band shows through.
    let alpha = if dense { 0.4 } else { 0.6 };
    chart
        .draw_series(p.points.iter().filter(inside).map(|&pt| Circle::new(pt, dot, BLACK.mix(alpha).filled())))
        .map_err(err)?;
    if let Some(r) = &p.reference {
        for piece in clip_polyline(r, (x0, x1), (y0, y1)) {
            chart
                .draw_series(DashedLineSeries::new(piece, st.u(6.0), st.u(4.0), colors::RED.stroke_width(stroke)))
                .map_err(err)?;
        }
    }
    let mean: Vec<(f64, f64)> = p.x.iter().zip(&p.mean).map(|(x, m)| (*x, *m)).collect();
    for piece in clip_polyline(&mean, (x0, x1), (y0, y1)) {
        chart.draw_series(LineSeries::new(piece, colors::BLUE.stroke_width(stroke))).map_err(err)?;
    }
    for &(a, b) in &p.links {
        for piece in clip_polyline(&[a, b], (x0, x1), (y0, y1)) {
            chart
                .draw_series(LineSeries::new(piece, colors::GRAY.mix(0.6).stroke_width(st.u(1.0).max(1))))
                .map_err(err)?;
        }
    }
    let size = st.i(if thin { 4.0 } else { 5.0 }).max(3);
    let edge_w = st.u(1.0).max(1);
    for m in &p.markers {
        let (corners, fill, edge) = marker_shape(size, m.color, m.filled);
        let shapes = m.points.iter().filter(inside).map(|&pt| {
            EmptyElement::at(pt)
                + Polygon::new(corners.clone(), fill.filled())
                + PathElement::new(corners.clone(), edge.stroke_width(edge_w))
        });
        chart.draw_series(shapes).map_err(err)?;
    }
    Ok(())
}

/// The corners of a triangle marker of half-width `size` pixels about its point, closed (the
/// first corner repeated), and its fill and edge colours.
fn marker_shape(size: i32, color: RGBColor, filled: bool) -> (Vec<(i32, i32)>, RGBAColor, RGBColor) {
    let s = size;
    let corners = vec![(0, -s), (s, s * 7 / 10), (-s, s * 7 / 10), (0, -s)];
    if filled {
        (corners, color.mix(1.0), colors::GRAY)
    } else {
        (corners, WHITE.mix(0.0), color)
    }
}

fn draw_lines(
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

/// The axes, labels and light grid every panel shares.
fn draw_mesh<X: Ranged<ValueType = f64> + ValueFormatter<f64>, Y: Ranged<ValueType = f64> + ValueFormatter<f64>>(
    chart: &mut Chart<'_, X, Y>,
    st: Style,
    f: &Frame,
    x_label: &str,
    y_label: &str,
) -> std::result::Result<(), String> {
    let label = |v: &f64| short_number(*v);
    let blank = |_: &f64| String::new();
    chart
        .configure_mesh()
        .x_desc(if f.x_text { x_label } else { "" })
        .y_desc(if f.y_text { y_label } else { "" })
        .x_labels(f.n_x)
        .y_labels(f.n_y)
        .set_all_tick_mark_size(st.tick())
        .label_style((FONT, st.px(TICK_PX)))
        .axis_desc_style((FONT, st.px(LABEL_PX)))
        .axis_style(BLACK.mix(0.7).stroke_width(st.u(1.0).max(1)))
        .light_line_style(WHITE.mix(0.0))
        .bold_line_style(BLACK.mix(0.08))
        .x_label_formatter(if f.x_text { &label } else { &blank })
        .y_label_formatter(if f.y_text { &label } else { &blank })
        .draw()
        .map_err(|e| e.to_string())
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

/// A tick label: plain for moderate magnitudes, scientific otherwise.
pub fn short_number(v: f64) -> String {
    let a = v.abs();
    if v == 0.0 || a < 1e-12 {
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn polyline_is_cut_at_the_box() {
        let pts = [(-1.0, 0.0), (0.0, 0.0), (1.0, 3.0), (2.0, 0.0), (3.0, 0.0)];
        let parts = clip_polyline(&pts, (-0.5, 2.5), (-1.0, 1.5));
        assert_eq!(parts.len(), 2);
        assert_eq!(parts[0].first(), Some(&(-0.5, 0.0)));
        assert!((parts[0].last().unwrap().1 - 1.5).abs() < 1e-12);
        assert_eq!(parts[1].last(), Some(&(2.5, 0.0)));
    }

    #[test]
    fn band_is_cut_and_clamped() {
        let x = [0.0, 1.0, 2.0];
        let poly = band_polygon(&x, &[-1.0, -5.0, -1.0], &[1.0, 5.0, 1.0], (0.5, 2.0), (-2.0, 2.0));
        assert_eq!(poly.first(), Some(&(0.5, 2.0)));
        assert!(poly.iter().all(|p| p.0 >= 0.5 && p.1.abs() <= 2.0));
    }
}
