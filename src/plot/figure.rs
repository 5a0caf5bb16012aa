//! A figure: panels ([`Panel`]) on a [`Grid`], with shared or own axes, under a title and a
//! legend for all panels, written as a PNG ([`figure`]).

use super::axes::{right_margin, x_area_height, y_area_width, Frame, Ranges};
use super::legend::{draw_keys, header_height, key_rows, Key};
use super::lines::{draw_lines, line_ranges, LinePanel};
use super::posterior::{draw_posterior, posterior_ranges, PosteriorPanel};
use super::{register_font, Style, KEY_PX, PANEL_TITLE_PX, TICK_PX, TITLE_PX};
use crate::error::{Error, Result};
use plotters::prelude::*;
use plotters::style::text_anchor::{HPos, Pos, VPos};
use std::path::{Path, PathBuf};

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

/// Draws `panels` on a [`Grid`] under `title` and a legend of `keys` for all panels (none when
/// empty; see [`posterior_keys`](super::posterior_keys)), and writes the PNG to `path` (creating its folder).
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
