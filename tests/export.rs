//! Export formats: a session's run state round-trips through JSON, and its CSV has the version
//! and configuration in the header and one row per recorded iteration.

use pclab::config::{BackendKind, Rule, RuleSettings, RunConfig};
use pclab::data::Mnist;
use pclab::export::RunState;
use pclab::pcn::network::Param;
use pclab::session::Session;
use std::path::Path;
use std::sync::Arc;

#[test]
fn a_session_round_trips_through_json_and_its_csv_has_one_row_per_recorded_iteration() {
    let data = Arc::new(Mnist::load_dir(&Path::new(env!("CARGO_MANIFEST_DIR")).join("www/data/mnist")).expect("MNIST"));
    let config = RunConfig {
        width: 16,
        depth: 3,
        rules: vec![RuleSettings::new(Rule::Pc(Param::Mupc)), RuleSettings::new(Rule::Bp(Param::Mupc))],
        iterations: 12,
        eval_every: 5,
        batch: 16,
        backend: BackendKind::Cpu,
        ..RunConfig::default()
    };
    let mut s = Session::new(config, data).expect("session");
    while !s.is_finished() {
        s.step();
    }
    let state = RunState::of_session(&s, "?depth=3&width=16&seed=0", "CPU");
    assert_eq!((state.iteration, state.runs.len()), (12, 2));
    assert_eq!(state.runs[0].energy.len(), 12, "PC records its energy every iteration");
    assert!(state.runs[1].energy.is_empty(), "BP has no energy");
    let back = RunState::from_json(&state.to_json()).expect("loads back");
    assert_eq!(back, state);
    let csv = state.to_csv();
    let lines: Vec<&str> = csv.lines().filter(|l| !l.starts_with('#')).collect();
    assert!(csv.starts_with(&format!("# pclab {}\n# config ?depth=3", pclab::VERSION)));
    assert_eq!(lines[0], "iteration,loss_mupc,accuracy_mupc,energy_mupc,loss_bp_mup,accuracy_bp_mup,energy_bp_mup");
    assert_eq!(lines.len() - 1, 12, "one row per recorded iteration");
    for (k, row) in lines[1..].iter().enumerate() {
        let cells: Vec<&str> = row.split(',').collect();
        assert_eq!(cells.len(), 7);
        assert_eq!(cells[0].parse::<usize>(), Ok(k + 1));
        let loss: f64 = cells[1].parse().expect("a loss every iteration");
        assert_eq!(loss, state.runs[0].loss[k].1, "the CSV holds the recorded value exactly");
        let evaluated = (k + 1) % 5 == 0 || k + 1 == 12;
        assert_eq!(cells[2].is_empty(), !evaluated, "accuracy only at evaluations (and the last iteration)");
    }
    assert!(RunState::from_json("{\"kind\":\"other\"}").unwrap_err().contains("not a pclab run file"));
    assert!(RunState::from_json("[1,").unwrap_err().starts_with("not JSON"));
}
