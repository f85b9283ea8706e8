//! Central finite differences of the energy `F` (and of the BP loss `ℓ`) against the analytic
//! activity and weight gradients, in f64, for every activation, both parameterisations, skips on
//! and off. The point of evaluation is off the feedforward point so that every error is non-zero.

use pclab::pcn::bp::{bp_grads_into, bp_loss, BpScratch};
use pclab::pcn::energy::{errors, errors_into, Workspace};
use pclab::pcn::forward::forward;
use pclab::pcn::infer::activity_grads_into;
use pclab::pcn::learn::weight_grads_into;
use pclab::pcn::network::seeded_rng;
use pclab::pcn::{Activation, Arch, Mat, Network, Param};
use rand_distr::{Distribution, StandardNormal};

const H_STEP: f64 = 1e-6;

fn randn(rows: usize, cols: usize, rng: &mut impl rand::Rng, scale: f64) -> Mat<f64> {
    Mat::from_vec(
        rows,
        cols,
        (0..rows * cols)
            .map(|_| {
                let v: f64 = StandardNormal.sample(&mut *rng);
                scale * v
            })
            .collect::<Vec<f64>>(),
    )
    .expect("shape")
}

fn energy(net: &Network<f64>, x: &Mat<f64>, y: &Mat<f64>, z: &[Mat<f64>]) -> f64 {
    errors(net, x, y, z).1.iter().sum()
}

fn configs() -> Vec<Arch> {
    let mut v = Vec::new();
    for act in Activation::ALL {
        for param in [Param::Sp, Param::Mupc] {
            for skips in [true, false] {
                v.push(Arch { input: 5, width: 4, hidden: 3, output: 3, act, skips, param });
            }
        }
    }
    v
}

fn assert_close(what: &str, analytic: &[f64], numeric: &[f64]) {
    let scale = numeric.iter().fold(1e-8f64, |m, v| m.max(v.abs()));
    for (i, (a, n)) in analytic.iter().zip(numeric).enumerate() {
        assert!((a - n).abs() <= 1e-6 * scale, "{what}[{i}]: analytic {a:.10e} vs finite difference {n:.10e}");
    }
}

/// Every weight's central difference of `loss` against the analytic `grads`.
fn check_weight_grads(what: &str, net: &Network<f64>, grads: &[Mat<f64>], loss: impl Fn(&Network<f64>) -> f64) {
    for (l, g) in grads.iter().enumerate() {
        let numeric: Vec<f64> = (0..g.data.len())
            .map(|i| {
                let (mut np, mut nm) = (net.clone(), net.clone());
                np.weights[l].data[i] += H_STEP;
                nm.weights[l].data[i] -= H_STEP;
                (loss(&np) - loss(&nm)) / (2.0 * H_STEP)
            })
            .collect();
        assert_close(&format!("{what}_{}", l + 1), &g.data, &numeric);
    }
}

/// A network, a batch and activities perturbed away from the feedforward point.
fn setup(arch: Arch, seed: u64) -> (Network<f64>, Mat<f64>, Mat<f64>, Vec<Mat<f64>>) {
    let net = Network::<f64>::init(arch, seed);
    let mut rng = seeded_rng(seed, 99);
    let x = randn(3, arch.input, &mut rng, 1.0);
    let y = randn(3, arch.output, &mut rng, 1.0);
    let (mut z, _) = forward(&net, &x);
    for m in &mut z {
        let noise = randn(m.rows, m.cols, &mut rng, 0.3);
        m.data.iter_mut().zip(&noise.data).for_each(|(v, n)| *v += n);
    }
    (net, x, y, z)
}

#[test]
fn activity_gradients_match_finite_differences_of_the_energy() {
    for (c, arch) in configs().into_iter().enumerate() {
        let (net, x, y, z) = setup(arch, c as u64);
        let mut ws = Workspace::new(&net, x.rows);
        ws.set_input(&net, &x);
        errors_into(&net, &y, &z, &mut ws, true, 1);
        let mut g = z.clone();
        activity_grads_into(&net, &z, &ws, &mut g);
        for l in 0..arch.hidden {
            let numeric: Vec<f64> = (0..z[l].data.len())
                .map(|i| {
                    let (mut zp, mut zm) = (z.clone(), z.clone());
                    zp[l].data[i] += H_STEP;
                    zm[l].data[i] -= H_STEP;
                    (energy(&net, &x, &y, &zp) - energy(&net, &x, &y, &zm)) / (2.0 * H_STEP)
                })
                .collect();
            assert_close(&format!("{arch:?} ∂F/∂z_{}", l + 1), &g[l].data, &numeric);
        }
    }
}

#[test]
fn weight_gradients_match_finite_differences_of_the_energy() {
    for (c, arch) in configs().into_iter().enumerate() {
        let (net, x, y, z) = setup(arch, 100 + c as u64);
        let mut ws = Workspace::new(&net, x.rows);
        ws.set_input(&net, &x);
        errors_into(&net, &y, &z, &mut ws, false, 1);
        let mut grads: Vec<Mat<f64>> = net.weights.iter().map(|w| Mat::zeros(w.rows, w.cols)).collect();
        weight_grads_into(&net, &x, &ws, &mut grads);
        check_weight_grads(&format!("{arch:?} ∂F/∂W"), &net, &grads, |n| energy(n, &x, &y, &z));
    }
}

#[test]
fn backprop_gradients_match_finite_differences_of_the_loss() {
    for (c, arch) in configs().into_iter().enumerate() {
        let (net, x, y, _) = setup(arch, 200 + c as u64);
        let (z, y_hat) = forward(&net, &x);
        let mut grads: Vec<Mat<f64>> = net.weights.iter().map(|w| Mat::zeros(w.rows, w.cols)).collect();
        bp_grads_into(&net, &x, &y, &z, &y_hat, &mut BpScratch::new(&net, x.rows), &mut grads);
        let loss = |n: &Network<f64>| bp_loss(&y, &forward(n, &x).1);
        check_weight_grads(&format!("{arch:?} ∂ℓ/∂W"), &net, &grads, loss);
    }
}
