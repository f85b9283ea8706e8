//! One training iteration, end to end, for a PC rule or its backprop baseline.
//!
//! PC (docs/maths.md §5): forward → `T` inference steps → weight gradients at the final activities → Adam.
//! BP (docs/maths.md §6): forward → chain-rule gradients of `ℓ` → Adam.
//! Both report the same training loss, `½·mean_batch ‖y − ŷ‖²` at the feedforward point (the PC
//! energy there), so curves of different rules are comparable.

use super::alignment::{step_stride, AlignmentReport, Probe};
use super::bp::{bp_grads_into, bp_loss, BpScratch};
use super::energy::Workspace;
use super::forward::{alloc_activities, forward_into, rms};
use super::infer::infer;
use super::learn::{weight_grads_into, zeros_like, Adam, AdamConfig};
use super::linalg::{Mat, Real};
use super::network::Network;
use serde::{Deserialize, Serialize};

/// How a model learns.
#[derive(Clone, Copy, Debug, PartialEq, Serialize, Deserialize)]
pub enum Learning {
    /// Predictive coding: `steps` (T) inference steps of size `eta_z` (η_z) per iteration.
    Pc {
        /// η_z, acting on the batch-averaged energy.
        eta_z: f64,
        /// T.
        steps: usize,
    },
    /// Backpropagation of `ℓ`.
    Bp,
}

/// What one iteration measured (all `f64`, whatever the training precision).
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct IterationReport {
    /// `½·mean_batch ‖y − ŷ‖²` at the feedforward point.
    pub loss: f64,
    /// For BP: the optimised loss `ℓ` (mean of squares); for PC equal to `loss`'s `F`.
    pub objective: f64,
    /// `E_1 … E_L` at the feedforward point (PC; empty for BP).
    pub energies_ffwd: Vec<f64>,
    /// `E_1 … E_L` after inference (PC; empty for BP).
    pub energies_post: Vec<f64>,
    /// `E_l` before each of the `T` steps and at the final activities: `(T+1) × L` (PC).
    pub energy_steps: Vec<Vec<f64>>,
    /// RMS of `z_1 … z_H` after the feedforward pass.
    pub act_rms: Vec<f64>,
    /// `‖ΔW_l‖/‖W_l‖` of the Adam update, `l = 1 … L`.
    pub rel_dw: Vec<f64>,
    /// False when an energy, the loss or a weight became NaN or ±∞.
    pub finite: bool,
    /// PC's weight gradients against backprop's on this batch at these weights, step by step
    /// (PC iterations that were asked for it: [`Model::train_step_aligned`]). Always written,
    /// `null` when absent: the worker's codec (postcard) cannot skip a field.
    #[serde(default)]
    pub alignment: Option<AlignmentReport>,
}

impl IterationReport {
    /// A PC iteration's report from the layer energies before each of the `T` inference steps and
    /// at the final activities (`(T+1) × L`, the feedforward point first), the activation RMS and
    /// the relative weight updates. The loss is `E_L` at the feedforward point, the objective `F`
    /// there.
    pub fn pc(energy_steps: Vec<Vec<f64>>, act_rms: Vec<f64>, rel_dw: Vec<f64>) -> Self {
        let energies_ffwd = energy_steps.first().cloned().unwrap_or_default();
        let energies_post = energy_steps.last().cloned().unwrap_or_default();
        let loss = *energies_ffwd.last().unwrap_or(&f64::NAN);
        let objective = energies_ffwd.iter().sum();
        let finite = loss.is_finite()
            && energy_steps.iter().flatten().all(|e| e.is_finite())
            && rel_dw.iter().all(|r| r.is_finite());
        IterationReport {
            loss,
            objective,
            energies_ffwd,
            energies_post,
            energy_steps,
            act_rms,
            rel_dw,
            finite,
            alignment: None,
        }
    }

    /// A BP iteration's report: the loss on the energy's scale (`½·mean_batch ‖y − ŷ‖²`), the
    /// optimised `ℓ`, the activation RMS and the relative weight updates.
    pub fn bp(loss: f64, objective: f64, act_rms: Vec<f64>, rel_dw: Vec<f64>) -> Self {
        let finite = loss.is_finite() && rel_dw.iter().all(|r| r.is_finite());
        IterationReport { loss, objective, act_rms, rel_dw, finite, ..Default::default() }
    }

    /// Where a non-finite iteration first went wrong, in the order the iteration computes: the
    /// feedforward activities `z_1 … z_H` (their RMS), the energies `E_1 … E_L` at the
    /// feedforward point, then during inference step by step, the weight updates of `W_1 … W_L`,
    /// and last the loss. The layer (from 1; `L` for the loss) and the quantity, or `None` when
    /// everything is finite.
    pub fn first_non_finite(&self) -> Option<(usize, &'static str)> {
        let first = |v: &[f64]| v.iter().position(|x| !x.is_finite()).map(|i| i + 1);
        if let Some(l) = first(&self.act_rms) {
            return Some((l, "its feedforward activity z"));
        }
        if let Some(l) = first(&self.energies_ffwd) {
            return Some((l, "its energy E at the feedforward point"));
        }
        if let Some(l) = self.energy_steps.iter().find_map(|row| first(row)) {
            return Some((l, "its energy E during inference"));
        }
        if let Some(l) = first(&self.rel_dw) {
            return Some((l, "the update of its weights W"));
        }
        (!self.loss.is_finite()).then_some((self.rel_dw.len().max(1), "the loss"))
    }

    /// [`IterationReport::first_non_finite`] in words: "layer 12 (its feedforward activity z_12)".
    pub fn divergence_site(&self) -> Option<(usize, String)> {
        self.first_non_finite().map(|(l, what)| {
            let sub = if what.ends_with(" z") || what.ends_with(" E") || what.ends_with(" W") {
                format!("_{l}")
            } else {
                String::new()
            };
            (l, format!("layer {l} ({what}{sub} became NaN or ±∞)"))
        })
    }
}

/// A network with its optimiser and every buffer one iteration needs.
#[derive(Clone, Debug)]
pub struct Model<T> {
    /// The network being trained.
    pub net: Network<T>,
    /// Its Adam state.
    pub adam: Adam<T>,
    /// PC or BP.
    pub learning: Learning,
    /// Activities: after [`Model::train_step`], the final (post-inference) activities for PC and the
    /// feedforward ones for BP.
    pub z: Vec<Mat<T>>,
    /// `ŷ` of the last feedforward pass.
    pub y_hat: Mat<T>,
    /// Weight gradients of the last iteration.
    pub grads: Vec<Mat<T>>,
    /// PC scratch; after a PC step it holds the errors at the final activities.
    pub ws: Workspace<T>,
    bp: BpScratch<T>,
    phi: Mat<T>,
}

impl<T: Real> Model<T> {
    /// A model around `net` with a fresh Adam state.
    pub fn new(net: Network<T>, learning: Learning, lr: f64, adam: AdamConfig) -> Self {
        let adam = Adam::new(&net, lr, adam);
        let grads = zeros_like(&net);
        let (z, y_hat) = alloc_activities(&net, 0);
        let ws = Workspace::new(&net, 0);
        let bp = BpScratch::new(&net, 0);
        Model { net, adam, learning, z, y_hat, grads, ws, bp, phi: Mat::zeros(0, 0) }
    }

    fn ensure_batch(&mut self, b: usize) {
        if self.y_hat.rows != b {
            (self.z, self.y_hat) = alloc_activities(&self.net, b);
            self.ws = Workspace::new(&self.net, b);
            self.bp = BpScratch::new(&self.net, b);
            self.phi = Mat::zeros(b, self.net.arch.width);
        }
    }

    /// One training iteration on the batch `(x, y)`.
    pub fn train_step(&mut self, x: &Mat<T>, y: &Mat<T>) -> IterationReport {
        self.train_step_aligned(x, y, false)
    }

    /// [`Model::train_step`]; with `align` a PC iteration also compares its weight gradient with
    /// backprop's at the same weights and batch (docs/maths.md §11) after inference and after
    /// every [`step_stride`]-th step (at most 16 of them), on the iteration's own inference:
    /// the extra work is one backward pass and a weight gradient per compared step.
    pub fn train_step_aligned(&mut self, x: &Mat<T>, y: &Mat<T>, align: bool) -> IterationReport {
        self.ensure_batch(x.rows);
        let net = &self.net;
        forward_into(net, x, &mut self.z, &mut self.y_hat, &mut self.phi);
        let act_rms = rms(&self.z);
        match self.learning {
            Learning::Pc { eta_z, steps } => {
                let mut probe = align.then(|| {
                    let stride = Some(step_stride(steps));
                    Probe::at_feedforward(net, x, y, &self.z, &self.y_hat, &mut self.bp, stride)
                });
                // a_1 x W_1ᵀ is z_1 of the feedforward pass, bit for bit.
                self.ws.drive.data.copy_from_slice(&self.z[0].data);
                let mut trace = Vec::with_capacity(steps + 1);
                infer(net, y, &mut self.z, &mut self.ws, T::of(eta_z), steps, true, |t, ws| {
                    trace.push(ws.layer_energies().into_iter().map(Real::f64).collect::<Vec<_>>());
                    if let Some(p) = probe.as_mut() {
                        p.record(net, x, ws, t, steps);
                    }
                });
                weight_grads_into(net, x, &self.ws, &mut self.grads);
                let alignment = probe.map(|p| p.finish(&self.grads));
                let rel_dw = self.adam.step(&mut self.net.weights, &self.grads);
                IterationReport { alignment, ..IterationReport::pc(trace, act_rms, rel_dw) }
            }
            Learning::Bp => {
                let l = bp_loss(y, &self.y_hat).f64();
                let loss = 0.5 * l * net.arch.output as f64;
                bp_grads_into(net, x, y, &self.z, &self.y_hat, &mut self.bp, &mut self.grads);
                let rel_dw = self.adam.step(&mut self.net.weights, &self.grads);
                IterationReport::bp(loss, l, act_rms, rel_dw)
            }
        }
    }
}

/// Floating-point operations of one iteration, counting `2·B·in·out` per matrix product.
///
/// `nominal` is the count the benchmarks compare by: the forward pass, two products per layer
/// (`W_2 … W_L`) per inference step, and the weight gradients — what an implementation without the
/// wavefront does. `executed` counts only the products this implementation runs: inference skips
/// the layers the error signal has not reached (see [`super::infer`]) and also forms the
/// back-projections at the final activities.
pub fn iteration_flops(arch: &super::Arch, learning: Learning, batch: usize) -> (f64, f64) {
    let prod = |l: usize| {
        let (o, i) = arch.weight_shape(l);
        2.0 * batch as f64 * (o * i) as f64
    };
    let all: f64 = (1..=arch.layers()).map(prod).sum();
    let above_input: f64 = (2..=arch.layers()).map(prod).sum();
    match learning {
        Learning::Bp => (all + all + above_input, all + all + above_input),
        Learning::Pc { steps, .. } => {
            let nominal = all + 2.0 * steps as f64 * above_input + all;
            let inference: f64 = (0..=steps)
                .map(|t| {
                    let from = super::infer::first_active_layer(arch.hidden, t).max(2);
                    (from..=arch.layers()).map(|l| 2.0 * prod(l)).sum::<f64>()
                })
                .sum();
            (nominal, all + inference + all)
        }
    }
}
