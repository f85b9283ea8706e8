//! Facts docs/maths.md states about the energy and inference (docs/maths.md §4, §5), checked in f64.

use pclab::pcn::energy::{errors, Workspace};
use pclab::pcn::forward::forward;
use pclab::pcn::infer::infer;
use pclab::pcn::learn::weight_grads_into;
use pclab::pcn::learn::AdamConfig;
use pclab::pcn::network::seeded_rng;
use pclab::pcn::train::{Learning, Model};
use pclab::pcn::{Activation, Arch, Mat, Network, Param};
use rand_distr::{Distribution, StandardNormal};

fn batch(arch: &Arch, b: usize, seed: u64) -> (Mat<f64>, Mat<f64>) {
    let mut rng = seeded_rng(seed, 5);
    let mut draw = |n: usize| (0..n).map(|_| StandardNormal.sample(&mut rng)).collect::<Vec<f64>>();
    let x = Mat::from_vec(b, arch.input, draw(b * arch.input)).expect("shape");
    let mut y = Mat::zeros(b, arch.output);
    for r in 0..b {
        y.data[r * arch.output + r % arch.output] = 1.0;
    }
    (x, y)
}

fn archs() -> Vec<Arch> {
    let mut v = Vec::new();
    for act in [Activation::Linear, Activation::Tanh, Activation::Relu, Activation::Gelu] {
        for (param, skips) in [(Param::Sp, true), (Param::Sp, false), (Param::Mupc, true)] {
            v.push(Arch { input: 12, width: 8, hidden: 6, output: 4, act, skips, param });
        }
    }
    v
}

#[test]
fn energy_at_the_feedforward_point_is_half_the_mean_squared_output_error() {
    for (i, arch) in archs().into_iter().enumerate() {
        let net = Network::<f64>::init(arch, i as u64);
        let (x, y) = batch(&arch, 5, i as u64);
        let (z, y_hat) = forward(&net, &x);
        let (_, energies) = errors(&net, &x, &y, &z);
        let half_mse: f64 =
            0.5 * y.data.iter().zip(&y_hat.data).map(|(a, b)| (a - b) * (a - b)).sum::<f64>() / x.rows as f64;
        let f: f64 = energies.iter().sum();
        assert!((f - half_mse).abs() <= 1e-14 * half_mse.max(1.0), "{arch:?}: F {f} vs ½·mse {half_mse}");
        assert!(energies[..arch.hidden].iter().all(|&e| e == 0.0), "{arch:?}: hidden energies {energies:?}");
    }
}

#[test]
fn after_t_steps_exactly_the_top_t_plus_one_weight_matrices_have_gradients() {
    for (i, arch) in archs().into_iter().enumerate() {
        let net = Network::<f64>::init(arch, 10 + i as u64);
        let (x, y) = batch(&arch, 5, i as u64);
        for t in 0..=arch.hidden {
            let (mut z, _) = forward(&net, &x);
            let mut ws = Workspace::new(&net, x.rows);
            ws.set_input(&net, &x);
            // The full computation: no layer is skipped.
            infer(&net, &y, &mut z, &mut ws, 0.3, t, false, |_, _| {});
            let mut grads: Vec<Mat<f64>> = net.weights.iter().map(|w| Mat::zeros(w.rows, w.cols)).collect();
            weight_grads_into(&net, &x, &ws, &mut grads);
            let nonzero: Vec<bool> = grads.iter().map(|g| g.data.iter().any(|&v| v != 0.0)).collect();
            let expected: Vec<bool> = (1..=arch.layers()).map(|l| l + t > arch.hidden).collect();
            assert_eq!(nonzero, expected, "{arch:?} after {t} steps: which W_l have non-zero gradients");
        }
    }
}

#[test]
fn skipping_layers_the_wavefront_has_not_reached_changes_no_bit() {
    for (i, arch) in archs().into_iter().enumerate() {
        let net = Network::<f64>::init(arch, 20 + i as u64);
        let (x, y) = batch(&arch, 5, i as u64);
        for steps in [1, 3, arch.hidden, arch.hidden + 2] {
            let (mut z_full, _) = forward(&net, &x);
            let mut ws = Workspace::new(&net, x.rows);
            ws.set_input(&net, &x);
            let mut trace_full = Vec::new();
            infer(&net, &y, &mut z_full, &mut ws, 0.4, steps, false, |_, w| trace_full.push(w.layer_energies()));
            let mut g_full: Vec<Mat<f64>> = net.weights.iter().map(|w| Mat::zeros(w.rows, w.cols)).collect();
            weight_grads_into(&net, &x, &ws, &mut g_full);

            let mut model = Model::new(net.clone(), Learning::Pc { eta_z: 0.4, steps }, 0.01, AdamConfig::default());
            let report = model.train_step(&x, &y);
            assert_eq!(model.z, z_full, "{arch:?} T={steps}: final activities");
            assert_eq!(model.grads, g_full, "{arch:?} T={steps}: weight gradients");
            let trace_full: Vec<Vec<f64>> = trace_full;
            assert_eq!(report.energy_steps, trace_full, "{arch:?} T={steps}: energies per step");
        }
    }
}
