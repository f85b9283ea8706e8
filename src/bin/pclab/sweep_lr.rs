//! `pclab sweep-lr`: the minimum training loss over a grid of (η_w, η_z) at several depths or
//! widths, on one machine (`pclab reproduce lr-depth` is the sharded form).

use crate::load_data;
use crate::net::{build_config, NetArgs};
use clap::Args;
use indicatif::{ProgressBar, ProgressStyle};
use pclab::config::{RuleSettings, RunConfig};
use pclab::presets::{PAPER_ETA_ZS, PAPER_LRS};
use pclab::session::{RunStatus, Session};
use serde_json::json;
use std::sync::Arc;

#[derive(Args)]
pub(crate) struct SweepLrArgs {
    #[command(flatten)]
    pub(crate) net: NetArgs,
    /// Depths H to compare, comma-separated (the grid runs at each) [default: 8,32]
    #[arg(long, value_delimiter = ',', conflicts_with = "widths")]
    pub(crate) depths: Option<Vec<usize>>,
    /// Widths N to compare instead of depths, comma-separated
    #[arg(long, value_delimiter = ',')]
    pub(crate) widths: Option<Vec<usize>>,
    /// Weight learning rates η_w [default: the paper's 0.5,0.1,0.05,0.01]
    #[arg(long, value_delimiter = ',')]
    pub(crate) lrs: Option<Vec<f64>>,
    /// Inference rates η_z [default: the paper's 1000,500,100,50,10,5,1,0.5,0.1,0.05,0.01]
    #[arg(long, value_delimiter = ',')]
    pub(crate) eta_zs: Option<Vec<f64>>,
    /// Training iterations per cell
    #[arg(long, default_value_t = 100)]
    pub(crate) iters: usize,
    /// One JSON line per cell instead of tables
    #[arg(long)]
    pub(crate) json: bool,
}

pub(crate) fn sweep_lr(a: SweepLrArgs) -> Result<(), String> {
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
