//! `pclab train`: rules in lockstep on MNIST, with a progress bar, evaluations, a summary table,
//! metrics as JSON lines and figures.

use crate::net::{build_config, NetArgs};
use crate::{load_data, say, warn_if_software};
use clap::Args;
use indicatif::{ProgressBar, ProgressStyle};
use pclab::session::{Event, RunStatus, Session};
use serde_json::json;
use std::io::{BufWriter, Write};
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Instant;

#[derive(Args)]
pub(crate) struct TrainArgs {
    #[command(flatten)]
    pub(crate) net: NetArgs,
    /// Training iterations [default: 300]
    #[arg(long, conflicts_with = "epochs")]
    pub(crate) iters: Option<usize>,
    /// Train for whole epochs instead of --iters
    #[arg(long)]
    pub(crate) epochs: Option<usize>,
    /// Test accuracy every this many iterations (and after the last) [default: 100]
    #[arg(long)]
    pub(crate) eval_every: Option<usize>,
    /// Write JSON lines (config, iterations, evaluations, the last inference trace) to FILE
    #[arg(long, value_name = "FILE")]
    pub(crate) metrics: Option<PathBuf>,
    /// GPU runs: read the per-iteration metrics back every K iterations (the CPU reports every one)
    #[arg(long, value_name = "K")]
    pub(crate) metrics_every: Option<usize>,
    /// Write the page's plots (accuracy, loss, energy heatmap, activation RMS, weight change and,
    /// with --align-every, the gradient alignment) to DIR as SVG and PNG
    #[arg(long, value_name = "DIR")]
    pub(crate) plots: Option<PathBuf>,
    /// PC rules: compare the weight gradients with backprop's every K iterations (per layer and
    /// per inference step; `alignment` lines in --metrics, a table at the end)
    #[arg(long, value_name = "K")]
    pub(crate) align_every: Option<usize>,
}

pub(crate) fn train(a: TrainArgs) -> Result<(), String> {
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
    if let Some(k) = a.align_every {
        if k == 0 {
            return Err("align-every must be at least 1, got 0".into());
        }
        c.align_every = k;
    }
    let mut session = Session::new(c.clone(), data).map_err(|e| e.to_string())?;
    let mut metrics = match &a.metrics {
        Some(p) => Some(BufWriter::new(
            std::fs::File::create(p).map_err(|e| format!("cannot write metrics file {}: {e}", p.display()))?,
        )),
        None => None,
    };
    let mut write = |v: Result<serde_json::Value, serde_json::Error>| -> Result<(), String> {
        let v = v.map_err(|e| format!("writing metrics: {e}"))?;
        if let Some(w) = metrics.as_mut() {
            writeln!(w, "{v}").map_err(|e| format!("writing metrics: {e}"))?;
        }
        Ok(())
    };
    write(Ok(json!({"kind": "config", "config": c, "version": pclab::VERSION})))?;

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
                Event::Iteration(s) => write(serde_json::to_value(IterationLine::of(s)))?,
                Event::Eval(e) => {
                    say(
                        &bar,
                        format!(
                            "iteration {:>6}  {:<7} test accuracy {:6.2} %  train loss {:.4}",
                            e.iteration, e.rule, e.test_accuracy, e.train_loss
                        ),
                    );
                    write(serde_json::to_value(&ev))?;
                }
                Event::Diverged { rule, iteration, site, .. } => {
                    say(&bar, format!("iteration {iteration:>6}  {rule:<7} diverged, first at {site}: this run stops"));
                    write(serde_json::to_value(&ev))?;
                }
                Event::Failed { rule, iteration, message } => {
                    say(&bar, format!("iteration {iteration:>6}  {rule:<7} failed: {message}"));
                    write(serde_json::to_value(&ev))?;
                }
                Event::Alignment(_) => write(serde_json::to_value(&ev))?,
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
                write(Ok(json!({"kind": "inference", "rule": run.name(), "iteration": session.iteration(),
                    "energy_steps": r.energy_steps})))?;
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
            stopped => stopped.to_string(),
        };
        println!(
            "{:<14} {acc:>10} {best:>10} {loss:>11} {:>10.2}  {status}",
            run.settings.rule.label(),
            run.total_ms / iters.max(1) as f64
        );
    }
    println!("{} iterations in {:.1} s", session.iteration(), started.elapsed().as_secs_f64());
    alignment_table(&session);
    if let Some(dir) = &a.plots {
        let files = pclab::charts::figures::write_plots(&session, dir, (900, 520))?;
        println!("{} plot files in {}", files.len(), dir.display());
    }
    Ok(())
}

/// One line of `--metrics` per rule per iteration: the sample with its report's scalars and
/// per-layer vectors flattened beside it (the energies of every inference step come once, at the
/// end, as the `inference` line).
#[derive(serde::Serialize)]
struct IterationLine<'a> {
    kind: &'static str,
    rule: &'static str,
    iteration: usize,
    epoch: usize,
    ms: f64,
    train_loss: f64,
    objective: f64,
    energies_ffwd: &'a [f64],
    energies_post: &'a [f64],
    act_rms: &'a [f64],
    rel_dw: &'a [f64],
    finite: bool,
}

impl<'a> IterationLine<'a> {
    fn of(s: &'a pclab::session::IterationSample) -> Self {
        let r = &s.report;
        IterationLine {
            kind: "iteration",
            rule: s.rule,
            iteration: s.iteration,
            epoch: s.epoch,
            ms: s.ms,
            train_loss: r.loss,
            objective: r.objective,
            energies_ffwd: &r.energies_ffwd,
            energies_post: &r.energies_post,
            act_rms: &r.act_rms,
            rel_dw: &r.rel_dw,
            finite: r.finite,
        }
    }
}

/// PC's gradients against backprop's at each PC rule's latest aligned iteration, per layer.
fn alignment_table(session: &Session) {
    let runs: Vec<_> = session.runs.iter().filter_map(|r| Some((r, r.last_alignment.as_ref()?))).collect();
    if runs.is_empty() {
        return;
    }
    println!("\nPC's weight gradient against backprop's after inference (cosine / norm ratio ‖∂F/∂W_l‖ / ‖∂ℓ̃/∂W_l‖, ℓ̃ = ½·mean‖y − ŷ‖²; – no PC gradient):");
    print!("{:>6}", "layer");
    for (run, (at, _)) in &runs {
        print!("  {:>24}", format!("{} (it. {at})", run.name()));
    }
    println!();
    let layers = runs.iter().map(|(_, (_, a))| a.last().len()).max().unwrap_or(0);
    for l in 0..layers {
        print!("{:>6}", l + 1);
        for (_, (_, a)) in &runs {
            let cell = match a.last().get(l).copied().flatten() {
                Some(x) => format!("{:.4} / {:.3}", x.cosine, x.norm_ratio),
                None => "–".into(),
            };
            print!("  {cell:>24}");
        }
        println!();
    }
    for (run, (_, a)) in &runs {
        if let Some(p) = pclab::session::AlignmentPoint::of(a) {
            println!(
                "{}: median cosine {:.4} (from {:.4} to {:.4}), F after inference / ℓ̃ = {:.4}",
                run.name(),
                p.median,
                p.min,
                p.max,
                p.energy_ratio
            );
        }
    }
}
