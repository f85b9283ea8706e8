//! Backpropagation baselines (docs/maths.md §6): the same network, forward pass and init as the matching
//! parameterisation, loss `ℓ = mean over batch and outputs of (y − ŷ)²`, gradients by the chain rule:
//!
//! ```text
//! g_ŷ   = −2 (y − ŷ) / (B·O)
//! ∂ℓ/∂W_L = a_L g_ŷᵀ φ(z_H),            δ_H = a_L (g_ŷ W_L) ⊙ φ'(z_H)
//! ∂ℓ/∂W_l = a_h δ_lᵀ φ(z_{l-1}),        δ_{l-1} = τ δ_l + a_h (δ_l W_l) ⊙ φ'(z_{l-1})     l = H … 2
//! ∂ℓ/∂W_1 = a_1 δ_1ᵀ x
//! ```

use super::forward::apply_phi;
use super::linalg::{gemm, Mat, Real};
use super::network::Network;

/// Scratch for the backward pass of one batch size.
#[derive(Clone, Debug)]
pub struct BpScratch<T> {
    g_out: Mat<T>,
    delta: Mat<T>,
    below: Mat<T>,
    back: Mat<T>,
    phi: Mat<T>,
}

impl<T: Real> BpScratch<T> {
    /// Buffers for a batch of `b` rows.
    pub fn new(net: &Network<T>, b: usize) -> Self {
        let n = net.arch.width;
        BpScratch {
            g_out: Mat::zeros(b, net.arch.output),
            delta: Mat::zeros(b, n),
            below: Mat::zeros(b, n),
            back: Mat::zeros(b, n),
            phi: Mat::zeros(b, n),
        }
    }
}

/// The loss `ℓ` of a prediction.
pub fn bp_loss<T: Real>(y: &Mat<T>, y_hat: &Mat<T>) -> T {
    let n = T::of(y.data.len().max(1) as f64);
    y.data.iter().zip(&y_hat.data).map(|(&a, &b)| (a - b) * (a - b)).sum::<T>() / n
}

/// `∂ℓ/∂W_1 … ∂ℓ/∂W_L` into `grads`, given the forward pass's `z` and `ŷ` for input `x`.
pub fn bp_grads_into<T: Real>(
    net: &Network<T>,
    x: &Mat<T>,
    y: &Mat<T>,
    z: &[Mat<T>],
    y_hat: &Mat<T>,
    s: &mut BpScratch<T>,
    grads: &mut [Mat<T>],
) {
    bp_grads_layers(net, x, y, z, y_hat, s, grads, 1, net.arch.layers());
}

/// [`bp_grads_into`] for layers `lo … hi` only (one block of a pool, `crate::pool`), top to
/// bottom. With `hi = L` it starts from `y` and `ŷ`; otherwise from `δ_hi` put in `s` by
/// [`BpScratch::set_delta`] (the block above's [`BpScratch::delta`]). Needs `z_{lo−1} … z_hi`
/// (and `x` when `lo = 1`); leaves `δ_{lo−1}` in [`BpScratch::delta`] when `lo ≥ 2`.
#[allow(clippy::too_many_arguments)]
pub fn bp_grads_layers<T: Real>(
    net: &Network<T>,
    x: &Mat<T>,
    y: &Mat<T>,
    z: &[Mat<T>],
    y_hat: &Mat<T>,
    s: &mut BpScratch<T>,
    grads: &mut [Mat<T>],
    lo: usize,
    hi: usize,
) {
    let (h, act) = (net.arch.hidden, net.arch.act);
    if hi == h + 1 {
        let scale = T::of(-2.0 / y.data.len().max(1) as f64);
        for ((g, &yv), &pv) in s.g_out.data.iter_mut().zip(&y.data).zip(&y_hat.data) {
            *g = scale * (yv - pv);
        }
        // Output layer: ∂W_L and δ_H.
        apply_phi(act, &z[h - 1], &mut s.phi);
        let a_out = net.a(h + 1);
        gemm(a_out, s.g_out.view().t(), s.phi.view(), T::zero(), &mut grads[h].data);
        back_step(net, h + 1, &s.g_out, &z[h - 1], &mut s.back, &mut s.delta);
    }
    // Residual blocks, top to bottom.
    for l in (lo.max(2)..=hi.min(h)).rev() {
        apply_phi(act, &z[l - 2], &mut s.phi);
        gemm(net.a(l), s.delta.view().t(), s.phi.view(), T::zero(), &mut grads[l - 1].data);
        back_step(net, l, &s.delta, &z[l - 2], &mut s.back, &mut s.below);
        std::mem::swap(&mut s.delta, &mut s.below);
    }
    if lo == 1 {
        gemm(net.a(1), s.delta.view().t(), x.view(), T::zero(), &mut grads[0].data);
    }
}

impl<T: Real> BpScratch<T> {
    /// `δ` where the backward pass stands (after [`bp_grads_layers`] of `lo … hi`: `δ_{lo−1}`).
    pub fn delta(&self) -> &Mat<T> {
        &self.delta
    }

    /// Starts the backward pass below a block from its `δ_hi` (`B × N` values).
    pub fn set_delta(&mut self, values: Vec<T>) {
        self.delta.data = values;
    }
}

/// One step of the backward pass through layer `l ≥ 2`: `δ_{l−1} = τ δ_l + a_l (δ_l W_l) ⊙ φ'(z_{l−1})`
/// into `out`, with no `τ` term out of the output layer (`l = L`, where `δ_l` is `g_ŷ`); `back` is
/// scratch. Twin of `pc.wgsl`'s `bp_back`.
pub fn back_step<T: Real>(
    net: &Network<T>,
    l: usize,
    delta: &Mat<T>,
    z_prev: &Mat<T>,
    back: &mut Mat<T>,
    out: &mut Mat<T>,
) {
    let act = net.arch.act;
    gemm(net.a(l), delta.view(), net.weights[l - 1].view(), T::zero(), &mut back.data);
    if l == net.arch.layers() {
        for ((d, &b), &zv) in out.data.iter_mut().zip(&back.data).zip(&z_prev.data) {
            *d = b * act.df(zv);
        }
    } else {
        let tau = T::of(net.arch.tau());
        for (((d, &up), &b), &zv) in out.data.iter_mut().zip(&delta.data).zip(&back.data).zip(&z_prev.data) {
            *d = tau * up + b * act.df(zv);
        }
    }
}
