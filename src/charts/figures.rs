//! The training plots of a session, shaped from its runs — shared by the page (which adds its
//! ghosts, the inference view and the conditioning plots) and `pclab train --plots DIR`.

use super::{
    bin_profiles, draw_heatmap, draw_lines, draw_matrix_styled, rule_color, Axes, Grid, Line, MatrixStyle, Scale,
};
use crate::data::Evaluation;
use crate::pcn::alignment::AlignmentReport;
use crate::pcn::train::IterationReport;
use crate::plot_id::PlotId;
use crate::session::{Run, RunStatus, Session};
use plotters::prelude::*;

/// Heatmap cells drawn at most (columns are averaged to stay under it).
pub const MAX_CELLS: usize = 8000;

/// A line in a rule's colour.
pub fn line_of(label: &str, rule: &str, points: Vec<(f64, f64)>, diverged_at: Option<(usize, String)>) -> Line {
    Line {
        label: label.into(),
        color: rule_color(rule),
        points,
        faded: false,
        diverged_at: diverged_at.map(|(x, note)| (x as f64, note)),
        band: Vec::new(),
        dash: None,
    }
}

/// `(iteration, value)` as plot points.
pub fn series_points(s: &[(usize, f64)]) -> Vec<(f64, f64)> {
    s.iter().map(|&(i, v)| (i as f64, v)).collect()
}

/// A profile by layer `l = 1, 2, …`.
pub fn by_layer(v: &[f64]) -> Vec<(f64, f64)> {
    v.iter().enumerate().map(|(l, &e)| ((l + 1) as f64, e)).collect()
}

/// Each run's test accuracy (`loss = false`) or training loss, with its divergence marked.
pub fn run_lines(runs: &[Run], loss: bool) -> Vec<Line> {
    runs.iter()
        .map(|run| {
            let diverged = match &run.status {
                RunStatus::Diverged { iteration, layer: Some(l), .. } => {
                    Some((*iteration, format!("diverged (layer {l})")))
                }
                RunStatus::Diverged { iteration, .. } => Some((*iteration, "diverged".into())),
                _ => None,
            };
            let pts = series_points(if loss { run.loss.points() } else { run.accuracy.points() });
            line_of(run.settings.rule.label(), run.name(), pts, diverged)
        })
        .collect()
}

/// Lines by layer of each run's latest report (`pick` chooses the profile).
pub fn profile_lines(runs: &[Run], pc_only: bool, pick: impl Fn(&IterationReport) -> &[f64]) -> Vec<Line> {
    runs.iter()
        .filter(|run| !pc_only || run.settings.rule.is_pc())
        .filter_map(|run| {
            let last = run.last.as_ref()?;
            // A diverged run's last report: mark the first layer that went non-finite.
            let site = last.first_non_finite().map(|(l, _)| (l, format!("non-finite from layer {l}")));
            Some(line_of(run.settings.rule.label(), run.name(), by_layer(pick(last)), site))
        })
        .collect()
}

/// The layer × iteration energies of a PC run, binned for drawing.
pub fn energy_grid(run: &Run) -> Grid {
    let layers = run.energies.last().map_or(1, |p| p.1.len().max(1));
    bin_profiles(run.energies.points(), (MAX_CELLS / layers).clamp(8, 160))
}

/// Each PC run's median cosine with backprop's gradient over training, the range over layers
/// shaded.
pub fn alignment_lines(runs: &[Run]) -> Vec<Line> {
    runs.iter()
        .filter(|r| r.settings.rule.is_pc() && !r.alignment.points().is_empty())
        .map(|r| {
            let pts = r.alignment.points();
            Line {
                band: pts.iter().map(|(i, p)| (*i as f64, p.min, p.max)).collect(),
                ..line_of(
                    r.settings.rule.label(),
                    r.name(),
                    pts.iter().map(|(i, p)| (*i as f64, p.median)).collect(),
                    None,
                )
            }
        })
        .collect()
}

/// The alignment axes: cosine, −1 … 1.
pub fn alignment_axes() -> Axes {
    Axes::new("iteration", "cosine with backprop's gradient").bounded(-1.0, 1.0)
}

/// A report's cosines as a matrix: columns the compared steps, rows the layers (1 at the
/// bottom); `None` where PC has no gradient.
pub fn alignment_matrix(report: &AlignmentReport) -> (Vec<String>, Vec<String>, Vec<Vec<Option<f64>>>) {
    let layers = report.steps.first().map_or(0, Vec::len);
    let xl = report.at.iter().map(|t| t.to_string()).collect();
    let yl = (1..=layers).map(|l| l.to_string()).collect();
    let values = (0..layers)
        .map(|l| report.steps.iter().map(|p| p.get(l).copied().flatten().map(|a| a.cosine)).collect())
        .collect();
    (xl, yl, values)
}

/// A report's layer × step cosines as a matrix (the page's plot and `train --plots`).
pub fn draw_alignment_steps<DB: DrawingBackend>(
    root: &DrawingArea<DB, plotters::coord::Shift>,
    scale: Scale,
    title: &str,
    report: &AlignmentReport,
) -> Result<super::Frame, String> {
    let (xl, yl, values) = alignment_matrix(report);
    draw_matrix_styled(root, scale, title, ("inference step t", &xl), ("layer l", &yl), &values, &alignment_style())
}

/// The colours of the layer × step cosines: linear from −1 to 1, two decimals.
pub fn alignment_style() -> MatrixStyle {
    MatrixStyle::linear(-1.0, 1.0, 2)
}

/// A confusion matrix's cells (row = label, from 0 at the top) and its colours: counts on a log
/// scale up to the largest (zeros grey), the diagonal outlined.
pub fn confusion_cells(e: &Evaluation) -> (Vec<String>, Vec<Vec<Option<f64>>>, MatrixStyle) {
    let labels = (0..e.confusion.len()).map(|d| d.to_string()).collect();
    let values = e.confusion.iter().map(|row| row.iter().map(|&c| Some(c as f64)).collect()).collect();
    let top = e.confusion.iter().flatten().copied().max().unwrap_or(1).max(1) as f64;
    // The counts are under the pointer: 100 numbers a panel cost a frame to draw.
    let style = MatrixStyle {
        top_down: true,
        diagonal: true,
        digits: 0,
        labels: false,
        ..MatrixStyle::log(Some((0.0, top.log10().max(0.5))))
    };
    (labels, values, style)
}

/// Each evaluated run's confusion matrix side by side (stacked when narrow); the frames.
pub fn draw_confusions<DB: DrawingBackend>(
    root: &DrawingArea<DB, plotters::coord::Shift>,
    scale: Scale,
    runs: &[(&str, usize, &Evaluation)],
) -> Result<Vec<super::Frame>, String> {
    let mut frames = Vec::new();
    // As many side by side as leave each panel at least 280 pixels, the rest in rows.
    let (w, _) = root.dim_in_pixel();
    let cols = (w as usize / 280).clamp(1, runs.len().max(1));
    let areas = root.split_evenly((runs.len().div_ceil(cols).max(1), cols));
    for (area, (label, at, e)) in areas.iter().zip(runs) {
        let (labels, values, style) = confusion_cells(e);
        let _ = at;
        let title = format!("{label} · {:.1} %", e.accuracy);
        frames.push(draw_matrix_styled(
            area,
            scale,
            &title,
            ("guessed", &labels),
            ("true digit", &labels),
            &values,
            &style,
        )?);
    }
    Ok(frames)
}

/// Axes with a linear x.
pub fn axes(x: &str, y: &str, log_y: bool) -> Axes {
    Axes::new(x, y).log_y(log_y)
}

/// The test-accuracy axes: percent, 0 … 100 at most.
pub fn accuracy_axes() -> Axes {
    Axes::new("iteration", "test accuracy (%)").bounded(0.0, 100.0)
}

/// Draws the session plot `id` (one of [`PlotId::SESSION`]) on any backend.
pub fn draw_session<DB: DrawingBackend>(
    root: &DrawingArea<DB, plotters::coord::Shift>,
    id: PlotId,
    session: &Session,
) -> Result<(), String> {
    let runs = &session.runs;
    match id {
        PlotId::Accuracy => draw_lines(root, &accuracy_axes(), &run_lines(runs, false), "")?,
        PlotId::Loss => draw_lines(root, &axes("iteration", "training loss", true), &run_lines(runs, true), "")?,
        PlotId::EnergyHeatmap => {
            let run =
                runs.iter().find(|r| r.settings.rule.is_pc()).ok_or("no PC rule ran, so there are no energies")?;
            draw_heatmap(root, "iteration", &energy_grid(run), "")?
        }
        PlotId::ActivationRms => {
            draw_lines(root, &axes("layer l", "RMS of z_l", true), &profile_lines(runs, false, |r| &r.act_rms), "")?
        }
        PlotId::WeightChange => {
            draw_lines(root, &axes("layer l", "‖ΔW_l‖ / ‖W_l‖", true), &profile_lines(runs, false, |r| &r.rel_dw), "")?
        }
        PlotId::Alignment => {
            draw_lines(root, &alignment_axes(), &alignment_lines(runs), "no alignment: train with --align-every K")?
        }
        PlotId::AlignmentSteps => {
            let (at, run, report) = runs
                .iter()
                .find_map(|r| r.last_alignment.as_ref().map(|(at, a)| (*at, r, a)))
                .ok_or("no PC run compared its gradients with backprop's (train with --align-every K)")?;
            let title = format!(
                "{} · iteration {at} · cosine with backprop's gradient (blank: no PC gradient)",
                run.settings.rule.label()
            );
            draw_alignment_steps(root, Scale::of(root.dim_in_pixel()), &title, report)?
        }
        PlotId::Confusion => {
            let evals: Vec<(&str, usize, &Evaluation)> = runs
                .iter()
                .filter_map(|r| r.last_eval.as_ref().map(|(at, e)| (r.settings.rule.label(), *at, e)))
                .collect();
            if evals.is_empty() {
                return Err("no run has been evaluated yet".into());
            }
            draw_confusions(root, Scale::of(root.dim_in_pixel()), &evals)?.remove(0)
        }
        other => {
            let drawn: Vec<&str> = PlotId::SESSION.iter().map(|p| p.id()).collect();
            return Err(format!("the {other} plot is not drawn from a session; these are: {}", drawn.join(", ")));
        }
    };
    root.present().map_err(|e| format!("drawing failed: {e:?}"))
}

/// Registers the bundled font for bitmap figures (once): bitmaps draw text through ab_glyph,
/// which needs the font itself (SVG names it instead).
#[cfg(not(target_arch = "wasm32"))]
pub fn register_font() {
    use std::sync::Once;
    static FONT: Once = Once::new();
    FONT.call_once(|| {
        let _ = plotters::style::register_font(
            "sans-serif",
            plotters::style::FontStyle::Normal,
            include_bytes!("../../assets/fonts/DejaVuSans.ttf"),
        );
    });
}

/// Writes every [`PlotId::SESSION`] plot of `session` that has data (the energies of a PC rule,
/// an aligned iteration, an evaluation) into `dir` as `<id>.svg` and `<id>.png` (`width ×
/// height` pixels); the files written.
#[cfg(not(target_arch = "wasm32"))]
pub fn write_plots(
    session: &Session,
    dir: &std::path::Path,
    size: (u32, u32),
) -> Result<Vec<std::path::PathBuf>, String> {
    register_font();
    std::fs::create_dir_all(dir).map_err(|e| format!("{}: {e}", dir.display()))?;
    let mut written = Vec::new();
    let pc = session.runs.iter().any(|r| r.settings.rule.is_pc());
    let aligned = session.runs.iter().any(|r| r.last_alignment.is_some());
    let evaluated = session.runs.iter().any(|r| r.last_eval.is_some());
    let wanted = |id: PlotId| match id {
        PlotId::EnergyHeatmap => pc,
        PlotId::Alignment | PlotId::AlignmentSteps => aligned,
        PlotId::Confusion => evaluated,
        _ => true,
    };
    for id in PlotId::SESSION.into_iter().filter(|&id| wanted(id)) {
        let svg = dir.join(format!("{id}.svg"));
        draw_session(&SVGBackend::new(&svg, size).into_drawing_area(), id, session)?;
        let png = dir.join(format!("{id}.png"));
        draw_session(&BitMapBackend::new(&png, size).into_drawing_area(), id, session)?;
        written.extend([svg, png]);
    }
    Ok(written)
}
