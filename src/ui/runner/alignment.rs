//! The width-over-depth sweep of PC's gradients against backprop's: linear networks at
//! initialisation, inference run to equilibrium in float64, a slice of steps per frame,
//! cancellable (docs/maths.md §11; natively `pclab sweep-alignment`).

use super::kappa::CONDITIONING_BUDGET_MS;
use super::*;
use crate::pcn::alignment::{Equilibrium, EquilibriumJob};
use crate::pcn::Network;

/// Widths of the page's sweep.
pub const SWEEP_WIDTHS: [usize; 4] = [16, 32, 64, 128];
/// Depths of the page's sweep.
pub const SWEEP_DEPTHS: [usize; 4] = [2, 4, 8, 16];
/// Training images in the sweep's batch (the first of the training set).
pub const SWEEP_BATCH: usize = 4;
/// η_z (on the batch-averaged energy: 1/4 per image).
pub const SWEEP_ETA_Z: f64 = 1.0;
/// Most inference steps toward equilibrium per network.
pub const SWEEP_MAX_STEPS: usize = 4000;
/// Settled: a step changes `F` by at most this fraction of it.
pub const SWEEP_TOL: f64 = 1e-9;
/// Inference steps between looks at the clock.
const STEPS_PER_SLICE: usize = 4;

/// One network of the sweep at equilibrium.
#[derive(Clone, Debug)]
pub struct AlignPoint {
    /// Parameterisation.
    pub scheme: Scheme,
    /// `N`.
    pub width: usize,
    /// `H`.
    pub depth: usize,
    /// The gradients there.
    pub eq: Equilibrium,
}

/// The sweep: tasks in order, the one in progress, results.
pub struct AlignSweep {
    /// `(scheme, N, H)` in the order they run.
    pub tasks: Vec<(Scheme, usize, usize)>,
    /// The next task to start (or the one in progress).
    pub next: usize,
    job: Option<EquilibriumJob<f64>>,
    /// Finished networks.
    pub results: Vec<AlignPoint>,
    /// Stopped by the user.
    pub cancelled: bool,
}

impl Runner {
    /// Starts (or restarts) the width-over-depth alignment sweep.
    pub fn start_align_sweep(&mut self) {
        if self.data.is_none() {
            self.message(Level::Warn, "the alignment sweep starts once MNIST has loaded");
            return;
        }
        let mut tasks = Vec::new();
        // Shallow and wide first, both parameterisations side by side, so both lines grow together.
        for &h in &SWEEP_DEPTHS {
            for &w in SWEEP_WIDTHS.iter().rev() {
                for scheme in [Scheme::Mupc, Scheme::Sp] {
                    tasks.push((scheme, w, h));
                }
            }
        }
        self.align_sweep = Some(AlignSweep { tasks, next: 0, job: None, results: Vec::new(), cancelled: false });
        self.dirty[PlotId::AlignmentSweep.index()] = true;
    }

    /// Stops the sweep, keeping the networks it has finished.
    pub fn cancel_align_sweep(&mut self) {
        if let Some(sw) = self.align_sweep.as_mut() {
            sw.cancelled = true;
            sw.job = None;
            sw.next = sw.tasks.len();
        }
    }

    /// True while the sweep has work left.
    pub fn align_sweep_running(&self) -> bool {
        self.align_sweep.as_ref().is_some_and(|s| s.next < s.tasks.len())
    }

    /// Inference toward equilibrium for at most the conditioning budget of this frame.
    pub fn work_align_sweep(&mut self) {
        let deadline = now_ms() + CONDITIONING_BUDGET_MS;
        let Some(data) = self.data.as_ref().map(|d| d.0.clone()) else { return };
        let Some(sw) = self.align_sweep.as_mut() else { return };
        while now_ms() < deadline {
            let Some(&(scheme, width, depth)) = sw.tasks.get(sw.next) else { return };
            let job = sw.job.get_or_insert_with(|| {
                let net = Network::<f64>::init(scheme.arch(width, depth, Activation::Linear), 0);
                let (x, y) = data.train.range::<f64>(0, SWEEP_BATCH);
                EquilibriumJob::new(net, x, y, SWEEP_ETA_Z, SWEEP_MAX_STEPS, SWEEP_TOL)
            });
            if let Some(eq) = job.run(STEPS_PER_SLICE) {
                sw.results.push(AlignPoint { scheme, width, depth, eq });
                sw.job = None;
                sw.next += 1;
                self.dirty[PlotId::AlignmentSweep.index()] = true;
                if sw.next == sw.tasks.len() {
                    self.message(Level::Info, "the alignment sweep is complete");
                    return;
                }
            }
        }
    }

    pub(super) fn align_sweep_text(&self) -> String {
        let Some(sw) = self.align_sweep.as_ref() else { return String::new() };
        let (done, total) = (sw.results.len(), sw.tasks.len());
        if sw.cancelled {
            return format!("cancelled after {done} of {total} networks");
        }
        match sw.tasks.get(sw.next) {
            Some((scheme, w, h)) => {
                let steps = sw.job.as_ref().map_or(0, |j| j.steps());
                format!(
                    "{done} / {total} networks · now {scheme} N={w} H={h} (N/H = {}): {steps} inference steps",
                    ratio(*w, *h)
                )
            }
            None => {
                let loose = sw.results.iter().filter(|p| !p.eq.settled).count();
                let note = if loose == 0 {
                    String::new()
                } else {
                    format!("; {loose} had not settled after {SWEEP_MAX_STEPS} steps (drawn hollow)")
                };
                format!("done: {total} linear networks, B = {SWEEP_BATCH}, η_z = {SWEEP_ETA_Z}{note}")
            }
        }
    }
}

/// `N/H` in short.
pub fn ratio(w: usize, h: usize) -> String {
    let r = w as f64 / h as f64;
    if r.fract() == 0.0 {
        format!("{r:.0}")
    } else {
        format!("{r:.2}")
    }
}
