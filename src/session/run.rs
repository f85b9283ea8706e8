//! One learning rule's run: its backend state, whether it is still alive, and bounded histories.

use super::backend::Backend;
use super::history::Series;
use crate::config::RuleSettings;
use crate::pcn::train::IterationReport;

/// Points kept per history series.
pub const HISTORY_POINTS: usize = 2048;

/// Whether a run still trains.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum RunStatus {
    /// Training.
    Running,
    /// Stopped: an energy, the loss or a weight became NaN or ±∞ at this iteration.
    Diverged {
        /// Iteration of divergence.
        iteration: usize,
        /// The first layer whose values became non-finite, when the report says.
        layer: Option<usize>,
        /// That layer and quantity in words ("layer 12 (its feedforward activity z_12 …)").
        site: String,
    },
    /// Stopped: its backend failed (a lost GPU device, a failed readback).
    Failed {
        /// Iteration of the failure.
        iteration: usize,
        /// What went wrong.
        message: String,
    },
}

/// In words, for the page's rule rows and the CLI's summary: "training", "diverged at iteration
/// 120, layer 7", "failed at iteration 3: …".
impl std::fmt::Display for RunStatus {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            RunStatus::Running => f.write_str("training"),
            RunStatus::Diverged { iteration, layer: Some(l), .. } => {
                write!(f, "diverged at iteration {iteration}, layer {l}")
            }
            RunStatus::Diverged { iteration, .. } => write!(f, "diverged at iteration {iteration}"),
            RunStatus::Failed { iteration, message } => write!(f, "failed at iteration {iteration}: {message}"),
        }
    }
}

/// One rule's run.
#[derive(Debug)]
pub struct Run {
    /// The rule and its rates.
    pub settings: RuleSettings,
    /// Its network and optimiser.
    pub backend: Backend,
    /// Alive or diverged.
    pub status: RunStatus,
    /// Training loss per iteration.
    pub loss: Series,
    /// Test accuracy (percent) at each evaluation.
    pub accuracy: Series,
    /// PC: the layer energies `E_1 … E_L` after inference, per iteration (the energy heatmap).
    pub energies: Series<Vec<f64>>,
    /// The latest iteration's report.
    pub last: Option<IterationReport>,
    /// Milliseconds of every iteration so far.
    pub total_ms: f64,
}

impl Run {
    /// A fresh run.
    pub fn new(settings: RuleSettings, backend: Backend) -> Self {
        Run {
            settings,
            backend,
            status: RunStatus::Running,
            loss: Series::new(HISTORY_POINTS),
            accuracy: Series::new(HISTORY_POINTS),
            energies: Series::new(HISTORY_POINTS),
            last: None,
            total_ms: 0.0,
        }
    }

    /// The rule's name.
    pub fn name(&self) -> &'static str {
        self.settings.rule.name()
    }

    /// True while training.
    pub fn is_running(&self) -> bool {
        self.status == RunStatus::Running
    }
}
