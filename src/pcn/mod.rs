//! The reference implementation: every number pclab computes, written for reading.
//!
//! Plain Rust over `f32` (training) or `f64` (tests, the Hessian); no GPU, no web. Each module opens
//! with its equations; the stage names (forward, errors, energy, infer, weight_grad, adam) are the
//! ones used by the WGSL kernels, the session and the tests. See `docs/maths.md` §1–§6.

pub mod activation;
pub mod alignment;
pub mod bp;
pub mod energy;
pub mod forward;
pub mod hessian;
pub mod infer;
pub mod learn;
pub mod linalg;
pub mod network;
pub mod train;

pub use activation::Activation;
pub use linalg::{gemm, Mat, Real, View};
pub use network::{Arch, Network, Param, Scalings};

/// Runs `f(index, item)` for every item, in parallel across layers natively (rayon), in order in
/// wasm. Layers are independent within a stage (PC inference is Jacobi), so this is the one place
/// the reference decides how work is spread over cores.
pub(crate) fn for_each_layer<I, F>(items: &mut [I], f: F)
where
    I: Send,
    F: Fn(usize, &mut I) + Sync + Send,
{
    #[cfg(not(target_arch = "wasm32"))]
    {
        use rayon::prelude::*;
        items.par_iter_mut().enumerate().for_each(|(i, it)| f(i, it));
    }
    #[cfg(target_arch = "wasm32")]
    {
        items.iter_mut().enumerate().for_each(|(i, it)| f(i, it));
    }
}
