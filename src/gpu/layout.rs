//! `#[repr(C)]` mirrors of the WGSL structs the kernels read.

use bytemuck::{Pod, Zeroable};

/// Per-dispatch parameters. Keep in sync with `struct Params` in `shaders/common.wgsl`: same
/// fields, same order, 96 bytes (checked against naga's layout in `tests/shaders.rs`).
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Pod, Zeroable)]
pub struct Params {
    /// `B`.
    pub batch: u32,
    /// `D`.
    pub d: u32,
    /// `N`.
    pub n: u32,
    /// `O`.
    pub o: u32,
    /// `H`.
    pub h: u32,
    /// Activation code (`Activation::code`).
    pub act: u32,
    /// 1 with skips.
    pub skips: u32,
    /// The layer a forward dispatch computes.
    pub layer: u32,
    /// Lowest layer with a non-zero error (the inference wavefront).
    pub from_layer: u32,
    /// Inference step: the row of the energy table written.
    pub step: u32,
    /// 1 when the update dispatch moves the activities (0 at the final activities).
    pub update: u32,
    /// Elements an Adam dispatch covers.
    pub count: u32,
    /// `a_1`.
    pub a_in: f32,
    /// `a_h`.
    pub a_h: f32,
    /// `a_L`.
    pub a_out: f32,
    /// `η_z`.
    pub eta_z: f32,
    /// `η_w`.
    pub lr: f32,
    /// β₁.
    pub beta1: f32,
    /// β₂.
    pub beta2: f32,
    /// ε.
    pub eps: f32,
    /// `1 − β₁ᵗ`.
    pub bc1: f32,
    /// `1 − β₂ᵗ`.
    pub bc2: f32,
    /// Factor on the weight gradients: 1 for PC; 2/O for BP, whose backward pass propagates
    /// `y − ŷ` and folds the loss's `2/(B·O)` in here.
    pub grad_scale: f32,
    /// Padding.
    pub pad1: f32,
}

/// Bytes between consecutive `Params` slots in the uniform table (WebGPU's
/// `minUniformBufferOffsetAlignment` is at most 256).
pub const PARAMS_STRIDE: u64 = 256;
