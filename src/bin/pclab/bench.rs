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
    /// Run nothing: print the throughput model's per-kernel time of one PC iteration of this
    /// network on an H200-class GPU, for the kernels before conflict-free staging and today's
    #[arg(long)]
    pub(crate) predict: bool,
    /// PC rules: also time training that compares its gradients with backprop's every K
    /// iterations, in blocks of K alternating with blocks without (the --reps median of each)
    #[arg(long, value_name = "K")]
    pub(crate) align_every: Option<usize>,
    /// PC rules on the CPU: time one worker (one thread) against a pool of W worker threads on
    /// the plan the page would choose for W workers, iterations alternated, medians of each
    #[arg(long, value_name = "W")]
    pub(crate) pool: Option<usize>,
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
    if a.predict {
        return predict_table(&c, a.json);
    }
    if let Some(w) = a.pool {
        return pool_table(&c, &data, w, a.warmup, a.reps, a.json);
    }
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
            backend.train_step(i + 1, &indices, &x, &y, false).map_err(|e| e.to_string())?;
        }
        pollster::block_on(backend.flush()).map_err(|e| e.to_string())?;
        if a.kernels {
            kernel_table(&mut backend, &x, &y, a.json, rs.rule.name())?;
        }
        let mut ms = Vec::with_capacity(a.reps);
        let started = Instant::now();
        for i in 0..a.reps {
            let t0 = Instant::now();
            backend.train_step(a.warmup + i + 1, &indices, &x, &y, false).map_err(|e| e.to_string())?;
            ms.push(t0.elapsed().as_secs_f64() * 1e3);
        }
        pollster::block_on(backend.flush()).map_err(|e| e.to_string())?;
        let total_ms = started.elapsed().as_secs_f64() * 1e3;
        let at = a.warmup + a.reps;
        let align = match a.align_every {
            Some(k) if rs.rule.is_pc() => Some(align_cost(&mut backend, &indices, &x, &y, k, a.reps, at)?),
            _ => None,
        };
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
            if let (Some(obj), Some(c)) = (v.as_object_mut(), &align) {
                obj.insert(
                    "alignment".into(),
                    json!({"every": c.every, "ms_block_off": c.off_ms, "ms_block_on": c.on_ms,
                    "overhead": c.overhead(), "blocks": a.reps}),
                );
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
            if let Some(c) = &align {
                println!(
                    "        alignment every {} iterations: {:.1} ms per {} iterations with it, {:.1} ms without ({:+.1} %, medians of {} blocks each)",
                    c.every,
                    c.on_ms,
                    c.every,
                    c.off_ms,
                    100.0 * c.overhead(),
                    a.reps
                );
            }
        }
    }
    Ok(())
}

/// What comparing gradients with backprop's every `every` iterations costs.
struct AlignCost {
    every: usize,
    /// Median milliseconds of `every` iterations without alignment.
    off_ms: f64,
    /// … and with one aligned iteration among them.
    on_ms: f64,
}

impl AlignCost {
    /// The extra training time, as a fraction.
    fn overhead(&self) -> f64 {
        self.on_ms / self.off_ms - 1.0
    }
}

/// Blocks of `every` iterations, alternately without and with alignment at the block's last
/// iteration, `reps` of each (same machine, same moment: the ratio is what counts).
fn align_cost(
    backend: &mut Backend,
    indices: &[usize],
    x: &pclab::pcn::Mat<f32>,
    y: &pclab::pcn::Mat<f32>,
    every: usize,
    reps: usize,
    mut at: usize,
) -> Result<AlignCost, String> {
    if every == 0 {
        return Err("align-every must be at least 1, got 0".into());
    }
    let (mut off, mut on) = (Vec::with_capacity(reps), Vec::with_capacity(reps));
    for rep in 0..2 * reps {
        let with = rep % 2 == 1;
        let t0 = Instant::now();
        for i in 0..every {
            at += 1;
            backend.train_step(at, indices, x, y, with && i + 1 == every).map_err(|e| e.to_string())?;
        }
        pollster::block_on(backend.flush()).map_err(|e| e.to_string())?;
        let ms = t0.elapsed().as_secs_f64() * 1e3;
        if with {
            on.push(ms)
        } else {
            off.push(ms)
        }
    }
    Ok(AlignCost { every, off_ms: median(&mut off), on_ms: median(&mut on) })
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

/// `bench --predict`: the throughput model's table, before and after, for the first PC rule.
fn predict_table(c: &pclab::config::RunConfig, json: bool) -> Result<(), String> {
    use pclab::gpu::predict::{predict, Kernels, H200};
    let Some(rs) = c.rules.iter().find(|r| r.rule.is_pc()) else {
        return Err("--predict models PC's kernels: name a PC rule (mupc or sp)".into());
    };
    let arch = c.arch(rs.rule);
    let t = c.inference_steps();
    let before = predict(&arch, c.batch, t, Kernels::Before, &H200);
    let after = predict(&arch, c.batch, t, Kernels::After, &H200);
    let total = |v: &[pclab::gpu::predict::Predicted]| v.iter().map(|p| p.ms).sum::<f64>();
    let (tb, ta) = (total(&before), total(&after));
    if json {
        for (which, v) in [("before", &before), ("after", &after)] {
            for p in v.iter() {
                println!(
                    "{}",
                    json!({"kind": "predicted", "kernels": which, "gpu": H200.name, "kernel": p.name,
                           "dispatches": p.dispatches, "ms": p.ms, "bound": p.bound.name()})
                );
            }
        }
        return Ok(());
    }
    println!(
        "{}: modelled GPU time per kernel, one iteration, H={} N={} T={t} B={} on an {} (a model, not a measurement)",
        rs.rule.name(),
        c.depth,
        c.width,
        c.batch,
        H200.name
    );
    println!(
        "  {:<14} {:>20} {:>10}   {:<14} {:>10}   {:<14}",
        "kernel", "dispatches (b → a)", "before ms", "bound", "after ms", "bound"
    );
    let mut names: Vec<&str> = before.iter().chain(after.iter()).map(|p| p.name).collect();
    names.dedup();
    let mut seen = Vec::new();
    for name in names {
        if seen.contains(&name) {
            continue;
        }
        seen.push(name);
        let b = before.iter().find(|p| p.name == name);
        let a = after.iter().find(|p| p.name == name);
        let cell = |p: Option<&pclab::gpu::predict::Predicted>| {
            p.map_or(("–".to_string(), "–".to_string(), "".to_string()), |p| {
                (p.dispatches.to_string(), format!("{:.3}", p.ms), p.bound.name().to_string())
            })
        };
        let (bd, bm, bb) = cell(b);
        let (ad, am, ab) = cell(a);
        println!("  {name:<14} {:>20} {bm:>10}   {bb:<14} {am:>10}   {ab:<14}", format!("{bd} → {ad}"));
    }
    println!("  {:<14} {:>20} {tb:>10.3}   {:<14} {ta:>10.3}", "total", "", "");
    println!(
        "  one epoch of 60 000 / B = {} iterations: {:.1} s before, {:.1} s after ({:.2}× faster)",
        60_000 / c.batch,
        tb * (60_000 / c.batch) as f64 / 1e3,
        ta * (60_000 / c.batch) as f64 / 1e3,
        tb / ta
    );
    Ok(())
}

/// `bench --pool W`: the pool's blocks on W worker threads against the same network on one
/// worker thread, one iteration of each in turn (so both see the same machine), medians.
fn pool_table(
    c: &pclab::config::RunConfig,
    data: &pclab::data::Mnist,
    workers: usize,
    warmup: usize,
    reps: usize,
    json: bool,
) -> Result<(), String> {
    use pclab::pcn::learn::AdamConfig;
    use pclab::pcn::Network;
    use pclab::pool::{threads::ThreadPool, Plan};
    if !(1..=64).contains(&workers) {
        return Err(format!("--pool takes 1 to 64 workers, got {workers}"));
    }
    let indices: Vec<usize> = (0..c.batch).collect();
    let (x, y) = data.train.batch::<f32>(&indices);
    for rs in &c.rules {
        if !rs.rule.is_pc() {
            return Err(format!("--pool times PC rules (mupc, sp); {} runs on one worker", rs.rule.name()));
        }
        let arch = c.arch(rs.rule);
        let learning = c.learning(rs);
        let net: Network<f32> = Network::init(arch, c.seed);
        let plan = pclab::session::backend::pool_plan(
            &arch,
            learning,
            c.batch,
            workers,
            true,
            pclab::session::Exchange::Shared,
        );
        let start = |plan: Plan| ThreadPool::new(&net, plan, learning, rs.lr, AdamConfig::default(), c.batch);
        let mut one = start(Plan::even(arch.layers(), 1))?;
        let mut pool = start(plan.clone())?;
        let (mut t_one, mut t_pool, mut busy) = (Vec::new(), Vec::new(), vec![Vec::new(); plan.workers]);
        for i in 0..warmup + reps {
            let time = |p: &mut ThreadPool| -> Result<f64, String> {
                let t0 = Instant::now();
                p.train_step(i + 1, &x, &y).map_err(|e| e.to_string())?;
                Ok(t0.elapsed().as_secs_f64() * 1e3)
            };
            let (a, b) = (time(&mut one)?, time(&mut pool)?);
            if i >= warmup {
                t_one.push(a);
                t_pool.push(b);
                pool.busy_ms().iter().zip(&mut busy).for_each(|(&ms, v)| v.push(ms));
            }
        }
        let (m_one, m_pool) = (median(&mut t_one), median(&mut t_pool));
        let busy: Vec<f64> = busy.iter_mut().map(|v| median(v)).collect();
        let ratio = m_one / m_pool;
        if json {
            println!(
                "{}",
                json!({"rule": rs.rule.name(), "depth": c.depth, "width": c.width, "steps": c.inference_steps(),
                "batch": c.batch, "workers": plan.workers, "blocks": plan.len(), "reps": reps,
                "ms_one_worker": m_one, "ms_pool": m_pool, "speedup": ratio, "worker_busy_ms": busy})
            );
        } else {
            let busy: Vec<String> = busy.iter().map(|b| format!("{b:.1}")).collect();
            println!(
                "{:<7} H={} N={} T={} B={}: one worker {m_one:.2} ms/iteration, pool of {} ({} blocks) \
                 {m_pool:.2} ms/iteration: {ratio:.2}× (workers busy {} ms; medians of {reps}, alternated)",
                rs.rule.name(),
                c.depth,
                c.width,
                c.inference_steps(),
                c.batch,
                plan.workers,
                plan.len(),
                busy.join(", ")
            );
        }
    }
    Ok(())
}
