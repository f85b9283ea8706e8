//! The model's buffers and bind groups: one set per batch size, weights uploaded from the CPU.

use super::*;

/// Every buffer of one model: the `Params` table, inputs and targets, activities, the three
/// weight buffers with their gradients and Adam moments, errors, energies and their tile sums, the
/// output, the stats, and the staging ring (the back-projections never leave the fused update's
/// registers).
#[derive(Debug)]
pub(super) struct Buffers {
    pub(super) params: wgpu::Buffer,
    pub(super) io: wgpu::Buffer,
    pub(super) z: wgpu::Buffer,
    pub(super) w: [wgpu::Buffer; 3],
    pub(super) g: [wgpu::Buffer; 3],
    pub(super) m: [wgpu::Buffer; 3],
    pub(super) v: [wgpu::Buffer; 3],
    pub(super) e: wgpu::Buffer,
    pub(super) energy: wgpu::Buffer,
    /// Per step, layer and output tile of `errors`, the tile's Σ e² (cleared each iteration).
    pub(super) epart: wgpu::Buffer,
    pub(super) yhat: wgpu::Buffer,
    pub(super) stats: wgpu::Buffer,
    /// Staging ring for the energy table followed by the stats (and an aligned iteration's sums):
    /// one per readback in flight.
    pub(super) read: [wgpu::Buffer; MAX_READBACKS_IN_FLIGHT],
}

/// One bind group per kernel of an iteration (Adam's and the update norms' per weight buffer).
#[derive(Debug)]
pub(super) struct BindGroups {
    pub(super) forward: wgpu::BindGroup,
    pub(super) errors: wgpu::BindGroup,
    pub(super) back_update: wgpu::BindGroup,
    pub(super) energies: wgpu::BindGroup,
    pub(super) weight_grad: wgpu::BindGroup,
    pub(super) bp_back: wgpu::BindGroup,
    pub(super) act_rms: wgpu::BindGroup,
    pub(super) adam: [wgpu::BindGroup; 3],
    pub(super) adam_stats: [wgpu::BindGroup; 3],
}

/// Output tiles per layer of an `errors` dispatch (its grid's x·y): the tile sums per energy.
pub(in crate::gpu) fn error_tiles(a: &Arch, batch: usize, tile: u32) -> usize {
    a.width.max(a.output).div_ceil(tile as usize) * batch.div_ceil(tile as usize)
}

pub(in crate::gpu) fn bytes_f32(n: usize) -> u64 {
    (n.max(1) * 4) as u64
}

pub(in crate::gpu) const STORAGE: wgpu::BufferUsages =
    wgpu::BufferUsages::STORAGE.union(wgpu::BufferUsages::COPY_DST).union(wgpu::BufferUsages::COPY_SRC);

pub(in crate::gpu) const UNIFORM: wgpu::BufferUsages = wgpu::BufferUsages::UNIFORM.union(wgpu::BufferUsages::COPY_DST);
pub(in crate::gpu) const READBACK: wgpu::BufferUsages =
    wgpu::BufferUsages::MAP_READ.union(wgpu::BufferUsages::COPY_DST);

pub(in crate::gpu) fn new_buffer(
    dev: &wgpu::Device,
    label: &str,
    size: u64,
    usage: wgpu::BufferUsages,
) -> wgpu::Buffer {
    dev.create_buffer(&wgpu::BufferDescriptor { label: Some(label), size, usage, mapped_at_creation: false })
}

/// Floats of the stats buffer: activation RMS of `z_1 … z_H`, then `‖W_l‖²` and `‖ΔW_l‖²`.
pub(super) fn stats_len(a: &Arch) -> usize {
    a.hidden + 2 * (a.hidden + 1)
}

/// Elements of `W_1`, of all of `W_2 … W_H`, and of `W_L`: the three weight buffers.
pub(in crate::gpu) fn matrix_sizes(a: &Arch) -> [usize; 3] {
    let (n, d, o, h) = (a.width, a.input, a.output, a.hidden);
    [n * d, (h - 1) * n * n, o * n]
}

/// A bind group for `kernel`: the `Params` table at binding 0 (one slot, chosen per dispatch by
/// dynamic offset), then each of the kernel's storage bindings from `buffer`.
pub(in crate::gpu) fn bind_group<'b>(
    dev: &wgpu::Device,
    params: &wgpu::Buffer,
    kernel: &Kernel,
    buffer: &dyn Fn(u32) -> &'b wgpu::Buffer,
) -> wgpu::BindGroup {
    let params = wgpu::BindGroupEntry {
        binding: 0,
        resource: wgpu::BindingResource::Buffer(wgpu::BufferBinding {
            buffer: params,
            offset: 0,
            size: std::num::NonZeroU64::new(std::mem::size_of::<Params>() as u64),
        }),
    };
    let entries: Vec<_> = std::iter::once(params)
        .chain(
            kernel
                .bindings
                .iter()
                .map(|&id| wgpu::BindGroupEntry { binding: id, resource: buffer(id).as_entire_binding() }),
        )
        .collect();
    dev.create_bind_group(&wgpu::BindGroupDescriptor { label: None, layout: &kernel.layout, entries: &entries })
}

impl GpuModel {
    pub(super) fn bind_groups(dev: &wgpu::Device, k: &Kernels, b: &Buffers) -> BindGroups {
        let pc_buffer = |id: u32| -> &wgpu::Buffer {
            use binding::*;
            match id {
                IO => &b.io,
                Z => &b.z,
                W1 => &b.w[0],
                WH => &b.w[1],
                WO => &b.w[2],
                E => &b.e,
                ENERGY => &b.energy,
                EPART => &b.epart,
                G1 => &b.g[0],
                GH => &b.g[1],
                GO => &b.g[2],
                STATS => &b.stats,
                YHAT => &b.yhat,
                other => unreachable!("binding {other} is not one of the training kernels' buffers"),
            }
        };
        // adam.wgsl's bindings, over weight buffer i.
        let adam_buffer = |i: usize| {
            move |id: u32| -> &wgpu::Buffer {
                use binding::adam::*;
                match id {
                    W => &b.w[i],
                    G => &b.g[i],
                    M => &b.m[i],
                    V => &b.v[i],
                    STATS => &b.stats,
                    other => unreachable!("adam.wgsl has no binding {other}"),
                }
            }
        };
        let adam = [0, 1, 2].map(|i| bind_group(dev, &b.params, &k.adam, &adam_buffer(i)));
        let adam_stats = [0, 1, 2].map(|i| bind_group(dev, &b.params, &k.adam_stats, &adam_buffer(i)));
        BindGroups {
            forward: bind_group(dev, &b.params, &k.forward, &pc_buffer),
            errors: bind_group(dev, &b.params, &k.errors, &pc_buffer),
            back_update: bind_group(dev, &b.params, &k.back_update, &pc_buffer),
            energies: bind_group(dev, &b.params, &k.energies, &pc_buffer),
            weight_grad: bind_group(dev, &b.params, &k.weight_grad, &pc_buffer),
            bp_back: bind_group(dev, &b.params, &k.bp_back, &pc_buffer),
            act_rms: bind_group(dev, &b.params, &k.act_rms, &pc_buffer),
            adam,
            adam_stats,
        }
    }

    /// The buffers whose size depends on `T`: the params table, the energy table, the errors'
    /// per-tile sums and the two metrics staging buffers (room for an aligned iteration's sums
    /// after the stats).
    pub(super) fn step_buffers(
        dev: &wgpu::Device,
        a: &Arch,
        batch: usize,
        tile: u32,
        steps: usize,
    ) -> [wgpu::Buffer; 5] {
        let slots = (a.hidden + steps + 9 + align::ALIGN_COLUMNS) as u64;
        let energy_len = (steps + 1) * (a.hidden + 1);
        let read = |i: usize| {
            let len = energy_len + stats_len(a) + align::align_len(a);
            new_buffer(dev, &format!("metrics readback {i}"), bytes_f32(len), READBACK)
        };
        [
            new_buffer(dev, "params", slots * PARAMS_STRIDE, UNIFORM),
            new_buffer(dev, "energy", bytes_f32(energy_len), STORAGE),
            new_buffer(dev, "energy tile sums", bytes_f32(energy_len * error_tiles(a, batch, tile)), STORAGE),
            read(0),
            read(1),
        ]
    }

    /// Replaces the weights (and resets nothing else).
    pub fn upload(&mut self, net: &Network<f32>) {
        self.upload_matrices(&self.bufs.w, &net.weights);
    }

    /// Writes `W_1 … W_L`-shaped matrices into a trio of buffers.
    pub(super) fn upload_matrices(&self, bufs: &[wgpu::Buffer; 3], w: &[Mat<f32>]) {
        write_matrices(&self.ctx.queue, bufs, w);
    }
}

/// Writes `W_1 … W_L`-shaped matrices (`H + 1` of them) into the three weight-shaped buffers:
/// `W_1`, all of `W_2 … W_H` back to back, `W_L`.
pub(in crate::gpu) fn write_matrices(q: &wgpu::Queue, bufs: &[wgpu::Buffer; 3], w: &[Mat<f32>]) {
    let h = w.len() - 1;
    q.write_buffer(&bufs[0], 0, bytemuck::cast_slice(&w[0].data));
    let hidden: Vec<f32> = w[1..h].iter().flat_map(|m| m.data.iter().copied()).collect();
    if !hidden.is_empty() {
        q.write_buffer(&bufs[1], 0, bytemuck::cast_slice(&hidden));
    }
    q.write_buffer(&bufs[2], 0, bytemuck::cast_slice(&w[h].data));
}
