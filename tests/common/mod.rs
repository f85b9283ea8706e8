//! Reading the float64 fixtures of `../shared/reference/` (docs/maths.md §10), and the NaN-aware checker
//! every reference, fixture and parity test compares with.
#![allow(dead_code)]
// `!(err <= tol)` on purpose: it is true for NaN, which `err > tol` is not.
#![allow(clippy::neg_cmp_op_on_partial_ord)]

pub mod fixtures;

use pclab::pcn::learn::AdamConfig;
use pclab::pcn::{Activation, Arch, Mat, Network, Param, Real, Scalings};
use serde_json::Value;
use std::path::{Path, PathBuf};

/// `../shared/reference/<sub>` next to the project.
pub fn shared_reference(sub: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../shared/reference").join(sub)
}

/// Every `*.json` in `dir`, sorted; panics when the folder is missing (a fixture folder that
/// silently vanished must not turn the test green).
pub fn json_files(dir: &Path) -> Vec<PathBuf> {
    let mut v: Vec<PathBuf> = std::fs::read_dir(dir)
        .unwrap_or_else(|e| panic!("cannot read fixture folder {}: {e}", dir.display()))
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| p.extension().is_some_and(|x| x == "json"))
        .collect();
    v.sort();
    v
}

pub fn load(path: &Path) -> Value {
    let text = std::fs::read_to_string(path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    serde_json::from_str(&text).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
}

pub fn mat<T: Real>(v: &Value) -> Mat<T> {
    let rows = v["rows"].as_u64().expect("rows") as usize;
    let cols = v["cols"].as_u64().expect("cols") as usize;
    let data = v["data"].as_array().expect("data").iter().map(|x| T::of(x.as_f64().expect("number"))).collect();
    Mat::from_vec(rows, cols, data).expect("matrix shape")
}

pub fn mats<T: Real>(v: &Value) -> Vec<Mat<T>> {
    v.as_array().expect("list of matrices").iter().map(mat).collect()
}

pub fn floats(v: &Value) -> Vec<f64> {
    v.as_array().expect("list of numbers").iter().map(|x| x.as_f64().expect("number")).collect()
}

pub fn f(v: &Value) -> f64 {
    v.as_f64().expect("number")
}

/// The architecture a fixture's `config` describes.
pub fn arch(cfg: &Value) -> Arch {
    let param = match cfg["parameterisation"].as_str().expect("parameterisation") {
        "sp" => Param::Sp,
        "mupc" | "depth_mup" => Param::Mupc,
        other => panic!("unknown parameterisation {other}"),
    };
    Arch {
        input: cfg["input_dim"].as_u64().expect("input_dim") as usize,
        width: cfg["width"].as_u64().expect("width") as usize,
        hidden: cfg["hidden_layers"].as_u64().expect("hidden_layers") as usize,
        output: cfg["output_dim"].as_u64().expect("output_dim") as usize,
        act: cfg["activation"].as_str().expect("activation").parse::<Activation>().expect("activation"),
        skips: cfg["skips"].as_bool().unwrap_or(true),
        param,
    }
}

pub fn scalings(s: &Value) -> Scalings {
    Scalings { a_in: f(&s["a_in"]), a_hidden: f(&s["a_hidden"]), a_out: f(&s["a_out"]) }
}

pub fn adam(cfg: &Value) -> AdamConfig {
    let a = &cfg["adam"];
    AdamConfig { beta1: f(&a["beta1"]), beta2: f(&a["beta2"]), eps: f(&a["eps"]) }
}

/// The network a fixture starts from (`weights` is `weights_init` or `weights`).
pub fn network<T: Real>(fx: &Value, weights: &str) -> Network<T> {
    Network::from_weights(arch(&fx["config"]), scalings(&fx["scalings"]), mats(&fx[weights])).expect("fixture weights")
}

/// What an entrywise error is divided by.
#[derive(Clone, Copy, Debug)]
pub enum Scale {
    /// The largest magnitude of the matrix or vector itself.
    Own,
    /// The largest magnitude over every matrix of the quantity (all layers).
    Quantity,
}

fn max_abs(v: &[f64]) -> f64 {
    v.iter().filter(|x| x.is_finite()).fold(1e-300, |m, x| m.max(x.abs()))
}

/// The largest of `values`, NaN when any is NaN (`f64::max` would drop it).
pub fn nan_max(values: impl IntoIterator<Item = f64>) -> f64 {
    values.into_iter().fold(0.0f64, |m, v| if v.is_nan() || m.is_nan() { f64::NAN } else { m.max(v) })
}

/// Whether two values that are not both finite agree (the same infinity, or both NaN).
fn same_non_finite(g: f64, w: f64) -> bool {
    (g.is_nan() && w.is_nan()) || g == w
}

/// The largest `|got − want| / scale` over a slice, and where it is. NaN-aware: a value that is
/// non-finite where the reference is finite (or the other way round) makes the error NaN and is
/// named by its index — `f64::max` would drop it.
pub fn entry_error<T: Real>(got: &[T], want: &[f64], scale: f64) -> (f64, String) {
    assert_eq!(got.len(), want.len(), "entry_error: lengths differ");
    let (mut worst, mut at) = (0.0f64, None);
    for (i, (g, &w)) in got.iter().zip(want).enumerate() {
        let g = g.f64();
        if !(g.is_finite() && w.is_finite()) {
            if same_non_finite(g, w) {
                continue;
            }
            return (f64::NAN, format!("[{i}] is {g} where the reference is {w:.10e}"));
        }
        let e = (g - w).abs() / scale;
        if e > worst || at.is_none() {
            (worst, at) = (e.max(worst), Some(i));
        }
    }
    let text = match at {
        Some(i) => format!("worst [{i}] got {:.10e} want {:.10e}, scale {scale:.3e}", got[i].f64(), want[i]),
        None => "empty".into(),
    };
    (worst, text)
}

/// `‖got − want‖ / ‖want‖` (Frobenius), NaN-aware as [`entry_error`].
pub fn norm_error(got: &[f64], want: &[f64]) -> (f64, String) {
    assert_eq!(got.len(), want.len(), "norm_error: lengths differ");
    if let Some(i) = got.iter().zip(want).position(|(g, w)| !(g.is_finite() && w.is_finite())) {
        return (f64::NAN, format!("[{i}] is {} where the reference is {:.10e}", got[i], want[i]));
    }
    let diff = got.iter().zip(want).map(|(g, w)| (g - w) * (g - w)).sum::<f64>().sqrt();
    let norm = want.iter().map(|w| w * w).sum::<f64>().sqrt();
    let e = diff / norm.max(1e-300);
    (e, format!("‖got − want‖ {diff:.3e}, ‖want‖ {norm:.3e}"))
}

/// The largest error of one key (a quantity, or one layer of it) over the iterations compared.
#[derive(Clone, Debug)]
pub struct Entry {
    /// The error: NaN when a value was non-finite where the reference is finite.
    pub err: f64,
    /// The bound: absolute for [`Checker::failures`], the floor for [`Checker::failures_within`].
    pub tol: f64,
    /// Where the largest error is (iteration, index, values).
    pub worst: String,
}

/// Errors against a reference, by key: `"weight grads[3]"` is layer 3 of the weight gradients,
/// the largest over every iteration compared (the `iteration k ` prefix of a label is dropped).
#[derive(Clone, Debug, Default)]
pub struct Checker {
    pub entries: std::collections::BTreeMap<String, Entry>,
}

/// `"iteration 2 weight grads[3]"` → `("weight grads[3]", "iteration 2")`.
fn split_label(what: &str) -> (String, String) {
    match what.strip_prefix("iteration ").and_then(|r| r.split_once(' ')) {
        Some((k, rest)) => (rest.trim().to_string(), format!("iteration {k}")),
        None => (what.trim().to_string(), String::new()),
    }
}

/// The quantity of a key: `"weight grads[3]"` → `"weight grads"`.
pub fn quantity(key: &str) -> &str {
    key.split('[').next().unwrap_or(key).trim()
}

impl Checker {
    pub fn new() -> Self {
        Self::default()
    }

    /// Records an error under `what`'s key, keeping the largest (a NaN always wins).
    pub fn record(&mut self, what: &str, err: f64, tol: f64, worst: String) {
        let (key, at) = split_label(what);
        let worst = if at.is_empty() { worst } else { format!("{at}: {worst}") };
        let slot = self.entries.entry(key).or_insert(Entry { err: 0.0, tol, worst: String::new() });
        // `!(err <= slot.err)`: larger, or NaN; a NaN already recorded stays.
        if slot.worst.is_empty() || (!slot.err.is_nan() && !(err <= slot.err)) {
            slot.err = err;
            slot.worst = worst;
        }
        slot.tol = tol;
    }

    /// Entrywise error of a vector relative to its own largest magnitude.
    pub fn values<T: Real>(&mut self, what: &str, got: &[T], want: &[f64], tol: f64) {
        let (e, worst) = entry_error(got, want, max_abs(want));
        self.record(what, e, tol, worst);
    }

    pub fn scalar(&mut self, what: &str, got: f64, want: f64, tol: f64) {
        self.values(what, &[got], &[want], tol);
    }

    /// Each matrix of a per-layer quantity (key `what[l]`), its error divided as `scale` says.
    pub fn mats<T: Real>(&mut self, what: &str, got: &[Mat<T>], want: &[Mat<f64>], scale: Scale, tol: f64) {
        assert_eq!(got.len(), want.len(), "{what}: count");
        let quantity = want.iter().map(|m| max_abs(&m.data)).fold(1e-300, f64::max);
        for (i, (g, w)) in got.iter().zip(want).enumerate() {
            assert_eq!((g.rows, g.cols), (w.rows, w.cols), "{what}[{}] shape", i + 1);
            let s = match scale {
                Scale::Own => max_abs(&w.data),
                Scale::Quantity => quantity,
            };
            let (e, worst) = entry_error(&g.data, &w.data, s);
            self.record(&format!("{what}[{}]", i + 1), e, tol, worst);
        }
    }

    /// [`Checker::mats`] against a fixture's JSON matrices.
    pub fn mats_json<T: Real>(&mut self, what: &str, got: &[Mat<T>], want: &Value, scale: Scale, tol: f64) {
        self.mats(what, got, &mats::<f64>(want), scale, tol);
    }

    /// An optimiser step checked as an update: per layer `‖ΔW − ΔW_ref‖ / ‖ΔW_ref‖` with
    /// `ΔW = after − before` (key `what[l]`). A step that never wrote the weights has error 1 in
    /// every layer, whatever the learning rate.
    pub fn update<T: Real>(
        &mut self,
        what: &str,
        before: &[Mat<T>],
        after: &[Mat<T>],
        want_before: &[Mat<f64>],
        want_after: &[Mat<f64>],
        tol: f64,
    ) {
        assert_eq!(
            (before.len(), after.len(), want_before.len()),
            (want_after.len(), want_after.len(), want_after.len())
        );
        for l in 0..after.len() {
            let got: Vec<f64> = after[l].data.iter().zip(&before[l].data).map(|(a, b)| a.f64() - b.f64()).collect();
            let want: Vec<f64> = want_after[l].data.iter().zip(&want_before[l].data).map(|(a, b)| a - b).collect();
            let (e, worst) = norm_error(&got, &want);
            self.record(&format!("{what}[{}]", l + 1), e, tol, worst);
        }
    }

    /// The largest error of each quantity (over its layers); NaN when any was.
    pub fn by_quantity(&self) -> std::collections::BTreeMap<&str, f64> {
        let mut m = std::collections::BTreeMap::new();
        for (k, e) in &self.entries {
            let slot = m.entry(quantity(k)).or_insert(0.0f64);
            if !(e.err <= *slot) && !slot.is_nan() {
                *slot = e.err;
            }
        }
        m
    }

    /// `max_rel_err=… (quantity err, …)`: the overall figure, then each quantity's.
    pub fn summary(&self) -> String {
        let q = self.by_quantity();
        let worst = q.values().fold(0.0f64, |m, &e| if !(e <= m) && !m.is_nan() { e } else { m });
        let parts: Vec<String> = q.iter().map(|(k, v)| format!("{k} {v:.1e}")).collect();
        format!("max_rel_err={worst:.3e} ({})", parts.join(", "))
    }

    /// Keys whose error is not within its absolute bound (`!(err <= tol)`: NaN fails).
    pub fn failures(&self) -> Vec<String> {
        self.entries
            .iter()
            .filter(|(_, e)| !(e.err <= e.tol))
            .map(|(k, e)| format!("{k}: error {:.3e} > {:.0e} ({})", e.err, e.tol, e.worst))
            .collect()
    }

    /// Keys whose error is not finite (the checks of a path whose accuracy is measured, not bounded).
    pub fn non_finite(&self) -> Vec<String> {
        self.entries.iter().filter(|(_, e)| !e.err.is_finite()).map(|(k, e)| format!("{k}: {}", e.worst)).collect()
    }

    /// Achievable-accuracy bounds: each key's error (against the float64 reference) must be within
    /// `factor ×` the `yardstick`'s error on the same key (the CPU's f32 path against the same
    /// reference: what f32 can reach on this input) plus the key's floor. A key the yardstick
    /// lacks fails.
    pub fn failures_within(&self, yardstick: &Checker, factor: f64) -> Vec<String> {
        let mut out = Vec::new();
        for (k, e) in &self.entries {
            let Some(y) = yardstick.entries.get(k) else {
                out.push(format!("{k}: the f32 yardstick has no such quantity"));
                continue;
            };
            let bound = factor * y.err + e.tol;
            if !(e.err <= bound) {
                out.push(format!(
                    "{k}: error {:.3e} > {factor}·{:.3e} (cpu-f32) + {:.0e} = {bound:.3e} ({})",
                    e.err, y.err, e.tol, e.worst
                ));
            }
        }
        out
    }

    /// Per quantity: this checker's largest error, the yardstick's on the same keys, and the
    /// tightest margin `err / bound` (1 is the limit).
    pub fn summary_within(&self, yardstick: &Checker, factor: f64) -> String {
        let mut q: std::collections::BTreeMap<&str, (f64, f64, f64)> = Default::default();
        for (k, e) in &self.entries {
            let y = yardstick.entries.get(k).map_or(f64::NAN, |y| y.err);
            let margin = e.err / (factor * y + e.tol);
            let slot = q.entry(quantity(k)).or_insert((0.0, 0.0, 0.0));
            let worse = |a: f64, b: f64| if !(a <= b) && !b.is_nan() { a } else { b };
            *slot = (worse(e.err, slot.0), worse(y, slot.1), worse(margin, slot.2));
        }
        let parts: Vec<String> = q
            .iter()
            .map(|(k, (g, y, m))| format!("{k} {g:.1e} (cpu-f32 {y:.1e}, {:.0}% of bound)", 100.0 * m))
            .collect();
        parts.join(", ")
    }
}

/// The process's GPU. A missing adapter fails the test unless `PCLAB_REQUIRE_GPU=0` is set on
/// purpose; then the test is skipped with a loud line (and `make test` says so again at the end).
pub fn gpu() -> Option<std::sync::Arc<pclab::gpu::GpuContext>> {
    match pclab::session::backend::shared_gpu() {
        Ok(c) => Some(c),
        Err(e) if std::env::var("PCLAB_REQUIRE_GPU").as_deref() == Ok("0") => {
            eprintln!("!!!!!!!! GPU test SKIPPED (PCLAB_REQUIRE_GPU=0): {e}");
            None
        }
        Err(e) => panic!(
            "no GPU adapter: {e}. The GPU tests run on any Vulkan driver; on Debian install Mesa's \
             software one with `sudo apt-get install -y mesa-vulkan-drivers libvulkan1`, or set \
             PCLAB_REQUIRE_GPU=0 to skip them (they are then reported as SKIPPED)"
        ),
    }
}
