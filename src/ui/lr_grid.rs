//! The page's learning-rate transfer grid (the paper's Fig. 1 left): for two depths, train a PC
//! rule for a fixed number of iterations at every (η_w, η_z) of a grid, one small session at a
//! time (on the GPU or in the CPU worker, wherever the page trains), and keep each cell's minimum
//! training loss. This is the grid's state; the runner's frame loop drives it
//! (`runner/grid.rs`), and nothing here waits.

use crate::config::Rule;
use crate::session::Session;

/// η_w of the quick grid and of the paper's.
pub const QUICK_LRS: [f64; 3] = [0.5, 0.1, 0.01];
/// η_z of the quick grid.
pub const QUICK_ETA_ZS: [f64; 4] = [5.0, 0.5, 0.1, 0.01];
use crate::presets::{PAPER_ETA_ZS, PAPER_LRS};

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
        GridChoice {
            rule: Rule::Pc(crate::pcn::Param::Mupc),
            depths: crate::presets::GRID_DEPTHS,
            width: crate::presets::GRID_WIDTH,
            paper: false,
            iters: 10,
        }
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
    pub(in crate::ui) session: Option<Session>,
    /// A session is being built.
    pub(in crate::ui) building: bool,
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

    /// The cell of index `k`: `(depth index, lr index, eta_z index)`.
    pub(in crate::ui) fn cell(&self, k: usize) -> (usize, usize, usize) {
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
