//! A PC network on the GPU: buffers, bind groups, and one training iteration recorded into one
//! command encoder and submitted once.
//!
//! PC, per iteration: `H` forward dispatches (the forward pass is sequential in depth), then per
//! inference step three dispatches whatever the depth — errors (all layers), back-projections (all
//! layers), gradient + update with the energy reductions (all layers) — then two at the final
//! activities (errors, energies), the activation RMS, one weight-gradient dispatch, three Adam
//! dispatches and three for the update norms (two when `H = 1`): `H + 3T + 10`.
//!
//! Backprop is sequential in depth: `H` forward dispatches, the output error and its energy (2),
//! one backward dispatch per layer (`H`), the activation RMS, the weight gradients, Adam and the
//! update norms: `2H + 10`.

use super::context::GpuContext;
use super::kernels::{binding, Kernel, Kernels, ELEMENTWISE_WG};
use super::layout::{Params, PARAMS_STRIDE};
use super::GpuError;
use crate::pcn::infer::first_active_layer;
use crate::pcn::learn::AdamConfig;
use crate::pcn::train::{IterationReport, Learning};
use crate::pcn::{Arch, Mat, Network, Scalings};
use std::sync::Arc;

/// Workgroups per hidden layer in the update dispatch (each strides over the layer).
const UPDATE_GROUPS_PER_LAYER: usize = 16;
/// Workgroups of an Adam dispatch (each strides over the buffer).
const ADAM_GROUPS: usize = 256;

/// Metrics readbacks that may be in flight at once.
pub const MAX_READBACKS_IN_FLIGHT: usize = 2;

/// Dispatches of one inference step (errors, back-projections, gradient + update), for any depth.
pub const DISPATCHES_PER_INFERENCE_STEP: usize = 3;

#[derive(Debug)]
struct Buffers {
    params: wgpu::Buffer,
    io: wgpu::Buffer,
    z: wgpu::Buffer,
    w: [wgpu::Buffer; 3],
    g: [wgpu::Buffer; 3],
    m: [wgpu::Buffer; 3],
    v: [wgpu::Buffer; 3],
    e: wgpu::Buffer,
    back: wgpu::Buffer,
    energy: wgpu::Buffer,
    yhat: wgpu::Buffer,
    stats: wgpu::Buffer,
    /// Staging ring for the energy table followed by the stats: one per readback in flight.
    read: [wgpu::Buffer; MAX_READBACKS_IN_FLIGHT],
}

/// A metrics readback in flight.
#[derive(Debug)]
struct Pending {
    iteration: usize,
    slot: usize,
    #[cfg_attr(target_arch = "wasm32", allow(dead_code))]
    submission: wgpu::SubmissionIndex,
    mapped: futures_channel::oneshot::Receiver<Result<(), wgpu::BufferAsyncError>>,
    /// The map's outcome once it has been awaited (rather than polled) for.
    landed: Option<Result<(), wgpu::BufferAsyncError>>,
}

/// One dispatch of an iteration: the kernel, its bind group, its `Params` slot and its grid.
pub(super) struct Dispatch<'a> {
    pub(super) kernel: &'a Kernel,
    pub(super) group: &'a wgpu::BindGroup,
    pub(super) slot: usize,
    pub(super) dims: [usize; 3],
}

#[derive(Debug)]
struct BindGroups {
    forward: wgpu::BindGroup,
    errors: wgpu::BindGroup,
    back_project: wgpu::BindGroup,
    update: wgpu::BindGroup,
    weight_grad: wgpu::BindGroup,
    bp_back: wgpu::BindGroup,
    act_rms: wgpu::BindGroup,
    adam: [wgpu::BindGroup; 3],
    adam_stats: [wgpu::BindGroup; 3],
}

/// Checkpoints keep Adam's moments for networks up to this many weights (16 M: 192 MB for the
/// three copies).
pub const CHECKPOINT_MOMENTS_UP_TO: usize = 1 << 24;

/// Adam's first and second moments, `W_1 … W_L`-shaped each.
pub type Moments = (Vec<Mat<f32>>, Vec<Mat<f32>>);

/// A GPU model's training state, kept on the CPU side (see [`GpuModel::checkpoint`]).
#[derive(Clone, Debug)]
pub struct Checkpoint {
    /// The weights.
    pub net: Network<f32>,
    /// Adam's first and second moments, `W_1 … W_L`-shaped (small networks only).
    pub moments: Option<Moments>,
    /// Adam updates applied (the step count `t`).
    pub updates: usize,
}

/// A PC network, its Adam state and the buffers of one batch size, on the GPU.
#[derive(Debug)]
pub struct GpuModel {
    ctx: Arc<GpuContext>,
    kernels: Arc<Kernels>,
    arch: Arch,
    scalings: Scalings,
    batch: usize,
    /// PC (with `steps` and `eta_z`) or BP (`steps = 0`).
    bp: bool,
    steps: usize,
    eta_z: f64,
    lr: f64,
    adam: AdamConfig,
    bufs: Buffers,
    groups: BindGroups,
    /// Dispatches recorded by the last iteration.
    pub dispatches_last_iteration: usize,
    eval: Option<EvalBuffers>,
    /// Iterations submitted so far.
    iterations: usize,
    /// Read the metrics back every this many iterations.
    metrics_every: usize,
    pending: std::collections::VecDeque<Pending>,
    /// Reports read back but not yet handed out.
    ready: std::collections::VecDeque<(usize, IterationReport)>,
    /// Iterations the device has finished (counted by `on_submitted_work_done`).
    done: Arc<std::sync::atomic::AtomicUsize>,
}

pub(super) fn bytes_f32(n: usize) -> u64 {
    (n.max(1) * 4) as u64
}

pub(super) const STORAGE: wgpu::BufferUsages =
    wgpu::BufferUsages::STORAGE.union(wgpu::BufferUsages::COPY_DST).union(wgpu::BufferUsages::COPY_SRC);
pub(super) const UNIFORM: wgpu::BufferUsages = wgpu::BufferUsages::UNIFORM.union(wgpu::BufferUsages::COPY_DST);
pub(super) const READBACK: wgpu::BufferUsages = wgpu::BufferUsages::MAP_READ.union(wgpu::BufferUsages::COPY_DST);

pub(super) fn new_buffer(dev: &wgpu::Device, label: &str, size: u64, usage: wgpu::BufferUsages) -> wgpu::Buffer {
    dev.create_buffer(&wgpu::BufferDescriptor { label: Some(label), size, usage, mapped_at_creation: false })
}

/// Floats of the stats buffer: activation RMS of `z_1 … z_H`, then `‖W_l‖²` and `‖ΔW_l‖²`.
fn stats_len(a: &Arch) -> usize {
    a.hidden + 2 * (a.hidden + 1)
}

/// Elements of `W_1`, of all of `W_2 … W_H`, and of `W_L`: the three weight buffers.
pub(super) fn matrix_sizes(a: &Arch) -> [usize; 3] {
    let (n, d, o, h) = (a.width, a.input, a.output, a.hidden);
    [n * d, (h - 1) * n * n, o * n]
}

/// A bind group for `kernel`: the `Params` table at binding 0 (one slot, chosen per dispatch by
/// dynamic offset), then each of the kernel's storage bindings from `buffer`.
pub(super) fn bind_group<'b>(
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

/// Polls that [`read_mapped`] and [`GpuModel::ready_reports`] allow for a map callback to fire,
/// a millisecond apart: with several threads on one device, another thread's poll may be the one
/// running our callback.
#[cfg(not(target_arch = "wasm32"))]
const MAX_POLLS: usize = 20_000;

/// Lets another thread's poll finish running callbacks (native only).
#[cfg(not(target_arch = "wasm32"))]
fn settle() {
    std::thread::sleep(std::time::Duration::from_millis(1));
}

/// Maps a staging buffer and copies its floats out (natively the device is polled until the
/// map completes; on the web the browser completes it and nothing blocks).
pub(super) async fn read_mapped(ctx: &GpuContext, staging: &wgpu::Buffer) -> Result<Vec<f32>, GpuError> {
    #[cfg_attr(target_arch = "wasm32", allow(unused_mut))]
    let (tx, mut rx) = futures_channel::oneshot::channel();
    staging.map_async(wgpu::MapMode::Read, .., move |r| {
        let _ = tx.send(r);
    });
    let dropped = || GpuError::Readback("the map callback was dropped".into());
    // Natively the callback fires inside a poll — not always the first one after the work is
    // done — so poll until it has; on the web the browser fires it and this awaits.
    #[cfg(not(target_arch = "wasm32"))]
    let outcome = {
        let mut outcome = None;
        for _ in 0..MAX_POLLS {
            ctx.device.poll(wgpu::PollType::wait_indefinitely()).map_err(|e| GpuError::Readback(e.to_string()))?;
            if let Some(r) = rx.try_recv().map_err(|_| dropped())? {
                outcome = Some(r);
                break;
            }
            settle();
        }
        outcome.ok_or_else(|| GpuError::Readback(format!("no map callback after {MAX_POLLS} polls")))?
    };
    #[cfg(target_arch = "wasm32")]
    let outcome = rx.await.map_err(|_| dropped())?;
    outcome.map_err(|e| GpuError::Readback(e.to_string()))?;
    let data = {
        let view = staging.get_mapped_range(..).map_err(|e| GpuError::Readback(e.to_string()))?;
        bytemuck::cast_slice::<u8, f32>(&view).to_vec()
    };
    staging.unmap();
    ctx.check_lost()?;
    Ok(data)
}

/// `Params` slots laid out at [`PARAMS_STRIDE`] for a uniform table.
pub(super) fn pack_params(slots: &[Params]) -> Vec<u8> {
    let mut table = vec![0u8; slots.len() * PARAMS_STRIDE as usize];
    for (i, s) in slots.iter().enumerate() {
        let at = i * PARAMS_STRIDE as usize;
        table[at..at + std::mem::size_of::<Params>()].copy_from_slice(bytemuck::bytes_of(s));
    }
    table
}

impl GpuModel {
    /// Uploads `net` and allocates everything an iteration with batch `batch` needs, for PC
    /// (`T` inference steps) or backprop. Refuses, before allocating, a configuration whose
    /// buffers exceed the adapter's limits, naming the sizes.
    pub async fn new(
        ctx: Arc<GpuContext>,
        net: &Network<f32>,
        batch: usize,
        learning: Learning,
        lr: f64,
        adam: AdamConfig,
    ) -> Result<Self, GpuError> {
        let (bp, steps, eta_z) = match learning {
            Learning::Pc { eta_z, steps } => (false, steps, eta_z),
            Learning::Bp => (true, 0, 0.0),
        };
        Self::check_fits(&ctx, &net.arch, batch, steps)?;
        let a = net.arch;
        let (b, d, n, o, h) = (batch, a.input, a.width, a.output, a.hidden);
        // Each buffer may fit the limits and all of them still not fit the GPU's memory.
        let oom = ctx.device.push_error_scope(wgpu::ErrorFilter::OutOfMemory);
        let kernels = ctx.kernels.clone();
        let dev = &ctx.device;
        let buf = |label: &str, size: u64, usage| new_buffer(dev, label, size, usage);
        let shapes = matrix_sizes(&a);
        let trio = |prefix: &str| {
            let names = ["W_1", "W_2..W_H", "W_L"];
            [0, 1, 2].map(|i| buf(&format!("{prefix} {}", names[i]), bytes_f32(shapes[i]), STORAGE))
        };
        let [params, energy, read0, read1] = Self::step_buffers(dev, &a, steps);
        let bufs = Buffers {
            params,
            io: buf("x, y", bytes_f32(b * (d + o)), STORAGE),
            z: buf("z", bytes_f32((h + 1) * b * n), STORAGE),
            w: trio("w"),
            g: trio("grad"),
            m: trio("adam m"),
            v: trio("adam v"),
            e: buf("e", bytes_f32(h * b * n + b * o), STORAGE),
            back: buf("back", bytes_f32(h * b * n), STORAGE),
            energy,
            yhat: buf("yhat", bytes_f32(b * o), STORAGE),
            stats: buf("stats", bytes_f32(stats_len(&a)), STORAGE),
            read: [read0, read1],
        };
        let groups = Self::bind_groups(dev, &kernels, &bufs);
        if let Some(e) = oom.pop().await {
            let total: u64 = [&bufs.io, &bufs.z, &bufs.e, &bufs.back, &bufs.energy, &bufs.yhat, &bufs.stats]
                .iter()
                .map(|b| b.size())
                .chain([&bufs.w, &bufs.g, &bufs.m, &bufs.v].iter().flat_map(|t| t.iter().map(|b| b.size())))
                .sum();
            let smaller = Arch { hidden: (h / 2).max(1), ..a };
            return Err(GpuError::TooLarge(format!(
                "the GPU could not allocate the {:.1} MB this network needs (N={n}, H={h}, B={b}): {e}; try H={} or a smaller width",
                total as f64 / 1e6,
                smaller.hidden
            )));
        }
        let mut model = GpuModel {
            ctx,
            kernels,
            arch: a,
            scalings: net.scalings,
            batch,
            bp,
            steps,
            eta_z,
            lr,
            adam,
            bufs,
            groups,
            dispatches_last_iteration: 0,
            eval: None,
            iterations: 0,
            metrics_every: 1,
            pending: std::collections::VecDeque::new(),
            ready: std::collections::VecDeque::new(),
            done: Arc::new(std::sync::atomic::AtomicUsize::new(0)),
        };
        model.upload(net);
        Ok(model)
    }

    /// Refuses a configuration whose buffers or dispatches exceed the adapter's limits, naming the
    /// sizes — before anything is allocated, on the CPU or the GPU.
    pub fn check_fits(ctx: &GpuContext, a: &Arch, batch: usize, steps: usize) -> Result<(), GpuError> {
        ctx.check_lost()?;
        match Self::excess(ctx, a, batch, steps) {
            Some(why) => Err(GpuError::TooLarge(format!("{why}; {}", Self::largest_fitting(ctx, a, batch, steps)))),
            None => Ok(()),
        }
    }

    /// What would fit instead: the deepest network of the same width and the widest of the same
    /// depth (batch and `T` kept), in words.
    pub fn largest_fitting(ctx: &GpuContext, a: &Arch, batch: usize, steps: usize) -> String {
        let fits =
            |hidden: usize, width: usize| Self::excess(ctx, &Arch { hidden, width, ..*a }, batch, steps).is_none();
        // Both searches are monotone: more layers or width never needs less.
        let largest = |hi: usize, ok: &dyn Fn(usize) -> bool| {
            let (mut lo, mut hi) = (0, hi);
            while lo < hi {
                let mid = (lo + hi).div_ceil(2);
                if ok(mid) {
                    lo = mid;
                } else {
                    hi = mid - 1;
                }
            }
            lo
        };
        let h = largest(a.hidden, &|h| h >= 1 && fits(h, a.width));
        let n = 16 * largest(a.width / 16, &|k| k >= 1 && fits(a.hidden, 16 * k));
        let mut parts = Vec::new();
        if h >= 1 {
            parts.push(format!("H={h} at N={}", a.width));
        }
        if n >= 16 {
            parts.push(format!("N={n} at H={}", a.hidden));
        }
        if parts.is_empty() {
            format!("no network of this shape fits at B={batch}; try a smaller batch")
        } else {
            format!("the largest that fit this adapter (B={batch}): {}", parts.join(", or "))
        }
    }

    /// Why a configuration exceeds the adapter's limits, or `None` when it fits.
    fn excess(ctx: &GpuContext, a: &Arch, batch: usize, steps: usize) -> Option<String> {
        let (b, d, n, o, h) = (batch, a.input, a.width, a.output, a.hidden);
        let sizes = [
            ("weights W_2…W_H", bytes_f32((h - 1) * n * n)),
            ("weights W_1", bytes_f32(n * d)),
            ("activities", bytes_f32((h + 1) * b * n)),
            ("errors", bytes_f32(h * b * n + b * o)),
            ("energy table", bytes_f32((steps + 1) * (h + 1))),
        ];
        let lim = &ctx.limits;
        let max = lim.max_storage_buffer_binding_size.min(lim.max_buffer_size);
        if let Some((what, size)) = sizes.iter().find(|(_, s)| *s > max) {
            return Some(format!(
                "{what} need {:.1} MB in one buffer; this adapter allows {:.1} MB (N={n}, H={h}, B={b})",
                *size as f64 / 1e6,
                max as f64 / 1e6
            ));
        }
        let wg_limit = lim.max_compute_workgroups_per_dimension as usize;
        if b.div_ceil(ctx.kernels.tile as usize).max(2 * h + 1) > wg_limit {
            return Some(format!("B={b}, H={h} needs more than {wg_limit} workgroups per dimension"));
        }
        None
    }

    fn bind_groups(dev: &wgpu::Device, k: &Kernels, b: &Buffers) -> BindGroups {
        let pc_buffer = |id: u32| -> &wgpu::Buffer {
            use binding::*;
            match id {
                IO => &b.io,
                Z => &b.z,
                W1 => &b.w[0],
                WH => &b.w[1],
                WO => &b.w[2],
                E => &b.e,
                BACK => &b.back,
                ENERGY => &b.energy,
                G1 => &b.g[0],
                GH => &b.g[1],
                GO => &b.g[2],
                STATS => &b.stats,
                _ => &b.yhat,
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
            back_project: bind_group(dev, &b.params, &k.back_project, &pc_buffer),
            update: bind_group(dev, &b.params, &k.update, &pc_buffer),
            weight_grad: bind_group(dev, &b.params, &k.weight_grad, &pc_buffer),
            bp_back: bind_group(dev, &b.params, &k.bp_back, &pc_buffer),
            act_rms: bind_group(dev, &b.params, &k.act_rms, &pc_buffer),
            adam,
            adam_stats,
        }
    }

    /// The buffers whose size depends on `T`: the params table, the energy table and the two
    /// metrics staging buffers.
    fn step_buffers(dev: &wgpu::Device, a: &Arch, steps: usize) -> [wgpu::Buffer; 4] {
        let slots = (a.hidden + steps + 8) as u64;
        let energy_len = (steps + 1) * (a.hidden + 1);
        let read = |i: usize| {
            new_buffer(dev, &format!("metrics readback {i}"), bytes_f32(energy_len + stats_len(a)), READBACK)
        };
        [
            new_buffer(dev, "params", slots * PARAMS_STRIDE, UNIFORM),
            new_buffer(dev, "energy", bytes_f32(energy_len), STORAGE),
            read(0),
            read(1),
        ]
    }

    /// Changes η_w, and for PC η_z and `T`, from the next iteration on; the weights and Adam's
    /// moments stay. A new `T` reallocates the step-sized buffers and drops the metrics still in
    /// flight (their energy tables have the old shape) — natively it waits for them first.
    pub fn set_rates(&mut self, lr: f64, eta_z: f64, steps: usize) -> Result<(), GpuError> {
        self.lr = lr;
        if self.bp {
            return Ok(());
        }
        self.eta_z = eta_z;
        if steps != self.steps {
            Self::check_fits(&self.ctx, &self.arch, self.batch, steps)?;
            let [params, energy, read0, read1] = Self::step_buffers(&self.ctx.device, &self.arch, steps);
            // Keep the metrics that have come back (natively: all of them); the rest are dropped.
            #[cfg(not(target_arch = "wasm32"))]
            self.ctx.device.poll(wgpu::PollType::wait_indefinitely()).map_err(|e| GpuError::Readback(e.to_string()))?;
            self.collect_landed()?;
            self.pending.clear();
            (self.bufs.params, self.bufs.energy, self.bufs.read) = (params, energy, [read0, read1]);
            self.groups = Self::bind_groups(&self.ctx.device, &self.kernels, &self.bufs);
            self.steps = steps;
        }
        Ok(())
    }

    /// Iterations submitted.
    pub fn submitted(&self) -> usize {
        self.iterations
    }

    /// Iterations the device has finished. Natively this advances when the device is polled
    /// (as [`GpuModel::ready_reports`] does); on the web, as the browser reports.
    pub fn completed(&self) -> usize {
        self.done.load(std::sync::atomic::Ordering::Relaxed)
    }

    /// Bytes of every buffer this model holds on the device.
    pub fn memory_bytes(&self) -> u64 {
        let b = &self.bufs;
        let fixed = [&b.params, &b.io, &b.z, &b.e, &b.back, &b.energy, &b.yhat, &b.stats, &b.read[0], &b.read[1]];
        let trios = [&b.w, &b.g, &b.m, &b.v];
        let eval = self.eval.as_ref().map_or(0, |e| {
            let a = &self.arch;
            e.params.size() + e.x.size() + e.labels.size() + 8 + bytes_f32((a.hidden + 1) * e.rows * a.width)
        });
        fixed.iter().map(|x| x.size()).sum::<u64>()
            + trios.iter().flat_map(|t| t.iter()).map(|x| x.size()).sum::<u64>()
            + eval
    }

    /// Waits (without blocking: awaiting) for every metrics readback in flight, then hands out
    /// every report that has come back.
    pub async fn flush(&mut self) -> Result<Vec<(usize, IterationReport)>, GpuError> {
        #[cfg(not(target_arch = "wasm32"))]
        return self.ready_reports(true);
        #[cfg(target_arch = "wasm32")]
        {
            for p in self.pending.iter_mut().filter(|p| p.landed.is_none()) {
                let r = (&mut p.mapped).await;
                p.landed = Some(r.map_err(|_| GpuError::Readback("the map callback was dropped".into()))?);
            }
            self.ready_reports(false)
        }
    }

    /// The adapter this model runs on.
    pub fn context(&self) -> &GpuContext {
        &self.ctx
    }

    /// Replaces the weights (and resets nothing else).
    pub fn upload(&mut self, net: &Network<f32>) {
        self.upload_matrices(&self.bufs.w, &net.weights);
    }

    /// Writes `W_1 … W_L`-shaped matrices into a trio of buffers.
    fn upload_matrices(&self, bufs: &[wgpu::Buffer; 3], w: &[Mat<f32>]) {
        let q = &self.ctx.queue;
        let h = self.arch.hidden;
        q.write_buffer(&bufs[0], 0, bytemuck::cast_slice(&w[0].data));
        let hidden: Vec<f32> = w[1..h].iter().flat_map(|m| m.data.iter().copied()).collect();
        if !hidden.is_empty() {
            q.write_buffer(&bufs[1], 0, bytemuck::cast_slice(&hidden));
        }
        q.write_buffer(&bufs[2], 0, bytemuck::cast_slice(&w[h].data));
    }

    /// The training state on the CPU side: the weights, and Adam's moments and step count when
    /// the network has at most [`CHECKPOINT_MOMENTS_UP_TO`] weights (beyond that only the
    /// weights: three copies of a paper-size network are 400 MB of readback per evaluation).
    pub async fn checkpoint(&self) -> Result<Checkpoint, GpuError> {
        let net = self.network().await?;
        let moments = if net.arch.parameter_count() <= CHECKPOINT_MOMENTS_UP_TO {
            Some((self.download_matrices(&self.bufs.m).await?, self.download_matrices(&self.bufs.v).await?))
        } else {
            None
        };
        Ok(Checkpoint { net, moments, updates: self.iterations })
    }

    /// A model on `ctx` (a new device, after a loss) in the state of `cp`: its weights, Adam's
    /// moments and step count when it has them (else fresh moments from step `updates`).
    pub async fn restore(
        ctx: Arc<GpuContext>,
        cp: &Checkpoint,
        batch: usize,
        learning: Learning,
        lr: f64,
        adam: AdamConfig,
    ) -> Result<Self, GpuError> {
        let mut model = Self::new(ctx, &cp.net, batch, learning, lr, adam).await?;
        if let Some((m, v)) = &cp.moments {
            model.upload_matrices(&model.bufs.m, m);
            model.upload_matrices(&model.bufs.v, v);
        }
        model.iterations = cp.updates;
        // Those updates are done: nothing of the new model is in flight.
        model.done.store(cp.updates, std::sync::atomic::Ordering::Relaxed);
        Ok(model)
    }

    fn base_params(&self) -> Params {
        let a = &self.arch;
        let c = &self.adam;
        // Adam's t: every iteration is one update, so it is the number submitted.
        let t = self.iterations as i32;
        Params {
            batch: self.batch as u32,
            d: a.input as u32,
            n: a.width as u32,
            o: a.output as u32,
            h: a.hidden as u32,
            act: a.act.code(),
            skips: a.skips as u32,
            a_in: self.scalings.a_in as f32,
            a_h: self.scalings.a_hidden as f32,
            a_out: self.scalings.a_out as f32,
            eta_z: self.eta_z as f32,
            lr: self.lr as f32,
            beta1: c.beta1 as f32,
            beta2: c.beta2 as f32,
            eps: c.eps as f32,
            bc1: (1.0 - c.beta1.powi(t)) as f32,
            bc2: (1.0 - c.beta2.powi(t)) as f32,
            grad_scale: if self.bp { 2.0 / a.output as f32 } else { 1.0 },
            ..Default::default()
        }
    }

    /// The parameter table of one iteration: slots `0 … H` the forward layers `1 … L` (also the
    /// backward layers of BP), `H+1 … H+1+T` the inference steps, then three Adam slots and three
    /// Adam-stats slots.
    fn params_table(&self) -> Vec<u8> {
        let (h, t) = (self.arch.hidden, self.steps);
        let base = self.base_params();
        let mut slots: Vec<Params> = (1..=h).map(|l| Params { layer: l as u32, ..base }).collect();
        slots.push(Params { layer: h as u32 + 1, ..base });
        // BP: its one "step" computes the output error ê_L = y − ŷ and E_L, nothing moves.
        slots.extend((0..=t).map(|step| Params {
            from_layer: if self.bp { h as u32 + 1 } else { first_active_layer(h, step) as u32 },
            step: step as u32,
            update: (step < t) as u32,
            ..base
        }));
        // Adam over each buffer, then its per-matrix stats (first matrix index, size of one matrix).
        let [w1, wh, wo] = matrix_sizes(&self.arch);
        slots.extend([w1, wh, wo].iter().map(|&c| Params { count: c as u32, ..base }));
        let one_hidden = self.arch.width * self.arch.width;
        slots.extend([(0, w1), (1, one_hidden), (h, wo)].iter().map(|&(first, c)| Params {
            layer: first as u32,
            count: c as u32,
            ..base
        }));
        pack_params(&slots)
    }

    pub(super) fn dispatch(
        pass: &mut wgpu::ComputePass<'_>,
        k: &Kernel,
        g: &wgpu::BindGroup,
        slot: usize,
        dims: [usize; 3],
        n: &mut usize,
    ) {
        pass.set_pipeline(&k.pipeline);
        pass.set_bind_group(0, g, &[(slot as u64 * PARAMS_STRIDE) as u32]);
        pass.dispatch_workgroups(dims[0] as u32, dims[1] as u32, dims[2] as u32);
        *n += 1;
    }

    /// Every dispatch of one training iteration, in order, and how many each inference step takes.
    pub(super) fn dispatches(&self) -> (Vec<Dispatch<'_>>, Vec<usize>) {
        let (h, t) = (self.arch.hidden, self.steps);
        let (b, n, o, d) = (self.batch, self.arch.width, self.arch.output, self.arch.input);
        let (k, g) = (&self.kernels, &self.groups);
        let tiles = |v: usize| v.div_ceil(self.kernels.tile as usize);
        let mut list = Vec::new();
        let mut push = |kernel, group, slot, dims| list.push(Dispatch { kernel, group, slot, dims });
        for l in 1..=h {
            push(&k.forward, &g.forward, l - 1, [tiles(n), tiles(b), 1]);
        }
        push(&k.act_rms, &g.act_rms, 0, [1, 1, h]);
        let mut per_step = Vec::with_capacity(t);
        let mut count = h + 1;
        for step in 0..=t {
            let before = count;
            let slot = h + 1 + step;
            push(&k.errors, &g.errors, slot, [tiles(n.max(o)), tiles(b), h + 1]);
            count += 1;
            if step < t {
                push(&k.back_project, &g.back_project, slot, [tiles(n), tiles(b), h]);
                count += 1;
            }
            // A few workgroups per layer, each striding over its layer's B·N entries.
            let elems = (b * n).div_ceil(ELEMENTWISE_WG as usize).min(UPDATE_GROUPS_PER_LAYER);
            push(&k.update, &g.update, slot, [elems, 1, 2 * h + 1]);
            count += 1;
            if step < t {
                per_step.push(count - before);
            }
        }
        let last = h + 1 + t;
        if self.bp {
            // Backprop is sequential in depth: one dispatch per layer, from the output down.
            for l in (2..=h + 1).rev() {
                push(&k.bp_back, &g.bp_back, l - 1, [tiles(n), tiles(b), 1]);
            }
        }
        push(&k.weight_grad, &g.weight_grad, last, [tiles(d.max(n)), tiles(n.max(o)), h + 1]);
        for (i, c) in matrix_sizes(&self.arch).iter().enumerate() {
            let groups = c.div_ceil(ELEMENTWISE_WG as usize).clamp(1, ADAM_GROUPS);
            push(&k.adam, &g.adam[i], last + 1 + i, [groups, 1, 1]);
        }
        for (i, matrices) in [1, h - 1, 1].into_iter().enumerate() {
            if matrices > 0 {
                push(&k.adam_stats, &g.adam_stats[i], last + 4 + i, [1, 1, matrices]);
            }
        }
        (list, per_step)
    }

    /// Uploads the parameter table and the batch of the next iteration and counts it as submitted
    /// (what [`GpuModel::submit_step`] does before recording), for callers that record it
    /// themselves (the per-kernel profile).
    pub(super) fn prepare_iteration(&mut self, x: &Mat<f32>, y: &Mat<f32>) {
        self.iterations += 1;
        let q = &self.ctx.queue;
        q.write_buffer(&self.bufs.params, 0, &self.params_table());
        q.write_buffer(&self.bufs.io, 0, bytemuck::cast_slice(&x.data));
        q.write_buffer(&self.bufs.io, (x.data.len() * 4) as u64, bytemuck::cast_slice(&y.data));
    }

    /// `(architecture, B, T, backprop?)`.
    pub(super) fn shape(&self) -> (Arch, usize, usize, bool) {
        (self.arch, self.batch, self.steps, self.bp)
    }

    /// Clears what an iteration accumulates into (before its first dispatch).
    pub(super) fn clear_accumulators(&self, enc: &mut wgpu::CommandEncoder) {
        enc.clear_buffer(&self.bufs.e, 0, None);
        enc.clear_buffer(&self.bufs.back, 0, None);
    }

    /// Records one training iteration; returns how many dispatches each inference step took.
    fn record(&self, enc: &mut wgpu::CommandEncoder) -> (usize, Vec<usize>) {
        let (list, per_step) = self.dispatches();
        self.clear_accumulators(enc);
        let mut pass = enc
            .begin_compute_pass(&wgpu::ComputePassDescriptor { label: Some("pc iteration"), timestamp_writes: None });
        let mut count = 0;
        for x in &list {
            Self::dispatch(&mut pass, x.kernel, x.group, x.slot, x.dims, &mut count);
        }
        drop(pass);
        (count, per_step)
    }

    /// Records one iteration into a throwaway encoder and counts its dispatches (total, per step).
    pub fn count_dispatches(&self) -> (usize, Vec<usize>) {
        let mut enc = self.ctx.device.create_command_encoder(&wgpu::CommandEncoderDescriptor { label: Some("count") });
        self.record(&mut enc)
    }

    /// Metrics readbacks currently in flight (never more than [`MAX_READBACKS_IN_FLIGHT`]).
    pub fn readbacks_in_flight(&self) -> usize {
        self.pending.len()
    }

    /// Reads the metrics (energies, activation RMS, weight change) back every `k` iterations
    /// (default 1); the others return nothing.
    pub fn set_metrics_every(&mut self, k: usize) {
        self.metrics_every = k.max(1);
    }

    /// Submits one training iteration on `(x, y)`: one encoder, one submit, nothing waited for.
    /// When metrics are due they are copied to a staging buffer and mapped asynchronously; at most
    /// [`MAX_READBACKS_IN_FLIGHT`] are in flight. When both are, natively this waits for the
    /// oldest (the queue keeps the newest iteration), and on the web this iteration's metrics are
    /// skipped rather than block. Reports come from [`GpuModel::ready_reports`].
    /// `iteration` (from 1) is what the reports of this step will be filed under.
    pub fn submit_step(&mut self, iteration: usize, x: &Mat<f32>, y: &Mat<f32>) -> Result<(), GpuError> {
        self.ctx.check_lost()?;
        assert_eq!(
            (x.rows, y.rows),
            (self.batch, self.batch),
            "GpuModel::submit_step: batch size is fixed at creation"
        );
        let want_metrics = (self.iterations + 1) % self.metrics_every == 0;
        if want_metrics && self.pending.len() >= MAX_READBACKS_IN_FLIGHT {
            // Natively wait for the oldest readback and move it out, freeing its staging buffer;
            // on the web only take what has landed (if nothing has, this step's metrics are skipped).
            #[cfg(not(target_arch = "wasm32"))]
            self.wait_oldest()?;
            self.collect_landed()?;
        }
        self.prepare_iteration(x, y);
        let q = &self.ctx.queue;
        let mut enc =
            self.ctx.device.create_command_encoder(&wgpu::CommandEncoderDescriptor { label: Some("iteration") });
        let (count, _) = self.record(&mut enc);
        self.dispatches_last_iteration = count;
        let busy: Vec<usize> = self.pending.iter().map(|p| p.slot).collect();
        let slot = (0..MAX_READBACKS_IN_FLIGHT).find(|s| !busy.contains(s));
        if let (true, Some(slot)) = (want_metrics, slot) {
            let energy_bytes = self.bufs.energy.size();
            enc.copy_buffer_to_buffer(&self.bufs.energy, 0, &self.bufs.read[slot], 0, None);
            enc.copy_buffer_to_buffer(&self.bufs.stats, 0, &self.bufs.read[slot], energy_bytes, None);
            let submission = q.submit([enc.finish()]);
            let (tx, mapped) = futures_channel::oneshot::channel();
            self.bufs.read[slot].map_async(wgpu::MapMode::Read, .., move |r| {
                let _ = tx.send(r);
            });
            self.pending.push_back(Pending { iteration, slot, submission, mapped, landed: None });
        } else {
            q.submit([enc.finish()]);
        }
        let done = self.done.clone();
        q.on_submitted_work_done(move || {
            done.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        });
        Ok(())
    }

    #[cfg(not(target_arch = "wasm32"))]
    fn wait_oldest(&mut self) -> Result<(), GpuError> {
        for _ in 0..MAX_POLLS {
            let Some(p) = self.pending.front_mut() else { return Ok(()) };
            if p.landed.is_some() {
                return Ok(());
            }
            let wait = wgpu::PollType::Wait { submission_index: Some(p.submission.clone()), timeout: None };
            self.ctx.device.poll(wait).map_err(|e| GpuError::Readback(e.to_string()))?;
            // The callback may fire on a later poll than the one that saw the work finish.
            match p.mapped.try_recv() {
                Ok(None) => settle(),
                Ok(Some(r)) => p.landed = Some(r),
                Err(_) => p.landed = Some(Err(wgpu::BufferAsyncError)),
            }
        }
        Ok(())
    }

    /// Moves every readback that has landed, oldest first, from `pending` into `ready`, unmapping
    /// its staging buffer whatever happens.
    fn collect_landed(&mut self) -> Result<(), GpuError> {
        // A lost device's mapped ranges cannot be read: say it was lost, not that reading failed.
        self.ctx.check_lost()?;
        while let Some(p) = self.pending.front_mut() {
            let outcome = match p.landed.take() {
                Some(r) => r,
                None => match p.mapped.try_recv() {
                    Ok(None) => break,
                    Ok(Some(r)) => r,
                    Err(_) => Err(wgpu::BufferAsyncError),
                },
            };
            let Some(p) = self.pending.pop_front() else { break };
            outcome.map_err(|e| GpuError::Readback(format!("iteration {}: {e}", p.iteration)))?;
            let staging = &self.bufs.read[p.slot];
            let all = staging.get_mapped_range(..).map(|view| bytemuck::cast_slice::<u8, f32>(&view).to_vec());
            staging.unmap();
            let all = all.map_err(|e| GpuError::Readback(e.to_string()))?;
            let report = self.report(&all);
            self.ready.push_back((p.iteration, report));
        }
        Ok(())
    }

    /// The reports whose readbacks have landed, oldest first, with the iteration each describes.
    /// With `wait` (native only) every readback in flight is waited for first.
    pub fn ready_reports(&mut self, wait: bool) -> Result<Vec<(usize, IterationReport)>, GpuError> {
        #[cfg(not(target_arch = "wasm32"))]
        {
            let poll = if wait && !self.pending.is_empty() {
                wgpu::PollType::wait_indefinitely()
            } else {
                wgpu::PollType::Poll
            };
            self.ctx.device.poll(poll).map_err(|e| GpuError::Readback(e.to_string()))?;
            self.collect_landed()?;
            // A map callback can fire on a later poll than the one that saw its work finish.
            let mut polls = 0;
            while wait && !self.pending.is_empty() && polls < MAX_POLLS {
                settle();
                self.ctx
                    .device
                    .poll(wgpu::PollType::wait_indefinitely())
                    .map_err(|e| GpuError::Readback(e.to_string()))?;
                self.collect_landed()?;
                polls += 1;
            }
        }
        #[cfg(target_arch = "wasm32")]
        let _ = wait;
        self.collect_landed()?;
        self.ctx.check_lost()?;
        Ok(self.ready.drain(..).collect())
    }

    /// One iteration, waiting for its metrics (tests, the CPU-like synchronous use).
    pub async fn train_step(&mut self, x: &Mat<f32>, y: &Mat<f32>) -> Result<IterationReport, GpuError> {
        let every = std::mem::replace(&mut self.metrics_every, 1);
        let iteration = self.iterations + 1;
        let submitted = self.submit_step(iteration, x, y);
        self.metrics_every = every;
        submitted?;
        self.flush()
            .await?
            .into_iter()
            .find(|(at, _)| *at == iteration)
            .map(|(_, r)| r)
            .ok_or_else(|| GpuError::Readback(format!("the metrics of iteration {iteration} did not come back")))
    }

    /// The report of one metrics readback: energies, then activation RMS and weight norms.
    fn report(&self, all: &[f32]) -> IterationReport {
        let energy_len = self.bufs.energy.size() as usize / 4;
        let (flat, stats) = all.split_at(energy_len);
        let (h, l) = (self.arch.hidden, self.arch.hidden + 1);
        let act_rms: Vec<f64> = stats[..h].iter().map(|&v| v as f64).collect();
        let rel_dw: Vec<f64> = (0..l)
            .map(|m| {
                let (w2, d2) = (stats[h + m] as f64, stats[h + l + m] as f64);
                if !(w2.is_finite() && d2.is_finite()) {
                    f64::NAN
                } else if w2 > 0.0 {
                    (d2 / w2).sqrt()
                } else {
                    d2.sqrt()
                }
            })
            .collect();
        let rows: Vec<Vec<f64>> =
            flat.chunks(l).take(self.steps + 1).map(|r| r.iter().map(|&v| v as f64).collect()).collect();
        let loss = rows[0][l - 1];
        let finite = rows.iter().flatten().all(|v| v.is_finite()) && rel_dw.iter().all(|r| r.is_finite());
        if self.bp {
            let objective = 2.0 * loss / self.arch.output as f64;
            return IterationReport { loss, objective, finite, act_rms, rel_dw, ..Default::default() };
        }
        IterationReport {
            loss,
            objective: rows[0].iter().sum(),
            energies_ffwd: rows[0].clone(),
            energies_post: rows[self.steps].clone(),
            finite,
            energy_steps: rows,
            act_rms,
            rel_dw,
        }
    }

    async fn read_mapped(&self, staging: &wgpu::Buffer) -> Result<Vec<f32>, GpuError> {
        read_mapped(&self.ctx, staging).await
    }

    /// Reads `len` floats of a storage buffer back.
    async fn download(&self, src: &wgpu::Buffer, len: usize) -> Result<Vec<f32>, GpuError> {
        let size = bytes_f32(len);
        let staging = new_buffer(&self.ctx.device, "download", size, READBACK);
        let mut enc =
            self.ctx.device.create_command_encoder(&wgpu::CommandEncoderDescriptor { label: Some("download") });
        enc.copy_buffer_to_buffer(src, 0, &staging, 0, size);
        self.ctx.queue.submit([enc.finish()]);
        let mut v = self.read_mapped(&staging).await?;
        v.truncate(len);
        Ok(v)
    }

    /// The three weight-shaped buffers (weights, gradients) as matrices `W_1 … W_L`.
    async fn download_matrices(&self, bufs: &[wgpu::Buffer; 3]) -> Result<Vec<Mat<f32>>, GpuError> {
        let a = self.arch;
        let (n, d, o, h) = (a.width, a.input, a.output, a.hidden);
        let [w1, wh, wo] = matrix_sizes(&a);
        let mut out = vec![Mat { rows: n, cols: d, data: self.download(&bufs[0], w1).await? }];
        let hidden = self.download(&bufs[1], wh).await?;
        out.extend(hidden.chunks(n * n).take(h - 1).map(|c| Mat { rows: n, cols: n, data: c.to_vec() }));
        out.push(Mat { rows: o, cols: n, data: self.download(&bufs[2], wo).await? });
        Ok(out)
    }

    /// The current weights as a CPU network.
    pub async fn network(&self) -> Result<Network<f32>, GpuError> {
        let weights = self.download_matrices(&self.bufs.w).await?;
        Network::from_weights(self.arch, self.scalings, weights).map_err(GpuError::Readback)
    }

    /// The activities after the last iteration's inference, `z_1 … z_H`.
    pub async fn activities(&self) -> Result<Vec<Mat<f32>>, GpuError> {
        let (b, n, h) = (self.batch, self.arch.width, self.arch.hidden);
        let z = self.download(&self.bufs.z, h * b * n).await?;
        Ok(z.chunks(b * n).map(|c| Mat { rows: b, cols: n, data: c.to_vec() }).collect())
    }

    /// The last iteration's weight gradients, `∂F/∂W_1 … ∂F/∂W_L`.
    pub async fn weight_grads(&self) -> Result<Vec<Mat<f32>>, GpuError> {
        self.download_matrices(&self.bufs.g).await
    }
}

/// Buffers for evaluating the feedforward pass on chunks of `rows` test images.
#[derive(Debug)]
struct EvalBuffers {
    rows: usize,
    params: wgpu::Buffer,
    x: wgpu::Buffer,
    labels: wgpu::Buffer,
    correct: wgpu::Buffer,
    read: wgpu::Buffer,
    forward: wgpu::BindGroup,
    accuracy: wgpu::BindGroup,
}

impl GpuModel {
    /// Rows per evaluation chunk: as many as fit the adapter's binding limit, at most 1000.
    fn eval_rows(&self, total: usize) -> usize {
        let (n, h) = (self.arch.width, self.arch.hidden);
        let lim = &self.ctx.limits;
        let max = lim.max_storage_buffer_binding_size.min(lim.max_buffer_size) as usize;
        (max / (4 * (h + 1) * n).max(1)).clamp(1, 1000).min(total.max(1))
    }

    fn eval_buffers(&self, rows: usize) -> EvalBuffers {
        let dev = &self.ctx.device;
        let (a, k) = (&self.arch, &self.kernels);
        let buf = |label: &str, size: u64, usage| new_buffer(dev, label, size, usage);
        let params = buf("eval params", (a.hidden + 2) as u64 * PARAMS_STRIDE, UNIFORM);
        let x = buf("eval x", bytes_f32(rows * a.input), STORAGE);
        let z = buf("eval z", bytes_f32((a.hidden + 1) * rows * a.width), STORAGE);
        let yhat = buf("eval yhat", bytes_f32(rows * a.output), STORAGE);
        let labels = buf("eval labels", bytes_f32(rows), STORAGE);
        let correct = buf("eval correct", 4, STORAGE);
        let read = buf("eval readback", 4, READBACK);
        let lookup = |id: u32| -> &wgpu::Buffer {
            use binding::*;
            match id {
                IO => &x,
                Z => &z,
                W1 => &self.bufs.w[0],
                WH => &self.bufs.w[1],
                WO => &self.bufs.w[2],
                LABELS => &labels,
                CORRECT => &correct,
                _ => &yhat,
            }
        };
        let entries = |kernel: &Kernel| bind_group(dev, &params, kernel, &lookup);
        let (forward, accuracy) = (entries(&k.forward), entries(&k.accuracy));
        EvalBuffers { rows, params, x, labels, correct, read, forward, accuracy }
    }

    /// Test accuracy in percent: the feedforward pass and argmax on the GPU, over `x` in chunks,
    /// counting rows whose prediction is the label.
    pub async fn accuracy(&mut self, x: &Mat<f32>, labels: &[u8]) -> Result<f64, GpuError> {
        self.ctx.check_lost()?;
        let total = x.rows.min(labels.len());
        let rows = self.eval_rows(total);
        if self.eval.as_ref().is_none_or(|e| e.rows != rows) {
            self.eval = Some(self.eval_buffers(rows));
        }
        let Some(ev) = self.eval.as_ref() else { return Err(GpuError::Readback("no evaluation buffers".into())) };
        let (q, h, d) = (&self.ctx.queue, self.arch.hidden, self.arch.input);
        q.write_buffer(&ev.correct, 0, &[0; 4]);
        let mut correct = 0;
        for start in (0..total).step_by(rows) {
            let m = rows.min(total - start);
            let base = Params { batch: m as u32, ..self.base_params() };
            let slots: Vec<Params> = (1..=h + 1).map(|l| Params { layer: l as u32, ..base }).collect();
            q.write_buffer(&ev.params, 0, &pack_params(&slots));
            q.write_buffer(&ev.x, 0, bytemuck::cast_slice(&x.data[start * d..(start + m) * d]));
            let chunk_labels: Vec<u32> = labels[start..start + m].iter().map(|&l| l as u32).collect();
            q.write_buffer(&ev.labels, 0, bytemuck::cast_slice(&chunk_labels));
            let mut enc =
                self.ctx.device.create_command_encoder(&wgpu::CommandEncoderDescriptor { label: Some("eval") });
            {
                let mut pass = enc
                    .begin_compute_pass(&wgpu::ComputePassDescriptor { label: Some("eval"), timestamp_writes: None });
                let (k, mut count) = (&self.kernels, 0);
                let tiles = |v: usize| v.div_ceil(self.kernels.tile as usize);
                for l in 1..=h + 1 {
                    let cols = if l == h + 1 { self.arch.output } else { self.arch.width };
                    Self::dispatch(&mut pass, &k.forward, &ev.forward, l - 1, [tiles(cols), tiles(m), 1], &mut count);
                }
                let groups = m.div_ceil(ELEMENTWISE_WG as usize);
                Self::dispatch(&mut pass, &k.accuracy, &ev.accuracy, h, [groups, 1, 1], &mut count);
            }
            enc.copy_buffer_to_buffer(&ev.correct, 0, &ev.read, 0, 4);
            q.submit([enc.finish()]);
            // Waiting for each chunk (its running count) lets a page handle events between chunks:
            // uploading all 10 000 test images at once would hold the main thread for ~0.1 s.
            let read = self.read_mapped(&ev.read).await?;
            correct = read.first().map(|v| v.to_bits()).unwrap_or(0);
        }
        Ok(100.0 * correct as f64 / total.max(1) as f64)
    }
}
