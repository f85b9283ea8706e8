//! Where one run's arithmetic happens. Enum dispatch (no trait objects) so the async GPU variant
//! sits beside the CPU one, natively and in the browser.

use crate::config::{BackendKind, RuleSettings, RunConfig};
use crate::data::Evaluation;
use crate::gpu::{GpuContext, GpuError, GpuModel};
use crate::pcn::forward::predict;
use crate::pcn::learn::AdamConfig;
use crate::pcn::train::{IterationReport, Learning, Model};
use crate::pcn::{Mat, Network};
use crate::remote::pool::PoolModel;
use crate::remote::{RemoteError, RemoteModel, WorkerLink};
use std::sync::Arc;
use thiserror::Error;

/// A backend that cannot be used, or failed.
#[derive(Debug, Error, Clone, PartialEq)]
pub enum BackendError {
    /// The GPU said no.
    #[error(transparent)]
    Gpu(#[from] GpuError),
    /// The CPU worker said no.
    #[error(transparent)]
    Remote(#[from] RemoteError),
}

/// Where a session's runs compute.
#[derive(Clone, Debug)]
pub enum Device {
    /// This thread's CPU (the CLI; all cores natively).
    Cpu,
    /// A GPU device (WGSL kernels; the configuration must ask for the GPU).
    Gpu(Arc<GpuContext>),
    /// The CPU reference in another thread (the page's Web Worker), driven by messages.
    Worker(Arc<WorkerLink>),
    /// Several workers: a PC network's layers in blocks across them (`crate::pool`); backprop on
    /// the first. With `fixed` every worker takes part; otherwise a network too small to gain
    /// from the pool (by the plan's model) uses fewer, or only the first.
    Pool {
        /// The workers, the CPU worker first.
        links: Vec<Arc<WorkerLink>>,
        /// The pool's size was chosen (the `workers` setting), not left to the model.
        fixed: bool,
        /// How the workers pass boundary values (what the plan's model charges per message).
        exchange: Exchange,
    },
}

/// How a pool's workers pass each other boundary values.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Exchange {
    /// `MessageChannel` ports between browser workers (the native test ring is modelled alike).
    Ports,
    /// One `SharedArrayBuffer` with `Atomics.wait`/`notify` (a cross-origin isolated page).
    Shared,
}

impl Exchange {
    /// Milliseconds one boundary message costs.
    pub fn message_ms(self) -> f64 {
        match self {
            Exchange::Ports => POOL_MESSAGE_MS,
            Exchange::Shared => SHARED_MESSAGE_MS,
        }
    }

    /// Milliseconds an inference step's exchange waits on top of its messages.
    pub fn step_wait_ms(self) -> f64 {
        match self {
            Exchange::Ports => POOL_STEP_WAIT_MS,
            Exchange::Shared => SHARED_STEP_WAIT_MS,
        }
    }

    /// In words, for the page.
    pub fn describe(self) -> &'static str {
        match self {
            Exchange::Ports => "boundary values by message ports",
            Exchange::Shared => "boundary values through shared memory",
        }
    }
}

/// Milliseconds one boundary message costs between browser workers (posting, the browser's
/// routing, receiving), for choosing a pool's plan: 0.4 ms, measured in Chromium on a two-core
/// machine at B = 64, N = 128, where the browser's message routing competes with the workers for
/// the two cores.
pub const POOL_MESSAGE_MS: f64 = 0.4;

/// Milliseconds an inference step's exchange waits on top of its messages (two hops), measured
/// with them.
pub const POOL_STEP_WAIT_MS: f64 = 1.7;

/// Milliseconds one boundary message costs through shared memory (the encoding, a copy in, a copy
/// out), for choosing a pool's plan: measured in Chromium on a two-core machine at B = 64,
/// N = 128, H = 128, where a worker spent about 35 ms an iteration outside its blocks and its
/// waits over about 1 600 messages (the floats go as their bytes).
pub const SHARED_MESSAGE_MS: f64 = 0.02;

/// Milliseconds an inference step waits on a neighbour through shared memory on top of what the
/// plan's model counts (a futex wake-up).
pub const SHARED_STEP_WAIT_MS: f64 = 0.02;

/// A worker's arithmetic rate for the same model, GFLOP/s (wasm SIMD in Chromium: a layer's
/// step at B = 64, N = 128 took 0.375 ms).
pub const WORKER_GFLOPS: f64 = 11.0;

/// One run's network, optimiser and buffers, on some device.
#[derive(Debug)]
pub enum Backend {
    /// The reference implementation in `f32` on the CPU.
    Cpu(Box<Model<f32>>),
    /// The WGSL kernels through wgpu (native Vulkan/Metal/DX12, or the browser's WebGPU).
    Gpu(Box<GpuModel>),
    /// The CPU reference in a worker, pipelined like the GPU.
    Remote(Box<RemoteModel>),
    /// A PC network's blocks across a pool of workers, pipelined like the GPU.
    Pool(Box<PoolModel>),
}

/// One device per process, shared by every GPU run (created on first use; native only — the
/// page creates its context asynchronously and passes it to [`Backend::create`]).
#[cfg(not(target_arch = "wasm32"))]
pub fn shared_gpu() -> Result<Arc<GpuContext>, GpuError> {
    use std::sync::OnceLock;
    static CTX: OnceLock<Result<Arc<GpuContext>, GpuError>> = OnceLock::new();
    CTX.get_or_init(|| GpuContext::new_blocking().map(Arc::new)).clone()
}

impl Backend {
    /// Builds a rule's model from the shared seed (every rule starts from weights drawn the same
    /// way), on the configured backend; natively the GPU is [`shared_gpu`].
    #[cfg(not(target_arch = "wasm32"))]
    pub fn new(config: &RunConfig, rs: &RuleSettings) -> Result<Self, BackendError> {
        let device = match config.backend {
            BackendKind::Gpu => Device::Gpu(shared_gpu()?),
            BackendKind::Cpu => Device::Cpu,
        };
        pollster::block_on(Self::create(config, rs, &device))
    }

    /// Builds a rule's model: on the CPU (here, or in the worker `device` names), or on the GPU
    /// `device` names when the configuration asks for the GPU (an error if it names none). A
    /// configuration the GPU cannot hold is refused before the network is even drawn on the CPU.
    pub async fn create(config: &RunConfig, rs: &RuleSettings, device: &Device) -> Result<Self, BackendError> {
        let learning = config.learning(rs);
        let arch = config.arch(rs.rule);
        match (config.backend, device) {
            (BackendKind::Cpu, Device::Worker(link)) => {
                let model = RemoteModel::create(link.clone(), arch, config.seed, learning, rs.lr)?;
                Ok(Backend::Remote(Box::new(model)))
            }
            (BackendKind::Cpu, Device::Pool { links, fixed, exchange }) => {
                let plan = pool_plan(&arch, learning, config.batch, links.len(), *fixed, *exchange);
                if plan.workers <= 1 {
                    let model = RemoteModel::create(first_worker(links)?, arch, config.seed, learning, rs.lr)?;
                    return Ok(Backend::Remote(Box::new(model)));
                }
                let model = PoolModel::create(links.clone(), arch, config.seed, learning, rs.lr, config.batch, plan)?;
                Ok(Backend::Pool(Box::new(model)))
            }
            (BackendKind::Cpu, _) => {
                let net = Network::init(arch, config.seed);
                Ok(Backend::Cpu(Box::new(Model::new(net, learning, rs.lr, AdamConfig::default()))))
            }
            (BackendKind::Gpu, Device::Cpu | Device::Worker(_) | Device::Pool { .. }) => {
                Err(GpuError::Unsupported("no GPU device was given".into()).into())
            }
            (BackendKind::Gpu, Device::Gpu(ctx)) => {
                GpuModel::check_fits(ctx, &arch, config.batch, steps_of(learning))?;
                let net = Network::init(arch, config.seed);
                let mut model =
                    GpuModel::new(ctx.clone(), &net, config.batch, learning, rs.lr, AdamConfig::default()).await?;
                model.set_metrics_every(config.metrics_every);
                Ok(Backend::Gpu(Box::new(model)))
            }
        }
    }

    /// Rebuilds a GPU run from `checkpoint` (its weights, and Adam's state where it was kept) on
    /// the GPU `ctx`, with the rates of `rs`.
    pub async fn restore(
        ctx: Arc<GpuContext>,
        checkpoint: &crate::gpu::Checkpoint,
        config: &RunConfig,
        rs: &RuleSettings,
    ) -> Result<Self, BackendError> {
        let learning = config.learning(rs);
        let mut m = GpuModel::restore(ctx, checkpoint, config.batch, learning, rs.lr, AdamConfig::default()).await?;
        m.set_metrics_every(config.metrics_every);
        Ok(Backend::Gpu(Box::new(m)))
    }

    /// Rebuilds a pooled run from `checkpoint` on the workers `links` (after one was lost).
    pub fn restore_pool(
        links: &[Arc<WorkerLink>],
        (fixed, exchange): (bool, Exchange),
        checkpoint: &crate::gpu::Checkpoint,
        config: &RunConfig,
        rs: &RuleSettings,
    ) -> Result<Self, BackendError> {
        let learning = config.learning(rs);
        let plan = pool_plan(&checkpoint.net.arch, learning, config.batch, links.len(), fixed, exchange);
        if plan.workers <= 1 {
            // As `create` builds it: on the first worker alone (backprop; a network too small to split).
            let model = RemoteModel::restore(first_worker(links)?, checkpoint, learning, rs.lr)?;
            return Ok(Backend::Remote(Box::new(model)));
        }
        let m = PoolModel::restore(links.to_vec(), checkpoint, learning, rs.lr, config.batch, plan)?;
        Ok(Backend::Pool(Box::new(m)))
    }

    /// The GPU model of a GPU run (`None` on the CPU or in the worker): its adapter, dispatch
    /// counts and kernel timings.
    pub fn gpu(&self) -> Option<&GpuModel> {
        match self {
            Backend::Gpu(m) => Some(m),
            Backend::Cpu(_) | Backend::Remote(_) | Backend::Pool(_) => None,
        }
    }

    /// [`Backend::gpu`], mutably.
    pub fn gpu_mut(&mut self) -> Option<&mut GpuModel> {
        match self {
            Backend::Gpu(m) => Some(m),
            Backend::Cpu(_) | Backend::Remote(_) | Backend::Pool(_) => None,
        }
    }

    /// The pool model of a pooled run.
    pub fn pool(&self) -> Option<&PoolModel> {
        match self {
            Backend::Pool(m) => Some(m),
            _ => None,
        }
    }

    /// True when [`Backend::train_step`] submits and returns (the GPU, the worker); false when
    /// it computes the iteration before returning (the CPU here).
    pub fn is_pipelined(&self) -> bool {
        !matches!(self, Backend::Cpu(_))
    }

    /// True when the run lives in the CPU worker (or a pool of them).
    pub fn in_worker(&self) -> bool {
        matches!(self, Backend::Remote(_) | Backend::Pool(_))
    }

    /// The worker's own median milliseconds per iteration (`None` elsewhere, or before any).
    pub fn worker_ms(&self) -> Option<f64> {
        match self {
            Backend::Remote(m) => m.median_ms(),
            // The busiest worker's.
            Backend::Pool(m) => m.worker_ms().into_iter().flatten().max_by(f64::total_cmp),
            Backend::Cpu(_) | Backend::Gpu(_) => None,
        }
    }

    /// The weights and the latest activities, on the CPU (downloaded from the GPU; the worker
    /// sends only the first sample's rows).
    pub async fn network_and_activities(&mut self) -> Result<(Network<f32>, Vec<Mat<f32>>), BackendError> {
        match self {
            Backend::Gpu(m) => Ok((m.network().await?, m.activities().await?)),
            Backend::Cpu(m) => Ok((m.net.clone(), m.z.clone())),
            Backend::Remote(m) => Ok(m.snapshot().await?),
            Backend::Pool(m) => Ok(m.snapshot().await?),
        }
    }

    /// A short name for status lines.
    pub fn name(&self) -> &'static str {
        match self {
            Backend::Cpu(_) => "cpu",
            Backend::Gpu(_) => "gpu",
            Backend::Remote(_) => "cpu (worker)",
            Backend::Pool(_) => "cpu (pool)",
        }
    }

    /// One training iteration, the `iteration`-th (from 1), on the batch `(x, y)` of the training
    /// images at `indices`. Returns the reports that are ready, each with the iteration it
    /// describes: the CPU's at once; a GPU or worker run's when they come back (pipelined,
    /// usually an iteration or two later — see [`Backend::flush`]). With `align` a PC run's
    /// report compares its gradients with backprop's (on every backend; a page's GPU run whose
    /// two readbacks are both in flight skips it rather than wait).
    pub fn train_step(
        &mut self,
        iteration: usize,
        indices: &[usize],
        x: &Mat<f32>,
        y: &Mat<f32>,
        align: bool,
    ) -> Result<Vec<(usize, IterationReport)>, BackendError> {
        match self {
            Backend::Cpu(m) => Ok(vec![(iteration, m.train_step_aligned(x, y, align))]),
            Backend::Remote(m) => {
                m.submit_step(iteration, indices, align)?;
                Ok(m.ready_reports()?)
            }
            Backend::Pool(m) => {
                m.submit_step(iteration, indices, align)?;
                Ok(m.ready_reports()?)
            }
            Backend::Gpu(m) => {
                m.submit_step_aligned(iteration, x, y, align)?;
                Ok(m.ready_reports(false)?)
            }
        }
    }

    /// The reports that have come back since the last call, without waiting.
    pub fn poll(&mut self) -> Result<Vec<(usize, IterationReport)>, BackendError> {
        match self {
            Backend::Cpu(_) => Ok(Vec::new()),
            Backend::Gpu(m) => Ok(m.ready_reports(false)?),
            Backend::Remote(m) => Ok(m.ready_reports()?),
            Backend::Pool(m) => Ok(m.ready_reports()?),
        }
    }

    /// Every report still in flight (natively waits for the device; on the web awaits it).
    pub async fn flush(&mut self) -> Result<Vec<(usize, IterationReport)>, BackendError> {
        match self {
            Backend::Cpu(_) => Ok(Vec::new()),
            Backend::Gpu(m) => Ok(m.flush().await?),
            Backend::Remote(m) => Ok(m.flush().await?),
            Backend::Pool(m) => Ok(m.flush().await?),
        }
    }

    /// Test accuracy, confusion matrix and the strip's guesses: the feedforward pass, argmax
    /// against the labels, on the run's own device.
    pub async fn evaluate(&mut self, x: &Mat<f32>, labels: &[u8]) -> Result<Evaluation, BackendError> {
        match self {
            Backend::Cpu(m) => Ok(Evaluation::of(&predict(&m.net, x), labels)),
            Backend::Gpu(m) => Ok(m.evaluate(x, labels).await?),
            // The worker holds the same test images.
            Backend::Remote(m) => Ok(m.evaluate().await?),
            Backend::Pool(m) => Ok(m.evaluate().await?),
        }
    }

    /// Changes η_w and, for PC, η_z and `T`, keeping the weights and Adam's moments.
    pub fn set_rates(&mut self, lr: f64, learning: Learning) -> Result<(), BackendError> {
        match self {
            Backend::Cpu(m) => {
                m.adam.lr = lr;
                m.learning = learning;
            }
            Backend::Gpu(m) => {
                let eta_z = match learning {
                    Learning::Pc { eta_z, .. } => eta_z,
                    Learning::Bp => 0.0,
                };
                m.set_rates(lr, eta_z, steps_of(learning))?;
            }
            Backend::Remote(m) => m.set_rates(lr, learning)?,
            Backend::Pool(m) => m.set_rates(lr, learning)?,
        }
        Ok(())
    }

    /// The run's layers are split across a pool of workers.
    pub fn is_pool(&self) -> bool {
        matches!(self, Backend::Pool(_))
    }

    /// Iterations the device has not finished yet (always 0 on the CPU).
    pub fn in_flight(&self) -> usize {
        match self {
            Backend::Cpu(_) => 0,
            Backend::Gpu(m) => m.submitted().saturating_sub(m.completed()),
            Backend::Remote(m) => m.in_flight(),
            Backend::Pool(m) => m.in_flight(),
        }
    }

    /// A GPU or pooled run's training state on the page's side, and with `worker` a worker
    /// run's too (a pooled session's backprop on the pool's first worker, which a new pool
    /// rebuilds with the rest); `None` for the others: their state lives where a loss does not
    /// reach it, or recovery would start them afresh anyway.
    pub async fn checkpoint(&mut self, worker: bool) -> Option<Result<crate::gpu::Checkpoint, BackendError>> {
        match self {
            Backend::Gpu(m) => Some(m.checkpoint().await.map_err(Into::into)),
            Backend::Pool(m) => Some(m.checkpoint().await.map_err(Into::into)),
            Backend::Remote(m) if worker => Some(m.checkpoint().await.map_err(Into::into)),
            Backend::Cpu(_) | Backend::Remote(_) => None,
        }
    }

    /// Bytes this run holds on its device (0 on the CPU).
    pub fn device_bytes(&self) -> u64 {
        match self {
            Backend::Cpu(_) | Backend::Remote(_) | Backend::Pool(_) => 0,
            Backend::Gpu(m) => m.memory_bytes(),
        }
    }
}

/// The plan a pool of `workers` runs `arch` with (backprop: one worker); with `fixed` on all of
/// them, else on as many as the plan's model finds worth it, messages costing what `exchange`'s do.
pub fn pool_plan(
    arch: &crate::pcn::Arch,
    learning: Learning,
    batch: usize,
    workers: usize,
    fixed: bool,
    exchange: Exchange,
) -> crate::pool::Plan {
    match learning {
        Learning::Pc { steps, .. } => {
            // One layer's step: two (B, N) × (N, N) products.
            let layer_step_ms = 4.0 * (batch * arch.width * arch.width) as f64 / (WORKER_GFLOPS * 1e9) * 1e3;
            let (message, latency) =
                (exchange.message_ms() / layer_step_ms.max(1e-9), exchange.step_wait_ms() / layer_step_ms.max(1e-9));
            let w = crate::pool::Workload { hidden: arch.hidden, steps, message, latency };
            if fixed {
                crate::pool::Plan::for_workers(arch.layers(), workers, &w)
            } else {
                crate::pool::Plan::for_pool(arch.layers(), workers, &w)
            }
        }
        Learning::Bp => crate::pool::Plan::even(arch.layers(), 1),
    }
}

/// The pool's first worker, where runs that are not split go.
fn first_worker(links: &[Arc<WorkerLink>]) -> Result<Arc<WorkerLink>, RemoteError> {
    links.first().cloned().ok_or_else(|| RemoteError::Dead("the pool has no workers".into()))
}

fn steps_of(learning: Learning) -> usize {
    match learning {
        Learning::Pc { steps, .. } => steps,
        Learning::Bp => 0,
    }
}
