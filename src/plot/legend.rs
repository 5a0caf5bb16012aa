//! Legends: the kinds of entry ([`Key`]), the usual entries of a posterior, their wrapping
//! into balanced rows, and the drawing of a legend and of a panel's header (title and legend).

use super::{colors, text_width, Style, FONT, KEY_PX, PANEL_TITLE_PX};
use plotters::coord::Shift;
use plotters::prelude::*;
use plotters::style::text_anchor::{HPos, Pos, VPos};

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
    /// A triangle marker ([`Markers`](super::Markers)): colour, filled.
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

/// The legend entry of a [`PosteriorPanel::data_region`](super::PosteriorPanel::data_region)'s shading.
pub fn region_key(label: &str) -> (Key, String) {
    (Key::Shade, label.to_string())
}

/// Height of a title of size `title_px` and `keys` wrapped in `width`.
pub(super) fn header_height(st: Style, title: &str, title_px: f64, keys: &[(Key, String)], width: i32) -> u32 {
    let t = if title.is_empty() {
        0.0
    } else {
        title.lines().count() as f64 * st.px(title_px * 1.3) + st.px(title_px * 0.25)
    };
    let rows = key_rows(st, keys, width).len() as f64;
    let k = if rows > 0.0 { rows * st.px(KEY_PX * 1.55) + st.px(3.0) } else { 0.0 };
    (t + k).round() as u32 + if t > 0.0 && k == 0.0 { st.u(3.0) } else { 0 }
}

/// Legend entries wrapped into rows of at most `width` pixels, as few rows as fit and those as
/// even as they can be: per row, the entries' indices.
pub(super) fn key_rows(st: Style, keys: &[(Key, String)], width: i32) -> Vec<Vec<usize>> {
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
pub(super) fn draw_keys(
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
pub(super) fn draw_header<'a>(
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

/// The corners of a triangle marker of half-width `size` pixels about its point, closed (the
/// first corner repeated), and its fill and edge colours.
pub(super) fn marker_shape(size: i32, color: RGBColor, filled: bool) -> (Vec<(i32, i32)>, RGBAColor, RGBColor) {
    let s = size;
    let corners = vec![(0, -s), (s, s * 7 / 10), (-s, s * 7 / 10), (0, -s)];
    if filled {
        (corners, color.mix(1.0), colors::GRAY)
    } else {
        (corners, WHITE.mix(0.0), color)
    }
}
