//! One learning rule's run: its backend state, whether it is still alive, and bounded histories.

use super::backend::Backend;
use super::history::Series;
use crate::config::RuleSettings;
use crate::data::Evaluation;
use crate::pcn::alignment::{cosine_summary, AlignmentReport};
use crate::pcn::train::IterationReport;
use serde::{Deserialize, Serialize};

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

/// One aligned iteration, over the layers that have a PC gradient after inference.
#[derive(Clone, Copy, Debug, PartialEq, Serialize, Deserialize)]
pub struct AlignmentPoint {
    /// The median cosine.
    pub median: f64,
    /// The least.
    pub min: f64,
    /// The greatest.
    pub max: f64,
    /// `F` after inference over the BP loss `ℓ̃` (both on the energy's scale).
    pub energy_ratio: f64,
}

impl AlignmentPoint {
    /// The summary of `report`'s last profile (`None` when no layer has a PC gradient).
    pub fn of(report: &AlignmentReport) -> Option<Self> {
        let (median, min, max) = cosine_summary(report.last())?;
        Some(AlignmentPoint { median, min, max, energy_ratio: report.energy_ratio() })
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
    /// PC runs with alignment on: PC's gradients against backprop's, summarised over layers, at
    /// each aligned iteration.
    pub alignment: Series<AlignmentPoint>,
    /// The latest aligned iteration and its full report (every layer after every inference step).
    pub last_alignment: Option<(usize, AlignmentReport)>,
    /// The latest test evaluation: confusion matrix and the strip's guesses.
    pub last_eval: Option<(usize, Evaluation)>,
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
            alignment: Series::new(HISTORY_POINTS),
            last_alignment: None,
            last_eval: None,
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
