//! Where an iteration's GPU time goes: every dispatch of one training iteration in a compute pass
//! of its own with timestamp queries at its start and end, summed per kernel, beside the FLOPs and
//! bytes each kernel is counted to move (`pclab bench --kernels`).
//!
//! The counts are of useful work: the layers the wavefront has reached (the others' workgroups exit
//! at once), each operand read once and each output written once; a kernel that re-reads an operand
//! from memory moves more than its count says, so GB/s here is a lower bound on the traffic.

use super::model::{new_buffer, read_mapped, Dispatch, GpuModel, READBACK};
use super::GpuError;
use crate::pcn::infer::{first_active_layer, lowest_moving_layer};
use crate::pcn::{Arch, Mat};

/// One kernel's share of an iteration.
#[derive(Clone, Debug, PartialEq)]
pub struct KernelTime {
    /// The WGSL entry point.
    pub name: &'static str,
    /// Its dispatches in the iteration.
    pub dispatches: usize,
    /// GPU milliseconds, all its dispatches together.
    pub ms: f64,
    /// Floating-point operations counted (multiply-add = 2).
    pub flops: f64,
    /// Bytes counted as read or written.
    pub bytes: f64,
}

impl KernelTime {
    /// Achieved GFLOP/s.
    pub fn gflops(&self) -> f64 {
        self.flops / (self.ms * 1e-3).max(1e-12) / 1e9
    }
    /// Achieved GB/s.
    pub fn gbps(&self) -> f64 {
        self.bytes / (self.ms * 1e-3).max(1e-12) / 1e9
    }
}

/// Timestamp queries per query set (wgpu's limit).
const MAX_QUERIES: usize = 4096;

/// `(FLOPs, bytes)` of one dispatch of an iteration of `(arch, B, T, bp)`.
fn cost(d: &Dispatch<'_>, (a, b, t, bp): (Arch, usize, usize, bool), tile: u32) -> (f64, f64) {
    let (h, n, o, dd) = (a.hidden, a.width, a.output, a.input);
    let big_l = h + 1;
    let in_dim = |l: usize| if l == 1 { dd } else { n } as f64;
    let out_dim = |l: usize| if l == big_l { o } else { n } as f64;
    let (b, nf) = (b as f64, n as f64);
    let step_of = |slot: usize| slot.saturating_sub(h + 1).min(t);
    let from = |slot: usize| if bp { big_l } else { first_active_layer(h, step_of(slot)) };
    let f4 = |x: f64| 4.0 * x;
    match d.kernel.name {
        "forward" => {
            let l = d.slot + 1;
            (2.0 * b * in_dim(l) * out_dim(l), f4(b * in_dim(l) + out_dim(l) * in_dim(l) + 2.0 * b * out_dim(l)))
        }
        "act_rms" => (2.0 * h as f64 * b * nf, f4(h as f64 * b * nf)),
        // Prediction, error and its square summed: operands, the target, the error written.
        // (Layer 1 has no product: e_1 = z_1 − drive.)
        "errors" => (from(d.slot)..=big_l).fold((0.0, 0.0), |(f, by), l| {
            if l == 1 {
                return (f + 3.0 * b * nf, by + f4(3.0 * b * nf));
            }
            (
                f + 2.0 * b * in_dim(l) * out_dim(l) + 5.0 * b * out_dim(l),
                by + f4(b * in_dim(l) + out_dim(l) * in_dim(l) + 3.0 * b * out_dim(l)),
            )
        }),
        // e_{k+1} W_{k+1} for each moving layer k, then the update: e_k, e_{k+1}, z_k read, z_k written.
        "back_update" => (lowest_moving_layer(from(d.slot))..=h).fold((0.0, 0.0), |(f, by), k| {
            let l = k + 1;
            (f + 2.0 * b * out_dim(l) * nf + 8.0 * b * nf, by + f4(b * out_dim(l) + out_dim(l) * nf + 4.0 * b * nf))
        }),
        "energies" => {
            let tiles = super::model::error_tiles(&a, b as usize, tile) as f64;
            let table = ((t + 1) * big_l) as f64;
            (table * (tiles + 2.0), f4(table * (tiles + 1.0)))
        }
        "weight_grad" => (1..=big_l).fold((0.0, 0.0), |(f, by), l| {
            (f + 2.0 * out_dim(l) * b * in_dim(l), by + f4(b * out_dim(l) + b * in_dim(l) + out_dim(l) * in_dim(l)))
        }),
        "bp_back" => {
            let l = d.slot + 1;
            (2.0 * b * out_dim(l) * nf + 3.0 * b * nf, f4(b * out_dim(l) + out_dim(l) * nf + 2.0 * b * nf))
        }
        "adam" | "adam_stats" => {
            let sizes = super::model::matrix_sizes(&a);
            let first = h + 1 + t + if d.kernel.name == "adam" { 1 } else { 4 };
            let c = sizes.get(d.slot.saturating_sub(first)).copied().unwrap_or(0) as f64;
            if d.kernel.name == "adam" {
                (12.0 * c, f4(7.0 * c))
            } else {
                (10.0 * c, f4(3.0 * c))
            }
        }
        _ => (0.0, 0.0),
    }
}

impl GpuModel {
    /// Runs one training iteration on `(x, y)` with every dispatch timed, and returns each
    /// kernel's time, FLOPs and bytes, slowest first. An error says so when the adapter offers
    /// no timestamp queries.
    pub async fn profile_kernels(&mut self, x: &Mat<f32>, y: &Mat<f32>) -> Result<Vec<KernelTime>, GpuError> {
        let ctx = self.context();
        if !ctx.has_timestamps() {
            return Err(GpuError::Unsupported(format!(
                "{} offers no timestamp queries, so GPU time per kernel cannot be measured on it",
                ctx.describe()
            )));
        }
        let shape = self.shape();
        self.prepare_iteration(x, y);
        let ctx = self.context();
        let (dev, queue) = (&ctx.device, &ctx.queue);
        let (list, _) = self.dispatches();
        let mut enc = dev.create_command_encoder(&wgpu::CommandEncoderDescriptor { label: Some("profile") });
        self.clear_accumulators(&mut enc);
        let chunks: Vec<&[Dispatch<'_>]> = list.chunks(MAX_QUERIES / 2).collect();
        let mut sets = Vec::with_capacity(chunks.len());
        for chunk in &chunks {
            let count = 2 * chunk.len();
            let set = dev.create_query_set(&wgpu::QuerySetDescriptor {
                label: Some("kernel timestamps"),
                ty: wgpu::QueryType::Timestamp,
                count: count as u32,
            });
            let mut n = 0;
            for (i, d) in chunk.iter().enumerate() {
                let mut pass = enc.begin_compute_pass(&wgpu::ComputePassDescriptor {
                    label: Some(d.kernel.name),
                    timestamp_writes: Some(wgpu::ComputePassTimestampWrites {
                        query_set: &set,
                        beginning_of_pass_write_index: Some(2 * i as u32),
                        end_of_pass_write_index: Some(2 * i as u32 + 1),
                    }),
                });
                Self::dispatch(&mut pass, d.kernel, d.group, d.slot, d.dims, &mut n);
            }
            let resolved = new_buffer(
                dev,
                "timestamps",
                (count * 8) as u64,
                wgpu::BufferUsages::QUERY_RESOLVE | wgpu::BufferUsages::COPY_SRC,
            );
            enc.resolve_query_set(&set, 0..count as u32, &resolved, 0);
            let staging = new_buffer(dev, "timestamps readback", (count * 8) as u64, READBACK);
            enc.copy_buffer_to_buffer(&resolved, 0, &staging, 0, None);
            sets.push((set, resolved, staging));
        }
        queue.submit([enc.finish()]);
        let period_ns = queue.get_timestamp_period() as f64;
        let mut by_kernel: Vec<KernelTime> = Vec::new();
        for ((_, _, staging), chunk) in sets.iter().zip(&chunks) {
            let words = read_mapped(ctx, staging).await?;
            let ticks: Vec<u64> = words
                .chunks(2)
                .map(|w| w[0].to_bits() as u64 | ((w.get(1).map_or(0, |h| h.to_bits()) as u64) << 32))
                .collect();
            for (i, d) in chunk.iter().enumerate() {
                let (start, end) = (ticks[2 * i], ticks[2 * i + 1]);
                let ms = end.saturating_sub(start) as f64 * period_ns / 1e6;
                let (flops, bytes) = cost(d, shape, self.kernels().tile);
                match by_kernel.iter_mut().find(|k| k.name == d.kernel.name) {
                    Some(k) => {
                        k.dispatches += 1;
                        k.ms += ms;
                        k.flops += flops;
                        k.bytes += bytes;
                    }
                    None => by_kernel.push(KernelTime { name: d.kernel.name, dispatches: 1, ms, flops, bytes }),
                }
            }
        }
        by_kernel.sort_by(|a, b| b.ms.total_cmp(&a.ms));
        Ok(by_kernel)
    }
}

/// One line for a page: the adapter's time per kernel of one iteration, slowest first, with its
/// share and achieved GFLOP/s, and the total.
pub fn kernel_summary(times: &[KernelTime]) -> String {
    let total: f64 = times.iter().map(|k| k.ms).sum();
    let dispatches: usize = times.iter().map(|k| k.dispatches).sum();
    let parts: Vec<String> = times
        .iter()
        .map(|k| {
            format!("{} {:.1} ms ({:.0} %, {:.1} GFLOP/s)", k.name, k.ms, 100.0 * k.ms / total.max(1e-12), k.gflops())
        })
        .collect();
    format!("{total:.1} ms of GPU time in {dispatches} dispatches — {}", parts.join(" · "))
}
