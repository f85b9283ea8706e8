//! `pclab sweep-alignment`: PC's weight gradients against backprop's at equilibrium across widths
//! and depths (docs/maths.md §11), in float64 on the CPU, at initialisation on an MNIST batch.

use crate::load_data;
use clap::Args;
use pclab::pcn::alignment::{align, align_at_equilibrium, cosine_summary, Equilibrium};
use pclab::pcn::{Activation, Network};
use pclab::session::conditioning::Scheme;
use serde_json::json;
use std::time::Instant;

#[derive(Args)]
pub(crate) struct SweepAlignmentArgs {
    /// Widths N, comma-separated
    #[arg(long, value_delimiter = ',', default_value = "16,64,256")]
    pub(crate) widths: Vec<usize>,
    /// Depths H, comma-separated
    #[arg(long, value_delimiter = ',', default_value = "4,16,32")]
    pub(crate) depths: Vec<usize>,
    /// Parameterisations, comma-separated: sp, sp_noskip, mupc
    #[arg(long, value_delimiter = ',', default_value = "sp,mupc")]
    pub(crate) params: Vec<String>,
    /// Activation
    #[arg(long, default_value = "linear")]
    pub(crate) act: String,
    /// Images in the batch (the first of the training set)
    #[arg(long, default_value_t = 16)]
    pub(crate) batch: usize,
    /// Seed of the weights
    #[arg(long, default_value_t = 0)]
    pub(crate) seed: u64,
    /// Inference rate η_z
    #[arg(long, default_value_t = 0.5)]
    pub(crate) eta_z: f64,
    /// Most inference steps on the way to equilibrium
    #[arg(long, default_value_t = 20_000)]
    pub(crate) max_steps: usize,
    /// Exactly this many inference steps (as in training, e.g. T = H) instead of to equilibrium; 0: to equilibrium
    #[arg(long, default_value_t = 0)]
    pub(crate) steps: usize,
    /// Equilibrium: a step changes F by at most this fraction of it
    #[arg(long, default_value_t = 1e-10)]
    pub(crate) tol: f64,
    /// One JSON line per (param, width, depth) instead of a table
    #[arg(long)]
    pub(crate) json: bool,
}

pub(crate) fn sweep_alignment(a: SweepAlignmentArgs) -> Result<(), String> {
    let act: Activation = a.act.parse()?;
    let schemes = a.params.iter().map(|p| p.parse::<Scheme>()).collect::<Result<Vec<_>, _>>()?;
    for &w in &a.widths {
        for &h in &a.depths {
            if !(1..=4096).contains(&w) || !(1..=1024).contains(&h) {
                return Err(format!("width must be 1…4096 and depth 1…1024, got N={w}, H={h}"));
            }
        }
    }
    if !(1..=1024).contains(&a.batch) {
        return Err(format!("--batch must be 1…1024, got {}", a.batch));
    }
    if !(a.eta_z > 0.0 && a.eta_z.is_finite()) {
        return Err(format!("--eta-z must be a positive number, got {}", a.eta_z));
    }
    if !(a.tol > 0.0 && a.tol < 1.0) {
        return Err(format!("--tol must be between 0 and 1, got {}", a.tol));
    }
    let data = load_data(&None)?;
    let (x, y) = data.train.range::<f64>(0, a.batch);
    if !a.json {
        println!(
            "{:<10} {:>5} {:>5} {:>7} {:>7} {:>10} {:>10} {:>10} {:>10} {:>8}",
            "param", "N", "H", "N/H", "steps", "cos_med", "cos_min", "cos_max", "F*/loss", "ms"
        );
    }
    for &scheme in &schemes {
        for &w in &a.widths {
            for &h in &a.depths {
                let t0 = Instant::now();
                let net = Network::<f64>::init(scheme.arch(w, h, act), a.seed);
                let eq = if a.steps == 0 {
                    align_at_equilibrium(&net, &x, &y, a.eta_z, a.max_steps, a.tol)
                } else {
                    let r = align(&net, &x, &y, a.eta_z, a.steps, false);
                    Equilibrium {
                        profile: r.last().clone(),
                        steps: a.steps,
                        settled: false,
                        energy: r.energies.last().copied().unwrap_or(f64::NAN),
                        bp_loss: r.bp_loss,
                    }
                };
                let ms = t0.elapsed().as_secs_f64() * 1e3;
                let (median, lo, hi) = cosine_summary(&eq.profile).unwrap_or((f64::NAN, f64::NAN, f64::NAN));
                if a.json {
                    let layers: Vec<_> = eq
                        .profile
                        .iter()
                        .map(|l| l.map(|l| json!({"cosine": l.cosine, "norm_ratio": l.norm_ratio})))
                        .collect();
                    let line = json!({
                        "kind": "alignment", "param": scheme.name(), "act": act.name(), "width": w, "depth": h,
                        "width_over_depth": w as f64 / h as f64, "batch": a.batch, "seed": a.seed, "eta_z": a.eta_z,
                        "steps": eq.steps, "fixed_steps": a.steps > 0, "settled": eq.settled, "cosine_median": median, "cosine_min": lo,
                        "cosine_max": hi, "energy": eq.energy, "bp_loss": eq.bp_loss,
                        "energy_ratio": eq.energy_ratio(), "layers": layers, "ms": ms,
                    });
                    println!("{line}");
                } else {
                    // "+": stopped by --max-steps before the energy settled; "=": the steps asked for.
                    let steps = match (a.steps, eq.settled) {
                        (0, true) => eq.steps.to_string(),
                        (0, false) => format!("{}+", eq.steps),
                        _ => format!("{}=", eq.steps),
                    };
                    println!(
                        "{:<10} {w:>5} {h:>5} {:>7.2} {steps:>7} {median:>10.4} {lo:>10.4} {hi:>10.4} {:>10.4} {ms:>8.0}",
                        scheme.name(),
                        w as f64 / h as f64,
                        eq.energy_ratio()
                    );
                }
            }
        }
    }
    Ok(())
}
