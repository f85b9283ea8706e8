//! The feedforward pass (docs/maths.md §2), row-major batches `(B, ·)`:
//!
//! ```text
//! z_1 = a_1 · x W_1ᵀ
//! z_l = τ · z_{l-1} + a_h · φ(z_{l-1}) W_lᵀ      l = 2 … H
//! ŷ   = a_L · φ(z_H) W_Lᵀ
//! ```

use super::linalg::{gemm, Mat, Real};
use super::network::Network;
use super::Activation;

/// `dst = φ(src)` elementwise (`dst` is resized to `src`'s shape).
pub fn apply_phi<T: Real>(act: Activation, src: &Mat<T>, dst: &mut Mat<T>) {
    dst.rows = src.rows;
    dst.cols = src.cols;
    dst.data.resize(src.data.len(), T::zero());
    act.map(&src.data, &mut dst.data);
}

/// `out = a_l · φ(z_prev) W_lᵀ`, with `φ(z_prev)` left in `phi` (`l ≥ 2`).
///
/// The forward pass and the errors both form a layer's prediction through this one call, on the
/// same inputs, so at the feedforward point every hidden error is exactly zero — which makes the
/// inference wavefront of [`super::infer`] exact rather than approximately so.
pub fn branch_into<T: Real>(net: &Network<T>, l: usize, z_prev: &Mat<T>, phi: &mut Mat<T>, out: &mut [T]) {
    apply_phi(net.arch.act, z_prev, phi);
    gemm(net.a(l), phi.view(), net.weights[l - 1].view().t(), T::zero(), out);
}

/// Allocates the activities `z_1 … z_H` and `ŷ` for a batch of `b` rows.
pub fn alloc_activities<T: Real>(net: &Network<T>, b: usize) -> (Vec<Mat<T>>, Mat<T>) {
    let z = (0..net.arch.hidden).map(|_| Mat::zeros(b, net.arch.width)).collect();
    (z, Mat::zeros(b, net.arch.output))
}

/// The feedforward pass into preallocated `z` (`H` matrices `(B, N)`) and `y_hat` `(B, O)`;
/// `phi` is scratch.
pub fn forward_into<T: Real>(net: &Network<T>, x: &Mat<T>, z: &mut [Mat<T>], y_hat: &mut Mat<T>, phi: &mut Mat<T>) {
    forward_layers(net, x, z, y_hat, phi, 1, net.arch.layers());
}

/// The feedforward pass of layers `lo … hi` only, from `z_{lo−1}` (or `x` when `lo = 1`): what one
/// block of a pool computes (`crate::pool`), operation for operation as [`forward_into`]. `ŷ` is
/// written when `hi = L`; only the activities of `lo − 1 … hi` are read or written.
pub fn forward_layers<T: Real>(
    net: &Network<T>,
    x: &Mat<T>,
    z: &mut [Mat<T>],
    y_hat: &mut Mat<T>,
    phi: &mut Mat<T>,
    lo: usize,
    hi: usize,
) {
    let h = net.arch.hidden;
    assert_eq!(z.len(), h, "forward: one activity matrix per hidden layer");
    let tau = T::of(net.arch.tau());
    for l in lo..=hi {
        if l == 1 {
            gemm(net.a(1), x.view(), net.weights[0].view().t(), T::zero(), &mut z[0].data);
        } else if l <= h {
            let (below, rest) = z.split_at_mut(l - 1);
            let (prev, cur) = (&below[l - 2], &mut rest[0]);
            branch_into(net, l, prev, phi, &mut cur.data);
            for (c, &p) in cur.data.iter_mut().zip(&prev.data) {
                *c = tau * p + *c;
            }
        } else {
            branch_into(net, h + 1, &z[h - 1], phi, &mut y_hat.data);
        }
    }
}

/// The feedforward pass, allocating: returns `(z_1 … z_H, ŷ)`.
pub fn forward<T: Real>(net: &Network<T>, x: &Mat<T>) -> (Vec<Mat<T>>, Mat<T>) {
    let (mut z, mut y_hat) = alloc_activities(net, x.rows);
    let mut phi = Mat::zeros(x.rows, net.arch.width);
    forward_into(net, x, &mut z, &mut y_hat, &mut phi);
    (z, y_hat)
}

/// `ŷ` only, for evaluation: rows are independent, so large batches are cut into chunks that run
/// in parallel.
pub fn predict<T: Real>(net: &Network<T>, x: &Mat<T>) -> Mat<T> {
    const CHUNK: usize = 250;
    let o = net.arch.output;
    let mut chunks: Vec<(usize, Mat<T>)> =
        (0..x.rows).step_by(CHUNK).map(|r0| (r0, Mat::zeros(CHUNK.min(x.rows - r0), o))).collect();
    super::for_each_layer(&mut chunks, |_, (r0, out)| {
        let rows = out.rows;
        let xs = Mat { rows, cols: x.cols, data: x.data[*r0 * x.cols..(*r0 + rows) * x.cols].to_vec() };
        let (mut z, _) = alloc_activities(net, rows);
        let mut phi = Mat::zeros(rows, net.arch.width);
        forward_into(net, &xs, &mut z, out, &mut phi);
    });
    let mut y_hat = Mat::zeros(x.rows, o);
    for (r0, out) in chunks {
        y_hat.data[r0 * o..r0 * o + out.data.len()].copy_from_slice(&out.data);
    }
    y_hat
}

/// Root-mean-square of each matrix's entries (the forward pass's scale per layer).
pub fn rms<T: Real>(z: &[Mat<T>]) -> Vec<f64> {
    z.iter().map(|m| (m.sum_sq().f64() / m.data.len().max(1) as f64).sqrt()).collect()
}
