//! # pclab
//!
//! Deep residual predictive coding networks — standard PC, μPC and their backprop baselines —
//! trained on MNIST, natively (the `pclab` CLI) and in the browser.
//!
//! ## Symbols (docs/maths.md §1; the same names in Rust, WGSL and the UI)
//!
//! | symbol | meaning |
//! |---|---|
//! | `D`, `O` | input (784) and output (10) dimensions |
//! | `N`, `H`, `L = H+1` | width, hidden layers, weight matrices |
//! | `B` | batch size |
//! | `z_l` | hidden activities `(B, N)`, free during inference |
//! | `e_l`, `E_l`, `F` | prediction errors, per-layer energies, total energy |
//! | `a_1`, `a_h`, `a_L` | branch scalings of the parameterisation |
//! | `τ` | 1 with skips, 0 without |
//! | `φ` | activation |
//! | `η_z`, `η_w`, `T` | inference rate, weight (Adam) rate, inference steps |
//!
//! ## Modules
//!
//! - [`pcn`] — the reference: the mathematics, exactly, in `f32`/`f64`.
//! - [`data`] — MNIST: gzip IDX parsing, normalisation, seeded epoch shuffles, batches.
//! - [`config`] — network and run configuration, validation, the paper's presets.
//! - [`session`] — several rules trained in lockstep on the same batches, with metrics.
//! - [`gpu`] — the WGSL kernels' host side: the same iteration on the GPU through wgpu.
//! - [`charts`] — plots as functions of data over any plotters backend (canvas, SVG).
//! - [`plot_id`] — the page's plots by name, one list for the page, charts, presets and links.
//! - [`presets`] — the paper's experiments and the lecture's demonstrations, by id.
//! - [`export`] — run-state JSON (loads back) and metrics CSV.
//! - [`page`] — the page's configuration and its query string.
//! - `reproduce` (native) — the paper's experiments as sharded run lists, resumable files of finished
//!   runs, and the report that merges them.
//! - [`remote`] — the CPU backend in a Web Worker: typed messages, the worker's host, the page's link.
//! - `ui` (wasm only) — the Leptos page: controls, the frame loop that drives the session, views.

pub mod charts;
pub mod config;
pub mod data;
pub mod export;
pub mod gpu;
pub mod page;
pub mod pcn;
pub mod plot_id;
pub mod pool;
pub mod presets;
pub mod remote;
#[cfg(not(target_arch = "wasm32"))]
pub mod reproduce;
pub mod session;
pub mod tour;

#[cfg(all(target_arch = "wasm32", feature = "ui"))]
mod ui;

/// The crate version, shown by the CLI and the page.
pub const VERSION: &str = env!("CARGO_PKG_VERSION");
