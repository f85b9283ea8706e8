//! The reference against jpc's float64 fixtures (spec §10): every fixture in
//! `../shared/reference/pcn/`, plus every `pc`/`bp` fixture in `$PCLAB_REFERENCE_DIR` when set.
//!
//! Each quantity is compared by its largest entrywise error divided by a scale, across all chained
//! iterations. Tolerances (scale in brackets):
//!
//! | quantity | f64 | f32 |
//! |---|---|---|
//! | forward activities, output, (inference) energies, final activities | 1e-10 [own max] | 1e-5 [own max] |
//! | activity and weight gradients, BP loss | 1e-10 [own max] | 1e-3 [max over all layers] |
//! | weights after Adam | 1e-10 [own max] | 1.0 [η_w] |
//!
//! f64 runs chain the iterations exactly as the fixtures do (weights and Adam state carried over).
//! f32 runs restart each iteration from the fixture's weights (cast to f32; the f32 Adam state is
//! carried), so they measure one iteration's round-off rather than compounding it.
//!
//! Why the f32 column is looser for gradients and weights: after `T = H` steps the bottom layers'
//! errors are differences of nearly equal activities, so in f32 their gradients are round-off
//! (spec §9), and Adam divides a gradient by its own RMS, turning round-off-sized gradients into
//! steps of order η_w. The f32 check therefore bounds those layers by "one Adam step"; the f64
//! check is exact everywhere.
//!
//! The fixtures list `layer_energies_final` as `[E_1, E_H, …, E_2, E_L]` (hidden layers 2…H
//! reversed), unlike `ffwd.layer_energies` and unlike the energies the fixtures' own
//! `activities_final` give. The check accepts that order or the spec's `[E_1 … E_L]`, and reports
//! which it saw.

mod common;

use common::*;
use pclab::pcn::bp::bp_loss;
use pclab::pcn::energy::errors;
use pclab::pcn::forward::forward;
use pclab::pcn::infer::activity_grads_into;
use pclab::pcn::train::{Learning, Model};
use pclab::pcn::Real;
use serde_json::Value;
use std::path::PathBuf;

struct Tol {
    values: f64,
    grads: (Scale, f64),
    weights: (Scale, f64),
}

fn tol<T: Real>(lr: f64) -> Tol {
    if std::mem::size_of::<T>() == 8 {
        Tol { values: 1e-10, grads: (Scale::Own, 1e-10), weights: (Scale::Own, 1e-10) }
    } else {
        Tol { values: 1e-5, grads: (Scale::Quantity, 1e-3), weights: (Scale::Fixed(lr), 1.0) }
    }
}

/// The fixture's final layer energies in spec order `[E_1 … E_L]`, and whether they were listed
/// with hidden layers 2…H reversed (see the module docs).
fn final_energies_in_layer_order(fixture: &[f64], ours: &[f64]) -> (Vec<f64>, bool) {
    let n = fixture.len();
    let mut reversed = fixture.to_vec();
    if n > 2 {
        reversed[1..n - 1].reverse();
    }
    let dist = |v: &[f64]| v.iter().zip(ours).map(|(a, b)| (a - b).abs()).fold(0.0, f64::max);
    if dist(&reversed) < dist(fixture) {
        (reversed, true)
    } else {
        (fixture.to_vec(), false)
    }
}

/// In f32, start iteration `k > 0` from the fixture's weights (see the module docs).
fn restart_f32<T: Real>(weights: &mut Vec<pclab::pcn::Mat<T>>, k: usize, iterations: &[Value]) {
    if std::mem::size_of::<T>() == 4 && k > 0 {
        *weights = mats(&iterations[k - 1]["weights_after"]);
    }
}

fn check_pc<T: Real>(fx: &Value, notes: &mut Vec<String>) -> Checker {
    let cfg = &fx["config"];
    let learning = Learning::Pc {
        eta_z: f(&cfg["activity_lr"]),
        steps: cfg["inference_steps"].as_u64().expect("inference_steps") as usize,
    };
    let mut model = Model::new(network::<T>(fx, "weights_init"), learning, f(&cfg["weight_lr"]), adam(cfg));
    let tol = tol::<T>(f(&cfg["weight_lr"]));
    let mut c = Checker::new();
    let iterations = fx["iterations"].as_array().expect("iterations");
    for (k, it) in iterations.iter().enumerate() {
        let p = format!("iteration {k} ");
        restart_f32(&mut model.net.weights, k, iterations);
        let (x, y) = (mat::<T>(&it["x"]), mat::<T>(&it["y"]));
        let ff = &it["ffwd"];
        let (z, y_hat) = forward(&model.net, &x);
        c.mats(&format!("{p}ffwd activities z"), &z, &ff["activities"], Scale::Own, tol.values);
        c.values(&format!("{p}ffwd output"), &y_hat.data, &mat::<f64>(&ff["output"]).data, tol.values);
        let (_, energies) = errors(&model.net, &x, &y, &z);
        c.values(&format!("{p}ffwd layer energies"), &energies, &floats(&ff["layer_energies"]), tol.values);
        c.scalar(&format!("{p}ffwd energy"), energies.iter().map(|e| e.f64()).sum(), f(&ff["energy"]), tol.values);

        let report = model.train_step(&x, &y);
        let inf = &it["inference"];
        let totals: Vec<f64> = report.energy_steps.iter().map(|s| s.iter().sum()).collect();
        c.values(&format!("{p}inference energies"), &totals, &floats(&inf["energies"]), tol.values);
        c.values(
            &format!("{p}ffwd energies (report)"),
            &report.energies_ffwd,
            &floats(&ff["layer_energies"]),
            tol.values,
        );
        let (want, reversed) =
            final_energies_in_layer_order(&floats(&inf["layer_energies_final"]), &report.energies_post);
        if reversed && k == 0 {
            notes.push("layer_energies_final listed as [E_1, E_H..E_2, E_L]".into());
        }
        c.values(&format!("{p}final layer energies"), &report.energies_post, &want, tol.values);
        c.mats(&format!("{p}final activities"), &model.z, &inf["activities_final"], Scale::Own, tol.values);
        // The workspace still holds the errors and back-projections at the final activities (from
        // the pre-update weights); the gradient reads only those and the scalings.
        let mut grads = model.z.clone();
        activity_grads_into(&model.net, &model.z, &model.ws, &mut grads);
        c.mats(&format!("{p}activity grads"), &grads, &inf["activity_grads_final"], tol.grads.0, tol.grads.1);
        c.mats(&format!("{p}weight grads"), &model.grads, &it["weight_grads"], tol.grads.0, tol.grads.1);
        c.mats(
            &format!("{p}weights after Adam"),
            &model.net.weights,
            &it["weights_after"],
            tol.weights.0,
            tol.weights.1,
        );
    }
    c
}

fn check_bp<T: Real>(fx: &Value) -> Checker {
    let cfg = &fx["config"];
    let mut model = Model::new(network::<T>(fx, "weights_init"), Learning::Bp, f(&cfg["weight_lr"]), adam(cfg));
    let tol = tol::<T>(f(&cfg["weight_lr"]));
    let mut c = Checker::new();
    let iterations = fx["iterations"].as_array().expect("iterations");
    for (k, it) in iterations.iter().enumerate() {
        let p = format!("iteration {k} ");
        restart_f32(&mut model.net.weights, k, iterations);
        let (x, y) = (mat::<T>(&it["x"]), mat::<T>(&it["y"]));
        let (_, y_hat) = forward(&model.net, &x);
        c.values(&format!("{p}output"), &y_hat.data, &mat::<f64>(&it["output"]).data, tol.values);
        c.scalar(&format!("{p}loss"), bp_loss(&y, &y_hat).f64(), f(&it["loss"]), tol.grads.1);
        let report = model.train_step(&x, &y);
        c.scalar(&format!("{p}loss (report)"), report.objective, f(&it["loss"]), tol.grads.1);
        c.mats(&format!("{p}weight grads"), &model.grads, &it["weight_grads"], tol.grads.0, tol.grads.1);
        c.mats(
            &format!("{p}weights after Adam"),
            &model.net.weights,
            &it["weights_after"],
            tol.weights.0,
            tol.weights.1,
        );
    }
    c
}

fn fixtures() -> Vec<PathBuf> {
    let mut files = json_files(&shared_reference("pcn"));
    assert!(files.len() >= 5, "expected the five jpc fixtures in ../shared/reference/pcn");
    if let Ok(dir) = std::env::var("PCLAB_REFERENCE_DIR") {
        files.extend(json_files(std::path::Path::new(&dir)));
    }
    files
}

#[test]
fn every_fixture_matches_in_f64_and_f32() {
    let mut failed = Vec::new();
    let mut checked = 0;
    for path in fixtures() {
        let fx = load(&path);
        let name = fx["name"].as_str().map(str::to_string).unwrap_or_else(|| path.display().to_string());
        let kind = fx["kind"].as_str().unwrap_or("");
        if kind != "pc" && kind != "bp" {
            continue; // other kinds (hessian) have their own tests
        }
        checked += 1;
        let mut notes = Vec::new();
        for (label, c) in [
            ("cpu", if kind == "pc" { check_pc::<f64>(&fx, &mut notes) } else { check_bp::<f64>(&fx) }),
            ("cpu-f32", if kind == "pc" { check_pc::<f32>(&fx, &mut Vec::new()) } else { check_bp::<f32>(&fx) }),
        ] {
            if c.failures.is_empty() {
                let note = if notes.is_empty() { String::new() } else { format!(" ({})", notes.join("; ")) };
                println!("fixture {name} {label} ok {}{note}", c.summary());
            } else {
                println!("fixture {name} {label} FAILED {}", c.summary());
                for m in &c.failures {
                    println!("  {m}");
                }
                failed.push(format!("{name} ({label})"));
            }
        }
    }
    assert!(checked >= 5, "only {checked} pc/bp fixtures found");
    assert!(failed.is_empty(), "fixtures failed: {failed:?}");
}
