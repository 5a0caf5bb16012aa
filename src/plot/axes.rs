//! A panel's axes: the shown ranges ([`Ranges`]), tick values (linear, logarithmic, symlog with
//! its plotters coordinate [`SymlogCoord`]), the label areas' sizes, the [`Frame`] a panel is
//! drawn in, and the mesh (axes, tick labels, light grid) every panel shares.

use super::{short_number, text_width, Style, FONT, LABEL_PX, TICK_PX};
use plotters::coord::ranged1d::ValueFormatter;
use plotters::coord::types::RangedCoordf64;
use plotters::coord::Shift;
use plotters::prelude::*;

/// The shown ranges of a panel.
#[derive(Debug, Clone, Copy)]
pub(super) struct Ranges {
    pub(super) x: (f64, f64),
    pub(super) y: (f64, f64),
    pub(super) log_x: bool,
    pub(super) log_y: bool,
    /// The linear scale c of a symlog y axis.
    pub(super) symlog_y: Option<f64>,
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
pub(super) fn symlog(v: f64, c: f64) -> f64 {
    v.signum() * (v.abs() / c).ln_1p() / std::f64::consts::LN_10
}

/// The value a symlog axis of linear scale `c` draws at `t` (the inverse of [`symlog`]).
pub(super) fn symlog_inv(t: f64, c: f64) -> f64 {
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

/// A symlog axis for plotters (see [`LinePanel::symlog_y`](super::LinePanel::symlog_y)).
#[derive(Clone)]
pub(super) struct SymlogCoord {
    pub(super) range: (f64, f64),
    pub(super) c: f64,
    /// The linear axis of symlog values it draws on.
    pub(super) inner: RangedCoordf64,
}

impl SymlogCoord {
    pub(super) fn new(range: (f64, f64), c: f64) -> Self {
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

/// Everything a panel needs to draw its plot inside its cell, worked out by [`figure`](super::figure).
#[derive(Debug, Clone, Copy)]
pub(super) struct Frame {
    pub(super) ranges: Ranges,
    /// Height of the title and legend above the plot.
    pub(super) header: u32,
    /// Label areas below and left of the plot.
    pub(super) x_area: u32,
    pub(super) y_area: u32,
    /// Whether tick labels and the axis description are drawn on each axis.
    pub(super) x_text: bool,
    pub(super) y_text: bool,
    /// Label counts (also the grid lines).
    pub(super) n_x: usize,
    pub(super) n_y: usize,
    /// Margins: right (room for the last x tick label), top (half a y tick label), left.
    pub(super) right: u32,
    pub(super) top: u32,
    pub(super) left: u32,
    /// Room below the plot's labels (before the next row's title).
    pub(super) bottom: u32,
}

/// Width of the y label area: tick marks, the widest tick label and the description.
pub(super) fn y_area_width(st: Style, r: Ranges, n: usize, desc: bool) -> u32 {
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
pub(super) fn x_area_height(st: Style, desc: bool) -> u32 {
    let desc_h = if desc { st.px(LABEL_PX * 1.2 + 2.0) } else { 0.0 };
    2 * st.tick() + st.u(TICK_PX * 1.05 + 1.0) + desc_h.round() as u32
}

/// Room right of the plot for half of the widest x tick label (the last one may sit at the end).
pub(super) fn right_margin(st: Style, r: Ranges, n: usize) -> u32 {
    let font = st.font(TICK_PX);
    let widest =
        tick_values(r.x, r.log_x, None, n).iter().map(|v| text_width(&font, &short_number(*v))).max().unwrap_or(0);
    (widest.max(0) as u32 / 2 + st.u(4.0)).max(st.u(10.0))
}

pub(super) type Chart<'a, X, Y> = ChartContext<'a, BitMapBackend<'a>, Cartesian2d<X, Y>>;

pub(super) fn chart_builder<'a, 'b>(
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

/// The axes, labels and light grid every panel shares.
pub(super) fn draw_mesh<
    X: Ranged<ValueType = f64> + ValueFormatter<f64>,
    Y: Ranged<ValueType = f64> + ValueFormatter<f64>,
>(
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
