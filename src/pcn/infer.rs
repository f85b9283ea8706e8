//! Inference: activity gradients and synchronous gradient descent on the hidden activities (spec §5).
//!
//! ```text
//! ∂F/∂z_l = (1/B) [ e_l − τ e_{l+1} − a_h · φ'(z_l) ⊙ (e_{l+1} W_{l+1}) ]    l = 1 … H−1
//! ∂F/∂z_H = (1/B) [ e_H − a_L · φ'(z_H) ⊙ (e_L W_L) ]
//! z_l ← z_l − η_z ∂F/∂z_l   for every l at once (Jacobi), T times, no momentum, no early stop.
//! ```

use super::energy::{errors_into, Workspace};
use super::linalg::{Mat, Real};
use super::network::Network;

/// The per-layer constants of `∂F/∂z_l` (layer `l`, index `k = l−1`).
struct LayerGrad<'a, T> {
    a_next: T,
    inv_b: T,
    act: super::Activation,
    e: &'a [T],
    /// `τ e_{l+1}`'s source: `None` for the top hidden layer (no skip into the output) or no skips.
    e_above: Option<&'a [T]>,
    back_above: &'a [T],
}

impl<'a, T: Real> LayerGrad<'a, T> {
    /// Reads layer `k`'s errors and the back-projection from above out of `ws` (a
    /// [`errors_into`] with `with_back` at the same `z`).
    fn new(net: &Network<T>, k: usize, ws: &'a Workspace<T>) -> Self {
        let l = k + 1;
        let above = &ws.layers[k + 1];
        LayerGrad {
            a_next: net.a(l + 1),
            inv_b: T::one() / T::of(ws.batch() as f64),
            act: net.arch.act,
            e: &ws.layers[k].e.data,
            e_above: (net.arch.skips && l < net.arch.hidden).then_some(&above.e.data[..]),
            back_above: &above.back.data,
        }
    }

    /// `∂F/∂z_l` at entry `i`, where `z_l[i] = zv`.
    #[inline]
    fn at(&self, i: usize, zv: T) -> T {
        let top_down = self.a_next * self.act.df(zv) * self.back_above[i];
        let g = self.e[i] - top_down;
        let g = match self.e_above {
            Some(ea) => g - ea[i],
            None => g,
        };
        g * self.inv_b
    }
}

/// `∂F/∂z_1 … ∂F/∂z_H` into `out`, from the state [`errors_into`] left in `ws` for these `z`.
pub fn activity_grads_into<T: Real>(net: &Network<T>, z: &[Mat<T>], ws: &Workspace<T>, out: &mut [Mat<T>]) {
    super::for_each_layer(out, |k, g| {
        let lg = LayerGrad::new(net, k, ws);
        for (i, (gv, &zv)) in g.data.iter_mut().zip(&z[k].data).enumerate() {
            *gv = lg.at(i, zv);
        }
    });
}

/// One synchronous inference step: errors at `z` (so `ws` then holds `E_l` before the step), then
/// `z_l ← z_l − η_z ∂F/∂z_l` for every hidden layer. Returns `F` before the step.
pub fn infer_step<T: Real>(net: &Network<T>, y: &Mat<T>, z: &mut [Mat<T>], ws: &mut Workspace<T>, eta_z: T) -> T {
    let f = errors_into(net, y, z, ws, true);
    let ws = &*ws;
    super::for_each_layer(z, |k, zl| {
        let lg = LayerGrad::new(net, k, ws);
        for (i, zv) in zl.data.iter_mut().enumerate() {
            *zv = *zv - eta_z * lg.at(i, *zv);
        }
    });
    f
}

/// `T` inference steps from the current `z`. Calls `record(step, ws)` after the errors of each step
/// (steps `0 … T−1`, before their update) and once more at the final activities (step `T`), so the
/// energies seen are the `T + 1` values the fixtures list. On return `ws` holds the errors and
/// back-projections at the final `z`.
pub fn infer<T: Real>(
    net: &Network<T>,
    y: &Mat<T>,
    z: &mut [Mat<T>],
    ws: &mut Workspace<T>,
    eta_z: T,
    steps: usize,
    mut record: impl FnMut(usize, &Workspace<T>),
) {
    for t in 0..steps {
        infer_step(net, y, z, ws, eta_z);
        record(t, ws);
    }
    errors_into(net, y, z, ws, true);
    record(steps, ws);
}
