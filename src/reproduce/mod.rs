//! The paper's experiments as run lists (`pclab reproduce`): Fig. 1's depth sweep and the
//! learning-rate transfer grids across depths and across widths.
//!
//! A run list is deterministic, so it can be cut into shards (`--shard K/N`: every N-th run from
//! K) that machines — a SLURM job array, a Kubernetes Indexed Job — run independently, each into
//! its own file of finished runs ([`store`]), merged afterwards by `pclab report` ([`report`]).
//! Each run trains one rule from its seed, alone: rules in lockstep share only the seed and the
//! batch order, so a run alone gives the numbers it would give beside the others.

pub mod exec;
pub mod report;
pub mod store;

use crate::config::{BackendKind, Rule, RuleSettings, RunConfig};
use crate::pcn::network::Param;
use crate::pcn::Activation;
use crate::presets::{fig1_rates, FIG1_DEPTHS, PAPER_ETA_ZS, PAPER_LRS};
use serde::{Deserialize, Serialize};
use std::fmt;
use std::str::FromStr;

/// One of the paper's experiments.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Experiment {
    /// Fig. 1: test accuracy against depth, standard PC vs μPC vs BP Depth-μP.
    Fig1,
    /// The (η_w, η_z) grid's minimum training loss at several depths.
    LrDepth,
    /// The same grid at one depth across widths.
    LrWidth,
}

impl Experiment {
    /// Every experiment.
    pub const ALL: [Experiment; 3] = [Experiment::Fig1, Experiment::LrDepth, Experiment::LrWidth];

    /// Its name on the command line and in the files.
    pub fn name(self) -> &'static str {
        match self {
            Experiment::Fig1 => "fig1",
            Experiment::LrDepth => "lr-depth",
            Experiment::LrWidth => "lr-width",
        }
    }
}

impl fmt::Display for Experiment {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

impl FromStr for Experiment {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Self::ALL.into_iter().find(|e| e.name() == s).ok_or_else(|| {
            let names: Vec<_> = Self::ALL.iter().map(|e| e.name()).collect();
            format!("unknown experiment '{s}': expected one of {}", names.join(", "))
        })
    }
}

/// What to reproduce, at what size.
#[derive(Clone, Debug, PartialEq)]
pub struct Options {
    /// The experiment.
    pub experiment: Experiment,
    /// `N` of `fig1` and `lr-depth`.
    pub width: usize,
    /// Depths of `fig1` and `lr-depth`.
    pub depths: Vec<usize>,
    /// Widths of `lr-width`.
    pub widths: Vec<usize>,
    /// Depth of `lr-width`.
    pub width_depth: usize,
    /// Seeds.
    pub seeds: Vec<u64>,
    /// Training iterations of every run.
    pub iterations: usize,
    /// Test accuracy every this many iterations (and after the last).
    pub eval_every: usize,
    /// φ.
    pub act: Activation,
    /// CPU or GPU.
    pub backend: BackendKind,
    /// `B`.
    pub batch: usize,
}

impl Options {
    /// The paper's settings for `experiment` (docs/maths.md §9): `fig1` at N = 512, five depths, three seeds,
    /// one epoch of ReLU; the grids with tanh at N = 512 (depths 8 … 128) or H = 8 (widths 64 …
    /// 1024), 100 iterations a cell, one seed.
    pub fn paper(experiment: Experiment, train_len: usize) -> Self {
        let fig1 = experiment == Experiment::Fig1;
        Options {
            experiment,
            width: 512,
            depths: FIG1_DEPTHS.to_vec(),
            widths: vec![64, 128, 256, 512, 1024],
            width_depth: 8,
            seeds: if fig1 { vec![0, 1, 2] } else { vec![0] },
            iterations: if fig1 { train_len / 64 } else { 100 },
            eval_every: 100,
            act: if fig1 { Activation::Relu } else { Activation::Tanh },
            backend: BackendKind::Cpu,
            batch: 64,
        }
    }
}

/// One run of an experiment: one rule trained from one seed.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct RunSpec {
    /// The experiment it belongs to.
    pub experiment: Experiment,
    /// Position in the run list.
    pub index: usize,
    /// `mupc`, `sp`, `bp_mup`, `bp_sp`.
    pub rule: String,
    /// φ.
    pub act: Activation,
    /// `N`.
    pub width: usize,
    /// `H`.
    pub depth: usize,
    /// `T` (= H).
    pub steps: usize,
    /// η_w.
    pub lr: f64,
    /// η_z.
    pub eta_z: f64,
    /// Seed of the weights and of the batch order.
    pub seed: u64,
    /// Training iterations.
    pub iterations: usize,
    /// Test accuracy every this many iterations.
    pub eval_every: usize,
    /// `B`.
    pub batch: usize,
}

impl RunSpec {
    /// A key that names the run uniquely (its whole configuration).
    pub fn key(&self) -> String {
        format!(
            "{}/{}/{}/N{}/H{}/T{}/lr{}/ez{}/s{}/i{}/e{}/B{}",
            self.experiment,
            self.rule,
            self.act,
            self.width,
            self.depth,
            self.steps,
            self.lr,
            self.eta_z,
            self.seed,
            self.iterations,
            self.eval_every,
            self.batch
        )
    }

    /// The rule.
    pub fn rule(&self) -> Result<Rule, String> {
        self.rule.parse().map_err(|e: crate::config::ConfigError| e.to_string())
    }

    /// The session configuration of this run alone.
    pub fn config(&self, backend: BackendKind) -> Result<RunConfig, String> {
        Ok(RunConfig {
            width: self.width,
            depth: self.depth,
            act: self.act,
            skips: true,
            rules: vec![RuleSettings { rule: self.rule()?, lr: self.lr, eta_z: self.eta_z }],
            steps: Some(self.steps),
            batch: self.batch,
            iterations: self.iterations,
            eval_every: self.eval_every,
            seed: self.seed,
            backend,
            metrics_every: 1,
            align_every: 0,
        })
    }
}

/// The run list of `o`, in a fixed order: for `fig1` depth, then seed, then rule (μPC, standard
/// PC, BP Depth-μP); for the grids size, then rule (μPC, then standard PC), then η_w, then η_z,
/// then seed.
pub fn plan(o: &Options) -> Vec<RunSpec> {
    let (mupc, sp, bp) = (Rule::Pc(Param::Mupc), Rule::Pc(Param::Sp), Rule::Bp(Param::Mupc));
    let mut runs = Vec::new();
    let mut push = |rule: Rule, width: usize, depth: usize, (lr, eta_z): (f64, f64), seed: u64| {
        runs.push(RunSpec {
            experiment: o.experiment,
            index: runs.len(),
            rule: rule.name().into(),
            act: o.act,
            width,
            depth,
            steps: depth,
            lr,
            eta_z,
            seed,
            iterations: o.iterations,
            eval_every: o.eval_every,
            batch: o.batch,
        });
    };
    let grid = |sizes: Vec<(usize, usize)>, push: &mut dyn FnMut(Rule, usize, usize, (f64, f64), u64)| {
        for (width, depth) in sizes {
            for rule in [mupc, sp] {
                for lr in PAPER_LRS {
                    for eta_z in PAPER_ETA_ZS {
                        for &seed in &o.seeds {
                            push(rule, width, depth, (lr, eta_z), seed);
                        }
                    }
                }
            }
        }
    };
    match o.experiment {
        Experiment::Fig1 => {
            for &depth in &o.depths {
                let [m, s, b] = fig1_rates(o.act, depth);
                for &seed in &o.seeds {
                    push(mupc, o.width, depth, m, seed);
                    push(sp, o.width, depth, s, seed);
                    push(bp, o.width, depth, b, seed);
                }
            }
        }
        Experiment::LrDepth => grid(o.depths.iter().map(|&h| (o.width, h)).collect(), &mut push),
        Experiment::LrWidth => grid(o.widths.iter().map(|&n| (n, o.width_depth)).collect(), &mut push),
    }
    runs
}

/// Which part of the run list one process runs: every `count`-th run from `index`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Shard {
    /// From 0.
    pub index: usize,
    /// At least 1.
    pub count: usize,
}

impl Shard {
    /// The whole list.
    pub const ALL: Shard = Shard { index: 0, count: 1 };

    /// `K/N` (0 ≤ K < N), or `auto`: K from SLURM's `SLURM_ARRAY_TASK_ID` (else a Kubernetes
    /// Indexed Job's `JOB_COMPLETION_INDEX`), N from `shards` (`--shards`) when given, else from
    /// `SLURM_ARRAY_TASK_COUNT`. A resubmitted task (`--array=K`) must give `--shards`: SLURM then
    /// counts only the tasks resubmitted. `env` looks a variable up (the process environment).
    pub fn parse(s: &str, shards: Option<usize>, env: impl Fn(&str) -> Option<String>) -> Result<Shard, String> {
        let num = |name: &str, v: &str| -> Result<usize, String> {
            v.trim().parse().map_err(|_| format!("{name} must be a whole number, got '{v}'"))
        };
        let shard = if s == "auto" {
            match (env("SLURM_ARRAY_TASK_ID"), env("SLURM_ARRAY_TASK_COUNT"), env("JOB_COMPLETION_INDEX")) {
                (Some(id), count, _) => {
                    let count = match (shards, count) {
                        (Some(n), _) => n,
                        (None, Some(c)) => num("SLURM_ARRAY_TASK_COUNT", &c)?,
                        (None, None) => return Err(
                            "--shard auto found SLURM_ARRAY_TASK_ID but not SLURM_ARRAY_TASK_COUNT; give --shards N"
                                .into(),
                        ),
                    };
                    Shard { index: num("SLURM_ARRAY_TASK_ID", &id)?, count }
                }
                (None, _, Some(id)) => {
                    let count = shards.ok_or(
                        "--shard auto with JOB_COMPLETION_INDEX (a Kubernetes Indexed Job) needs --shards N, the job's completions",
                    )?;
                    Shard { index: num("JOB_COMPLETION_INDEX", &id)?, count }
                }
                _ => {
                    return Err("--shard auto found neither SLURM_ARRAY_TASK_ID (a SLURM job array) nor \
                                JOB_COMPLETION_INDEX (a Kubernetes Indexed Job); give --shard K/N"
                        .into())
                }
            }
        } else {
            let (k, n) = s.split_once('/').ok_or_else(|| format!("--shard is K/N (from 0) or auto, got '{s}'"))?;
            Shard { index: num("K of --shard K/N", k)?, count: num("N of --shard K/N", n)? }
        };
        if shard.count == 0 || shard.index >= shard.count {
            return Err(format!(
                "shard {}/{} does not exist: K runs from 0 to N − 1 and N is at least 1",
                shard.index, shard.count
            ));
        }
        Ok(shard)
    }

    /// Whether run `index` of the list is this shard's.
    pub fn owns(self, index: usize) -> bool {
        index % self.count == self.index
    }

    /// The file this shard writes its finished runs to, inside the output folder.
    pub fn file_name(self) -> String {
        if self.count == 1 {
            "runs.jsonl".into()
        } else {
            format!("runs.shard-{}-of-{}.jsonl", self.index, self.count)
        }
    }
}

impl fmt::Display for Shard {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}/{}", self.index, self.count)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_run_lists_are_the_papers() {
        let fig1 = plan(&Options::paper(Experiment::Fig1, 60_000));
        assert_eq!(fig1.len(), 5 * 3 * 3);
        assert!(fig1.iter().enumerate().all(|(i, r)| r.index == i && r.iterations == 937 && r.steps == r.depth));
        let sp8 = fig1.iter().find(|r| r.rule == "sp" && r.depth == 8).expect("sp at H = 8");
        assert_eq!((sp8.lr, sp8.eta_z, sp8.width), (1e-2, 1e-1, 512));
        let grid = plan(&Options::paper(Experiment::LrDepth, 60_000));
        assert_eq!(grid.len(), 5 * 2 * 4 * 11);
        let keys: std::collections::HashSet<String> = grid.iter().map(RunSpec::key).collect();
        assert_eq!(keys.len(), grid.len(), "every run has its own key");
        assert_eq!(plan(&Options::paper(Experiment::LrWidth, 60_000)).len(), 5 * 2 * 4 * 11);
    }

    #[test]
    fn shards_cover_the_list_once_and_read_the_schedulers_variables() {
        let none = |_: &str| None;
        assert_eq!(Shard::parse("1/4", None, none), Ok(Shard { index: 1, count: 4 }));
        let owned: Vec<usize> = (0..10).filter(|&i| Shard { index: 1, count: 4 }.owns(i)).collect();
        assert_eq!(owned, [1, 5, 9]);
        let slurm = |k: &str| match k {
            "SLURM_ARRAY_TASK_ID" => Some("2".into()),
            "SLURM_ARRAY_TASK_COUNT" => Some("3".into()),
            _ => None,
        };
        assert_eq!(Shard::parse("auto", None, slurm), Ok(Shard { index: 2, count: 3 }));
        // A resubmitted task: SLURM counts only the resubmitted tasks, --shards says the array's size.
        assert_eq!(Shard::parse("auto", Some(4), slurm), Ok(Shard { index: 2, count: 4 }));
        let k8s = |k: &str| (k == "JOB_COMPLETION_INDEX").then(|| "0".to_string());
        assert_eq!(Shard::parse("auto", Some(5), k8s), Ok(Shard { index: 0, count: 5 }));
        assert!(Shard::parse("auto", None, k8s).unwrap_err().contains("--shards"));
        assert!(Shard::parse("auto", None, none).unwrap_err().contains("SLURM_ARRAY_TASK_ID"));
        for bad in ["4/4", "1/0", "x/2", "3"] {
            assert!(Shard::parse(bad, None, none).is_err(), "{bad}");
        }
        assert_eq!(Shard { index: 1, count: 4 }.file_name(), "runs.shard-1-of-4.jsonl");
        assert_eq!(Shard::ALL.file_name(), "runs.jsonl");
    }
}
