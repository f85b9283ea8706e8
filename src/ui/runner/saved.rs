//! A session as a file and back: the run state for export, and a saved run shown beside
//! the live one.

use super::*;

impl Runner {
    /// The session's run state for export (`None` before the networks exist): configuration,
    /// backend, histories and κ over training.
    pub fn run_state(&self) -> Option<crate::export::RunState> {
        let s = self.session.as_ref()?;
        let gpu = if self.capabilities.is_empty() { self.backend.0.clone() } else { self.capabilities.clone() };
        let backend = if self.wants_worker() {
            format!("CPU: WebAssembly (SIMD) in a Web Worker; the browser's GPU: {gpu}")
        } else {
            gpu
        };
        let mut state = crate::export::RunState::of_session(s, &self.cfg.to_query(), &backend);
        for rec in &mut state.runs {
            if let Some((_, pts)) = self.kappa.iter().find(|k| k.0 == rec.rule) {
                rec.kappa = pts.iter().map(|(i, e)| (*i, e.kappa, e.lambda_min, e.lambda_max)).collect();
            }
        }
        Some(state)
    }

    /// Shows a saved run: its configuration, paused and reset to its seed, with its loss and
    /// accuracy drawn as dashed "(saved)" lines beside those of the runs loaded before it (up
    /// to [`MAX_SAVED`] files). Returns the configuration for the controls.
    pub fn load_state(&mut self, state: crate::export::RunState) -> PageConfig {
        let (cfg, problems) = PageConfig::from_query(&state.config);
        for p in problems {
            self.message(Level::Warn, format!("the saved run's configuration: {p}"));
        }
        let series = |pts: &[(usize, f64)]| {
            let mut s = Series::new(crate::session::run::HISTORY_POINTS);
            pts.iter().for_each(|&(i, v)| s.push(i, v));
            s
        };
        // The saved runs already shown stay (the oldest goes beyond MAX_SAVED); this one is next.
        let mut kept: Vec<Ghost> = self.ghosts.drain(..).filter(|g| g.saved.is_some()).collect();
        let mut files: Vec<usize> = kept.iter().filter_map(|g| g.saved).collect();
        files.dedup();
        if files.len() >= MAX_SAVED {
            let oldest = files[0];
            kept.retain(|g| g.saved != Some(oldest));
        }
        let k = kept.iter().filter_map(|g| g.saved).max().map_or(0, |m| m + 1);
        let name = if k == 0 { "(saved)".to_string() } else { format!("(saved {})", k + 1) };
        let ghosts: Vec<Ghost> = state
            .runs
            .iter()
            .filter_map(|rec| {
                let rule: Rule = rec.rule.parse().ok()?;
                Some(Ghost {
                    rule: rule.name(),
                    label: format!("{} {name}", rule.label()),
                    saved: Some(k),
                    loss: series(&rec.loss),
                    accuracy: series(&rec.accuracy),
                })
            })
            .collect();
        self.playing = false;
        self.cfg = cfg.clone();
        self.reset();
        kept.extend(ghosts);
        self.ghosts = kept;
        self.message(
            Level::Info,
            format!(
                "loaded a saved run: {} iterations of {} (pclab {}, {}); press play to train the same setup again",
                state.iteration,
                state.runs.iter().map(|r| r.rule.as_str()).collect::<Vec<_>>().join(", "),
                state.pclab,
                state.backend
            ),
        );
        self.dirty.iter_mut().for_each(|d| *d = true);
        cfg
    }
}
