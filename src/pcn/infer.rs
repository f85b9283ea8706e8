//! Inference: activity gradients and synchronous gradient descent on the hidden activities (spec §5).
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
//! `T = H` is the least that reaches `W_1` (spec §5). Training skips the layers the wavefront has
//! not reached — exactly, not approximately: their errors are exact zeros, so skipping changes no
//! bit of any result (`tests/spec_facts.rs` checks this against the full computation).

use super::activation::DfKernel;
use super::energy::{errors_into, LayerBuf, Workspace};
use super::linalg::{Mat, Real};
use super::network::Network;

/// `∂F/∂z_l` for one hidden layer `l` (index `k = l−1`), from the errors and the back-projection
/// from above that a [`errors_into`] with `with_back` left in `ws` at the same `z`.
struct LayerGrad<'a, T> {
    z: &'a [T],
    e: &'a [T],
    back_above: &'a [T],
    /// `τ e_{l+1}`'s source: `None` for the top hidden layer (no skip into the output) or no skips.
    e_above: Option<&'a [T]>,
    a_next: T,
    inv_b: T,
    out: &'a mut [T],
}

impl<'a, T: Real> LayerGrad<'a, T> {
    fn new(net: &Network<T>, k: usize, z: &'a [T], ws: &'a [LayerBuf<T>], batch: usize, out: &'a mut [T]) -> Self {
        let l = k + 1;
        let above = &ws[k + 1];
        LayerGrad {
            z,
            e: &ws[k].e.data,
            back_above: &above.back.data,
            e_above: (net.arch.skips && l < net.arch.hidden).then_some(&above.e.data[..]),
            a_next: net.a(l + 1),
            inv_b: T::one() / T::of(batch as f64),
            out,
        }
    }
}

impl<T: Real> DfKernel<T, ()> for LayerGrad<'_, T> {
    /// `out = (1/B)[e_l − τ e_{l+1} − a_{l+1} φ'(z_l) ⊙ (e_{l+1} W_{l+1})]`
    fn run(self, df: impl Fn(T) -> T + Copy) {
        let (a, inv_b) = (self.a_next, self.inv_b);
        let rows = self.out.iter_mut().zip(self.z).zip(self.e).zip(self.back_above);
        match self.e_above {
            Some(ea) => rows.zip(ea).for_each(|((((o, &z), &e), &b), &ea)| *o = (e - ea - a * df(z) * b) * inv_b),
            None => rows.for_each(|(((o, &z), &e), &b)| *o = (e - a * df(z) * b) * inv_b),
        }
    }
}

/// `∂F/∂z_1 … ∂F/∂z_H` into `out`, from the state [`errors_into`] left in `ws` for these `z`.
pub fn activity_grads_into<T: Real>(net: &Network<T>, z: &[Mat<T>], ws: &Workspace<T>, out: &mut [Mat<T>]) {
    let batch = ws.batch();
    super::for_each_layer(out, |k, g| {
        net.arch.act.with_df(LayerGrad::new(net, k, &z[k].data, &ws.layers, batch, &mut g.data));
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
    let batch = ws.batch();
    let (layers, grads) = (&ws.layers, &mut ws.grads);
    // ∂F/∂z_l involves e_l and e_{l+1}: zero below layer from − 1.
    let lowest_moving = from.saturating_sub(1).max(1);
    let mut pairs: Vec<(&mut Mat<T>, &mut Mat<T>)> = z.iter_mut().zip(grads.iter_mut()).collect();
    super::for_each_layer(&mut pairs, |k, (zl, g)| {
        if k + 1 < lowest_moving {
            return;
        }
        net.arch.act.with_df(LayerGrad::new(net, k, &zl.data, layers, batch, &mut g.data));
        zl.data.iter_mut().zip(&g.data).for_each(|(zv, &gv)| *zv = *zv - eta_z * gv);
    });
    f
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
