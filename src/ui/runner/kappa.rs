//! κ of the inference landscape in the page: at initialisation and every k iterations of
//! training, as Lanczos (or block bisection) work sliced into frames.

use super::*;

/// The page's Lanczos (for widths beyond [`crate::session::conditioning::JOB_BLOCKS_UP_TO_WIDTH`]): 1 % on κ is plenty for a
/// log plot, and 400 basis vectors of a 16 384-dimensional Hessian (52 MB) fit the page's memory.
pub(super) const PAGE_LANCZOS: LanczosConfig = LanczosConfig { max_iter: 400, tol: 1e-2, seed: 0 };
/// The page's block bisection (widths up to [`crate::session::conditioning::JOB_BLOCKS_UP_TO_WIDTH`]): exact to 10⁻⁴.
pub(super) const PAGE_BLOCKS: LanczosConfig = LanczosConfig { tol: 1e-4, ..PAGE_LANCZOS };

/// How the page computes κ at width `N`: its settings and method.
pub(super) fn page_kappa(width: usize) -> (LanczosConfig, Method) {
    match KappaJob::stepwise(width) {
        Method::Lanczos => (PAGE_LANCZOS, Method::Lanczos),
        m => (PAGE_BLOCKS, m),
    }
}
/// Milliseconds of conditioning work (Lanczos iterations) per animation frame.
pub(super) const CONDITIONING_BUDGET_MS: f64 = 6.0;
/// Largest Hessian (`N·H`) the page analyses: the Lanczos basis of a 16 384-dimensional Hessian
/// already takes 52 MB; larger ones are for `pclab hessian`.
pub const PAGE_MAX_HESSIAN: usize = 128 * 128;
impl Runner {
    /// κ during training every `every` iterations (0: off, and the κ work under way for the
    /// training runs stops, so the page's thread is free again).
    pub fn set_kappa_every(&mut self, every: usize) {
        self.kappa_every = every;
        if every == 0 && !self.kappa_jobs.is_empty() {
            self.kappa_jobs.clear();
            self.dirty[PlotId::KappaTraining.index()] = true;
        }
    }

    /// Lanczos work for at most [`CONDITIONING_BUDGET_MS`]: κ of training runs first, then the sweep.
    pub fn work_conditioning(&mut self) {
        let deadline = now_ms() + CONDITIONING_BUDGET_MS;
        let more = || now_ms() < deadline;
        while more() {
            if let Some((rule, at, job)) = self.kappa_jobs.front_mut() {
                if let Some(e) = job.advance(more) {
                    let (rule, at) = (*rule, *at);
                    self.kappa_jobs.pop_front();
                    match self.kappa.iter_mut().find(|k| k.0 == rule) {
                        Some(k) => k.1.push((at, e)),
                        None => self.kappa.push((rule, vec![(at, e)])),
                    }
                    self.dirty[PlotId::KappaTraining.index()] = true;
                }
                continue;
            }
            let Some(data) = self.data.as_ref().map(|d| d.0.clone()) else { return };
            let Some(sw) = self.sweep.as_mut() else { return };
            if sw.job.is_none() {
                let Some(&(scheme, depth, seed)) = sw.tasks.get(sw.next) else { return };
                let (cfg, method) = page_kappa(sw.width);
                match KappaJob::at_init(scheme.arch(sw.width, depth, sw.act), seed, &data, cfg, method) {
                    Ok(job) => sw.job = Some(job),
                    Err(e) => {
                        sw.next = sw.tasks.len();
                        self.message(Level::Error, format!("the κ sweep stopped: {e}"));
                        return;
                    }
                }
            }
            if let Some(e) = sw.job.as_mut().and_then(|j| j.advance(more)) {
                let (scheme, depth, _) = sw.tasks[sw.next];
                sw.results.push(SweepPoint { scheme, depth, extremes: e });
                sw.job = None;
                sw.next += 1;
                self.dirty[PlotId::KappaSweep.index()] = true;
                if sw.next == sw.tasks.len() {
                    self.message(Level::Info, "the κ sweep is complete");
                }
            }
        }
    }

    /// True when κ of the page's network fits the page; otherwise says so once.
    pub(super) fn hessian_fits(&mut self) -> bool {
        let dim = self.cfg.width * self.cfg.depth;
        if dim <= PAGE_MAX_HESSIAN {
            return true;
        }
        if self.kappa_every != 0 && !std::mem::replace(&mut self.kappa_too_large_said, true) {
            self.message(Level::Warn,
                format!(
                    "κ during training is off: N·H = {dim} is beyond the page's {PAGE_MAX_HESSIAN}; `pclab hessian` computes it"
                ),
            );
        }
        false
    }

    /// κ of every PC run at initialisation, at the feedforward activities of the first sample of
    /// the first batch (the weights every backend starts from are drawn the same way).
    pub(super) fn queue_init_kappa(&mut self) {
        if self.kappa_every == 0 || !self.hessian_fits() {
            return;
        }
        let Some(s) = self.session.as_ref() else { return };
        let (x, y) = s.first_sample();
        let (x, y) = (to_f64(&x), to_f64(&y));
        let jobs: Vec<_> = s
            .runs
            .iter()
            .filter(|r| r.settings.rule.is_pc())
            .map(|r| {
                (r.name(), {
                    let (cfg, method) = page_kappa(s.config.width);
                    KappaJob::at_feedforward(s.config.arch(r.settings.rule), s.config.seed, &x, &y, cfg, method)
                })
            })
            .collect();
        for (rule, job) in jobs {
            match job {
                Ok(job) => self.kappa_jobs.push_back((rule, 0, job)),
                Err(e) => self.message(Level::Error, format!("κ of {rule} at initialisation: {e}")),
            }
        }
    }

    /// Downloads every PC run's weights and post-inference activities (the GPU's, asynchronously)
    /// and queues κ at the batch's first sample.
    pub(super) fn start_capture(&mut self) {
        self.capture_pending = false;
        if !self.hessian_fits() {
            return;
        }
        let Some(mut session) = self.session.take() else { return };
        self.lent = true;
        self.shown_iteration = session.iteration();
        let generation = self.generation;
        wasm_bindgen_futures::spawn_local(async move {
            let iteration = session.iteration();
            let mut captured = Vec::new();
            let mut failures = Vec::new();
            if let Some((x, y)) = session.last_sample.clone() {
                for run in session.runs.iter_mut().filter(|r| r.settings.rule.is_pc() && r.is_running()) {
                    let name = run.name();
                    // Only the first sample's activities are used (all the worker sends).
                    let got = run.backend.network_and_activities().await.map_err(|e| e.to_string());
                    match got.and_then(|(net, z)| {
                        let z: Vec<Mat<f32>> = z.iter().map(|m| m.range_rows(0, 1)).collect();
                        let (cfg, method) = page_kappa(net.arch.width);
                        KappaJob::of_f32(&net, &x, &y, &z, 0, cfg, method)
                    }) {
                        Ok(job) => captured.push((name, iteration, job)),
                        Err(e) => failures.push(format!("κ of {name} at iteration {iteration}: {e}")),
                    }
                }
            }
            with(|r| {
                if r.generation == generation {
                    r.session = Some(session);
                    r.lent = false;
                    r.kappa_jobs.extend(captured);
                    for f in failures {
                        r.message(Level::Error, f);
                    }
                    if std::mem::take(&mut r.switch_pending) {
                        r.switch_param();
                    }
                }
            });
        });
    }
}
