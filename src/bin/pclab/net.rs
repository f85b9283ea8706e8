//! The network and rule options `train`, `bench` and `sweep-lr` share, and the configuration
//! they describe (a preset, then every option given).

use clap::Args;
use pclab::config::{BackendKind, Rule, RuleSettings, RunConfig};
use pclab::pcn::Activation;
use pclab::presets::Preset;
use std::path::PathBuf;

/// Network and rule options shared by `train` and `bench`. Unset options take the preset's value,
/// else the default.
#[derive(Args, Clone)]
pub(crate) struct NetArgs {
    /// Rules to train, comma-separated: mupc, sp, bp_mup, bp_sp [default: mupc]
    #[arg(long, value_delimiter = ',')]
    pub(crate) rules: Option<Vec<String>>,
    /// Hidden layers H [default: 8]
    #[arg(long)]
    pub(crate) depth: Option<usize>,
    /// Width N of every hidden layer [default: 128]
    #[arg(long)]
    pub(crate) width: Option<usize>,
    /// Activation: linear, tanh, relu, leaky_relu, gelu, silu [default: relu]
    #[arg(long)]
    pub(crate) act: Option<String>,
    /// Inference steps T per iteration [default: H]
    #[arg(long)]
    pub(crate) steps: Option<usize>,
    /// Batch size B [default: 64]
    #[arg(long)]
    pub(crate) batch: Option<usize>,
    /// Turn the residual skips off (standard PC only in the paper)
    #[arg(long)]
    pub(crate) no_skips: bool,
    /// Weight learning rate η_w (Adam) for μPC [default: 0.1]
    #[arg(long, allow_negative_numbers = true)]
    pub(crate) lr_mupc: Option<f64>,
    /// Weight learning rate η_w (Adam) for standard PC [default: 0.01]
    #[arg(long, allow_negative_numbers = true)]
    pub(crate) lr_sp: Option<f64>,
    /// Weight learning rate for BP Depth-μP (and BP standard unless --lr-bp-sp) [default: 0.01]
    #[arg(long, allow_negative_numbers = true)]
    pub(crate) lr_bp: Option<f64>,
    /// Weight learning rate for BP standard [default: --lr-bp, else 0.001]
    #[arg(long, allow_negative_numbers = true)]
    pub(crate) lr_bp_sp: Option<f64>,
    /// Activity learning rate η_z for every PC rule [defaults: μPC 0.5, standard PC 0.1]
    #[arg(long, allow_negative_numbers = true)]
    pub(crate) eta_z: Option<f64>,
    /// η_z for μPC only (overrides --eta-z)
    #[arg(long, allow_negative_numbers = true)]
    pub(crate) eta_z_mupc: Option<f64>,
    /// η_z for standard PC only (overrides --eta-z)
    #[arg(long, allow_negative_numbers = true)]
    pub(crate) eta_z_sp: Option<f64>,
    /// Seed of the weights and the batch order [default: 0]
    #[arg(long)]
    pub(crate) seed: Option<u64>,
    /// cpu or gpu [default: cpu]
    #[arg(long)]
    pub(crate) backend: Option<String>,
    /// Start from a preset: fig1-relu-h8 … fig1-relu-h128 (and -small variants at N = 128), tutorial,
    /// pc-vs-bp, explode, conditioning, lr-transfer (other options override its values)
    #[arg(long)]
    pub(crate) preset: Option<String>,
    /// Folder with the four MNIST .gz files [default: the copy built into pclab]
    #[arg(long)]
    pub(crate) data: Option<PathBuf>,
}

/// The configuration the options describe: the preset (or defaults), then every option given.
pub(crate) fn build_config(a: &NetArgs, train_len: usize) -> Result<RunConfig, String> {
    let mut c = match &a.preset {
        Some(p) => p.parse::<Preset>().map_err(|e| e.to_string())?.config(train_len),
        None => RunConfig::default(),
    };
    if let Some(names) = &a.rules {
        let mut rules = Vec::new();
        for n in names.iter().filter(|n| !n.trim().is_empty()) {
            let rule: Rule = n.parse().map_err(|e: pclab::config::ConfigError| e.to_string())?;
            // Keep a preset's rates for rules it already lists.
            rules.push(c.rules.iter().find(|r| r.rule == rule).copied().unwrap_or_else(|| RuleSettings::new(rule)));
        }
        c.rules = rules;
    }
    if let Some(v) = a.depth {
        c.depth = v;
    }
    if let Some(v) = a.width {
        c.width = v;
    }
    if let Some(v) = &a.act {
        c.act = v.parse::<Activation>()?;
    }
    if a.steps.is_some() {
        c.steps = a.steps;
    }
    if let Some(v) = a.batch {
        c.batch = v;
    }
    if a.no_skips {
        c.skips = false;
    }
    if let Some(v) = a.seed {
        c.seed = v;
    }
    if let Some(v) = &a.backend {
        c.backend = v.parse::<BackendKind>().map_err(|e| e.to_string())?;
    }
    for r in &mut c.rules {
        let lr = match r.rule {
            Rule::Pc(pclab::pcn::Param::Mupc) => a.lr_mupc,
            Rule::Pc(pclab::pcn::Param::Sp) => a.lr_sp,
            Rule::Bp(pclab::pcn::Param::Mupc) => a.lr_bp,
            Rule::Bp(pclab::pcn::Param::Sp) => a.lr_bp_sp.or(a.lr_bp),
        };
        if let Some(v) = lr {
            r.lr = v;
        }
        let eta = match r.rule {
            Rule::Pc(pclab::pcn::Param::Mupc) => a.eta_z_mupc.or(a.eta_z),
            Rule::Pc(pclab::pcn::Param::Sp) => a.eta_z_sp.or(a.eta_z),
            Rule::Bp(_) => None,
        };
        if let Some(v) = eta {
            r.eta_z = v;
        }
    }
    Ok(c)
}
