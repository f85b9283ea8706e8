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
        // reaching them decays like (η_z/B)^k (spec §9).
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
    assert!(first.contains(&Event::Diverged { rule: "sp", iteration: 1 }), "{first:?}");
    assert_eq!(s.runs[1].status, RunStatus::Diverged { iteration: 1 });
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
