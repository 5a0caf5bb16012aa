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
//!
//! One file per part: [`figure`] lays out a grid of panels (figure.rs); the two kinds of panel,
//! a posterior ([`PosteriorPanel`], posterior.rs) and lines against an iteration ([`LinePanel`],
//! lines.rs); their legends (legend.rs) and axes (axes.rs). This file holds the sizes, the font
//! and the colours they share.

use plotters::prelude::*;
use std::path::PathBuf;
use std::sync::Once;

mod axes;
mod figure;
mod legend;
mod lines;
mod posterior;

pub use figure::{figure, Grid, Panel};
pub use legend::{posterior_keys, region_key, Key};
pub use lines::{line_keys, Line, LinePanel};
pub use posterior::{Markers, PosteriorPanel};

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

static FONT_BYTES: &[u8] = include_bytes!("../../assets/fonts/DejaVuSans.ttf");

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
