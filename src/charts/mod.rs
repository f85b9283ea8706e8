//! Charts as functions of data, generic over plotters' `DrawingBackend`: the page draws them on a
//! canvas, exports use the SVG backend. No DOM, no wgpu. Each drawing function returns the
//! [`Frame`] it drew in, so the page can turn the pointer's pixel back into data values; the
//! hover texts are plain functions of the same data ([`line_hover`], [`grid_hover`]).

pub mod figures;

use plotters::coord::Shift;
use plotters::prelude::*;

/// A colour-blind-safe colour per rule (Okabe–Ito): μPC blue, standard PC vermillion, BP Depth-μP
/// green, BP standard reddish purple, standard PC without skips orange.
pub fn rule_color(rule: &str) -> RGBColor {
    match rule {
        "mupc" => RGBColor(0x00, 0x72, 0xB2),
        "sp" => RGBColor(0xD5, 0x5E, 0x00),
        "bp_mup" => RGBColor(0x00, 0x9E, 0x73),
        "bp_sp" => RGBColor(0xCC, 0x79, 0xA7),
        "sp_noskip" => RGBColor(0xE6, 0x9F, 0x00),
        _ => RGBColor(0x55, 0x55, 0x55),
    }
}

/// One curve.
#[derive(Clone, Debug, PartialEq)]
pub struct Line {
    /// Legend text.
    pub label: String,
    /// Colour.
    pub color: RGBColor,
    /// `(x, y)` points in x order.
    pub points: Vec<(f64, f64)>,
    /// Drawn faint (a previous run kept for comparison).
    pub faded: bool,
    /// Where the run diverged: a cross at this x, with this note.
    pub diverged_at: Option<(f64, String)>,
    /// A shaded band `(x, low, high)` around the line (the spread over seeds).
    pub band: Vec<(f64, f64, f64)>,
}

thread_local! {
    static EMPHASIS: std::cell::Cell<f64> = const { std::cell::Cell::new(1.0) };
}

/// Scales every chart's type and lines from now on (1: normal; presentation mode uses more).
pub fn set_emphasis(scale: f64) {
    EMPHASIS.with(|e| e.set(scale.clamp(0.5, 4.0)));
}

/// `px` at the current emphasis.
fn em(px: u32) -> u32 {
    EMPHASIS.with(|e| (px as f64 * e.get()).round() as u32)
}

/// Axis descriptions and scale.
#[derive(Clone, Debug, PartialEq)]
pub struct Axes {
    /// Below the x axis.
    pub x_desc: String,
    /// Beside the y axis.
    pub y_desc: String,
    /// Logarithmic y (values ≤ 0 or not finite are left out).
    pub log_y: bool,
    /// Base-2 logarithmic x (depths 1, 2, 4, …).
    pub log_x: bool,
}

/// Where a chart's plotting area landed, in pixels, and the data ranges it shows (a log axis's
/// range is in log10 units).
#[derive(Clone, Debug, PartialEq)]
pub struct Frame {
    /// Pixel x range of the plotting area.
    pub px: (i32, i32),
    /// Pixel y range of the plotting area (top, bottom).
    pub py: (i32, i32),
    /// Data x range.
    pub x: (f64, f64),
    /// Data y range (log10 units on a log axis).
    pub y: (f64, f64),
    /// The y axis is logarithmic.
    pub log_y: bool,
    /// The x axis is base-2 logarithmic (its range in log2 units).
    pub log_x: bool,
}

impl Frame {
    /// The data point under pixel `(px, py)`, or `None` outside the plotting area; on a log axis
    /// y is returned in data units.
    pub fn to_data(&self, px: f64, py: f64) -> Option<(f64, f64)> {
        let (x0, x1) = (self.px.0 as f64, self.px.1 as f64);
        let (y0, y1) = (self.py.0 as f64, self.py.1 as f64);
        if px < x0 || px > x1 || py < y0 || py > y1 || x1 <= x0 || y1 <= y0 {
            return None;
        }
        let x = self.x.0 + (px - x0) / (x1 - x0) * (self.x.1 - self.x.0);
        let y = self.y.1 - (py - y0) / (y1 - y0) * (self.y.1 - self.y.0);
        Some((if self.log_x { 2f64.powf(x) } else { x }, if self.log_y { 10f64.powf(y) } else { y }))
    }
}

/// A value as plotted: log10 on a log axis; `None` when it cannot be drawn.
fn plotted(v: f64, log: bool) -> Option<f64> {
    match (log, v.is_finite()) {
        (_, false) => None,
        (true, _) if v <= 0.0 => None,
        (true, _) => Some(v.log10()),
        (false, _) => Some(v),
    }
}

/// A range that holds every value, padded by 5 % (and widened when all values are equal).
pub fn padded_range(values: impl Iterator<Item = f64>) -> (f64, f64) {
    let (lo, hi) = values.fold((f64::INFINITY, f64::NEG_INFINITY), |(a, b), v| (a.min(v), b.max(v)));
    if !lo.is_finite() || !hi.is_finite() {
        return (0.0, 1.0);
    }
    let pad = if hi > lo { 0.05 * (hi - lo) } else { 0.5 * lo.abs().max(1.0) };
    (lo - pad, hi + pad)
}

fn err<E: std::fmt::Debug>(e: E) -> String {
    format!("drawing failed: {e:?}")
}

/// Tick labels: plain numbers, or `10^v` on a log axis, with enough digits to tell ticks
/// `span` apart (in plotted units: decades on a log axis).
fn tick(v: f64, log: bool, span: f64) -> String {
    let v = if log { 10f64.powf(v) } else { v };
    let a = v.abs();
    // Significant digits: 1 for ticks a decade or more apart, more as the span narrows.
    let digits = if log { (1.0 - span.max(1e-6).log10()).ceil().clamp(1.0, 6.0) as usize } else { 0 };
    if log && span >= 1.0 && a != 0.0 && !(1e-2..1e4).contains(&a) {
        format!("{v:.0e}")
    } else if log {
        let scale = if a > 0.0 { a.log10().floor() as i32 } else { 0 };
        let decimals = (digits as i32 - 1 - scale).clamp(0, 8) as usize;
        if !(1e-3..1e5).contains(&a) && a != 0.0 {
            format!("{v:.*e}", digits.saturating_sub(1))
        } else {
            format!("{v:.decimals$}")
        }
    } else if a >= 100.0 || v.fract() == 0.0 || span >= 20.0 {
        format!("{v:.0}")
    } else if span >= 2.0 {
        format!("{v:.1}")
    } else {
        format!("{v:.2}")
    }
}

/// Draws lines on `area` (cleared first) with axes, a legend and divergence marks.
pub fn draw_lines<DB: DrawingBackend>(
    area: &DrawingArea<DB, Shift>,
    axes: &Axes,
    lines: &[Line],
    empty_note: &str,
) -> Result<Frame, String> {
    area.fill(&WHITE).map_err(err)?;
    let (log, log_x) = (axes.log_y, axes.log_x);
    let px = move |x: f64| if log_x { (x > 0.0).then(|| x.log2()) } else { Some(x) };
    let xs = lines.iter().flat_map(|l| l.points.iter().filter_map(|p| px(p.0)));
    let (x_lo, x_hi) = padded_range(xs);
    let band_ys = lines.iter().flat_map(|l| l.band.iter().flat_map(|b| [b.1, b.2]));
    let ys = lines.iter().flat_map(|l| l.points.iter().map(|p| p.1)).chain(band_ys).filter_map(|v| plotted(v, log));
    let (y_lo, y_hi) = padded_range(ys);
    let mut chart = ChartBuilder::on(area)
        .margin(8)
        .x_label_area_size(34)
        .y_label_area_size(56)
        .build_cartesian_2d(x_lo..x_hi, y_lo..y_hi)
        .map_err(err)?;
    chart
        .configure_mesh()
        .x_desc(axes.x_desc.as_str())
        .y_desc(axes.y_desc.as_str())
        .x_labels(if log_x { (x_hi - x_lo).ceil() as usize + 1 } else { 6 })
        .y_labels(6)
        .x_label_formatter(&|v| match log_x {
            // Only whole powers of two: depths 1, 2, 4, 8, …
            true if (v - v.round()).abs() < 1e-6 => format!("{}", 2f64.powf(v.round())),
            true => String::new(),
            false => tick(*v, false, x_hi - x_lo),
        })
        .y_label_formatter(&|v| tick(*v, log, y_hi - y_lo))
        .light_line_style(RGBColor(0xEE, 0xEE, 0xEE))
        .label_style(("sans-serif", em(13)))
        .draw()
        .map_err(err)?;
    if lines.iter().all(|l| l.points.is_empty()) {
        let (w, h) = area.dim_in_pixel();
        area.draw(&Text::new(empty_note.to_string(), (w as i32 / 2 - 110, h as i32 / 2), ("sans-serif", em(15))))
            .map_err(err)?;
    }
    for line in lines.iter().filter(|l| l.band.len() > 1) {
        let upper = line.band.iter().filter_map(|&(x, _, hi)| Some((px(x)?, plotted(hi, log)?)));
        let lower: Vec<_> = line.band.iter().filter_map(|&(x, lo, _)| Some((px(x)?, plotted(lo, log)?))).collect();
        let outline: Vec<(f64, f64)> = upper.chain(lower.into_iter().rev()).collect();
        chart.draw_series(std::iter::once(Polygon::new(outline, line.color.mix(0.18).filled()))).map_err(err)?;
    }
    // Faded (earlier) runs first, so the live curves stay on top.
    for line in lines.iter().filter(|l| l.faded).chain(lines.iter().filter(|l| !l.faded)) {
        let color = if line.faded { line.color.mix(0.3) } else { line.color.mix(1.0) };
        let pts: Vec<(f64, f64)> = line.points.iter().filter_map(|&(x, y)| Some((px(x)?, plotted(y, log)?))).collect();
        let style = color.stroke_width(em(if line.faded { 2 } else { 3 }));
        let series = chart.draw_series(LineSeries::new(pts.iter().copied(), style)).map_err(err)?;
        if !line.faded || !lines.iter().any(|l| !l.faded && l.label == line.label) {
            series.label(line.label.clone()).legend(move |(x, y)| PathElement::new(vec![(x, y), (x + 18, y)], style));
        }
        if pts.len() == 1 {
            chart.draw_series(std::iter::once(Circle::new(pts[0], 4, color.filled()))).map_err(err)?;
        }
        let mark = line.diverged_at.as_ref().and_then(|(x, note)| px(*x).map(|x| (x, note.clone())));
        if let (Some((x, note)), Some(&(_, y))) = (mark, pts.last()) {
            chart
                .draw_series([
                    Cross::new((x, y), em(7) as i32, color.stroke_width(em(3))).into_dyn(),
                    Text::new(note, (x, y), ("sans-serif", em(13)).into_font().color(&color)).into_dyn(),
                ])
                .map_err(err)?;
        }
    }
    let (pxr, pyr) = chart.plotting_area().get_pixel_range();
    if lines.iter().any(|l| !l.points.is_empty()) {
        chart
            .configure_series_labels()
            .position(SeriesLabelPosition::UpperRight)
            .background_style(WHITE.mix(0.85))
            .border_style(RGBColor(0xBB, 0xBB, 0xBB))
            .label_font(("sans-serif", em(13)))
            .draw()
            .map_err(err)?;
    }
    Ok(Frame {
        px: (pxr.start, pxr.end),
        py: (pyr.start, pyr.end),
        x: (x_lo, x_hi),
        y: (y_lo, y_hi),
        log_y: log,
        log_x,
    })
}

/// The value of every line at the point nearest `x`, as one line of text.
pub fn line_hover(lines: &[Line], x: f64, x_name: &str) -> String {
    let mut parts = Vec::new();
    let mut at = None;
    for line in lines.iter().filter(|l| !l.faded).chain(lines.iter().filter(|l| l.faded)) {
        let nearest = line.points.iter().min_by(|a, b| (a.0 - x).abs().total_cmp(&(b.0 - x).abs()));
        if let Some(&(px, py)) = nearest {
            at.get_or_insert(px);
            let faded = if line.faded { " (before)" } else { "" };
            parts.push(format!("{}{faded} {}", line.label, value_text(py)));
        }
    }
    match at {
        Some(px) => format!("{x_name} {}: {}", tick(px, false, 100.0), parts.join(" · ")),
        None => String::new(),
    }
}

/// A value for hover texts: 4 significant digits.
pub fn value_text(v: f64) -> String {
    if !v.is_finite() {
        return format!("{v}");
    }
    let a = v.abs();
    if a != 0.0 && !(1e-3..1e5).contains(&a) {
        format!("{v:.3e}")
    } else {
        format!("{v:.4}")
    }
}

/// A layer × x grid of positive values (energies), column by column.
#[derive(Clone, Debug, PartialEq, Default)]
pub struct Grid {
    /// The x of each column (iteration, or inference step).
    pub xs: Vec<f64>,
    /// `values[col][row]`, row 0 = layer 1.
    pub values: Vec<Vec<f64>>,
}

impl Grid {
    /// Rows (layers).
    pub fn rows(&self) -> usize {
        self.values.iter().map(Vec::len).max().unwrap_or(0)
    }
}

/// Averages consecutive profiles into at most `max_cols` columns (each column at the mean x of
/// its members), so a long run's heatmap costs the same to draw as a short one's.
pub fn bin_profiles(points: &[(usize, Vec<f64>)], max_cols: usize) -> Grid {
    let per = points.len().div_ceil(max_cols.max(1)).max(1);
    let mut grid = Grid::default();
    for chunk in points.chunks(per) {
        let rows = chunk.iter().map(|p| p.1.len()).max().unwrap_or(0);
        let mean = |r: usize| {
            let vals: Vec<f64> = chunk.iter().filter_map(|p| p.1.get(r).copied()).collect();
            vals.iter().sum::<f64>() / vals.len().max(1) as f64
        };
        grid.xs.push(chunk.iter().map(|p| p.0 as f64).sum::<f64>() / chunk.len() as f64);
        grid.values.push((0..rows).map(mean).collect());
    }
    grid
}

/// Viridis, by five stops, at `t ∈ [0, 1]`.
pub fn viridis(t: f64) -> RGBColor {
    const STOPS: [(f64, f64, f64); 5] =
        [(68., 1., 84.), (59., 82., 139.), (33., 145., 140.), (94., 201., 98.), (253., 231., 37.)];
    let t = if t.is_finite() { t.clamp(0.0, 1.0) } else { 0.0 } * 4.0;
    let i = (t.floor() as usize).min(3);
    let f = t - i as f64;
    let (a, b) = (STOPS[i], STOPS[i + 1]);
    let mix = |x: f64, y: f64| (x + (y - x) * f).round() as u8;
    RGBColor(mix(a.0, b.0), mix(a.1, b.1), mix(a.2, b.2))
}

/// The log10 range of a grid's positive finite values.
pub fn log_range(grid: &Grid) -> Option<(f64, f64)> {
    let logs = grid.values.iter().flatten().filter_map(|&v| plotted(v, true));
    let (lo, hi) = logs.fold((f64::INFINITY, f64::NEG_INFINITY), |(a, b), v| (a.min(v), b.max(v)));
    (lo.is_finite() && hi.is_finite()).then_some((lo, hi.max(lo + 1e-9)))
}

/// Draws a layer × x heatmap with a log colour scale and its colour bar; exact zeros (the hidden
/// energies at the feedforward point) are light grey.
pub fn draw_heatmap<DB: DrawingBackend>(
    area: &DrawingArea<DB, Shift>,
    x_desc: &str,
    grid: &Grid,
    empty_note: &str,
) -> Result<Frame, String> {
    area.fill(&WHITE).map_err(err)?;
    let (w, _) = area.dim_in_pixel();
    let (plot, bar) = area.split_horizontally(w.saturating_sub(70));
    let rows = grid.rows().max(1);
    let cols = grid.xs.len();
    // Column edges halfway between neighbouring xs.
    let edge = |i: usize| -> f64 {
        match (i, cols) {
            (_, 0) => i as f64,
            (_, 1) => grid.xs[0] + i as f64 - 0.5,
            (0, _) => grid.xs[0] - 0.5 * (grid.xs[1] - grid.xs[0]),
            (i, c) if i >= c => grid.xs[c - 1] + 0.5 * (grid.xs[c - 1] - grid.xs[c - 2]),
            (i, _) => 0.5 * (grid.xs[i - 1] + grid.xs[i]),
        }
    };
    let (x_lo, x_hi) = if cols == 0 { (0.0, 1.0) } else { (edge(0), edge(cols)) };
    let y = (0.5, rows as f64 + 0.5);
    let mut chart = ChartBuilder::on(&plot)
        .margin(8)
        .x_label_area_size(34)
        .y_label_area_size(46)
        .build_cartesian_2d(x_lo..x_hi, y.0..y.1)
        .map_err(err)?;
    chart
        .configure_mesh()
        .disable_mesh()
        .x_desc(x_desc)
        .y_desc("layer l")
        .x_labels(6)
        .y_labels(rows.min(8))
        .x_label_formatter(&|v| tick(*v, false, x_hi - x_lo))
        .y_label_formatter(&|v| format!("{}", v.round()))
        .label_style(("sans-serif", em(13)))
        .draw()
        .map_err(err)?;
    let range = log_range(grid);
    if let Some((lo, hi)) = range {
        let cells = grid.values.iter().enumerate().flat_map(|(c, col)| {
            col.iter().enumerate().map(move |(r, &v)| {
                let color = match plotted(v, true) {
                    Some(l) => viridis((l - lo) / (hi - lo)).filled(),
                    None if v == 0.0 => RGBColor(0xDD, 0xDD, 0xDD).filled(),
                    None => RGBColor(0xFF, 0x00, 0x00).filled(),
                };
                let r = r as f64 + 1.0;
                Rectangle::new([(edge(c), r - 0.5), (edge(c + 1), r + 0.5)], color)
            })
        });
        chart.draw_series(cells).map_err(err)?;
        // The colour bar: log10 E from bottom (lo) to top (hi).
        let bar_chart = ChartBuilder::on(&bar)
            .margin_top(8)
            .margin_bottom(42)
            .margin_right(34)
            .build_cartesian_2d(0.0..1.0, lo..hi)
            .map_err(err)?;
        let steps = 32;
        let strip = (0..steps).map(|i| {
            let (a, b) = (lo + (hi - lo) * i as f64 / steps as f64, lo + (hi - lo) * (i + 1) as f64 / steps as f64);
            Rectangle::new([(0.0, a), (1.0, b)], viridis((i as f64 + 0.5) / steps as f64).filled())
        });
        let mut bar_chart = bar_chart;
        bar_chart.draw_series(strip).map_err(err)?;
        // The plotting area's pixel range is absolute; text on `bar` is placed relative to it.
        let (bx, by) = bar_chart.plotting_area().get_pixel_range();
        let (ox, oy) = bar.get_base_pixel();
        let (bx, by) = (bx.start - ox..bx.end - ox, by.start - oy..by.end - oy);
        let font = ("sans-serif", em(12));
        bar.draw(&Text::new(format!("{:.0e}", 10f64.powf(hi)), (bx.end + 2, by.start), font)).map_err(err)?;
        bar.draw(&Text::new(format!("{:.0e}", 10f64.powf(lo)), (bx.end + 2, by.end - 12), font)).map_err(err)?;
        bar.draw(&Text::new("E", (bx.start, by.end + 4), font)).map_err(err)?;
    } else {
        let (pw, ph) = plot.dim_in_pixel();
        plot.draw(&Text::new(empty_note.to_string(), (pw as i32 / 2 - 110, ph as i32 / 2), ("sans-serif", em(15))))
            .map_err(err)?;
    }
    let (px, py) = chart.plotting_area().get_pixel_range();
    Ok(Frame { px: (px.start, px.end), py: (py.start, py.end), x: (x_lo, x_hi), y, log_y: false, log_x: false })
}

/// The cell under `(x, y)` in data units: its layer, x and value.
pub fn grid_hover(grid: &Grid, x: f64, y: f64, x_name: &str) -> String {
    let col = grid.xs.iter().enumerate().min_by(|a, b| (a.1 - x).abs().total_cmp(&(b.1 - x).abs())).map(|c| c.0);
    let row = y.round() as isize - 1;
    match col.and_then(|c| Some((c, grid.values[c].get(usize::try_from(row).ok()?)?))) {
        Some((c, &v)) => {
            format!("layer {}, {x_name} {}: E = {}", row + 1, tick(grid.xs[c].round(), false, 100.0), value_text(v))
        }
        None => String::new(),
    }
}

/// The log10 range of the finite, positive values of several matrices (for a shared colour scale).
pub fn matrix_range<'a>(matrices: impl IntoIterator<Item = &'a Vec<Vec<Option<f64>>>>) -> Option<(f64, f64)> {
    let logs: Vec<f64> = matrices
        .into_iter()
        .flatten()
        .flatten()
        .flatten()
        .filter(|v| v.is_finite() && **v > 0.0)
        .map(|v| v.log10())
        .collect();
    let lo = logs.iter().copied().fold(f64::INFINITY, f64::min);
    let hi = logs.iter().copied().fold(f64::NEG_INFINITY, f64::max);
    (lo.is_finite() && hi.is_finite()).then_some(if hi > lo { (lo, hi) } else { (lo - 0.5, hi + 0.5) })
}

/// The cell of a [`draw_matrix`] under `(x, y)` in its data units: `(column, row)`.
pub fn matrix_cell(x: f64, y: f64) -> (usize, usize) {
    (x.max(0.0).floor() as usize, y.max(0.0).floor() as usize)
}

/// A matrix over two categorical axes — columns `x_labels`, rows `y_labels` (row 0 at the
/// bottom) — coloured by `log10(value)` within `range` (viridis; shared by side-by-side panels),
/// each cell labelled with its value; a non-finite value is a grey "×" (diverged), `None` (not
/// computed yet) blank. For the learning-rate grids.
pub fn draw_matrix<DB: DrawingBackend>(
    area: &DrawingArea<DB, Shift>,
    title: &str,
    (x_desc, x_labels): (&str, &[String]),
    (y_desc, y_labels): (&str, &[String]),
    values: &[Vec<Option<f64>>],
    range: Option<(f64, f64)>,
) -> Result<Frame, String> {
    area.fill(&WHITE).map_err(err)?;
    let (nx, ny) = (x_labels.len().max(1), y_labels.len().max(1));
    let mut chart = ChartBuilder::on(area)
        .caption(title, ("sans-serif", em(14)))
        .margin(8)
        .x_label_area_size(38)
        .y_label_area_size(52)
        .build_cartesian_2d(0.0..nx as f64, 0.0..ny as f64)
        .map_err(err)?;
    let label = |labels: &[String], v: f64| {
        let i = v.floor();
        if (v - i - 0.5).abs() < 1e-6 && i >= 0.0 {
            labels.get(i as usize).cloned().unwrap_or_default()
        } else {
            String::new()
        }
    };
    chart
        .configure_mesh()
        .disable_mesh()
        .x_desc(x_desc)
        .y_desc(y_desc)
        .x_labels(2 * nx + 1)
        .y_labels(2 * ny + 1)
        .x_label_formatter(&|v| label(x_labels, *v))
        .y_label_formatter(&|v| label(y_labels, *v))
        .label_style(("sans-serif", em(12)))
        .draw()
        .map_err(err)?;
    let cells = values.iter().enumerate().flat_map(|(r, row)| {
        row.iter().enumerate().filter_map(|(c, v)| v.map(|v| (c, v))).map(move |(c, v)| {
            let (x, y) = (c as f64, r as f64);
            let fill = match (v.is_finite() && v > 0.0, range) {
                (true, Some((lo, hi))) => viridis(((v.log10() - lo) / (hi - lo).max(1e-12)).clamp(0.0, 1.0)).filled(),
                _ => RGBColor(0xBB, 0xBB, 0xBB).filled(),
            };
            Rectangle::new([(x, y), (x + 1.0, y + 1.0)], fill)
        })
    });
    chart.draw_series(cells).map_err(err)?;
    let texts = values.iter().enumerate().flat_map(|(r, row)| {
        row.iter().enumerate().filter_map(|(c, v)| v.map(|v| (c, v))).map(move |(c, v)| {
            let t = if v.is_finite() { format!("{v:.3}") } else { "×".into() };
            let ink = if v.is_finite() && range.is_some_and(|(lo, hi)| (v.log10() - lo) / (hi - lo).max(1e-12) > 0.6) {
                BLACK
            } else {
                WHITE
            };
            Text::new(t, (c as f64 + 0.18, r as f64 + 0.62), ("sans-serif", em(11)).into_font().color(&ink))
        })
    });
    chart.draw_series(texts).map_err(err)?;
    let (xr, yr) = chart.plotting_area().get_pixel_range();
    Ok(Frame {
        px: (xr.start, xr.end),
        py: (yr.start, yr.end),
        x: (0.0, nx as f64),
        y: (0.0, ny as f64),
        log_y: false,
        log_x: false,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn profiles_bin_into_at_most_the_asked_columns_keeping_means() {
        let points: Vec<(usize, Vec<f64>)> = (1..=10).map(|i| (i, vec![i as f64, 2.0 * i as f64])).collect();
        let g = bin_profiles(&points, 4);
        assert_eq!(g.xs.len(), 4, "10 points in columns of 3");
        assert_eq!(g.xs[0], 2.0);
        assert_eq!(g.values[0], vec![2.0, 4.0]);
        assert_eq!(g.values[3], vec![10.0, 20.0], "the last, short column");
        assert_eq!(g.rows(), 2);
        let same = bin_profiles(&points, 100);
        assert_eq!(same.xs.len(), 10, "no binning when the points fit");
        assert!(bin_profiles(&[], 10).xs.is_empty());
    }

    #[test]
    fn frames_map_pixels_back_to_data_on_linear_and_log_axes() {
        let f = Frame { px: (100, 300), py: (10, 110), x: (0.0, 200.0), y: (-2.0, 0.0), log_y: true, log_x: false };
        let (x, y) = f.to_data(200.0, 60.0).expect("inside");
        assert!((x - 100.0).abs() < 1e-9 && (y - 0.1).abs() < 1e-9, "{x} {y}");
        assert_eq!(f.to_data(99.0, 60.0), None);
        let lin = Frame { log_y: false, y: (0.0, 50.0), ..f.clone() };
        assert_eq!(lin.to_data(100.0, 10.0), Some((0.0, 50.0)));
        let depth = Frame { log_x: true, x: (0.0, 7.0), ..f };
        assert_eq!(depth.to_data(300.0, 60.0).map(|p| p.0), Some(128.0), "log2 depth axis");
    }

    #[test]
    fn hover_reads_the_nearest_point_of_every_line_and_the_cell_under_the_pointer() {
        let line = |label: &str, faded| Line {
            label: label.into(),
            color: rule_color("mupc"),
            points: vec![(10.0, 0.5), (20.0, 0.25)],
            faded,
            diverged_at: None,
            band: Vec::new(),
        };
        let text = line_hover(&[line("μPC", false), line("μPC", true)], 18.0, "iteration");
        assert_eq!(text, "iteration 20: μPC 0.2500 · μPC (before) 0.2500");
        let g = Grid { xs: vec![0.0, 1.0, 2.0], values: vec![vec![1e-4, 2.0]; 3] };
        assert_eq!(grid_hover(&g, 1.2, 2.3, "step"), "layer 2, step 1: E = 2.0000");
        assert_eq!(grid_hover(&g, 1.2, 0.4, "step"), "", "below layer 1");
        assert_eq!(log_range(&g), Some((-4.0, 2f64.log10())));
    }

    #[test]
    fn tick_labels_tell_close_ticks_apart() {
        assert_eq!(tick(-3.0, true, 6.0), "1e-3");
        assert_eq!(tick(0.0, true, 6.0), "1");
        assert_eq!(tick(0.3_f64.log10(), true, 0.01), "0.300");
        assert_eq!(tick(0.31_f64.log10(), true, 0.1), "0.31");
        assert_eq!(tick(250.0, false, 1000.0), "250");
        assert_eq!(tick(0.5, false, 1.0), "0.50");
    }

    #[test]
    fn log_axes_leave_out_what_they_cannot_draw_and_ranges_are_padded() {
        assert_eq!(plotted(0.0, true), None);
        assert_eq!(plotted(f64::NAN, false), None);
        assert_eq!(plotted(100.0, true), Some(2.0));
        assert_eq!(padded_range([1.0, 3.0].into_iter()), (0.9, 3.1));
        assert_eq!(padded_range(std::iter::empty()), (0.0, 1.0));
        assert_eq!(padded_range([2.0].into_iter()), (1.0, 3.0));
        assert_eq!(viridis(0.0), RGBColor(68, 1, 84));
        assert_eq!(viridis(1.0), RGBColor(253, 231, 37));
    }
}
