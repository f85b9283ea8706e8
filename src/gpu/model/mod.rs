//! A PC network on the GPU: buffers, bind groups, and one training iteration recorded into one
//! command encoder and submitted once.
//!
//! PC, per iteration: `H` forward dispatches (the forward pass is sequential in depth), then per
//! inference step two dispatches whatever the depth — errors with their per-tile energy sums, and
//! the back-projection with the activity update in its epilogue, each over the layers the
//! wavefront has reached — then the errors at the final activities, one weight-gradient dispatch
//! and three Adam dispatches: `H + 2T + 5`. An iteration whose metrics are read adds the
//! activation RMS, the energy table and three dispatches of update norms (two when `H = 1`):
//! `H + 2T + 10`.
//!
//! Backprop is sequential in depth: `H` forward dispatches, the output error with its energy sum,
//! one backward dispatch per layer (`H`), the weight gradients and Adam: `2H + 5`, or `2H + 10`
//! with the metrics.

use super::context::GpuContext;
use super::kernels::{binding, Kernel, Kernels, ELEMENTWISE_WG};
use super::layout::{Params, PARAMS_STRIDE};
use super::GpuError;
use crate::data::{digit_sample, guess, Evaluation};
use crate::pcn::infer::{first_active_layer, lowest_moving_layer};
use crate::pcn::learn::AdamConfig;
use crate::pcn::train::{IterationReport, Learning};
use crate::pcn::{Arch, Mat, Network, Scalings};
use std::sync::Arc;

mod align;
mod buffers;
mod checkpoint;
mod encode;
mod eval;
mod fits;
mod readback;

use align::AlignBuffers;
use buffers::{stats_len, BindGroups, Buffers};
use eval::EvalBuffers;
use readback::Pending;

pub(super) use buffers::{
    bind_group, bytes_f32, error_tiles, matrix_sizes, new_buffer, write_matrices, READBACK, STORAGE, UNIFORM,
};

pub use checkpoint::{Checkpoint, Moments, CHECKPOINT_MOMENTS_UP_TO};
pub(super) use encode::{pack_params, Dispatch};

pub(super) use readback::read_mapped;

/// Workgroups of an Adam dispatch (each strides over the buffer).
const ADAM_GROUPS: usize = 256;

/// Metrics readbacks that may be in flight at once.
pub const MAX_READBACKS_IN_FLIGHT: usize = 2;

/// Dispatches of one inference step (errors with their energy sums, back-projection with the
/// update), for any depth.
pub const DISPATCHES_PER_INFERENCE_STEP: usize = 2;

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
    /// Backprop's gradients and the sums of aligned iterations, from the first one on.
    align: Option<AlignBuffers>,
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
        let [params, energy, epart, read0, read1] = Self::step_buffers(dev, &a, b, kernels.tile, steps);
        let bufs = Buffers {
            params,
            io: buf("x, y", bytes_f32(b * (d + o)), STORAGE),
            z: buf("z", bytes_f32((h + 1) * b * n), STORAGE),
            w: trio("w"),
            g: trio("grad"),
            m: trio("adam m"),
            v: trio("adam v"),
            e: buf("e", bytes_f32(h * b * n + b * o), STORAGE),
            energy,
            epart,
            yhat: buf("yhat", bytes_f32(b * o), STORAGE),
            stats: buf("stats", bytes_f32(stats_len(&a)), STORAGE),
            read: [read0, read1],
        };
        let groups = Self::bind_groups(dev, &kernels, &bufs);
        if let Some(e) = oom.pop().await {
            let total: u64 = [&bufs.io, &bufs.z, &bufs.e, &bufs.energy, &bufs.epart, &bufs.yhat, &bufs.stats]
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
            align: None,
            iterations: 0,
            metrics_every: 1,
            pending: std::collections::VecDeque::new(),
            ready: std::collections::VecDeque::new(),
            done: Arc::new(std::sync::atomic::AtomicUsize::new(0)),
        };
        model.upload(net);
        Ok(model)
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
            let [params, energy, epart, read0, read1] =
                Self::step_buffers(&self.ctx.device, &self.arch, self.batch, self.kernels.tile, steps);
            // Keep the metrics that have come back (natively: all of them); the rest are dropped.
            #[cfg(not(target_arch = "wasm32"))]
            self.ctx.device.poll(wgpu::PollType::wait_indefinitely()).map_err(|e| GpuError::Readback(e.to_string()))?;
            self.collect_landed()?;
            self.pending.clear();
            (self.bufs.params, self.bufs.energy, self.bufs.epart, self.bufs.read) =
                (params, energy, epart, [read0, read1]);
            self.groups = Self::bind_groups(&self.ctx.device, &self.kernels, &self.bufs);
            if let Some(al) = &mut self.align {
                al.rebind(&self.ctx.device, &self.kernels, &self.bufs);
            }
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
        let fixed = [&b.params, &b.io, &b.z, &b.e, &b.energy, &b.epart, &b.yhat, &b.stats, &b.read[0], &b.read[1]];
        let trios = [&b.w, &b.g, &b.m, &b.v];
        let eval = self.eval.as_ref().map_or(0, |e| {
            let a = &self.arch;
            e.params.size()
                + e.x.size()
                + e.labels.size()
                + e.correct.size()
                + e.read.size()
                + e.yhat.size()
                + bytes_f32((a.hidden + 1) * e.rows * a.width)
        });
        let align = self.align.as_ref().map_or(0, |al| al.sums.size() + al.g.iter().map(|x| x.size()).sum::<u64>());
        fixed.iter().map(|x| x.size()).sum::<u64>()
            + trios.iter().flat_map(|t| t.iter()).map(|x| x.size()).sum::<u64>()
            + eval
            + align
    }

    /// The adapter this model runs on.
    pub fn context(&self) -> &GpuContext {
        &self.ctx
    }

    /// Reads the metrics (energies, activation RMS, weight change) back every `k` iterations
    /// (default 1); the others return nothing.
    pub fn set_metrics_every(&mut self, k: usize) {
        self.metrics_every = k.max(1);
    }
}
