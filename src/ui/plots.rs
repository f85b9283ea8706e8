//! The page's live plots ([`PlotId::ALL`]): data shaped from the session by the runner's state, drawn by `charts` on
//! canvases, with the values under the pointer read back from the same data.

use super::runner::{Reveal, Runner};
use crate::charts::figures::{self, line_of, series_points};
use crate::charts::{self, Axes, Frame, Grid, Line, Scale};
use crate::plot_id::PlotId;
use crate::session::conditioning::Scheme;
use plotters::prelude::*;
use plotters_canvas::CanvasBackend;
use std::cell::RefCell;
use wasm_bindgen::prelude::*;
use wasm_bindgen::JsCast;

/// A plot on the page.
pub struct PlotDef {
    /// Which plot (its id is the test id and the canvas id suffix).
    pub id: PlotId,
    /// Title.
    pub title: &'static str,
    /// The one-line caption saying what it shows.
    pub caption: &'static str,
    /// The caption presentation mode keeps: a few words.
    pub short: &'static str,
    /// The "?" text: what is drawn, how to read it, what the paper found.
    pub help: &'static str,
    /// Drawn from the session's histories (so it waits while an evaluation has the session); the
    /// conditioning plots and the grid keep their own data.
    pub reads_session: bool,
}

/// Every plot, in [`PlotId::ALL`] order (the runner's `dirty` order; checked at compile time).
pub const PLOTS: [PlotDef; PlotId::COUNT] = [
    PlotDef {
        id: PlotId::Accuracy,
        title: "Test accuracy",
        caption: "Percent of the 10 000 MNIST test images classified by the feedforward pass, every k iterations; faded: before the switch.",
        short: "All 10 000 test images, feedforward pass; faded: before the switch.",
        help: "Each line is one learning rule on the same network, seed and batches. Accuracy is measured on all 10 000 test images with the feedforward pass (no inference), every k iterations. The paper (Fig. 1, N = 512, ReLU): μPC ≈ 92/93/94 % after 300/600/900 iterations at every depth from 8 to 128, on top of backprop with Depth-μP; standard PC ≈ 82 % at 8 layers, ≈ 67 % at 32, and does not train (chance, 10 %) at 64 and 128. Faded lines are the runs before the last standard PC ⇄ μPC switch.",
        reads_session: true,
    },
    PlotDef {
        id: PlotId::Loss,
        title: "Training loss",
        caption: "½·mean ‖y − ŷ‖² of each batch at the feedforward point (log scale); a cross marks a divergence.",
        short: "½·mean ‖y − ŷ‖² per batch (log); × a divergence.",
        help: "The training loss ½·mean‖y − ŷ‖² of each batch, at the feedforward point, before the weight update (log scale). A cross marks the iteration where a run produced a non-finite value and stopped. Standard PC starts orders of magnitude higher at depth because its forward pass explodes; μPC and BP start near 0.5.",
        reads_session: true,
    },
    PlotDef {
        id: PlotId::EnergyHeatmap,
        title: "Energy by layer over training",
        caption: "Left: E_l after inference, layer × iteration (log colour; grey: exactly 0 in f32). Right: the latest energy profile by layer, per PC rule.",
        short: "E_l after inference, layer × iteration (log colour).",
        help: "Left: each column is an iteration, each row a layer l (1 at the bottom, L = H+1 the output at the top); the colour is the layer energy E_l = ½‖e_l‖² after inference, on a log scale; exact zeros in f32 are grey. Right: the latest profile. With η_z = 0.5 and B = 64 the error signal decays roughly like (η_z/B)^k with distance k from the output, so in deep networks only the top layers carry energy — and only they learn.",
        reads_session: true,
    },
    PlotDef {
        id: PlotId::InferenceView,
        title: "Inside the latest iteration's inference",
        caption: "Left: E_l at the feedforward point (step 0, where hidden errors are exactly 0, grey) and after each inference step. Right: total energy F by step.",
        short: "E_l by layer × inference step: the error moves down a layer a step.",
        help: "One iteration's inference, step by step: column t is the layer energies after t inference steps (t = 0: the feedforward point, where every hidden error is exactly zero and only the output layer has energy). Each step the error moves down one layer — a wavefront. Right: the total energy F by step, which inference descends. Use “step inference” (Shift+→) to reveal the steps one at a time.",
        reads_session: true,
    },
    PlotDef {
        id: PlotId::ActivationRms,
        title: "Forward-pass scale",
        caption: "RMS of the activities z_l after the feedforward pass, by layer (log scale): standard PC explodes or vanishes with depth.",
        short: "RMS of z_l by layer after the forward pass (log).",
        help: "The root mean square of each layer's activities z_l after the feedforward pass. With standard initialisation a residual ReLU block adds about 1/6 of the variance, so standard PC's forward pass grows like (1 + 1/6)^(l/2) and explodes beyond ~60 layers (or vanishes without skips). μPC scales each residual branch by a_h = 1/√(N·L) — a 1/√L shrink on top of fan-in scaling — and the input and output layers by width, so its forward pass stays at scale 1 at every depth — the paper's fix.",
        reads_session: true,
    },
    PlotDef {
        id: PlotId::WeightChange,
        title: "Where learning happens",
        caption: "‖ΔW_l‖ / ‖W_l‖ of the latest Adam update, by layer (log scale).",
        short: "‖ΔW_l‖ / ‖W_l‖ of the latest update, by layer (log).",
        help: "‖ΔW_l‖ / ‖W_l‖, the relative size of the latest Adam update of each weight matrix, by layer (log scale). In PC the weight gradient of layer l is its error times the activity below, so layers the error has not reached during inference do not change. Backprop updates every layer.",
        reads_session: true,
    },
    PlotDef {
        id: PlotId::KappaSweep,
        title: "Ill-conditioning grows with depth",
        caption: "κ = |λ_max| / |λ_min| of the inference Hessian at initialisation against depth H (log–log), median over seeds with their range shaded.",
        short: "κ at initialisation against depth; median over seeds, range shaded.",
        help: "κ = |λ_max| / |λ_min| of the Hessian of one image's energy over all hidden activities, at initialisation, against depth H (log–log), for standard PC with skips, standard PC without skips and μPC; the line is the median over seeds and the band their range. κ measures how hard inference is for gradient descent: the steps needed grow with κ. The paper: κ grows with depth (and width) for residual networks, and μPC does not prevent it — μPC fixes the forward pass, not the inference landscape.",
        reads_session: false,
    },
    PlotDef {
        id: PlotId::KappaTraining,
        title: "Conditioning over training",
        caption: "κ of each PC run at the batch's first sample after inference, every k iterations (solid), with λ_max and λ_min (faint).",
        short: "κ of each PC run during training; faint: λ_max, |λ_min|.",
        help: "κ of each PC run's inference Hessian during training, at the post-inference activities of the batch's first sample with the just-updated weights, every k iterations (solid), with λ_max and |λ_min| (faint). The paper found that training makes the landscape more ill-conditioned still.",
        reads_session: false,
    },
    PlotDef {
        id: PlotId::LrGrid,
        title: "Learning-rate transfer",
        caption: "Minimum training loss of each (η_w, η_z) cell at the two depths, side by side (shared log colour; × diverged).",
        short: "Minimum training loss per (η_w, η_z) at two depths; × diverged.",
        help: "Each cell is a fresh network trained for the chosen number of iterations with that weight learning rate η_w (rows) and inference rate η_z (columns); its colour and number are the lowest training loss it reached (darker is better, × diverged). The two panels are two depths (or widths). The paper's Fig. 1 left: under μPC the region of good rates stays in the same place from 16 to 128 layers and across widths, so rates tuned on a small network transfer to a large one; under standard PC it moves and shrinks.",
        reads_session: false,
    },
    PlotDef {
        id: PlotId::Alignment,
        title: "PC's gradients against backprop's",
        caption: "Cosine between each PC rule's weight gradient after inference and backprop's at the same weights and batch, every 10 iterations: the median over layers with a gradient, their range shaded (CPU).",
        short: "Cosine of PC's weight gradient with backprop's: median over layers.",
        help: "Every 10 iterations each PC rule's weight gradient after inference, ∂F/∂W_l, is compared with backprop's gradient of the loss at the same weights and on the same batch, ∂ℓ̃/∂W_l, with ℓ̃ = ½·mean‖y − ŷ‖² (the energy's scale, so that F = ℓ̃ at the feedforward point). The line is the median cosine over the layers that have a PC gradient, the band their range. A cosine of 1 means PC moves the weights in backprop's direction (Whittington & Bogacz 2017; Millidge et al. 2020). Layers the error has not reached have no PC gradient at all and are left out, not counted as 0. Computed on the run's own device: the GPU runs backprop's kernels on the iteration's batch.",
        reads_session: true,
    },
    PlotDef {
        id: PlotId::AlignmentSteps,
        title: "The gradient turning toward backprop's",
        caption: "The latest aligned iteration: cosine of PC's gradient with backprop's by layer (rows) after t inference steps (columns); blank: no PC gradient (the layer's error is exactly zero).",
        short: "Cosine with backprop's by layer × inference step; blank: no gradient.",
        help: "One aligned iteration of the chosen PC rule, read left to right: column t is PC's weight gradient after t inference steps, compared with backprop's layer by layer. At t = 0 only the output layer has an error, and its PC gradient is backprop's exactly (cosine 1). Each step the error moves down one layer, so a new row fills in; blank cells are layers whose error is still exactly zero — no gradient at all, which is not a cosine of 0. A few layers below the output the error's step is so small that in f32 it rounds away, so deep layers can stay blank even after the wavefront has passed (docs/maths.md §11). Under the pointer: the cosine and the norm ratio ‖∂F/∂W_l‖ / ‖∂ℓ̃/∂W_l‖ (small far from the output: the error decays on its way down). With more than 16 steps every k-th step is shown.",
        reads_session: true,
    },
    PlotDef {
        id: PlotId::AlignmentSweep,
        title: "PC approaches backprop when width outgrows depth",
        caption: "Linear networks at initialisation, inference run to equilibrium (float64): left, the median cosine of PC's gradients with backprop's; right, the equilibrated energy over the BP loss, F*/ℓ̃; both against N/H (median over the networks with that ratio, range shaded).",
        short: "At equilibrium: cosine with BP and F*/ℓ̃ against N/H.",
        help: "Each point is a linear network (N = 16 … 128, H = 2 … 16) at initialisation, one batch of 4 images, inference run until the energy stops moving. Left: the median over layers of the cosine between PC's equilibrium weight gradient and backprop's. Right: the equilibrated energy F* over backprop's loss ℓ̃ on the energy's scale. Innocenti, Achour & Bogacz (2026) showed that under stable parameterisations such as μPC both go to 1 — PC computes backprop — when the width is much larger than the depth; standard PC stays away from it, its strong feedback bending the equilibrium. Networks deeper than about 8 may not settle within 4000 steps (the progress line counts them): that slowness is the ill-conditioning of inference.",
        reads_session: false,
    },
    PlotDef {
        id: PlotId::Confusion,
        title: "Confusion matrices",
        caption: "At the latest evaluation, per rule: how many of the 10 000 test images of each digit (rows) were guessed as each digit (columns); log colour, the diagonal outlined.",
        short: "True digit × guess at the latest evaluation; diagonal: right.",
        help: "Each panel is one rule's test evaluation: row d, column g counts the test images of digit d that the network's feedforward pass classified as g. The outlined diagonal holds the right answers, and the diagonal's sum over 10 000 is the test accuracy. Colours are on a log scale (grey: none), so the rare confusions stay visible; the count is under the pointer.",
        reads_session: true,
    },
];

const _: () = {
    let mut i = 0;
    while i < PLOTS.len() {
        assert!(PLOTS[i].id.index() == i, "PLOTS must follow PlotId::ALL");
        i += 1;
    }
};

enum Hover {
    Lines(Vec<Line>, &'static str),
    Grid(Grid, &'static str),
    /// A learning-rate grid panel (its depth index); the values come from the runner.
    Matrix(usize),
    /// An aligned iteration's layer × step cosines.
    Align(crate::pcn::alignment::AlignmentReport),
    /// A rule's confusion matrix.
    Confusion(&'static str, crate::data::Evaluation),
}

thread_local! {
    static HOVER: RefCell<Vec<Vec<(Frame, Hover)>>> = RefCell::new((0..PLOTS.len()).map(|_| Vec::new()).collect());
    /// The x range each zoomable plot shows, in plotted units, when zoomed or panned.
    static VIEW: RefCell<[Option<(f64, f64)>; PlotId::COUNT]> = const { RefCell::new([None; PlotId::COUNT]) };
}

/// The plots that are one line chart over the whole canvas: wheel zooms their x axis, a drag
/// pans it, a double click shows all the data again.
pub fn zoomable(index: usize) -> bool {
    use PlotId::*;
    matches!(PLOTS[index].id, Accuracy | Loss | ActivationRms | WeightChange | KappaSweep | KappaTraining | Alignment)
}

/// The x range shown by plot `index` now (plotted units), from its last drawing.
fn shown_x(index: usize) -> Option<Frame> {
    HOVER.with(|h| h.borrow().get(index).and_then(|p| p.first()).map(|f| f.0.clone()))
}

/// Zooms plot `index` by `factor` (< 1: in) about canvas pixel `px`; `true` when it changed.
pub fn zoom(index: usize, px: f64, factor: f64) -> bool {
    let Some(f) = shown_x(index).filter(|_| zoomable(index)) else { return false };
    let (p0, p1) = (f.px.0 as f64, f.px.1 as f64);
    let at = f.x.0 + ((px - p0) / (p1 - p0).max(1.0)).clamp(0.0, 1.0) * (f.x.1 - f.x.0);
    let (lo, hi) = (at - (at - f.x.0) * factor, at + (f.x.1 - at) * factor);
    if hi - lo <= 1e-9 || !(hi - lo).is_finite() {
        return false;
    }
    VIEW.with(|v| v.borrow_mut()[index] = Some((lo, hi)));
    true
}

/// Pans plot `index` by `dpx` canvas pixels; `true` when it changed.
pub fn pan(index: usize, dpx: f64) -> bool {
    let Some(f) = shown_x(index).filter(|_| zoomable(index)) else { return false };
    let d = -dpx / (f.px.1 - f.px.0).max(1) as f64 * (f.x.1 - f.x.0);
    VIEW.with(|v| v.borrow_mut()[index] = Some((f.x.0 + d, f.x.1 + d)));
    true
}

/// Shows all of plot `index`'s data again; `true` when it was zoomed.
pub fn reset_view(index: usize) -> bool {
    VIEW.with(|v| v.borrow_mut()[index].take().is_some())
}

fn view(index: usize) -> Option<(f64, f64)> {
    VIEW.with(|v| v.borrow()[index])
}

/// Gives each plot's canvas as many pixels as it shows (its size on the screen times the device's
/// pixel ratio), so that text is drawn at the size it is seen, whenever that size changes (a
/// resize, presentation mode, a rotation): a `ResizeObserver` reports sizes after layout, so
/// nothing forces one. Each canvas resized is marked for redrawing.
pub fn observe_canvases() {
    let on_resize = Closure::<dyn Fn(js_sys::Array)>::new(|entries: js_sys::Array| {
        let dpr = web_sys::window().map_or(1.0, |w| w.device_pixel_ratio()).clamp(1.0, 3.0);
        for entry in entries.iter() {
            let Ok(entry) = entry.dyn_into::<web_sys::ResizeObserverEntry>() else { continue };
            let Ok(c) = entry.target().dyn_into::<web_sys::HtmlCanvasElement>() else { continue };
            let rect = entry.content_rect();
            let (w, h) = ((rect.width() * dpr).round() as u32, (rect.height() * dpr).round() as u32);
            if w == 0 || h == 0 || (w, h) == (c.width(), c.height()) {
                continue;
            }
            c.set_width(w);
            c.set_height(h);
            if let Some(i) = PLOTS.iter().position(|p| format!("plot-{}", p.id.id()) == c.id()) {
                super::runner::with(|r| r.dirty[i] = true);
            }
        }
    });
    let Ok(observer) = web_sys::ResizeObserver::new(on_resize.as_ref().unchecked_ref()) else { return };
    // The observer and its canvases live as long as the page.
    on_resize.forget();
    for def in &PLOTS {
        if let Some(c) = canvas(def.id.id()) {
            observer.observe(&c);
        }
    }
}

fn canvas(id: &str) -> Option<web_sys::HtmlCanvasElement> {
    let doc = web_sys::window()?.document()?;
    doc.get_element_by_id(&format!("plot-{id}"))?.dyn_into().ok()
}

/// Lines per run (and ghosts: the runs before the switch faded, saved runs dashed) for the
/// accuracy (`loss = false`) or loss plot; with smoothing on, each loss line is its moving
/// average drawn over the raw values (faded).
fn history_lines(r: &Runner, loss: bool) -> Vec<Line> {
    let Some(s) = r.session.as_ref() else { return Vec::new() };
    let mut lines: Vec<Line> = r
        .ghosts
        .iter()
        .map(|g| Line {
            faded: g.saved.is_none(),
            dash: g.saved,
            ..line_of(&g.label, g.rule, series_points(if loss { g.loss.points() } else { g.accuracy.points() }), None)
        })
        .collect();
    lines.extend(figures::run_lines(&s.runs, loss));
    if loss && r.smooth_loss {
        let raw: Vec<Line> = lines
            .iter()
            .filter(|l| !l.faded)
            .map(|l| Line { faded: true, dash: None, diverged_at: None, ..l.clone() })
            .collect();
        for l in lines.iter_mut().filter(|l| !l.faded) {
            l.points = charts::moving_average(&l.points, super::runner::SMOOTH_WINDOW);
        }
        lines.extend(raw);
    }
    lines
}

/// Lines by layer of each run's latest report (`pick` chooses the profile).
fn profile_lines(r: &Runner, pc_only: bool, pick: impl Fn(&crate::pcn::train::IterationReport) -> &[f64]) -> Vec<Line> {
    r.session.as_ref().map_or_else(Vec::new, |s| figures::profile_lines(&s.runs, pc_only, pick))
}

/// κ against depth per scheme: the median over seeds, with the range as a band.
fn sweep_lines(r: &Runner) -> Vec<Line> {
    let Some(sw) = r.sweep.as_ref() else { return Vec::new() };
    Scheme::ALL
        .iter()
        .map(|&scheme| {
            let (label, color) = match scheme {
                Scheme::Sp => ("standard PC, skips", "sp"),
                Scheme::SpNoSkip => ("standard PC, no skips", "sp_noskip"),
                Scheme::Mupc => ("μPC", "mupc"),
            };
            let mut depths: Vec<usize> = sw.results.iter().filter(|p| p.scheme == scheme).map(|p| p.depth).collect();
            depths.dedup();
            let mut points = Vec::new();
            let mut band = Vec::new();
            for h in depths {
                let mut k: Vec<f64> = sw
                    .results
                    .iter()
                    .filter(|p| p.scheme == scheme && p.depth == h)
                    .map(|p| p.extremes.kappa)
                    .collect();
                k.sort_by(f64::total_cmp);
                points.push((h as f64, k[k.len() / 2]));
                band.push((h as f64, k[0], k[k.len() - 1]));
            }
            Line { band, ..line_of(label, color, points, None) }
        })
        .collect()
}

/// Draws plot `index` on its canvas; returns what the status should say if drawing failed. The
/// canvas then carries what it shows as text (`aria-label`, for screen readers) and the x range
/// it shows (`data-x-range`).
pub fn draw(index: usize, r: &Runner) -> Result<(), String> {
    let def = &PLOTS[index];
    let Some(canvas) = canvas(def.id.id()) else { return Ok(()) };
    let Some(backend) = CanvasBackend::with_canvas_object(canvas.clone()) else {
        return Err(format!("the {} plot has no 2D canvas context", def.id));
    };
    let hover = render(&backend.into_drawing_area(), index, r)?;
    let summary: Vec<String> = hover.iter().filter_map(|(_, h)| summary(h)).filter(|t| !t.is_empty()).collect();
    let label = if summary.is_empty() {
        format!("{}: nothing drawn yet", def.title)
    } else {
        format!("{}: {}", def.title, summary.join("; "))
    };
    let _ = canvas.set_attribute("aria-label", &label);
    if let Some((f, _)) = hover.first() {
        let _ = canvas.set_attribute("data-x-range", &format!("{},{}", f.x.0, f.x.1));
    }
    HOVER.with(|h| h.borrow_mut()[index] = hover);
    Ok(())
}

/// A panel's latest values in words.
fn summary(h: &Hover) -> Option<String> {
    match h {
        Hover::Lines(lines, x_name) => Some(charts::lines_summary(lines, x_name)),
        Hover::Grid(grid, x_name) => {
            let (x, col) = (grid.xs.last()?, grid.values.last()?);
            let top = col.last()?;
            Some(format!(
                "{} layers; at {x_name} {x}, the output layer's energy is {}",
                col.len(),
                charts::value_text(*top)
            ))
        }
        Hover::Matrix(_) => None,
        Hover::Align(report) => crate::pcn::alignment::cosine_summary(report.last()).map(|(m, lo, hi)| {
            format!("after inference the median cosine with backprop's gradient is {m:.3} (from {lo:.3} to {hi:.3})")
        }),
        Hover::Confusion(label, e) => Some(format!("{label}: {} of {} right", e.correct(), e.images())),
    }
}

/// Plot `index` as an SVG document of the canvas's size (plotters' SVG backend, same drawing).
pub fn svg(index: usize, r: &Runner) -> Result<String, String> {
    let def = &PLOTS[index];
    let size = canvas(def.id.id()).map_or((640, 300), |c| (c.width(), c.height()));
    let mut out = String::new();
    {
        let root = SVGBackend::with_string(&mut out, size).into_drawing_area();
        render(&root, index, r)?;
    }
    Ok(out)
}

/// Draws plot `index` on any backend; the data behind each panel, for the pointer.
fn render<DB: DrawingBackend>(
    root: &DrawingArea<DB, plotters::coord::Shift>,
    index: usize,
    r: &Runner,
) -> Result<Vec<(Frame, Hover)>, String> {
    let def = &PLOTS[index];
    let empty = if r.session.is_none() { "waiting for the networks…" } else { "press play or step" };
    // One type scale for the whole canvas, its panels included.
    let scale = Scale::of(root.dim_in_pixel());
    let axes = |x: &str, y: &str, log_y| Axes::new(x, y).log_y(log_y).view(view(index));
    let mut hover = Vec::new();
    match def.id {
        PlotId::Accuracy | PlotId::Loss => {
            let loss = def.id == PlotId::Loss;
            let lines = history_lines(r, loss);
            let first_eval = format!("the first test evaluation comes at iteration {}", r.cfg.eval_every);
            let empty = if loss || r.session.is_none() { empty } else { first_eval.as_str() };
            let ax = if loss {
                axes("iteration", "training loss", true)
            } else {
                figures::accuracy_axes().view(view(index))
            };
            let frame = charts::draw_lines(root, &ax, &lines, empty)?;
            hover.push((frame, Hover::Lines(lines, "iteration")));
        }
        PlotId::EnergyHeatmap => {
            let (left, right) = charts::split_panels(root, 0.64);
            let run = r.session.as_ref().and_then(|s| s.runs.iter().find(|run| Some(run.name()) == r.view_rule));
            let grid = run.map_or_else(Grid::default, figures::energy_grid);
            let note = if r.view_rule.is_none() { "no PC rule is running" } else { empty };
            let frame = charts::draw_heatmap_at(&left, scale, "iteration", &grid, note)?;
            hover.push((frame, Hover::Grid(grid, "iteration")));
            let lines = profile_lines(r, true, |rep| &rep.energies_post);
            let ax = Axes::new("layer l", "E_l after inference").log_y(true);
            let frame = charts::draw_lines_at(&right, scale, &ax, &lines, "")?;
            hover.push((frame, Hover::Lines(lines, "layer")));
        }
        PlotId::InferenceView => {
            let (left, right) = charts::split_panels(root, 0.64);
            let shown = match r.reveal {
                Some(Reveal::Showing { shown, .. }) => shown,
                _ => usize::MAX,
            };
            let run = r.session.as_ref().and_then(|s| s.runs.iter().find(|run| Some(run.name()) == r.view_rule));
            let rows: Vec<(usize, Vec<f64>)> = run
                .and_then(|run| run.last.as_ref())
                .map(|rep| rep.energy_steps.iter().take(shown).cloned().enumerate().collect())
                .unwrap_or_default();
            let layers = rows.first().map_or(1, |p| p.1.len().max(1));
            let grid = charts::bin_profiles(&rows, (figures::MAX_CELLS / layers).clamp(8, 256));
            let note = if r.view_rule.is_none() { "no PC rule is running" } else { empty };
            let frame = charts::draw_heatmap_at(&left, scale, "inference step t", &grid, note)?;
            hover.push((frame, Hover::Grid(grid, "step")));
            let totals: Vec<Line> = r
                .session
                .as_ref()
                .map(|s| {
                    s.runs
                        .iter()
                        .filter(|run| run.settings.rule.is_pc())
                        .filter_map(|run| {
                            let rep = run.last.as_ref()?;
                            let pts = rep.energy_steps.iter().take(shown).enumerate();
                            let pts = pts.map(|(t, e)| (t as f64, e.iter().sum::<f64>())).collect();
                            Some(line_of(run.settings.rule.label(), run.name(), pts, None))
                        })
                        .collect()
                })
                .unwrap_or_default();
            let ax = Axes::new("step t", "total energy F").log_y(true);
            let frame = charts::draw_lines_at(&right, scale, &ax, &totals, "")?;
            hover.push((frame, Hover::Lines(totals, "step")));
        }
        PlotId::ActivationRms => {
            let lines = profile_lines(r, false, |rep| &rep.act_rms);
            let frame = charts::draw_lines(root, &axes("layer l", "RMS of z_l", true), &lines, empty)?;
            hover.push((frame, Hover::Lines(lines, "layer")));
        }
        PlotId::KappaSweep => {
            let lines = sweep_lines(r);
            let ax = Axes::new("depth H", "κ at initialisation").log_y(true).log_x().view(view(index));
            let note =
                if r.sweep.is_none() { "press “run the κ sweep”" } else { "computing the first networks…" };
            let frame = charts::draw_lines(root, &ax, &lines, note)?;
            hover.push((frame, Hover::Lines(lines, "H")));
        }
        PlotId::LrGrid => {
            let Some(g) = r.lr_grid.as_ref() else {
                charts::draw_lines(root, &axes("η_z", "η_w", false), &[], "press “run the grid”")?;
                root.present().map_err(|e| format!("drawing failed: {e:?}"))?;
                return Ok(hover);
            };
            let (left, right) = charts::split_panels(root, 0.5);
            let range = charts::matrix_range(&g.results);
            let xl: Vec<String> = g.eta_zs.iter().map(|v| format!("{v}")).collect();
            let yl: Vec<String> = g.lrs.iter().map(|v| format!("{v}")).collect();
            for (k, area) in [left, right].iter().enumerate() {
                let title = format!("{} · H = {} · N = {}", g.choice.rule.label(), g.choice.depths[k], g.choice.width);
                let frame =
                    charts::draw_matrix_at(area, scale, &title, ("η_z", &xl), ("η_w", &yl), &g.results[k], range)?;
                hover.push((frame, Hover::Matrix(k)));
            }
        }
        PlotId::KappaTraining => {
            let mut lines = Vec::new();
            for (rule, points) in &r.kappa {
                let label = rule.parse::<crate::config::Rule>().map_or(*rule, |r| r.label());
                let series = |f: fn(&crate::pcn::hessian::Extremes) -> f64| -> Vec<(f64, f64)> {
                    points.iter().map(|(i, e)| (*i as f64, f(e))).collect()
                };
                lines.push(line_of(label, rule, series(|e| e.kappa), None));
                for (what, f) in [
                    ("λ_max", (|e: &crate::pcn::hessian::Extremes| e.lambda_max) as fn(&_) -> f64),
                    ("λ_min", |e| e.lambda_min.abs()),
                ] {
                    let l = line_of(label, rule, series(f), None);
                    lines.push(Line { label: format!("{label} {what}"), faded: true, ..l });
                }
            }
            let note =
                if r.kappa_every == 0 { "κ during training is off" } else { "computing κ at initialisation…" };
            let frame = charts::draw_lines(root, &axes("iteration", "κ, λ_max, |λ_min|", true), &lines, note)?;
            hover.push((frame, Hover::Lines(lines, "iteration")));
        }
        PlotId::WeightChange => {
            let lines = profile_lines(r, false, |rep| &rep.rel_dw);
            let frame = charts::draw_lines(root, &axes("layer l", "‖ΔW_l‖ / ‖W_l‖", true), &lines, empty)?;
            hover.push((frame, Hover::Lines(lines, "layer")));
        }
        PlotId::Alignment => {
            let lines = r.session.as_ref().map_or_else(Vec::new, |s| figures::alignment_lines(&s.runs));
            let note = alignment_note(r).unwrap_or_else(|| {
                format!("the first comparison comes at iteration {}", crate::page::PAGE_ALIGN_EVERY)
            });
            let ax = figures::alignment_axes().view(view(index));
            let frame = charts::draw_lines(root, &ax, &lines, &note)?;
            hover.push((frame, Hover::Lines(lines, "iteration")));
        }
        PlotId::AlignmentSteps => {
            let run = r.session.as_ref().and_then(|s| s.runs.iter().find(|run| Some(run.name()) == r.view_rule));
            match run.and_then(|run| run.last_alignment.as_ref().map(|(at, a)| (run, *at, a))) {
                Some((run, at, report)) => {
                    let title = format!("{} · iteration {at}", run.settings.rule.label());
                    let frame = figures::draw_alignment_steps(root, scale, &title, report)?;
                    hover.push((frame, Hover::Align(report.clone())));
                }
                None => {
                    let note = alignment_note(r).unwrap_or_else(|| "waiting for the first aligned iteration…".into());
                    charts::draw_lines(root, &Axes::new("inference step t", "layer l"), &[], &note)?;
                }
            }
        }
        PlotId::AlignmentSweep => {
            let (left, right) = charts::split_panels(root, 0.5);
            let note = if r.align_sweep.is_none() {
                "press “run the alignment sweep”"
            } else {
                "the first networks are settling…"
            };
            for (area, energy) in [(left, false), (right, true)] {
                let lines = align_sweep_lines(r, energy);
                let y = if energy { "F* / ℓ̃ at equilibrium" } else { "median cosine with BP" };
                let ax = Axes::new("width / depth N/H", y).log_x().bounded(if energy { 0.0 } else { -1.0 }, 1.05);
                let frame = charts::draw_lines_at(&area, scale, &ax, &lines, note)?;
                hover.push((frame, Hover::Lines(lines, "N/H")));
            }
        }
        PlotId::Confusion => {
            let evals: Vec<(&'static str, &'static str, usize, &crate::data::Evaluation)> = r
                .session
                .as_ref()
                .map(|s| {
                    s.runs
                        .iter()
                        .filter_map(|run| {
                            run.last_eval.as_ref().map(|(at, e)| (run.name(), run.settings.rule.label(), *at, e))
                        })
                        .collect()
                })
                .unwrap_or_default();
            if evals.is_empty() {
                let note = format!("the first test evaluation comes at iteration {}", r.cfg.eval_every);
                charts::draw_lines(root, &Axes::new("guessed", "true digit"), &[], &note)?;
            } else {
                let panels: Vec<(&str, usize, &crate::data::Evaluation)> =
                    evals.iter().map(|e| (e.1, e.2, e.3)).collect();
                let frames = figures::draw_confusions(root, scale, &panels)?;
                for (frame, e) in frames.into_iter().zip(&evals) {
                    hover.push((frame, Hover::Confusion(e.1, e.3.clone())));
                }
            }
        }
    }
    root.present().map_err(|e| format!("drawing failed: {e:?}"))?;
    Ok(hover)
}

/// The values under canvas pixel `(px, py)` of plot `index`.
pub fn hover_text(index: usize, px: f64, py: f64) -> String {
    HOVER.with(|h| {
        let h = h.borrow();
        for (frame, data) in h.get(index).into_iter().flatten() {
            if let Some((x, y)) = frame.to_data(px, py) {
                return match data {
                    Hover::Lines(lines, name) => charts::line_hover(lines, x, name),
                    Hover::Grid(grid, name) => charts::grid_hover(grid, x, y, name),
                    Hover::Matrix(k) => matrix_hover(*k, x, y),
                    Hover::Align(report) => align_hover(report, x, y),
                    Hover::Confusion(label, e) => {
                        let (g, l) = charts::matrix_cell(x, y);
                        let l = e.confusion.len().saturating_sub(1).saturating_sub(l);
                        match e.confusion.get(l).and_then(|row| row.get(g)) {
                            Some(c) if l == g => format!("{label}: {c} of the {}s guessed right", l),
                            Some(c) => format!("{label}: {c} test images of a {l} guessed as {g}"),
                            None => String::new(),
                        }
                    }
                };
            }
        }
        String::new()
    })
}

/// Why the alignment plots are empty, when they cannot fill: no PC rule.
fn alignment_note(r: &Runner) -> Option<String> {
    let s = r.session.as_ref()?;
    (!s.runs.iter().any(|run| run.settings.rule.is_pc()))
        .then(|| "no PC rule is running: alignment compares PC's gradients with backprop's".to_string())
}

/// The layer × step cell under the pointer, in words.
fn align_hover(report: &crate::pcn::alignment::AlignmentReport, x: f64, y: f64) -> String {
    let (c, l) = charts::matrix_cell(x, y);
    let (Some(t), Some(profile)) = (report.at.get(c), report.steps.get(c)) else { return String::new() };
    match profile.get(l) {
        Some(Some(a)) => format!(
            "layer {} after {t} step{}: cosine {:.4}, ‖∂F/∂W‖ / ‖∂ℓ̃/∂W‖ = {}",
            l + 1,
            if *t == 1 { "" } else { "s" },
            a.cosine,
            charts::humane(a.norm_ratio, 3)
        ),
        Some(None) => format!("layer {} after {t} steps: no PC gradient — its error is exactly zero (not reached yet, or rounded away in f32)", l + 1),
        None => String::new(),
    }
}

/// Median cosine (`energy = false`) or `F*/ℓ̃` against `N/H` per parameterisation, the range
/// over networks with the same ratio shaded.
fn align_sweep_lines(r: &Runner, energy: bool) -> Vec<Line> {
    let Some(sw) = r.align_sweep.as_ref() else { return Vec::new() };
    [(Scheme::Sp, "standard PC", "sp"), (Scheme::Mupc, "μPC", "mupc")]
        .into_iter()
        .map(|(scheme, label, color)| {
            let mut by_ratio: Vec<(f64, f64)> = sw
                .results
                .iter()
                .filter(|p| p.scheme == scheme)
                .filter_map(|p| {
                    let v = if energy {
                        p.eq.energy_ratio()
                    } else {
                        crate::pcn::alignment::cosine_summary(&p.eq.profile)?.0
                    };
                    Some((p.width as f64 / p.depth as f64, v))
                })
                .collect();
            by_ratio.sort_by(|a, b| a.0.total_cmp(&b.0));
            let (mut points, mut band) = (Vec::new(), Vec::new());
            for chunk in by_ratio.chunk_by(|a, b| a.0 == b.0) {
                let mut v: Vec<f64> = chunk.iter().map(|p| p.1).collect();
                v.sort_by(f64::total_cmp);
                points.push((chunk[0].0, v[v.len() / 2]));
                band.push((chunk[0].0, v[0], v[v.len() - 1]));
            }
            Line { band, ..line_of(label, color, points, None) }
        })
        .collect()
}

/// The learning-rate grid cell under the pointer, in words.
fn matrix_hover(k: usize, x: f64, y: f64) -> String {
    super::runner::with(|r| {
        let g = r.lr_grid.as_ref()?;
        let (c, row) = charts::matrix_cell(x, y);
        let (lr, eta_z) = (g.lrs.get(row)?, g.eta_zs.get(c)?);
        let what = match g.results.get(k)?.get(row)?.get(c)? {
            Some(v) if v.is_finite() => format!("minimum training loss {v:.4}"),
            Some(_) => "diverged".into(),
            None => "not run yet".into(),
        };
        Some(format!("H = {}, η_w = {lr}, η_z = {eta_z}: {what}", g.choice.depths[k]))
    })
    .flatten()
    .unwrap_or_default()
}
