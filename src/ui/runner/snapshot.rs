//! What the page's text shows, rebuilt each frame: one row per rule, the phase, the device,
//! throughput and messages.

use super::*;
use crate::charts::{humane, scientific};

/// The throughput line and where its last measurement stood.
#[derive(Clone, Debug, Default)]
pub struct Throughput {
    /// When it was measured (page milliseconds; 0 before the first).
    pub since_ms: f64,
    /// Iterations completed then.
    pub done: usize,
    /// "… iterations/s · … GFLOP/s", empty before two measurements.
    pub text: String,
}

/// What the page shows of one rule.
#[derive(Clone, Debug, PartialEq)]
pub struct RuleRow {
    /// `mupc`, `sp`, `bp_mup`, `bp_sp`.
    pub name: &'static str,
    /// Readable label.
    pub label: &'static str,
    /// Latest test accuracy, percent.
    pub accuracy: String,
    /// Latest training loss.
    pub loss: String,
    /// "training", "diverged at 120", "failed: …".
    pub state: String,
    /// PC rules: the latest κ with λ_min and λ_max.
    pub kappa: Option<String>,
}

/// One image of the strip of test digits and each rule's guess.
#[derive(Clone, Debug, PartialEq)]
pub struct Digit {
    /// Index into the test set.
    pub index: usize,
    /// Its label.
    pub label: u8,
    /// Per rule: name, label and its guess at the latest evaluation (`None`: no guess yet, or
    /// non-finite outputs).
    pub guesses: Vec<(&'static str, &'static str, Option<u8>)>,
}

/// One rule's confusion matrix in words (under the plot, `confusion-<rule>`).
#[derive(Clone, Debug, PartialEq)]
pub struct ConfusionRow {
    /// Rule name.
    pub name: &'static str,
    /// "μPC at iteration 100: 8 312 of 10 000 right (83.1 %); most often a 4 taken for a 9 (88 times)".
    pub text: String,
}

/// The digits, the confusion matrices and the alignment, in words, as last seen (kept while an
/// evaluation has the session).
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Teaching {
    /// The strip of test digits.
    pub digits: Vec<Digit>,
    /// One row per rule evaluated.
    pub confusion: Vec<ConfusionRow>,
    /// The latest alignment of each PC rule, or why there is none.
    pub alignment: String,
}

/// Everything the page's text shows, rebuilt each frame and compared before it is set.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Snapshot {
    /// What the runner is doing.
    pub phase: String,
    /// Training continuously.
    pub playing: bool,
    /// Iterations submitted.
    pub iteration: usize,
    /// Epoch and progress through it.
    pub epoch: String,
    /// One row per rule.
    pub rules: Vec<RuleRow>,
    /// Backend and adapter.
    pub backend: String,
    /// "loading", "ok", "software" or "missing".
    pub backend_state: &'static str,
    /// Iterations/s, inference steps/s, GFLOP/s.
    pub throughput: String,
    /// Device memory in use.
    pub memory: String,
    /// Status messages, newest last.
    pub messages: Vec<Message>,
    /// Why WebGPU is unavailable, when it is.
    pub no_webgpu: Option<String>,
    /// The GPU device was lost: what was said.
    pub device_lost: Option<String>,
    /// Training on the CPU worker: why (no WebGPU, or chosen).
    pub on_cpu: Option<String>,
    /// A GPU device exists (the device choice can offer it).
    pub has_gpu: bool,
    /// `device=auto` with only a software adapter: which it chose and why (the two timings).
    pub pick: Option<String>,
    /// The inference stepper's state, in words.
    pub inference: String,
    /// The PC rule whose energies are shown.
    pub view_rule: Option<&'static str>,
    /// Training can start (data loaded, networks built).
    pub ready: bool,
    /// The networks in force, "H = … · N = … · B = … · T = …" (empty until they are built).
    pub session: String,
    /// Sessions started so far (a reset or a new setting starts one).
    pub generation: u64,
    /// Every run of the session in force has reported an iteration (or stopped).
    pub reported: bool,
    /// The κ sweep's progress, in words.
    pub sweep: String,
    /// The κ sweep has work left.
    pub sweep_running: bool,
    /// The learning-rate grid's progress, in words.
    pub lr_grid: String,
    /// The GPU's capability report.
    pub capabilities: String,
    /// The last timing of the GPU kernels, in words (empty before the first).
    pub kernel_times: String,
    /// The learning-rate grid has work left.
    pub lr_running: bool,
    /// The alignment sweep's progress, in words.
    pub align_sweep: String,
    /// The alignment sweep has work left.
    pub align_sweep_running: bool,
    /// The digits, confusion matrices and alignment.
    pub teaching: Teaching,
}

impl Runner {
    pub(super) fn measure(&mut self, now: f64) {
        let Some(s) = self.session.as_ref() else { return };
        let in_flight = s.runs.iter().map(|r| r.backend.in_flight()).max().unwrap_or(0);
        let done = s.iteration().saturating_sub(in_flight);
        let (t_prev, done_prev) = (self.throughput.since_ms, self.throughput.done);
        // At least a second, and for slow runs (a software GPU) until an iteration completes.
        if now - t_prev < 1000.0 || (done == done_prev && now - t_prev < 15_000.0 && t_prev != 0.0) {
            return;
        }
        let dt = (now - t_prev) / 1000.0;
        let its = done.saturating_sub(done_prev) as f64 / dt;
        let rc = &s.config;
        let flops: f64 = s
            .runs
            .iter()
            .filter(|r| r.is_running())
            .map(|r| iteration_flops(&rc.arch(r.settings.rule), rc.learning(&r.settings), rc.batch).0)
            .sum();
        let pc = s.runs.iter().any(|r| r.settings.rule.is_pc());
        let steps = if pc {
            format!(" · {} inference steps/s", two_digits(its * rc.inference_steps() as f64))
        } else {
            String::new()
        };
        // The worker's own time per iteration, rule by rule (the CPU's speed, without the page).
        let worker: Vec<String> = s
            .runs
            .iter()
            .filter_map(|r| r.backend.worker_ms().map(|ms| format!("{} {} ms", r.name(), two_digits(ms))))
            .collect();
        let worker = if worker.is_empty() {
            String::new()
        } else {
            format!(" · CPU worker per iteration: {}", worker.join(", "))
        };
        // A pooled run: each worker's busy time per iteration (its load).
        let pool: Vec<String> = s
            .runs
            .iter()
            .filter_map(|r| {
                let p = r.backend.pool()?;
                let loads: Vec<String> = p
                    .worker_ms()
                    .iter()
                    .enumerate()
                    .map(|(w, ms)| {
                        format!("{} {}", w + 1, ms.map_or("–".into(), |ms| format!("{} ms", two_digits(ms))))
                    })
                    .collect();
                Some(format!("{} on {} blocks, busy per iteration: {}", r.name(), p.plan().len(), loads.join(", ")))
            })
            .collect();
        let worker = if pool.is_empty() { worker } else { format!("{worker} · pool workers: {}", pool.join("; ")) };
        let text = if t_prev == 0.0 {
            String::new()
        } else {
            let g = its * flops / 1e9;
            format!("{} iterations/s{steps} · {} GFLOP/s{worker}", two_digits(its), two_digits(g))
        };
        self.throughput = Throughput { since_ms: now, done, text };
    }

    /// What the page's text shows now.
    pub fn snapshot(&mut self) -> Snapshot {
        let s = self.session.as_ref();
        let rules: Vec<RuleRow> = if self.lent {
            self.rows.clone()
        } else {
            self.cfg
                .rules
                .iter()
                .map(|rule| {
                    let run = s.and_then(|s| s.runs.iter().find(|r| r.settings.rule == *rule));
                    let accuracy =
                        run.and_then(|r| r.accuracy.last()).map_or("–".into(), |p| format!("{:.1} %", p.1));
                    let loss = run.and_then(|r| r.loss.last()).map_or("–".into(), |p| humane(p.1, 4));
                    let state = match run {
                        None => "waiting".into(),
                        // A run that could go on but is not being trained now.
                        Some(r) if matches!(r.status, RunStatus::Running) && !self.playing => "paused".into(),
                        Some(r) => r.status.to_string(),
                    };
                    let kappa = rule.is_pc().then(|| {
                        let latest = self.kappa.iter().find(|k| k.0 == rule.name()).and_then(|k| k.1.last());
                        match latest {
                            Some((at, e)) => format!(
                                "{} at iteration {at} (λ from {} to {}{})",
                                scientific(e.kappa, 2),
                                scientific(e.lambda_min, 2),
                                scientific(e.lambda_max, 2),
                                match (e.converged, page_kappa(self.cfg.width).1) {
                                    (true, _) => "",
                                    (false, Method::Lanczos) => "; not converged: a lower bound",
                                    _ => "; beyond float64's resolution: an order of magnitude",
                                }
                            ),
                            None if self.kappa_every == 0 => "off".into(),
                            None => "computing…".into(),
                        }
                    });
                    RuleRow { name: rule.name(), label: rule.label(), accuracy, loss, state, kappa }
                })
                .collect()
        };
        self.rows.clone_from(&rules);
        let (epoch, memory) = match s {
            Some(s) => {
                let per = s.batches_per_epoch().max(1);
                let into = s.iteration() % per;
                let bytes: u64 = s.runs.iter().map(|r| r.backend.device_bytes()).sum();
                let remote = s.runs.iter().any(|r| r.backend.in_worker());
                (
                    format!("epoch {} · {:.0} % ({into} / {per} batches)", s.epoch(), 100.0 * into as f64 / per as f64),
                    if remote {
                        "weights in the CPU worker".into()
                    } else {
                        format!("{:.1} MB on the GPU", bytes as f64 / 1e6)
                    },
                )
            }
            None => (String::new(), String::new()),
        };
        let steps = self.cfg.inference_steps();
        let inference = match self.reveal {
            None => String::new(),
            Some(Reveal::Waiting(i)) => format!("running iteration {i}…"),
            Some(Reveal::Showing { iteration, shown }) if shown <= steps + 1 => format!(
                "iteration {iteration}: inference step {} of {steps} shown — press “step inference” for the next",
                shown - 1
            ),
            Some(Reveal::Showing { iteration, .. }) => {
                format!(
                    "iteration {iteration}: all {steps} inference steps shown, then the weights were updated (Adam)"
                )
            }
        };
        let phase = match (s.is_some(), self.playing) {
            (true, true) => "training".into(),
            (true, false) => "paused".into(),
            (false, _) => self.phase.clone(),
        };
        Snapshot {
            phase,
            playing: self.playing,
            iteration: s.map_or(self.shown_iteration, |s| s.iteration()),
            view_rule: self.view_rule,
            epoch,
            rules,
            backend: if self.wants_worker() {
                match self.pool.as_ref().filter(|p| p.len() > 1 && self.pool_size() == p.len()) {
                    Some(p) => format!(
                        "CPU · WebAssembly (SIMD) in a pool of {} Web Workers, {}",
                        p.len(),
                        self.pool_exchange().describe()
                    ),
                    None => "CPU · WebAssembly (SIMD) in a Web Worker".into(),
                }
            } else {
                self.backend.0.clone()
            },
            backend_state: if self.wants_worker() { "cpu" } else { self.backend.1 },
            device_lost: self.device_lost.clone(),
            on_cpu: self.wants_worker().then(|| match (&self.no_webgpu, self.cfg.device) {
                (_, crate::page::DeviceChoice::Cpu) => {
                    "You chose the CPU (device=cpu). Choose GPU or auto under “device” to train with WebGPU."
                        .to_string()
                }
                (Some(why), _) => why.clone(),
                (None, _) => self.picked().map_or_else(String::new, |p| p.why.clone()),
            }),
            has_gpu: self.gpu.is_some(),
            pick: self.software_auto().then(|| self.picked().map(|p| p.why.clone())).flatten(),
            throughput: self.throughput.text.clone(),
            memory,
            messages: self.messages.clone(),
            no_webgpu: self.no_webgpu.clone(),
            inference,
            ready: s.is_some(),
            session: s.map_or_else(String::new, |s| {
                let c = &s.config;
                format!("H = {} · N = {} · B = {} · T = {}", c.depth, c.width, c.batch, c.inference_steps())
            }),
            generation: self.generation,
            reported: s.is_some_and(|s| {
                !s.runs.is_empty() && s.runs.iter().all(|r| r.last.is_some() || !matches!(r.status, RunStatus::Running))
            }),
            sweep: self.sweep_text(),
            sweep_running: self.sweep_running(),
            lr_grid: self.lr_grid.as_ref().map_or_else(|| "not run yet".into(), |g| g.progress()),
            lr_running: self.lr_grid.as_ref().is_some_and(|g| g.running()),
            capabilities: self.capabilities.clone(),
            kernel_times: self.kernel_times.clone(),
            align_sweep: self.align_sweep_text(),
            align_sweep_running: self.align_sweep_running(),
            teaching: self.teaching(),
        }
    }

    /// The digits, the confusion matrices and the alignment in words; while an evaluation has
    /// the session, what they were.
    fn teaching(&mut self) -> Teaching {
        let (Some(s), Some((data, _))) = (self.session.as_ref(), self.data.as_ref()) else {
            return self.taught.clone();
        };
        // The strip comes with the first evaluation (its guesses), not with the networks.
        let evaluated = s.runs.iter().any(|r| r.last_eval.is_some());
        let sample = if evaluated { crate::data::digit_sample(data.test.len()) } else { Vec::new() };
        let digits = sample
            .iter()
            .enumerate()
            .map(|(k, &index)| Digit {
                index,
                label: data.test.labels[index],
                guesses: s
                    .runs
                    .iter()
                    .map(|r| {
                        let g = r.last_eval.as_ref().and_then(|(_, e)| e.guesses.get(k).copied().flatten());
                        (r.name(), r.settings.rule.label(), g)
                    })
                    .collect(),
            })
            .collect();
        let confusion = s
            .runs
            .iter()
            .filter_map(|r| {
                let (at, e) = r.last_eval.as_ref()?;
                let worst = e.worst_confusion().map_or(String::new(), |(l, g, c)| {
                    format!("; most often a {l} taken for a {g} ({c} time{})", if c == 1 { "" } else { "s" })
                });
                let text = format!(
                    "{} at iteration {at}: {} of {} right ({:.1} %){worst}",
                    r.settings.rule.label(),
                    e.correct(),
                    e.images(),
                    e.accuracy
                );
                Some(ConfusionRow { name: r.name(), text })
            })
            .collect();
        let pc: Vec<_> = s.runs.iter().filter(|r| r.settings.rule.is_pc()).collect();
        let alignment = if pc.is_empty() {
            "alignment compares a PC rule's gradients with backprop's: choose standard PC or μPC".into()
        } else if s.config.align_every == 0 {
            "alignment is off".into()
        } else {
            let parts: Vec<String> = pc
                .iter()
                .map(|r| match r.alignment.last() {
                    Some((at, p)) => format!(
                        "{} at iteration {at}: median cosine {:.3} over the layers with a gradient (from {:.3} to {:.3}), F/ℓ̃ = {:.3}",
                        r.settings.rule.label(),
                        p.median,
                        p.min,
                        p.max,
                        p.energy_ratio
                    ),
                    None => format!("{}: first at iteration {}", r.settings.rule.label(), s.config.align_every),
                })
                .collect();
            parts.join(" · ")
        };
        self.taught = Teaching { digits, confusion, alignment };
        self.taught.clone()
    }
}

/// A rate with two significant digits below 10, whole numbers above.
pub(super) fn two_digits(v: f64) -> String {
    if v >= 10.0 {
        format!("{v:.0}")
    } else if v >= 1.0 {
        format!("{v:.1}")
    } else {
        format!("{v:.2}")
    }
}
