//! The GPU backend: WGSL compute kernels (`shaders/`) driven through wgpu, natively (Vulkan, Metal,
//! DX12) and — as the web app grows — in the browser (WebGPU).
//!
//! The plan that makes deep networks fast: PC inference updates every layer from the previous
//! step's values, so each stage covers **all layers in one dispatch** (workgroup grid z = layer).
//! One inference step is three dispatches whatever the depth (errors, back-projections, gradient
//! and update with the energy reductions), and a whole training iteration — feedforward, `T`
//! steps, weight gradients, Adam — is one command encoder and one submit. Weights are created by
//! [`crate::pcn::network`] and uploaded, so CPU and GPU runs from one seed are comparable step by
//! step.

mod context;
mod error;
mod kernels;
pub mod layout;
mod model;
pub mod shaders;

pub use context::GpuContext;
pub use error::GpuError;
pub use model::{GpuModel, DISPATCHES_PER_INFERENCE_STEP};
