//! Reading the float64 fixtures of `../shared/reference/` (spec §10).
#![allow(dead_code)]

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
    /// A fixed number (for example η_w: "within one Adam step").
    Fixed(f64),
}

fn max_abs(v: &[f64]) -> f64 {
    v.iter().fold(1e-300, |m, x| m.max(x.abs()))
}

/// Collects per-quantity errors against tolerances and keeps the first mismatches with values.
pub struct Checker {
    pub max_err: f64,
    pub failures: Vec<String>,
    /// Largest error per quantity ("weight grads", "final activities", …), over layers and iterations.
    pub by_quantity: std::collections::BTreeMap<String, f64>,
}

impl Checker {
    pub fn new() -> Self {
        Checker { max_err: 0.0, failures: Vec::new(), by_quantity: Default::default() }
    }

    /// `max_rel_err=… (quantity err, …)`: the overall figure, then each quantity's.
    pub fn summary(&self) -> String {
        let parts: Vec<String> = self.by_quantity.iter().map(|(k, v)| format!("{k} {v:.1e}")).collect();
        format!("max_rel_err={:.3e} ({})", self.max_err, parts.join(", "))
    }

    fn values_scaled<T: Real>(&mut self, what: &str, got: &[T], want: &[f64], scale: f64, tol: f64) {
        assert_eq!(got.len(), want.len(), "{what}: length");
        let e = got.iter().zip(want).map(|(g, w)| (g.f64() - w).abs() / scale).fold(0.0, f64::max);
        self.max_err = self.max_err.max(e);
        let quantity = what.split('[').next().unwrap_or(what);
        let quantity = match quantity.strip_prefix("iteration ") {
            Some(rest) => rest.split_once(' ').map_or(rest, |(_, q)| q),
            None => quantity,
        };
        let slot = self.by_quantity.entry(quantity.trim().to_string()).or_insert(0.0);
        *slot = slot.max(e);
        if (e > tol || e.is_nan()) && self.failures.len() < 8 {
            let (i, g, w) = got
                .iter()
                .zip(want)
                .enumerate()
                .map(|(i, (g, w))| (i, g.f64(), *w))
                .max_by(|a, b| (a.1 - a.2).abs().total_cmp(&(b.1 - b.2).abs()))
                .expect("non-empty");
            self.failures.push(format!(
                "{what}: rel err {e:.3e} > {tol:.0e} (worst [{i}] got {g:.10e} want {w:.10e}, scale {scale:.3e})"
            ));
        }
    }

    /// Entrywise error relative to the vector's largest magnitude.
    pub fn values<T: Real>(&mut self, what: &str, got: &[T], want: &[f64], tol: f64) {
        self.values_scaled(what, got, want, max_abs(want), tol);
    }

    /// Each matrix of a per-layer quantity, its error divided as `scale` says.
    pub fn mats<T: Real>(&mut self, what: &str, got: &[Mat<T>], want: &Value, scale: Scale, tol: f64) {
        let want: Vec<Mat<f64>> = mats(want);
        assert_eq!(got.len(), want.len(), "{what}: count");
        let quantity = want.iter().map(|m| max_abs(&m.data)).fold(1e-300, f64::max);
        for (i, (g, w)) in got.iter().zip(&want).enumerate() {
            assert_eq!((g.rows, g.cols), (w.rows, w.cols), "{what}[{}] shape", i + 1);
            let s = match scale {
                Scale::Own => max_abs(&w.data),
                Scale::Quantity => quantity,
                Scale::Fixed(s) => s,
            };
            self.values_scaled(&format!("{what}[{}]", i + 1), &g.data, &w.data, s, tol);
        }
    }

    pub fn scalar(&mut self, what: &str, got: f64, want: f64, tol: f64) {
        self.values(what, &[got], &[want], tol);
    }
}

/// The process's GPU; `None` (the test skips) when there is none, unless `PCLAB_REQUIRE_GPU=1`,
/// where a missing adapter fails the test.
pub fn gpu() -> Option<std::sync::Arc<pclab::gpu::GpuContext>> {
    match pclab::session::backend::shared_gpu() {
        Ok(c) => Some(c),
        Err(e) if std::env::var("PCLAB_REQUIRE_GPU").as_deref() == Ok("1") => {
            panic!("PCLAB_REQUIRE_GPU=1 but no GPU: {e}")
        }
        Err(e) => {
            eprintln!("skipping GPU test: {e}");
            None
        }
    }
}
