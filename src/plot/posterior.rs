//! The posterior panel: a GP's mean and 2-sd band along one input, its data, a reference curve,
//! shading where there is no data, and markers (inducing inputs); the clipping of curves and
//! bands to the shown box.

use super::axes::{chart_builder, draw_mesh, Frame, Ranges};
use super::legend::{draw_header, marker_shape, Key};
use super::{colors, padded_range, RGBColor, Style};
use plotters::coord::Shift;
use plotters::prelude::*;

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
    /// The x interval the training data covers: x outside it is shaded (see [`region_key`](super::region_key)).
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

pub(super) fn posterior_ranges(p: &PosteriorPanel) -> Ranges {
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

/// The parts of the polyline `pts` inside the box `xr` x `yr` (cut where it crosses the edges).
pub(super) fn clip_polyline(pts: &[(f64, f64)], xr: (f64, f64), yr: (f64, f64)) -> Vec<Vec<(f64, f64)>> {
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
pub(super) fn band_polygon(x: &[f64], lower: &[f64], upper: &[f64], xr: (f64, f64), yr: (f64, f64)) -> Vec<(f64, f64)> {
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

pub(super) fn draw_posterior(
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
