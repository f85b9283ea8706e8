//! The training plots of a session, shaped from its runs — shared by the page (which adds its
//! ghosts, the inference view and the conditioning plots) and `pclab train --plots DIR`.

use super::{bin_profiles, draw_heatmap, draw_lines, rule_color, Axes, Grid, Line};
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

/// Writes every [`PlotId::SESSION`] plot of `session` into `dir` as `<id>.svg` and `<id>.png`
/// (`width × height` pixels); the files written.
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
    for id in PlotId::SESSION.into_iter().filter(|&id| pc || id != PlotId::EnergyHeatmap) {
        let svg = dir.join(format!("{id}.svg"));
        draw_session(&SVGBackend::new(&svg, size).into_drawing_area(), id, session)?;
        let png = dir.join(format!("{id}.png"));
        draw_session(&BitMapBackend::new(&png, size).into_drawing_area(), id, session)?;
        written.extend([svg, png]);
    }
    Ok(written)
}
