//! The page's plots by name: one list that the page, the charts, the presets and the query parser
//! share. Each plot's id is its test id, its canvas id suffix and its `plots=` value.

use std::fmt;
use std::str::FromStr;

/// A plot of the page.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum PlotId {
    /// Test accuracy by iteration, per rule.
    Accuracy,
    /// Training loss by iteration, per rule.
    Loss,
    /// `E_l` after inference, layer × iteration, with the latest profile.
    EnergyHeatmap,
    /// The latest iteration's energies by layer × inference step, and `F` by step.
    InferenceView,
    /// RMS of `z_l` after the feedforward pass, by layer.
    ActivationRms,
    /// `‖ΔW_l‖ / ‖W_l‖` of the latest update, by layer.
    WeightChange,
    /// κ at initialisation against depth.
    KappaSweep,
    /// κ of each PC run over training.
    KappaTraining,
    /// Minimum training loss over the (η_w, η_z) grid at two depths.
    LrGrid,
    /// PC's weight gradients against backprop's over training: median cosine over layers, per PC rule.
    Alignment,
    /// The latest aligned iteration's cosines by layer × inference step.
    AlignmentSteps,
    /// Median cosine and `F*/ℓ̃` at equilibrium against `N/H`, standard PC and μPC.
    AlignmentSweep,
    /// Each rule's confusion matrix at the latest evaluation.
    Confusion,
}

impl PlotId {
    /// Every plot, in page order (also the index of [`PlotId::index`]).
    pub const ALL: [PlotId; 13] = [
        PlotId::Accuracy,
        PlotId::Loss,
        PlotId::EnergyHeatmap,
        PlotId::InferenceView,
        PlotId::ActivationRms,
        PlotId::WeightChange,
        PlotId::KappaSweep,
        PlotId::KappaTraining,
        PlotId::LrGrid,
        PlotId::Alignment,
        PlotId::AlignmentSteps,
        PlotId::AlignmentSweep,
        PlotId::Confusion,
    ];

    /// How many plots there are.
    pub const COUNT: usize = Self::ALL.len();

    /// The plots drawn from a session's own histories (what `pclab train --plots` writes).
    pub const SESSION: [PlotId; 8] = [
        PlotId::Accuracy,
        PlotId::Loss,
        PlotId::EnergyHeatmap,
        PlotId::ActivationRms,
        PlotId::WeightChange,
        PlotId::Alignment,
        PlotId::AlignmentSteps,
        PlotId::Confusion,
    ];

    /// The id: test id, canvas suffix, `plots=` value, file name of an export.
    pub const fn id(self) -> &'static str {
        match self {
            PlotId::Accuracy => "accuracy",
            PlotId::Loss => "loss",
            PlotId::EnergyHeatmap => "energy-heatmap",
            PlotId::InferenceView => "inference-view",
            PlotId::ActivationRms => "activation-rms",
            PlotId::WeightChange => "weight-change",
            PlotId::KappaSweep => "kappa-sweep",
            PlotId::KappaTraining => "kappa-training",
            PlotId::LrGrid => "lr-grid",
            PlotId::Alignment => "alignment",
            PlotId::AlignmentSteps => "alignment-steps",
            PlotId::AlignmentSweep => "alignment-sweep",
            PlotId::Confusion => "confusion",
        }
    }

    /// Position in [`PlotId::ALL`].
    pub const fn index(self) -> usize {
        self as usize
    }

    /// Heatmaps take a taller canvas.
    pub fn tall(self) -> bool {
        matches!(
            self,
            PlotId::EnergyHeatmap | PlotId::InferenceView | PlotId::LrGrid | PlotId::AlignmentSteps | PlotId::Confusion
        )
    }

    /// Every id, comma-separated (for messages).
    pub fn list() -> String {
        Self::ALL.map(PlotId::id).join(", ")
    }
}

impl fmt::Display for PlotId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.id())
    }
}

impl FromStr for PlotId {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Self::ALL
            .into_iter()
            .find(|p| p.id() == s)
            .ok_or_else(|| format!("unknown plot '{s}': the plots are {}", Self::list()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ids_round_trip_and_indices_follow_the_list() {
        for (i, p) in PlotId::ALL.into_iter().enumerate() {
            assert_eq!(p.index(), i);
            assert_eq!(p.id().parse::<PlotId>(), Ok(p));
        }
        let e = "pie".parse::<PlotId>().unwrap_err();
        assert!(e.contains("pie") && e.contains("lr-grid") && e.contains("alignment-steps"), "{e}");
    }
}
