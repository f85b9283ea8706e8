//! Configuration of a comparison: the network, the rules that train it, the schedule; validation
//! with messages that say what is allowed (the paper's presets, docs/maths.md §9, build on it in `presets`).

use crate::pcn::network::{Arch, Param};
use crate::pcn::train::Learning;
use crate::pcn::Activation;
use serde::{Deserialize, Serialize};
use std::fmt;
use std::str::FromStr;
use thiserror::Error;

/// MNIST's input dimension `D`.
pub const INPUT_DIM: usize = 784;
/// MNIST's output dimension `O`.
pub const OUTPUT_DIM: usize = 10;
/// Largest depth `H` accepted.
pub const MAX_DEPTH: usize = 1024;
/// Largest width `N` accepted.
pub const MAX_WIDTH: usize = 4096;
/// Largest number of inference steps `T` accepted.
pub const MAX_STEPS: usize = 100_000;
/// Most memory a run's network may take on the CPU (weights, gradients, two Adam moments).
pub const MAX_NETWORK_BYTES: u64 = 8 << 30;

/// A learning rule: predictive coding or backprop, under a parameterisation. Serialised by name.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Rule {
    /// Predictive coding.
    Pc(Param),
    /// Backpropagation of the mean squared error.
    Bp(Param),
}

impl Rule {
    /// Every rule in display order.
    pub const ALL: [Rule; 4] = [Rule::Pc(Param::Mupc), Rule::Pc(Param::Sp), Rule::Bp(Param::Mupc), Rule::Bp(Param::Sp)];

    /// The spelling of the CLI, metrics and URLs: `mupc`, `sp`, `bp_mup`, `bp_sp`.
    pub fn name(self) -> &'static str {
        match self {
            Rule::Pc(Param::Mupc) => "mupc",
            Rule::Pc(Param::Sp) => "sp",
            Rule::Bp(Param::Mupc) => "bp_mup",
            Rule::Bp(Param::Sp) => "bp_sp",
        }
    }

    /// A readable label for tables and legends.
    pub fn label(self) -> &'static str {
        match self {
            Rule::Pc(Param::Mupc) => "μPC",
            Rule::Pc(Param::Sp) => "standard PC",
            Rule::Bp(Param::Mupc) => "BP Depth-μP",
            Rule::Bp(Param::Sp) => "BP standard",
        }
    }

    /// The parameterisation (scalings and init).
    pub fn param(self) -> Param {
        match self {
            Rule::Pc(p) | Rule::Bp(p) => p,
        }
    }

    /// True for predictive coding rules.
    pub fn is_pc(self) -> bool {
        matches!(self, Rule::Pc(_))
    }
}

impl fmt::Display for Rule {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

impl Serialize for Rule {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(self.name())
    }
}

impl<'de> Deserialize<'de> for Rule {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let s = String::deserialize(d)?;
        s.parse().map_err(serde::de::Error::custom)
    }
}

impl FromStr for Rule {
    type Err = ConfigError;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Rule::ALL.into_iter().find(|r| r.name() == s.trim()).ok_or_else(|| ConfigError::UnknownRule(s.to_string()))
    }
}

/// Where the arithmetic runs.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum BackendKind {
    /// The reference implementation on the CPU (all cores natively).
    Cpu,
    /// WGSL compute kernels through wgpu.
    Gpu,
}

impl FromStr for BackendKind {
    type Err = ConfigError;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s {
            "cpu" => Ok(BackendKind::Cpu),
            "gpu" => Ok(BackendKind::Gpu),
            other => Err(ConfigError::UnknownBackend(other.to_string())),
        }
    }
}

/// One rule's settings within a comparison.
#[derive(Clone, Copy, Debug, PartialEq, Serialize, Deserialize)]
pub struct RuleSettings {
    /// The rule.
    pub rule: Rule,
    /// η_w (Adam).
    pub lr: f64,
    /// η_z (PC only).
    pub eta_z: f64,
}

/// Everything a training session needs.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct RunConfig {
    /// `N`.
    pub width: usize,
    /// `H`.
    pub depth: usize,
    /// φ.
    pub act: Activation,
    /// Identity skips on layers `2 … H`.
    pub skips: bool,
    /// The rules trained in lockstep.
    pub rules: Vec<RuleSettings>,
    /// `T`; `None` means `T = H`.
    pub steps: Option<usize>,
    /// `B`.
    pub batch: usize,
    /// Training iterations.
    pub iterations: usize,
    /// Test accuracy every this many iterations (and after the last).
    pub eval_every: usize,
    /// Seed of the weights and of the data order.
    pub seed: u64,
    /// CPU or GPU.
    pub backend: BackendKind,
    /// GPU runs read their metrics back every this many iterations (pipelined; the CPU reports
    /// every iteration).
    #[serde(default = "one")]
    pub metrics_every: usize,
    /// PC runs compare their weight gradients with backprop's every this many iterations (0:
    /// never; CPU and worker runs).
    #[serde(default)]
    pub align_every: usize,
}

fn one() -> usize {
    1
}

/// Default η_w per rule (the paper's Fig. 1 values at H = 8).
pub fn default_lr(rule: Rule) -> f64 {
    match rule {
        Rule::Pc(Param::Mupc) => 0.1,
        Rule::Pc(Param::Sp) => 1e-2,
        Rule::Bp(Param::Mupc) => 1e-2,
        Rule::Bp(Param::Sp) => 1e-3,
    }
}

/// Default η_z per rule (the paper's Fig. 1 values at H = 8).
pub fn default_eta_z(rule: Rule) -> f64 {
    match rule {
        Rule::Pc(Param::Sp) => 0.1,
        _ => 0.5,
    }
}

impl RuleSettings {
    /// A rule with its default rates.
    pub fn new(rule: Rule) -> Self {
        RuleSettings { rule, lr: default_lr(rule), eta_z: default_eta_z(rule) }
    }
}

impl Default for RunConfig {
    fn default() -> Self {
        RunConfig {
            width: 128,
            depth: 8,
            act: Activation::Relu,
            skips: true,
            rules: vec![RuleSettings::new(Rule::Pc(Param::Mupc))],
            steps: None,
            batch: 64,
            iterations: 300,
            eval_every: 100,
            seed: 0,
            backend: BackendKind::Cpu,
            metrics_every: 1,
            align_every: 0,
        }
    }
}

impl RunConfig {
    /// Seconds one iteration of every rule takes at `gflops` GFLOP/s (the nominal count of
    /// [`crate::pcn::train::iteration_flops`]).
    pub fn seconds_per_iteration(&self, gflops: f64) -> f64 {
        let flops: f64 = self
            .rules
            .iter()
            .map(|r| crate::pcn::train::iteration_flops(&self.arch(r.rule), self.learning(r), self.batch).0)
            .sum();
        flops / (gflops * 1e9)
    }

    /// True when iteration `iteration` (from 1) compares PC's gradients with backprop's.
    pub fn aligns_at(&self, iteration: usize) -> bool {
        self.align_every > 0 && iteration % self.align_every == 0
    }

    /// `T` (defaults to `H`).
    pub fn inference_steps(&self) -> usize {
        self.steps.unwrap_or(self.depth)
    }

    /// The architecture a rule trains.
    pub fn arch(&self, rule: Rule) -> Arch {
        Arch {
            input: INPUT_DIM,
            width: self.width,
            hidden: self.depth,
            output: OUTPUT_DIM,
            act: self.act,
            skips: self.skips,
            param: rule.param(),
        }
    }

    /// How a rule learns under this configuration (PC with its η_z and `T`, or backprop).
    pub fn learning(&self, rs: &RuleSettings) -> Learning {
        if rs.rule.is_pc() {
            Learning::Pc { eta_z: rs.eta_z, steps: self.inference_steps() }
        } else {
            Learning::Bp
        }
    }

    /// Iterations in `epochs` passes over `train_len` images (the last partial batch dropped).
    pub fn iterations_for_epochs(&self, epochs: usize, train_len: usize) -> usize {
        epochs * (train_len / self.batch.max(1))
    }

    /// Checks every field; `train_len` is the number of training images available.
    pub fn validate(&self, train_len: usize) -> Result<(), ConfigError> {
        range("depth (H)", self.depth, 1, MAX_DEPTH)?;
        range("width (N)", self.width, 1, MAX_WIDTH)?;
        range("inference steps (T)", self.inference_steps(), 1, MAX_STEPS)?;
        range("batch size (B)", self.batch, 1, train_len.max(1))?;
        range("iterations", self.iterations, 1, usize::MAX)?;
        range("evaluation interval", self.eval_every, 1, usize::MAX)?;
        range("metrics interval", self.metrics_every, 1, usize::MAX)?;
        if self.rules.is_empty() {
            return Err(ConfigError::NoRules);
        }
        let params = self.arch(self.rules[0].rule).parameter_count() as u64;
        let bytes = params.saturating_mul(4 * 4);
        if bytes > MAX_NETWORK_BYTES {
            return Err(ConfigError::TooLarge { width: self.width, depth: self.depth, gb: bytes as f64 / 1e9 });
        }
        for (i, r) in self.rules.iter().enumerate() {
            if self.rules[..i].iter().any(|o| o.rule == r.rule) {
                return Err(ConfigError::DuplicateRule(r.rule.name()));
            }
            rate(&format!("weight learning rate for {}", r.rule), r.lr)?;
            if r.rule.is_pc() {
                rate(&format!("activity learning rate η_z for {}", r.rule), r.eta_z)?;
            }
        }
        Ok(())
    }
}

fn range(what: &'static str, v: usize, lo: usize, hi: usize) -> Result<(), ConfigError> {
    if v < lo || v > hi {
        Err(ConfigError::OutOfRange { what, value: v, lo, hi })
    } else {
        Ok(())
    }
}

fn rate(what: &str, v: f64) -> Result<(), ConfigError> {
    if v.is_finite() && v > 0.0 {
        Ok(())
    } else {
        Err(ConfigError::BadRate { what: what.to_string(), value: v })
    }
}

/// A configuration that cannot run, with what is allowed.
#[derive(Debug, Error, PartialEq)]
pub enum ConfigError {
    /// A count outside its range.
    #[error("{what} must be between {lo} and {hi}, got {value}")]
    OutOfRange {
        /// The field.
        what: &'static str,
        /// What was given.
        value: usize,
        /// Smallest allowed.
        lo: usize,
        /// Largest allowed.
        hi: usize,
    },
    /// A learning rate that is not a positive finite number.
    #[error("{what} must be a positive finite number, got {value}")]
    BadRate {
        /// The field.
        what: String,
        /// What was given.
        value: f64,
    },
    /// A rule name nobody knows.
    #[error("unknown rule '{0}': expected one of mupc, sp, bp_mup, bp_sp")]
    UnknownRule(String),
    /// A backend name nobody knows.
    #[error("unknown backend '{0}': expected cpu or gpu")]
    UnknownBackend(String),
    /// The same rule twice.
    #[error("rule {0} is listed twice")]
    DuplicateRule(&'static str),
    /// No rule at all.
    #[error("no rule to train: give at least one of mupc, sp, bp_mup, bp_sp")]
    NoRules,
    /// A network that would not fit in memory.
    #[error(
        "a network of width {width} and depth {depth} needs {gb:.1} GB for its weights, gradients and Adam \
         state; the limit is 8.6 GB: lower the width or the depth"
    )]
    TooLarge {
        /// N.
        width: usize,
        /// H.
        depth: usize,
        /// Gigabytes needed.
        gb: f64,
    },
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn default_config_is_valid() {
        assert_eq!(RunConfig::default().validate(60_000), Ok(()));
    }

    #[test]
    fn invalid_fields_are_named_with_their_range() {
        let bad = |f: fn(&mut RunConfig)| {
            let mut c = RunConfig::default();
            f(&mut c);
            c.validate(60_000).unwrap_err().to_string()
        };
        assert_eq!(bad(|c| c.depth = 0), "depth (H) must be between 1 and 1024, got 0");
        assert_eq!(bad(|c| c.width = 0), "width (N) must be between 1 and 4096, got 0");
        assert_eq!(bad(|c| c.steps = Some(0)), "inference steps (T) must be between 1 and 100000, got 0");
        assert_eq!(bad(|c| c.batch = 60_001), "batch size (B) must be between 1 and 60000, got 60001");
        assert!(
            bad(|c| c.rules[0].lr = -0.1).contains("weight learning rate for mupc must be a positive finite number")
        );
        assert!(bad(|c| c.rules[0].eta_z = f64::NAN).contains("η_z for mupc"));
        assert_eq!(bad(|c| c.rules.clear()), ConfigError::NoRules.to_string());
        let big = bad(|c| (c.width, c.depth) = (4096, 1024));
        assert!(big.contains("width 4096 and depth 1024 needs 274.7 GB"), "{big}");
    }

    #[test]
    fn rules_parse_by_name() {
        for r in Rule::ALL {
            assert_eq!(r.name().parse::<Rule>(), Ok(r));
        }
        assert!("pc".parse::<Rule>().unwrap_err().to_string().contains("mupc, sp, bp_mup, bp_sp"));
    }
}
