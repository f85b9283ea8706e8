//! The κ-against-depth sweep at initialisation (standard PC against μPC), cancellable, one
//! network at a time.

use super::kappa::PAGE_LANCZOS;
use super::*;

/// One point of the κ-against-depth sweep.
#[derive(Clone, Debug)]
pub struct SweepPoint {
    /// Parameterisation.
    pub scheme: Scheme,
    /// `H`.
    pub depth: usize,
    /// κ and the extremes.
    pub extremes: Extremes,
}

/// The κ-against-depth sweep at initialisation: tasks in order, the one in progress, results.
pub struct Sweep {
    /// `N`.
    pub width: usize,
    /// φ.
    pub act: Activation,
    /// `(scheme, depth, seed)` in the order they run.
    pub tasks: Vec<(Scheme, usize, u64)>,
    /// Index of the next task to start.
    pub next: usize,
    /// The κ job of the point in progress.
    pub(super) job: Option<KappaJob>,
    /// Finished points.
    pub results: Vec<SweepPoint>,
    /// Stopped by the user.
    pub cancelled: bool,
}

impl Runner {
    /// Starts (or restarts) the κ-against-depth sweep at the page's width and activation.
    pub fn start_sweep(&mut self) {
        if self.data.is_none() {
            self.message(Level::Warn, "the κ sweep starts once MNIST has loaded");
            return;
        }
        let cap = (PAGE_MAX_HESSIAN / self.cfg.width.max(1)).min(self.sweep_max_depth);
        if cap < self.sweep_max_depth {
            self.message(
                Level::Warn,
                format!("the sweep stops at H = {cap}: N·H is limited to {PAGE_MAX_HESSIAN} in the page"),
            );
        }
        let depths: Vec<usize> = (0..).map(|k| 1usize << k).take_while(|&h| h <= cap).collect();
        let mut tasks = Vec::new();
        for &h in &depths {
            for scheme in Scheme::ALL {
                for seed in 0..self.sweep_seeds {
                    tasks.push((scheme, h, seed));
                }
            }
        }
        self.sweep = Some(Sweep {
            width: self.cfg.width,
            act: self.cfg.act,
            tasks,
            next: 0,
            job: None,
            results: Vec::new(),
            cancelled: false,
        });
        self.dirty[PlotId::KappaSweep.index()] = true;
    }

    /// Stops the sweep, keeping the points it has.
    pub fn cancel_sweep(&mut self) {
        if let Some(sw) = self.sweep.as_mut() {
            sw.cancelled = true;
            sw.job = None;
            sw.next = sw.tasks.len();
        }
    }

    /// True while the sweep has work left.
    pub fn sweep_running(&self) -> bool {
        self.sweep.as_ref().is_some_and(|s| s.next < s.tasks.len())
    }

    pub(super) fn sweep_text(&self) -> String {
        let Some(sw) = self.sweep.as_ref() else { return String::new() };
        let total = sw.tasks.len();
        let done = sw.results.len();
        if sw.cancelled {
            return format!("cancelled after {done} of {total} networks");
        }
        match sw.tasks.get(sw.next) {
            Some((scheme, h, seed)) => {
                let its = sw.job.as_ref().map_or(0, |j| j.iterations());
                let what = match page_kappa(sw.width).1 {
                    Method::Lanczos => "Lanczos iterations",
                    _ => "bisection steps",
                };
                format!("{done} / {total} networks · now {scheme} H={h} seed {seed} (N={}, {its} {what})", sw.width)
            }
            None => {
                let loose = sw.results.iter().filter(|p| !p.extremes.converged).count();
                let note = if loose == 0 {
                    String::new()
                } else if page_kappa(sw.width).1 == Method::Lanczos {
                    format!(
                        "; {loose} did not reach 1 % in {} Lanczos iterations, so their κ is a lower bound",
                        PAGE_LANCZOS.max_iter
                    )
                } else {
                    format!("; {loose} have κ beyond float64's resolution (about 10¹²): an order of magnitude only")
                };
                format!("done: {total} networks at N={}, {}{note}", sw.width, sw.act.name())
            }
        }
    }
}
