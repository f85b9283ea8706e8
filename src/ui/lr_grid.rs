//! The page's learning-rate transfer grid (the paper's Fig. 1 left): for two depths, train a PC
//! rule for a fixed number of iterations at every (η_w, η_z) of a grid, one small GPU session at a
//! time, and keep each cell's minimum training loss. Driven by the runner's frame loop; nothing
//! here waits.

use super::runner::{with, Runner};
use crate::config::{Rule, RuleSettings};
use crate::plot_id::PlotId;
use crate::session::{RunStatus, Session};

/// η_w of the quick grid and of the paper's.
pub const QUICK_LRS: [f64; 3] = [0.5, 0.1, 0.01];
/// η_z of the quick grid.
pub const QUICK_ETA_ZS: [f64; 4] = [5.0, 0.5, 0.1, 0.01];
pub use crate::presets::{PAPER_ETA_ZS, PAPER_LRS};

/// What the grid section's controls choose.
#[derive(Clone, Debug, PartialEq)]
pub struct GridChoice {
    /// The PC rule.
    pub rule: Rule,
    /// The two depths compared.
    pub depths: [usize; 2],
    /// Width of every network.
    pub width: usize,
    /// The paper's 4 × 11 grid instead of the quick 3 × 4.
    pub paper: bool,
    /// Iterations per cell.
    pub iters: usize,
}

impl Default for GridChoice {
    fn default() -> Self {
        GridChoice { rule: Rule::Pc(crate::pcn::Param::Mupc), depths: [4, 16], width: 32, paper: false, iters: 10 }
    }
}

/// A grid in progress (or done).
pub struct LrGrid {
    /// Its settings.
    pub choice: GridChoice,
    /// η_w, bottom row first.
    pub lrs: Vec<f64>,
    /// η_z, left column first.
    pub eta_zs: Vec<f64>,
    /// Minimum training loss per cell, `[depth][lr][eta_z]`; NaN: diverged; `None`: not yet run.
    pub results: Vec<Vec<Vec<Option<f64>>>>,
    /// The cell being trained: `(depth index, lr index, eta_z index)` in order.
    pub next: usize,
    /// The cell's session, once built.
    session: Option<Session>,
    /// A session is being built.
    building: bool,
    /// Stopped by the user.
    pub cancelled: bool,
    /// Distinguishes this grid from a later one (an old build's result is dropped).
    pub id: u64,
}

impl LrGrid {
    /// A grid of `choice`, nothing run yet.
    pub fn new(choice: GridChoice, id: u64) -> Self {
        let (lrs, eta_zs) = if choice.paper {
            (PAPER_LRS.to_vec(), PAPER_ETA_ZS.to_vec())
        } else {
            (QUICK_LRS.to_vec(), QUICK_ETA_ZS.to_vec())
        };
        // Ascending η_w upwards, ascending η_z rightwards.
        let (mut lrs, mut eta_zs) = (lrs, eta_zs);
        lrs.sort_by(f64::total_cmp);
        eta_zs.sort_by(f64::total_cmp);
        let results = vec![vec![vec![None; eta_zs.len()]; lrs.len()]; 2];
        LrGrid { choice, lrs, eta_zs, results, next: 0, session: None, building: false, cancelled: false, id }
    }

    /// Cells in all.
    pub fn total(&self) -> usize {
        2 * self.lrs.len() * self.eta_zs.len()
    }

    /// Work left.
    pub fn running(&self) -> bool {
        !self.cancelled && self.next < self.total()
    }

    fn cell(&self, k: usize) -> (usize, usize, usize) {
        let per = self.lrs.len() * self.eta_zs.len();
        (k / per, (k % per) / self.eta_zs.len(), k % self.eta_zs.len())
    }

    /// In words, for the progress line.
    pub fn progress(&self) -> String {
        let c = &self.choice;
        if self.cancelled {
            return format!("cancelled after {} of {} cells", self.next, self.total());
        }
        if self.next >= self.total() {
            return format!(
                "done: {} cells, {} at N={}, {} iterations each",
                self.total(),
                c.rule.label(),
                c.width,
                c.iters
            );
        }
        let (d, l, e) = self.cell(self.next);
        let at = self.session.as_ref().map_or(0, |s| s.iteration());
        format!(
            "{} / {} cells · now H={} η_w={} η_z={} (iteration {at} of {})",
            self.next,
            self.total(),
            c.depths[d],
            self.lrs[l],
            self.eta_zs[e],
            c.iters
        )
    }
}

impl Runner {
    /// Starts (or restarts) the grid with the section's choice.
    pub fn start_lr_grid(&mut self) {
        if self.data.is_none() || self.device().is_none() {
            self.message(
                "warn",
                "the learning-rate grid starts once the device (GPU or CPU worker) and MNIST are ready",
            );
            return;
        }
        self.lr_grid_id += 1;
        self.lr_grid = Some(LrGrid::new(self.lr_choice.clone(), self.lr_grid_id));
        self.dirty[PlotId::LrGrid.index()] = true;
    }

    /// Stops the grid, keeping the cells done.
    pub fn cancel_lr_grid(&mut self) {
        if let Some(g) = self.lr_grid.as_mut() {
            g.cancelled = true;
            g.session = None;
        }
    }

    /// Advances the grid within this frame: builds the next cell's session, or trains the current
    /// one (at most two iterations in flight), or files its result.
    pub fn work_lr_grid(&mut self) {
        let (Some(data), Some((device, backend))) = (self.data.as_ref().map(|d| d.0.clone()), self.device()) else {
            return;
        };
        let seed = self.cfg.seed;
        let Some(g) = self.lr_grid.as_mut() else { return };
        if !g.running() || g.building {
            return;
        }
        let (d, l, e) = g.cell(g.next);
        let Some(session) = g.session.as_mut() else {
            let c = &g.choice;
            let cfg = crate::config::RunConfig {
                width: c.width,
                depth: c.depths[d],
                act: self.cfg.act,
                skips: true,
                rules: vec![RuleSettings { rule: c.rule, lr: g.lrs[l], eta_z: g.eta_zs[e] }],
                steps: None,
                batch: 64,
                iterations: c.iters,
                eval_every: c.iters,
                seed,
                backend,
                metrics_every: 1,
            };
            g.building = true;
            let id = g.id;
            wasm_bindgen_futures::spawn_local(async move {
                let built = Session::create(cfg, data, device).await;
                with(|r| {
                    let Some(g) = r.lr_grid.as_mut().filter(|g| g.id == id) else { return };
                    g.building = false;
                    match built {
                        Ok(s) => g.session = Some(s),
                        Err(e) => {
                            g.cancelled = true;
                            r.message("error", format!("the learning-rate grid stopped: {e}"));
                        }
                    }
                });
            });
            return;
        };
        session.poll();
        let run = &session.runs[0];
        let stopped = !matches!(run.status, RunStatus::Running);
        if !session.is_finished() && !stopped && run.backend.in_flight() < 2 {
            session.train();
        }
        let run = &session.runs[0];
        let filed = run.loss.points().len() >= g.choice.iters;
        if (session.is_finished() && filed && run.backend.in_flight() == 0) || stopped {
            let min = run.loss.points().iter().map(|p| p.1).filter(|v| v.is_finite()).fold(f64::INFINITY, f64::min);
            let diverged = matches!(run.status, RunStatus::Diverged { .. } | RunStatus::Failed { .. });
            g.results[d][l][e] = Some(if diverged || !min.is_finite() { f64::NAN } else { min });
            g.session = None;
            g.next += 1;
            self.dirty[PlotId::LrGrid.index()] = true;
            if g.next == g.total() {
                self.message("info", "the learning-rate grid is complete");
            }
        }
    }
}
