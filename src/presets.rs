//! The paper's experiments and the lecture's demonstrations as named configurations (docs/maths.md §9),
//! shared by the CLI (`--preset ID`) and the page (`?preset=ID`): each has an id, a title, a
//! paragraph saying what it shows, the plots that carry it, and its configuration.

use crate::config::{BackendKind, Rule, RuleSettings, RunConfig};
use crate::pcn::network::Param;
use crate::pcn::Activation;
use crate::plot_id::PlotId;
use std::fmt;
use std::str::FromStr;

/// Depths of the paper's Fig. 1.
pub const FIG1_DEPTHS: [usize; 5] = [8, 16, 32, 64, 128];

/// The sustained rate assumed of a laptop GPU training in the page, GFLOP/s, for choosing how
/// soon a preset's first test evaluation comes.
pub const LAPTOP_GFLOPS: f64 = 500.0;

/// A preset's first test evaluation comes within this many seconds at [`LAPTOP_GFLOPS`], so a
/// room sees accuracy within the first minute.
pub const FIRST_EVAL_S: f64 = 45.0;

/// The evaluation intervals a preset may use, at most 50 (a room should not wait on a slow
/// machine either): each divides 300, so the paper's readings at
/// 300 / 600 / 900 iterations are among the evaluations.
const EVAL_EVERY: [usize; 4] = [50, 25, 20, 10];

/// The depths the `conditioning` preset sweeps κ up to.
pub const SWEEP_DEPTH: usize = 32;

/// The two depths and the width of the `lr-transfer` preset's learning-rate grid.
pub const GRID_DEPTHS: [usize; 2] = [4, 16];
/// See [`GRID_DEPTHS`].
pub const GRID_WIDTH: usize = 32;

/// A named configuration.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Preset {
    /// Fig. 1, ReLU, N = 512, one epoch, μPC vs standard PC vs BP Depth-μP, at depth `H`.
    Fig1Relu(usize),
    /// The same at N = 128, for slower machines (labelled as such).
    Fig1ReluSmall(usize),
    /// The μPC tutorial: N = 128, 29 hidden layers, T = 30, 900 iterations.
    Tutorial,
    /// PC (μPC) against backprop (Depth-μP) at 8 layers.
    PcVsBp,
    /// Standard PC's forward pass blowing up with depth, against μPC's.
    Explode,
    /// κ of the inference Hessian against depth (the sweep).
    Conditioning,
    /// μPC's rates from shallow networks used unchanged at 128 layers.
    LrTransfer,
}

/// What the page does on top of training when a preset is chosen.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum PresetAction {
    /// Nothing more.
    Train,
    /// Start the κ sweep.
    KappaSweep,
    /// Start the learning-rate grid.
    LrGrid,
}

impl Preset {
    /// Every preset, in the page's menu order.
    pub fn all() -> Vec<Preset> {
        let mut v = vec![Preset::PcVsBp, Preset::Tutorial, Preset::Explode, Preset::Conditioning, Preset::LrTransfer];
        v.extend(FIG1_DEPTHS.map(Preset::Fig1Relu));
        v.extend(FIG1_DEPTHS.map(Preset::Fig1ReluSmall));
        v
    }

    /// The id of the CLI and the URL.
    pub fn id(self) -> String {
        match self {
            Preset::Fig1Relu(h) => format!("fig1-relu-h{h}"),
            Preset::Fig1ReluSmall(h) => format!("fig1-relu-h{h}-small"),
            Preset::Tutorial => "tutorial".into(),
            Preset::PcVsBp => "pc-vs-bp".into(),
            Preset::Explode => "explode".into(),
            Preset::Conditioning => "conditioning".into(),
            Preset::LrTransfer => "lr-transfer".into(),
        }
    }

    /// The menu's title (its numbers from [`Preset::config`]).
    pub fn title(self) -> String {
        let c = self.config(60_000);
        match self {
            Preset::Fig1Relu(h) => format!("Fig. 1: μPC vs standard PC vs BP at depth {h} (N = 512)"),
            Preset::Fig1ReluSmall(h) => {
                format!("Fig. 1 at depth {h}, smaller width N = 128 (for slower machines; not the paper's size)")
            }
            Preset::Tutorial => format!("Tutorial: μPC with {} hidden layers ({} weight layers)", c.depth, c.depth + 1),
            Preset::PcVsBp => format!("PC vs BP at {} hidden layers", c.depth),
            Preset::Explode => format!("Why standard PC explodes: activation scale by layer at {} layers", c.depth),
            Preset::Conditioning => format!("Ill-conditioning grows with depth (κ sweep, depth 1 … {SWEEP_DEPTH})"),
            Preset::LrTransfer => format!("LR transfer: μPC's shallow rates at {} layers", c.depth),
        }
    }

    /// The paragraph shown when the preset is chosen: what runs, what to look at, what the paper
    /// found. Every number about the run is written from [`Preset::config`].
    pub fn explanation(self) -> String {
        let c = self.config(60_000);
        let rate = |rule: Rule| c.rules.iter().find(|r| r.rule == rule).map(|r| (r.lr, r.eta_z));
        let (mupc, sp) = (Rule::Pc(Param::Mupc), Rule::Pc(Param::Sp));
        let (m, s) = (rate(mupc).unwrap_or_default(), rate(sp).unwrap_or_default());
        let every = format!("Test accuracy is measured every {} iterations.", c.eval_every);
        match self {
            Preset::Fig1Relu(h) | Preset::Fig1ReluSmall(h) => {
                let small = matches!(self, Preset::Fig1ReluSmall(_));
                let sp = match h {
                    8 => "≈ 65 / 80 / 82 %",
                    16 | 32 => "≈ 52 / 61 / 67 % at 32 layers",
                    _ => "diverges (chance accuracy)",
                };
                format!(
                    "The μPC paper's Fig. 1 at {h} hidden layers: μPC, standard PC and backprop with Depth-μP \
                     train the same residual ReLU network{} on the same batches for one epoch (937 iterations of 64 \
                     images), with the paper's rates for this depth. Watch test accuracy: the paper reads μPC at \
                     ≈ 92 / 93 / 94 % after 300 / 600 / 900 iterations at every depth, on top of backprop, while \
                     standard PC {sp}. The activation-RMS plot shows why: standard PC's forward pass grows with depth, \
                     μPC's stays at scale 1.{}",
                    if small { " (here only 128 wide)" } else { ", 512 units wide" },
                    if small {
                        " This smaller-width variant runs on slower machines; its numbers differ from the paper's."
                    } else {
                        " At N = 512 this is meant for a real GPU; a software adapter is very slow."
                    }
                ) + " "
                    + &every
            }
            Preset::Tutorial => format!(
                "The μPC tutorial's network: {} hidden layers ({} weight layers) of {} ReLU units with identity \
                 skips, T = {} inference steps, η_w = {} (Adam), η_z = {}, {} iterations. The tutorial reports 85.8 % \
                 test accuracy at iteration 100, 90.8 % at 300 and 93.3 % at 900. The energy heatmap shows the error \
                 concentrated in the top layers: with η_z = {} and B = {} it decays with distance from the output, \
                 so the lowest layers barely move. {every}",
                c.depth,
                c.depth + 1,
                c.width,
                c.inference_steps(),
                m.0,
                m.1,
                c.iterations,
                m.1,
                c.batch
            ),
            Preset::PcVsBp => format!(
                "Predictive coding against backprop on the same {}-hidden-layer residual network (N = {}): μPC \
                 relaxes the activities for T = {} steps and then updates the weights from local errors; backprop \
                 (with the same Depth-μP scalings) computes exact gradients. Both learn MNIST at about the same \
                 rate per iteration; PC costs T inference steps per iteration. Step through inference to watch \
                 the error move down one layer per step. {every}",
                c.depth,
                c.width,
                c.inference_steps()
            ),
            Preset::Explode => format!(
                "Standard PC against μPC at {} hidden layers (N = {}). Look at the activation RMS by layer: with \
                 standard initialisation each residual block adds about 1/6 of the variance with ReLU, so the \
                 forward pass grows like (1 + 1/6)^(l/2) and explodes beyond ~60 layers; μPC scales each branch by \
                 1/√(N·L), 1/√L on top of fan-in scaling, and stays at scale 1. Standard PC's loss is orders of \
                 magnitude higher and it fails to train — the paper's first finding. {every}",
                c.depth, c.width
            ),
            Preset::Conditioning => format!(
                "The condition number κ = |λ_max| / |λ_min| of the inference landscape (the Hessian of one image's \
                 energy over all activities) at initialisation, against depth 1 … {SWEEP_DEPTH} at width {}: \
                 standard PC with skips worst, without skips best, μPC in between and still growing (the sweep's \
                 menu goes to 128). The paper's point: μPC fixes the forward pass, not the conditioning of \
                 inference, which also worsens during training (κ over training, beside it, for the {} hidden-layer \
                 networks training here).",
                c.width, c.depth
            ),
            Preset::LrTransfer => format!(
                "μPC at {} hidden layers (N = {}) with the rates tuned for shallow networks (η_w = {}, η_z = {}): \
                 Depth-μP makes the best rates nearly independent of width and depth, so the deep network trains \
                 with no new tuning (the paper's Fig. 1 left shows the same minimum-loss region from 16 to 128 \
                 layers). Standard PC runs beside it with its own shallow rates (η_w = {}, η_z = {}). The \
                 learning-rate grid trains small networks (N = {GRID_WIDTH}) at {} and {} hidden layers over a grid \
                 of (η_w, η_z) and shows the minimum training loss of each side by side: under μPC the best cells \
                 sit in the same place. {every}",
                c.depth, c.width, m.0, m.1, s.0, s.1, GRID_DEPTHS[0], GRID_DEPTHS[1]
            ),
        }
    }

    /// The plots that carry this preset's point (the presentation mode's default selection).
    pub fn plots(self) -> &'static [PlotId] {
        use PlotId::*;
        match self {
            Preset::Fig1Relu(_) | Preset::Fig1ReluSmall(_) => &[Accuracy, Loss, ActivationRms],
            Preset::Tutorial => &[Accuracy, EnergyHeatmap, InferenceView],
            Preset::PcVsBp => &[Accuracy, Loss, InferenceView],
            Preset::Explode => &[ActivationRms, Loss, Accuracy],
            Preset::Conditioning => &[KappaSweep, KappaTraining],
            Preset::LrTransfer => &[LrGrid, Accuracy, Loss],
        }
    }

    /// What the page starts besides training.
    pub fn action(self) -> PresetAction {
        match self {
            Preset::Conditioning => PresetAction::KappaSweep,
            Preset::LrTransfer => PresetAction::LrGrid,
            _ => PresetAction::Train,
        }
    }

    /// The configuration (`train_len` fixes "one epoch"), with its evaluation interval chosen so
    /// that the first evaluation comes within [`FIRST_EVAL_S`] on a laptop GPU.
    pub fn config(self, train_len: usize) -> RunConfig {
        let mut c = self.base_config(train_len);
        let s = c.seconds_per_iteration(LAPTOP_GFLOPS);
        c.eval_every = EVAL_EVERY.into_iter().find(|&k| k as f64 * s <= FIRST_EVAL_S).unwrap_or(10);
        c
    }

    fn base_config(self, train_len: usize) -> RunConfig {
        let rs = |rule, lr, eta_z| RuleSettings { rule, lr, eta_z };
        let (mupc, sp, bp) = (Rule::Pc(Param::Mupc), Rule::Pc(Param::Sp), Rule::Bp(Param::Mupc));
        let base = RunConfig {
            width: 128,
            depth: 8,
            act: Activation::Relu,
            skips: true,
            rules: vec![rs(mupc, 0.1, 0.5)],
            steps: None,
            batch: 64,
            iterations: 900,
            eval_every: 100,
            seed: 0,
            backend: BackendKind::Cpu,
            metrics_every: 1,
            align_every: 0,
        };
        match self {
            Preset::Fig1Relu(h) | Preset::Fig1ReluSmall(h) => {
                let [m, s, b] = fig1_rates(Activation::Relu, h);
                RunConfig {
                    width: if matches!(self, Preset::Fig1Relu(_)) { 512 } else { 128 },
                    depth: h,
                    rules: vec![rs(mupc, m.0, m.1), rs(sp, s.0, s.1), rs(bp, b.0, b.1)],
                    iterations: train_len / base.batch,
                    eval_every: 300,
                    ..base
                }
            }
            Preset::Tutorial => RunConfig { depth: 29, steps: Some(30), ..base },
            Preset::PcVsBp => RunConfig { rules: vec![rs(mupc, 0.1, 0.5), rs(bp, 1e-2, 0.5)], ..base },
            Preset::Explode => RunConfig {
                depth: 64,
                rules: vec![rs(sp, 1e-1, 1e-2), rs(mupc, 0.1, 0.5)],
                iterations: 300,
                eval_every: 50,
                ..base
            },
            Preset::Conditioning => RunConfig {
                width: 64,
                depth: 16,
                rules: vec![rs(sp, 1e-2, 1e-2), rs(mupc, 0.1, 0.5)],
                iterations: 300,
                eval_every: 50,
                ..base
            },
            Preset::LrTransfer => {
                RunConfig { depth: 128, rules: vec![rs(mupc, 0.1, 0.5), rs(sp, 1e-2, 1e-1)], eval_every: 100, ..base }
            }
        }
    }
}

/// The paper's η_w of the learning-rate transfer grids (docs/maths.md §9).
pub const PAPER_LRS: [f64; 4] = [0.5, 0.1, 0.05, 0.01];
/// The paper's η_z of the learning-rate transfer grids (docs/maths.md §9).
pub const PAPER_ETA_ZS: [f64; 11] = [1000.0, 500.0, 100.0, 50.0, 10.0, 5.0, 1.0, 0.5, 0.1, 0.05, 0.01];

/// The paper's Fig. 1 rates at depth `h` for activation `act`: `(μPC, standard PC, BP Depth-μP)`,
/// each `(η_w, η_z)` (BP's η_z is unused). ReLU from the figure; linear and tanh from its appendix.
pub fn fig1_rates(act: Activation, h: usize) -> [(f64, f64); 3] {
    match act {
        Activation::Linear => [(0.1, 1.0), (1e-2, 1e-2), (1e-3, 0.5)],
        Activation::Tanh => [(0.1, 1.0), (1e-2, if h <= 16 { 1e-2 } else { 1e-1 }), (1e-2, 0.5)],
        _ => {
            let sp = match h {
                0..=8 => (1e-2, 1e-1),
                9..=32 => (1e-2, 1e-2),
                _ => (1e-1, 1e-2),
            };
            [(0.1, 0.5), sp, (1e-2, 0.5)]
        }
    }
}

impl fmt::Display for Preset {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.id())
    }
}

/// A preset id nobody knows; the message lists the known ones.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error("unknown preset '{0}': expected one of {list}", list = ids())]
pub struct UnknownPreset(pub String);

impl FromStr for Preset {
    type Err = UnknownPreset;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Preset::all().into_iter().find(|p| p.id() == s).ok_or_else(|| UnknownPreset(s.to_string()))
    }
}

/// Every preset id, comma-separated (for messages).
pub fn ids() -> String {
    Preset::all().iter().map(|p| p.id()).collect::<Vec<_>>().join(", ")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_preset_is_valid_and_its_id_round_trips() {
        for p in Preset::all() {
            assert_eq!(p.id().parse::<Preset>(), Ok(p));
            assert_eq!(p.config(60_000).validate(60_000), Ok(()), "{p}");
            assert!(p.explanation().len() > 200 && !p.title().is_empty() && !p.plots().is_empty());
        }
        for id in ["fig1-relu-h8", "fig1-relu-h128", "tutorial", "pc-vs-bp", "explode", "conditioning", "lr-transfer"] {
            assert!(id.parse::<Preset>().is_ok(), "{id}");
        }
        let e = "fig1-relu-h9".parse::<Preset>().unwrap_err().to_string();
        assert!(e.contains("unknown preset 'fig1-relu-h9'") && e.contains("lr-transfer"), "{e}");
        let fig = Preset::Fig1Relu(64).config(60_000);
        assert_eq!(
            (fig.width, fig.depth, fig.iterations, fig.rules[1].lr, fig.rules[1].eta_z),
            (512, 64, 937, 0.1, 0.01)
        );
        assert_eq!(Preset::Fig1ReluSmall(64).config(60_000).width, 128);
    }

    #[test]
    fn preset_texts_carry_their_configurations_numbers_and_accuracy_comes_within_a_minute() {
        for p in Preset::all() {
            let c = p.config(60_000);
            let (title, text) = (p.title(), p.explanation());
            let words = format!("{title} {text}");
            assert!(words.contains(&c.depth.to_string()), "{p}: the depth {} is not in “{words}”", c.depth);
            let s = c.seconds_per_iteration(LAPTOP_GFLOPS);
            assert!(
                c.eval_every as f64 * s <= FIRST_EVAL_S || c.eval_every == 10,
                "{p}: first evaluation after {} s",
                c.eval_every as f64 * s
            );
            assert_eq!(300 % c.eval_every, 0, "{p}: 300 / 600 / 900 are evaluations");
            if p.action() == PresetAction::Train {
                assert!(text.contains(&format!("every {} iterations", c.eval_every)), "{p}: {text}");
            }
        }
        let t = Preset::Tutorial;
        assert!(t.title().contains("29 hidden layers (30 weight layers)"), "{}", t.title());
        assert!(Preset::Conditioning.explanation().contains(&format!("1 … {SWEEP_DEPTH}")));
        assert!(Preset::LrTransfer
            .explanation()
            .contains(&format!("at {} and {} hidden layers", GRID_DEPTHS[0], GRID_DEPTHS[1])));
    }

    #[test]
    fn presets_parse_by_name() {
        let t = Preset::Tutorial.config(60_000);
        assert_eq!((t.width, t.depth, t.inference_steps(), t.iterations), (128, 29, 30, 900));
        let f = Preset::Fig1Relu(64).config(60_000);
        assert_eq!((f.iterations, f.inference_steps(), f.rules[1].lr, f.rules[1].eta_z), (937, 64, 0.1, 0.01));
    }
}
