//! The GPU backend against the CPU reference, on whatever adapter wgpu finds (Mesa's lavapipe in
//! CI). A missing adapter fails these tests unless `PCLAB_REQUIRE_GPU=0` (then they are SKIPPED,
//! loudly).
//!
//! Bounds from achievable accuracy: every comparison is against float64 (jpc's fixtures, or the
//! CPU reference in f64 from the same f32 weights), and the GPU's error on each key (a quantity,
//! or one layer of it) must be within `F32_FACTOR` (4) times the CPU f32 path's own error on the
//! same key and input, plus a small floor (`common/fixtures.rs`). A constant bound is loose on easy
//! inputs and fails hard ones (deep tanh, an aggressive η_z, where round-off grows step by step);
//! this one follows the input. The Adam step is checked as an update, `‖ΔW − ΔW_ref‖ / ‖ΔW_ref‖`
//! per layer, so that weights that were never written fail with error 1 in every layer whose
//! update f32 can reproduce at all. Each iteration restarts every f32 path from the reference's
//! weights, so errors do not compound.

mod common;

use common::fixtures::{check_cpu, learning, tol, weights_before, Tol, F32_FACTOR};
use common::*;
use pclab::gpu::{GpuContext, GpuModel, DISPATCHES_PER_INFERENCE_STEP};
use pclab::pcn::learn::AdamConfig;
use pclab::pcn::network::seeded_rng;
use pclab::pcn::train::{IterationReport, Learning, Model};
use pclab::pcn::{Activation, Arch, Mat, Network, Param, Real};
use rand_distr::{Distribution, StandardNormal};
use std::sync::Arc;

fn block<T>(f: impl std::future::Future<Output = T>) -> T {
    pollster::block_on(f)
}

fn batch(arch: &Arch, b: usize, seed: u64) -> (Mat<f32>, Mat<f32>) {
    let mut rng = seeded_rng(seed, 7);
    let x: Vec<f32> = (0..b * arch.input)
        .map(|_| {
            let v: f64 = StandardNormal.sample(&mut rng);
            v as f32
        })
        .collect();
    let mut y = Mat::zeros(b, arch.output);
    for r in 0..b {
        y.data[r * arch.output + (r * 7 + 3) % arch.output] = 1.0;
    }
    (Mat::from_vec(b, arch.input, x).expect("shape"), y)
}

fn cast<A: Real, B: Real>(m: &[Mat<A>]) -> Vec<Mat<B>> {
    m.iter()
        .map(|m| Mat { rows: m.rows, cols: m.cols, data: m.data.iter().map(|&v| B::of(v.f64())).collect() })
        .collect()
}

fn cast1<A: Real, B: Real>(m: &Mat<A>) -> Mat<B> {
    cast(std::slice::from_ref(m)).remove(0)
}

/// What one path computed in one iteration.
struct Got<T> {
    report: IterationReport,
    z: Vec<Mat<T>>,
    grads: Vec<Mat<T>>,
    before: Vec<Mat<T>>,
    after: Vec<Mat<T>>,
}

/// Records one iteration of a path against the float64 reference's.
fn record<T: Real>(c: &mut Checker, p: &str, got: &Got<T>, want: &Got<f64>, pc: bool, tol: &Tol) {
    let (g, w) = (&got.report, &want.report);
    c.scalar(&format!("{p}loss"), g.loss, w.loss, tol.values);
    c.values(&format!("{p}activation RMS"), &g.act_rms, &w.act_rms, tol.values);
    c.values(&format!("{p}relative weight change"), &g.rel_dw, &w.rel_dw, tol.update);
    if pc {
        let flat = |r: &Vec<Vec<f64>>| r.iter().flatten().copied().collect::<Vec<f64>>();
        assert_eq!(g.energy_steps.len(), w.energy_steps.len(), "{p}: T + 1 energy rows");
        c.values(&format!("{p}energies per step"), &flat(&g.energy_steps), &flat(&w.energy_steps), tol.values);
        c.mats(&format!("{p}final activities"), &got.z, &want.z, Scale::Own, tol.values);
    }
    c.mats(&format!("{p}weight grads"), &got.grads, &want.grads, Scale::Quantity, tol.grads);
    c.update(&format!("{p}weight update"), &got.before, &got.after, &want.before, &want.after, tol.update);
}

fn cpu_iteration<T: Real>(m: &mut Model<T>, x: &Mat<f32>, y: &Mat<f32>) -> Got<T> {
    let before = m.net.weights.clone();
    let report = m.train_step(&cast1(x), &cast1(y));
    Got { report, z: m.z.clone(), grads: m.grads.clone(), before, after: m.net.weights.clone() }
}

fn gpu_iteration(g: &mut GpuModel, before: Vec<Mat<f32>>, x: &Mat<f32>, y: &Mat<f32>) -> Got<f32> {
    let report = block(g.train_step(x, y)).expect("GPU iteration");
    let z = block(g.activities()).expect("z");
    let grads = block(g.weight_grads()).expect("grads");
    let after = block(g.network()).expect("weights").weights;
    Got { report, z, grads, before, after }
}

/// Two iterations of `arch` on the GPU, on the CPU in f32 (the yardstick) and in f64 (the
/// reference), each restarted from the reference's weights: `(gpu, yardstick)` errors.
fn parity(ctx: &Arc<GpuContext>, arch: Arch, b: usize, learning: Learning, lr: f64) -> (Checker, Checker) {
    let net: Network<f32> = Network::init(arch, 3);
    let adam = AdamConfig::default();
    let net64 = Network::from_weights(arch, net.scalings, cast(&net.weights)).expect("weights");
    let mut reference = Model::new(net64, learning, lr, adam);
    let mut cpu = Model::new(net.clone(), learning, lr, adam);
    let mut g = block(GpuModel::new(ctx.clone(), &net, b, learning, lr, adam)).expect("GPU model");
    let (mut on_gpu, mut yard) = (Checker::new(), Checker::new());
    let pc = matches!(learning, Learning::Pc { .. });
    for it in 0..2 {
        let (x, y) = batch(&arch, b, 10 + it);
        let start: Vec<Mat<f32>> = cast(&reference.net.weights);
        cpu.net.weights = start.clone();
        g.upload(&Network::from_weights(arch, net.scalings, start.clone()).expect("weights"));
        let want = cpu_iteration(&mut reference, &x, &y);
        let mine = cpu_iteration(&mut cpu, &x, &y);
        let theirs = gpu_iteration(&mut g, start, &x, &y);
        let p = format!("iteration {it} ");
        record(&mut yard, &p, &mine, &want, pc, &tol::<f32>());
        record(&mut on_gpu, &p, &theirs, &want, pc, &tol::<f32>());
    }
    (on_gpu, yard)
}

/// The parity cases: odd sizes (B not a multiple of the tile, width 1, depth 1, a deep stack), every
/// activation, both parameterisations, with and without skips, and a deeper tanh network with an
/// aggressive η_z (inference near the edge of stability, where round-off grows step by step).
fn parity_cases() -> Vec<(Arch, usize, Learning)> {
    let a = |input, width, hidden, output, act, skips, param| Arch { input, width, hidden, output, act, skips, param };
    let pc = |eta_z, steps| Learning::Pc { eta_z, steps };
    vec![
        (a(30, 33, 2, 10, Activation::Relu, true, Param::Mupc), 37, pc(0.3, 2)),
        (a(30, 20, 1, 3, Activation::Tanh, true, Param::Sp), 65, pc(0.3, 1)),
        (a(7, 1, 3, 2, Activation::Linear, false, Param::Sp), 5, pc(0.3, 3)),
        (a(12, 17, 4, 10, Activation::LeakyRelu, true, Param::Mupc), 19, pc(0.3, 6)),
        (a(12, 16, 5, 4, Activation::Silu, false, Param::Mupc), 16, pc(0.3, 3)),
        (a(12, 16, 64, 10, Activation::Gelu, true, Param::Mupc), 8, pc(0.3, 64)),
        (a(20, 24, 12, 10, Activation::Tanh, true, Param::Sp), 9, pc(3.0, 12)),
        (a(20, 24, 4, 10, Activation::Relu, true, Param::Mupc), 37, Learning::Bp),
        (a(20, 24, 1, 10, Activation::Tanh, true, Param::Sp), 9, Learning::Bp),
        (a(20, 24, 3, 10, Activation::Gelu, false, Param::Sp), 16, Learning::Bp),
    ]
}

/// Every parity case on `ctx`: the names of those that failed, each with its messages.
fn parity_failures(ctx: &Arc<GpuContext>, verbose: bool) -> Vec<(String, Vec<String>)> {
    let mut failed = Vec::new();
    for (arch, b, learning) in parity_cases() {
        let (on_gpu, yard) = parity(ctx, arch, b, learning, 0.01);
        let rule = match learning {
            Learning::Pc { eta_z, steps } => format!("pc η_z={eta_z} T={steps}"),
            Learning::Bp => "bp".into(),
        };
        let name = format!(
            "parity {rule} {} {:?} skips={} N={} H={} B={b}",
            arch.act, arch.param, arch.skips, arch.width, arch.hidden
        );
        let mut bad = on_gpu.failures_within(&yard, F32_FACTOR);
        bad.extend(yard.non_finite().into_iter().map(|m| format!("cpu-f32: {m}")));
        if verbose {
            report(&name, &on_gpu, &yard, &bad);
        }
        if !bad.is_empty() {
            failed.push((name, bad));
        }
    }
    failed
}

/// Every jpc fixture on `ctx`, each iteration restarted from the fixture's weights like the CPU's
/// f32 check (its yardstick): the names of those that failed, with their messages.
fn fixture_failures(ctx: &Arc<GpuContext>, verbose: bool) -> Vec<(String, Vec<String>)> {
    let mut failed = Vec::new();
    for (name, fx) in common::fixtures::training_fixtures() {
        let yard = check_cpu::<f32>(&fx);
        let bp = fx["kind"] == "bp";
        let cfg = &fx["config"];
        let lr = f(&cfg["weight_lr"]);
        let net: Network<f32> = network(&fx, "weights_init");
        let iterations = fx["iterations"].as_array().expect("iterations");
        let b = mat::<f32>(&iterations[0]["x"]).rows;
        let mut g = block(GpuModel::new(ctx.clone(), &net, b, learning(&fx), lr, adam(cfg))).expect("GPU model");
        let tol = tol::<f32>();
        let mut c = Checker::new();
        for (k, it) in iterations.iter().enumerate() {
            let start: Vec<Mat<f32>> =
                mats(if k == 0 { &fx["weights_init"] } else { &iterations[k - 1]["weights_after"] });
            g.upload(&Network::from_weights(net.arch, net.scalings, start.clone()).expect("weights"));
            let p = format!("iteration {k} ");
            let got = gpu_iteration(&mut g, start, &mat(&it["x"]), &mat(&it["y"]));
            if bp {
                c.scalar(&format!("{p}loss (report)"), got.report.objective, f(&it["loss"]), tol.values);
            } else {
                let inf = &it["inference"];
                let totals: Vec<f64> = got.report.energy_steps.iter().map(|s| s.iter().sum()).collect();
                c.values(&format!("{p}inference energies"), &totals, &floats(&inf["energies"]), tol.values);
                let ffwd = floats(&it["ffwd"]["layer_energies"]);
                c.values(&format!("{p}ffwd energies (report)"), &got.report.energies_ffwd, &ffwd, tol.values);
                let post = floats(&inf["layer_energies_final"]);
                c.values(&format!("{p}final layer energies"), &got.report.energies_post, &post, tol.values);
                c.mats_json(&format!("{p}final activities"), &got.z, &inf["activities_final"], Scale::Own, tol.values);
            }
            c.mats_json(&format!("{p}weight grads"), &got.grads, &it["weight_grads"], Scale::Quantity, tol.grads);
            let want_after = mats::<f64>(&it["weights_after"]);
            c.update(
                &format!("{p}weight update"),
                &got.before,
                &got.after,
                &weights_before(&fx, k),
                &want_after,
                tol.update,
            );
        }
        let mut bad = c.failures_within(&yard, F32_FACTOR);
        bad.extend(yard.non_finite().into_iter().map(|m| format!("cpu-f32: {m}")));
        if verbose {
            report(&format!("fixture {name}"), &c, &yard, &bad);
        }
        if !bad.is_empty() {
            failed.push((name, bad));
        }
    }
    failed
}

fn report(name: &str, c: &Checker, yard: &Checker, bad: &[String]) {
    let verdict = if bad.is_empty() { "ok" } else { "FAILED" };
    println!("{name} gpu {verdict}: {}", c.summary_within(yard, F32_FACTOR));
    for m in bad.iter().take(8) {
        println!("  {m}");
    }
}

#[test]
fn whole_iterations_match_the_reference_at_odd_sizes() {
    let Some(ctx) = gpu() else { return };
    let failed = parity_failures(&ctx, true);
    assert!(failed.is_empty(), "{:?}", failed.iter().map(|(n, _)| n).collect::<Vec<_>>());
}

#[test]
fn every_fixture_matches_on_the_gpu() {
    let Some(ctx) = gpu() else { return };
    let failed = fixture_failures(&ctx, true);
    assert!(failed.is_empty(), "{:?}", failed.iter().map(|(n, _)| n).collect::<Vec<_>>());
}

/// Negative controls: kernels with a planted defect — φ returning NaN for ReLU, Adam that never
/// writes the weights, the output layer's weight gradient zeroed, the errors' per-tile energy sums
/// halved, the fused activity update skipping the top hidden layer — compiled on a device of their
/// own and run through the same fixture and parity suites, which must report each.
#[test]
fn planted_kernel_defects_are_caught_by_the_fixture_and_parity_suites() {
    if gpu().is_none() {
        return;
    }
    let plant = |module: &str, from: &str, to: &str| {
        let mut modules = pclab::gpu::shaders::modules();
        let (_, src) = modules.iter_mut().find(|(n, _)| *n == module).expect("module");
        assert!(src.contains(from), "the defect's site `{from}` is not in module {module}");
        *src = src.replace(from, to);
        modules
    };
    let defects = [
        (
            "φ(u) = NaN for ReLU (common.wgsl)",
            plant(
                "pc",
                "case ACT_RELU: { return max(u, 0.0); }",
                "case ACT_RELU: { return bitcast<f32>(0x7fc00000u + min(bitcast<u32>(u), 0u)); }",
            ),
            "is NaN",
        ),
        (
            "Adam never writes the weights (adam.wgsl)",
            plant("adam", "w[i] = w[i] - p.lr", "_ = w[i] - p.lr"),
            "weight update",
        ),
        (
            "∂F/∂W_L zeroed (pc.wgsl weight_grad)",
            plant("pc", "go[orow * p.n + icol] = s * acc[q / 4u][q % 4u];", "go[orow * p.n + icol] = 0.0;"),
            "weight grads",
        ),
        (
            "energy tile sums halved (pc.wgsl errors)",
            plant("pc", "+ wid.y * nwg.x + wid.x] = total;", "+ wid.y * nwg.x + wid.x] = 0.5 * total;"),
            "energies",
        ),
        (
            "the fused update leaves z_H alone (pc.wgsl back_update)",
            plant("pc", "        z[zi] = zv - step * g;", "        if (k < p.h) { z[zi] = zv - step * g; }"),
            "final activities",
        ),
    ];
    for (what, modules, expect) in defects {
        let ctx = Arc::new(block(GpuContext::with_shaders(&modules)).expect("a device with the planted kernels"));
        for (suite, failed) in [("fixtures", fixture_failures(&ctx, false)), ("parity", parity_failures(&ctx, false))] {
            assert!(!failed.is_empty(), "{what}: the {suite} suite passed");
            let first = &failed[0].1[0];
            assert!(
                failed.iter().any(|(_, m)| m.iter().any(|m| m.contains(expect))),
                "{what}: the {suite} suite failed, but never with `{expect}`: {first}"
            );
            println!(
                "planted {what}: caught by the {suite} suite in {} cases, e.g. {}: {first}",
                failed.len(),
                failed[0].0
            );
        }
    }
}

#[test]
fn dispatches_per_inference_step_do_not_depend_on_depth() {
    let Some(ctx) = gpu() else { return };
    let mut per_step = Vec::new();
    for h in [8, 64] {
        let arch = Arch {
            input: 20,
            width: 16,
            hidden: h,
            output: 10,
            act: Activation::Relu,
            skips: true,
            param: Param::Mupc,
        };
        let net: Network<f32> = Network::init(arch, 0);
        let learning = Learning::Pc { eta_z: 0.5, steps: h };
        let g = block(GpuModel::new(ctx.clone(), &net, 8, learning, 0.1, AdamConfig::default())).expect("model");
        let (total, steps) = g.count_dispatches();
        assert_eq!(total, h + 2 * h + 10, "H={h}, T=H, with the metrics: H + 2T + 10");
        // Pipelined iterations never have more than two metrics readbacks in flight.
        let mut g = g;
        let (x, y) = batch(&arch, 8, 1);
        let mut reports = Vec::new();
        for it in 1..=6 {
            g.submit_step(it, &x, &y).expect("submit");
            assert!(g.readbacks_in_flight() <= 2);
            reports.extend(g.ready_reports(false).expect("reports"));
        }
        reports.extend(g.ready_reports(true).expect("reports"));
        assert_eq!(g.readbacks_in_flight(), 0);
        let iterations: Vec<usize> = reports.iter().map(|(it, _)| *it).collect();
        assert_eq!(iterations, [1, 2, 3, 4, 5, 6], "every iteration's metrics arrive, in order");
        // An iteration whose metrics are not read leaves out the activation RMS, the energy table
        // and the update norms (5 dispatches); the next one that is read has them again.
        g.set_metrics_every(2);
        g.submit_step(7, &x, &y).expect("submit");
        assert_eq!(g.dispatches_last_iteration, h + 2 * h + 5, "H={h}: an iteration without metrics");
        g.submit_step(8, &x, &y).expect("submit");
        assert_eq!(g.dispatches_last_iteration, total, "H={h}: an iteration with metrics");
        let later: Vec<usize> = g.ready_reports(true).expect("reports").iter().map(|(it, _)| *it).collect();
        assert_eq!(later, [8], "only the iteration whose metrics were due reports");
        assert_eq!(steps.len(), h, "one count per inference step");
        assert!(steps.iter().all(|&s| s == DISPATCHES_PER_INFERENCE_STEP), "H={h}: {steps:?}");
        println!("H={h}: {} dispatches per inference step, {total} per iteration", steps[0]);
        per_step.push(steps[0]);
    }
    assert_eq!(per_step[0], per_step[1]);
}

fn mnist() -> Arc<pclab::data::Mnist> {
    let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("www/data/mnist");
    Arc::new(pclab::data::Mnist::load_dir(&dir).expect("MNIST"))
}

/// A session's trace: losses (by iteration, then rule), test accuracies, and the alignments
/// `(iteration, rule, median cosine, F/ℓ̃)`.
struct Trace {
    losses: Vec<f64>,
    accs: Vec<f64>,
    aligned: Vec<(usize, usize, f64, f64)>,
}

/// A session's trace. GPU reports arrive pipelined, so they are sorted by the iteration they
/// describe.
fn trace(config: pclab::config::RunConfig, data: Arc<pclab::data::Mnist>) -> Trace {
    use pclab::session::{Event, Session};
    let order: Vec<&str> = config.rules.iter().map(|r| r.rule.name()).collect();
    let mut s = Session::new(config, data).expect("session");
    let (mut losses, mut accs, mut aligned) = (Vec::new(), Vec::new(), Vec::new());
    while !s.is_finished() {
        for ev in s.step() {
            match ev {
                Event::Iteration(i) => {
                    let rule = order.iter().position(|&r| r == i.rule).expect("known rule");
                    losses.push((i.iteration, rule, i.report.loss));
                }
                Event::Eval(e) => accs.push(e.test_accuracy),
                Event::Alignment(a) => {
                    let rule = order.iter().position(|&r| r == a.rule).expect("known rule");
                    let p = a.summary.expect("a median over the layers with a PC gradient");
                    aligned.push((a.iteration, rule, p.median, p.energy_ratio));
                }
                other => panic!("{other:?}"),
            }
        }
    }
    losses.sort_by_key(|&(it, rule, _)| (it, rule));
    aligned.sort_by_key(|&(it, rule, ..)| (it, rule));
    Trace { losses: losses.into_iter().map(|(.., l)| l).collect(), accs, aligned }
}

#[test]
fn twenty_mnist_iterations_match_the_cpu_backend() {
    use pclab::config::{BackendKind, Rule, RuleSettings, RunConfig};
    if gpu().is_none() {
        return;
    }
    let data = mnist();
    let config = RunConfig {
        width: 128,
        depth: 8,
        rules: [Rule::Pc(Param::Mupc), Rule::Pc(Param::Sp), Rule::Bp(Param::Mupc)].map(RuleSettings::new).to_vec(),
        iterations: 20,
        eval_every: 10,
        align_every: 5,
        ..RunConfig::default()
    };
    let cpu = trace(config.clone(), data.clone());
    let gpu = trace(RunConfig { backend: BackendKind::Gpu, ..config }, data);
    let (cpu_loss, cpu_acc, gpu_loss, gpu_acc) = (&cpu.losses, &cpu.accs, &gpu.losses, &gpu.accs);
    // The runs start identical and drift apart by f32 round-off that Adam amplifies in the bottom
    // layers (see the module docs): 1 % on the loss and one point of accuracy after 20 iterations.
    assert_eq!(cpu_loss.len(), gpu_loss.len(), "as many losses on both backends");
    assert_eq!(cpu_acc.len(), gpu_acc.len(), "as many evaluations on both backends");
    assert_eq!(cpu_acc.len(), 2 * 3, "three rules evaluated at iterations 10 and 20");
    let mut worst = 0.0f64;
    for (i, (c, g)) in cpu_loss.iter().zip(gpu_loss).enumerate() {
        let rel = (c - g).abs() / c.abs().max(1e-3);
        worst = nan_max([worst, rel]);
        assert!(rel <= 1e-2, "iteration {}: loss cpu {c} gpu {g}", i / 3 + 1);
    }
    for (c, g) in cpu_acc.iter().zip(gpu_acc) {
        assert!((c - g).abs() <= 1.0, "test accuracy cpu {c} % gpu {g} %");
    }
    // Both PC rules compared with backprop at iterations 5, 10, 15 and 20, on both backends alike.
    assert_eq!(cpu.aligned.len(), 8, "{:?}", cpu.aligned);
    assert_eq!(
        gpu.aligned.iter().map(|a| (a.0, a.1)).collect::<Vec<_>>(),
        cpu.aligned.iter().map(|a| (a.0, a.1)).collect::<Vec<_>>()
    );
    for (c, g) in cpu.aligned.iter().zip(&gpu.aligned) {
        assert!(
            !((c.2 - g.2).abs() > 1e-2 || (c.3 - g.3).abs() > 1e-2 * c.3.abs()),
            "iteration {} rule {}: median cosine cpu {} gpu {}, F/ℓ̃ cpu {} gpu {}",
            c.0,
            c.1,
            c.2,
            g.2,
            c.3,
            g.3
        );
    }
    println!("20 MNIST iterations (mupc, sp, bp_mup): largest relative loss difference {worst:.2e}; test accuracy cpu {cpu_acc:?} gpu {gpu_acc:?}; alignment (iteration, rule, median cos, F/ℓ̃) cpu {:?} gpu {:?}", cpu.aligned, gpu.aligned);
}

#[test]
fn a_configuration_too_large_for_the_adapter_is_refused_with_its_sizes() {
    let Some(ctx) = gpu() else { return };
    let arch = Arch {
        input: 784,
        width: 4096,
        hidden: 1024,
        output: 10,
        act: Activation::Relu,
        skips: true,
        param: Param::Mupc,
    };
    let e = GpuModel::check_fits(&ctx, &arch, 64, 1024).unwrap_err().to_string();
    assert!(e.contains("does not fit the GPU") && e.contains("MB") && e.contains("N=4096, H=1024"), "{e}");
    println!("{e}");
}

#[test]
fn test_accuracy_on_the_gpu_matches_the_cpu_over_several_chunks() {
    let Some(ctx) = gpu() else { return };
    let data = mnist();
    let (x, _) = data.test.range::<f32>(0, 1234);
    let labels = &data.test.labels[..1234];
    for (act, param) in [(Activation::Relu, Param::Mupc), (Activation::Tanh, Param::Sp)] {
        let arch = Arch { input: 784, width: 24, hidden: 3, output: 10, act, skips: true, param };
        let net: Network<f32> = Network::init(arch, 9);
        let cpu = pclab::data::accuracy(&pclab::pcn::forward::predict(&net, &x), labels);
        let mut g =
            block(GpuModel::new(ctx.clone(), &net, 8, Learning::Bp, 0.01, AdamConfig::default())).expect("model");
        let eval = block(g.evaluate(&x, labels)).expect("GPU evaluation");
        let got = eval.accuracy;
        println!("{act} {param:?}: test accuracy cpu {cpu:.2} % gpu {got:.2} % on 1234 images");
        // Rows whose two largest outputs tie to f32 round-off may flip: allow two of 1234.
        assert!((cpu - got).abs() <= 2.0 * 100.0 / 1234.0 + 1e-9, "cpu {cpu} gpu {got}");
        let want = pclab::data::Evaluation::of(&pclab::pcn::forward::predict(&net, &x), labels);
        assert_eq!(eval.images(), 1234, "the confusion matrix holds every image");
        let moved: u32 =
            eval.confusion.iter().flatten().zip(want.confusion.iter().flatten()).map(|(a, b)| a.abs_diff(*b)).sum();
        assert!(moved <= 4, "confusion matrices differ by {moved} counts:\n{:?}\n{:?}", eval.confusion, want.confusion);
        let same = eval.guesses.iter().zip(&want.guesses).filter(|(a, b)| a == b).count();
        assert!(eval.guesses.len() == 24 && same >= 23, "strip guesses {:?} vs {:?}", eval.guesses, want.guesses);
    }
}

#[test]
fn rates_and_inference_steps_change_live_the_same_on_both_backends() {
    use pclab::config::{BackendKind, Rule, RuleSettings, RunConfig};
    use pclab::session::{Event, Session};
    if gpu().is_none() {
        return;
    }
    let data = mnist();
    let config = RunConfig {
        width: 32,
        depth: 4,
        rules: [Rule::Pc(Param::Mupc), Rule::Bp(Param::Mupc)].map(RuleSettings::new).to_vec(),
        iterations: 6,
        eval_every: 100,
        ..RunConfig::default()
    };
    // Three iterations at T = H = 4, then half the weight rates, η_z = 0.3 and T = 2, live.
    let run = |backend| {
        let mut s = Session::new(RunConfig { backend, ..config.clone() }, data.clone()).expect("session");
        let mut reports = Vec::new();
        let mut keep = |events: Vec<Event>| {
            reports.extend(events.into_iter().map(|e| match e {
                Event::Iteration(i) => (i.iteration, i.rule, i.report),
                other => panic!("{other:?}"),
            }))
        };
        for it in 1..=6 {
            if it == 4 {
                let slower: Vec<RuleSettings> =
                    s.config.rules.iter().map(|r| RuleSettings { lr: r.lr * 0.5, eta_z: 0.3, ..*r }).collect();
                s.set_rates(&slower, Some(2)).expect("valid rates");
                assert!(s.set_rates(&[RuleSettings { lr: -1.0, ..slower[0] }], None).is_err(), "a bad rate is refused");
            }
            keep(s.train().0);
        }
        for run in s.runs.iter_mut() {
            let flushed = block(run.backend.flush()).expect("flush");
            reports.extend(flushed.into_iter().map(|(i, r)| (i, run.settings.rule.name(), r)));
        }
        reports.sort_by_key(|r| (r.0, r.1));
        reports
    };
    let (cpu, gpu) = (run(BackendKind::Cpu), run(BackendKind::Gpu));
    assert_eq!(cpu.len(), 12, "every iteration of both rules reported on the CPU");
    assert_eq!(gpu.len(), 12, "every iteration of both rules reported on the GPU");
    for ((it, rule, c), (_, _, g)) in cpu.iter().zip(&gpu) {
        let rel = (c.loss - g.loss).abs() / c.loss.abs().max(1e-3);
        assert!(rel <= 1e-2, "iteration {it} {rule}: loss cpu {} gpu {}", c.loss, g.loss);
        if *rule == "mupc" {
            let want = if *it <= 3 { 5 } else { 3 };
            assert_eq!((c.energy_steps.len(), g.energy_steps.len()), (want, want), "iteration {it}: T + 1 energy rows");
        }
    }
}

/// `bench --kernels`: one iteration timed per dispatch with timestamp queries (where the adapter
/// offers them) covers every dispatch of the iteration, each kernel with its counted work.
#[test]
fn kernel_timestamps_cover_every_dispatch_of_an_iteration() {
    let Some(ctx) = gpu() else { return };
    let arch =
        Arch { input: 20, width: 16, hidden: 6, output: 10, act: Activation::Tanh, skips: true, param: Param::Mupc };
    let net: Network<f32> = Network::init(arch, 0);
    for learning in [Learning::Pc { eta_z: 0.5, steps: 6 }, Learning::Bp] {
        let mut g = block(GpuModel::new(ctx.clone(), &net, 8, learning, 0.1, AdamConfig::default())).expect("model");
        let (x, y) = batch(&arch, 8, 1);
        let times = match block(g.profile_kernels(&x, &y)) {
            Ok(t) => t,
            Err(e) => {
                // Said, not silent: an adapter without timestamps cannot time kernels.
                assert!(!ctx.has_timestamps(), "{e}");
                println!("{e}");
                return;
            }
        };
        let (total, _) = g.count_dispatches();
        assert_eq!(times.iter().map(|k| k.dispatches).sum::<usize>(), total, "{times:?}");
        for name in ["forward", "errors", "weight_grad", "adam", "adam_stats", "act_rms"] {
            let k = times.iter().find(|k| k.name == name).unwrap_or_else(|| panic!("{name} missing: {times:?}"));
            assert!(k.ms.is_finite() && k.ms >= 0.0 && k.flops > 0.0 && k.bytes > 0.0, "{k:?}");
        }
        println!("{learning:?}: {:?}", times.iter().map(|k| (k.name, k.dispatches, k.ms)).collect::<Vec<_>>());
    }
}

/// The alignment cases: the wavefront not reaching every layer with strided columns (T = 20 > 16
/// columns, H = 24), a batch and width that are not multiples of the tile, no skips.
fn alignment_cases() -> Vec<(Arch, usize, Learning)> {
    let a = |input, width, hidden, output, act, skips, param| Arch { input, width, hidden, output, act, skips, param };
    vec![
        (a(20, 24, 24, 10, Activation::Tanh, true, Param::Mupc), 9, Learning::Pc { eta_z: 0.5, steps: 20 }),
        (a(30, 33, 3, 10, Activation::Relu, true, Param::Sp), 37, Learning::Pc { eta_z: 0.3, steps: 5 }),
        (a(12, 16, 4, 4, Activation::Linear, false, Param::Mupc), 16, Learning::Pc { eta_z: 0.5, steps: 8 }),
    ]
}

/// One aligned iteration per case on the GPU, on the CPU in f32 and in f64 (from the same f32
/// weights): every compared step's and layer's cosine and norm ratio within 4× the CPU f32 error
/// plus 1e-4 of the f64 one, the same layers without a PC gradient (f32 may lose one whose
/// gradient is under 1e-6 of backprop's, where the CPU's f32 path loses it too), the same steps,
/// energies and ℓ̃; and the aligned iteration trains exactly as an unaligned one from the same
/// start (weights bit for bit).
fn alignment_failures(ctx: &Arc<GpuContext>) -> Vec<String> {
    use pclab::pcn::alignment::AlignmentReport;
    let mut bad = Vec::new();
    for (case, (arch, b, learning)) in alignment_cases().into_iter().enumerate() {
        let net: Network<f32> = Network::init(arch, 21 + case as u64);
        let net64: Network<f64> = Network::from_weights(arch, net.scalings, cast(&net.weights)).expect("weights");
        let (x, y) = batch(&arch, b, 30 + case as u64);
        let adam = AdamConfig::default();
        let want = Model::new(net64, learning, 0.01, adam).train_step_aligned(&cast1(&x), &cast1(&y), true);
        let mine = Model::new(net.clone(), learning, 0.01, adam).train_step_aligned(&x, &y, true);
        let mut g = block(GpuModel::new(ctx.clone(), &net, b, learning, 0.01, adam)).expect("GPU model");
        let theirs = block(g.train_step_aligned(&x, &y, true)).expect("aligned GPU iteration");
        let aligned_weights = block(g.network()).expect("weights").weights;
        let mut g = block(GpuModel::new(ctx.clone(), &net, b, learning, 0.01, adam)).expect("GPU model");
        let plain = block(g.train_step(&x, &y)).expect("GPU iteration");
        let plain_weights = block(g.network()).expect("weights").weights;
        let name = format!("case {case} ({}, H={}, N={}, B={b})", arch.act, arch.hidden, arch.width);
        let [want, mine, theirs]: [&AlignmentReport; 3] = match [&want, &mine, &theirs].map(|r| r.alignment.as_ref()) {
            [Some(a), Some(b), Some(c)] => [a, b, c],
            got => {
                bad.push(format!("{name}: alignment reported (f64, f32, GPU) = {:?}", got.map(|r| r.is_some())));
                continue;
            }
        };
        if plain.alignment.is_some() {
            bad.push(format!("{name}: an unaligned GPU iteration reported an alignment"));
        }
        if aligned_weights != plain_weights {
            bad.push(format!("{name}: the aligned iteration trained differently from the unaligned one"));
        }
        if theirs.at != want.at {
            bad.push(format!("{name}: compared steps {:?}, the CPU's {:?}", theirs.at, want.at));
            continue;
        }
        let within = |got: f64, f32_: f64, exact: f64, rel: bool, floor: f64| {
            let s = if rel { exact.abs().max(1e-30) } else { 1.0 };
            let (e, yard) = ((got - exact).abs() / s, (f32_ - exact).abs() / s);
            e <= 4.0 * yard + floor
        };
        let close = |got: f64, f32_: f64, exact: f64, rel: bool| within(got, f32_, exact, rel, 1e-4);
        for (c, &t) in want.at.iter().enumerate() {
            for l in 0..=arch.hidden {
                match (theirs.steps[c][l], mine.steps[c][l], want.steps[c][l]) {
                    (None, _, None) => {}
                    // Far below the front PC's gradient is ~1e-10 of backprop's or less in f64,
                    // and f32 may round it to zero, as the CPU's f32 path does.
                    (None, None, Some(wc)) if wc.norm_ratio < 1e-6 => {}
                    (Some(gc), Some(fc), Some(wc)) => {
                        // Just behind the front PC's gradient (under 1e-3 of backprop's) is a few
                        // f32 roundings of the activities' steps: the two f32 paths round apart.
                        let floor = if wc.norm_ratio < 1e-3 { 1e-2 } else { 1e-4 };
                        if !within(gc.cosine, fc.cosine, wc.cosine, false, floor)
                            || !within(gc.norm_ratio, fc.norm_ratio, wc.norm_ratio, true, floor)
                        {
                            bad.push(format!(
                                "{name}: step {t}, layer {}: GPU cos {} ratio {}, CPU f32 cos {} ratio {}, f64 cos {} ratio {}",
                                l + 1,
                                gc.cosine,
                                gc.norm_ratio,
                                fc.cosine,
                                fc.norm_ratio,
                                wc.cosine,
                                wc.norm_ratio
                            ));
                        }
                    }
                    (got, _, exact) => bad.push(format!(
                        "{name}: step {t}, layer {}: GPU {got:?} where the f64 reference has {exact:?} (a PC gradient or none)",
                        l + 1
                    )),
                }
            }
        }
        for (t, ((gf, ff), wf)) in theirs.energies.iter().zip(&mine.energies).zip(&want.energies).enumerate() {
            if !close(*gf, *ff, *wf, true) {
                bad.push(format!("{name}: F after step {t}: GPU {gf}, CPU f32 {ff}, f64 {wf}"));
            }
        }
        if theirs.energies.len() != want.energies.len() || !close(theirs.bp_loss, mine.bp_loss, want.bp_loss, true) {
            bad.push(format!(
                "{name}: {} energies (want {}), ℓ̃ GPU {} f64 {}",
                theirs.energies.len(),
                want.energies.len(),
                theirs.bp_loss,
                want.bp_loss
            ));
        }
        println!(
            "{name}: {} compared steps, median cosine after inference GPU {:.6} f64 {:.6}",
            want.at.len(),
            pclab::pcn::alignment::cosine_summary(theirs.last()).map_or(f64::NAN, |s| s.0),
            pclab::pcn::alignment::cosine_summary(want.last()).map_or(f64::NAN, |s| s.0)
        );
    }
    bad
}

#[test]
fn aligned_iterations_compare_gradients_with_backprop_as_the_cpu_does() {
    let Some(ctx) = gpu() else { return };
    let bad = alignment_failures(&ctx);
    assert!(bad.is_empty(), "{}", bad.join("\n"));
}

/// Negative controls for the alignment check: the hidden layers' backprop gradient read from the
/// wrong layer, and PC's ‖g‖² replaced by backprop's — each must be reported.
#[test]
fn planted_alignment_defects_are_caught() {
    if gpu().is_none() {
        return;
    }
    let plant = |from: &str, to: &str| {
        let mut modules = pclab::gpu::shaders::modules();
        let (_, src) = modules.iter_mut().find(|(n, _)| *n == "pc").expect("module");
        assert!(src.contains(from), "the defect's site `{from}` is not in pc.wgsl");
        *src = src.replace(from, to);
        modules
    };
    for (what, modules) in [
        ("backprop's gradient of layer 2 for every hidden layer", plant("b = gbh[base + i];", "b = gbh[i];")),
        ("‖g‖² written as ‖g_bp‖²", plant("asums[at + 1u] = red3[0].y;", "asums[at + 1u] = red3[0].z;")),
    ] {
        let ctx = Arc::new(block(GpuContext::with_shaders(&modules)).expect("a device with the planted kernel"));
        let bad = alignment_failures(&ctx);
        assert!(!bad.is_empty(), "planted {what}: the alignment check passed");
        println!("planted {what}: caught in {} places, e.g. {}", bad.len(), bad[0]);
    }
}
