//! Where the networks train: the GPU (a new device after a loss, resuming from the latest
//! checkpoint) or the CPU worker; building a session there.

use super::*;

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

    /// True when training belongs on the CPU: chosen, or there is no GPU device.
    pub fn wants_worker(&self) -> bool {
        self.cfg.cpu || (self.gpu.is_none() && self.no_webgpu.is_some())
    }

    /// Where sessions are built now: the GPU unless the CPU is chosen or there is no GPU; `None`
    /// while that device is not ready. On the CPU: the pool of workers when it has more than one.
    pub fn device(&self) -> Option<(Device, BackendKind)> {
        if self.wants_worker() {
            let worker = self.worker.clone()?;
            match (self.pool_size(), &self.pool) {
                (1, _) => Some((Device::Worker(worker), BackendKind::Cpu)),
                (n, Some(p)) if p.len() == n => {
                    Some((Device::Pool { links: p.clone(), fixed: self.cfg.workers.is_some() }, BackendKind::Cpu))
                }
                _ => None,
            }
        } else {
            self.gpu.clone().map(|g| (Device::Gpu(g), BackendKind::Gpu))
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
                r.reset();
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
