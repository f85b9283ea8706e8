//! `pclab bench`: whole training iterations timed (medians after a warm-up), and with
//! `--kernels` every GPU dispatch of one iteration timed by timestamp queries.

use crate::net::{build_config, NetArgs};
use crate::{load_data, median, warn_if_software};
use clap::Args;
use pclab::pcn::train::iteration_flops;
use pclab::session::Backend;
use serde_json::json;
use std::time::Instant;

#[derive(Args)]
pub(crate) struct BenchArgs {
    #[command(flatten)]
    pub(crate) net: NetArgs,
    /// Untimed iterations first
    #[arg(long, default_value_t = 3)]
    pub(crate) warmup: usize,
    /// Timed iterations (the median is reported)
    #[arg(long, default_value_t = 10)]
    pub(crate) reps: usize,
    /// With --backend gpu: also time each kernel of one iteration with GPU timestamp queries (its
    /// ms, counted FLOPs and bytes, GFLOP/s and GB/s)
    #[arg(long)]
    pub(crate) kernels: bool,
    /// Print one JSON object per rule instead of text
    #[arg(long)]
    pub(crate) json: bool,
}

/// Adapter and dispatch facts of a GPU run, for bench's JSON.
pub(crate) fn gpu_facts(backend: &Backend) -> Option<serde_json::Value> {
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

pub(crate) fn bench(a: BenchArgs) -> Result<(), String> {
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
pub(crate) fn kernel_table(
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
