//! Prediction errors and the energy (docs/maths.md §4):
//!
//! ```text
//! e_1 = z_1 − a_1 x W_1ᵀ                          (a_1 x W_1ᵀ is cached: x is clamped)
//! e_l = z_l − τ z_{l-1} − a_h φ(z_{l-1}) W_lᵀ     l = 2 … H
//! e_L = y − a_L φ(z_H) W_Lᵀ
//! E_l = (1/B) Σ_samples ½‖e_l‖²,   F = Σ_l E_l
//! ```
//!
//! [`errors_into`] is one pass over all layers at once (in parallel): each layer's task forms
//! `φ(z_{l-1})`, its error and, while `W_l` is hot in cache, the back-projection `e_l W_l` that the
//! activity gradient of layer `l−1` needs (docs/maths.md §5).

use super::forward::branch_into;
use super::linalg::{gemm, Mat, Real};
use super::network::Network;

/// Per-layer buffers for layer `l` (index `l−1`).
#[derive(Clone, Debug)]
pub struct LayerBuf<T> {
    /// `e_l`, `(B, N)` (`(B, O)` for the output layer).
    pub e: Mat<T>,
    /// `φ(z_{l-1})`, `(B, N)`; unused for `l = 1`.
    pub phi_in: Mat<T>,
    /// `e_l W_l`, `(B, N)`: the top-down signal into layer `l−1`; unused for `l = 1`.
    pub back: Mat<T>,
    /// `E_l`.
    pub energy: T,
    /// True while `e` and `back` are known to be all zeros (so skipping the layer need not clear them).
    cleared: bool,
}

/// Scratch for one batch size: the cached input drive and every layer's buffers.
#[derive(Clone, Debug)]
pub struct Workspace<T> {
    /// `a_1 x W_1ᵀ`, `(B, N)`: constant during inference.
    pub drive: Mat<T>,
    /// Layers `1 … L`.
    pub layers: Vec<LayerBuf<T>>,
    batch: usize,
}

impl<T: Real> Workspace<T> {
    /// Buffers for a batch of `b` rows.
    pub fn new(net: &Network<T>, b: usize) -> Self {
        let a = &net.arch;
        let layers = (1..=a.layers())
            .map(|l| {
                let inner = if l == 1 { 0 } else { b };
                LayerBuf {
                    e: Mat::zeros(b, a.out_dim(l)),
                    phi_in: Mat::zeros(inner, a.width),
                    back: Mat::zeros(inner, a.width),
                    energy: T::zero(),
                    cleared: true,
                }
            })
            .collect();
        Workspace { drive: Mat::zeros(b, a.width), layers, batch: b }
    }

    /// Buffers for layers `lo … hi` only (the others empty): one block of a pool holds its own
    /// layers and, above them, its upper neighbour's first layer, whose errors it is sent.
    pub fn for_layers(net: &Network<T>, b: usize, lo: usize, hi: usize) -> Self {
        let mut ws = Workspace::new(net, 0);
        for (k, buf) in ws.layers.iter_mut().enumerate() {
            let l = k + 1;
            if (lo..=hi).contains(&l) {
                let inner = if l == 1 { 0 } else { b };
                buf.e = Mat::zeros(b, net.arch.out_dim(l));
                buf.phi_in = Mat::zeros(inner, net.arch.width);
                buf.back = Mat::zeros(inner, net.arch.width);
            }
        }
        ws.drive = Mat::zeros(if lo == 1 { b } else { 0 }, net.arch.width);
        ws.batch = b;
        ws
    }

    /// The batch size these buffers hold.
    pub fn batch(&self) -> usize {
        self.batch
    }

    /// Caches `a_1 x W_1ᵀ` for a new input batch.
    pub fn set_input(&mut self, net: &Network<T>, x: &Mat<T>) {
        gemm(net.a(1), x.view(), net.weights[0].view().t(), T::zero(), &mut self.drive.data);
    }

    /// `E_1 … E_L` from the last [`errors_into`].
    pub fn layer_energies(&self) -> Vec<T> {
        self.layers.iter().map(|l| l.energy).collect()
    }

    /// `F` from the last [`errors_into`].
    pub fn energy(&self) -> T {
        self.layers.iter().map(|l| l.energy).sum()
    }
}

/// Computes every error `e_l` and energy `E_l` at activities `z` (after
/// [`Workspace::set_input`]), and, when `with_back`, the back-projections `e_l W_l`. Returns `F`.
///
/// Layers below `from` are known to have zero error (see [`super::infer::first_active_layer`]):
/// their buffers are cleared instead of computed. `from = 1` computes every layer.
pub fn errors_into<T: Real>(
    net: &Network<T>,
    y: &Mat<T>,
    z: &[Mat<T>],
    ws: &mut Workspace<T>,
    with_back: bool,
    from: usize,
) -> T {
    errors_layers(net, y, z, ws, with_back, from, 1, net.arch.layers());
    debug_assert_eq!(ws.layers.len(), net.arch.hidden + 1);
    ws.energy()
}

/// [`errors_into`] for layers `lo … hi` only (one block of a pool, `crate::pool`): the other
/// layers' buffers are neither read nor written, so a neighbour's errors can sit in them.
#[allow(clippy::too_many_arguments)]
pub fn errors_layers<T: Real>(
    net: &Network<T>,
    y: &Mat<T>,
    z: &[Mat<T>],
    ws: &mut Workspace<T>,
    with_back: bool,
    from: usize,
    lo: usize,
    hi: usize,
) {
    let big_l = net.arch.layers();
    let tau = T::of(net.arch.tau());
    let half_over_b = T::of(0.5 / ws.batch() as f64);
    let drive = &ws.drive;
    super::for_each_layer(&mut ws.layers, |k, buf| {
        let l = k + 1;
        if l < lo || l > hi {
            return;
        }
        if l < from {
            if !buf.cleared {
                buf.e.data.fill(T::zero());
                buf.back.data.fill(T::zero());
                buf.cleared = true;
            }
            buf.energy = T::zero();
            return;
        }
        buf.cleared = false;
        if l == 1 {
            for ((e, &zv), &d) in buf.e.data.iter_mut().zip(&z[0].data).zip(&drive.data) {
                *e = zv - d;
            }
        } else {
            let prev = &z[l - 2];
            // The prediction first (exactly as the forward pass forms it), then the error.
            branch_into(net, l, prev, &mut buf.phi_in, &mut buf.e.data);
            if l == big_l {
                for (e, &yv) in buf.e.data.iter_mut().zip(&y.data) {
                    *e = yv - *e;
                }
            } else {
                for ((e, &zv), &pv) in buf.e.data.iter_mut().zip(&z[l - 1].data).zip(&prev.data) {
                    *e = zv - (tau * pv + *e);
                }
            }
            if with_back {
                gemm(T::one(), buf.e.view(), net.weights[l - 1].view(), T::zero(), &mut buf.back.data);
            }
        }
        buf.energy = buf.e.sum_sq() * half_over_b;
    });
}

/// Allocating convenience: `(e_1 … e_L, E_1 … E_L)` at activities `z`.
pub fn errors<T: Real>(net: &Network<T>, x: &Mat<T>, y: &Mat<T>, z: &[Mat<T>]) -> (Vec<Mat<T>>, Vec<T>) {
    let mut ws = Workspace::new(net, x.rows);
    ws.set_input(net, x);
    errors_into(net, y, z, &mut ws, false, 1);
    let energies = ws.layer_energies();
    (ws.layers.into_iter().map(|b| b.e).collect(), energies)
}
