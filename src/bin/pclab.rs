//! `pclab`: train and benchmark deep residual predictive coding networks on MNIST from the terminal.
//!
//! The same session code as the browser app, on the CPU (all cores) or — where built — the GPU.

use clap::{Args, Parser, Subcommand};
use indicatif::{ProgressBar, ProgressStyle};
use pclab::config::{BackendKind, Rule, RuleSettings, RunConfig};
use pclab::data::Mnist;
use pclab::pcn::hessian::{Extremes, LanczosConfig, Method};
use pclab::pcn::train::iteration_flops;
use pclab::pcn::Activation;
use pclab::presets::Preset;
use pclab::session::conditioning::{self, Scheme};
use pclab::session::{Backend, Event, RunStatus, Session};
use serde_json::json;
use std::io::{BufWriter, Write};
use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::Arc;
use std::time::Instant;

#[derive(Parser)]
#[command(
    name = "pclab",
    version,
    about = "Deep residual predictive coding networks (standard PC, μPC, backprop) on MNIST"
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Train one or more rules in lockstep on MNIST and report test accuracy.
    Train(TrainArgs),
    /// Time whole training iterations (median over repetitions after a warm-up).
    Bench(BenchArgs),
    /// κ, λ_min and λ_max of the inference landscape's Hessian, at initialisation or after training.
    Hessian(HessianArgs),
    /// κ at initialisation across widths, depths, seeds and parameterisations (float64).
    SweepKappa(SweepArgs),
    /// Learning-rate transfer: the minimum training loss over a grid of (η_w, η_z), at several depths or widths.
    SweepLr(SweepLrArgs),
    /// The paper's experiments (fig1, lr-depth, lr-width): a resumable run list, sharded for job arrays.
    Reproduce(reproduce::ReproduceArgs),
    /// Merge the finished runs of `reproduce` (any number of shard folders) into report.md and figures.
    Report(reproduce::ReportArgs),
}

#[path = "pclab/reproduce.rs"]
mod reproduce;

/// Lanczos options shared by `hessian` and `sweep-kappa`.
#[derive(Args, Clone)]
struct LanczosArgs {
    /// Stop Lanczos when each extreme's residual is at most this fraction of it
    #[arg(long, default_value_t = 1e-3)]
    tol: f64,
    /// Most Lanczos iterations
    #[arg(long, default_value_t = 3000)]
    max_iter: usize,
    /// With --method auto: solve densely (all eigenvalues, float64) up to this N·H
    #[arg(long, default_value_t = conditioning::DENSE_UP_TO)]
    dense_up_to: usize,
    /// auto (dense up to --dense-up-to, blocks up to width 256, else lanczos), dense, blocks
    /// (bisection with block-Cholesky tests, to --tol) or lanczos
    #[arg(long, default_value = "auto")]
    method: String,
}

impl LanczosArgs {
    fn config(&self) -> Result<LanczosConfig, String> {
        if !(self.tol > 0.0 && self.tol < 1.0) {
            return Err(format!("--tol must be between 0 and 1, got {}", self.tol));
        }
        Ok(LanczosConfig { tol: self.tol, max_iter: self.max_iter.max(1), seed: 0 })
    }

    /// The CPU method for an `N × H` network.
    fn method(&self, width: usize, depth: usize) -> Result<Method, String> {
        match self.method.as_str() {
            "auto" => Ok(Method::auto(width, depth, self.dense_up_to)),
            other => other.parse().map_err(|e: String| format!("--method: {e}, or auto")),
        }
    }
}

#[derive(Args)]
struct HessianArgs {
    /// sp (standard PC, skips), sp_noskip or mupc
    #[arg(long, default_value = "mupc")]
    param: String,
    /// Hidden layers H
    #[arg(long, default_value_t = 8)]
    depth: usize,
    /// Width N
    #[arg(long, default_value_t = 128)]
    width: usize,
    /// Activation: linear, tanh, relu, leaky_relu, gelu, silu
    #[arg(long, default_value = "relu")]
    act: String,
    /// Seed of the weights (and of the batch order when training)
    #[arg(long, default_value_t = 0)]
    seed: u64,
    /// Train this many PC iterations first (default rates, T = H, B = 64); 0: at initialisation
    #[arg(long, default_value_t = 0)]
    iters: usize,
    #[command(flatten)]
    lanczos: LanczosArgs,
    /// Print one JSON object
    #[arg(long)]
    json: bool,
    /// At initialisation with Lanczos: print the estimates every this many iterations on stderr
    #[arg(long, value_name = "K")]
    trace: Option<usize>,
    /// Where it runs: cpu (float64) or gpu (f32 kernels: Hessian-vector products and Lanczos)
    #[arg(long, default_value = "cpu")]
    backend: String,
    /// With --backend gpu: κ at each of the first K samples of the batch, as K problems side by side
    #[arg(long, value_name = "K", default_value_t = 1)]
    samples: usize,
}

#[derive(Args)]
struct SweepArgs {
    /// Widths N, comma-separated
    #[arg(long, value_delimiter = ',', default_value = "16")]
    widths: Vec<usize>,
    /// Depths H, comma-separated
    #[arg(long, value_delimiter = ',', default_value = "1,2,4,8,16,32")]
    depths: Vec<usize>,
    /// Seeds, comma-separated
    #[arg(long, value_delimiter = ',', default_value = "0,1,2")]
    seeds: Vec<u64>,
    /// Parameterisations, comma-separated: sp, sp_noskip, mupc
    #[arg(long, value_delimiter = ',', default_value = "sp,sp_noskip,mupc")]
    params: Vec<String>,
    /// Activation
    #[arg(long, default_value = "linear")]
    act: String,
    #[command(flatten)]
    lanczos: LanczosArgs,
    /// One JSON line per (param, width, depth, seed) instead of a table
    #[arg(long)]
    json: bool,
}

/// Network and rule options shared by `train` and `bench`. Unset options take the preset's value,
/// else the default.
#[derive(Args, Clone)]
struct NetArgs {
    /// Rules to train, comma-separated: mupc, sp, bp_mup, bp_sp [default: mupc]
    #[arg(long, value_delimiter = ',')]
    rules: Option<Vec<String>>,
    /// Hidden layers H [default: 8]
    #[arg(long)]
    depth: Option<usize>,
    /// Width N of every hidden layer [default: 128]
    #[arg(long)]
    width: Option<usize>,
    /// Activation: linear, tanh, relu, leaky_relu, gelu, silu [default: relu]
    #[arg(long)]
    act: Option<String>,
    /// Inference steps T per iteration [default: H]
    #[arg(long)]
    steps: Option<usize>,
    /// Batch size B [default: 64]
    #[arg(long)]
    batch: Option<usize>,
    /// Turn the residual skips off (standard PC only in the paper)
    #[arg(long)]
    no_skips: bool,
    /// Weight learning rate η_w (Adam) for μPC [default: 0.1]
    #[arg(long, allow_negative_numbers = true)]
    lr_mupc: Option<f64>,
    /// Weight learning rate η_w (Adam) for standard PC [default: 0.01]
    #[arg(long, allow_negative_numbers = true)]
    lr_sp: Option<f64>,
    /// Weight learning rate for BP Depth-μP (and BP standard unless --lr-bp-sp) [default: 0.01]
    #[arg(long, allow_negative_numbers = true)]
    lr_bp: Option<f64>,
    /// Weight learning rate for BP standard [default: --lr-bp, else 0.001]
    #[arg(long, allow_negative_numbers = true)]
    lr_bp_sp: Option<f64>,
    /// Activity learning rate η_z for every PC rule [defaults: μPC 0.5, standard PC 0.1]
    #[arg(long, allow_negative_numbers = true)]
    eta_z: Option<f64>,
    /// η_z for μPC only (overrides --eta-z)
    #[arg(long, allow_negative_numbers = true)]
    eta_z_mupc: Option<f64>,
    /// η_z for standard PC only (overrides --eta-z)
    #[arg(long, allow_negative_numbers = true)]
    eta_z_sp: Option<f64>,
    /// Seed of the weights and the batch order [default: 0]
    #[arg(long)]
    seed: Option<u64>,
    /// cpu or gpu [default: cpu]
    #[arg(long)]
    backend: Option<String>,
    /// Start from a preset: fig1-relu-h8 … fig1-relu-h128 (and -small variants at N = 128), tutorial,
    /// pc-vs-bp, explode, conditioning, lr-transfer (other options override its values)
    #[arg(long)]
    preset: Option<String>,
    /// Folder with the four MNIST .gz files [default: the copy built into pclab]
    #[arg(long)]
    data: Option<PathBuf>,
}

#[derive(Args)]
struct TrainArgs {
    #[command(flatten)]
    net: NetArgs,
    /// Training iterations [default: 300]
    #[arg(long, conflicts_with = "epochs")]
    iters: Option<usize>,
    /// Train for whole epochs instead of --iters
    #[arg(long)]
    epochs: Option<usize>,
    /// Test accuracy every this many iterations (and after the last) [default: 100]
    #[arg(long)]
    eval_every: Option<usize>,
    /// Write JSON lines (config, iterations, evaluations, the last inference trace) to FILE
    #[arg(long, value_name = "FILE")]
    metrics: Option<PathBuf>,
    /// GPU runs: read the per-iteration metrics back every K iterations (the CPU reports every one)
    #[arg(long, value_name = "K")]
    metrics_every: Option<usize>,
    /// Write the page's plots (accuracy, loss, energy heatmap, activation RMS, weight change) to DIR as SVG and PNG
    #[arg(long, value_name = "DIR")]
    plots: Option<PathBuf>,
}

#[derive(Args)]
struct SweepLrArgs {
    #[command(flatten)]
    net: NetArgs,
    /// Depths H to compare, comma-separated (the grid runs at each) [default: 8,32]
    #[arg(long, value_delimiter = ',', conflicts_with = "widths")]
    depths: Option<Vec<usize>>,
    /// Widths N to compare instead of depths, comma-separated
    #[arg(long, value_delimiter = ',')]
    widths: Option<Vec<usize>>,
    /// Weight learning rates η_w [default: the paper's 0.5,0.1,0.05,0.01]
    #[arg(long, value_delimiter = ',')]
    lrs: Option<Vec<f64>>,
    /// Inference rates η_z [default: the paper's 1000,500,100,50,10,5,1,0.5,0.1,0.05,0.01]
    #[arg(long, value_delimiter = ',')]
    eta_zs: Option<Vec<f64>>,
    /// Training iterations per cell
    #[arg(long, default_value_t = 100)]
    iters: usize,
    /// One JSON line per cell instead of tables
    #[arg(long)]
    json: bool,
}

#[derive(Args)]
struct BenchArgs {
    #[command(flatten)]
    net: NetArgs,
    /// Untimed iterations first
    #[arg(long, default_value_t = 3)]
    warmup: usize,
    /// Timed iterations (the median is reported)
    #[arg(long, default_value_t = 10)]
    reps: usize,
    /// With --backend gpu: also time each kernel of one iteration with GPU timestamp queries (its
    /// ms, counted FLOPs and bytes, GFLOP/s and GB/s)
    #[arg(long)]
    kernels: bool,
    /// Print one JSON object per rule instead of text
    #[arg(long)]
    json: bool,
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    let result = match cli.command {
        Command::Train(a) => train(a),
        Command::Bench(a) => bench(a),
        Command::Hessian(a) => hessian(a),
        Command::SweepKappa(a) => sweep_kappa(a),
        Command::SweepLr(a) => sweep_lr(a),
        Command::Reproduce(a) => reproduce::reproduce(a),
        Command::Report(a) => reproduce::report(a),
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(msg) => {
            eprintln!("error: {msg}");
            ExitCode::from(2)
        }
    }
}

const EMBEDDED: [&[u8]; 4] = [
    include_bytes!("../../www/data/mnist/train-images-idx3-ubyte.gz"),
    include_bytes!("../../www/data/mnist/train-labels-idx1-ubyte.gz"),
    include_bytes!("../../www/data/mnist/t10k-images-idx3-ubyte.gz"),
    include_bytes!("../../www/data/mnist/t10k-labels-idx1-ubyte.gz"),
];

fn load_data(dir: &Option<PathBuf>) -> Result<Mnist, String> {
    match dir {
        Some(d) => Mnist::load_dir(d),
        None => Mnist::from_gz(EMBEDDED),
    }
    .map_err(|e| e.to_string())
}

/// The configuration the options describe: the preset (or defaults), then every option given.
fn build_config(a: &NetArgs, train_len: usize) -> Result<RunConfig, String> {
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

fn train(a: TrainArgs) -> Result<(), String> {
    let data = Arc::new(load_data(&a.net.data)?);
    let mut c = build_config(&a.net, data.train.len())?;
    if let Some(v) = a.iters {
        c.iterations = v;
    }
    if let Some(e) = a.epochs {
        if e == 0 {
            return Err("epochs must be at least 1, got 0".into());
        }
        c.iterations = c.iterations_for_epochs(e, data.train.len());
    }
    if let Some(v) = a.eval_every {
        c.eval_every = v;
    }
    if let Some(v) = a.metrics_every {
        c.metrics_every = v;
    }
    let mut session = Session::new(c.clone(), data).map_err(|e| e.to_string())?;
    let mut metrics = match &a.metrics {
        Some(p) => Some(BufWriter::new(
            std::fs::File::create(p).map_err(|e| format!("cannot write metrics file {}: {e}", p.display()))?,
        )),
        None => None,
    };
    let mut write = |v: serde_json::Value| -> Result<(), String> {
        if let Some(w) = metrics.as_mut() {
            writeln!(w, "{v}").map_err(|e| format!("writing metrics: {e}"))?;
        }
        Ok(())
    };
    write(json!({"kind": "config", "config": c, "version": pclab::VERSION}))?;

    let rules: Vec<&str> = c.rules.iter().map(|r| r.rule.name()).collect();
    println!(
        "pclab {} · {} · H={} N={} {} T={} B={} {} iterations{} · seed {} · {} backend",
        pclab::VERSION,
        rules.join(", "),
        c.depth,
        c.width,
        c.act,
        c.inference_steps(),
        c.batch,
        c.iterations,
        if c.skips { "" } else { " · no skips" },
        c.seed,
        session.runs[0].backend.name(),
    );
    if let Some(run) = session.runs.first() {
        warn_if_software(&run.backend);
    }
    let bar = ProgressBar::new(c.iterations as u64);
    bar.set_style(
        ProgressStyle::with_template("{bar:30} {pos}/{len} it · {per_sec} · eta {eta} · {msg}")
            .unwrap_or_else(|_| ProgressStyle::default_bar()),
    );
    let started = Instant::now();
    while !session.is_finished() {
        for ev in session.step() {
            match &ev {
                Event::Iteration(s) => {
                    let r = &s.report;
                    write(json!({
                        "kind": "iteration", "rule": s.rule, "iteration": s.iteration, "epoch": s.epoch,
                        "ms": s.ms, "train_loss": r.loss, "objective": r.objective,
                        "energies_ffwd": r.energies_ffwd, "energies_post": r.energies_post,
                        "act_rms": r.act_rms, "rel_dw": r.rel_dw, "finite": r.finite,
                    }))?;
                }
                Event::Eval(e) => {
                    say(
                        &bar,
                        format!(
                            "iteration {:>6}  {:<7} test accuracy {:6.2} %  train loss {:.4}",
                            e.iteration, e.rule, e.test_accuracy, e.train_loss
                        ),
                    );
                    write(json!({"kind": "eval", "rule": e.rule, "iteration": e.iteration,
                        "test_accuracy": e.test_accuracy, "train_loss": e.train_loss}))?;
                }
                Event::Diverged { rule, iteration, layer, site } => {
                    say(&bar, format!("iteration {iteration:>6}  {rule:<7} diverged, first at {site}: this run stops"));
                    write(
                        json!({"kind": "diverged", "rule": rule, "iteration": iteration, "layer": layer, "site": site}),
                    )?;
                }
                Event::Failed { rule, iteration, message } => {
                    say(&bar, format!("iteration {iteration:>6}  {rule:<7} failed: {message}"));
                    write(json!({"kind": "failed", "rule": rule, "iteration": iteration, "message": message}))?;
                }
            }
        }
        let msg: Vec<String> = session
            .runs
            .iter()
            .map(|r| match (&r.status, r.loss.last()) {
                (RunStatus::Diverged { .. }, _) => format!("{} diverged", r.name()),
                (RunStatus::Failed { .. }, _) => format!("{} failed", r.name()),
                (_, Some((_, l))) => format!("{} {l:.4}", r.name()),
                _ => r.name().to_string(),
            })
            .collect();
        let epoch = session.iteration() as f64 / session.batches_per_epoch().max(1) as f64;
        bar.set_message(format!("epoch {epoch:.2} · {}", msg.join(" · ")));
        bar.set_position(session.iteration() as u64);
    }
    bar.finish_and_clear();
    for run in &session.runs {
        if let Some(r) = &run.last {
            if !r.energy_steps.is_empty() {
                write(json!({"kind": "inference", "rule": run.name(), "iteration": session.iteration(),
                    "energy_steps": r.energy_steps}))?;
            }
        }
    }
    if let Some(mut w) = metrics {
        w.flush().map_err(|e| format!("writing metrics: {e}"))?;
    }

    println!("\n{:<14} {:>10} {:>10} {:>11} {:>10}  status", "rule", "test acc", "best acc", "train loss", "ms/iter");
    for run in &session.runs {
        let acc = run.accuracy.last().map_or("-".into(), |(_, a)| format!("{a:.2} %"));
        let best = run.accuracy.points().iter().map(|p| p.1).fold(f64::NAN, f64::max);
        let best = if best.is_nan() { "-".into() } else { format!("{best:.2} %") };
        let loss = run.loss.last().map_or("-".into(), |(_, l)| format!("{l:.4}"));
        let iters = match &run.status {
            RunStatus::Diverged { iteration, .. } | RunStatus::Failed { iteration, .. } => *iteration,
            RunStatus::Running => session.iteration(),
        };
        let status = match &run.status {
            RunStatus::Running => "trained".to_string(),
            RunStatus::Diverged { iteration, layer: Some(l), .. } => format!("diverged at {iteration}, layer {l}"),
            RunStatus::Diverged { iteration, .. } => format!("diverged at iteration {iteration}"),
            RunStatus::Failed { iteration, message } => format!("failed at iteration {iteration}: {message}"),
        };
        println!(
            "{:<14} {acc:>10} {best:>10} {loss:>11} {:>10.2}  {status}",
            run.settings.rule.label(),
            run.total_ms / iters.max(1) as f64
        );
    }
    println!("{} iterations in {:.1} s", session.iteration(), started.elapsed().as_secs_f64());
    if let Some(dir) = &a.plots {
        let files = pclab::charts::figures::write_plots(&session, dir, (900, 520))?;
        println!("{} plot files in {}", files.len(), dir.display());
    }
    Ok(())
}

use pclab::presets::{PAPER_ETA_ZS, PAPER_LRS};

fn sweep_lr(a: SweepLrArgs) -> Result<(), String> {
    let data = Arc::new(load_data(&a.net.data)?);
    let base = build_config(&a.net, data.train.len())?;
    let rule = base.rules.iter().map(|r| r.rule).find(|r| r.is_pc()).ok_or("sweep-lr needs a PC rule (mupc or sp)")?;
    let lrs = a.lrs.clone().unwrap_or(PAPER_LRS.to_vec());
    let eta_zs = a.eta_zs.clone().unwrap_or(PAPER_ETA_ZS.to_vec());
    let sizes: Vec<(usize, usize)> = match (&a.widths, &a.depths) {
        (Some(ws), _) => ws.iter().map(|&w| (w, base.depth)).collect(),
        (None, Some(hs)) => hs.iter().map(|&h| (base.width, h)).collect(),
        (None, None) => [8, 32].iter().map(|&h| (base.width, h)).collect(),
    };
    if a.iters == 0 || lrs.is_empty() || eta_zs.is_empty() || sizes.is_empty() {
        return Err("sweep-lr needs at least one iteration, η_w, η_z and depth (or width)".into());
    }
    let mut cells = Vec::new();
    for &(width, depth) in &sizes {
        for &lr in &lrs {
            for &eta_z in &eta_zs {
                let c = RunConfig {
                    width,
                    depth,
                    // T follows H unless it was set.
                    steps: a.net.steps.or(base.steps.filter(|_| a.net.depth.is_none() && a.depths.is_none())),
                    rules: vec![RuleSettings { rule, lr, eta_z }],
                    iterations: a.iters,
                    eval_every: a.iters,
                    ..base.clone()
                };
                c.validate(data.train.len()).map_err(|e| e.to_string())?;
                cells.push(c);
            }
        }
    }
    let bar = ProgressBar::new(cells.len() as u64);
    bar.set_style(
        ProgressStyle::with_template("{bar:30} {pos}/{len} cells · eta {eta} · {msg}")
            .unwrap_or_else(|_| ProgressStyle::default_bar()),
    );
    let mut results = Vec::new();
    for c in cells {
        let (width, depth, lr, eta_z) = (c.width, c.depth, c.rules[0].lr, c.rules[0].eta_z);
        bar.set_message(format!("N={width} H={depth} η_w={lr} η_z={eta_z}"));
        let mut session = Session::new(c, data.clone()).map_err(|e| e.to_string())?;
        while !session.is_finished() {
            session.step();
        }
        let run = &session.runs[0];
        let min_loss = run.loss.points().iter().map(|p| p.1).filter(|l| l.is_finite()).fold(f64::INFINITY, f64::min);
        let diverged = match run.status {
            RunStatus::Diverged { iteration, .. } | RunStatus::Failed { iteration, .. } => Some(iteration),
            RunStatus::Running => None,
        };
        let v = json!({
            "param": rule.name(), "width": width, "depth": depth, "lr": lr, "eta_z": eta_z,
            "iterations": a.iters, "min_loss": if min_loss.is_finite() { json!(min_loss) } else { json!(null) },
            "final_loss": run.loss.last().map(|p| p.1), "test_accuracy": run.accuracy.last().map(|p| p.1),
            "diverged": diverged,
        });
        if a.json {
            bar.suspend(|| println!("{v}"));
        }
        results.push(v);
        bar.inc(1);
    }
    bar.finish_and_clear();
    if !a.json {
        for &(width, depth) in &sizes {
            println!(
                "\n{} N={width} H={depth}: minimum training loss over {} iterations (rows η_w, columns η_z)",
                rule.label(),
                a.iters
            );
            print!("{:>8}", "η_w \\ η_z");
            eta_zs.iter().for_each(|e| print!(" {e:>8}"));
            println!();
            for &lr in &lrs {
                print!("{lr:>8}");
                for &e in &eta_zs {
                    let cell = results.iter().find(|v| {
                        v["width"] == width
                            && v["depth"] == depth
                            && v["lr"].as_f64() == Some(lr)
                            && v["eta_z"].as_f64() == Some(e)
                    });
                    match cell.map(|v| (v["min_loss"].as_f64(), v["diverged"].as_u64())) {
                        Some((Some(l), None)) => print!(" {l:>8.4}"),
                        Some((_, Some(_))) | Some((None, None)) => print!(" {:>8}", "div"),
                        None => print!(" {:>8}", "-"),
                    }
                }
                println!();
            }
        }
    }
    Ok(())
}

/// A line above the progress bar, or plainly when there is no terminal to draw one on.
fn say(bar: &ProgressBar, line: String) {
    if bar.is_hidden() {
        println!("{line}");
    } else {
        bar.println(line);
    }
}

fn median(v: &mut [f64]) -> f64 {
    v.sort_by(f64::total_cmp);
    let n = v.len();
    if n % 2 == 1 {
        v[n / 2]
    } else {
        0.5 * (v[n / 2 - 1] + v[n / 2])
    }
}

/// Says on stderr when a GPU run is on a software adapter (lavapipe, SwiftShader, WARP).
fn warn_if_software(backend: &Backend) {
    if let Some(m) = backend.gpu() {
        if m.context().is_software() {
            eprintln!(
                "warning: {} is a software adapter (a CPU): GPU timings here say nothing about a GPU",
                m.context().describe()
            );
        }
    }
}

/// Adapter and dispatch facts of a GPU run, for bench's JSON.
fn gpu_facts(backend: &Backend) -> Option<serde_json::Value> {
    warn_if_software(backend);
    let m = backend.gpu()?;
    let ctx = m.context();
    let (per_iteration, per_step) = m.count_dispatches();
    Some(json!({
        "adapter": ctx.info.name, "adapter_type": format!("{:?}", ctx.info.device_type),
        "adapter_backend": format!("{:?}", ctx.info.backend),
        "dispatches_per_inference_step": per_step.first().copied().unwrap_or(0),
        "dispatches_per_iteration": per_iteration,
    }))
}

fn bench(a: BenchArgs) -> Result<(), String> {
    if a.reps == 0 {
        return Err("reps must be at least 1, got 0".into());
    }
    let data = load_data(&a.net.data)?;
    let mut c = build_config(&a.net, data.train.len())?;
    c.iterations = a.warmup + a.reps;
    c.validate(data.train.len()).map_err(|e| e.to_string())?;
    let indices: Vec<usize> = (0..c.batch).collect();
    let (x, y) = data.train.batch::<f32>(&indices);
    for rs in &c.rules {
        let mut backend = Backend::new(&c, rs).map_err(|e| e.to_string())?;
        let arch = c.arch(rs.rule);
        let (nominal, executed) = iteration_flops(&arch, c.learning(rs), c.batch);
        let gpu = gpu_facts(&backend);
        for i in 0..a.warmup {
            backend.train_step(i + 1, &indices, &x, &y).map_err(|e| e.to_string())?;
        }
        pollster::block_on(backend.flush()).map_err(|e| e.to_string())?;
        if a.kernels {
            kernel_table(&mut backend, &x, &y, a.json, rs.rule.name())?;
        }
        let mut ms = Vec::with_capacity(a.reps);
        let started = Instant::now();
        for i in 0..a.reps {
            let t0 = Instant::now();
            backend.train_step(a.warmup + i + 1, &indices, &x, &y).map_err(|e| e.to_string())?;
            ms.push(t0.elapsed().as_secs_f64() * 1e3);
        }
        pollster::block_on(backend.flush()).map_err(|e| e.to_string())?;
        let total_ms = started.elapsed().as_secs_f64() * 1e3;
        let min = ms.iter().copied().fold(f64::INFINITY, f64::min);
        // The CPU runs an iteration per call: the median call. A GPU run is pipelined (a call
        // submits and returns), so its figure is the whole timed run, drained, per iteration.
        let (med, timing, min) = if backend.is_pipelined() {
            (total_ms / a.reps as f64, "mean, pipelined", None)
        } else {
            (median(&mut ms), "median", Some(min))
        };
        let gflops = nominal / (med * 1e-3) / 1e9;
        let gflops_executed = executed / (med * 1e-3) / 1e9;
        if a.json {
            let mut v = json!({
                "rule": rs.rule.name(), "backend": backend.name(), "depth": c.depth, "width": c.width,
                "steps": c.inference_steps(), "batch": c.batch, "act": c.act, "reps": a.reps,
                "ms_per_iteration": med, "timing": timing, "ms_min": min, "gflops": gflops,
                "gflop_per_iteration": nominal / 1e9, "gflops_executed": gflops_executed,
                "gflop_executed_per_iteration": executed / 1e9,
            });
            if let (Some(obj), Some(extra)) = (v.as_object_mut(), gpu.as_ref().and_then(|g| g.as_object())) {
                obj.extend(extra.clone());
            }
            println!("{v}");
        } else {
            println!(
                "{:<7} H={} N={} T={} B={} {}: {med:.2} ms/iteration ({timing}), {gflops:.1} GFLOP/s \
                 ({:.3} GFLOP/iteration; {:.3} GFLOP executed, {gflops_executed:.1} GFLOP/s)",
                rs.rule.name(),
                c.depth,
                c.width,
                c.inference_steps(),
                c.batch,
                backend.name(),
                nominal / 1e9,
                executed / 1e9
            );
        }
    }
    Ok(())
}

/// `bench --kernels`: one iteration with every dispatch timed on the GPU, per kernel.
fn kernel_table(
    backend: &mut Backend,
    x: &pclab::pcn::Mat<f32>,
    y: &pclab::pcn::Mat<f32>,
    json: bool,
    rule: &str,
) -> Result<(), String> {
    let Some(m) = backend.gpu_mut() else {
        return Err("--kernels times the GPU's kernels: add --backend gpu".into());
    };
    let times = pollster::block_on(m.profile_kernels(x, y)).map_err(|e| e.to_string())?;
    pollster::block_on(m.flush()).map_err(|e| e.to_string())?;
    let total: f64 = times.iter().map(|k| k.ms).sum();
    if json {
        for k in &times {
            println!(
                "{}",
                json!({"kind": "kernel", "rule": rule, "kernel": k.name, "dispatches": k.dispatches, "ms": k.ms,
                       "share": k.ms / total.max(1e-12), "gflop": k.flops / 1e9, "gbytes": k.bytes / 1e9,
                       "gflops": k.gflops(), "gbps": k.gbps()})
            );
        }
        return Ok(());
    }
    println!(
        "{rule}: GPU time per kernel, one iteration ({} in {} dispatches, timestamp queries)",
        m.context().describe(),
        times.iter().map(|k| k.dispatches).sum::<usize>()
    );
    println!(
        "  {:<14} {:>10} {:>10} {:>7} {:>10} {:>10} {:>10} {:>10}",
        "kernel", "dispatches", "ms", "share", "GFLOP", "GB", "GFLOP/s", "GB/s"
    );
    for k in &times {
        println!(
            "  {:<14} {:>10} {:>10.3} {:>6.1}% {:>10.3} {:>10.3} {:>10.1} {:>10.1}",
            k.name,
            k.dispatches,
            k.ms,
            100.0 * k.ms / total.max(1e-12),
            k.flops / 1e9,
            k.bytes / 1e9,
            k.gflops(),
            k.gbps()
        );
    }
    println!("  {:<14} {:>10} {total:>10.3}", "total", "");
    Ok(())
}

/// Checks a network size for the conditioning commands (they run in float64 on the CPU).
fn check_size(width: usize, depth: usize) -> Result<(), String> {
    if !(1..=4096).contains(&width) || !(1..=1024).contains(&depth) {
        return Err(format!("width must be 1…4096 and depth 1…1024, got N={width}, H={depth}"));
    }
    if width * depth > 1 << 17 {
        return Err(format!("N·H = {} is beyond what the float64 CPU Hessian handles here (131072)", width * depth));
    }
    Ok(())
}

fn extremes_json(
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

fn hessian(a: HessianArgs) -> Result<(), String> {
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
type Trained = (pclab::pcn::train::Model<f32>, pclab::pcn::Mat<f32>, pclab::pcn::Mat<f32>);

/// A PC model of `arch` trained `iters` iterations (default rates, `T = H`, `B = 64`), with the
/// last batch.
fn train_pc(arch: pclab::pcn::Arch, seed: u64, steps: usize, iters: usize, data: &Mnist) -> Result<Trained, String> {
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

fn sweep_kappa(a: SweepArgs) -> Result<(), String> {
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
