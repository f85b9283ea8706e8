//! Inference: activity gradients and synchronous gradient descent on the hidden activities (docs/maths.md §5).
//!
//! ```text
//! ∂F/∂z_l = (1/B) [ e_l − τ e_{l+1} − a_h · φ'(z_l) ⊙ (e_{l+1} W_{l+1}) ]    l = 1 … H−1
//! ∂F/∂z_H = (1/B) [ e_H − a_L · φ'(z_H) ⊙ (e_L W_L) ]
//! z_l ← z_l − η_z ∂F/∂z_l   for every l at once (Jacobi), T times, no momentum, no early stop.
//! ```
//!
//! **The wavefront.** From the feedforward point every hidden error is exactly zero (the forward
//! pass and the errors form predictions through the same call), and only `e_L` is not. Step `t`
//! (from 0) can therefore only see non-zero errors in layers `l ≥ H + 1 − t` and only move
//! activities in layers `l ≥ H − t`: the error signal descends one layer per step, which is why
//! `T = H` is the least that reaches `W_1` (docs/maths.md §5). Training skips the layers the wavefront has
//! not reached — exactly, not approximately: their errors are exact zeros, so skipping changes no
//! bit of any result (`tests/spec_facts.rs` checks this against the full computation).

use super::activation::DfKernel;
use super::energy::{errors_into, LayerBuf, Workspace};
use super::linalg::{Mat, Real};
use super::network::Network;

/// Where a layer's activity gradient goes.
enum Target<'a, T> {
    /// `out = ∂F/∂z_l` at `z`.
    Into { z: &'a [T], out: &'a mut [T] },
    /// `z ← z − η_z ∂F/∂z_l`, in place (one pass, no gradient buffer).
    Step { z: &'a mut [T], eta_z: T },
}

/// `∂F/∂z_l` for one hidden layer `l` (index `k = l−1`), from the errors and the back-projection
/// from above that a [`errors_into`] with `with_back` left in `ws` at the same `z`.
struct LayerGrad<'a, T> {
    e: &'a [T],
    back_above: &'a [T],
    /// `e_{l+1}` for the skip term; for the top hidden layer (no skip into the output) or without
    /// skips `τ = 0` and this is `e` itself, a same-length stand-in that `τ` cancels.
    e_above: &'a [T],
    tau: T,
    a_next: T,
    inv_b: T,
    target: Target<'a, T>,
}

impl<'a, T: Real> LayerGrad<'a, T> {
    fn new(net: &Network<T>, k: usize, ws: &'a [LayerBuf<T>], batch: usize, target: Target<'a, T>) -> Self {
        let l = k + 1;
        let (e, above) = (&ws[k].e.data, &ws[k + 1]);
        let skip = net.arch.skips && l < net.arch.hidden;
        LayerGrad {
            e,
            back_above: &above.back.data,
            e_above: if skip { &above.e.data } else { e },
            tau: if skip { T::one() } else { T::zero() },
            a_next: net.a(l + 1),
            inv_b: T::one() / T::of(batch as f64),
            target,
        }
    }
}

impl<T: Real> DfKernel<T, ()> for LayerGrad<'_, T> {
    /// `∂F/∂z_l = (1/B)[e_l − τ e_{l+1} − a_{l+1} φ'(z_l) ⊙ (e_{l+1} W_{l+1})]`
    fn run(self, df: impl Fn(T) -> T + Copy) {
        let (tau, a, inv_b) = (self.tau, self.a_next, self.inv_b);
        let grad = move |z: T, e: T, b: T, ea: T| (e - tau * ea - a * df(z) * b) * inv_b;
        let rest = self.e.iter().zip(self.back_above).zip(self.e_above);
        match self.target {
            Target::Into { z, out } => {
                out.iter_mut().zip(z).zip(rest).for_each(|((o, &z), ((&e, &b), &ea))| *o = grad(z, e, b, ea))
            }
            Target::Step { z, eta_z } => {
                z.iter_mut().zip(rest).for_each(|(z, ((&e, &b), &ea))| *z = *z - eta_z * grad(*z, e, b, ea))
            }
        }
    }
}

/// `∂F/∂z_1 … ∂F/∂z_H` into `out`, from the state [`errors_into`] left in `ws` for these `z`.
pub fn activity_grads_into<T: Real>(net: &Network<T>, z: &[Mat<T>], ws: &Workspace<T>, out: &mut [Mat<T>]) {
    let batch = ws.batch();
    super::for_each_layer(out, |k, g| {
        let target = Target::Into { z: &z[k].data, out: &mut g.data };
        net.arch.act.with_df(LayerGrad::new(net, k, &ws.layers, batch, target));
    });
}

/// The lowest layer whose error can be non-zero after `t` inference steps from the feedforward
/// point (`L = H + 1` before the first step; 1 once the wavefront has reached the input layer).
pub fn first_active_layer(hidden: usize, t: usize) -> usize {
    (hidden + 1).saturating_sub(t).max(1)
}

/// One synchronous inference step: errors at `z` (so `ws` then holds `E_l` before the step), then
/// `z_l ← z_l − η_z ∂F/∂z_l` for every hidden layer. Layers below `from` are known to have zero
/// error (`from = 1`: none are). Returns `F` before the step.
pub fn infer_step<T: Real>(
    net: &Network<T>,
    y: &Mat<T>,
    z: &mut [Mat<T>],
    ws: &mut Workspace<T>,
    eta_z: T,
    from: usize,
) -> T {
    let f = errors_into(net, y, z, ws, true, from);
    update_layers(net, z, ws, eta_z, from, 1, net.arch.hidden);
    f
}

/// The lowest hidden layer an inference step moves when the errors below `from` are zero:
/// `∂F/∂z_l` involves `e_l` and `e_{l+1}`, so it is zero below layer `from − 1`.
pub fn lowest_moving_layer(from: usize) -> usize {
    from.saturating_sub(1).max(1)
}

/// The update half of [`infer_step`] for the hidden layers `lo … hi` (one block of a pool,
/// `crate::pool`), from the errors and back-projections in `ws`, which for layer `hi + 1` may be
/// a neighbour's.
pub fn update_layers<T: Real>(
    net: &Network<T>,
    z: &mut [Mat<T>],
    ws: &Workspace<T>,
    eta_z: T,
    from: usize,
    lo: usize,
    hi: usize,
) {
    let (batch, layers) = (ws.batch(), &ws.layers);
    let lowest = lowest_moving_layer(from).max(lo);
    super::for_each_layer(z, |k, zl| {
        if (lowest..=hi).contains(&(k + 1)) {
            let target = Target::Step { z: &mut zl.data, eta_z };
            net.arch.act.with_df(LayerGrad::new(net, k, layers, batch, target));
        }
    });
}

/// `T` inference steps from the current `z`. Calls `record(step, ws)` after the errors of each step
/// (steps `0 … T−1`, before their update) and once more at the final activities (step `T`), so the
/// energies seen are the `T + 1` values the fixtures list. On return `ws` holds the errors and
/// back-projections at the final `z`.
///
/// `from_feedforward` declares that `z` is the feedforward point of the current weights and
/// input, which lets every step skip the layers the wavefront has not reached.
#[allow(clippy::too_many_arguments)]
pub fn infer<T: Real>(
    net: &Network<T>,
    y: &Mat<T>,
    z: &mut [Mat<T>],
    ws: &mut Workspace<T>,
    eta_z: T,
    steps: usize,
    from_feedforward: bool,
    mut record: impl FnMut(usize, &Workspace<T>),
) {
    let from = |t| if from_feedforward { first_active_layer(net.arch.hidden, t) } else { 1 };
    for t in 0..steps {
        infer_step(net, y, z, ws, eta_z, from(t));
        record(t, ws);
    }
    errors_into(net, y, z, ws, true, from(steps));
    record(steps, ws);
}
