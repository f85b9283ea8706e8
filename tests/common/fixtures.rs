//! The CPU reference replayed on a jpc fixture, in f64 (the specification check) or f32 (the
//! yardstick: what f32 can reach on that input, which the GPU is held to).
//!
//! Keys (see [`super::Checker`]): values are compared entrywise relative to their own largest
//! magnitude, gradients relative to the largest gradient of the quantity over all layers, and the
//! Adam step as an update, `‖ΔW − ΔW_ref‖ / ‖ΔW_ref‖` per layer.
//!
//! f64 runs chain the iterations exactly as the fixtures do (weights and Adam state carried over).
//! f32 runs restart each iteration from the fixture's weights (cast to f32; the f32 Adam state is
//! carried), so they measure one iteration's round-off rather than compounding it.

use super::*;
use pclab::pcn::bp::bp_loss;
use pclab::pcn::energy::errors;
use pclab::pcn::forward::forward;
use pclab::pcn::infer::activity_grads_into;
use pclab::pcn::train::{Learning, Model};
use pclab::pcn::Real;

/// Float64 bounds of the specification check, relative to the scales above. The update's is looser
/// than the values': `ΔW` is the small difference of two weight matrices.
pub const F64_VALUES: f64 = 1e-10;
pub const F64_UPDATE: f64 = 1e-9;

/// The GPU (or any f32 path) against float64: within `F32_FACTOR ×` the CPU f32 path's own error
/// on the same key, plus a floor per kind of key (the CPU's f32 error can be zero by luck where a
/// different summation order is not).
///
/// The update's floor is 1 % of the step: Adam divides every gradient by its own RMS, so elements
/// whose gradient is at round-off level relative to their layer take steps whose size (and sign)
/// is round-off too, and another summation order, equally good, moves different ones; the CPU's
/// own error on the layer says how many such elements there are only on average (measured: the
/// GPU at 11× the CPU's 5e-5 on one layer of `sp_relu_noskip`). A step that never wrote the
/// weights has error 1, a hundred times the floor.
pub const F32_FACTOR: f64 = 4.0;
pub const F32_FLOOR_VALUES: f64 = 2e-6;
pub const F32_FLOOR_GRADS: f64 = 2e-5;
pub const F32_FLOOR_UPDATE: f64 = 1e-2;

/// The bounds a run of element type `T` records: absolute in f64, floors in f32.
pub struct Tol {
    pub values: f64,
    pub grads: f64,
    pub update: f64,
}

pub fn tol<T: Real>() -> Tol {
    if std::mem::size_of::<T>() == 8 {
        Tol { values: F64_VALUES, grads: F64_VALUES, update: F64_UPDATE }
    } else {
        Tol { values: F32_FLOOR_VALUES, grads: F32_FLOOR_GRADS, update: F32_FLOOR_UPDATE }
    }
}

pub fn is_f32<T: Real>() -> bool {
    std::mem::size_of::<T>() == 4
}

/// The fixture's weights before iteration `k`: `weights_init`, then the previous `weights_after`.
pub fn weights_before(fx: &Value, k: usize) -> Vec<Mat<f64>> {
    if k == 0 {
        mats(&fx["weights_init"])
    } else {
        mats(&fx["iterations"][k - 1]["weights_after"])
    }
}

/// The learning rule a fixture trains with.
pub fn learning(fx: &Value) -> Learning {
    let cfg = &fx["config"];
    if fx["kind"] == "bp" {
        Learning::Bp
    } else {
        Learning::Pc {
            eta_z: f(&cfg["activity_lr"]),
            steps: cfg["inference_steps"].as_u64().expect("inference_steps") as usize,
        }
    }
}

/// The CPU reference on fixture `fx` in element type `T`.
pub fn check_cpu<T: Real>(fx: &Value) -> Checker {
    let cfg = &fx["config"];
    let bp = fx["kind"] == "bp";
    let mut model = Model::new(network::<T>(fx, "weights_init"), learning(fx), f(&cfg["weight_lr"]), adam(cfg));
    let tol = tol::<T>();
    let mut c = Checker::new();
    let iterations = fx["iterations"].as_array().expect("iterations");
    for (k, it) in iterations.iter().enumerate() {
        let p = format!("iteration {k} ");
        if is_f32::<T>() && k > 0 {
            model.net.weights = mats(&iterations[k - 1]["weights_after"]);
        }
        let before = model.net.weights.clone();
        let (x, y) = (mat::<T>(&it["x"]), mat::<T>(&it["y"]));
        if bp {
            let (_, y_hat) = forward(&model.net, &x);
            c.values(&format!("{p}output"), &y_hat.data, &mat::<f64>(&it["output"]).data, tol.values);
            c.scalar(&format!("{p}loss"), bp_loss(&y, &y_hat).f64(), f(&it["loss"]), tol.values);
            let report = model.train_step(&x, &y);
            c.scalar(&format!("{p}loss (report)"), report.objective, f(&it["loss"]), tol.values);
        } else {
            let ff = &it["ffwd"];
            let (z, y_hat) = forward(&model.net, &x);
            c.mats_json(&format!("{p}ffwd activities z"), &z, &ff["activities"], Scale::Own, tol.values);
            c.values(&format!("{p}ffwd output"), &y_hat.data, &mat::<f64>(&ff["output"]).data, tol.values);
            let (_, energies) = errors(&model.net, &x, &y, &z);
            c.values(&format!("{p}ffwd layer energies"), &energies, &floats(&ff["layer_energies"]), tol.values);
            let total: f64 = energies.iter().map(|e| e.f64()).sum();
            c.scalar(&format!("{p}ffwd energy"), total, f(&ff["energy"]), tol.values);

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
            // The order of docs/maths.md §4, [E_1 … E_L].
            let want = floats(&inf["layer_energies_final"]);
            c.values(&format!("{p}final layer energies"), &report.energies_post, &want, tol.values);
            c.mats_json(&format!("{p}final activities"), &model.z, &inf["activities_final"], Scale::Own, tol.values);
            // The workspace still holds the errors and back-projections at the final activities
            // (from the pre-update weights); the gradient reads only those and the scalings.
            let mut grads = model.z.clone();
            activity_grads_into(&model.net, &model.z, &model.ws, &mut grads);
            c.mats_json(
                &format!("{p}activity grads"),
                &grads,
                &inf["activity_grads_final"],
                Scale::Quantity,
                tol.grads,
            );
        }
        c.mats_json(&format!("{p}weight grads"), &model.grads, &it["weight_grads"], Scale::Quantity, tol.grads);
        let want_after = mats::<f64>(&it["weights_after"]);
        c.update(
            &format!("{p}weight update"),
            &before,
            &model.net.weights,
            &weights_before(fx, k),
            &want_after,
            tol.update,
        );
    }
    c
}

/// Every fixture of kind `pc` or `bp` in `../shared/reference/pcn/` (at least the five jpc ones),
/// plus those in `$PCLAB_REFERENCE_DIR` when set: `(name, fixture)`.
pub fn training_fixtures() -> Vec<(String, Value)> {
    let mut files = json_files(&shared_reference("pcn"));
    assert!(files.len() >= 5, "expected the five jpc fixtures in ../shared/reference/pcn");
    if let Ok(dir) = std::env::var("PCLAB_REFERENCE_DIR") {
        files.extend(json_files(std::path::Path::new(&dir)));
    }
    let out: Vec<(String, Value)> = files
        .iter()
        .map(|p| {
            let fx = load(p);
            let name = fx["name"].as_str().map(str::to_string).unwrap_or_else(|| p.display().to_string());
            (name, fx)
        })
        .filter(|(_, fx)| fx["kind"] == "pc" || fx["kind"] == "bp")
        .collect();
    assert!(out.len() >= 5, "only {} pc/bp fixtures found", out.len());
    out
}
