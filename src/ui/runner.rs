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
use crate::session::{Backend, Device, Event, RunStatus, Series, Session};
use std::cell::RefCell;
use std::collections::VecDeque;
use std::sync::Arc;

/// The page's Lanczos (for widths beyond [`crate::session::conditioning::JOB_BLOCKS_UP_TO_WIDTH`]): 1 % on κ is plenty for a
/// log plot, and 400 basis vectors of a 16 384-dimensional Hessian (52 MB) fit the page's memory.
const PAGE_LANCZOS: LanczosConfig = LanczosConfig { max_iter: 400, tol: 1e-2, seed: 0 };
/// The page's block bisection (widths up to [`crate::session::conditioning::JOB_BLOCKS_UP_TO_WIDTH`]): exact to 10⁻⁴.
const PAGE_BLOCKS: LanczosConfig = LanczosConfig { tol: 1e-4, ..PAGE_LANCZOS };

/// How the page computes κ at width `N`: its settings and method.
fn page_kappa(width: usize) -> (LanczosConfig, Method) {
    match KappaJob::stepwise(width) {
        Method::Lanczos => (PAGE_LANCZOS, Method::Lanczos),
        m => (PAGE_BLOCKS, m),
    }
}
/// Milliseconds of conditioning work (Lanczos iterations) per animation frame.
const CONDITIONING_BUDGET_MS: f64 = 6.0;
/// Largest Hessian (`N·H`) the page analyses: the Lanczos basis of a 16 384-dimensional Hessian
/// already takes 52 MB; larger ones are for `pclab hessian`.
pub const PAGE_MAX_HESSIAN: usize = 128 * 128;
/// Plots on the page (the runner's dirty flags, indexed by [`PlotId::index`]).
pub const PLOT_COUNT: usize = PlotId::COUNT;

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
    job: Option<KappaJob>,
    /// Finished points.
    pub results: Vec<SweepPoint>,
    /// Stopped by the user.
    pub cancelled: bool,
}

/// Most GPU iterations in flight per run: enough to keep the device busy, few enough that pause
/// and reset answer at once.
const MAX_IN_FLIGHT: usize = 2;
/// Work per iteration beyond which the page warns that the CPU will be slow (GFLOP, all rules).
const CPU_HEAVY_GFLOP: f64 = 20.0;
/// Trunk's loader for the `pclab-worker` binary (`data-loader-shim`).
const WORKER_URL: &str = "pclab-worker_loader.js";
/// Milliseconds of recording per animation frame.
const FRAME_BUDGET_MS: f64 = 8.0;
/// Messages kept in the status area.
const MAX_MESSAGES: usize = 8;

/// A curve of an earlier run kept, faded, after the standard PC ⇄ μPC switch.
#[derive(Clone, Debug)]
pub struct Ghost {
    /// Rule name.
    pub rule: &'static str,
    /// Legend label.
    pub label: String,
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

/// A status message.
#[derive(Clone, Debug, PartialEq)]
pub struct Message {
    /// "info", "warn" or "error".
    pub level: &'static str,
    /// The text.
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
    /// The learning-rate grid has work left.
    pub lr_running: bool,
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
    pub ghosts: Vec<Ghost>,
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
    throughput: (f64, usize, String),
    /// Iterations submitted, remembered while the session is lent out.
    shown_iteration: usize,
    /// Data changed since the plots were last drawn (one flag per plot, in `plots::PLOTS` order).
    pub dirty: [bool; PLOT_COUNT],
    /// The κ sweep, once started.
    pub sweep: Option<Sweep>,
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
        session: None,
        phase: "starting".into(),
        generation: 0,
        playing,
        steps_requested: 0,
        speed: None,
        last_submit_ms: 0.0,
        rates_dirty: false,
        ghosts: Vec::new(),
        capabilities: String::new(),
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
        throughput: (0.0, 0, String::new()),
        shown_iteration: 0,
        dirty: [true; PLOT_COUNT],
        sweep: None,
        sweep_max_depth: 32,
        sweep_seeds: 3,
        kappa_every: 100,
        kappa: Vec::new(),
        kappa_jobs: VecDeque::new(),
        capture_pending: false,
        kappa_too_large_said: false,
    };
    r.view_rule = r.default_view_rule();
    for p in problems {
        r.message("warn", p);
    }
    RUNNER.with(|cell| *cell.borrow_mut() = Some(r));
}

fn now_ms() -> f64 {
    web_sys::window().and_then(|w| w.performance()).map_or(0.0, |p| p.now())
}

impl Runner {
    /// Adds a status message (the oldest go first).
    pub fn message(&mut self, level: &'static str, text: impl Into<String>) {
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
                self.message("info", format!("rates in force from the next iteration (T = {t})"));
            }
            Err(e) => self.message("error", format!("the new rates were not applied: {e}")),
        }
    }

    /// Starts over from the seed with the settings in force (networks rebuilt on the device).
    pub fn reset(&mut self) {
        self.generation += 1;
        self.lent = false;
        self.switch_pending = false;
        self.capture_pending = false;
        self.kappa_too_large_said = false;
        self.kappa.clear();
        self.kappa_jobs.clear();
        self.shown_iteration = 0;
        self.session = None;
        self.reveal = None;
        self.steps_requested = 0;
        self.view_rule = self.default_view_rule();
        self.touch();
        if let Some(why) = self.worker.as_ref().and_then(|w| w.dead()) {
            self.worker = None;
            self.message("warn", format!("the CPU worker had stopped ({why}); starting a new one"));
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
            None => {}
        }
    }

    /// After a lost device: creates a new one and resumes the session on it from its latest
    /// checkpoint (the latest evaluation), paused where it was playing.
    pub fn recover(&mut self) {
        if self.device_lost.is_none() || self.lent {
            return;
        }
        // Without a session (a reset after the loss failed) the new device starts afresh.
        let mut session = self.session.take();
        self.lent = session.is_some();
        self.phase = "creating a new GPU device…".into();
        let generation = self.generation;
        wasm_bindgen_futures::spawn_local(async move {
            let made = super::boot::gpu_context().await;
            let (ctx, resumed) = match (made, session.as_mut()) {
                (Ok(ctx), Some(s)) => {
                    // The page is single-threaded: the Arc only satisfies the models' shared ownership.
                    #[allow(clippy::arc_with_non_send_sync)]
                    let ctx = Arc::new(ctx);
                    let resumed = s.recover(Device::Gpu(ctx.clone())).await.map_err(|e| e.to_string());
                    (Some(ctx), resumed)
                }
                #[allow(clippy::arc_with_non_send_sync)]
                (Ok(ctx), None) => (Some(Arc::new(ctx)), Ok(0)),
                (Err(e), _) => (None, Err(e)),
            };
            with(|r| {
                if r.generation != generation {
                    return;
                }
                r.lent = false;
                let fresh = session.is_none();
                r.session = session;
                match resumed {
                    Ok(_) if fresh => {
                        r.device_lost = None;
                        r.capabilities = ctx.as_ref().map_or(String::new(), |c| format!("WebGPU · {}", c.capabilities()));
                        r.gpu = ctx;
                        r.message("info", "a new GPU device: the networks start again from the seed");
                        r.reset();
                    }
                    Ok(at) => {
                        r.device_lost = None;
                        r.capabilities = ctx.as_ref().map_or(String::new(), |c| format!("WebGPU · {}", c.capabilities()));
                        r.gpu = ctx;
                        r.shown_iteration = at;
                        r.kappa.iter_mut().for_each(|k| k.1.retain(|p| p.0 <= at));
                        r.kappa_jobs.clear();
                        r.playing = true;
                        r.message("info", format!("a new GPU device: training resumed from iteration {at}, the latest evaluation"));
                        r.touch();
                    }
                    Err(e) => r.message(
                        "error",
                        format!("no new GPU device: {e}. Reload the page (the settings are in the address bar), or choose the CPU."),
                    ),
                }
            });
        });
    }

    /// True when training belongs on the CPU: chosen, or there is no GPU device.
    pub fn wants_worker(&self) -> bool {
        self.cfg.cpu || (self.gpu.is_none() && self.no_webgpu.is_some())
    }

    /// Where sessions are built now: the GPU unless the CPU is chosen or there is no GPU; `None`
    /// while that device is not ready.
    pub fn device(&self) -> Option<(Device, BackendKind)> {
        if self.wants_worker() {
            self.worker.clone().map(|w| (Device::Worker(w), BackendKind::Cpu))
        } else {
            self.gpu.clone().map(|g| (Device::Gpu(g), BackendKind::Gpu))
        }
    }

    /// Starts the CPU worker (once); when it has loaded MNIST the networks are built in it.
    pub fn start_worker(&mut self) {
        if self.worker.is_some() || std::mem::replace(&mut self.worker_starting, true) {
            return;
        }
        self.phase = "starting the CPU worker (it loads MNIST too)…".into();
        wasm_bindgen_futures::spawn_local(async {
            let started = crate::remote::web::spawn(WORKER_URL).await;
            with(|r| {
                r.worker_starting = false;
                match started {
                    Ok(link) => {
                        r.worker = Some(link);
                        r.message(
                            "info",
                            "the CPU worker is ready: training runs in the background, off the page's thread",
                        );
                        r.reset();
                    }
                    Err(e) => {
                        r.playing = false;
                        r.phase = "cannot train here".into();
                        r.message("error", format!("the CPU backend could not start: {e}"));
                    }
                }
            });
        });
    }

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
    /// accuracy drawn as "(saved)" lines. Returns the configuration for the controls.
    pub fn load_state(&mut self, state: crate::export::RunState) -> PageConfig {
        let (cfg, problems) = PageConfig::from_query(&state.config);
        for p in problems {
            self.message("warn", format!("the saved run's configuration: {p}"));
        }
        let series = |pts: &[(usize, f64)]| {
            let mut s = Series::new(crate::session::run::HISTORY_POINTS);
            pts.iter().for_each(|&(i, v)| s.push(i, v));
            s
        };
        let ghosts: Vec<Ghost> = state
            .runs
            .iter()
            .filter_map(|rec| {
                let rule: Rule = rec.rule.parse().ok()?;
                Some(Ghost {
                    rule: rule.name(),
                    label: format!("{} (saved)", rule.label()),
                    loss: series(&rec.loss),
                    accuracy: series(&rec.accuracy),
                })
            })
            .collect();
        self.playing = false;
        self.cfg = cfg.clone();
        self.reset();
        self.ghosts = ghosts;
        self.message(
            "info",
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

    /// The standard PC ⇄ μPC switch: keeps the current curves, faded, and restarts every rule
    /// under the other parameterisation from the same seed (so on the same batch stream).
    pub fn switch_param(&mut self) {
        if self.lent {
            // Its curves are with the evaluation: switch when it hands them back.
            self.switch_pending = true;
            return;
        }
        if let Some(s) = self.session.as_ref() {
            self.ghosts = s
                .runs
                .iter()
                .map(|r| Ghost {
                    rule: r.name(),
                    label: r.settings.rule.label().to_string(),
                    loss: r.loss.clone(),
                    accuracy: r.accuracy.clone(),
                })
                .collect();
        }
        self.cfg.flip_param();
        let names: Vec<&str> = self.cfg.rules.iter().map(|r| r.label()).collect();
        self.message("info", format!("switched: now training {} from the same seed", names.join(", ")));
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
                    self.message("warn", "stepping through inference needs a PC rule (sp or mupc) among the rules");
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
            self.message("warn", "every run has stopped; change the settings or reset");
        }
        self.measure(now);
        self.file(events);
        if eval_due {
            self.start_eval();
        } else if self.capture_pending {
            self.start_capture();
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
                        self.message("error", format!("the κ sweep stopped: {e}"));
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
                    self.message("info", "the κ sweep is complete");
                }
            }
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

    /// Starts (or restarts) the κ-against-depth sweep at the page's width and activation.
    pub fn start_sweep(&mut self) {
        if self.data.is_none() {
            self.message("warn", "the κ sweep starts once MNIST has loaded");
            return;
        }
        let cap = (PAGE_MAX_HESSIAN / self.cfg.width.max(1)).min(self.sweep_max_depth);
        if cap < self.sweep_max_depth {
            self.message(
                "warn",
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

    /// True when κ of the page's network fits the page; otherwise says so once.
    fn hessian_fits(&mut self) -> bool {
        let dim = self.cfg.width * self.cfg.depth;
        if dim <= PAGE_MAX_HESSIAN {
            return true;
        }
        if self.kappa_every != 0 && !std::mem::replace(&mut self.kappa_too_large_said, true) {
            self.message(
                "warn",
                format!(
                    "κ during training is off: N·H = {dim} is beyond the page's {PAGE_MAX_HESSIAN}; `pclab hessian` computes it"
                ),
            );
        }
        false
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

    /// κ of every PC run at initialisation, at the feedforward activities of the first sample of
    /// the first batch (the weights every backend starts from are drawn the same way).
    fn queue_init_kappa(&mut self) {
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
                Err(e) => self.message("error", format!("κ of {rule} at initialisation: {e}")),
            }
        }
    }

    /// Downloads every PC run's weights and post-inference activities (the GPU's, asynchronously)
    /// and queues κ at the batch's first sample.
    fn start_capture(&mut self) {
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
                    let got = match &mut run.backend {
                        Backend::Gpu(m) => match (m.network().await, m.activities().await) {
                            (Ok(net), Ok(z)) => Ok((net, z)),
                            (Err(e), _) | (_, Err(e)) => Err(e.to_string()),
                        },
                        Backend::Cpu(m) => Ok((m.net.clone(), m.z.clone())),
                        // The worker sends the first sample's activities only.
                        Backend::Remote(m) => m.snapshot().await.map_err(|e| e.to_string()),
                    };
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
                        r.message("error", f);
                    }
                    if std::mem::take(&mut r.switch_pending) {
                        r.switch_param();
                    }
                }
            });
        });
    }

    fn measure(&mut self, now: f64) {
        let Some(s) = self.session.as_ref() else { return };
        let in_flight = s.runs.iter().map(|r| r.backend.in_flight()).max().unwrap_or(0);
        let done = s.iteration().saturating_sub(in_flight);
        let (t_prev, done_prev, _) = self.throughput;
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
            .filter_map(|r| match &r.backend {
                Backend::Remote(m) => m.median_ms().map(|ms| format!("{} {} ms", r.name(), two_digits(ms))),
                _ => None,
            })
            .collect();
        let worker = if worker.is_empty() {
            String::new()
        } else {
            format!(" · CPU worker per iteration: {}", worker.join(", "))
        };
        let text = if t_prev == 0.0 {
            String::new()
        } else {
            let g = its * flops / 1e9;
            format!("{} iterations/s{steps} · {} GFLOP/s{worker}", two_digits(its), two_digits(g))
        };
        self.throughput = (now, done, text);
    }

    fn file(&mut self, events: Vec<Event>) {
        if events.is_empty() {
            return;
        }
        self.touch();
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
                    "warn",
                    format!("{rule} diverged at iteration {iteration}, first at {site}; it stopped, the others go on"),
                ),
                Event::Failed { rule, iteration, message } => {
                    if self.gpu.as_ref().is_some_and(|g| g.is_lost()) {
                        self.playing = false;
                        self.device_lost.get_or_insert(message.clone());
                    }
                    self.message("error", format!("{rule} stopped at iteration {iteration}: {message}"))
                }
                Event::Eval(_) => {}
            }
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
                        run.and_then(|r| r.accuracy.last()).map_or("–".into(), |p| format!("{:.2} %", p.1));
                    let loss = run.and_then(|r| r.loss.last()).map_or("–".into(), |p| format!("{:.4}", p.1));
                    let state = match run.map(|r| &r.status) {
                        None => "waiting".into(),
                        Some(RunStatus::Running) => "training".into(),
                        Some(RunStatus::Diverged { iteration, layer: Some(l), .. }) => {
                            format!("diverged at {iteration} (layer {l})")
                        }
                        Some(RunStatus::Diverged { iteration, .. }) => format!("diverged at {iteration}"),
                        Some(RunStatus::Failed { iteration, message }) => format!("failed at {iteration}: {message}"),
                    };
                    let kappa = rule.is_pc().then(|| {
                        let latest = self.kappa.iter().find(|k| k.0 == rule.name()).and_then(|k| k.1.last());
                        match latest {
                            Some((at, e)) => format!(
                                "{:.3e} (λ_min {:.2e}, λ_max {:.2e}; iteration {at}{})",
                                e.kappa,
                                e.lambda_min,
                                e.lambda_max,
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
                let remote = s.runs.iter().any(|r| matches!(r.backend, Backend::Remote(_)));
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
                "CPU · WebAssembly (SIMD) in a Web Worker".into()
            } else {
                self.backend.0.clone()
            },
            backend_state: if self.wants_worker() { "cpu" } else { self.backend.1 },
            device_lost: self.device_lost.clone(),
            on_cpu: self.wants_worker().then(|| match (&self.no_webgpu, self.cfg.cpu) {
                (_, true) => {
                    "You chose the CPU (device=cpu). Choose GPU under “device” to train with WebGPU.".to_string()
                }
                (Some(why), false) => why.clone(),
                (None, false) => String::new(),
            }),
            has_gpu: self.gpu.is_some(),
            throughput: self.throughput.2.clone(),
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
        }
    }
}

impl Runner {
    fn sweep_text(&self) -> String {
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

/// A rate with two significant digits below 10, whole numbers above.
fn two_digits(v: f64) -> String {
    if v >= 10.0 {
        format!("{v:.0}")
    } else if v >= 1.0 {
        format!("{v:.1}")
    } else {
        format!("{v:.2}")
    }
}

/// Builds the session for `cfg` on the device, then hands it to the runner unless a newer reset
/// came first.
pub fn spawn_build(
    generation: u64,
    cfg: PageConfig,
    data: (Arc<Mnist>, Arc<Mat<f32>>),
    device: Device,
    kind: BackendKind,
) {
    wasm_bindgen_futures::spawn_local(async move {
        let (data, test_x) = data;
        let built = Session::create(cfg.run_config(kind), data, device).await;
        let built = built.map(|s| s.with_test_inputs(test_x));
        with(|r| {
            if r.generation != generation {
                return;
            }
            match built {
                Ok(s) => {
                    if kind == BackendKind::Cpu {
                        let rc = &s.config;
                        let gflop: f64 = rc
                            .rules
                            .iter()
                            .map(|rs| iteration_flops(&rc.arch(rs.rule), rc.learning(rs), rc.batch).0)
                            .sum::<f64>()
                            / 1e9;
                        if gflop > CPU_HEAVY_GFLOP {
                            r.message(
                                "warn",
                                format!(
                                    "{gflop:.0} GFLOP per iteration is a lot for the CPU: expect seconds per iteration (the page stays responsive); a GPU or a smaller network is faster"
                                ),
                            );
                        }
                    }
                    r.session = Some(s);
                    r.phase = "ready".into();
                    r.throughput = (0.0, 0, String::new());
                    r.queue_init_kappa();
                    r.touch();
                }
                Err(e) => {
                    r.playing = false;
                    r.phase = "not running".into();
                    r.message("error", format!("cannot train this configuration: {e}"));
                }
            }
        });
    });
}
