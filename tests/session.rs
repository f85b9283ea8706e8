//! Sessions: rules in lockstep on the same batches, metrics per iteration, divergence that stops
//! only the run it hits.

use pclab::config::{Rule, RuleSettings, RunConfig};
use pclab::data::Mnist;
use pclab::session::{Backend, Event, RunStatus, Session};
use std::path::Path;
use std::sync::Arc;

fn data() -> Arc<Mnist> {
    Arc::new(Mnist::load_dir(&Path::new(env!("CARGO_MANIFEST_DIR")).join("www/data/mnist")).expect("MNIST"))
}

fn config() -> RunConfig {
    RunConfig {
        width: 16,
        depth: 4,
        rules: Rule::ALL.iter().map(|&r| RuleSettings::new(r)).collect(),
        steps: None,
        batch: 32,
        iterations: 6,
        eval_every: 3,
        ..RunConfig::default()
    }
}

#[test]
fn every_rule_reports_each_iteration_with_per_layer_metrics() {
    let mut s = Session::new(config(), data()).expect("valid");
    let events = s.step();
    let iters: Vec<_> = events
        .iter()
        .filter_map(|e| match e {
            Event::Iteration(i) => Some(i),
            _ => None,
        })
        .collect();
    assert_eq!(iters.iter().map(|i| i.rule).collect::<Vec<_>>(), ["mupc", "sp", "bp_mup", "bp_sp"]);
    for i in &iters {
        let r = &i.report;
        assert!(r.finite && r.loss > 0.0, "{}: {r:?}", i.rule);
        assert_eq!(r.act_rms.len(), 4, "activation RMS per hidden layer");
        assert_eq!(r.rel_dw.len(), 5, "relative weight change per matrix");
        // BP moves every matrix; PC's bottom layers may not move at all in f32, since the error
        // reaching them decays like (η_z/B)^k (docs/maths.md §9).
        let moved = if i.rule.starts_with("bp") { &r.rel_dw[..] } else { &r.rel_dw[3..] };
        assert!(moved.iter().all(|&d| d > 0.0), "{}: matrices moved: {:?}", i.rule, r.rel_dw);
        if i.rule == "mupc" || i.rule == "sp" {
            assert_eq!(r.energies_ffwd.len(), 5);
            assert_eq!(r.energy_steps.len(), 5, "T + 1 = H + 1 rows");
            assert_eq!(r.energies_ffwd[4], r.loss, "loss = output energy at the feedforward point");
            let f_post: f64 = r.energies_post.iter().sum();
            assert!(f_post < r.loss, "{}: inference lowers the energy ({f_post} vs {})", i.rule, r.loss);
        }
    }
}

#[test]
fn same_seed_same_batches_same_numbers() {
    let run = || {
        let mut s = Session::new(config(), data()).expect("valid");
        (0..3).flat_map(|_| s.step()).collect::<Vec<_>>()
    };
    let strip = |v: Vec<Event>| -> Vec<f64> {
        v.into_iter()
            .filter_map(|e| match e {
                Event::Iteration(i) => Some(i.report.loss),
                Event::Eval(e) => Some(e.test_accuracy),
                _ => None,
            })
            .collect()
    };
    assert_eq!(strip(run()), strip(run()));
}

#[test]
fn a_diverged_run_stops_and_the_others_continue() {
    let mut s = Session::new(config(), data()).expect("valid");
    let Backend::Cpu(model) = &mut s.runs[1].backend else { panic!("a CPU run") };
    model.net.weights[2].data[0] = f32::NAN;
    let first = s.step();
    // W_3 feeds z_3 (z_l = z_{l-1} + a·W_l φ(z_{l-1})): the first layer to go non-finite.
    let site = "layer 3 (its feedforward activity z_3 became NaN or ±∞)".to_string();
    let diverged = Event::Diverged { rule: "sp", iteration: 1, layer: Some(3), site: site.clone() };
    assert!(first.contains(&diverged), "{first:?}");
    assert_eq!(s.runs[1].status, RunStatus::Diverged { iteration: 1, layer: Some(3), site });
    let mut evals = Vec::new();
    while !s.is_finished() {
        for e in s.step() {
            if let Event::Eval(e) = e {
                evals.push(e.rule);
            }
        }
    }
    assert_eq!(s.iteration(), 6);
    assert_eq!(evals, ["mupc", "bp_mup", "bp_sp", "mupc", "bp_mup", "bp_sp"], "no evaluations of the diverged run");
    assert!(s.runs.iter().filter(|r| r.is_running()).count() == 3);
}

/// Standard PC at H = 64 with a weight rate far too large (η_w = 10): its forward pass blows up
/// within a few iterations. The run must stop with the iteration and the first non-finite layer
/// named, μPC beside it must go on, and nothing may panic.
#[test]
fn standard_pc_at_depth_64_diverges_and_says_where() {
    let cfg = RunConfig {
        width: 64,
        depth: 64,
        rules: vec![
            RuleSettings { lr: 10.0, ..RuleSettings::new(Rule::Pc(pclab::pcn::Param::Sp)) },
            RuleSettings::new(Rule::Pc(pclab::pcn::Param::Mupc)),
        ],
        batch: 32,
        iterations: 12,
        eval_every: 12,
        ..RunConfig::default()
    };
    let mut s = Session::new(cfg, data()).expect("valid");
    let mut events = Vec::new();
    while !s.is_finished() {
        events.extend(s.step());
    }
    let found = events.iter().find_map(|e| match e {
        Event::Diverged { rule: "sp", iteration, layer, site } => Some((*iteration, *layer, site.clone())),
        _ => None,
    });
    let (iteration, layer, site) = found.expect("standard PC diverges at η_w = 10");
    let layer = layer.expect("the report names the layer");
    assert!(iteration <= 10 && (1..=65).contains(&layer), "iteration {iteration}, layer {layer}");
    assert!(site.starts_with(&format!("layer {layer} (")), "{site}");
    println!("standard PC at H = 64, η_w = 10: diverged at iteration {iteration}, first at {site}");
    assert!(matches!(s.runs[0].status, RunStatus::Diverged { layer: Some(l), .. } if l == layer));
    assert!(s.runs[1].is_running(), "μPC goes on");
    assert_eq!(s.iteration(), 12);
    assert!(s.runs[1].accuracy.last().is_some(), "μPC was evaluated");
    // The loss plot marks the divergence at its iteration, with the layer.
    let lines = pclab::charts::figures::run_lines(&s.runs, true);
    assert_eq!(lines[0].diverged_at, Some((iteration as f64, format!("diverged (layer {layer})"))));
}

/// An hour of training at 50 iterations a second (180 000 iterations, an evaluation every 50:
/// 3 600) keeps every history within its bound: the page's memory stays flat however long a
/// lecture runs.
#[test]
fn an_hour_of_histories_stays_within_its_bound() {
    use pclab::session::run::{Run, HISTORY_POINTS};
    let s = Session::new(RunConfig { depth: 128, ..config() }, data()).expect("valid");
    let Some(first) = s.runs.into_iter().next() else { panic!("a run") };
    let mut run = Run::new(first.settings, first.backend);
    let layers = 129;
    for it in 1..=180_000usize {
        run.loss.push(it, 1.0 / it as f64);
        run.energies.push(it, vec![it as f64; layers]);
        if it % 50 == 0 {
            run.accuracy.push(it, 90.0);
        }
    }
    // What is allocated (capacities, not lengths): the three series and each kept profile.
    let profiles: usize = run.energies.points().iter().map(|(_, v)| v.capacity() * 8).sum();
    let total = run.loss.allocated_bytes() + run.accuracy.allocated_bytes() + run.energies.allocated_bytes() + profiles;
    for (name, len) in [
        ("loss", run.loss.points().len()),
        ("accuracy", run.accuracy.points().len()),
        ("energies", run.energies.points().len()),
    ] {
        assert!((HISTORY_POINTS / 2..=HISTORY_POINTS).contains(&len), "{name}: {len} points");
    }
    assert_eq!(run.loss.points()[0].0, 1, "the start is kept");
    assert!(run.loss.last().expect("points").0 > 179_000, "and the recent end");
    assert!(total < 4 << 20, "{total} bytes of history");
    println!("an hour (180 000 iterations, 3 600 evaluations) of histories at H = 128: {:.2} MB", total as f64 / 1e6);
}
