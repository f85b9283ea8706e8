//! The learning-rate grid driven by the frame loop: build a cell's session, train it, file its
//! minimum loss (the grid's state is `ui/lr_grid.rs`).

use super::*;
use crate::config::RuleSettings;
use crate::ui::lr_grid::LrGrid;

impl Runner {
    /// Starts (or restarts) the grid with the section's choice.
    pub fn start_lr_grid(&mut self) {
        if self.data.is_none() || self.device().is_none() {
            self.message(
                Level::Warn,
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
                align_every: 0,
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
                            r.message(Level::Error, format!("the learning-rate grid stopped: {e}"));
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
                self.message(Level::Info, "the learning-rate grid is complete");
            }
        }
    }
}
