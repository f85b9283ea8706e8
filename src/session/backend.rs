//! Where one run's arithmetic happens. Enum dispatch (no trait objects) so an async GPU variant
//! can sit beside the CPU one.

use crate::config::{BackendKind, RuleSettings, RunConfig};
use crate::pcn::forward::predict;
use crate::pcn::learn::AdamConfig;
use crate::pcn::train::{IterationReport, Learning, Model};
use crate::pcn::{Mat, Network};
use thiserror::Error;

/// A backend that cannot be used here.
#[derive(Debug, Error, PartialEq)]
pub enum BackendError {
    /// The GPU backend is not part of this build.
    #[error("the GPU backend is not available in this build of pclab; use --backend cpu")]
    GpuUnavailable,
}

/// One run's network, optimiser and buffers, on some device.
#[derive(Clone, Debug)]
pub enum Backend {
    /// The reference implementation in `f32` on the CPU.
    Cpu(Box<Model<f32>>),
}

impl Backend {
    /// Builds a rule's model from the shared seed: every rule starts from weights drawn the same way.
    pub fn new(config: &RunConfig, rs: &RuleSettings) -> Result<Self, BackendError> {
        let net = Network::init(config.arch(rs.rule), config.seed);
        let learning = if rs.rule.is_pc() {
            Learning::Pc { eta_z: rs.eta_z, steps: config.inference_steps() }
        } else {
            Learning::Bp
        };
        match config.backend {
            BackendKind::Cpu => Ok(Backend::Cpu(Box::new(Model::new(net, learning, rs.lr, AdamConfig::default())))),
            BackendKind::Gpu => Err(BackendError::GpuUnavailable),
        }
    }

    /// A short name for status lines.
    pub fn name(&self) -> &'static str {
        match self {
            Backend::Cpu(_) => "cpu",
        }
    }

    /// One training iteration.
    pub fn train_step(&mut self, x: &Mat<f32>, y: &Mat<f32>) -> IterationReport {
        match self {
            Backend::Cpu(m) => m.train_step(x, y),
        }
    }

    /// `ŷ` of the feedforward pass.
    pub fn predict(&self, x: &Mat<f32>) -> Mat<f32> {
        match self {
            Backend::Cpu(m) => predict(&m.net, x),
        }
    }
}
