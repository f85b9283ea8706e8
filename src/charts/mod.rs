//! Charts as functions of data, generic over plotters' `DrawingBackend`: the page draws them on a
//! canvas, exports use the SVG backend. No DOM, no wgpu. Each drawing function returns the
//! [`Frame`] it drew in, so the page can turn the pointer's pixel back into data values; the
//! hover texts are plain functions of the same data ([`line_hover`], [`grid_hover`]).

pub mod figures;
#[cfg(test)]
mod text_boxes;

use plotters::coord::Shift;
use plotters::prelude::*;
use plotters::style::text_anchor::{HPos, Pos, VPos};

/// A colour-blind-safe colour per rule (Okabe–Ito), no two alike on one plot: μPC blue,
/// standard PC vermillion, BP Depth-μP bluish green, BP standard reddish purple, standard PC
/// without skips black.
pub fn rule_color(rule: &str) -> RGBColor {
    match rule {
        "mupc" => RGBColor(0x00, 0x72, 0xB2),
        "sp" => RGBColor(0xD5, 0x5E, 0x00),
        "bp_mup" => RGBColor(0x00, 0x9E, 0x73),
        "bp_sp" => RGBColor(0xCC, 0x79, 0xA7),
        "sp_noskip" => RGBColor(0x00, 0x00, 0x00),
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
    /// Dashed, with the `k`-th dash pattern (saved runs: each file its own pattern).
    pub dash: Option<usize>,
}

/// The dash patterns of saved runs: `(dash, gap)` in text sizes.
const DASHES: [(f64, f64); 4] = [(0.7, 0.35), (0.25, 0.3), (1.2, 0.4), (0.7, 0.25)];

/// The sizes of one canvas's text, lines and gaps, from its pixel size, shared by every panel
/// drawn on it: ticks, axis titles, legends and notes all follow `text`, so a chart reads the
/// same at any size and a larger canvas (presentation mode, a projector) gets larger type.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Scale {
    /// Tick labels, axis titles and legend text, in pixels.
    pub text: f64,
}

thread_local! {
    static TEXT_LIMITS: std::cell::Cell<(f64, f64)> = const { std::cell::Cell::new((11.0, 40.0)) };
}

/// Keeps every chart's text between `min` and `max` pixels from now on (11 … 40 until set): the
/// page's normal layout gives every plot the same size (`min = max`), whatever its kind;
/// presentation mode lets it grow with the canvas.
pub fn set_text_limits(min: f64, max: f64) {
    TEXT_LIMITS.with(|l| l.set((min.max(1.0), max.max(min.max(1.0)))));
}

impl Scale {
    /// The scale of a `w × h` canvas: text a twenty-eighth of the canvas's geometric mean side,
    /// at most a thirteenth of its height and a twenty-second of its width, within the limits of
    /// [`set_text_limits`].
    pub fn of((w, h): (u32, u32)) -> Scale {
        let (w, h) = (w as f64, h as f64);
        let (lo, hi) = TEXT_LIMITS.with(|l| l.get());
        Scale { text: ((w * h).sqrt() / 28.0).min(h / 13.0).min(w / 22.0).clamp(lo, hi) }
    }

    /// `k` times the text size, in whole pixels (at least 1).
    pub fn px(self, k: f64) -> u32 {
        (self.text * k).round().max(1.0) as u32
    }

    /// The font at `k` times the text size.
    pub fn font(self, k: f64) -> (&'static str, u32) {
        ("sans-serif", self.px(k))
    }

    /// The stroke of a live line (faded lines use two thirds of it).
    pub fn stroke(self) -> u32 {
        self.px(0.2).max(2)
    }
}

/// Measures text: `(text, size in pixels)` to its width and height.
type Measure = Box<dyn Fn(&str, u32) -> (u32, u32)>;

thread_local! {
    static MEASURE: std::cell::RefCell<Option<Measure>> = const { std::cell::RefCell::new(None) };
}

/// Measures every chart's text with `measure` from now on instead of asking the backend (the
/// page measures on a canvas of its own: plotters' web backend would lay out the whole page for
/// each text it measures).
pub fn set_text_measure(measure: impl Fn(&str, u32) -> (u32, u32) + 'static) {
    MEASURE.with(|m| *m.borrow_mut() = Some(Box::new(measure)));
}

/// The width and height of `text` in `font`: by the measure set with [`set_text_measure`], else
/// by `area`'s backend, else a generous estimate (0.62 em a character).
pub fn text_size<DB: DrawingBackend>(area: &DrawingArea<DB, Shift>, text: &str, font: (&str, u32)) -> (u32, u32) {
    if let Some(size) = MEASURE.with(|m| m.borrow().as_ref().map(|f| f(text, font.1))) {
        return size;
    }
    let style: TextStyle = font.into_font().into();
    area.estimate_text_size(text, &style)
        .unwrap_or(((text.chars().count() as f64 * 0.62 * font.1 as f64).ceil() as u32, font.1))
}

/// Axis descriptions and scale.
#[derive(Clone, Debug, PartialEq, Default)]
pub struct Axes {
    /// Below the x axis.
    pub x_desc: String,
    /// Beside the y axis.
    pub y_desc: String,
    /// Logarithmic y (values ≤ 0 or not finite are left out).
    pub log_y: bool,
    /// Base-2 logarithmic x (depths 1, 2, 4, …).
    pub log_x: bool,
    /// The x range shown, in plotted units (log2 on a log x axis), when zoomed; `None`: all data.
    pub x_view: Option<(f64, f64)>,
    /// What the y range stays within, and shows with no data yet (accuracy: 0 … 100 %).
    pub y_bounds: Option<(f64, f64)>,
}

impl Axes {
    /// Linear axes described by `x` and `y`.
    pub fn new(x: &str, y: &str) -> Axes {
        Axes { x_desc: x.into(), y_desc: y.into(), ..Default::default() }
    }

    /// A logarithmic y axis when `on`.
    pub fn log_y(self, on: bool) -> Axes {
        Axes { log_y: on, ..self }
    }

    /// A base-2 logarithmic x axis.
    pub fn log_x(self) -> Axes {
        Axes { log_x: true, ..self }
    }

    /// The y range stays within `lo … hi`.
    pub fn bounded(self, lo: f64, hi: f64) -> Axes {
        Axes { y_bounds: Some((lo, hi)), ..self }
    }

    /// Shows x in `view` (plotted units) instead of all the data.
    pub fn view(self, view: Option<(f64, f64)>) -> Axes {
        Axes { x_view: view, ..self }
    }
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
        power_label(v)
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

/// The x range of a chart: the data's, at least `min_span` wide (one or two points still get a
/// readable axis, not −0.4 … 0.4), padded by 3 %.
pub fn x_range(xs: impl Iterator<Item = f64>, min_span: f64) -> (f64, f64) {
    let (lo, hi) = xs.fold((f64::INFINITY, f64::NEG_INFINITY), |(a, b), v| (a.min(v), b.max(v)));
    if !lo.is_finite() || !hi.is_finite() {
        return (0.0, min_span.max(1.0) * 2.5);
    }
    let hi = hi.max(lo + min_span);
    let pad = 0.03 * (hi - lo);
    (lo - pad, hi + pad)
}

/// The y range of a chart, in plotted units: the data's, padded by 5 %, at least 0.3 decades on a
/// log axis or a tenth of the largest magnitude on a linear one, so that a 0.1 % change stays a
/// 0.1 % change and does not fill the plot as a cliff; kept within `bounds`.
pub fn y_range(ys: impl Iterator<Item = f64>, log: bool, bounds: Option<(f64, f64)>) -> (f64, f64) {
    let bounds = bounds.and_then(|(lo, hi)| Some((plotted(lo, log)?, plotted(hi, log)?)));
    let (lo, hi) = ys.fold((f64::INFINITY, f64::NEG_INFINITY), |(a, b), v| (a.min(v), b.max(v)));
    if !lo.is_finite() || !hi.is_finite() {
        return bounds.unwrap_or(if log { (-1.0, 1.0) } else { (0.0, 1.0) });
    }
    let min_span = if log { 0.3 } else { (0.1 * lo.abs().max(hi.abs())).max(1e-9) };
    let (lo, hi) = if hi - lo < min_span {
        let mid = 0.5 * (lo + hi);
        (mid - 0.5 * min_span, mid + 0.5 * min_span)
    } else {
        (lo, hi)
    };
    let pad = 0.05 * (hi - lo);
    let (lo, hi) = (lo - pad, hi + pad);
    match bounds {
        Some((a, b)) if hi - lo < b - a => {
            let shift = (a - lo).max(0.0) - (hi - b).max(0.0);
            (lo + shift, hi + shift)
        }
        Some((a, b)) => (a, b),
        None => (lo, hi),
    }
}

/// The part of a polyline within `lo ≤ x ≤ hi`, cut where it crosses the edges.
pub fn clip_x(points: &[(f64, f64)], (lo, hi): (f64, f64)) -> Vec<(f64, f64)> {
    let at = |a: (f64, f64), b: (f64, f64), x: f64| (x, a.1 + (b.1 - a.1) * (x - a.0) / (b.0 - a.0));
    let mut out = Vec::new();
    for (i, &p) in points.iter().enumerate() {
        let inside = |q: (f64, f64)| q.0 >= lo && q.0 <= hi;
        if i > 0 {
            let q = points[i - 1];
            if q.0 < lo && p.0 > lo {
                out.push(at(q, p, lo));
            }
            if q.0 < hi && p.0 > hi && inside(q) {
                out.push(at(q, p, hi));
            }
        }
        if inside(p) {
            out.push(p);
        }
        if i > 0 && points[i - 1].0 < lo && p.0 > hi {
            out.push(at(points[i - 1], p, hi));
        }
    }
    out
}

/// The legend entries of `lines`: every live line, and a faded one only when no live line has
/// its label.
fn legend_items(lines: &[Line]) -> Vec<&Line> {
    let live = lines.iter().filter(|l| !l.faded);
    let faded = lines.iter().filter(|l| l.faded && !lines.iter().any(|m| !m.faded && m.label == l.label));
    let mut seen: Vec<&str> = Vec::new();
    live.chain(faded)
        .filter(|l| {
            let new = !seen.contains(&l.label.as_str());
            seen.push(&l.label);
            new
        })
        .collect()
}

/// Where each legend entry goes, `(x, row)` with x from the left margin, wrapping to `width`.
fn legend_layout<DB: DrawingBackend>(
    area: &DrawingArea<DB, Shift>,
    labels: &[String],
    scale: Scale,
    width: u32,
) -> (Vec<(i32, i32)>, u32) {
    let font = scale.font(1.0);
    let (swatch, gap) = (scale.px(1.6), scale.px(0.35));
    let mut at = Vec::with_capacity(labels.len());
    let (mut x, mut row) = (0i32, 0i32);
    for label in labels {
        let w = (swatch + gap + text_size(area, label, font).0) as i32;
        if x > 0 && x + w > width as i32 {
            x = 0;
            row += 1;
        }
        at.push((x, row));
        x += w + scale.px(1.0) as i32;
    }
    let rows = if labels.is_empty() { 0 } else { row as u32 + 1 };
    (at, rows * scale.px(1.35))
}

/// The stroke of `line` at `scale`.
fn line_style(line: &Line, scale: Scale) -> ShapeStyle {
    let color = if line.faded { line.color.mix(0.35) } else { line.color.mix(1.0) };
    color.stroke_width(if line.faded { (scale.stroke() * 2 / 3).max(1) } else { scale.stroke() })
}

/// Draws `text` centred on `(cx, cy)`, broken into lines that fit `max_w`.
fn draw_note<DB: DrawingBackend>(
    area: &DrawingArea<DB, Shift>,
    text: &str,
    (cx, cy): (i32, i32),
    max_w: u32,
    scale: Scale,
) -> Result<(), String> {
    let font = scale.font(1.05);
    let mut rows: Vec<String> = Vec::new();
    for word in text.split_whitespace() {
        match rows.last_mut() {
            Some(r) if text_size(area, &format!("{r} {word}"), font).0 <= max_w => {
                r.push(' ');
                r.push_str(word);
            }
            _ => rows.push(word.to_string()),
        }
    }
    let step = scale.px(1.3) as i32;
    let top = cy - step * rows.len() as i32 / 2;
    let style = TextStyle::from(font.into_font()).pos(Pos::new(HPos::Center, VPos::Top));
    for (i, r) in rows.iter().enumerate() {
        area.draw(&Text::new(r.clone(), (cx, top + step * i as i32), style.clone())).map_err(err)?;
    }
    Ok(())
}

/// `text`, cut with "…" until it fits `room` pixels in `font`.
fn shorten<DB: DrawingBackend>(area: &DrawingArea<DB, Shift>, text: &str, font: (&str, u32), room: u32) -> String {
    let mut t = text.to_string();
    while text_size(area, &t, font).0 > room && t.chars().count() > 2 {
        let keep: String = t.trim_end_matches('…').chars().collect();
        let keep: String = keep.chars().take(keep.chars().count() - 1).collect();
        t = format!("{keep}…");
    }
    t
}

/// The widest of `labels` in `font`.
fn widest<DB: DrawingBackend>(area: &DrawingArea<DB, Shift>, labels: &[String], font: (&str, u32)) -> u32 {
    labels.iter().map(|t| text_size(area, t, font).0).max().unwrap_or(0)
}

/// An axis title that fits `room` pixels: at the chart's size, else smaller (down to 8 pixels),
/// else cut with "…".
fn fit_title<DB: DrawingBackend>(area: &DrawingArea<DB, Shift>, title: &str, scale: Scale, room: u32) -> (String, u32) {
    let mut size = scale.px(1.0);
    while size > 8 && text_size(area, title, ("sans-serif", size)).0 > room {
        size -= 1;
    }
    (shorten(area, title, ("sans-serif", size), room), size)
}

/// The tick marks' length, the height of a line of text and the x label area (a row of ticks
/// below the marks and the axis title below them) at `scale`.
fn axis_room<DB: DrawingBackend>(area: &DrawingArea<DB, Shift>, scale: Scale) -> (u32, u32, u32) {
    let mark = scale.px(0.3);
    let line_h = text_size(area, "0gλ", scale.font(1.0)).1.max(scale.px(1.0));
    (mark, line_h, 2 * mark + 2 * line_h + scale.px(0.3))
}

/// How many tick labels fit along `len` pixels when each takes `each` pixels.
fn tick_count(len: u32, each: u32) -> usize {
    (len as usize / each.max(1) as usize).clamp(2, 8)
}

/// A power of ten's label: "10⁻³", or "3×10⁻³" when the mantissa is not 1.
fn power_label(v: f64) -> String {
    let text = scientific(v, 1);
    text.strip_prefix("1 × ").map_or_else(|| text.replace(" × ", "×"), str::to_string)
}

/// Draws lines on `area` (cleared first) with axes, a legend above the plot (where it hides no
/// data) and divergence marks, at the area's own [`Scale`].
pub fn draw_lines<DB: DrawingBackend>(
    area: &DrawingArea<DB, Shift>,
    axes: &Axes,
    lines: &[Line],
    empty_note: &str,
) -> Result<Frame, String> {
    draw_lines_at(area, Scale::of(area.dim_in_pixel()), axes, lines, empty_note)
}

/// [`draw_lines`] at a given scale (a panel of a larger canvas uses the canvas's).
pub fn draw_lines_at<DB: DrawingBackend>(
    area: &DrawingArea<DB, Shift>,
    scale: Scale,
    axes: &Axes,
    lines: &[Line],
    empty_note: &str,
) -> Result<Frame, String> {
    area.fill(&WHITE).map_err(err)?;
    let (w, h) = area.dim_in_pixel();
    let (log, log_x) = (axes.log_y, axes.log_x);
    let px = move |x: f64| if log_x { (x > 0.0).then(|| x.log2()) } else { Some(x) };
    let xs = lines.iter().flat_map(|l| l.points.iter().filter_map(|p| px(p.0)));
    let (x_lo, x_hi) = axes.x_view.unwrap_or_else(|| x_range(xs, if log_x { 2.0 } else { 4.0 }));
    // Each line in plotted units, cut to the x range shown.
    let shown: Vec<Vec<(f64, f64)>> = lines
        .iter()
        .map(|l| {
            let pts: Vec<(f64, f64)> = l.points.iter().filter_map(|&(x, y)| Some((px(x)?, plotted(y, log)?))).collect();
            clip_x(&pts, (x_lo, x_hi))
        })
        .collect();
    let in_view = |x: f64| px(x).is_some_and(|x| x >= x_lo && x <= x_hi);
    let band_ys = lines
        .iter()
        .flat_map(|l| l.band.iter().filter(|b| in_view(b.0)).flat_map(|b| [b.1, b.2]).filter_map(|v| plotted(v, log)));
    let ys = shown.iter().flatten().map(|p| p.1).chain(band_ys);
    let (y_lo, y_hi) = y_range(ys, log, axes.y_bounds);

    let font = scale.font(1.0);
    let margin = scale.px(0.5);
    let items = legend_items(lines);
    // Each legend label fits the canvas's width (cut with "…" where it would not).
    let room = w.saturating_sub(2 * margin + scale.px(1.95));
    let labels: Vec<String> = items.iter().map(|l| shorten(area, &l.label, font, room)).collect();
    let (slots, legend_h) = legend_layout(area, &labels, scale, w.saturating_sub(2 * margin));
    // Room for the y ticks (their widest label), the tick marks and the rotated axis title.
    let y_ticks: Vec<String> = (0..=8).map(|i| tick(y_lo + (y_hi - y_lo) * i as f64 / 8.0, log, y_hi - y_lo)).collect();
    let x_ticks: Vec<String> = (0..=8)
        .map(|i| {
            let v = x_lo + (x_hi - x_lo) * i as f64 / 8.0;
            if log_x {
                format!("{}", 2f64.powf(v.round()))
            } else {
                tick(v, false, x_hi - x_lo)
            }
        })
        .collect();
    let (mark, line_h, x_area) = axis_room(area, scale);
    let y_area = widest(area, &y_ticks, font) + 2 * mark + scale.px(0.4) + line_h;
    let right = margin.max(widest(area, &x_ticks[8..], font) / 2 + scale.px(0.2));
    let plot_w = w.saturating_sub(y_area + margin + right);
    // The top tick label is centred on the plot's top edge: half of it above.
    let top = margin + legend_h + line_h / 2;
    let plot_h = h.saturating_sub(x_area + margin + top);
    let (x_title, x_size) = fit_title(area, &axes.x_desc, scale, plot_w);
    let (y_title, y_size) = fit_title(area, &axes.y_desc, scale, plot_h);
    let mut chart = ChartBuilder::on(area)
        .margin_top(top)
        .margin_bottom(margin)
        .margin_left(margin)
        .margin_right(right)
        .x_label_area_size(x_area)
        .y_label_area_size(y_area)
        .build_cartesian_2d(x_lo..x_hi, y_lo..y_hi)
        .map_err(err)?;
    let x_each = widest(area, &x_ticks, font) + scale.px(1.5);
    chart
        .configure_mesh()
        .x_desc(x_title)
        .y_desc(y_title)
        .x_labels(if log_x {
            ((x_hi - x_lo).ceil() as usize + 1).min(tick_count(plot_w, x_each) * 2)
        } else {
            tick_count(plot_w, x_each)
        })
        .y_labels(tick_count(plot_h, scale.px(2.2)))
        .x_label_formatter(&|v| match log_x {
            // Only whole powers of two: depths 1, 2, 4, 8, …
            true if (v - v.round()).abs() < 1e-6 => format!("{}", 2f64.powf(v.round())),
            true => String::new(),
            false => tick(*v, false, x_hi - x_lo),
        })
        .y_label_formatter(&|v| tick(*v, log, y_hi - y_lo))
        .light_line_style(RGBColor(0xEE, 0xEE, 0xEE))
        .set_all_tick_mark_size(mark)
        .label_style(font)
        .axis_desc_style(("sans-serif", x_size.min(y_size)))
        .draw()
        .map_err(err)?;
    let (pxr, pyr) = chart.plotting_area().get_pixel_range();
    let (ox, oy) = area.get_base_pixel();
    if shown.iter().all(|p| p.is_empty()) {
        let centre = ((pxr.start + pxr.end) / 2 - ox, (pyr.start + pyr.end) / 2 - oy);
        draw_note(area, empty_note, centre, (plot_w as f64 * 0.92) as u32, scale)?;
    }
    for line in lines.iter().filter(|l| l.band.len() > 1) {
        let band: Vec<_> = line.band.iter().filter(|b| in_view(b.0)).collect();
        let upper = band.iter().filter_map(|&&(x, _, hi)| Some((px(x)?, plotted(hi, log)?)));
        let lower: Vec<_> = band.iter().filter_map(|&&(x, lo, _)| Some((px(x)?, plotted(lo, log)?))).collect();
        let outline: Vec<(f64, f64)> = upper.chain(lower.into_iter().rev()).collect();
        chart.draw_series(std::iter::once(Polygon::new(outline, line.color.mix(0.18).filled()))).map_err(err)?;
    }
    // Faded (earlier) runs first, so the live curves stay on top.
    let order = (0..lines.len()).filter(|&i| lines[i].faded).chain((0..lines.len()).filter(|&i| !lines[i].faded));
    for i in order {
        let (line, pts) = (&lines[i], &shown[i]);
        let style = line_style(line, scale);
        match line.dash {
            Some(k) => {
                let (d, g) = DASHES[k % DASHES.len()];
                let series = DashedLineSeries::new(pts.iter().copied(), scale.px(d), scale.px(g), style);
                chart.draw_series(series).map_err(err)?;
            }
            None => {
                chart.draw_series(LineSeries::new(pts.iter().copied(), style)).map_err(err)?;
            }
        }
        if pts.len() == 1 {
            let dot = Circle::new(pts[0], scale.px(0.3), style.color.filled());
            chart.draw_series(std::iter::once(dot)).map_err(err)?;
        }
        let mark = line.diverged_at.as_ref().and_then(|(x, note)| px(*x).map(|x| (x, note.clone())));
        if let (Some((x, note)), Some(&(_, y))) = (mark, pts.last()) {
            let right_half = x > 0.5 * (x_lo + x_hi);
            let anchor = Pos::new(if right_half { HPos::Right } else { HPos::Left }, VPos::Bottom);
            let text = font.into_font().color(&line.color).pos(anchor);
            chart
                .draw_series([
                    Cross::new((x, y), scale.px(0.5) as i32, line.color.stroke_width(scale.stroke())).into_dyn(),
                    Text::new(note, (x, y), text).into_dyn(),
                ])
                .map_err(err)?;
        }
    }
    // The legend, above the plotting area.
    let (swatch, gap) = (scale.px(1.6) as i32, scale.px(0.35) as i32);
    let row_h = scale.px(1.35) as i32;
    let label = TextStyle::from(font.into_font()).pos(Pos::new(HPos::Left, VPos::Center));
    for ((line, text), &(x, row)) in items.iter().zip(&labels).zip(&slots) {
        let (x, y) = (margin as i32 + x, margin as i32 + row * row_h + row_h / 2);
        let style = line_style(line, scale);
        match line.dash {
            Some(k) => {
                let (d, g) = DASHES[k % DASHES.len()];
                let (d, g) = (scale.px(d) as i32, scale.px(g) as i32);
                let mut x0 = x;
                while x0 < x + swatch {
                    area.draw(&PathElement::new(vec![(x0, y), ((x0 + d).min(x + swatch), y)], style)).map_err(err)?;
                    x0 += d + g;
                }
            }
            None => area.draw(&PathElement::new(vec![(x, y), (x + swatch, y)], style)).map_err(err)?,
        }
        area.draw(&Text::new(text.clone(), (x + swatch + gap, y), label.clone())).map_err(err)?;
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

/// Splits a canvas into two panels, the first taking `share` of it: side by side where the
/// canvas is at least 560 pixels wide, else one above the other (a phone's narrow plots).
pub fn split_panels<DB: DrawingBackend>(
    root: &DrawingArea<DB, Shift>,
    share: f64,
) -> (DrawingArea<DB, Shift>, DrawingArea<DB, Shift>) {
    let (w, h) = root.dim_in_pixel();
    if w >= 560 {
        root.split_horizontally((w as f64 * share).round() as u32)
    } else {
        root.split_vertically((h as f64 * share).round() as u32)
    }
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

/// Each live line's latest value in words ("μPC 91.2 at iteration 300"), for screen readers.
pub fn lines_summary(lines: &[Line], x_name: &str) -> String {
    lines
        .iter()
        .filter(|l| !l.faded)
        .filter_map(|l| {
            let &(x, y) = l.points.last()?;
            Some(format!("{} {} at {x_name} {}", l.label, value_text(y), tick(x, false, 100.0)))
        })
        .collect::<Vec<_>>()
        .join(", ")
}

/// The trailing moving average of `points` over `window` points (shorter at the start).
pub fn moving_average(points: &[(f64, f64)], window: usize) -> Vec<(f64, f64)> {
    let window = window.max(1);
    let mut sum = 0.0;
    points
        .iter()
        .enumerate()
        .map(|(i, &(x, y))| {
            sum += y;
            if i >= window {
                sum -= points[i - window].1;
            }
            (x, sum / (i + 1).min(window) as f64)
        })
        .collect()
}

/// A value for hover texts: 4 significant digits ([`humane`]).
pub fn value_text(v: f64) -> String {
    humane(v, 4)
}

/// `v` to `digits` significant digits, in plain decimals from 0.001 to 99 999 and as
/// "3.6 × 10²" outside that.
pub fn humane(v: f64, digits: usize) -> String {
    if !v.is_finite() {
        return format!("{v}");
    }
    let a = v.abs();
    if a == 0.0 {
        return "0".into();
    }
    let digits = digits.max(1);
    let exp = a.log10().floor() as i32;
    if (1e-3..1e5).contains(&a) {
        let decimals = (digits as i32 - 1 - exp).max(0) as usize;
        return format!("{v:.decimals$}");
    }
    scientific(v, digits)
}

/// `v` as "3.6 × 10²" with `digits` significant digits (plain from 1 to 10).
pub fn scientific(v: f64, digits: usize) -> String {
    if !v.is_finite() || v == 0.0 {
        return humane(v, digits);
    }
    let digits = digits.max(1);
    let exp = v.abs().log10().floor() as i32;
    // Rounding may carry into the next power of ten (9.99e4 → 10.0).
    let mut m = v / 10f64.powi(exp);
    let mut exp = exp;
    let scale = 10f64.powi(digits as i32 - 1);
    if ((m.abs() * scale).round() / scale) >= 10.0 {
        m /= 10.0;
        exp += 1;
    }
    if exp == 0 {
        return format!("{m:.prec$}", prec = digits - 1);
    }
    const SUP: [char; 10] = ['⁰', '¹', '²', '³', '⁴', '⁵', '⁶', '⁷', '⁸', '⁹'];
    let mut power: String = exp.unsigned_abs().to_string().chars().map(|c| SUP[c as usize - '0' as usize]).collect();
    if exp < 0 {
        power.insert(0, '⁻');
    }
    format!("{m:.prec$} × 10{power}", prec = digits - 1)
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
    draw_heatmap_at(area, Scale::of(area.dim_in_pixel()), x_desc, grid, empty_note)
}

/// [`draw_heatmap`] at a given scale.
pub fn draw_heatmap_at<DB: DrawingBackend>(
    area: &DrawingArea<DB, Shift>,
    scale: Scale,
    x_desc: &str,
    grid: &Grid,
    empty_note: &str,
) -> Result<Frame, String> {
    area.fill(&WHITE).map_err(err)?;
    let (w, h) = area.dim_in_pixel();
    let font = scale.font(1.0);
    let range = log_range(grid);
    let bar_labels = range.map(|(lo, hi)| [power_label(10f64.powf(hi)), power_label(10f64.powf(lo))]);
    let strip = scale.px(0.9);
    let bar_w = strip + scale.px(0.8) + bar_labels.as_ref().map_or(0, |l| widest(area, l, font));
    let (plot, bar) = area.split_horizontally(w.saturating_sub(bar_w));
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
    let margin = scale.px(0.5);
    let (mark, line_h, x_area) = axis_room(area, scale);
    let y_area = widest(area, &[rows.to_string()], font) + 2 * mark + scale.px(0.4) + line_h;
    let x_ticks: Vec<String> =
        (0..=8).map(|i| tick(x_lo + (x_hi - x_lo) * i as f64 / 8.0, false, x_hi - x_lo)).collect();
    let x_right = widest(area, &x_ticks[8..], font) / 2;
    let top = margin + line_h / 2;
    let (plot_w, plot_h) = (w.saturating_sub(bar_w + y_area + margin), h.saturating_sub(x_area + margin + top));
    let (x_title, x_size) = fit_title(area, x_desc, scale, plot_w);
    let mut chart = ChartBuilder::on(&plot)
        .margin(margin)
        .margin_top(top)
        .margin_right(margin.max(x_right.saturating_sub(bar_w)))
        .x_label_area_size(x_area)
        .y_label_area_size(y_area)
        .build_cartesian_2d(x_lo..x_hi, y.0..y.1)
        .map_err(err)?;
    let each = widest(area, &x_ticks, font) + scale.px(1.5);
    chart
        .configure_mesh()
        .disable_mesh()
        .x_desc(x_title)
        .y_desc("layer l")
        .x_labels(tick_count(plot_w, each))
        .y_labels(rows.min(tick_count(plot_h, scale.px(1.8))))
        .x_label_formatter(&|v| tick(*v, false, x_hi - x_lo))
        .y_label_formatter(&|v| format!("{}", v.round()))
        .set_all_tick_mark_size(mark)
        .label_style(font)
        .axis_desc_style(("sans-serif", x_size))
        .draw()
        .map_err(err)?;
    let (px, py) = chart.plotting_area().get_pixel_range();
    if let (Some((lo, hi)), Some(labels)) = (range, bar_labels) {
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
        // The colour bar beside the plotting area, as tall as it: log10 E from lo (bottom) to hi.
        let (ox, oy) = bar.get_base_pixel();
        let (top, bottom) = (py.start - oy, py.end - oy);
        let x0 = scale.px(0.4) as i32;
        let steps = 32;
        for i in 0..steps {
            let y0 = bottom - (bottom - top) * (i + 1) / steps;
            let y1 = bottom - (bottom - top) * i / steps;
            let c = viridis((i as f64 + 0.5) / steps as f64).filled();
            bar.draw(&Rectangle::new([(x0, y0), (x0 + strip as i32, y1)], c)).map_err(err)?;
        }
        let lx = x0 + strip as i32 + scale.px(0.3) as i32;
        let top_style = TextStyle::from(font.into_font()).pos(Pos::new(HPos::Left, VPos::Top));
        let bottom_style = TextStyle::from(font.into_font()).pos(Pos::new(HPos::Left, VPos::Bottom));
        bar.draw(&Text::new(labels[0].clone(), (lx, top), top_style)).map_err(err)?;
        bar.draw(&Text::new(labels[1].clone(), (lx, bottom), bottom_style)).map_err(err)?;
        let _ = ox;
        let e_style = TextStyle::from(font.into_font()).pos(Pos::new(HPos::Left, VPos::Center));
        bar.draw(&Text::new("E", (lx, (top + bottom) / 2), e_style)).map_err(err)?;
    } else {
        let (ox, oy) = area.get_base_pixel();
        let centre = ((px.start + px.end) / 2 - ox, (py.start + py.end) / 2 - oy);
        draw_note(area, empty_note, centre, (plot_w as f64 * 0.92) as u32, scale)?;
    }
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

/// How a [`draw_matrix_styled`] colours and labels its cells.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct MatrixStyle {
    /// Colour by `log10(value)` (positive values only) rather than by the value.
    pub log: bool,
    /// The colour scale's ends, in the coloured unit (`log10` for a log scale); `None`: every
    /// cell grey.
    pub range: Option<(f64, f64)>,
    /// Decimals of each cell's label (0: a count).
    pub digits: usize,
    /// Row 0 at the top (a confusion matrix) instead of the bottom.
    pub top_down: bool,
    /// Outline the cells of the diagonal.
    pub diagonal: bool,
    /// Write each cell's value in it (where it fits, and for at most [`MAX_CELL_LABELS`] cells).
    pub labels: bool,
}

/// Most cells a matrix writes its values in: past that the text costs more to draw than the
/// cells (values stay under the pointer).
pub const MAX_CELL_LABELS: usize = 160;

impl MatrixStyle {
    /// The learning-rate grids: log colours within `range`, three decimals, row 0 at the bottom.
    pub fn log(range: Option<(f64, f64)>) -> Self {
        MatrixStyle { log: true, range, digits: 3, top_down: false, diagonal: false, labels: true }
    }

    /// Linear colours from `lo` to `hi`, `digits` decimals.
    pub fn linear(lo: f64, hi: f64, digits: usize) -> Self {
        MatrixStyle {
            log: false,
            range: Some((lo, hi.max(lo + 1e-12))),
            digits,
            top_down: false,
            diagonal: false,
            labels: true,
        }
    }

    /// Where `v` falls on the colour scale, `0 … 1` (`None`: not colourable).
    fn position(&self, v: f64) -> Option<f64> {
        let (lo, hi) = self.range?;
        let u = if self.log { (v > 0.0).then(|| v.log10())? } else { v };
        v.is_finite().then(|| ((u - lo) / (hi - lo).max(1e-12)).clamp(0.0, 1.0))
    }
}

/// A matrix over two categorical axes — columns `x_labels`, rows `y_labels` (row 0 at the
/// bottom) — coloured by `log10(value)` within `range` (viridis; shared by side-by-side panels),
/// each cell labelled with its value where the label fits; a non-finite value is a grey "×"
/// (diverged), `None` (not computed yet) blank. For the learning-rate grids.
pub fn draw_matrix<DB: DrawingBackend>(
    area: &DrawingArea<DB, Shift>,
    title: &str,
    x: (&str, &[String]),
    y: (&str, &[String]),
    values: &[Vec<Option<f64>>],
    range: Option<(f64, f64)>,
) -> Result<Frame, String> {
    draw_matrix_styled(area, Scale::of(area.dim_in_pixel()), title, x, y, values, &MatrixStyle::log(range))
}

/// [`draw_matrix`] at a given scale.
pub fn draw_matrix_at<DB: DrawingBackend>(
    area: &DrawingArea<DB, Shift>,
    scale: Scale,
    title: &str,
    x: (&str, &[String]),
    y: (&str, &[String]),
    values: &[Vec<Option<f64>>],
    range: Option<(f64, f64)>,
) -> Result<Frame, String> {
    draw_matrix_styled(area, scale, title, x, y, values, &MatrixStyle::log(range))
}

/// [`draw_matrix`] with its colours, labels and row order set by `style`: also the alignment's
/// layer × step cosines (linear, `None` for a layer with no PC gradient yet) and the confusion
/// matrices (counts, row 0 at the top, the diagonal outlined).
pub fn draw_matrix_styled<DB: DrawingBackend>(
    area: &DrawingArea<DB, Shift>,
    scale: Scale,
    title: &str,
    (x_desc, x_labels): (&str, &[String]),
    (y_desc, y_labels): (&str, &[String]),
    values: &[Vec<Option<f64>>],
    style: &MatrixStyle,
) -> Result<Frame, String> {
    area.fill(&WHITE).map_err(err)?;
    let (w, h) = area.dim_in_pixel();
    let (nx, ny) = (x_labels.len().max(1), y_labels.len().max(1));
    let font = scale.font(1.0);
    let margin = scale.px(0.5);
    let (mark, line_h, x_area) = axis_room(area, scale);
    // The title, shortened with "…" to the width it has.
    let title = shorten(area, title, font, w.saturating_sub(2 * margin));
    let y_area = widest(area, y_labels, font) + 2 * mark + scale.px(0.4) + line_h;
    let cell_w = w.saturating_sub(y_area + 2 * margin) as f64 / nx as f64;
    let cell_h = h.saturating_sub(x_area + 2 * margin + line_h + scale.px(0.4)) as f64 / ny as f64;
    // Every k-th label, so that neighbours never touch.
    let every = ((widest(area, x_labels, font) as f64 + scale.text * 0.5) / cell_w.max(1.0)).ceil().max(1.0) as usize;
    let every_y = ((line_h as f64 * 1.1) / cell_h.max(1.0)).ceil().max(1.0) as usize;
    // Row r's place on the y axis.
    let row_y = |r: usize| if style.top_down { (ny - 1 - r.min(ny - 1)) as f64 } else { r as f64 };
    let mut chart = ChartBuilder::on(area)
        .caption(&title, font)
        .margin(margin)
        .x_label_area_size(x_area)
        .y_label_area_size(y_area)
        .build_cartesian_2d(0.0..nx as f64, 0.0..ny as f64)
        .map_err(err)?;
    let label = |labels: &[String], i: f64, every: usize| {
        if i >= 0.0 && (i as usize) % every == 0 {
            labels.get(i as usize).cloned().unwrap_or_default()
        } else {
            String::new()
        }
    };
    let centre = |v: f64| {
        let i = v.floor();
        ((v - i - 0.5).abs() < 1e-6).then_some(i)
    };
    chart
        .configure_mesh()
        .disable_mesh()
        .x_desc(x_desc)
        .y_desc(y_desc)
        .x_labels(2 * nx + 1)
        .y_labels(2 * ny + 1)
        .x_label_formatter(&|v| centre(*v).map_or(String::new(), |i| label(x_labels, i, every)))
        .y_label_formatter(&|v| {
            centre(*v).map_or(String::new(), |i| {
                let r = if style.top_down { ny as f64 - 1.0 - i } else { i };
                label(y_labels, r, every_y)
            })
        })
        .set_all_tick_mark_size(mark)
        .label_style(font)
        .axis_desc_style(font)
        .draw()
        .map_err(err)?;
    let cells = values.iter().enumerate().flat_map(|(r, row)| {
        row.iter().enumerate().filter_map(|(c, v)| v.map(|v| (c, v))).map(move |(c, v)| {
            let (x, y) = (c as f64, row_y(r));
            let fill = match style.position(v) {
                Some(t) => viridis(t).filled(),
                None => RGBColor(0xBB, 0xBB, 0xBB).filled(),
            };
            Rectangle::new([(x, y), (x + 1.0, y + 1.0)], fill)
        })
    });
    chart.draw_series(cells).map_err(err)?;
    if style.diagonal {
        let stroke = BLACK.stroke_width(scale.px(0.12).max(2));
        let n = nx.min(ny).min(values.len());
        chart
            .draw_series((0..n).map(|i| {
                let (x, y) = (i as f64, row_y(i));
                Rectangle::new([(x + 0.04, y + 0.04), (x + 0.96, y + 0.96)], stroke)
            }))
            .map_err(err)?;
    }
    // Each cell's value, at the size that fits its cell (about five characters), or none
    // below 8 pixels (the value stays under the pointer).
    let chars = if style.digits == 0 { 4.0 } else { 3.0 + style.digits as f64 };
    let size = (0.85 * scale.text).min(cell_w * 0.9 / (chars * 0.62)).min(cell_h * 0.7);
    let cells: usize = values.iter().map(Vec::len).sum();
    if style.labels && cells <= MAX_CELL_LABELS && size >= 8.0 {
        let texts = values.iter().enumerate().flat_map(|(r, row)| {
            row.iter().enumerate().filter_map(|(c, v)| v.map(|v| (c, v))).map(move |(c, v)| {
                let t = if v.is_finite() { format!("{v:.prec$}", prec = style.digits) } else { "×".into() };
                let light = style.position(v).is_some_and(|t| t > 0.6);
                let ink = if v.is_finite() && light { BLACK } else { WHITE };
                let style = ("sans-serif", size).into_font().color(&ink).pos(Pos::new(HPos::Center, VPos::Center));
                Text::new(t, (c as f64 + 0.5, row_y(r) + 0.5), style)
            })
        });
        chart.draw_series(texts).map_err(err)?;
    }
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
            dash: None,
        };
        let text = line_hover(&[line("μPC", false), line("μPC", true)], 18.0, "iteration");
        assert_eq!(text, "iteration 20: μPC 0.2500 · μPC (before) 0.2500");
        let g = Grid { xs: vec![0.0, 1.0, 2.0], values: vec![vec![1e-4, 2.0]; 3] };
        assert_eq!(grid_hover(&g, 1.2, 2.3, "step"), "layer 2, step 1: E = 2.000");
        assert_eq!(humane(363.9, 2), "364");
        assert_eq!(humane(3639.0, 2), "3639");
        assert_eq!(humane(363_900.0, 2), "3.6 × 10⁵");
        assert_eq!(humane(1.31e-4, 2), "1.3 × 10⁻⁴");
        assert_eq!(humane(9.996e5, 3), "1.00 × 10⁶");
        assert_eq!(humane(8795.6025, 4), "8796");
        assert_eq!(humane(0.24033, 4), "0.2403");
        assert_eq!(humane(f64::NAN, 4), "NaN");
        assert_eq!(scientific(363.9, 2), "3.6 × 10²");
        assert_eq!(scientific(4.78, 2), "4.8");
        assert_eq!(grid_hover(&g, 1.2, 0.4, "step"), "", "below layer 1");
        assert_eq!(log_range(&g), Some((-4.0, 2f64.log10())));
    }

    #[test]
    fn tick_labels_tell_close_ticks_apart() {
        assert_eq!(tick(-3.0, true, 6.0), "10⁻³");
        assert_eq!(tick(4.5, true, 6.0), "3×10⁴");
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
