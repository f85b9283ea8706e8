//! One PC network's layers across a pool of CPU workers.
//!
//! Within an inference step every layer updates from the previous step's values, so layers split
//! into contiguous blocks ([`Plan`]) need only their neighbours' boundary values once per step: the
//! activity just below the block, and the error of the layer just above with its back-projection
//! (`B × N` floats each). Weight gradients and Adam are local to each block. [`Block`] is one block
//! as a message-driven state machine; [`assemble`] makes the blocks' reports one iteration's report,
//! the same as the one-worker model's. Natively [`threads::ThreadPool`] runs the blocks on threads
//! with every message passed as postcard bytes, as between browser workers.

pub mod block;
#[cfg(not(target_arch = "wasm32"))]
pub mod threads;

pub use block::{Block, BlockAlignment, BlockDone, BlockMsg, BlockState, Out};

use crate::pcn::alignment::AlignmentReport;
use crate::pcn::train::IterationReport;
use crate::pcn::{Mat, Network, Real};
use serde::{Deserialize, Serialize};

/// Contiguous blocks of layers covering `1 … L`, in order, and the worker each runs on.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Plan {
    /// `(lo, hi)` of each block, inclusive.
    pub blocks: Vec<(usize, usize)>,
    /// The worker of each block: block `i` on worker `i mod workers`.
    pub workers: usize,
}

/// The shape of the work a plan is chosen for.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Workload {
    /// Hidden layers `H`.
    pub hidden: usize,
    /// Inference steps `T`.
    pub steps: usize,
    /// Cost of one boundary message (its sending, routing and receiving), in units of one
    /// layer's work in one inference step (its two matrix products).
    pub message: f64,
    /// The wait of one inference step's exchange on top (two hops, down then up), same units.
    pub latency: f64,
}

/// The most blocks a plan deals each worker.
pub const MAX_BLOCKS_PER_WORKER: usize = 16;

impl Plan {
    /// `layers` split into `blocks` contiguous blocks as even as they can be (never more blocks
    /// than layers; at least one), one per worker.
    pub fn even(layers: usize, blocks: usize) -> Plan {
        let k = blocks.clamp(1, layers.max(1));
        Plan { blocks: even_blocks(layers, k), workers: k }
    }

    /// `blocks` contiguous blocks dealt round-robin to `workers` workers.
    pub fn dealt(layers: usize, blocks: usize, workers: usize) -> Plan {
        let k = blocks.clamp(1, layers.max(1));
        Plan { blocks: even_blocks(layers, k), workers: workers.clamp(1, k) }
    }

    /// The blocks of worker `w`.
    pub fn blocks_of(&self, w: usize) -> impl Iterator<Item = usize> + '_ {
        (0..self.blocks.len()).filter(move |i| i % self.workers == w)
    }

    /// The modelled time of one iteration's inference, in layer-steps: per step the busiest
    /// worker's active layers, plus each boundary message sent (two per boundary the wavefront
    /// has reached) and, when there are any, the exchange's wait.
    ///
    /// From the feedforward point the error descends one layer per step (the wavefront), so in
    /// the first steps only the top blocks have work: with one block per worker and `T = H` the
    /// bottom worker idles through most of inference, and two workers gain at most about 1.5×.
    /// Dealing more, smaller blocks round-robin spreads the active top layers over every worker.
    pub fn modelled_time(&self, w: &Workload) -> f64 {
        let crossings = self.workers > 1 && self.blocks.len() > 1;
        (0..w.steps)
            .map(|t| {
                let from = crate::pcn::infer::first_active_layer(w.hidden, t);
                let messages = if crossings { 2 * self.blocks[1..].iter().filter(|b| b.0 >= from).count() } else { 0 };
                let busiest = (0..self.workers)
                    .map(|k| {
                        self.blocks_of(k)
                            .map(|i| {
                                let (lo, hi) = self.blocks[i];
                                (lo.max(from)..=hi).count()
                            })
                            .sum::<usize>()
                    })
                    .max()
                    .unwrap_or(0);
                let wait = if messages > 0 { w.latency } else { 0.0 };
                busiest as f64 + messages as f64 * w.message + wait
            })
            .sum()
    }

    /// The fastest plan by [`Plan::modelled_time`] on exactly `workers` workers (1 to [`MAX_BLOCKS_PER_WORKER`] blocks
    /// each; fewer workers only when the network has fewer layers).
    pub fn for_workers(layers: usize, workers: usize, w: &Workload) -> Plan {
        let k = workers.clamp(1, layers.max(1));
        (1..=MAX_BLOCKS_PER_WORKER)
            .map(|per| Plan::dealt(layers, k * per, k))
            .min_by(|a, b| a.modelled_time(w).total_cmp(&b.modelled_time(w)))
            .unwrap_or_else(|| Plan::even(layers, 1))
    }

    /// The fastest plan by [`Plan::modelled_time`] for up to `workers` workers: every worker count
    /// from 1, each with 1 to [`MAX_BLOCKS_PER_WORKER`] blocks per worker (a small network may use fewer workers).
    pub fn for_pool(layers: usize, workers: usize, w: &Workload) -> Plan {
        let mut best = Plan::even(layers, 1);
        let mut best_time = best.modelled_time(w);
        for k in 2..=workers.max(1) {
            for per in 1..=MAX_BLOCKS_PER_WORKER {
                let plan = Plan::dealt(layers, k * per, k);
                if plan.blocks.len() < k * per && per > 1 {
                    break;
                }
                let t = plan.modelled_time(w);
                // Another worker must earn its keep: 2 % faster at least.
                if t < best_time * 0.98 {
                    (best, best_time) = (plan, t);
                }
            }
        }
        best
    }

    /// Blocks in the plan.
    pub fn len(&self) -> usize {
        self.blocks.len()
    }

    /// True when the plan has no blocks (never, for a plan from [`Plan::even`]).
    pub fn is_empty(&self) -> bool {
        self.blocks.is_empty()
    }

    /// Each block's part of a whole network's weights and a fresh Adam state.
    pub fn split<T: Real>(&self, net: &Network<T>) -> Vec<BlockState<T>> {
        let zeros = |w: &Mat<T>| Mat::zeros(w.rows, w.cols);
        self.blocks
            .iter()
            .map(|&(lo, hi)| {
                let w = net.weights[lo - 1..hi].to_vec();
                BlockState {
                    m: w.iter().map(zeros).collect(),
                    v: w.iter().map(zeros).collect(),
                    weights: w,
                    adam_steps: 0,
                }
            })
            .collect()
    }

    /// The whole network's weights from the blocks' states, in order.
    pub fn join<T: Real>(&self, states: &[BlockState<T>]) -> Vec<Mat<T>> {
        states.iter().flat_map(|s| s.weights.iter().cloned()).collect()
    }
}

/// `layers` in `k` contiguous runs, the larger ones first.
fn even_blocks(layers: usize, k: usize) -> Vec<(usize, usize)> {
    let (base, extra) = (layers / k, layers % k);
    let mut lo = 1;
    (0..k)
        .map(|i| {
            let size = base + usize::from(i < extra);
            let b = (lo, lo + size - 1);
            lo += size;
            b
        })
        .collect()
}

/// One iteration's report from every block's (in plan order), as the one-worker model reports it:
/// each row of layer energies is the blocks' rows side by side.
pub fn assemble(dones: &[BlockDone]) -> IterationReport {
    let rows = dones.first().map_or(0, |d| d.energies.len());
    let energy_steps: Vec<Vec<f64>> =
        (0..rows).map(|t| dones.iter().flat_map(|d| d.energies[t].iter().copied()).collect()).collect();
    let act_rms = dones.iter().flat_map(|d| d.act_rms.iter().copied()).collect();
    let rel_dw = dones.iter().flat_map(|d| d.rel_dw.iter().copied()).collect();
    let alignment = assemble_alignment(dones, &energy_steps);
    IterationReport { alignment, ..IterationReport::pc(energy_steps, act_rms, rel_dw) }
}

/// The blocks' comparisons with backprop as one [`AlignmentReport`] (when every block made one):
/// each step's profile is the blocks' side by side, and `F` after each step is summed in `f32`
/// over the layers in order, as the one-worker model's workspace sums it, so it is the same bit
/// for bit.
fn assemble_alignment(dones: &[BlockDone], energy_steps: &[Vec<f64>]) -> Option<AlignmentReport> {
    let parts: Vec<&BlockAlignment> = dones.iter().map(|d| d.alignment.as_ref()).collect::<Option<_>>()?;
    let first = parts.first()?;
    if parts.iter().any(|p| p.at != first.at || p.steps.len() != first.steps.len()) {
        return None;
    }
    let steps =
        (0..first.steps.len()).map(|k| parts.iter().flat_map(|p| p.steps[k].iter().copied()).collect()).collect();
    let energies = energy_steps.iter().map(|row| f64::from(row.iter().map(|&e| e as f32).sum::<f32>())).collect();
    let bp_loss = parts.iter().find_map(|p| p.bp_loss)?;
    Some(AlignmentReport { steps, at: first.at.clone(), energies, bp_loss })
}
