//! Pipelines and their explicit bind-group layouts. Each kernel lists exactly the bindings its WGSL
//! entry point uses (at most 7 storage buffers, within WebGPU's default of 8 per stage); binding 0
//! is always the `Params` table, selected per dispatch by dynamic offset.

use super::layout::Params;
use super::shaders;
use super::GpuError;
use std::num::NonZeroU64;

/// Workgroup size of the elementwise kernels (`override WG` in the WGSL; the energy reduction
/// assumes a power of two ≤ 256).
pub const ELEMENTWISE_WG: u32 = 256;
/// Side of the square output tiles of the matrix kernels (`override TM` in `pc.wgsl`); a
/// multiple of 4 (each thread computes a 4×4 block).
pub const TILE: u32 = 32;
/// Depth of the slabs the matrix kernels stage through workgroup memory (`override TK`); with
/// `TILE`, `TILE·TILE_K` must be a multiple of `(TILE/4)²`.
pub const TILE_K: u32 = 16;

/// Words added to each staged slab row (`override PAD` in `pc.wgsl`) so that a warp's 32 stores of
/// an operand staged k-fastest fall in 32 different banks: `32/TK`, or 1 from `TK = 32` up (see the
/// comment at `PAD` in the shader).
pub fn slab_pad(tile_k: u32) -> u32 {
    if tile_k < 32 && 32 % tile_k == 0 {
        32 / tile_k
    } else {
        1
    }
}

/// Storage bindings of `pc.wgsl` (see the buffer list at the top of that file).
pub mod binding {
    /// x then y.
    pub const IO: u32 = 1;
    /// z_1 … z_H, drive.
    pub const Z: u32 = 2;
    /// W_1.
    pub const W1: u32 = 3;
    /// W_2 … W_H.
    pub const WH: u32 = 4;
    /// W_L.
    pub const WO: u32 = 5;
    /// e_1 … e_H, e_L.
    pub const E: u32 = 6;
    /// e_{k+1} W_{k+1} (the Hessian product's; training never writes it).
    pub const BACK: u32 = 7;
    /// Energy table.
    pub const ENERGY: u32 = 8;
    /// ∂F/∂W_1.
    pub const G1: u32 = 9;
    /// ∂F/∂W_2 … ∂F/∂W_H.
    pub const GH: u32 = 10;
    /// ŷ.
    pub const YHAT: u32 = 11;
    /// ∂F/∂W_L.
    pub const GO: u32 = 12;
    /// Activation RMS, weight and update norms.
    pub const STATS: u32 = 13;
    /// Test labels.
    pub const LABELS: u32 = 14;
    /// Count of correct predictions.
    pub const CORRECT: u32 = 15;
    /// `hvp.wgsl`: the vector `v` of a Hessian-vector product.
    pub const HV_V: u32 = 16;
    /// `hvp.wgsl`: the curvature term `c_k`.
    pub const HV_CURV: u32 = 17;
    /// `hvp.wgsl`: the product `H v`.
    pub const HV_OUT: u32 = 18;
    /// `lanczos.wgsl`: the Lanczos basis `q_0 … q_k`.
    pub const LZ_BASIS: u32 = 19;
    /// `lanczos.wgsl`: the reorthogonalisation coefficients.
    pub const LZ_COEF: u32 = 20;
    /// `lanczos.wgsl`: the tridiagonal's α and β.
    pub const LZ_AB: u32 = 21;

    /// `∂ℓ̃/∂W_1`, backprop's gradient on the energy's scale (aligned iterations).
    pub const GB1: u32 = 22;
    /// `∂ℓ̃/∂W_2 … ∂ℓ̃/∂W_H`.
    pub const GBH: u32 = 23;
    /// `∂ℓ̃/∂W_L`.
    pub const GBO: u32 = 24;
    /// Per compared step and layer: `⟨g, g_bp⟩`, `‖g‖²`, `‖g_bp‖²`.
    pub const ALIGN: u32 = 25;
    /// Per step, layer and output tile of `errors`: the tile's Σ e².
    pub const EPART: u32 = 26;

    /// `adam.wgsl`'s own bindings (a module of its own, over one weight buffer at a time).
    pub mod adam {
        /// The weights.
        pub const W: u32 = 1;
        /// Their gradient.
        pub const G: u32 = 2;
        /// Adam's first moment.
        pub const M: u32 = 3;
        /// Adam's second moment.
        pub const V: u32 = 4;
        /// The stats buffer (as `pc.wgsl`'s binding 13), written by `adam_stats`.
        pub const STATS: u32 = 5;
    }
}

/// A compute pipeline with its bind-group layout and the storage bindings it takes.
#[derive(Debug)]
pub struct Kernel {
    /// The pipeline.
    pub pipeline: wgpu::ComputePipeline,
    /// Its layout for group 0.
    pub layout: wgpu::BindGroupLayout,
    /// Storage bindings, in order (binding 0, the params, is implicit).
    pub bindings: &'static [u32],
    /// The WGSL entry point.
    pub name: &'static str,
}

/// Every kernel of a PC training iteration.
#[derive(Debug)]
pub struct Kernels {
    /// Output tile side of the matrix kernels these pipelines were built with.
    pub tile: u32,
    /// One layer of the feedforward pass.
    pub forward: Kernel,
    /// Errors of all layers.
    pub errors: Kernel,
    /// Back-projections of all layers (the Hessian product's middle stage).
    pub back_project: Kernel,
    /// Back-projection with the activity update in its epilogue: one inference step's update of
    /// every hidden layer the wavefront has reached.
    pub back_update: Kernel,
    /// The energy table from the errors' per-tile sums (iterations whose metrics are read).
    pub energies: Kernel,
    /// Weight gradients of all layers.
    pub weight_grad: Kernel,
    /// One layer of backprop's backward pass.
    pub bp_back: Kernel,
    /// RMS of every hidden activity after the forward pass.
    pub act_rms: Kernel,
    /// Argmax of ŷ against the labels, counted.
    pub accuracy: Kernel,
    /// Per layer, PC's weight gradient against backprop's: the three sums of a cosine.
    pub align_sums: Kernel,
    /// Adam over one weight buffer (bindings: w, g, m, v).
    pub adam: Kernel,
    /// Norms of the weights and of the update, per matrix (bindings: w, m, v, stats).
    pub adam_stats: Kernel,
    /// Hessian-vector product, first stage: `u_l` of every layer.
    pub hvp_u: Kernel,
    /// Hessian-vector product, last stage: `(Hv)_k` of every hidden layer.
    pub hvp_out: Kernel,
    /// Lanczos: inner products of the basis with `w`.
    pub lz_dots: Kernel,
    /// Lanczos: `w` minus its projection on the basis.
    pub lz_orth: Kernel,
    /// Lanczos: `β = ‖w‖`.
    pub lz_norm: Kernel,
    /// Lanczos: the next basis vector.
    pub lz_next: Kernel,
}

fn kernel(
    device: &wgpu::Device,
    module: &wgpu::ShaderModule,
    constants: &[(&str, f64)],
    entry: &'static str,
    bindings: &'static [u32],
) -> Kernel {
    let uniform = wgpu::BindGroupLayoutEntry {
        binding: 0,
        visibility: wgpu::ShaderStages::COMPUTE,
        ty: wgpu::BindingType::Buffer {
            ty: wgpu::BufferBindingType::Uniform,
            has_dynamic_offset: true,
            min_binding_size: NonZeroU64::new(std::mem::size_of::<Params>() as u64),
        },
        count: None,
    };
    let entries: Vec<_> = std::iter::once(uniform)
        .chain(bindings.iter().map(|&b| wgpu::BindGroupLayoutEntry {
            binding: b,
            visibility: wgpu::ShaderStages::COMPUTE,
            ty: wgpu::BindingType::Buffer {
                ty: wgpu::BufferBindingType::Storage { read_only: false },
                has_dynamic_offset: false,
                min_binding_size: None,
            },
            count: None,
        }))
        .collect();
    let layout =
        device.create_bind_group_layout(&wgpu::BindGroupLayoutDescriptor { label: Some(entry), entries: &entries });
    let pipeline_layout = device.create_pipeline_layout(&wgpu::PipelineLayoutDescriptor {
        label: Some(entry),
        bind_group_layouts: &[Some(&layout)],
        immediate_size: 0,
    });
    let pipeline = device.create_compute_pipeline(&wgpu::ComputePipelineDescriptor {
        label: Some(entry),
        layout: Some(&pipeline_layout),
        module,
        entry_point: Some(entry),
        compilation_options: wgpu::PipelineCompilationOptions { constants, zero_initialize_workgroup_memory: false },
        cache: None,
    });
    Kernel { pipeline, layout, bindings, name: entry }
}

/// Workgroup memory a matrix kernel of tile `(tm, tk)` takes: its two padded slabs and the
/// 256-entry scratch of the tile sums (`errors`).
pub fn tile_workgroup_bytes(tm: u32, tk: u32) -> u32 {
    2 * (tm + slab_pad(tk)) * tk * 4 + 256 * 4
}

/// The matrix tile sizes: [`TILE`] and [`TILE_K`], or `PCLAB_GPU_TILE=TM,TK` for tuning on a
/// given adapter (TM a multiple of 4 up to 64, TK up to 64, within the device's workgroup
/// memory; anything else is ignored, with a warning natively).
fn tile_sizes(workgroup_bytes: u32) -> (u32, u32) {
    let parsed = std::env::var("PCLAB_GPU_TILE").ok().and_then(|v| {
        let (a, b) = v.split_once(',')?;
        Some((a.trim().parse::<u32>().ok()?, b.trim().parse::<u32>().ok()?))
    });
    match parsed {
        Some((tm, tk))
            if tm % 4 == 0
                && (4..=64).contains(&tm)
                && (1..=64).contains(&tk)
                && (tm * tk) % ((tm / 4) * (tm / 4)) == 0
                && tile_workgroup_bytes(tm, tk) <= workgroup_bytes =>
        {
            (tm, tk)
        }
        Some((tm, tk)) => {
            let why = format!(
                "warning: PCLAB_GPU_TILE={tm},{tk} ignored: TM must be a multiple of 4 up to 64, TK up to 64, \
                 TM·TK a multiple of (TM/4)², and the slabs ({} bytes) within the device's {workgroup_bytes} \
                 bytes of workgroup memory; using {TILE},{TILE_K}",
                tile_workgroup_bytes(tm, tk)
            );
            // (The page has no environment: only the command line gets here.)
            #[cfg(not(target_arch = "wasm32"))]
            eprintln!("{why}");
            #[cfg(target_arch = "wasm32")]
            drop(why);
            (TILE, TILE_K)
        }
        None => (TILE, TILE_K),
    }
}

impl Kernels {
    /// Compiles every module and pipeline; a shader that fails to compile or validate becomes a
    /// [`GpuError::Shader`] naming the module or the kernel, with the compiler's message.
    pub async fn new(device: &wgpu::Device) -> Result<Self, GpuError> {
        Self::with_modules(device, &shaders::modules()).await
    }

    /// [`Kernels::new`] from given WGSL modules `(name, source)` (tests break one on purpose).
    pub async fn with_modules(device: &wgpu::Device, modules: &[(&str, String)]) -> Result<Self, GpuError> {
        use binding::*;
        let mut compiled = Vec::with_capacity(4);
        for name in ["pc", "adam", "hvp", "lanczos"] {
            let src = modules.iter().find(|(n, _)| *n == name).map(|(_, s)| s.as_str()).unwrap_or_default();
            let scope = device.push_error_scope(wgpu::ErrorFilter::Validation);
            let module = device.create_shader_module(wgpu::ShaderModuleDescriptor {
                label: Some(name),
                source: wgpu::ShaderSource::Wgsl(src.into()),
            });
            if let Some(e) = scope.pop().await {
                return Err(GpuError::Shader(format!("WGSL module `{name}`: {e}")));
            }
            compiled.push(module);
        }
        let [pc, adam_module, hvp, lz] = [&compiled[0], &compiled[1], &compiled[2], &compiled[3]];
        let (tile, tile_k) = tile_sizes(device.limits().max_compute_workgroup_storage_size);
        let pc_consts: &[(&str, f64)] = &[
            ("WG", ELEMENTWISE_WG as f64),
            ("TM", tile as f64),
            ("TK", tile_k as f64),
            ("PAD", slab_pad(tile_k) as f64),
        ];
        let wg_consts: &[(&str, f64)] = &[("WG", ELEMENTWISE_WG as f64)];
        // One error scope per pipeline, so a failure names its kernel.
        let k = |module: &'static str,
                 m: &wgpu::ShaderModule,
                 consts: &[(&str, f64)],
                 entry: &'static str,
                 b: &'static [u32]| {
            let scope = device.push_error_scope(wgpu::ErrorFilter::Validation);
            let kernel = kernel(device, m, consts, entry, b);
            async move {
                match scope.pop().await {
                    Some(e) => Err(GpuError::Shader(format!("kernel `{entry}` (module `{module}`): {e}"))),
                    None => Ok(kernel),
                }
            }
        };
        Ok(Kernels {
            tile,
            forward: k("pc", pc, pc_consts, "forward", &[IO, Z, W1, WH, WO, YHAT]).await?,
            errors: k("pc", pc, pc_consts, "errors", &[IO, Z, W1, WH, WO, E, EPART]).await?,
            back_project: k("pc", pc, pc_consts, "back_project", &[W1, WH, WO, E, BACK]).await?,
            back_update: k("pc", pc, pc_consts, "back_update", &[Z, W1, WH, WO, E]).await?,
            energies: k("pc", pc, pc_consts, "energies", &[EPART, ENERGY]).await?,
            weight_grad: k("pc", pc, pc_consts, "weight_grad", &[IO, Z, E, G1, GH, GO]).await?,
            bp_back: k("pc", pc, pc_consts, "bp_back", &[Z, W1, WH, WO, E]).await?,
            act_rms: k("pc", pc, pc_consts, "act_rms", &[Z, STATS]).await?,
            accuracy: k("pc", pc, pc_consts, "accuracy", &[YHAT, LABELS, CORRECT]).await?,
            align_sums: k("pc", pc, pc_consts, "align_sums", &[G1, GH, GO, GB1, GBH, GBO, ALIGN]).await?,
            adam: k("adam", adam_module, wg_consts, "adam", &[adam::W, adam::G, adam::M, adam::V]).await?,
            adam_stats: k("adam", adam_module, wg_consts, "adam_stats", &[adam::W, adam::M, adam::V, adam::STATS])
                .await?,
            hvp_u: k("hvp", hvp, pc_consts, "hvp_u", &[Z, W1, WH, WO, E, HV_V]).await?,
            hvp_out: k("hvp", hvp, pc_consts, "hvp_out", &[Z, E, BACK, HV_V, HV_CURV, HV_OUT]).await?,
            lz_dots: k("lanczos", lz, wg_consts, "lz_dots", &[HV_OUT, LZ_BASIS, LZ_COEF, LZ_AB]).await?,
            lz_orth: k("lanczos", lz, wg_consts, "lz_orth", &[HV_OUT, LZ_BASIS, LZ_COEF]).await?,
            lz_norm: k("lanczos", lz, wg_consts, "lz_norm", &[HV_OUT, LZ_AB]).await?,
            lz_next: k("lanczos", lz, wg_consts, "lz_next", &[HV_V, HV_OUT, LZ_BASIS, LZ_AB]).await?,
        })
    }
}
