//! Where one run's arithmetic happens. Enum dispatch (no trait objects) so an async GPU variant
//! can sit beside the CPU one.

use crate::config::{BackendKind, RuleSettings, RunConfig};
use crate::gpu::GpuError;
use crate::pcn::forward::predict;
use crate::pcn::learn::AdamConfig;
use crate::pcn::train::{IterationReport, Learning, Model};
use crate::pcn::{Mat, Network};
use crate::session::session::accuracy;
use thiserror::Error;

/// A backend that cannot be used, or failed.
#[derive(Debug, Error, Clone, PartialEq)]
pub enum BackendError {
    /// The GPU said no.
    #[error(transparent)]
    Gpu(#[from] GpuError),
}

/// One run's network, optimiser and buffers, on some device.
#[derive(Debug)]
pub enum Backend {
    /// The reference implementation in `f32` on the CPU.
    Cpu(Box<Model<f32>>),
    /// The WGSL kernels through wgpu (native for now).
    #[cfg(not(target_arch = "wasm32"))]
    Gpu(Box<crate::gpu::GpuModel>),
}

/// One device per process, shared by every GPU run (created on first use).
#[cfg(not(target_arch = "wasm32"))]
pub fn shared_gpu() -> Result<std::sync::Arc<crate::gpu::GpuContext>, GpuError> {
    use std::sync::{Arc, OnceLock};
    static CTX: OnceLock<Result<Arc<crate::gpu::GpuContext>, GpuError>> = OnceLock::new();
    CTX.get_or_init(|| crate::gpu::GpuContext::new_blocking().map(Arc::new)).clone()
}

impl Backend {
    /// Builds a rule's model from the shared seed: every rule starts from weights drawn the same way.
    pub fn new(config: &RunConfig, rs: &RuleSettings) -> Result<Self, BackendError> {
        let learning = config.learning(rs);
        // Refuse what the GPU cannot hold before the network is even drawn on the CPU.
        #[cfg(not(target_arch = "wasm32"))]
        if config.backend == BackendKind::Gpu {
            let steps = match learning {
                Learning::Pc { steps, .. } => steps,
                Learning::Bp => 0,
            };
            crate::gpu::GpuModel::check_fits(&*shared_gpu()?, &config.arch(rs.rule), config.batch, steps)?;
        }
        let net = Network::init(config.arch(rs.rule), config.seed);
        match config.backend {
            BackendKind::Cpu => Ok(Backend::Cpu(Box::new(Model::new(net, learning, rs.lr, AdamConfig::default())))),
            BackendKind::Gpu => Self::new_gpu(config, rs, &net, learning),
        }
    }

    #[cfg(not(target_arch = "wasm32"))]
    fn new_gpu(
        config: &RunConfig,
        rs: &RuleSettings,
        net: &Network<f32>,
        learning: Learning,
    ) -> Result<Self, BackendError> {
        let ctx = shared_gpu()?;
        let model = pollster::block_on(crate::gpu::GpuModel::new(
            ctx,
            net,
            config.batch,
            learning,
            rs.lr,
            AdamConfig::default(),
        ))?;
        Ok(Backend::Gpu(Box::new(model)))
    }

    #[cfg(target_arch = "wasm32")]
    fn new_gpu(_: &RunConfig, _: &RuleSettings, _: &Network<f32>, _: Learning) -> Result<Self, BackendError> {
        Err(GpuError::Unsupported("the GPU backend does not run in the browser yet".into()).into())
    }

    /// A short name for status lines.
    pub fn name(&self) -> &'static str {
        match self {
            Backend::Cpu(_) => "cpu",
            #[cfg(not(target_arch = "wasm32"))]
            Backend::Gpu(_) => "gpu",
        }
    }

    /// One training iteration, the `iteration`-th (from 1). Returns the reports that are ready,
    /// each with the iteration it describes: the CPU's at once; a GPU run's when their readback
    /// lands (pipelined, usually an iteration or two later — see [`Backend::flush`]).
    pub fn train_step(
        &mut self,
        iteration: usize,
        x: &Mat<f32>,
        y: &Mat<f32>,
    ) -> Result<Vec<(usize, IterationReport)>, BackendError> {
        match self {
            Backend::Cpu(m) => Ok(vec![(iteration, m.train_step(x, y))]),
            #[cfg(not(target_arch = "wasm32"))]
            Backend::Gpu(m) => {
                m.submit_step(iteration, x, y)?;
                Ok(m.ready_reports(false)?)
            }
        }
    }

    /// Every report still in flight (waits for the device natively).
    pub fn flush(&mut self) -> Result<Vec<(usize, IterationReport)>, BackendError> {
        match self {
            Backend::Cpu(_) => Ok(Vec::new()),
            #[cfg(not(target_arch = "wasm32"))]
            Backend::Gpu(m) => Ok(m.ready_reports(true)?),
        }
    }

    /// Test accuracy in percent: the feedforward pass, argmax against the labels, on the run's
    /// own device.
    pub fn accuracy(&mut self, x: &Mat<f32>, labels: &[u8]) -> Result<f64, BackendError> {
        match self {
            Backend::Cpu(m) => Ok(accuracy(&predict(&m.net, x), labels)),
            #[cfg(not(target_arch = "wasm32"))]
            Backend::Gpu(m) => Ok(pollster::block_on(m.accuracy(x, labels))?),
        }
    }
}
