//! The runner: the page's only loop. It owns the session; the controls send it commands (play,
//! pause, step, step one inference step, reset, switch, new settings) and every animation frame
//! it records a time-budgeted amount of work, files the reports that came back, and hands the
//! page a [`Snapshot`] to show. Asynchronous work (building networks on the GPU, evaluating on the
//! test set) takes the session out and puts it back; a generation counter drops the result of
//! work that a reset made stale.

use crate::config::{BackendKind, Rule};
use crate::data::Mnist;
use crate::gpu::GpuContext;
use crate::page::PageConfig;
use crate::pcn::hessian::{Extremes, LanczosConfig, Method};
use crate::pcn::train::iteration_flops;
use crate::pcn::Activation;
use crate::pcn::Mat;
use crate::plot_id::PlotId;
use crate::remote::WorkerLink;
use crate::session::conditioning::{to_f64, KappaJob, Scheme};
use crate::session::{Device, Event, RunStatus, Series, Session};
use std::cell::RefCell;
use std::collections::VecDeque;
use std::sync::Arc;

mod alignment;
mod device;
mod grid;
mod kappa;
mod kernels;
mod saved;
mod snapshot;
mod sweep;

pub use alignment::AlignSweep;
pub use device::spawn_build;
use kappa::page_kappa;
pub use kappa::PAGE_MAX_HESSIAN;
use snapshot::Throughput;
pub use snapshot::{Digit, RuleRow, Snapshot, Teaching};
pub use sweep::{Sweep, SweepPoint};

/// Plots on the page (the runner's dirty flags, indexed by [`PlotId::index`]).
pub const PLOT_COUNT: usize = PlotId::COUNT;

/// Most GPU iterations in flight per run: enough to keep the device busy, few enough that pause
/// and reset answer at once.
const MAX_IN_FLIGHT: usize = 2;
/// Milliseconds of recording per animation frame.
const FRAME_BUDGET_MS: f64 = 8.0;
/// Iterations the loss plot's moving average spans.
pub const SMOOTH_WINDOW: usize = 25;
/// Saved runs shown at once (loading another drops the oldest).
pub const MAX_SAVED: usize = 4;
/// Messages kept in the status area.
const MAX_MESSAGES: usize = 8;

/// A curve of an earlier run: kept, faded, after the standard PC ⇄ μPC switch, or loaded from
/// a saved run's file (drawn dashed, one dash pattern per file).
#[derive(Clone, Debug)]
pub struct Ghost {
    /// Rule name.
    pub rule: &'static str,
    /// Legend label.
    pub label: String,
    /// Loaded from the `k`-th saved file (0 first); `None`: the run before the switch.
    pub saved: Option<usize>,
    /// Training loss.
    pub loss: Series,
    /// Test accuracy.
    pub accuracy: Series,
}

/// Stepping through one iteration's inference: which iteration, and how many energy rows
/// (the feedforward point, then after each step) are shown.
#[derive(Clone, Copy, Debug, PartialEq)]
pub enum Reveal {
    /// The iteration has been asked for; its report has not come back.
    Waiting(usize),
    /// Rows `0 … shown−1` of that iteration's layer × step energies are shown.
    Showing {
        /// The iteration.
        iteration: usize,
        /// Rows shown (1 = the feedforward point only).
        shown: usize,
    },
}

/// How much a status message matters.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Level {
    /// Something happened as asked.
    Info,
    /// Something the user should know: a limit, a stopped run.
    Warn,
    /// Something failed.
    Error,
}

impl Level {
    /// The message's CSS class.
    pub fn class(self) -> &'static str {
        match self {
            Level::Info => "info",
            Level::Warn => "warn",
            Level::Error => "error",
        }
    }
}

/// A status message.
#[derive(Clone, Debug, PartialEq)]
pub struct Message {
    /// How much it matters.
    pub level: Level,
    /// The text.
    pub text: String,
}

/// Speed limits offered by the page (iterations per second; `None` = as fast as possible).
pub const SPEEDS: [(&str, Option<f64>); 5] =
    [("max", None), ("30 / s", Some(30.0)), ("10 / s", Some(10.0)), ("2 / s", Some(2.0)), ("0.5 / s", Some(0.5))];

/// The page's training state.
pub struct Runner {
    /// The settings in force.
    pub cfg: PageConfig,
    /// MNIST once loaded, with its test images normalised once for every session.
    pub data: Option<(Arc<Mnist>, Arc<Mat<f32>>)>,
    /// The device once created.
    pub gpu: Option<Arc<GpuContext>>,
    /// The CPU backend's Web Worker, once it has loaded MNIST.
    pub worker: Option<Arc<WorkerLink>>,
    /// The worker is starting.
    worker_starting: bool,
    /// The pool of CPU workers (the CPU worker first), once started and connected.
    pub pool: Option<Vec<Arc<WorkerLink>>>,
    /// The pool's other workers are starting.
    pool_starting: bool,
    /// The pool could not start: train on the one worker.
    pool_failed: bool,
    /// `device=auto` with only a software adapter: which of it and the CPU workers timed faster,
    /// for the networks' shape it was timed on.
    pick: Option<device::Pick>,
    /// Timing the two is under way.
    picking: bool,
    /// A pool worker was lost mid-run (what was said): a new pool is starting, to resume on.
    pool_lost: Option<String>,
    /// The session, when built and not lent to an asynchronous task.
    pub session: Option<Session>,
    /// What is happening, in words.
    pub phase: String,
    /// Bumped by every reset; asynchronous results from an older generation are dropped.
    pub generation: u64,
    /// Training continuously.
    pub playing: bool,
    /// Single iterations asked for.
    pub steps_requested: usize,
    /// Iterations per second limit.
    pub speed: Option<f64>,
    last_submit_ms: f64,
    /// The rates (η_w, η_z, T) changed while the session was lent out.
    pub rates_dirty: bool,
    /// Earlier curves kept for comparison after the switch.
    /// Start the κ sweep once MNIST has loaded (a preset asked for it).
    pub sweep_on_load: bool,
    /// The learning-rate grid, once started.
    pub lr_grid: Option<super::lr_grid::LrGrid>,
    /// What the grid section's controls choose.
    pub lr_choice: super::lr_grid::GridChoice,
    /// Numbers the grids.
    pub lr_grid_id: u64,
    /// The GPU's capability report (adapter, limits), once the device exists.
    pub capabilities: String,
    /// The last timing of the GPU kernels, in words.
    pub kernel_times: String,
    /// Timing the kernels is under way.
    kernel_timing: bool,
    pub ghosts: Vec<Ghost>,
    /// The loss plot also shows a moving average (over [`SMOOTH_WINDOW`] iterations).
    pub smooth_loss: bool,
    /// The session is lent to an evaluation.
    pub lent: bool,
    /// The rules' rows as last shown, kept while the session is lent.
    rows: Vec<RuleRow>,
    /// The switch was asked for while the session was lent: done when it comes back.
    switch_pending: bool,
    /// Stepping through inference.
    pub reveal: Option<Reveal>,
    /// The PC rule whose energies the heatmap and the inference view show.
    pub view_rule: Option<&'static str>,
    /// Status messages.
    pub messages: Vec<Message>,
    /// Backend description and state.
    pub backend: (String, &'static str),
    /// Why WebGPU is missing.
    pub no_webgpu: Option<String>,
    /// The GPU device was lost: what the browser said (the page offers a new device).
    pub device_lost: Option<String>,
    throughput: Throughput,
    /// Iterations submitted, remembered while the session is lent out.
    shown_iteration: usize,
    /// Data changed since the plots were last drawn (one flag per plot, in `plots::PLOTS` order).
    pub dirty: [bool; PLOT_COUNT],
    /// The κ sweep, once started.
    pub sweep: Option<Sweep>,
    /// The width-over-depth alignment sweep, once started.
    pub align_sweep: Option<AlignSweep>,
    /// The digits, confusion matrices and alignment as last shown.
    taught: Teaching,
    /// Deepest network of the sweep.
    pub sweep_max_depth: usize,
    /// Seeds per sweep point.
    pub sweep_seeds: u64,
    /// κ of every PC run every this many iterations (0: never).
    pub kappa_every: usize,
    /// κ over training, per PC rule.
    pub kappa: Vec<(&'static str, Vec<(usize, Extremes)>)>,
    kappa_jobs: VecDeque<(&'static str, usize, KappaJob)>,
    capture_pending: bool,
    kappa_too_large_said: bool,
}

thread_local! {
    static RUNNER: RefCell<Option<Runner>> = const { RefCell::new(None) };
}

/// Runs `f` on the runner (created by [`install`]); `None` before that or when re-entered.
pub fn with<R>(f: impl FnOnce(&mut Runner) -> R) -> Option<R> {
    RUNNER.with(|r| r.try_borrow_mut().ok().and_then(|mut g| g.as_mut().map(f)))
}

/// Creates the runner with the page's first settings.
pub fn install(cfg: PageConfig, problems: Vec<String>) {
    let playing = cfg.autoplay;
    let mut r = Runner {
        view_rule: None,
        cfg,
        data: None,
        gpu: None,
        worker: None,
        worker_starting: false,
        pool: None,
        pool_starting: false,
        pool_failed: false,
        pick: None,
        picking: false,
        pool_lost: None,
        session: None,
        phase: "starting".into(),
        generation: 0,
        playing,
        steps_requested: 0,
        speed: None,
        last_submit_ms: 0.0,
        rates_dirty: false,
        ghosts: Vec::new(),
        smooth_loss: false,
        capabilities: String::new(),
        kernel_times: String::new(),
        kernel_timing: false,
        sweep_on_load: false,
        lr_grid: None,
        lr_choice: Default::default(),
        lr_grid_id: 0,
        lent: false,
        rows: Vec::new(),
        switch_pending: false,
        reveal: None,
        messages: Vec::new(),
        backend: ("looking for a WebGPU adapter…".into(), "loading"),
        no_webgpu: None,
        device_lost: None,
        throughput: Throughput::default(),
        shown_iteration: 0,
        dirty: [true; PLOT_COUNT],
        sweep: None,
        align_sweep: None,
        taught: Teaching::default(),
        sweep_max_depth: crate::presets::SWEEP_DEPTH,
        sweep_seeds: 3,
        kappa_every: 100,
        kappa: Vec::new(),
        kappa_jobs: VecDeque::new(),
        capture_pending: false,
        kappa_too_large_said: false,
    };
    r.view_rule = r.default_view_rule();
    for p in problems {
        r.message(Level::Warn, p);
    }
    RUNNER.with(|cell| *cell.borrow_mut() = Some(r));
}

fn now_ms() -> f64 {
    web_sys::window().and_then(|w| w.performance()).map_or(0.0, |p| p.now())
}

impl Runner {
    /// Adds a status message (the oldest go first).
    pub fn message(&mut self, level: Level, text: impl Into<String>) {
        self.messages.push(Message { level, text: text.into() });
        if self.messages.len() > MAX_MESSAGES {
            self.messages.remove(0);
        }
    }

    fn default_view_rule(&self) -> Option<&'static str> {
        let pc: Vec<Rule> = self.cfg.rules.iter().copied().filter(|r| r.is_pc()).collect();
        match self.view_rule {
            Some(v) if pc.iter().any(|r| r.name() == v) => Some(v),
            _ => pc.iter().find(|r| r.name() == "mupc").or(pc.first()).map(|r| r.name()),
        }
    }

    /// Marks every plot for redrawing.
    pub fn touch(&mut self) {
        self.dirty = [true; PLOT_COUNT];
    }

    /// New settings: rates and `T` apply to the running networks, anything else rebuilds them.
    pub fn apply(&mut self, next: PageConfig) {
        let reset = self.cfg.needs_reset(&next);
        self.cfg = next;
        if reset {
            self.reset();
        } else {
            self.rates_dirty = true;
        }
    }

    fn apply_rates(&mut self) {
        let kind = self.device().map_or(BackendKind::Gpu, |d| d.1);
        let Some(s) = self.session.as_mut() else { return };
        self.rates_dirty = false;
        let rc = self.cfg.run_config(kind);
        let (eval_every, steps) = (rc.eval_every, rc.steps);
        s.config.eval_every = eval_every;
        match s.set_rates(&rc.rules, steps) {
            Ok(()) => {
                let t = self.cfg.inference_steps();
                self.message(Level::Info, format!("rates in force from the next iteration (T = {t})"));
            }
            Err(e) => self.message(Level::Error, format!("the new rates were not applied: {e}")),
        }
    }

    /// Starts over from the seed with the settings in force (networks rebuilt on the device).
    pub fn reset(&mut self) {
        self.generation += 1;
        self.pool_lost = None;
        self.lent = false;
        self.switch_pending = false;
        self.capture_pending = false;
        self.kappa_too_large_said = false;
        self.kappa.clear();
        self.kappa_jobs.clear();
        self.shown_iteration = 0;
        // Steps asked for before any network existed (the page still loading) are still wanted.
        if self.session.is_some() || self.lent {
            self.steps_requested = 0;
        }
        self.session = None;
        self.reveal = None;
        self.view_rule = self.default_view_rule();
        self.touch();
        if let Some(why) = self.worker.as_ref().and_then(|w| w.dead()) {
            self.worker = None;
            self.pool = None;
            self.message(Level::Warn, format!("the CPU worker had stopped ({why}); starting a new one"));
        }
        let lost = self.pool.as_ref().and_then(|p| p.iter().enumerate().find_map(|(i, l)| l.dead().map(|w| (i, w))));
        if let Some((i, why)) = lost {
            self.pool = None;
            self.message(
                Level::Warn,
                format!("worker {i} of the CPU pool had stopped ({why}); starting the pool again"),
            );
        }
        let Some(data) = self.data.clone() else { return };
        match self.device() {
            Some((device, kind)) => {
                self.phase = match kind {
                    BackendKind::Gpu => "building the networks on the GPU…",
                    BackendKind::Cpu => "building the networks in the CPU worker…",
                }
                .into();
                spawn_build(self.generation, self.cfg.clone(), data, device, kind);
            }
            None if self.wants_worker() => self.start_worker(),
            None if self.software_auto() => self.start_pick(),
            None => {}
        }
    }

    /// The standard PC ⇄ μPC switch: keeps the current curves, faded, and restarts every rule
    /// under the other parameterisation from the same seed (so on the same batch stream).
    pub fn switch_param(&mut self) {
        if self.lent {
            // Its curves are with the evaluation: switch when it hands them back.
            self.switch_pending = true;
            return;
        }
        if let Some(s) = self.session.as_ref() {
            self.ghosts.retain(|g| g.saved.is_some());
            let before: Vec<Ghost> = s
                .runs
                .iter()
                .map(|r| Ghost {
                    rule: r.name(),
                    label: r.settings.rule.label().to_string(),
                    saved: None,
                    loss: r.loss.clone(),
                    accuracy: r.accuracy.clone(),
                })
                .collect();
            self.ghosts.extend(before);
        }
        // One parameterisation for every rule: the other one. Both at once: μPC for all.
        match self.cfg.param() {
            Some(_) => self.cfg.flip_param(),
            None => self.cfg.set_param(crate::pcn::Param::Mupc),
        }
        let names: Vec<&str> = self.cfg.rules.iter().map(|r| r.label()).collect();
        self.message(Level::Info, format!("switched: now training {} from the same seed", names.join(", ")));
        self.reset();
    }

    /// One iteration, then pause.
    pub fn step_iteration(&mut self) {
        self.playing = false;
        self.reveal = None;
        self.steps_requested += 1;
    }

    /// One inference step: the first press runs an iteration and shows its feedforward energies
    /// and first step; each further press shows the next step; after the last, the weight update.
    pub fn step_inference(&mut self) {
        self.playing = false;
        let steps = self.cfg.inference_steps();
        match self.reveal {
            // Rows 0 … T, then one more press for the weight update.
            Some(Reveal::Showing { iteration, shown }) if shown < steps + 2 => {
                self.reveal = Some(Reveal::Showing { iteration, shown: shown + 1 });
                self.dirty[PlotId::InferenceView.index()] = true;
            }
            Some(Reveal::Waiting(_)) => {}
            _ => {
                if self.view_rule.is_none() {
                    self.message(
                        Level::Warn,
                        "stepping through inference needs a PC rule (sp or mupc) among the rules",
                    );
                    return;
                }
                let next = self.session.as_ref().map_or(0, |s| s.iteration()) + 1;
                self.reveal = Some(Reveal::Waiting(next));
                self.steps_requested += 1;
            }
        }
    }

    /// Play or pause.
    pub fn toggle_play(&mut self) {
        self.playing = !self.playing;
        if self.playing {
            self.reveal = None;
        }
    }

    /// The work of one animation frame.
    pub fn tick(&mut self) {
        let now = now_ms();
        if self.rates_dirty {
            self.apply_rates();
        }
        let Some(session) = self.session.as_mut() else { return };
        let mut events = session.poll();
        let mut eval_due = false;
        let t0 = now;
        while (self.playing || self.steps_requested > 0) && now_ms() - t0 < FRAME_BUDGET_MS {
            if session.runs.iter().any(|r| r.backend.in_flight() >= MAX_IN_FLIGHT) || session.is_finished() {
                break;
            }
            if let Some(rate) = self.speed.filter(|_| self.steps_requested == 0) {
                if now - self.last_submit_ms < 1000.0 / rate {
                    break;
                }
            }
            self.last_submit_ms = now;
            let (ev, due) = session.train();
            events.extend(ev);
            self.steps_requested = self.steps_requested.saturating_sub(1);
            let kappa_due = self.kappa_every > 0 && session.iteration() % self.kappa_every == 0;
            // κ is measured at this iteration's activities: nothing may be submitted after it.
            self.capture_pending |= kappa_due;
            if due || kappa_due {
                eval_due = due;
                break;
            }
        }
        if session.runs.iter().all(|r| !r.is_running()) && self.playing {
            self.playing = false;
            self.message(Level::Warn, "every run has stopped; change the settings or reset");
        }
        self.measure(now);
        self.file(events);
        if eval_due {
            self.start_eval();
        } else if self.capture_pending {
            self.start_capture();
        }
    }

    /// A preset was chosen (or opened from a link): start what it shows besides training.
    pub fn preset_started(&mut self) {
        let Some(p) = self.cfg.preset else { return };
        match p.action() {
            crate::presets::PresetAction::KappaSweep if self.data.is_some() => self.start_sweep(),
            crate::presets::PresetAction::LrGrid if self.data.is_some() => self.start_lr_grid(),
            crate::presets::PresetAction::Train => {}
            _ => self.sweep_on_load = true,
        }
    }

    fn file(&mut self, events: Vec<Event>) {
        if events.is_empty() {
            return;
        }
        self.touch();
        let mut lost_worker = None;
        for e in events {
            match e {
                Event::Iteration(s) => {
                    if let Some(Reveal::Waiting(at)) = self.reveal {
                        if Some(s.rule) == self.view_rule && s.iteration == at {
                            self.reveal = Some(Reveal::Showing { iteration: at, shown: 2 });
                        }
                    }
                }
                Event::Diverged { rule, iteration, site, .. } => self.message(
                    Level::Warn,
                    format!("{rule} diverged at iteration {iteration}, first at {site}; it stopped, the others go on"),
                ),
                Event::Failed { rule, iteration, message } => {
                    if self.gpu.as_ref().is_some_and(|g| g.is_lost()) {
                        self.playing = false;
                        self.device_lost.get_or_insert(message.clone());
                    }
                    let pooled = self.session.as_ref().is_some_and(|s| s.runs.iter().any(|r| r.backend.is_pool()));
                    if pooled && self.pool.as_ref().is_some_and(|p| p.iter().any(|l| l.dead().is_some())) {
                        lost_worker.get_or_insert(message.clone());
                    }
                    self.message(Level::Error, format!("{rule} stopped at iteration {iteration}: {message}"))
                }
                Event::Eval(_) => {}
                Event::Alignment(_) => {}
            }
        }
        if let Some(why) = lost_worker {
            self.pool_worker_lost(why);
        }
    }

    fn start_eval(&mut self) {
        let Some(mut session) = self.session.take() else { return };
        self.lent = true;
        self.shown_iteration = session.iteration();
        let generation = self.generation;
        self.phase = "evaluating on the 10 000 test images…".into();
        wasm_bindgen_futures::spawn_local(async move {
            let events = session.evaluate().await;
            with(|r| {
                if r.generation == generation {
                    r.session = Some(session);
                    r.lent = false;
                    r.phase = "ready".into();
                    r.file(events);
                    if std::mem::take(&mut r.switch_pending) {
                        r.switch_param();
                    } else if r.capture_pending {
                        r.start_capture();
                    }
                }
            });
        });
    }
}
