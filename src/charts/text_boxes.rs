//! Every chart kind drawn at the smallest and the largest sizes the page produces, on a backend
//! that records where each text landed: no two texts may overlap and none may leave the canvas.

use super::*;
use plotters::style::FontTransform;
use plotters_backend::{BackendColor, BackendCoord, BackendStyle, BackendTextStyle, DrawingErrorKind};
use std::cell::RefCell;
use std::rc::Rc;

/// A text's box: left, top, right, bottom, in canvas pixels.
type TextBox = (f64, f64, f64, f64);

/// A backend that draws nothing but records each text's box, measuring text as 0.62 em a
/// character and 1.15 em high (wider than a sans-serif's digits, so the check errs on the safe side).
struct Recorder {
    size: (u32, u32),
    texts: Rc<RefCell<Vec<(String, TextBox)>>>,
}

#[derive(Debug)]
struct Never;
impl std::fmt::Display for Never {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("never")
    }
}
impl std::error::Error for Never {}

fn measure(text: &str, size: f64) -> (f64, f64) {
    (text.chars().count() as f64 * 0.62 * size, 1.15 * size)
}

impl DrawingBackend for Recorder {
    type ErrorType = Never;
    fn get_size(&self) -> (u32, u32) {
        self.size
    }
    fn ensure_prepared(&mut self) -> Result<(), DrawingErrorKind<Never>> {
        Ok(())
    }
    fn present(&mut self) -> Result<(), DrawingErrorKind<Never>> {
        Ok(())
    }
    fn draw_pixel(&mut self, _: BackendCoord, _: BackendColor) -> Result<(), DrawingErrorKind<Never>> {
        Ok(())
    }
    fn draw_line<S: BackendStyle>(
        &mut self,
        _: BackendCoord,
        _: BackendCoord,
        _: &S,
    ) -> Result<(), DrawingErrorKind<Never>> {
        Ok(())
    }
    fn draw_text<S: BackendTextStyle>(
        &mut self,
        text: &str,
        style: &S,
        (x, y): BackendCoord,
    ) -> Result<(), DrawingErrorKind<Never>> {
        if text.is_empty() {
            return Ok(());
        }
        let (w, h) = measure(text, style.size());
        let anchor = style.anchor();
        let lx = match anchor.h_pos {
            HPos::Left => 0.0,
            HPos::Center => -w / 2.0,
            HPos::Right => -w,
        };
        let ly = match anchor.v_pos {
            VPos::Top => 0.0,
            VPos::Center => -h / 2.0,
            VPos::Bottom => -h,
        };
        // The canvas rotates clockwise by the transform's angle about the anchor point.
        let (cos, sin) = match style.transform() {
            FontTransform::None => (1.0, 0.0),
            FontTransform::Rotate90 => (0.0, 1.0),
            FontTransform::Rotate180 => (-1.0, 0.0),
            FontTransform::Rotate270 => (0.0, -1.0),
        };
        let corners = [(lx, ly), (lx + w, ly), (lx, ly + h), (lx + w, ly + h)]
            .map(|(a, b)| (x as f64 + a * cos - b * sin, y as f64 + a * sin + b * cos));
        let bx = corners.iter().fold((f64::INFINITY, f64::INFINITY, f64::NEG_INFINITY, f64::NEG_INFINITY), |b, c| {
            (b.0.min(c.0), b.1.min(c.1), b.2.max(c.0), b.3.max(c.1))
        });
        self.texts.borrow_mut().push((text.to_string(), bx));
        Ok(())
    }
    fn estimate_text_size<S: BackendTextStyle>(
        &self,
        text: &str,
        style: &S,
    ) -> Result<(u32, u32), DrawingErrorKind<Never>> {
        let (w, h) = measure(text, style.size());
        Ok((w.ceil() as u32, h.ceil() as u32))
    }
}

/// The texts `draw` puts on a `w × h` canvas.
fn texts_of(size: (u32, u32), draw: impl Fn(&DrawingArea<Recorder, Shift>)) -> Vec<(String, TextBox)> {
    let texts = Rc::new(RefCell::new(Vec::new()));
    let root = Recorder { size, texts: texts.clone() }.into_drawing_area();
    draw(&root);
    let out = texts.borrow().clone();
    out
}

/// What is wrong with the texts' layout: pairs that overlap (by more than a pixel) and texts
/// that leave the canvas.
fn problems(size: (u32, u32), texts: &[(String, TextBox)]) -> Vec<String> {
    let mut out = Vec::new();
    let (w, h) = (size.0 as f64, size.1 as f64);
    for (i, (a, ba)) in texts.iter().enumerate() {
        if !(ba.0 >= -1.0 && ba.1 >= -1.0 && ba.2 <= w + 1.0 && ba.3 <= h + 1.0) {
            out.push(format!("“{a}” {ba:?} leaves the {w} × {h} canvas"));
        }
        for (b, bb) in &texts[i + 1..] {
            let dx = ba.2.min(bb.2) - ba.0.max(bb.0);
            let dy = ba.3.min(bb.3) - ba.1.max(bb.1);
            if dx > 1.0 && dy > 1.0 {
                out.push(format!("“{a}” {ba:?} overlaps “{b}” {bb:?}"));
            }
        }
    }
    out
}

fn line(label: &str, rule: &str, points: Vec<(f64, f64)>) -> Line {
    Line {
        label: label.into(),
        color: rule_color(rule),
        points,
        faded: false,
        diverged_at: None,
        band: Vec::new(),
        dash: None,
    }
}

/// The lines of a busy accuracy plot: five rules, a saved run, a switch's faded lines and a divergence.
fn busy_lines() -> Vec<Line> {
    let curve = |a: f64| (0..=30).map(|i| (i as f64 * 30.0, 10.0 + a * (1.0 - (-(i as f64) / 6.0).exp()))).collect();
    let mut lines = vec![
        line("μPC", "mupc", curve(84.0)),
        line("standard PC", "sp", curve(60.0)),
        line("BP (Depth-μP)", "bp_mup", curve(86.0)),
        line("BP (standard)", "bp_sp", curve(85.0)),
        Line { faded: true, ..line("μPC", "mupc", curve(80.0)) },
        Line { dash: Some(0), ..line("μPC (saved: run-2026-11-30)", "mupc", curve(83.0)) },
        Line { dash: Some(1), ..line("standard PC (saved: run-2026-11-30)", "sp", curve(50.0)) },
    ];
    lines[1].diverged_at = Some((900.0, "diverged (layer 64)".into()));
    lines
}

/// Every chart kind the page draws, on `root`, as the page lays it out.
fn all_kinds(root: &DrawingArea<Recorder, Shift>, kind: usize) {
    let scale = Scale::of(root.dim_in_pixel());
    let lines = busy_lines();
    let grid = Grid {
        xs: (0..100).map(|i| i as f64 * 9.0).collect(),
        values: (0..100).map(|c| (0..129).map(|r| 10f64.powf(-((r + c) % 12) as f64)).collect()).collect(),
    };
    let energies = |t: f64| (1..=129).map(|l| (l as f64, 10f64.powf(-(l as f64) / 12.0) * t)).collect();
    let depths: Vec<(f64, f64)> =
        [1.0, 2.0, 4.0, 8.0, 16.0, 32.0, 64.0, 128.0].iter().map(|&h| (h, 3.0 * h * h)).collect();
    let ok = |r: Result<Frame, String>| r.expect("drawn");
    match kind {
        0 => {
            ok(draw_lines(root, &Axes::new("iteration", "test accuracy (%)").bounded(0.0, 100.0), &lines, ""));
        }
        1 => {
            let loss: Vec<Line> = lines
                .iter()
                .map(|l| Line { points: l.points.iter().map(|&(x, y)| (x, 1e4 / y.powi(3))).collect(), ..l.clone() })
                .collect();
            ok(draw_lines(root, &Axes::new("iteration", "training loss").log_y(true), &loss, ""));
        }
        2 => {
            let note = "the first test evaluation comes at iteration 100";
            ok(draw_lines(root, &Axes::new("iteration", "test accuracy (%)").bounded(0.0, 100.0), &[], note));
        }
        3 | 4 => {
            // The energy heatmap (or the inference view) with its profile beside or below it.
            let (left, right) = split_panels(root, 0.64);
            ok(draw_heatmap_at(&left, scale, if kind == 3 { "iteration" } else { "inference step t" }, &grid, ""));
            let profiles = vec![line("μPC", "mupc", energies(1.0)), line("standard PC", "sp", energies(1e3))];
            ok(draw_lines_at(&right, scale, &Axes::new("layer l", "E_l after inference").log_y(true), &profiles, ""));
        }
        5 => {
            let (left, right) = split_panels(root, 0.64);
            ok(draw_heatmap_at(&left, scale, "inference step t", &Grid::default(), "press play or step"));
            let flat = vec![line("μPC", "mupc", (0..=128).map(|t| (t as f64, 0.24033 - 1e-6 * t as f64)).collect())];
            ok(draw_lines_at(&right, scale, &Axes::new("step t", "total energy F").log_y(true), &flat, ""));
        }
        6 => {
            let mut k = vec![
                line("standard PC, skips", "sp", depths.clone()),
                line("standard PC, no skips", "sp_noskip", depths.iter().map(|&(h, v)| (h, v / 10.0)).collect()),
                line("μPC", "mupc", depths.iter().map(|&(h, v)| (h, v / 3.0)).collect()),
            ];
            k[2].band = depths.iter().map(|&(h, v)| (h, v / 4.0, v / 2.0)).collect();
            ok(draw_lines(root, &Axes::new("depth H", "κ at initialisation").log_y(true).log_x(), &k, ""));
        }
        7 => {
            // κ over training with its faint λ lines; one point only.
            let mut k = Vec::new();
            for (label, rule) in [("μPC", "mupc"), ("standard PC", "sp")] {
                k.push(line(label, rule, vec![(0.0, 363.9)]));
                k.push(Line { faded: true, ..line(&format!("{label} λ_max"), rule, vec![(0.0, 4.78)]) });
                k.push(Line { faded: true, ..line(&format!("{label} |λ_min|"), rule, vec![(0.0, 1.31e-2)]) });
            }
            ok(draw_lines(root, &Axes::new("iteration", "κ, λ_max, |λ_min|").log_y(true), &k, ""));
        }
        8 => {
            let (l, r) = split_panels(root, 0.5);
            let xl: Vec<String> = crate::presets::PAPER_ETA_ZS.iter().map(|v| format!("{v}")).collect();
            let yl: Vec<String> = crate::presets::PAPER_LRS.iter().map(|v| format!("{v}")).collect();
            let values: Vec<Vec<Option<f64>>> = (0..4)
                .map(|r| {
                    (0..11).map(|c| Some(if (r + c) % 5 == 0 { f64::NAN } else { 0.05 * (1 + r + c) as f64 })).collect()
                })
                .collect();
            let range = matrix_range([&values]);
            for (k, area) in [l, r].iter().enumerate() {
                let title = format!("μPC · H = {} · N = 128 · the paper's grid", [8, 128][k]);
                ok(draw_matrix_at(area, scale, &title, ("η_z", &xl), ("η_w", &yl), &values, range));
            }
        }
        _ => unreachable!(),
    }
}

/// The smallest canvases the page makes (a 360-pixel phone, normal and tall aspect) and the
/// largest (presentation mode on a 1920 × 1080 screen at two device pixels per CSS pixel).
const SIZES: [(u32, u32); 5] = [(296, 139), (296, 222), (640, 300), (1880, 880), (3760, 1760)];
/// The same for the two-panel plots, which a phone draws in portrait (the panels stacked).
const TALL_SIZES: [(u32, u32); 4] = [(296, 395), (900, 330), (1880, 880), (3760, 1760)];

#[test]
fn no_chart_text_overlaps_or_leaves_the_canvas_at_any_size_the_page_produces() {
    let mut bad = Vec::new();
    for kind in 0..9 {
        let sizes: &[(u32, u32)] = if matches!(kind, 3 | 4 | 5 | 8) { &TALL_SIZES } else { &SIZES };
        for &size in sizes {
            let texts = texts_of(size, |root| all_kinds(root, kind));
            assert!(texts.len() >= 4, "kind {kind} at {size:?} drew only {texts:?}");
            for p in problems(size, &texts) {
                bad.push(format!("kind {kind} at {size:?}: {p}"));
            }
        }
    }
    // The page's normal layout: every chart at 13 pixels (at one device pixel per CSS pixel; at
    // two, every size doubles), on the canvases it gives them.
    set_text_limits(13.0, 13.0);
    for kind in 0..9 {
        let sizes: &[(u32, u32)] = if matches!(kind, 3 | 4 | 5 | 8) {
            &[(296, 395), (900, 330), (1100, 400)]
        } else {
            &[(296, 222), (640, 300)]
        };
        for &size in sizes {
            let texts = texts_of(size, |root| all_kinds(root, kind));
            for p in problems(size, &texts) {
                bad.push(format!("kind {kind} at {size:?}, 13 px text: {p}"));
            }
        }
    }
    set_text_limits(11.0, 40.0);
    assert!(bad.is_empty(), "{} layout problems:\n{}", bad.len(), bad.join("\n"));
}

#[test]
fn the_overlap_check_catches_a_chart_whose_label_area_is_too_small() {
    // The planted defect: plotters' own layout with a 10-pixel y label area, where the axis
    // title lands on the tick labels.
    let size = (640, 300);
    let texts = texts_of(size, |root| {
        let mut chart = ChartBuilder::on(root)
            .margin(8)
            .x_label_area_size(12)
            .y_label_area_size(10)
            .build_cartesian_2d(0.0..900.0, 0.0..100.0)
            .unwrap();
        chart
            .configure_mesh()
            .x_desc("iteration")
            .y_desc("test accuracy (%)")
            .label_style(("sans-serif", 14))
            .draw()
            .unwrap();
    });
    let found = problems(size, &texts);
    assert!(found.iter().any(|p| p.contains("overlaps")), "{found:?}");
    assert!(found.iter().any(|p| p.contains("leaves")), "{found:?}");
    // And a clean layout of two texts far apart passes.
    assert!(problems(size, &[("a".into(), (0.0, 0.0, 10.0, 10.0)), ("b".into(), (20.0, 0.0, 30.0, 10.0))]).is_empty());
}
