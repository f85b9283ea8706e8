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

pub use block::{Block, BlockDone, BlockMsg, BlockState, Out};

use crate::pcn::train::IterationReport;
use crate::pcn::{Mat, Network, Real};
use serde::{Deserialize, Serialize};

/// Contiguous blocks of layers covering `1 … L`, in order.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Plan {
    /// `(lo, hi)` of each block, inclusive.
    pub blocks: Vec<(usize, usize)>,
}

impl Plan {
    /// `layers` split into `workers` contiguous blocks as even as they can be (never more blocks
    /// than layers; at least one).
    pub fn even(layers: usize, workers: usize) -> Plan {
        let k = workers.clamp(1, layers.max(1));
        let (base, extra) = (layers / k, layers % k);
        let mut lo = 1;
        let blocks = (0..k)
            .map(|i| {
                let size = base + usize::from(i < extra);
                let b = (lo, lo + size - 1);
                lo += size;
                b
            })
            .collect();
        Plan { blocks }
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

/// One iteration's report from every block's (in plan order), as the one-worker model reports it:
/// each row of layer energies is the blocks' rows side by side.
pub fn assemble(dones: &[BlockDone]) -> IterationReport {
    let rows = dones.first().map_or(0, |d| d.energies.len());
    let energy_steps: Vec<Vec<f64>> =
        (0..rows).map(|t| dones.iter().flat_map(|d| d.energies[t].iter().copied()).collect()).collect();
    let act_rms = dones.iter().flat_map(|d| d.act_rms.iter().copied()).collect();
    let rel_dw = dones.iter().flat_map(|d| d.rel_dw.iter().copied()).collect();
    IterationReport::pc(energy_steps, act_rms, rel_dw)
}
