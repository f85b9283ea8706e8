//! The GPU backend: WGSL compute kernels (`shaders/`) driven through wgpu, natively (Vulkan, Metal,
//! DX12) and — as the web app grows — in the browser (WebGPU).
//!
//! The plan that makes deep networks fast: PC inference updates every layer from the previous
//! step's values, so each stage covers **all layers in one dispatch** (workgroup grid z = layer).
//! One inference step is two dispatches whatever the depth (errors with per-tile energy sums, and
//! the back-projection with the activity update in its epilogue), and a whole training iteration — feedforward, `T`
//! steps, weight gradients, Adam — is one command encoder and one submit. Weights are created by
//! [`crate::pcn::network`] and uploaded, so CPU and GPU runs from one seed are comparable step by
//! step.

mod context;
mod error;
mod hvp;
mod kernels;
mod lanczos;
pub mod layout;
mod model;
pub mod predict;
mod profile;
pub mod shaders;

pub use context::GpuContext;
pub use error::GpuError;
pub use hvp::GpuHvp;
pub use kernels::{binding, slab_pad, Kernel, Kernels, ELEMENTWISE_WG, TILE, TILE_K};
pub use lanczos::{GpuLanczos, CHECK_EVERY};
pub use model::{Checkpoint, GpuModel, Moments, CHECKPOINT_MOMENTS_UP_TO, DISPATCHES_PER_INFERENCE_STEP};
pub use profile::{kernel_summary, KernelTime};

/// One μPC iteration of a small seeded network on the GPU and on the CPU reference, compared:
/// `Ok(text)` describes the agreement, `Err` says what failed or differed. The web page runs this
/// to show that the WGSL kernels compile and agree under the browser's own WebGPU.
pub async fn self_check(ctx: std::sync::Arc<GpuContext>) -> Result<String, GpuError> {
    use crate::pcn::learn::AdamConfig;
    use crate::pcn::network::seeded_rng;
    use crate::pcn::train::{Learning, Model};
    use crate::pcn::{Activation, Arch, Mat, Network, Param};
    use rand_distr::{Distribution, StandardNormal};

    let arch =
        Arch { input: 20, width: 16, hidden: 4, output: 10, act: Activation::Relu, skips: true, param: Param::Mupc };
    let b = 8;
    let mut rng = seeded_rng(3, 9);
    let x: Vec<f32> = (0..b * arch.input)
        .map(|_| {
            let v: f64 = StandardNormal.sample(&mut rng);
            v as f32
        })
        .collect();
    let x = Mat { rows: b, cols: arch.input, data: x };
    let mut y = Mat::zeros(b, arch.output);
    for r in 0..b {
        y.data[r * arch.output + r % arch.output] = 1.0;
    }
    let net: Network<f32> = Network::init(arch, 1);
    let learning = Learning::Pc { eta_z: 0.5, steps: arch.hidden };
    let want = Model::new(net.clone(), learning, 0.1, AdamConfig::default()).train_step(&x, &y);
    let mut gpu = GpuModel::new(ctx, &net, b, learning, 0.1, AdamConfig::default()).await?;
    let got = gpu.train_step(&x, &y).await?;
    let (f_cpu, f_gpu) = (want.energies_post.iter().sum::<f64>(), got.energies_post.iter().sum::<f64>());
    let rel = (want.loss - got.loss).abs().max((f_cpu - f_gpu).abs()) / want.loss.abs().max(1e-12);
    if rel <= 1e-4 {
        Ok(format!(
            "a μPC iteration (H=4, {} dispatches, one submit) matches the CPU reference: loss {:.6} vs {:.6}, energy after inference {:.6} vs {:.6}",
            gpu.dispatches_last_iteration, got.loss, want.loss, f_gpu, f_cpu
        ))
    } else {
        Err(GpuError::Readback(format!(
            "the GPU disagrees with the CPU reference: loss {} vs {}, energy after inference {f_gpu} vs {f_cpu}",
            got.loss, want.loss
        )))
    }
}
