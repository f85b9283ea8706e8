//! `pclab hessian` and `pclab sweep-kappa`: κ of the inference landscape (docs/maths.md §8) in
//! float64 on the CPU, at initialisation or after training.

use crate::load_data;
use clap::Args;
use pclab::config::{BackendKind, Rule, RuleSettings};
use pclab::data::Mnist;
use pclab::pcn::hessian::{Extremes, LanczosConfig, Method};
use pclab::pcn::Activation;
use pclab::session::conditioning::{self, Scheme};
use serde_json::json;
use std::time::Instant;

/// Lanczos options shared by `hessian` and `sweep-kappa`.
#[derive(Args, Clone)]
pub(crate) struct LanczosArgs {
    /// Stop Lanczos when each extreme's residual is at most this fraction of it
    #[arg(long, default_value_t = 1e-3)]
    pub(crate) tol: f64,
    /// Most Lanczos iterations
    #[arg(long, default_value_t = 3000)]
    pub(crate) max_iter: usize,
    /// With --method auto: solve densely (all eigenvalues, float64) up to this N·H
    #[arg(long, default_value_t = conditioning::DENSE_UP_TO)]
    pub(crate) dense_up_to: usize,
    /// auto (dense up to --dense-up-to, blocks up to width 256, else lanczos), dense, blocks
    /// (bisection with block-Cholesky tests, to --tol) or lanczos
    #[arg(long, default_value = "auto")]
    pub(crate) method: String,
}

impl LanczosArgs {
    pub(crate) fn config(&self) -> Result<LanczosConfig, String> {
        if !(self.tol > 0.0 && self.tol < 1.0) {
            return Err(format!("--tol must be between 0 and 1, got {}", self.tol));
        }
        Ok(LanczosConfig { tol: self.tol, max_iter: self.max_iter.max(1), seed: 0 })
    }

    /// The CPU method for an `N × H` network.
    pub(crate) fn method(&self, width: usize, depth: usize) -> Result<Method, String> {
        match self.method.as_str() {
            "auto" => Ok(Method::auto(width, depth, self.dense_up_to)),
            other => other.parse().map_err(|e: String| format!("--method: {e}, or auto")),
        }
    }
}

#[derive(Args)]
pub(crate) struct HessianArgs {
    /// sp (standard PC, skips), sp_noskip or mupc
    #[arg(long, default_value = "mupc")]
    pub(crate) param: String,
    /// Hidden layers H
    #[arg(long, default_value_t = 8)]
    pub(crate) depth: usize,
    /// Width N
    #[arg(long, default_value_t = 128)]
    pub(crate) width: usize,
    /// Activation: linear, tanh, relu, leaky_relu, gelu, silu
    #[arg(long, default_value = "relu")]
    pub(crate) act: String,
    /// Seed of the weights (and of the batch order when training)
    #[arg(long, default_value_t = 0)]
    pub(crate) seed: u64,
    /// Train this many PC iterations first (default rates, T = H, B = 64); 0: at initialisation
    #[arg(long, default_value_t = 0)]
    pub(crate) iters: usize,
    #[command(flatten)]
    pub(crate) lanczos: LanczosArgs,
    /// Print one JSON object
    #[arg(long)]
    pub(crate) json: bool,
    /// At initialisation with Lanczos: print the estimates every this many iterations on stderr
    #[arg(long, value_name = "K")]
    pub(crate) trace: Option<usize>,
    /// Where it runs: cpu (float64) or gpu (f32 kernels: Hessian-vector products and Lanczos)
    #[arg(long, default_value = "cpu")]
    pub(crate) backend: String,
    /// With --backend gpu: κ at each of the first K samples of the batch, as K problems side by side
    #[arg(long, value_name = "K", default_value_t = 1)]
    pub(crate) samples: usize,
}

#[derive(Args)]
pub(crate) struct SweepArgs {
    /// Widths N, comma-separated
    #[arg(long, value_delimiter = ',', default_value = "16")]
    pub(crate) widths: Vec<usize>,
    /// Depths H, comma-separated
    #[arg(long, value_delimiter = ',', default_value = "1,2,4,8,16,32")]
    pub(crate) depths: Vec<usize>,
    /// Seeds, comma-separated
    #[arg(long, value_delimiter = ',', default_value = "0,1,2")]
    pub(crate) seeds: Vec<u64>,
    /// Parameterisations, comma-separated: sp, sp_noskip, mupc
    #[arg(long, value_delimiter = ',', default_value = "sp,sp_noskip,mupc")]
    pub(crate) params: Vec<String>,
    /// Activation
    #[arg(long, default_value = "linear")]
    pub(crate) act: String,
    #[command(flatten)]
    pub(crate) lanczos: LanczosArgs,
    /// One JSON line per (param, width, depth, seed) instead of a table
    #[arg(long)]
    pub(crate) json: bool,
}

/// Checks a network size for the conditioning commands (they run in float64 on the CPU).
pub(crate) fn check_size(width: usize, depth: usize) -> Result<(), String> {
    if !(1..=4096).contains(&width) || !(1..=1024).contains(&depth) {
        return Err(format!("width must be 1…4096 and depth 1…1024, got N={width}, H={depth}"));
    }
    if width * depth > 1 << 17 {
        return Err(format!("N·H = {} is beyond what the float64 CPU Hessian handles here (131072)", width * depth));
    }
    Ok(())
}

pub(crate) fn extremes_json(
    scheme: &str,
    width: usize,
    depth: usize,
    seed: u64,
    e: &Extremes,
    ms: f64,
    method: &str,
) -> serde_json::Value {
    json!({
        "param": scheme, "width": width, "depth": depth, "seed": seed, "kappa": e.kappa,
        "lambda_min": e.lambda_min, "lambda_max": e.lambda_max, "iterations": e.iterations,
        "residual_min": e.residual_min, "residual_max": e.residual_max, "converged": e.converged,
        "method": method, "ms": ms,
    })
}

pub(crate) fn hessian(a: HessianArgs) -> Result<(), String> {
    let scheme: Scheme = a.param.parse()?;
    let act: Activation = a.act.parse()?;
    check_size(a.width, a.depth)?;
    let cfg = a.lanczos.config()?;
    let method = a.lanczos.method(a.width, a.depth)?;
    let data = load_data(&None)?;
    let arch = scheme.arch(a.width, a.depth, act);
    let t0 = Instant::now();
    let backend: BackendKind = a.backend.parse().map_err(|e: pclab::config::ConfigError| e.to_string())?;
    let all = if backend == BackendKind::Gpu {
        let ctx = pclab::session::backend::shared_gpu().map_err(|e| e.to_string())?;
        let (net, x, y, z) = if a.iters == 0 {
            let net: pclab::pcn::Network<f32> = pclab::pcn::Network::init(arch, a.seed);
            let rows: Vec<usize> = (0..a.samples.clamp(1, 1024)).collect();
            let (x, y) = data.train.batch::<f32>(&rows);
            let z = pclab::pcn::forward::forward(&net, &x).0;
            (net, x, y, z)
        } else {
            let (model, x, y) = train_pc(arch, a.seed, a.depth, a.iters, &data)?;
            (model.net, x, y, model.z)
        };
        conditioning::on_gpu(ctx, &net, &x, &y, &z, a.samples, cfg)?
    } else if a.samples != 1 {
        return Err(format!("--samples {} needs --backend gpu (the CPU computes sample 0 only)", a.samples));
    } else if let (0, Some(every), true) = (a.iters, a.trace, method == Method::Lanczos) {
        let mut job = conditioning::KappaJob::at_init(arch, a.seed, &data, cfg, method)?;
        loop {
            let done = job.advance(|| false);
            if let Some(e) = job.estimate().filter(|_| job.iterations() % every.max(1) == 0 || done.is_some()) {
                eprintln!(
                    "iteration {:5}: λ_min {:.6e} (residual {:.1e}), λ_max {:.6e} (residual {:.1e}), κ {:.4e}",
                    job.iterations(),
                    e.lambda_min,
                    e.residual_min,
                    e.lambda_max,
                    e.residual_max,
                    e.kappa
                );
            }
            if let Some(e) = done {
                break vec![e];
            }
        }
    } else if a.iters == 0 {
        vec![conditioning::at_init(arch, a.seed, &data, cfg, method)?]
    } else {
        let (model, x, y) = train_pc(arch, a.seed, a.depth, a.iters, &data)?;
        vec![conditioning::of_model(&model, &x, &y, cfg, method)?]
    };
    let ms = t0.elapsed().as_secs_f64() * 1e3;
    // The GPU path is always Lanczos.
    let method = if backend == BackendKind::Gpu { Method::Lanczos } else { method };
    let at = if a.iters == 0 { "at initialisation".to_string() } else { format!("after {} iterations", a.iters) };
    for (s, e) in all.iter().enumerate() {
        if a.json {
            let mut v = extremes_json(scheme.name(), a.width, a.depth, a.seed, e, ms, method.name());
            v["backend"] = json!(a.backend);
            v["sample"] = json!(s);
            println!("{v}");
            continue;
        }
        let sample = if all.len() > 1 { format!(" sample {s}") } else { String::new() };
        println!(
            "{scheme} N={} H={} {} {at}{sample}: κ = {:.4e}, λ_min = {:.4e} (residual {:.1e}), λ_max = {:.4e} (residual {:.1e}); {} iterations{}, {:.0} ms",
            a.width,
            a.depth,
            act.name(),
            e.kappa,
            e.lambda_min,
            e.residual_min,
            e.lambda_max,
            e.residual_max,
            e.iterations,
            if e.converged { "" } else { " (not converged)" },
            ms
        );
    }
    Ok(())
}

/// A trained model with its last batch `(x, y)`.
pub(crate) type Trained = (pclab::pcn::train::Model<f32>, pclab::pcn::Mat<f32>, pclab::pcn::Mat<f32>);

/// A PC model of `arch` trained `iters` iterations (default rates, `T = H`, `B = 64`), with the
/// last batch.
pub(crate) fn train_pc(
    arch: pclab::pcn::Arch,
    seed: u64,
    steps: usize,
    iters: usize,
    data: &Mnist,
) -> Result<Trained, String> {
    let rs = RuleSettings::new(Rule::Pc(arch.param));
    let learning = pclab::pcn::train::Learning::Pc { eta_z: rs.eta_z, steps };
    let net = pclab::pcn::Network::init(arch, seed);
    let mut model = pclab::pcn::train::Model::new(net, learning, rs.lr, Default::default());
    let mut batcher = pclab::data::Batcher::new(data.train.len(), 64, seed);
    let (mut x, mut y) = data.train.batch::<f32>(batcher.next_indices());
    for i in 0..iters {
        if i > 0 {
            (x, y) = data.train.batch::<f32>(batcher.next_indices());
        }
        if !model.train_step(&x, &y).finite {
            return Err(format!("training diverged at iteration {}", i + 1));
        }
    }
    Ok((model, x, y))
}

pub(crate) fn sweep_kappa(a: SweepArgs) -> Result<(), String> {
    let act: Activation = a.act.parse()?;
    let schemes = a.params.iter().map(|p| p.parse::<Scheme>()).collect::<Result<Vec<_>, _>>()?;
    for &w in &a.widths {
        for &h in &a.depths {
            check_size(w, h)?;
        }
    }
    let cfg = a.lanczos.config()?;
    let data = load_data(&None)?;
    if !a.json {
        println!(
            "{:<10} {:>5} {:>5} {:>5} {:>12} {:>12} {:>12} {:>6}",
            "param", "N", "H", "seed", "kappa", "lambda_min", "lambda_max", "iters"
        );
    }
    for &scheme in &schemes {
        for &w in &a.widths {
            for &h in &a.depths {
                for &seed in &a.seeds {
                    let t0 = Instant::now();
                    let method = a.lanczos.method(w, h)?;
                    let e = conditioning::at_init(scheme.arch(w, h, act), seed, &data, cfg, method)?;
                    let ms = t0.elapsed().as_secs_f64() * 1e3;
                    if a.json {
                        println!("{}", extremes_json(scheme.name(), w, h, seed, &e, ms, method.name()));
                    } else {
                        println!(
                            "{:<10} {w:>5} {h:>5} {seed:>5} {:>12.4e} {:>12.4e} {:>12.4e} {:>6}",
                            scheme.name(),
                            e.kappa,
                            e.lambda_min,
                            e.lambda_max,
                            e.iterations
                        );
                    }
                }
            }
        }
    }
    Ok(())
}
