//! The reference against jpc's float64 fixtures (docs/maths.md §10): every fixture in
//! `../shared/reference/pcn/`, plus every `pc`/`bp` fixture in `$PCLAB_REFERENCE_DIR` when set.
//!
//! In f64 every quantity must match to 1e-10 of its scale and the Adam step to 1e-9 (norm-wise per
//! layer, `‖ΔW − ΔW_ref‖ / ‖ΔW_ref‖`; see `common/fixtures.rs`). This is the specification check.
//!
//! The f32 path is measured, not bounded by a constant: its error is what f32 can reach on that
//! input — after `T = H` steps the bottom layers' errors are differences of nearly equal
//! activities, so their gradients are round-off and Adam turns them into steps of order η_w
//! (docs/maths.md §9) — and it is the yardstick the GPU is held to (`tests/gpu.rs`). Here it must be finite
//! wherever the reference is; a NaN or ±∞ is named with its index.
//!
//! `layer_energies_final` is compared in the order of docs/maths.md §4, `[E_1 … E_L]`, only.

mod common;

use common::fixtures::{check_cpu, training_fixtures};
use common::*;

#[test]
fn every_fixture_matches_in_f64_and_f32() {
    let mut failed = Vec::new();
    for (name, fx) in training_fixtures() {
        let exact = check_cpu::<f64>(&fx);
        let f32_path = check_cpu::<f32>(&fx);
        for (label, c, bad) in [("cpu", &exact, exact.failures()), ("cpu-f32", &f32_path, f32_path.non_finite())] {
            if bad.is_empty() {
                println!("fixture {name} {label} ok {}", c.summary());
            } else {
                println!("fixture {name} {label} FAILED {}", c.summary());
                for m in &bad {
                    println!("  {m}");
                }
                failed.push(format!("{name} ({label})"));
            }
        }
    }
    assert!(failed.is_empty(), "fixtures failed: {failed:?}");
}

/// Negative controls of the checker itself: a defect planted in a correct result is reported.
#[test]
fn the_checker_catches_planted_defects() {
    let (name, fx) = training_fixtures().into_iter().find(|(_, fx)| fx["kind"] == "pc").expect("a pc fixture");
    let it = &fx["iterations"][0];
    let want_grads = mats::<f64>(&it["weight_grads"]);
    let want_after = mats::<f64>(&it["weights_after"]);
    let before = common::fixtures::weights_before(&fx, 0);

    // The correct values pass.
    let mut ok = Checker::new();
    ok.mats("weight grads", &want_grads, &want_grads, Scale::Quantity, 1e-10);
    ok.update("weight update", &before, &want_after, &before, &want_after, 1e-9);
    assert!(ok.failures().is_empty(), "{name}: {:?}", ok.failures());

    // A NaN in one element: the error is NaN, the failure names the element.
    let mut nan = want_grads.clone();
    nan[1].data[5] = f64::NAN;
    let mut c = Checker::new();
    c.mats("weight grads", &nan, &want_grads, Scale::Quantity, 1e-10);
    let f = c.failures();
    assert!(f.len() == 1 && f[0].contains("weight grads[2]") && f[0].contains("[5] is NaN"), "{f:?}");
    // … and a NaN in a vector, where `f64::max` folding would have dropped it.
    let mut c = Checker::new();
    c.values("energies", &[1.0, f64::NAN, 3.0], &[1.0, 2.0, 3.0], 1e-10);
    assert!(c.failures().iter().any(|m| m.contains("[1] is NaN")), "{:?}", c.failures());
    // An infinity where the reference is finite.
    let mut c = Checker::new();
    c.values("energies", &[1.0, 2.0, f64::INFINITY], &[1.0, 2.0, 3.0], 1e-10);
    assert!(c.failures().iter().any(|m| m.contains("[2] is inf")), "{:?}", c.failures());

    // One layer's gradient zeroed.
    let mut zeroed = want_grads.clone();
    let top = zeroed.len() - 1;
    zeroed[top].data.fill(0.0);
    let mut c = Checker::new();
    c.mats("weight grads", &zeroed, &want_grads, Scale::Quantity, 1e-3);
    let f = c.failures();
    assert!(f.len() == 1 && f[0].contains(&format!("weight grads[{}]", top + 1)), "{f:?}");

    // The weights before the update presented as after: error 1 in every layer.
    let mut c = Checker::new();
    c.update("weight update", &before, &before, &before, &want_after, 1e-9);
    let f = c.failures();
    assert_eq!(f.len(), want_after.len(), "{f:?}");
    assert!(c.entries.values().all(|e| (e.err - 1.0).abs() < 1e-12), "{:?}", c.entries);

    // The achievable-accuracy judge: an f32 error within 4× the yardstick's passes, 10× fails,
    // a key the yardstick lacks fails, and a NaN yardstick fails.
    let mut yard = Checker::new();
    yard.record("q[1]", 1e-4, 0.0, String::new());
    let judged = |err: f64, yard: &Checker| {
        let mut g = Checker::new();
        g.record("q[1]", err, 1e-6, String::new());
        g.failures_within(yard, 4.0)
    };
    assert!(judged(3e-4, &yard).is_empty());
    assert_eq!(judged(1e-3, &yard).len(), 1);
    assert_eq!(judged(f64::NAN, &yard).len(), 1);
    let mut other = Checker::new();
    other.record("r[1]", 0.0, 1e-6, String::new());
    assert_eq!(other.failures_within(&yard, 4.0).len(), 1);
    yard.record("q[1]", f64::NAN, 0.0, String::new());
    assert_eq!(judged(0.0, &yard).len(), 1);
}
