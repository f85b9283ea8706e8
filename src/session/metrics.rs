//! Typed samples a session emits; whoever shows them (terminal, JSON lines, charts) reads these.

use super::run::AlignmentPoint;
use crate::pcn::alignment::Profile;
use crate::pcn::train::IterationReport;
use serde::Serialize;

/// One rule's training iteration.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct IterationSample {
    /// Rule name (`mupc`, `sp`, `bp_mup`, `bp_sp`).
    pub rule: &'static str,
    /// Iteration, from 1.
    pub iteration: usize,
    /// Epoch the batch came from, from 0.
    pub epoch: usize,
    /// Wall-clock milliseconds of the session step in which this report arrived (for a CPU run,
    /// its iteration; a GPU run is pipelined, so its throughput is `Run::total_ms / iterations`).
    pub ms: f64,
    /// What the iteration measured.
    pub report: IterationReport,
}

/// A test-set evaluation.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct EvalSample {
    /// Rule name.
    pub rule: &'static str,
    /// Iterations trained when evaluated.
    pub iteration: usize,
    /// Percent of the 10 000 test images classified correctly (feedforward only).
    pub test_accuracy: f64,
    /// Training loss of the latest iteration.
    pub train_loss: f64,
    /// `confusion[label][guess]` over the test images.
    pub confusion: Vec<Vec<u32>>,
}

/// PC's weight gradients against backprop's at one aligned iteration of one rule (the last
/// inference step's, per layer; the `alignment` line of the CLI's metrics).
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct AlignmentSample {
    /// Rule name.
    pub rule: &'static str,
    /// The iteration.
    pub iteration: usize,
    /// Layers `1 … L` after inference: cosine and norm ratio, `null` where PC has no gradient.
    pub layers: Profile,
    /// Median, least and greatest cosine over the layers, and `F`/`ℓ̃` (`None`: no layer has a
    /// PC gradient).
    #[serde(flatten)]
    pub summary: Option<AlignmentPoint>,
    /// `ℓ̃`, backprop's loss on the energy's scale, at the feedforward point.
    pub bp_loss: f64,
    /// Inference steps the profile comes after.
    pub steps: usize,
}

/// Everything a session reports.
#[derive(Clone, Debug, PartialEq, Serialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum Event {
    /// A training iteration of one rule.
    Iteration(IterationSample),
    /// A test-set evaluation of one rule.
    Eval(EvalSample),
    /// PC's gradients against backprop's at an aligned iteration of one rule.
    Alignment(AlignmentSample),
    /// A rule's energy, loss or weights became NaN or ±∞; that run stops.
    Diverged {
        /// Rule name.
        rule: &'static str,
        /// The iteration where it happened.
        iteration: usize,
        /// The first layer whose values became non-finite, when the report says.
        layer: Option<usize>,
        /// That layer and quantity in words.
        site: String,
    },
    /// A rule's backend failed; that run stops.
    Failed {
        /// Rule name.
        rule: &'static str,
        /// The iteration where it happened.
        iteration: usize,
        /// What went wrong.
        message: String,
    },
}
