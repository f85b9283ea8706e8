//! Backpropagation baselines (spec §6): the same network, forward pass and init as the matching
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
    let (h, act, tau) = (net.arch.hidden, net.arch.act, T::of(net.arch.tau()));
    let scale = T::of(-2.0 / y.data.len().max(1) as f64);
    for ((g, &yv), &pv) in s.g_out.data.iter_mut().zip(&y.data).zip(&y_hat.data) {
        *g = scale * (yv - pv);
    }
    // Output layer: ∂W_L and δ_H.
    apply_phi(act, &z[h - 1], &mut s.phi);
    let a_out = net.a(h + 1);
    gemm(a_out, s.g_out.view().t(), s.phi.view(), T::zero(), &mut grads[h].data);
    gemm(a_out, s.g_out.view(), net.weights[h].view(), T::zero(), &mut s.back.data);
    for ((d, &b), &zv) in s.delta.data.iter_mut().zip(&s.back.data).zip(&z[h - 1].data) {
        *d = b * act.df(zv);
    }
    // Residual blocks, top to bottom.
    for l in (2..=h).rev() {
        let a = net.a(l);
        apply_phi(act, &z[l - 2], &mut s.phi);
        gemm(a, s.delta.view().t(), s.phi.view(), T::zero(), &mut grads[l - 1].data);
        gemm(a, s.delta.view(), net.weights[l - 1].view(), T::zero(), &mut s.back.data);
        for ((d, &b), &zv) in s.delta.data.iter_mut().zip(&s.back.data).zip(&z[l - 2].data) {
            *d = tau * *d + b * act.df(zv);
        }
    }
    gemm(net.a(1), s.delta.view().t(), x.view(), T::zero(), &mut grads[0].data);
}
