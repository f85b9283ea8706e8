//! One block of a pool: a contiguous run of layers `lo … hi` of one PC network, with their weights,
//! Adam state, activities and errors, driven by messages (a state machine that runs as far as the
//! messages it has allow, so that a browser worker can drive it from `onmessage` and a native
//! thread from a channel alike).
//!
//! Per iteration, with `from(t)` the inference wavefront (`pcn::infer::first_active_layer`):
//!
//! ```text
//! forward   z_{lo−1} from below → z_lo … z_hi (ŷ when hi = L) → z_hi up
//! step t    z_{lo−1}(t) from below (when it moved) → e_lo … e_hi, e_l W_l → e_lo, e_lo W_lo down
//!           e_{hi+1}, e_{hi+1} W_{hi+1} from above (when non-zero) → z_lo … z_hi move → z_hi up
//! step T    the errors at the final activities, then ∂F/∂W_lo … ∂F/∂W_hi and Adam, locally
//! ```
//!
//! Each layer is computed by the same functions as the one-worker model (`errors_layers`,
//! `update_layers`, `weight_grads_layers`, `forward_layers` restricted to the block), so every
//! bit is the same; a value is only sent when it can be non-zero or has moved, and a block the
//! wavefront has not reached computes nothing.

use crate::pcn::alignment::{profile_from, step_stride, Profile};
use crate::pcn::bp::{bp_grads_layers, bp_loss, BpScratch};
use crate::pcn::energy::{errors_layers, Workspace};
use crate::pcn::forward::{alloc_activities, forward_layers};
use crate::pcn::infer::{first_active_layer, lowest_moving_layer, update_layers};
use crate::pcn::learn::{weight_grads_layers, Adam, AdamConfig};
use crate::pcn::train::Learning;
use crate::pcn::{Arch, Mat, Network, Real};
use serde::{Deserialize, Serialize};
use std::collections::{HashMap, VecDeque};

/// A message to a block. Its boundary values are encoded as their raw bytes (a boundary message
/// is `B × N` or `2 × B × N` floats, and element by element the encoding cost more than the copy).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(bound(serialize = "T: Serialize + bytemuck::Pod", deserialize = "T: Deserialize<'de> + bytemuck::Pod"))]
pub enum BlockMsg<T> {
    /// Train one iteration: `x` for the block holding layer 1, `y` for the one holding layer L.
    Step {
        /// The iteration (from 1).
        iteration: usize,
        /// The batch's images (`None` for blocks without layer 1).
        x: Option<Mat<T>>,
        /// The batch's targets (`None` for blocks without layer L).
        y: Option<Mat<T>>,
        /// Compare the block's PC gradients with backprop's in this iteration.
        #[serde(default)]
        align: bool,
    },
    /// From the block below: its top activity `z_{lo−1}` after `step` inference updates
    /// (0: the feedforward pass).
    Up {
        /// The iteration.
        iteration: usize,
        /// Updates applied.
        step: usize,
        /// `z_{lo−1}`, `(B, N)`.
        #[serde(with = "floats")]
        z: Vec<T>,
    },
    /// From the block above, in an iteration that compares gradients: backprop's `δ_hi` at the
    /// feedforward point (`B × N`).
    Delta {
        /// The iteration.
        iteration: usize,
        /// `δ_hi`.
        #[serde(with = "floats")]
        delta: Vec<T>,
    },
    /// From the block above: the error of its lowest layer `hi + 1` at `step` and its
    /// back-projection `e_{hi+1} W_{hi+1}`.
    Down {
        /// The iteration.
        iteration: usize,
        /// The inference step.
        step: usize,
        /// `e_{hi+1}`.
        #[serde(with = "floats")]
        e: Vec<T>,
        /// `e_{hi+1} W_{hi+1}`.
        #[serde(with = "floats")]
        back: Vec<T>,
    },
}

/// A vector of floats as one run of bytes (native byte order is little-endian on every target
/// pclab runs on: wasm32, x86-64, aarch64).
mod floats {
    use serde::de::{Error, Visitor};
    use serde::{Deserializer, Serializer};
    use std::marker::PhantomData;

    pub fn serialize<T: bytemuck::Pod, S: Serializer>(v: &[T], s: S) -> Result<S::Ok, S::Error> {
        s.serialize_bytes(bytemuck::cast_slice(v))
    }

    pub fn deserialize<'de, T: bytemuck::Pod, D: Deserializer<'de>>(d: D) -> Result<Vec<T>, D::Error> {
        struct Floats<T>(PhantomData<T>);
        impl<T: bytemuck::Pod> Visitor<'_> for Floats<T> {
            type Value = Vec<T>;
            fn expecting(&self, f: &mut std::fmt::Formatter) -> std::fmt::Result {
                write!(f, "bytes, a whole number of {}-byte floats", std::mem::size_of::<T>())
            }
            fn visit_bytes<E: Error>(self, b: &[u8]) -> Result<Vec<T>, E> {
                if b.len() % std::mem::size_of::<T>() != 0 {
                    return Err(E::invalid_length(b.len(), &self));
                }
                // A copy: the bytes need not be aligned for T.
                Ok(bytemuck::pod_collect_to_vec(b))
            }
        }
        d.deserialize_bytes(Floats(PhantomData))
    }
}

/// What a block reports once its part of an iteration is done.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct BlockDone {
    /// The block's index in the plan.
    pub block: usize,
    /// The iteration.
    pub iteration: usize,
    /// `E_lo … E_hi` before each inference step and at the final activities (`T + 1` rows).
    pub energies: Vec<Vec<f64>>,
    /// RMS of the block's hidden activities after the feedforward pass.
    pub act_rms: Vec<f64>,
    /// `‖ΔW_l‖ / ‖W_l‖` of the block's layers.
    pub rel_dw: Vec<f64>,
    /// Matrix products the block ran (its share of the work: the pool's load display).
    pub products: usize,
    /// Its layers' PC gradients against backprop's, when the iteration compared them.
    #[serde(default)]
    pub alignment: Option<BlockAlignment>,
}

/// One block's part of an iteration's [`crate::pcn::alignment::AlignmentReport`].
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct BlockAlignment {
    /// For each compared step, the block's layers `lo … hi`.
    pub steps: Vec<Profile>,
    /// The step each of `steps` comes after.
    pub at: Vec<usize>,
    /// `ℓ̃` at the feedforward point (from the block holding layer L).
    pub bp_loss: Option<f64>,
}

/// Where a block's output goes.
#[derive(Clone, Debug, PartialEq)]
pub enum Out<T> {
    /// To the block above.
    Up(BlockMsg<T>),
    /// To the block below.
    Down(BlockMsg<T>),
    /// To whoever drives the pool.
    Done(BlockDone),
}

/// A block's weights and Adam state (a checkpoint, or how a block starts).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct BlockState<T> {
    /// `W_lo … W_hi`.
    pub weights: Vec<Mat<T>>,
    /// Adam's first moments of the same.
    pub m: Vec<Mat<T>>,
    /// Adam's second moments.
    pub v: Vec<Mat<T>>,
    /// Adam updates so far.
    pub adam_steps: u64,
}

#[derive(Clone, Copy, Debug, PartialEq)]
enum Phase {
    Idle,
    Forward,
    /// Backprop's gradients of the block's layers at the feedforward point (iterations that
    /// compare gradients), from `δ_hi` from the block above.
    Backward,
    /// Step `t`'s errors; `true` once the layers above the edge are done (while the block
    /// waited for the value from below).
    Errors(usize, bool),
    /// Step `t`'s update; `true` once the layers below the edge are done (while the block
    /// waited for the error from above).
    Update(usize, bool),
}

/// Layers `lo … hi` of one network.
#[derive(Debug)]
pub struct Block<T> {
    index: usize,
    lo: usize,
    hi: usize,
    eta_z: f64,
    steps: usize,
    /// Every layer's slot; only `lo … hi` hold weights.
    net: Network<T>,
    adam: Adam<T>,
    grads: Vec<Mat<T>>,
    /// Every hidden layer's slot; `lo − 1 … min(hi, H)` are allocated.
    z: Vec<Mat<T>>,
    y_hat: Mat<T>,
    phi: Mat<T>,
    ws: Workspace<T>,
    batch: usize,
    phase: Phase,
    iteration: usize,
    x: Mat<T>,
    y: Mat<T>,
    trace: Vec<Vec<f64>>,
    act_rms: Vec<f64>,
    products: usize,
    steps_in: VecDeque<Queued<T>>,
    ups: HashMap<(usize, usize), Vec<T>>,
    downs: HashMap<(usize, usize), (Vec<T>, Vec<T>)>,
    deltas: HashMap<usize, Vec<T>>,
    /// This iteration compares gradients: backprop's (the block's layers), its scratch, and
    /// the comparison so far.
    probe: Option<Probe<T>>,
}

/// A block's comparison of its PC gradients with backprop's over one iteration.
#[derive(Debug)]
struct Probe<T> {
    bp: Vec<Mat<T>>,
    scratch: BpScratch<T>,
    out: BlockAlignment,
}

/// A step waiting its turn: the iteration, `x`, `y` and whether it compares gradients.
type Queued<T> = (usize, Option<Mat<T>>, Option<Mat<T>>, bool);

fn empty<T: Real>() -> Mat<T> {
    Mat::zeros(0, 0)
}

impl<T: Real> Block<T> {
    /// Block `index` of a PC network `arch`, holding layers `lo … hi` (`1 ≤ lo ≤ hi ≤ L`), for
    /// batches of `batch` rows, from `state`'s weights and Adam moments.
    #[allow(clippy::too_many_arguments)]
    pub fn new(
        index: usize,
        arch: Arch,
        scalings: crate::pcn::Scalings,
        (lo, hi): (usize, usize),
        learning: Learning,
        lr: f64,
        adam: AdamConfig,
        batch: usize,
        state: BlockState<T>,
    ) -> Result<Self, String> {
        let big_l = arch.layers();
        if !(1 <= lo && lo <= hi && hi <= big_l) {
            return Err(format!("a block holds layers lo … hi with 1 ≤ lo ≤ hi ≤ {big_l}, got {lo} … {hi}"));
        }
        let Learning::Pc { eta_z, steps } = learning else {
            return Err("a pool trains PC rules; backprop runs on one worker".into());
        };
        if state.weights.len() != hi - lo + 1
            || state.m.len() != state.weights.len()
            || state.v.len() != state.weights.len()
        {
            return Err(format!("block {lo} … {hi} needs {} weight matrices and their moments", hi - lo + 1));
        }
        let shape = |l: usize| arch.weight_shape(l);
        let mut weights: Vec<Mat<T>> = (1..=big_l).map(|_| empty()).collect();
        let (mut m, mut v) = (weights.clone(), weights.clone());
        for (i, ((w, mi), vi)) in state.weights.into_iter().zip(state.m).zip(state.v).enumerate() {
            let l = lo + i;
            for (what, mat) in [("W", &w), ("m", &mi), ("v", &vi)] {
                if (mat.rows, mat.cols) != shape(l) {
                    let (o, n) = shape(l);
                    return Err(format!("{what}_{l} is {}x{}, expected {o}x{n}", mat.rows, mat.cols));
                }
            }
            (weights[l - 1], m[l - 1], v[l - 1]) = (w, mi, vi);
        }
        let net = Network { arch, scalings, weights };
        let adam = Adam::resume(lr, adam, state.adam_steps, m, v);
        let grads = net.weights.iter().map(|w| Mat::zeros(w.rows, w.cols)).collect();
        let h = arch.hidden;
        let (mut z, _) = alloc_activities(&net, 0);
        for l in lo.saturating_sub(1).max(1)..=hi.min(h) {
            z[l - 1] = Mat::zeros(batch, arch.width);
        }
        let y_hat = Mat::zeros(if hi == big_l { batch } else { 0 }, arch.output);
        let ws = Workspace::for_layers(&net, batch, lo, (hi + 1).min(big_l));
        Ok(Block {
            index,
            lo,
            hi,
            eta_z,
            steps,
            net,
            adam,
            grads,
            z,
            y_hat,
            phi: Mat::zeros(batch, arch.width),
            ws,
            batch,
            phase: Phase::Idle,
            iteration: 0,
            x: empty(),
            y: empty(),
            trace: Vec::new(),
            act_rms: Vec::new(),
            products: 0,
            steps_in: VecDeque::new(),
            ups: HashMap::new(),
            downs: HashMap::new(),
            deltas: HashMap::new(),
            probe: None,
        })
    }

    /// The layers this block holds.
    pub fn layers(&self) -> (usize, usize) {
        (self.lo, self.hi)
    }

    /// The block's weights and Adam state.
    pub fn state(&self) -> BlockState<T> {
        let own = |v: &[Mat<T>]| v[self.lo - 1..self.hi].to_vec();
        let (m, v) = self.adam.moments();
        BlockState { weights: own(&self.net.weights), m: own(m), v: own(v), adam_steps: self.adam.steps }
    }

    /// The block's hidden activities `z_lo … z_min(hi, H)` after the last iteration's inference.
    pub fn activities(&self) -> Vec<Mat<T>> {
        (self.lo..=self.hi.min(self.net.arch.hidden)).map(|l| self.z[l - 1].clone()).collect()
    }

    /// New η_w, η_z and `T` from the next iteration on.
    pub fn set_rates(&mut self, lr: f64, eta_z: f64, steps: usize) {
        self.adam.lr = lr;
        (self.eta_z, self.steps) = (eta_z, steps);
    }

    /// Keeps one message for when the block gets to it.
    pub fn accept(&mut self, msg: BlockMsg<T>) {
        match msg {
            BlockMsg::Step { iteration, x, y, align } => self.steps_in.push_back((iteration, x, y, align)),
            BlockMsg::Delta { iteration, delta } => {
                self.deltas.insert(iteration, delta);
            }
            BlockMsg::Up { iteration, step, z } => {
                self.ups.insert((iteration, step), z);
            }
            BlockMsg::Down { iteration, step, e, back } => {
                self.downs.insert((iteration, step), (e, back));
            }
        }
    }

    /// Runs until the block has something to send (returned at once, so that a neighbour waiting
    /// for it can start while this block goes on) or can go no further (nothing returned).
    pub fn poll(&mut self) -> Vec<Out<T>> {
        let mut out = Vec::new();
        while out.is_empty() && self.advance(&mut out) {}
        out
    }

    /// One phase forward if its inputs are here; `false` when waiting.
    fn advance(&mut self, out: &mut Vec<Out<T>>) -> bool {
        let (lo, hi) = (self.lo, self.hi);
        let a = self.net.arch;
        let (h, big_l) = (a.hidden, a.layers());
        let it = self.iteration;
        match self.phase {
            Phase::Idle => {
                let Some((iteration, x, y, align)) = self.steps_in.pop_front() else { return false };
                self.iteration = iteration;
                self.probe = align.then(|| {
                    let net = &self.net;
                    let bp = net.weights.iter().map(|w| Mat::zeros(w.rows, w.cols)).collect();
                    let out = BlockAlignment { steps: Vec::new(), at: Vec::new(), bp_loss: None };
                    Probe { bp, scratch: BpScratch::new(net, self.batch), out }
                });
                self.x = x.unwrap_or_else(empty);
                self.y = y.unwrap_or_else(empty);
                // The neighbour's errors start each iteration at zero (as the one-worker model's).
                if hi < big_l {
                    let n = &mut self.ws.layers[hi];
                    n.e.data.fill(T::zero());
                    n.back.data.fill(T::zero());
                }
                self.trace.clear();
                self.products = 0;
                self.phase = Phase::Forward;
            }
            Phase::Forward => {
                if lo > 1 {
                    let Some(z) = self.ups.remove(&(it, 0)) else { return false };
                    self.z[lo - 2].data = z;
                }
                let net = &self.net;
                forward_layers(net, &self.x, &mut self.z, &mut self.y_hat, &mut self.phi, lo, hi);
                self.products += hi - lo + 1;
                let rms = |m: &Mat<T>| (m.sum_sq().f64() / m.data.len().max(1) as f64).sqrt();
                self.act_rms = (lo..=hi.min(h)).map(|l| rms(&self.z[l - 1])).collect();
                if lo == 1 {
                    // a_1 x W_1ᵀ is z_1 of the feedforward pass, bit for bit.
                    self.ws.drive.data.copy_from_slice(&self.z[0].data);
                }
                if hi < big_l {
                    out.push(Out::Up(BlockMsg::Up { iteration: it, step: 0, z: self.z[hi - 1].data.clone() }));
                }
                self.phase = if self.probe.is_some() { Phase::Backward } else { Phase::Errors(0, false) };
            }
            Phase::Backward => {
                let Some(p) = self.probe.as_mut() else {
                    self.phase = Phase::Errors(0, false);
                    return true;
                };
                if hi < big_l {
                    let Some(delta) = self.deltas.remove(&it) else { return false };
                    p.scratch.set_delta(delta);
                } else {
                    p.out.bp_loss = Some(bp_loss(&self.y, &self.y_hat).f64() * a.output as f64 / 2.0);
                }
                // Backprop's gradients at the feedforward point, as the one-worker model's probe
                // takes them (on ℓ̃'s scale: (O/2)·∂ℓ/∂W), before inference moves z.
                bp_grads_layers(&self.net, &self.x, &self.y, &self.z, &self.y_hat, &mut p.scratch, &mut p.bp, lo, hi);
                let scale = T::of(a.output as f64 / 2.0);
                for g in &mut p.bp[lo - 1..hi] {
                    g.data.iter_mut().for_each(|v| *v = *v * scale);
                }
                self.products += 2 * (hi - lo + 1);
                if lo > 1 {
                    out.push(Out::Down(BlockMsg::Delta { iteration: it, delta: p.scratch.delta().data.clone() }));
                }
                self.phase = Phase::Errors(0, false);
            }
            Phase::Errors(t, inner_done) => {
                let from = first_active_layer(h, t);
                // z_{lo−1} moved at step t − 1 (so the block below sent it) when lo − 1 ≥ the lowest
                // layer that step moved.
                let needs_up = t > 0 && lo > 1 && lo > lowest_moving_layer(first_active_layer(h, t - 1));
                if needs_up && !self.ups.contains_key(&(it, t)) {
                    // Waiting for the block below: the layers above lo need nothing from it.
                    if inner_done || lo == hi {
                        return false;
                    }
                    errors_layers(&self.net, &self.y, &self.z, &mut self.ws, true, from, lo + 1, hi);
                    self.phase = Phase::Errors(t, true);
                    return true;
                }
                if needs_up {
                    if let Some(z) = self.ups.remove(&(it, t)) {
                        self.z[lo - 2].data = z;
                    }
                }
                // The edge layer first: its error is what the block below waits for.
                errors_layers(&self.net, &self.y, &self.z, &mut self.ws, true, from, lo, lo);
                if lo > 1 && lo >= from {
                    let b = &self.ws.layers[lo - 1];
                    out.push(Out::Down(BlockMsg::Down {
                        iteration: it,
                        step: t,
                        e: b.e.data.clone(),
                        back: b.back.data.clone(),
                    }));
                }
                if !inner_done && lo < hi {
                    errors_layers(&self.net, &self.y, &self.z, &mut self.ws, true, from, lo + 1, hi);
                }
                self.products += (from.max(lo).max(2)..=hi).count() * 2;
                self.trace.push((lo..=hi).map(|l| self.ws.layers[l - 1].energy.f64()).collect());
                if let Some(p) = self.probe.as_mut() {
                    // As the one-worker probe: PC's gradient on the stride of steps before the last.
                    if t < self.steps && t % step_stride(self.steps) == 0 {
                        weight_grads_layers(&self.net, &self.x, &self.ws, &mut self.grads, from, lo, hi);
                        p.out.steps.push(profile_from(&self.grads, &p.bp, from)[lo - 1..hi].to_vec());
                        p.out.at.push(t);
                        self.products += hi - lo + 1;
                    }
                }
                if t == self.steps {
                    self.finish(out);
                    self.phase = Phase::Idle;
                } else {
                    self.phase = Phase::Update(t, false);
                }
            }
            Phase::Update(t, inner_done) => {
                let from = first_active_layer(h, t);
                let eta = T::of(self.eta_z);
                // The top hidden layer of the block (z_hi, hi ≤ H) needs the error from above.
                let needs_down = hi < big_l && hi + 1 >= from;
                if needs_down && !self.downs.contains_key(&(it, t)) {
                    if inner_done || lo == hi {
                        return false;
                    }
                    update_layers(&self.net, &mut self.z, &self.ws, eta, from, lo, hi - 1);
                    self.phase = Phase::Update(t, true);
                    return true;
                }
                if needs_down {
                    if let Some((e, back)) = self.downs.remove(&(it, t)) {
                        let n = &mut self.ws.layers[hi];
                        (n.e.data, n.back.data) = (e, back);
                    }
                }
                let top = hi.min(h);
                // The edge layer first: its activity is what the block above waits for.
                if top >= lo {
                    update_layers(&self.net, &mut self.z, &self.ws, eta, from, top, top);
                }
                if hi < big_l && hi >= lowest_moving_layer(from) {
                    out.push(Out::Up(BlockMsg::Up { iteration: it, step: t + 1, z: self.z[hi - 1].data.clone() }));
                }
                if !inner_done && lo < top {
                    update_layers(&self.net, &mut self.z, &self.ws, eta, from, lo, top - 1);
                }
                self.phase = Phase::Errors(t + 1, false);
            }
        }
        true
    }

    /// The weight gradients of the block's layers at the final activities, and Adam.
    fn finish(&mut self, out: &mut Vec<Out<T>>) {
        let (lo, hi) = (self.lo, self.hi);
        weight_grads_layers(&self.net, &self.x, &self.ws, &mut self.grads, 1, lo, hi);
        self.products += hi - lo + 1;
        let alignment = self.probe.take().map(|mut p| {
            p.out.steps.push(profile_from(&self.grads, &p.bp, 1)[lo - 1..hi].to_vec());
            p.out.at.push(self.steps);
            p.out
        });
        let rel = self.adam.step(&mut self.net.weights, &self.grads);
        out.push(Out::Done(BlockDone {
            block: self.index,
            iteration: self.iteration,
            energies: std::mem::take(&mut self.trace),
            act_rms: std::mem::take(&mut self.act_rms),
            rel_dw: rel[lo - 1..hi].to_vec(),
            products: self.products,
            alignment,
        }));
    }

    /// True while an iteration is under way or waiting its turn: the block still needs (or
    /// will need) boundary values from its neighbours.
    pub fn busy(&self) -> bool {
        self.phase != Phase::Idle || !self.steps_in.is_empty()
    }

    /// The batch size this block was built for.
    pub fn batch(&self) -> usize {
        self.batch
    }
}

#[cfg(test)]
mod tests {
    use super::BlockMsg;

    #[test]
    fn boundary_values_go_as_their_bytes_and_come_back_bit_for_bit() {
        let odd = [f32::NAN, -0.0, f32::MIN_POSITIVE / 3.0, f32::INFINITY, 1.0 / 3.0];
        let msg = BlockMsg::Down { iteration: 3, step: 9, e: odd.to_vec(), back: odd.iter().map(|v| -v).collect() };
        let bytes = postcard::to_allocvec(&msg).expect("encodes");
        let back: BlockMsg<f32> = postcard::from_bytes(&bytes).expect("decodes");
        let bits = |m: &BlockMsg<f32>| match m {
            BlockMsg::Down { e, back, .. } => e.iter().chain(back).map(|v| v.to_bits()).collect::<Vec<_>>(),
            _ => Vec::new(),
        };
        assert_eq!(bits(&back), bits(&msg));
        // The payload is the floats' bytes: a length prefix and 4 bytes a float, nothing per element.
        assert!(bytes.len() <= 2 * (1 + 4 * odd.len()) + 4, "{} bytes", bytes.len());
        // A payload that is not a whole number of floats is refused, not read short.
        let up = postcard::to_allocvec(&BlockMsg::Up { iteration: 1, step: 1, z: vec![1.0f32] }).expect("encodes");
        let mut cut = up[..up.len() - 1].to_vec();
        let at = cut.len() - 4;
        assert_eq!(cut[at], 4, "the length prefix of one float");
        cut[at] = 3;
        assert!(postcard::from_bytes::<BlockMsg<f32>>(&cut).is_err(), "three bytes decoded as a float");
    }
}
