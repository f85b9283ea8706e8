//! Predictive coding's weight gradients against backprop's (docs/maths.md §11).
//!
//! For one batch and the same weights: PC's `∂F/∂W_l` after `t` inference steps against the
//! gradient of the BP loss written on the energy's scale, `ℓ̃ = ½·(1/B) Σ ‖y − ŷ‖²` (that is
//! `(O/2)·ℓ` for backprop's `ℓ = mean (y − ŷ)²`, so `F = ℓ̃` exactly at the feedforward point):
//!
//! ```text
//! cos_l   = ⟨∂F/∂W_l, ∂ℓ̃/∂W_l⟩ / (‖∂F/∂W_l‖ ‖∂ℓ̃/∂W_l‖)
//! ratio_l = ‖∂F/∂W_l‖ / ‖∂ℓ̃/∂W_l‖
//! ```
//!
//! A layer the error wavefront has not reached has no PC gradient at all (exactly zero, not a
//! small one): it is reported as `None`, never as a cosine of 0.

use super::bp::{bp_grads_into, BpScratch};
use super::energy::{errors_into, Workspace};
use super::forward::forward;
use super::infer::{first_active_layer, infer, infer_step};
use super::learn::{weight_grads_from, weight_grads_into, zeros_like};
use super::linalg::{Mat, Real};
use super::network::Network;
use serde::{Deserialize, Serialize};

/// One layer's PC gradient against BP's.
#[derive(Clone, Copy, Debug, PartialEq, Serialize, Deserialize)]
pub struct LayerAlignment {
    /// Cosine similarity of the two gradients.
    pub cosine: f64,
    /// `‖∂F/∂W_l‖ / ‖∂ℓ̃/∂W_l‖`.
    pub norm_ratio: f64,
}

impl LayerAlignment {
    /// From `⟨g, g_bp⟩`, `‖g‖²` and `‖g_bp‖²`; `None` when PC's gradient `g` is zero (the
    /// wavefront has not reached the layer).
    pub fn from_sums(dot: f64, pc: f64, bp: f64) -> Option<Self> {
        if pc == 0.0 {
            return None;
        }
        let (na, nb) = (pc.sqrt(), bp.sqrt());
        Some(LayerAlignment { cosine: dot / (na * nb), norm_ratio: na / nb })
    }
}

/// Layers `1 … L`; `None` where PC has no gradient yet.
pub type Profile = Vec<Option<LayerAlignment>>;

/// The median, least and greatest cosine over the layers that have a PC gradient.
pub fn cosine_summary(profile: &[Option<LayerAlignment>]) -> Option<(f64, f64, f64)> {
    let mut c: Vec<f64> = profile.iter().flatten().map(|a| a.cosine).collect();
    if c.is_empty() {
        return None;
    }
    c.sort_by(f64::total_cmp);
    let median = if c.len() % 2 == 1 { c[c.len() / 2] } else { 0.5 * (c[c.len() / 2 - 1] + c[c.len() / 2]) };
    Some((median, c[0], c[c.len() - 1]))
}

/// PC's gradients against BP's over one iteration's inference.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct AlignmentReport {
    /// After `t` inference steps for each `t` of [`AlignmentReport::at`] (0: the feedforward
    /// point, where only `W_L` has a PC gradient; the last is `T`).
    pub steps: Vec<Profile>,
    /// The step each profile of `steps` comes after.
    pub at: Vec<usize>,
    /// `F` after each step `t = 0 … T`.
    pub energies: Vec<f64>,
    /// `ℓ̃` at the feedforward point.
    pub bp_loss: f64,
}

impl AlignmentReport {
    /// After the last step.
    pub fn last(&self) -> &Profile {
        self.steps.last().expect("a report has at least one profile")
    }

    /// `F` after inference over `ℓ̃`.
    pub fn energy_ratio(&self) -> f64 {
        self.energies.last().copied().unwrap_or(f64::NAN) / self.bp_loss
    }
}

/// `∂ℓ̃/∂W_l` for every layer from the feedforward activities `z` and output `y_hat` of `x`,
/// and `ℓ̃`.
fn bp_reference<T: Real>(
    net: &Network<T>,
    x: &Mat<T>,
    y: &Mat<T>,
    z: &[Mat<T>],
    y_hat: &Mat<T>,
    scratch: &mut BpScratch<T>,
) -> (Vec<Mat<T>>, f64) {
    let mut grads = zeros_like(net);
    bp_grads_into(net, x, y, z, y_hat, scratch, &mut grads);
    let loss = super::bp::bp_loss(y, y_hat).f64();
    // ℓ̃ = (O/2) ℓ, so its gradient is (O/2) ∂ℓ/∂W.
    let scale = T::of(net.arch.output as f64 / 2.0);
    for g in &mut grads {
        g.data.iter_mut().for_each(|v| *v = *v * scale);
    }
    (grads, loss * net.arch.output as f64 / 2.0)
}

/// Backprop's gradients for one batch, and PC's compared with them as one inference runs: what
/// [`align`] does on its own and a training iteration does along the way (through
/// [`super::train::Model::train_step_aligned`], on the iteration's own inference).
#[derive(Clone, Debug)]
pub struct Probe<T> {
    bp: Vec<Mat<T>>,
    bp_loss: f64,
    pc: Vec<Mat<T>>,
    stride: Option<usize>,
    steps: Vec<Profile>,
    at: Vec<usize>,
    energies: Vec<f64>,
}

/// Steps of one inference a training iteration's alignment compares at most (evenly spaced, and
/// the last): each costs a weight gradient.
pub const STEP_COLUMNS: usize = 16;

/// The stride between compared steps for `T` steps in at most [`STEP_COLUMNS`] columns.
pub fn step_stride(steps: usize) -> usize {
    steps.div_ceil(STEP_COLUMNS).max(1)
}

impl<T: Real> Probe<T> {
    /// BP's gradients at the feedforward point `(z, y_hat)` of `x` (before inference moves `z`);
    /// with `stride = Some(s)` PC's gradient is compared after every `s`-th inference step too
    /// (and the last), with `None` only after the last.
    pub fn at_feedforward(
        net: &Network<T>,
        x: &Mat<T>,
        y: &Mat<T>,
        z: &[Mat<T>],
        y_hat: &Mat<T>,
        scratch: &mut BpScratch<T>,
        stride: Option<usize>,
    ) -> Self {
        let (bp, bp_loss) = bp_reference(net, x, y, z, y_hat, scratch);
        let pc = if stride.is_some() { zeros_like(net) } else { Vec::new() };
        Probe { bp, bp_loss, pc, stride, steps: Vec::new(), at: Vec::new(), energies: Vec::new() }
    }

    /// Inference's `record` after step `t` of `steps` (the errors of step `t` in `ws`): `F`, and
    /// PC's gradient there on the stride, except at `t = steps`, which [`Probe::finish`] takes.
    pub fn record(&mut self, net: &Network<T>, x: &Mat<T>, ws: &Workspace<T>, t: usize, steps: usize) {
        self.energies.push(ws.energy().f64());
        if self.stride.is_some_and(|s| t < steps && t % s.max(1) == 0) {
            let from = first_active_layer(net.arch.hidden, t);
            weight_grads_from(net, x, ws, &mut self.pc, from);
            self.steps.push(profile_from(&self.pc, &self.bp, from));
            self.at.push(t);
        }
    }

    /// The report, with `pc` the gradients at the final activities.
    pub fn finish(mut self, pc: &[Mat<T>]) -> AlignmentReport {
        self.steps.push(profile(pc, &self.bp));
        self.at.push(self.energies.len().saturating_sub(1));
        AlignmentReport { steps: self.steps, at: self.at, energies: self.energies, bp_loss: self.bp_loss }
    }
}

/// BP's gradients and `ℓ̃`, and inference's start: the feedforward activities with their workspace.
#[allow(clippy::type_complexity)]
fn at_feedforward<T: Real>(net: &Network<T>, x: &Mat<T>, y: &Mat<T>) -> (Vec<Mat<T>>, f64, Vec<Mat<T>>, Workspace<T>) {
    let (z, y_hat) = forward(net, x);
    let (bp, bp_loss) = bp_reference(net, x, y, &z, &y_hat, &mut BpScratch::new(net, x.rows));
    let mut ws = Workspace::new(net, x.rows);
    ws.set_input(net, x);
    (bp, bp_loss, z, ws)
}

/// Each layer's cosine and norm ratio of `pc` against `bp`, in f64.
pub fn profile<T: Real>(pc: &[Mat<T>], bp: &[Mat<T>]) -> Profile {
    profile_from(pc, bp, 1)
}

/// [`profile`] where the layers below `from` are known to have no PC gradient; one pass over
/// each layer's weights, the layers side by side.
pub fn profile_from<T: Real>(pc: &[Mat<T>], bp: &[Mat<T>], from: usize) -> Profile {
    let mut out: Profile = vec![None; pc.len()];
    super::for_each_layer(&mut out, |k, slot| {
        if k + 1 < from {
            return;
        }
        let (a, b) = (&pc[k].data, &bp[k].data);
        let (mut dot, mut aa, mut bb) = (0.0, 0.0, 0.0);
        for (&p, &q) in a.iter().zip(b) {
            let (p, q) = (p.f64(), q.f64());
            dot += p * q;
            aa += p * p;
            bb += q * q;
        }
        // In f64 a sum of squares is 0 only when every value is (or is below 1e-154).
        *slot = LayerAlignment::from_sums(dot, aa, bb);
    });
    out
}

/// PC's gradients against BP's for one batch `(x, y)` over `steps` inference steps from the
/// feedforward point at rate `eta_z`; every step's profile when `every_step`, else the last.
/// Leaves the network unchanged.
pub fn align<T: Real>(
    net: &Network<T>,
    x: &Mat<T>,
    y: &Mat<T>,
    eta_z: f64,
    steps: usize,
    every_step: bool,
) -> AlignmentReport {
    let (z0, y_hat) = forward(net, x);
    let stride = every_step.then_some(1);
    let mut probe = Probe::at_feedforward(net, x, y, &z0, &y_hat, &mut BpScratch::new(net, x.rows), stride);
    let mut z = z0;
    let mut ws = Workspace::new(net, x.rows);
    ws.set_input(net, x);
    infer(net, y, &mut z, &mut ws, T::of(eta_z), steps, true, |t, ws| probe.record(net, x, ws, t, steps));
    let mut pc = zeros_like(net);
    weight_grads_into(net, x, &ws, &mut pc);
    probe.finish(&pc)
}

/// Inference run until the energy stops moving: PC's gradients against BP's there.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Equilibrium {
    /// Per layer, at the equilibrium.
    pub profile: Profile,
    /// Inference steps taken.
    pub steps: usize,
    /// The last step changed `F` by at most the tolerance (relative); `false`: `max_steps` ran out.
    pub settled: bool,
    /// `F` at the equilibrium.
    pub energy: f64,
    /// `ℓ̃` at the feedforward point.
    pub bp_loss: f64,
}

impl Equilibrium {
    /// `F*/ℓ̃`: 1 when the equilibrated energy equals the BP loss.
    pub fn energy_ratio(&self) -> f64 {
        self.energy / self.bp_loss
    }
}

/// Inference toward equilibrium that can stop and go on (a page runs it a slice per frame).
#[derive(Clone, Debug)]
pub struct EquilibriumJob<T> {
    net: Network<T>,
    x: Mat<T>,
    y: Mat<T>,
    bp: Vec<Mat<T>>,
    bp_loss: f64,
    z: Vec<Mat<T>>,
    ws: Workspace<T>,
    eta_z: f64,
    max_steps: usize,
    tol: f64,
    prev: f64,
    steps: usize,
    /// `Some(true)`: settled; `Some(false)`: stopped unsettled (steps ran out, or diverged).
    done: Option<bool>,
}

impl<T: Real> EquilibriumJob<T> {
    /// Inference on `net` for the batch `(x, y)` from the feedforward point at rate `eta_z`,
    /// until a step changes `F` by at most `tol` of itself (and at least `H + 1` steps, so that
    /// the error has reached every layer), or `max_steps`.
    pub fn new(net: Network<T>, x: Mat<T>, y: Mat<T>, eta_z: f64, max_steps: usize, tol: f64) -> Self {
        let (bp, bp_loss, z, ws) = at_feedforward(&net, &x, &y);
        EquilibriumJob {
            net,
            x,
            y,
            bp,
            bp_loss,
            z,
            ws,
            eta_z,
            max_steps,
            tol,
            prev: f64::INFINITY,
            steps: 0,
            done: None,
        }
    }

    /// Inference steps taken so far.
    pub fn steps(&self) -> usize {
        self.steps
    }

    /// Up to `budget` more steps; the result once inference has settled or stopped.
    pub fn run(&mut self, budget: usize) -> Option<Equilibrium> {
        let h = self.net.arch.hidden;
        let mut left = budget;
        while self.done.is_none() && left > 0 {
            if self.steps >= self.max_steps {
                self.done = Some(false);
                break;
            }
            let from = first_active_layer(h, self.steps);
            let f = infer_step(&self.net, &self.y, &mut self.z, &mut self.ws, T::of(self.eta_z), from).f64();
            self.steps += 1;
            left -= 1;
            if !f.is_finite() {
                // Diverged (η_z too large for this landscape): not an equilibrium.
                self.done = Some(false);
            } else if self.steps > h + 1 && (self.prev - f).abs() <= self.tol * f.abs() {
                self.done = Some(true);
            }
            self.prev = f;
        }
        if self.steps >= self.max_steps && self.done.is_none() {
            self.done = Some(false);
        }
        let settled = self.done?;
        let energy = errors_into(&self.net, &self.y, &self.z, &mut self.ws, true, 1).f64();
        let mut pc = zeros_like(&self.net);
        weight_grads_into(&self.net, &self.x, &self.ws, &mut pc);
        Some(Equilibrium { profile: profile(&pc, &self.bp), steps: self.steps, settled, energy, bp_loss: self.bp_loss })
    }
}

/// [`EquilibriumJob`] run to its end.
pub fn align_at_equilibrium<T: Real>(
    net: &Network<T>,
    x: &Mat<T>,
    y: &Mat<T>,
    eta_z: f64,
    max_steps: usize,
    tol: f64,
) -> Equilibrium {
    let mut job = EquilibriumJob::new(net.clone(), x.clone(), y.clone(), eta_z, max_steps, tol);
    loop {
        if let Some(eq) = job.run(usize::MAX) {
            return eq;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::pcn::{Activation, Arch, Param};
    use rand::{Rng, SeedableRng};

    fn net(width: usize, hidden: usize, act: Activation, param: Param, seed: u64) -> Network<f64> {
        let arch = Arch { input: 24, width, hidden, output: 6, act, skips: true, param };
        Network::init(arch, seed)
    }

    fn batch(rows: usize, cols: usize, seed: u64) -> Mat<f64> {
        let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(seed);
        Mat { rows, cols, data: (0..rows * cols).map(|_| rng.random_range(-1.0..1.0)).collect() }
    }

    /// `(x, y)` with `y` the network's own prediction plus a perturbation of size `eps`.
    fn just_off(n: &Network<f64>, eps: f64) -> (Mat<f64>, Mat<f64>) {
        let x = batch(4, 24, 2);
        let (_, y_hat) = forward(n, &x);
        let noise = batch(4, 6, 3);
        let y = Mat { data: y_hat.data.iter().zip(&noise.data).map(|(p, e)| p + eps * e).collect(), ..y_hat };
        (x, y)
    }

    #[test]
    fn with_a_target_just_off_its_prediction_and_weak_feedback_pc_at_equilibrium_follows_backprop() {
        // The small-error limit, where μPC's output scaling a_L = 1/N makes the top-down feedback
        // weak (N ≫ H): every layer's cosine tends to 1.
        let n = net(256, 4, Activation::Linear, Param::Mupc, 1);
        let (x, y) = just_off(&n, 1e-4);
        let eq = align_at_equilibrium(&n, &x, &y, 1.0, 100_000, 1e-13);
        assert!(eq.settled, "inference did not settle in {} steps", eq.steps);
        for (l, a) in eq.profile.iter().enumerate() {
            let a = a.unwrap_or_else(|| panic!("layer {} has no PC gradient at equilibrium", l + 1));
            assert!(a.cosine > 0.999, "layer {}: cos {} (ratio {})", l + 1, a.cosine, a.norm_ratio);
        }
        // The same check fails where the feedback is strong — standard PC's unit scalings — even
        // for the same tiny error: the equilibrium output error is turned by M⁻¹ (docs/maths.md §11).
        let sp = net(16, 3, Activation::Linear, Param::Sp, 1);
        let (x, y) = just_off(&sp, 1e-4);
        let strong = align_at_equilibrium(&sp, &x, &y, 1.0, 50_000, 1e-13);
        assert!(strong.settled, "{} steps", strong.steps);
        assert!(
            strong.profile.iter().flatten().any(|a| a.cosine.is_nan() || a.cosine <= 0.999),
            "{:?}",
            strong.profile
        );
    }

    #[test]
    fn a_training_iteration_measures_on_its_own_inference_what_align_measures_alone() {
        use crate::pcn::learn::AdamConfig;
        use crate::pcn::train::{Learning, Model};
        // T = 20 > 16 columns: every second step, and the last.
        let n = net(16, 20, Activation::Tanh, Param::Mupc, 11);
        let (x, y) = (batch(8, 24, 12), batch(8, 6, 13));
        let want = align(&n, &x, &y, 0.5, 20, true);
        let mut m = Model::new(n.clone(), Learning::Pc { eta_z: 0.5, steps: 20 }, 0.01, AdamConfig::default());
        let report = m.train_step_aligned(&x, &y, true);
        let got = report.alignment.expect("an aligned iteration reports its alignment");
        assert_eq!(got.at, (0..20).step_by(2).chain([20]).collect::<Vec<_>>());
        assert_eq!(got.energies.len(), 21);
        for (k, &t) in got.at.iter().enumerate() {
            for (l, (a, b)) in got.steps[k].iter().zip(&want.steps[t]).enumerate() {
                let close = match (a, b) {
                    (Some(a), Some(b)) => {
                        (a.cosine - b.cosine).abs() <= 1e-12
                            && (a.norm_ratio - b.norm_ratio).abs() <= 1e-12 * b.norm_ratio.abs().max(1.0)
                    }
                    (None, None) => true,
                    _ => false,
                };
                assert!(close, "step {t}, layer {}: {a:?} vs {b:?}", l + 1);
            }
        }
        assert!((got.bp_loss - want.bp_loss).abs() <= 1e-14, "ℓ̃");
        // The weights moved (the iteration trained), and an iteration not asked reports nothing.
        assert_ne!(m.net.weights, n.weights);
        assert!(m.train_step(&x, &y).alignment.is_none());
    }

    #[test]
    fn layers_the_wavefront_has_not_reached_have_no_pc_gradient() {
        let n = net(16, 6, Activation::Tanh, Param::Mupc, 4);
        let (x, y) = (batch(8, 24, 5), batch(8, 6, 6));
        let r = align(&n, &x, &y, 0.5, 3, true);
        assert_eq!(r.steps.len(), 4);
        assert_eq!(r.at, vec![0, 1, 2, 3]);
        assert_eq!(r.energies.len(), 4);
        // At the feedforward point only W_L has a gradient; after t steps layers L−t … L do.
        for (t, p) in r.steps.iter().enumerate() {
            let have: Vec<usize> = p.iter().enumerate().filter(|(_, a)| a.is_some()).map(|(l, _)| l + 1).collect();
            let lowest = 7 - t;
            assert_eq!(have, (lowest..=7).collect::<Vec<_>>(), "after {t} steps");
        }
        // At the feedforward point F is ℓ̃ itself, and W_L's PC gradient is BP's exactly.
        assert!((r.energies[0] - r.bp_loss).abs() <= 1e-12 * r.bp_loss, "{} vs {}", r.energies[0], r.bp_loss);
        let top = r.steps[0][6].expect("W_L");
        assert!((top.cosine - 1.0).abs() < 1e-12 && (top.norm_ratio - 1.0).abs() < 1e-12, "{top:?}");
        let (median, lo, hi) = cosine_summary(&r.steps[3]).expect("four layers");
        assert!(lo <= median && median <= hi);
        assert_eq!(cosine_summary(&[None, None]), None);
    }

    #[test]
    fn under_mupc_pc_approaches_backprop_as_width_grows_over_depth() {
        // The 2026 infinite width and depth limit: in a linear μPC network at equilibrium, PC's
        // gradients align with BP's and F*/ℓ̃ → 1 as N/H grows.
        let at = |width: usize, hidden: usize| {
            let n = net(width, hidden, Activation::Linear, Param::Mupc, 7);
            let x = batch(16, 24, 8);
            let mut y = Mat::zeros(16, 6);
            for r in 0..16 {
                y.data[r * 6 + r % 6] = 1.0;
            }
            align_at_equilibrium(&n, &x, &y, 4.0, 200_000, 1e-12)
        };
        let (wide, deep) = (at(256, 4), at(16, 32));
        assert!(wide.settled && deep.settled, "{} / {} steps", wide.steps, deep.steps);
        let median = |e: &Equilibrium| cosine_summary(&e.profile).expect("every layer").0;
        assert!(median(&wide) > median(&deep), "median cos: N/H = 64 {} · N/H = 0.5 {}", median(&wide), median(&deep));
        let off = |e: &Equilibrium| (1.0 - e.energy_ratio()).abs();
        assert!(off(&wide) < off(&deep), "F*/ℓ̃: N/H = 64 {} · N/H = 0.5 {}", wide.energy_ratio(), deep.energy_ratio());
        assert!(median(&wide) > 0.9 && off(&wide) < 0.2, "{wide:?}");
    }
}
