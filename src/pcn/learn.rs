//! Learning: weight gradients at the activities inference settled on, and Adam (docs/maths.md §5, steps 3–4).
//!
//! ```text
//! ∂F/∂W_1 = −(a_1/B) e_1ᵀ x
//! ∂F/∂W_l = −(a_h/B) e_lᵀ φ(z_{l-1})      l = 2 … H
//! ∂F/∂W_L = −(a_L/B) e_Lᵀ φ(z_H)
//! ```
//! Adam exactly as optax: `m ← β₁m + (1−β₁)g`, `v ← β₂v + (1−β₂)g²`, `m̂ = m/(1−β₁ᵗ)`,
//! `v̂ = v/(1−β₂ᵗ)`, `W ← W − η_w m̂/(√v̂ + ε)`; one state per matrix, `t` counts updates from 1.

use super::energy::Workspace;
use super::linalg::{gemm, Mat, Real};
use super::network::Network;
use serde::{Deserialize, Serialize};

/// `∂F/∂W_1 … ∂F/∂W_L` into `grads`, from the errors and `φ(z_{l-1})` that [`super::energy::errors_into`]
/// left in `ws` at the final activities.
pub fn weight_grads_into<T: Real>(net: &Network<T>, x: &Mat<T>, ws: &Workspace<T>, grads: &mut [Mat<T>]) {
    weight_grads_from(net, x, ws, grads, 1);
}

/// [`weight_grads_into`] where the errors of layers below `from` are known to be zero (the
/// wavefront, [`super::infer::first_active_layer`]): their gradients are set to zero without a product.
pub fn weight_grads_from<T: Real>(net: &Network<T>, x: &Mat<T>, ws: &Workspace<T>, grads: &mut [Mat<T>], from: usize) {
    weight_grads_layers(net, x, ws, grads, from, 1, net.arch.layers());
}

/// [`weight_grads_from`] for layers `lo … hi` only (one block of a pool, `crate::pool`); the
/// other gradients are left alone.
pub fn weight_grads_layers<T: Real>(
    net: &Network<T>,
    x: &Mat<T>,
    ws: &Workspace<T>,
    grads: &mut [Mat<T>],
    from: usize,
    lo: usize,
    hi: usize,
) {
    let inv_b = T::one() / T::of(ws.batch() as f64);
    super::for_each_layer(grads, |k, g| {
        let l = k + 1;
        if l < lo || l > hi {
            return;
        }
        if l < from {
            g.data.iter_mut().for_each(|v| *v = T::zero());
            return;
        }
        let buf = &ws.layers[k];
        let input = if l == 1 { x } else { &buf.phi_in };
        gemm(-net.a(l) * inv_b, buf.e.view().t(), input.view(), T::zero(), &mut g.data);
    });
}

/// Zeroed matrices shaped like the network's weights.
pub fn zeros_like<T: Real>(net: &Network<T>) -> Vec<Mat<T>> {
    net.weights.iter().map(|w| Mat::zeros(w.rows, w.cols)).collect()
}

/// Adam's hyper-parameters.
#[derive(Clone, Copy, Debug, PartialEq, Serialize, Deserialize)]
pub struct AdamConfig {
    /// β₁.
    pub beta1: f64,
    /// β₂.
    pub beta2: f64,
    /// ε.
    pub eps: f64,
}

impl Default for AdamConfig {
    fn default() -> Self {
        AdamConfig { beta1: 0.9, beta2: 0.999, eps: 1e-8 }
    }
}

/// Adam state for every weight matrix.
#[derive(Clone, Debug)]
pub struct Adam<T> {
    /// η_w.
    pub lr: f64,
    /// β₁, β₂, ε.
    pub cfg: AdamConfig,
    /// Updates applied so far (`t` of the next update is `steps + 1`).
    pub steps: u64,
    m: Vec<Mat<T>>,
    v: Vec<Mat<T>>,
}

impl<T: Real> Adam<T> {
    /// Fresh state (zero moments) for `net`'s matrices.
    pub fn new(net: &Network<T>, lr: f64, cfg: AdamConfig) -> Self {
        Adam { lr, cfg, steps: 0, m: zeros_like(net), v: zeros_like(net) }
    }

    /// A state resumed after `steps` updates with moments `m` and `v` (shaped like the weights).
    pub fn resume(lr: f64, cfg: AdamConfig, steps: u64, m: Vec<Mat<T>>, v: Vec<Mat<T>>) -> Self {
        Adam { lr, cfg, steps, m, v }
    }

    /// The first and second moments, one matrix per weight matrix.
    pub fn moments(&self) -> (&[Mat<T>], &[Mat<T>]) {
        (&self.m, &self.v)
    }

    /// Applies one update to `weights`; returns the relative change `‖ΔW_l‖/‖W_l‖` per matrix.
    pub fn step(&mut self, weights: &mut [Mat<T>], grads: &[Mat<T>]) -> Vec<f64> {
        self.steps += 1;
        let t = self.steps as i32;
        let c = self.cfg;
        let (b1, b2) = (T::of(c.beta1), T::of(c.beta2));
        let (one_b1, one_b2) = (T::one() - b1, T::one() - b2);
        let bc1 = T::of(1.0 - c.beta1.powi(t));
        let bc2 = T::of(1.0 - c.beta2.powi(t));
        let (lr, eps) = (T::of(self.lr), T::of(c.eps));
        let mut layers: Vec<_> =
            weights.iter_mut().zip(&mut self.m).zip(&mut self.v).map(|((w, m), v)| (w, m, v, 0.0)).collect();
        super::for_each_layer(&mut layers, |k, (w, m, v, rel)| {
            // Eight interleaved partial sums of ‖W‖² and ‖ΔW‖² keep the loop vectorisable.
            let (mut acc_w, mut acc_d) = ([T::zero(); 8], [T::zero(); 8]);
            let chunks =
                w.data.chunks_mut(8).zip(m.data.chunks_mut(8)).zip(v.data.chunks_mut(8)).zip(grads[k].data.chunks(8));
            for (((wc, mc), vc), gc) in chunks {
                let lanes = wc.iter_mut().zip(mc).zip(vc).zip(gc).zip(acc_w.iter_mut().zip(acc_d.iter_mut()));
                for ((((wv, mv), vv), &g), (aw, ad)) in lanes {
                    *mv = b1 * *mv + one_b1 * g;
                    *vv = b2 * *vv + one_b2 * g * g;
                    let update = lr * (*mv / bc1) / ((*vv / bc2).sqrt() + eps);
                    *aw = *aw + *wv * *wv;
                    *ad = *ad + update * update;
                    *wv = *wv - update;
                }
            }
            let (w2, dw2): (T, T) = (acc_w.iter().copied().sum(), acc_d.iter().copied().sum());
            // A NaN here is how divergence of the weights is noticed without another pass.
            *rel = if !(w2.is_finite() && dw2.is_finite()) {
                f64::NAN
            } else if w2 > T::zero() {
                (dw2 / w2).sqrt().f64()
            } else {
                dw2.sqrt().f64()
            };
        });
        layers.into_iter().map(|(.., rel)| rel).collect()
    }
}
