//! The GPU failing honestly: a lost device (simulated by destroying it) stops the runs with a
//! message and a new device resumes them from the last evaluation; a hundred resets and fifty
//! configuration changes leave no buffer behind; a broken shader names its kernel; a network
//! too large is refused with what would fit. Each test creates its own device (the loss test
//! destroys one). With `PCLAB_REQUIRE_GPU=1` a missing adapter fails instead of skipping.

mod common;

use common::gpu;
use pclab::config::{BackendKind, Rule, RuleSettings, RunConfig};
use pclab::data::Mnist;
use pclab::gpu::{GpuContext, GpuModel, Kernels};
use pclab::pcn::{Activation, Arch, Param};
use pclab::session::{Device, Event, Session};
use std::collections::BTreeMap;
use std::sync::{Arc, OnceLock};

fn fresh() -> Option<Arc<GpuContext>> {
    gpu()?;
    Some(Arc::new(GpuContext::new_blocking().expect("a device on the adapter the tests found")))
}

fn data() -> Arc<Mnist> {
    static DATA: OnceLock<Arc<Mnist>> = OnceLock::new();
    DATA.get_or_init(|| {
        let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("www/data/mnist");
        Arc::new(Mnist::load_dir(&dir).expect("MNIST"))
    })
    .clone()
}

fn config() -> RunConfig {
    RunConfig {
        width: 32,
        depth: 4,
        rules: [Rule::Pc(Param::Mupc), Rule::Bp(Param::Mupc)].map(RuleSettings::new).to_vec(),
        batch: 32,
        iterations: 20,
        eval_every: 5,
        backend: BackendKind::Gpu,
        ..RunConfig::default()
    }
}

fn session(cfg: RunConfig, ctx: &Arc<GpuContext>) -> Session {
    pollster::block_on(Session::create(cfg, data(), Device::Gpu(ctx.clone()))).expect("a session")
}

/// Files losses by (rule, iteration) and accuracies by (rule, iteration); later reports of the
/// same iteration (after a resume) replace earlier ones.
fn file(events: Vec<Event>, losses: &mut BTreeMap<(String, usize), f64>, accs: &mut BTreeMap<(String, usize), f64>) {
    for e in events {
        match e {
            Event::Iteration(i) => {
                losses.insert((i.rule.to_string(), i.iteration), i.report.loss);
            }
            Event::Eval(e) => {
                accs.insert((e.rule.to_string(), e.iteration), e.test_accuracy);
            }
            _ => {}
        }
    }
}

#[test]
fn a_lost_device_stops_the_runs_and_a_new_one_resumes_from_the_last_evaluation() {
    let Some(ctx) = fresh() else { return };
    let (mut want, mut want_acc) = (BTreeMap::new(), BTreeMap::new());
    let mut reference = session(config(), &fresh().expect("a second device"));
    while !reference.is_finished() {
        file(reference.step(), &mut want, &mut want_acc);
    }
    let (mut got, mut got_acc) = (BTreeMap::new(), BTreeMap::new());
    let mut s = session(config(), &ctx);
    while s.iteration() < 12 {
        file(s.step(), &mut got, &mut got_acc);
    }
    assert_eq!(s.checkpoint_iteration(), 10, "the state of the latest evaluation is kept");
    ctx.simulate_loss();
    let events = s.step();
    let failures: Vec<String> = events
        .iter()
        .filter_map(|e| match e {
            Event::Failed { message, .. } => Some(message.clone()),
            _ => None,
        })
        .collect();
    assert_eq!(failures.len(), 2, "{events:?}");
    assert!(failures[0].contains("device was lost"), "{failures:?}");
    assert!(s.runs.iter().all(|r| !r.is_running()));
    // One call: a new device, the runs rebuilt from the checkpoint, the batches rewound.
    let at = pollster::block_on(s.recover(Device::Gpu(fresh().expect("a new device")))).expect("recovered");
    assert_eq!((at, s.iteration()), (10, 10));
    assert!(s.runs.iter().all(|r| r.is_running()));
    assert!(
        s.runs.iter().all(|r| r.backend.in_flight() == 0),
        "a resumed run has nothing in flight (the page waits on it)"
    );
    assert!(s.runs[0].loss.points().iter().all(|p| p.0 <= 10), "the histories forget the lost iterations");
    while !s.is_finished() {
        file(s.step(), &mut got, &mut got_acc);
    }
    assert_eq!(got.len(), want.len(), "every iteration of both rules is filed");
    let worst = common::nan_max(want.iter().map(|(k, w)| (got[k] - w).abs() / w.abs().max(1e-12)));
    // Weights, Adam's moments and step count come back exactly, and the batches continue as they
    // would have: the resumed run is the uninterrupted one.
    assert!(worst <= 1e-6, "largest relative loss difference after the resume: {worst:e}");
    assert_eq!(got_acc, want_acc);
    println!(
        "device lost at iteration 13, resumed from iteration {at}: losses of iterations 11–20 within {worst:.1e} of the uninterrupted run; accuracies equal"
    );
}

#[test]
fn a_hundred_resets_and_fifty_configuration_changes_leak_no_gpu_buffers() {
    let Some(ctx) = fresh() else { return };
    // wgpu frees a dropped buffer once the GPU is done with the submissions that used it, at a
    // later maintenance: an empty submit and a wait, a few times, let every such free happen.
    let settle = || {
        for _ in 0..3 {
            ctx.queue.submit([]);
            ctx.device.poll(wgpu::PollType::wait_indefinitely()).expect("poll");
        }
    };
    let changes: Vec<RunConfig> = (0..50)
        .map(|i| RunConfig {
            depth: 2 + i % 5,
            width: [16, 32, 48][i % 3],
            batch: [16, 32][i % 2],
            act: [Activation::Relu, Activation::Tanh][i % 2],
            rules: match i % 3 {
                0 => vec![RuleSettings::new(Rule::Pc(Param::Sp))],
                1 => [Rule::Pc(Param::Mupc), Rule::Bp(Param::Sp)].map(RuleSettings::new).to_vec(),
                _ => Rule::ALL.map(RuleSettings::new).to_vec(),
            },
            steps: Some(1 + i % 4),
            ..config()
        })
        .collect();
    // One session first: the device's own one-time allocations are not leaks.
    drop(session(config(), &ctx));
    settle();
    let before = ctx.live_buffers();
    let (mut peak, mut sessions) = (0, 0);
    for i in 0..150 {
        let cfg = if i < 100 { config() } else { changes[i - 100].clone() };
        let mut s = session(cfg, &ctx);
        // Train, and every 25th session evaluate (its test buffers and the checkpoint's
        // downloads) before the reset.
        s.config.eval_every = if i % 25 == 0 { 1 } else { 1000 };
        s.step();
        peak = peak.max(ctx.live_buffers());
        sessions += 1;
        drop(s);
    }
    settle();
    let after = ctx.live_buffers();
    println!("live GPU buffers: {before} before, up to {peak} while a session lived, {after} after {sessions} sessions (100 resets, 50 configuration changes)");
    assert!(peak > before, "the count sees a session's buffers ({peak} vs {before})");
    assert_eq!(after, before, "buffers leaked");
}

#[test]
fn a_broken_shader_names_its_module_or_kernel() {
    let Some(ctx) = fresh() else { return };
    let modules = pclab::gpu::shaders::modules();
    let with = |name: &str, f: &dyn Fn(&str) -> String| -> Vec<(&str, String)> {
        modules.iter().map(|(n, s)| (*n, if *n == name { f(s) } else { s.clone() })).collect()
    };
    let syntax = with("adam", &|s| format!("{s}\nfn broken( {{"));
    let Err(e) = pollster::block_on(Kernels::with_modules(&ctx.device, &syntax)) else {
        panic!("a syntax error passed")
    };
    let e = e.to_string();
    assert!(e.contains("module `adam`"), "{e}");
    let renamed = with("pc", &|s| s.replace("fn back_project(", "fn back_project_renamed("));
    let Err(e) = pollster::block_on(Kernels::with_modules(&ctx.device, &renamed)) else {
        panic!("a missing entry passed")
    };
    let e = e.to_string();
    assert!(e.contains("kernel `back_project` (module `pc`)"), "{e}");
    println!("{}", e.lines().next().unwrap_or_default());
    // The device still works after both.
    assert!(pollster::block_on(Kernels::with_modules(&ctx.device, &modules)).is_ok());
    ctx.check_lost().expect("no error left behind");
}

#[test]
fn a_network_too_large_is_refused_with_what_would_fit() {
    let Some(ctx) = fresh() else { return };
    let arch = Arch {
        input: 784,
        width: 1024,
        hidden: 4096,
        output: 10,
        act: Activation::Relu,
        skips: true,
        param: Param::Mupc,
    };
    let e = GpuModel::check_fits(&ctx, &arch, 64, 8).unwrap_err().to_string();
    println!("{e}");
    let fit = |key: &str| -> usize {
        let at = e.find(&format!("{key}=")).unwrap_or_else(|| panic!("no {key}= in: {e}"));
        e[at + key.len() + 1..].chars().take_while(char::is_ascii_digit).collect::<String>().parse().expect("a number")
    };
    assert!(e.contains("the largest that fit this adapter"), "{e}");
    let tail = &e[e.find("the largest").expect("suggestion")..];
    let h: usize = tail["the largest that fit this adapter (B=64): H=".len()..]
        .chars()
        .take_while(char::is_ascii_digit)
        .collect::<String>()
        .parse()
        .expect("H");
    assert!((1..4096).contains(&h), "{tail}");
    assert!(GpuModel::check_fits(&ctx, &Arch { hidden: h, ..arch }, 64, 8).is_ok(), "H={h} fits");
    assert!(GpuModel::check_fits(&ctx, &Arch { hidden: h + 1, ..arch }, 64, 8).is_err(), "H={} does not", h + 1);
    assert_eq!(fit("N") % 16, 0);
}
