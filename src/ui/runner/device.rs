//! Where the networks train: the GPU (a new device after a loss, resuming from the latest
//! checkpoint) or the CPU worker; with only a software adapter, whichever of the two times
//! faster; building a session there.

use super::*;
use crate::page::DeviceChoice;

/// Iterations timed on each device when `device=auto` has only a software adapter (after one
/// that warms it up: pipelines compiled, buffers allocated).
const PICK_ITERATIONS: usize = 2;
/// The longest the software adapter's warm-up iteration may take before the CPU is chosen
/// without timing it further, ms.
const PICK_WARMUP_MS: f64 = 20_000.0;

/// Which of a software adapter and the CPU workers trains a shape of networks faster.
#[derive(Clone, Debug)]
pub struct Pick {
    /// The shape timed ([`Runner::pick_key`]).
    key: String,
    /// The CPU workers were faster (or the adapter failed).
    pub cpu: bool,
    /// Why, with the two timings, for the banner.
    pub why: String,
}

/// How a device did on the timed iterations.
enum Timing {
    /// Milliseconds per iteration.
    Ms(f64),
    /// Still running when the other device had long finished: slower than this many ms per
    /// iteration at least.
    Over(f64),
    /// It could not train.
    Failed(String),
}

/// Work per iteration beyond which the page warns that the CPU will be slow (GFLOP, all rules).
const CPU_HEAVY_GFLOP: f64 = 20.0;
/// Trunk's loader for the `pclab-worker` binary (`data-loader-shim`).
const WORKER_URL: &str = "pclab-worker_loader.js";
impl Runner {
    /// After a lost device: creates a new one and resumes the session on it from its latest
    /// checkpoint (the latest evaluation), and training goes on from there.
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
            let made = crate::ui::boot::gpu_context().await;
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
                        r.message(Level::Info, "a new GPU device: the networks start again from the seed");
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
                        r.message(Level::Info, format!("a new GPU device: training resumed from iteration {at}, the latest evaluation"));
                        r.touch();
                    }
                    Err(e) => r.message(Level::Error,
                        format!("no new GPU device: {e}. Reload the page (the settings are in the address bar), or choose the CPU."),
                    ),
                }
            });
        });
    }

    /// True when training belongs on the CPU: chosen, there is no GPU device, or the only
    /// adapter is a software one that timed slower than the CPU workers.
    pub fn wants_worker(&self) -> bool {
        match self.cfg.device {
            DeviceChoice::Cpu => true,
            _ if self.gpu.is_none() && self.no_webgpu.is_some() => true,
            DeviceChoice::Auto if self.software_auto() => self.picked().is_some_and(|p| p.cpu),
            _ => false,
        }
    }

    /// `device=auto` and the GPU device is a software adapter: the two are timed.
    pub fn software_auto(&self) -> bool {
        self.cfg.device == DeviceChoice::Auto && self.gpu.is_some() && self.backend.1 == "software"
    }

    /// The shape of networks a [`Pick`] holds for: what sets the cost of an iteration.
    fn pick_key(&self) -> String {
        let c = &self.cfg;
        format!("{} {} {} {:?} {:?} {} {:?}", c.depth, c.width, c.batch, c.rules, c.act, c.inference_steps(), c.workers)
    }

    /// The timed choice for the networks in force, if they have been timed.
    pub fn picked(&self) -> Option<&Pick> {
        self.pick.as_ref().filter(|p| p.key == self.pick_key())
    }

    /// Where sessions are built now: the GPU unless the CPU is chosen, there is no GPU, or a
    /// software adapter timed slower; `None` while that device is not ready or the timing runs.
    /// On the CPU: the pool of workers when it has more than one.
    pub fn device(&self) -> Option<(Device, BackendKind)> {
        if self.software_auto() && self.picked().is_none() {
            return None;
        }
        if self.wants_worker() {
            self.cpu_device().map(|d| (d, BackendKind::Cpu))
        } else {
            self.gpu.clone().map(|g| (Device::Gpu(g), BackendKind::Gpu))
        }
    }

    /// The CPU workers as a device: the pool when it has more than one; `None` until started.
    fn cpu_device(&self) -> Option<Device> {
        let worker = self.worker.clone()?;
        match (self.pool_size(), &self.pool) {
            (1, _) => Some(Device::Worker(worker)),
            (n, Some(p)) if p.len() == n => Some(Device::Pool {
                links: p.clone(),
                fixed: self.cfg.workers.is_some(),
                exchange: self.pool_exchange(),
            }),
            _ => None,
        }
    }

    /// A worker of the pool was lost mid-run (`why`): a new pool is started, and the session
    /// resumes on it from its latest evaluation, as after a lost GPU device.
    pub fn pool_worker_lost(&mut self, why: String) {
        if self.pool_lost.is_some() {
            return;
        }
        let lost = self.pool.as_ref().and_then(|p| p.iter().position(|l| l.dead().is_some())).unwrap_or(0);
        self.message(
            Level::Warn,
            format!("worker {lost} of the CPU pool was lost ({why}): starting a new pool to resume from the latest evaluation"),
        );
        self.pool_lost = Some(why);
        self.playing = false;
        if self.worker.as_ref().is_some_and(|w| w.dead().is_some()) {
            self.worker = None;
        }
        self.pool = None;
        self.start_worker();
    }

    /// The CPU workers asked for are ready: resume a session that lost a pool worker, else
    /// build the networks afresh.
    fn workers_ready(&mut self) {
        if self.pool_lost.is_none() {
            self.reset();
            return;
        }
        let device = match self.cpu_device() {
            // The new pool is still to start (after a new first worker).
            None => return self.start_worker(),
            Some(d @ Device::Pool { .. }) => d,
            Some(_) => {
                self.pool_lost = None;
                self.message(Level::Warn, "the CPU pool did not start again: the networks start afresh on one worker");
                return self.reset();
            }
        };
        let Some(mut session) = self.session.take() else {
            self.pool_lost = None;
            return self.reset();
        };
        self.lent = true;
        self.phase = "resuming on the new CPU pool from the latest evaluation…".into();
        let generation = self.generation;
        wasm_bindgen_futures::spawn_local(async move {
            let resumed = session.recover(device).await.map_err(|e| e.to_string());
            with(|r| {
                if r.generation != generation {
                    return;
                }
                r.lent = false;
                r.pool_lost = None;
                r.session = Some(session);
                r.phase = "ready".into();
                match resumed {
                    Ok(at) => {
                        r.shown_iteration = at;
                        r.kappa.iter_mut().for_each(|k| k.1.retain(|p| p.0 <= at));
                        r.kappa_jobs.clear();
                        r.playing = true;
                        r.message(
                            Level::Info,
                            format!("a new CPU pool: training resumed from iteration {at}, the latest evaluation"),
                        );
                        r.touch();
                    }
                    Err(e) => r.message(
                        Level::Error,
                        format!("the new CPU pool could not resume the runs ({e}); reset to start again"),
                    ),
                }
            });
        });
    }

    /// `device=auto` with only a software adapter: times a few iterations of the networks in
    /// force on the CPU workers (started first if need be), then on the adapter, keeps the
    /// faster for this shape of networks and builds the session there.
    pub fn start_pick(&mut self) {
        if self.picking {
            return;
        }
        let (Some(gpu), Some(data)) = (self.gpu.clone(), self.data.clone()) else { return };
        let Some(cpu) = self.cpu_device() else {
            self.phase = "starting the CPU workers, to time them against the software adapter…".into();
            self.start_worker();
            return;
        };
        self.picking = true;
        let (cfg, key, generation) = (self.cfg.clone(), self.pick_key(), self.generation);
        let workers = match &cpu {
            Device::Pool { links, .. } => format!("the pool of {} CPU workers", links.len()),
            _ => "the CPU worker".to_string(),
        };
        let adapter = self.backend.0.trim_start_matches("WebGPU · ").to_string();
        self.phase = format!("the only GPU is a software adapter: timing {workers} on these networks…");
        wasm_bindgen_futures::spawn_local(async move {
            let on_cpu = time_iterations(&cfg, &data, cpu, BackendKind::Cpu, None).await;
            with(|r| {
                if r.generation == generation {
                    r.phase = "timing the software adapter on the same networks…".into();
                }
            });
            // The adapter need not finish once it is clearly the slower (three times the CPU's time).
            let bound = match on_cpu {
                Timing::Ms(ms) => Some(3.0 * ms * PICK_ITERATIONS as f64),
                _ => None,
            };
            let on_gpu = time_iterations(&cfg, &data, Device::Gpu(gpu), BackendKind::Gpu, bound).await;
            let pick = decide(key, &workers, &adapter, on_cpu, on_gpu);
            with(|r| {
                r.picking = false;
                r.message(Level::Info, format!("device=auto: {}", pick.why));
                r.pick = Some(pick);
                // A newer reset waited for this (or times its own shape next).
                r.reset();
            });
        });
    }

    /// How the pool's workers pass boundary values: through shared memory when the page is
    /// cross-origin isolated, else by message ports.
    pub fn pool_exchange(&self) -> crate::session::Exchange {
        if crate::remote::web::pool_shares_memory() {
            crate::session::Exchange::Shared
        } else {
            crate::session::Exchange::Ports
        }
    }

    /// The CPU workers to train with: the `workers` setting, else one per core less one for the
    /// page (two on two cores); 1 when the pool could not start.
    pub fn pool_size(&self) -> usize {
        if self.pool_failed {
            return 1;
        }
        self.cfg.workers.unwrap_or_else(|| {
            let cores = web_sys::window().map_or(1, |w| w.navigator().hardware_concurrency() as usize);
            crate::page::auto_workers(cores)
        })
    }

    /// Starts the pool's other workers and connects the ring (the CPU worker is the first);
    /// when they have loaded MNIST the networks are built across them.
    fn start_pool(&mut self, first: Arc<WorkerLink>) {
        let n = self.pool_size();
        if std::mem::replace(&mut self.pool_starting, true) {
            return;
        }
        self.phase = format!("starting {} more CPU workers for the pool (each loads MNIST)…", n - 1);
        wasm_bindgen_futures::spawn_local(async move {
            let started = crate::remote::web::spawn_pool(WORKER_URL, first, n).await;
            with(|r| {
                r.pool_starting = false;
                match started {
                    Ok(links) => {
                        r.message(
                            Level::Info,
                            format!("a pool of {n} CPU workers: each PC network's layers are split across them"),
                        );
                        r.pool = Some(links);
                    }
                    Err(e) => {
                        r.pool_failed = true;
                        r.message(Level::Warn, format!("the CPU pool could not start ({e}): training on one worker"));
                    }
                }
                r.workers_ready();
            });
        });
    }

    /// Starts the CPU worker (once), and the pool's other workers after it; when they have
    /// loaded MNIST the networks are built there.
    pub fn start_worker(&mut self) {
        if let Some(first) = self.worker.clone() {
            if self.pool_size() > 1 && self.pool.as_ref().is_none_or(|p| p.len() != self.pool_size()) {
                self.start_pool(first);
            }
            return;
        }
        if std::mem::replace(&mut self.worker_starting, true) {
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
                            Level::Info,
                            "the CPU worker is ready: training runs in the background, off the page's thread",
                        );
                        r.workers_ready();
                    }
                    Err(e) if r.software_auto() => {
                        // device=auto was to time the worker against the software adapter: with no
                        // worker the adapter is the one device there is.
                        let why = format!("the CPU worker could not start ({e}), so the software adapter trains");
                        r.message(Level::Warn, format!("device=auto: {why}"));
                        r.pick = Some(Pick { key: r.pick_key(), cpu: false, why });
                        r.reset();
                    }
                    Err(e) => {
                        r.playing = false;
                        r.phase = "cannot train here".into();
                        r.message(Level::Error, format!("the CPU backend could not start: {e}"));
                    }
                }
            });
        });
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
                            r.message(Level::Warn,
                                format!(
                                    "{gflop:.0} GFLOP per iteration is a lot for the CPU: expect seconds per iteration (the page stays responsive); a GPU or a smaller network is faster"
                                ),
                            );
                        }
                    }
                    r.session = Some(s);
                    r.phase = "ready".into();
                    r.throughput = Throughput::default();
                    r.queue_init_kappa();
                    r.touch();
                }
                Err(e) => {
                    r.playing = false;
                    r.phase = "not running".into();
                    r.message(Level::Error, format!("cannot train this configuration: {e}"));
                }
            }
        });
    });
}

/// Builds `cfg`'s networks on `device` and times [`PICK_ITERATIONS`] iterations after a warm-up
/// one; gives up (as [`Timing::Over`]) once the timed ones pass `bound_ms`.
async fn time_iterations(
    cfg: &PageConfig,
    data: &(Arc<Mnist>, Arc<Mat<f32>>),
    device: Device,
    kind: BackendKind,
    bound_ms: Option<f64>,
) -> Timing {
    let mut s = match Session::create(cfg.run_config(kind), data.0.clone(), device).await {
        Ok(s) => s,
        Err(e) => return Timing::Failed(e.to_string()),
    };
    let warm = now_ms();
    if let Err(t) = one_iteration(&mut s, warm + PICK_WARMUP_MS).await {
        return t.unwrap_or(Timing::Over(PICK_WARMUP_MS));
    }
    let t0 = now_ms();
    let deadline = t0 + bound_ms.unwrap_or(f64::INFINITY);
    for _ in 0..PICK_ITERATIONS {
        if let Err(t) = one_iteration(&mut s, deadline).await {
            return t.unwrap_or_else(|| Timing::Over((now_ms() - t0) / PICK_ITERATIONS as f64));
        }
    }
    Timing::Ms((now_ms() - t0) / PICK_ITERATIONS as f64)
}

/// Submits one iteration of every run and waits (yielding to the page) until all have come
/// back; `Err(None)` past `deadline`, `Err(Some(..))` when a run failed.
async fn one_iteration(s: &mut Session, deadline: f64) -> Result<(), Option<Timing>> {
    let mut events = s.train().0;
    loop {
        if let Some(message) = events.iter().find_map(|e| match e {
            Event::Failed { message, .. } => Some(message.clone()),
            _ => None,
        }) {
            return Err(Some(Timing::Failed(message)));
        }
        if s.runs.iter().all(|r| r.backend.in_flight() == 0) {
            return Ok(());
        }
        if now_ms() > deadline {
            return Err(None);
        }
        crate::remote::web::yield_now().await;
        events = s.poll();
    }
}

/// The faster of the two, and why in words.
fn decide(key: String, workers: &str, adapter: &str, on_cpu: Timing, on_gpu: Timing) -> Pick {
    let n = PICK_ITERATIONS;
    let (cpu, why) = match (on_cpu, on_gpu) {
        (Timing::Ms(c), Timing::Ms(g)) if c <= g => (
            true,
            format!(
                "{workers} chosen over the software adapter ({adapter}): {c:.0} ms per iteration against its {g:.0} ms \
                 ({n} iterations timed on each)"
            ),
        ),
        (Timing::Ms(c), Timing::Ms(g)) => (
            false,
            format!(
                "the software adapter ({adapter}) chosen over {workers}: {g:.0} ms per iteration against their {c:.0} ms \
                 ({n} iterations timed on each)"
            ),
        ),
        (Timing::Ms(c), Timing::Over(g)) => (
            true,
            format!(
                "{workers} chosen over the software adapter ({adapter}): {c:.0} ms per iteration, against over {g:.0} ms \
                 on the adapter (stopped timing it there)"
            ),
        ),
        (Timing::Ms(c), Timing::Failed(e)) => {
            (true, format!("{workers} chosen ({c:.0} ms per iteration): the software adapter could not train: {e}"))
        }
        (Timing::Failed(e), Timing::Ms(g)) => (
            false,
            format!("the software adapter ({adapter}) chosen ({g:.0} ms per iteration): the CPU workers could not train: {e}"),
        ),
        (c, g) => {
            let said = |t: Timing| match t {
                Timing::Ms(ms) => format!("{ms:.0} ms per iteration"),
                Timing::Over(ms) => format!("over {ms:.0} ms per iteration"),
                Timing::Failed(e) => e,
            };
            (false, format!("neither timed cleanly (CPU: {}; adapter: {}); the software adapter is used", said(c), said(g)))
        }
    };
    Pick { key, cpu, why: format!("{why}. Choose “gpu” or “cpu” under “device” to force either.") }
}
