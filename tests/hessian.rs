//! The inference landscape's Hessian (docs/maths.md §8): Hessian-vector products, dense eigenvalues and
//! Lanczos extremes against jpc's float64 fixtures; Lanczos against dense eigenvalues on random
//! networks of every activation; the linear-network sanity table of κ against depth.

mod common;

use common::{f, floats, gpu, json_files, load, mat, mats, network, shared_reference};
use pclab::pcn::hessian::{
    dense_hessian, eigenvalues, extremes, hvp, kappa, BlockHessian, HessianPoint, LanczosConfig, Method,
};
use pclab::pcn::infer::infer;
use pclab::pcn::{Activation, Arch, Mat, Network, Param};
use serde_json::Value;
use std::path::PathBuf;

fn fixtures() -> Vec<PathBuf> {
    let mut files = json_files(&shared_reference("hessian"));
    if let Ok(dir) = std::env::var("PCLAB_REFERENCE_DIR") {
        files.extend(json_files(std::path::Path::new(&dir)).into_iter().filter(|p| load(p)["kind"] == "hessian"));
    }
    assert!(!files.is_empty(), "no Hessian fixtures");
    files
}

/// The largest entrywise error relative to the reference's largest magnitude; NaN when a value is
/// non-finite where the reference is finite (the checker of `common`).
fn rel_err(got: &[f64], want: &[f64]) -> f64 {
    let scale = want.iter().fold(1e-300f64, |m, v| m.max(v.abs()));
    common::entry_error(got, want, scale).0
}

fn point(fx: &Value) -> (Network<f64>, HessianPoint<f64>) {
    let net: Network<f64> = network(fx, "weights");
    let (x, y): (Mat<f64>, Mat<f64>) = (mat(&fx["x"]), mat(&fx["y"]));
    let z: Vec<Mat<f64>> = mats(&fx["activities"]);
    let p = HessianPoint::new(&net, &x, &y, &z, 0);
    (net, p)
}

#[test]
fn every_fixture_matches_on_the_cpu() {
    for path in fixtures() {
        let fx = load(&path);
        let name = fx["name"].as_str().unwrap_or("?").to_string();
        let (net, p) = point(&fx);
        let hv = hvp(&net, &p, &floats(&fx["probe"]));
        let e_hvp = rel_err(&hv, &floats(&fx["hessian_times_probe"]));
        let want_eig = floats(&fx["eigenvalues"]);
        let eig = eigenvalues(&dense_hessian(&net, &p), p.dim()).expect("dense eigenvalues");
        let e_eig = rel_err(&eig, &want_eig);
        // Lanczos only (no dense shortcut), run to convergence.
        let cfg = LanczosConfig { tol: 1e-10, ..LanczosConfig::default() };
        let lz = extremes(&net, &p, Method::Lanczos, cfg).expect("Lanczos");
        let (lo, hi, k) = (f(&fx["lambda_min"]), f(&fx["lambda_max"]), f(&fx["kappa"]));
        let e_lz = [(lz.lambda_min - lo) / lo.abs(), (lz.lambda_max - hi) / hi.abs(), (lz.kappa - k) / k]
            .iter()
            .map(|v| v.abs())
            .fold(0.0, |m, v| common::nan_max([m, v]));
        // Bisection with block-Cholesky tests.
        let blk = extremes(&net, &p, Method::Blocks, LanczosConfig { tol: 1e-12, ..LanczosConfig::default() })
            .expect("blocks");
        let e_blk = [(blk.lambda_min - lo) / lo.abs(), (blk.lambda_max - hi) / hi.abs(), (blk.kappa - k) / k]
            .iter()
            .map(|v| v.abs())
            .fold(0.0, |m, v| common::nan_max([m, v]));
        let worst = common::nan_max([e_hvp, e_eig, e_lz, e_blk]);
        println!(
            "fixture {name} cpu ok kappa={:.6e} max_rel_err={worst:.1e} (hvp {e_hvp:.1e}, eigenvalues {e_eig:.1e}, Lanczos {e_lz:.1e} in {} iterations, blocks {e_blk:.1e})",
            lz.kappa, lz.iterations
        );
        assert!(e_blk <= 1e-9, "{name}: block bisection off by {e_blk:e}: {blk:?}");
        assert!(e_hvp <= 1e-10, "{name}: Hessian-vector product off by {e_hvp:e}");
        assert!(e_eig <= 1e-9, "{name}: dense eigenvalues off by {e_eig:e}");
        assert!(e_lz <= 1e-6, "{name}: Lanczos extremes off by {e_lz:e}: {lz:?} vs {lo} {hi} {k}");
        assert!((kappa(eig[0], eig[eig.len() - 1]) - k).abs() <= 1e-8 * k, "{name}: dense κ");
    }
}

type Point = (Network<f64>, HessianPoint<f64>, Mat<f64>, Mat<f64>, Vec<Mat<f64>>);

fn random_point(act: Activation, param: Param, seed: u64, relax: usize) -> Point {
    let arch = Arch { input: 12, width: 7, hidden: 5, output: 3, act, skips: true, param };
    let net: Network<f64> = Network::init(arch, seed);
    let x = Mat::from_vec(1, 12, (0..12).map(|i| ((i as f64) * 0.7 + seed as f64).sin()).collect()).expect("x");
    let y = Mat::from_vec(1, 3, vec![1.0, 0.0, 0.0]).expect("y");
    let mut z = pclab::pcn::forward::forward(&net, &x).0;
    // Away from the feedforward point the errors are non-zero, so φ'' matters (tanh, gelu, silu).
    let mut ws = pclab::pcn::energy::Workspace::new(&net, 1);
    ws.set_input(&net, &x);
    infer(&net, &y, &mut z, &mut ws, 0.2, relax, false, |_, _| {});
    let p = HessianPoint::new(&net, &x, &y, &z, 0);
    (net, p, x, y, z)
}

/// `∂F/∂z` stacked, at activities `z`.
fn gradient(net: &Network<f64>, x: &Mat<f64>, y: &Mat<f64>, z: &[Mat<f64>]) -> Vec<f64> {
    use pclab::pcn::energy::{errors_into, Workspace};
    let mut ws = Workspace::new(net, 1);
    ws.set_input(net, x);
    errors_into(net, y, z, &mut ws, true, 1);
    let mut g: Vec<Mat<f64>> = z.iter().map(|m| Mat::zeros(m.rows, m.cols)).collect();
    pclab::pcn::infer::activity_grads_into(net, z, &ws, &mut g);
    g.into_iter().flat_map(|m| m.data).collect()
}

#[test]
fn the_hessian_is_symmetric_and_matches_central_differences_of_the_gradient() {
    for act in Activation::ALL {
        let (net, p, x, y, z) = random_point(act, Param::Mupc, 3, 4);
        let d = p.dim();
        let m = dense_hessian(&net, &p);
        let scale = m.iter().fold(0.0f64, |a, v| a.max(v.abs()));
        for i in 0..d {
            for j in 0..i {
                assert!((m[i * d + j] - m[j * d + i]).abs() <= 1e-12 * scale, "{act:?}: not symmetric at {i},{j}");
            }
        }
        let n = net.arch.width;
        let eps = 1e-5;
        for j in 0..d {
            let shifted = |s: f64| {
                let mut zz = z.clone();
                zz[j / n].data[j % n] += s * eps;
                gradient(&net, &x, &y, &zz)
            };
            let (gp, gm) = (shifted(1.0), shifted(-1.0));
            for i in 0..d {
                let fd = (gp[i] - gm[i]) / (2.0 * eps);
                let err = (fd - m[i * d + j]).abs() / scale;
                // ReLU and leaky ReLU have kinks: a shift may cross one; none sit within 1e-5 here.
                assert!(
                    err <= 1e-6,
                    "{act:?}: H[{i},{j}] = {} but the gradient's central difference is {fd}",
                    m[i * d + j]
                );
            }
        }
    }
}

#[test]
fn lanczos_agrees_with_dense_eigenvalues_on_random_networks_of_every_activation() {
    for act in Activation::ALL {
        for (param, seed) in [(Param::Mupc, 1), (Param::Sp, 2)] {
            let (net, p, ..) = random_point(act, param, seed, 6);
            let eig = eigenvalues(&dense_hessian(&net, &p), p.dim()).expect("dense");
            let lz = extremes(&net, &p, Method::Lanczos, LanczosConfig { tol: 1e-8, ..Default::default() })
                .expect("Lanczos");
            let (lo, hi) = (eig[0], eig[eig.len() - 1]);
            // Stated tolerance: 1e-6 relative on each extreme once the residuals are below 1e-8·|θ|.
            assert!(lz.converged, "{act:?} {param:?}: {lz:?}");
            assert!(
                (lz.lambda_min - lo).abs() <= 1e-6 * lo.abs().max(1e-12),
                "{act:?} {param:?}: λ_min {} vs {lo}",
                lz.lambda_min
            );
            assert!(
                (lz.lambda_max - hi).abs() <= 1e-6 * hi.abs(),
                "{act:?} {param:?}: λ_max {} vs {hi}",
                lz.lambda_max
            );
            assert!(lz.residual_min <= 1e-8 * lo.abs().max(1e-12) && lz.residual_max <= 1e-8 * hi.abs());
        }
    }
}

#[test]
fn the_block_hessian_is_the_dense_one_and_its_bisection_finds_the_dense_extremes() {
    for act in Activation::ALL {
        for (param, seed, relax) in [(Param::Mupc, 1, 6), (Param::Sp, 2, 0), (Param::Sp, 4, 9)] {
            let (net, p, ..) = random_point(act, param, seed, relax);
            let dense = dense_hessian(&net, &p);
            let blocks = BlockHessian::new(&net, &p);
            assert_eq!(blocks.dim(), p.dim());
            let scale = dense.iter().fold(0.0f64, |m, v| m.max(v.abs()));
            let diff = common::nan_max(blocks.to_dense().iter().zip(&dense).map(|(a, b)| (a - b).abs()));
            assert!(diff <= 1e-13 * scale, "{act:?} {param:?}: block matrix differs by {diff:e}");
            let eig = eigenvalues(&dense, p.dim()).expect("dense");
            let (lo, hi) = (eig[0], eig[eig.len() - 1]);
            let got = blocks.clone().extremes(1e-11);
            assert!(got.converged, "{act:?} {param:?}: {got:?}");
            let (e_lo, e_hi) = ((got.lambda_min - lo).abs() / lo.abs(), (got.lambda_max - hi).abs() / hi.abs());
            assert!(e_lo <= 1e-9 && e_hi <= 1e-9, "{act:?} {param:?}: {got:?} vs [{lo}, {hi}]");
            // The definiteness test itself, either side of each extreme.
            assert!(blocks.definite(1.0, lo - 1e-6 * lo.abs()) && !blocks.definite(1.0, lo + 1e-6 * lo.abs()));
            assert!(blocks.definite(-1.0, -hi - 1e-6 * hi) && !blocks.definite(-1.0, -hi + 1e-6 * hi));
        }
    }
}

/// κ at initialisation of the linear network 784 → N … → 10 (the Hessian does not depend on
/// the input there), for standard PC without and with skips and for μPC.
fn linear_kappa(width: usize, depth: usize, param: Param, skips: bool, seed: u64) -> f64 {
    let arch = Arch { input: 784, width, hidden: depth, output: 10, act: Activation::Linear, skips, param };
    let net: Network<f64> = Network::init(arch, seed);
    let x = Mat::from_vec(1, 784, vec![0.0; 784]).expect("x");
    let y = Mat::from_vec(1, 10, vec![0.0; 10]).expect("y");
    let z = pclab::pcn::forward::forward(&net, &x).0;
    let p = HessianPoint::new(&net, &x, &y, &z, 0);
    extremes(&net, &p, Method::Dense, LanczosConfig::default()).expect("dense").kappa
}

#[test]
fn the_linear_sanity_table_of_spec_8_holds_at_width_16() {
    // (H, standard PC no skips, standard PC skips, μPC skips) from docs/maths.md §8.
    let table = [(8, 24.0, 6.2e2, 3.0e2), (16, 32.0, 4.2e3, 1.1e3), (32, 37.0, 2.1e4, 4.4e3), (64, 42.0, 2.2e5, 1.7e4)];
    println!("N = 16, median of seeds 0, 1, 2 (docs/maths.md §8's value in brackets)");
    for (h, no_skip, sp, mupc) in table {
        let median = |param, skips| {
            let mut k: Vec<f64> = (0..3).map(|s| linear_kappa(16, h, param, skips, s)).collect();
            k.sort_by(f64::total_cmp);
            k[1]
        };
        let got = [median(Param::Sp, false), median(Param::Sp, true), median(Param::Mupc, true)];
        println!(
            "H={h:3}  sp_noskip {:9.3e} ({no_skip:.1e})  sp {:9.3e} ({sp:.1e})  mupc {:9.3e} ({mupc:.1e})",
            got[0], got[1], got[2]
        );
        for (g, w, what) in [(got[0], no_skip, "sp_noskip"), (got[1], sp, "sp"), (got[2], mupc, "mupc")] {
            assert!(g / w <= 2.0 && w / g <= 2.0, "H={h} {what}: κ {g:e}, docs/maths.md §8 says {w:e}");
        }
        assert!(got[1] > got[2] && got[2] > got[0], "H={h}: ordering sp > mupc > sp_noskip broken: {got:?}");
    }
}

fn to_f32(m: &Mat<f64>) -> Mat<f32> {
    Mat { rows: m.rows, cols: m.cols, data: m.data.iter().map(|&v| v as f32).collect() }
}

fn net_f32(net: &Network<f64>) -> Network<f32> {
    Network::from_weights(net.arch, net.scalings, net.weights.iter().map(to_f32).collect()).expect("weights")
}

/// The f32 point of one sample (row 0 of single-row `z`).
fn point_f32(net: &Network<f32>, x: &Mat<f64>, y: &Mat<f64>, z: &[Mat<f64>]) -> (Vec<Mat<f32>>, HessianPoint<f32>) {
    let z32: Vec<Mat<f32>> = z.iter().map(to_f32).collect();
    let p = HessianPoint::new(net, &to_f32(x), &to_f32(y), &z32, 0);
    (z32, p)
}

/// Activities relaxed by `steps` inference steps at rate `eta` (so the errors and the φ'' term are
/// not zero), and the GPU product at every sample of the batch.
fn relaxed_on_gpu(
    ctx: &std::sync::Arc<pclab::gpu::GpuContext>,
    net64: &Network<f64>,
    net: &Network<f32>,
    x: &Mat<f64>,
    y: &Mat<f64>,
    eta: f64,
    steps: usize,
) -> (Vec<Mat<f64>>, pclab::gpu::GpuHvp) {
    let mut z = pclab::pcn::forward::forward(net64, x).0;
    let mut ws = pclab::pcn::energy::Workspace::new(net64, x.rows);
    ws.set_input(net64, x);
    infer(net64, y, &mut z, &mut ws, eta, steps, false, |_, _| {});
    let z32: Vec<Mat<f32>> = z.iter().map(to_f32).collect();
    let (x32, y32) = (to_f32(x), to_f32(y));
    let points: Vec<HessianPoint<f32>> = (0..x.rows).map(|s| HessianPoint::new(net, &x32, &y32, &z32, s)).collect();
    let gpu = pclab::gpu::GpuHvp::new(ctx.clone(), net, &z32, &points).expect("GPU Hessian");
    (z, gpu)
}

#[test]
fn every_fixture_matches_on_the_gpu() {
    let Some(ctx) = gpu() else { return };
    for path in fixtures() {
        let fx = load(&path);
        let name = fx["name"].as_str().unwrap_or("?").to_string();
        let net64: Network<f64> = network(&fx, "weights");
        let net = net_f32(&net64);
        let (x, y): (Mat<f64>, Mat<f64>) = (mat(&fx["x"]), mat(&fx["y"]));
        let (z, p) = point_f32(&net, &x, &y, &mats(&fx["activities"]));
        let hvp = pclab::gpu::GpuHvp::new(ctx.clone(), &net, &z, &[p]).expect("GPU Hessian");
        let probe: Vec<f32> = floats(&fx["probe"]).iter().map(|&v| v as f32).collect();
        let hv: Vec<f64> = pollster::block_on(hvp.apply(&probe)).expect("product").iter().map(|&v| v as f64).collect();
        let e_hvp = rel_err(&hv, &floats(&fx["hessian_times_probe"]));
        // Lanczos entirely on the GPU (f32 vector operations; the tridiagonal on the CPU).
        let cfg = LanczosConfig { tol: 1e-5, ..LanczosConfig::default() };
        let mut run = pclab::gpu::GpuLanczos::new(hvp, cfg).expect("GPU Lanczos");
        let lz = pollster::block_on(run.run()).expect("Lanczos").remove(0);
        let (lo, hi, k) = (f(&fx["lambda_min"]), f(&fx["lambda_max"]), f(&fx["kappa"]));
        let e_lz = [(lz.lambda_min - lo) / lo.abs(), (lz.lambda_max - hi) / hi.abs(), (lz.kappa - k) / k]
            .iter()
            .map(|v| v.abs())
            .fold(0.0, |m, v| common::nan_max([m, v]));
        let worst = common::nan_max([e_hvp, e_lz]);
        println!(
            "fixture {name} gpu ok kappa={:.6e} max_rel_err={worst:.1e} (hvp {e_hvp:.1e}, Lanczos {e_lz:.1e} in {} iterations)",
            lz.kappa, lz.iterations
        );
        assert!(e_hvp <= 1e-5, "{name}: GPU Hessian-vector product off by {e_hvp:e}");
        assert!(e_lz <= 1e-4, "{name}: GPU Lanczos extremes off by {e_lz:e}: {lz:?}");
    }
}

#[test]
fn gpu_lanczos_runs_per_sample_problems_side_by_side_and_agrees_with_dense_eigenvalues() {
    let Some(ctx) = gpu() else { return };
    let cases = [
        (Activation::Tanh, Param::Mupc, true, 7, 5, 3),
        (Activation::Relu, Param::Sp, true, 9, 4, 5),
        (Activation::Gelu, Param::Mupc, true, 16, 6, 2),
        (Activation::Silu, Param::Sp, false, 5, 3, 4),
        (Activation::Linear, Param::Mupc, true, 33, 2, 1),
    ];
    for (act, param, skips, width, hidden, batch) in cases {
        let arch = Arch { input: 11, width, hidden, output: 4, act, skips, param };
        let net64: Network<f64> = Network::init(arch, 8);
        let net = net_f32(&net64);
        let x = Mat::from_vec(batch, 11, (0..batch * 11).map(|i| ((i as f64) * 0.53).cos()).collect()).expect("x");
        let mut y = Mat::zeros(batch, 4);
        (0..batch).for_each(|s| y.data[s * 4 + (s + 1) % 4] = 1.0);
        let (z, hvp) = relaxed_on_gpu(&ctx, &net64, &net, &x, &y, 0.2, 2);
        let cfg = LanczosConfig { tol: 1e-5, seed: 3, ..LanczosConfig::default() };
        let mut run = pclab::gpu::GpuLanczos::new(hvp, cfg).expect("GPU Lanczos");
        let got = pollster::block_on(run.run()).expect("Lanczos");
        assert_eq!(got.len(), batch);
        for (s, e) in got.iter().enumerate() {
            // Each sample's own problem, dense in f64 on the CPU.
            let p64 = HessianPoint::new(&net64, &x, &y, &z, s);
            let want = pclab::pcn::hessian::Extremes::of_spectrum(
                &eigenvalues(&dense_hessian(&net64, &p64), p64.dim()).expect("eigenvalues"),
            );
            let scale = want.lambda_max.abs().max(want.lambda_min.abs());
            let err = common::nan_max([
                (e.lambda_min - want.lambda_min).abs() / scale,
                (e.lambda_max - want.lambda_max).abs() / scale,
            ]);
            println!(
                "{act:?} N={width} H={hidden} B={batch} sample {s}: λ_min {:.6e} ({:.6e}), λ_max {:.6e} ({:.6e}), {} iterations, error {err:.1e}",
                e.lambda_min, want.lambda_min, e.lambda_max, want.lambda_max, e.iterations
            );
            assert!(e.iterations <= p64.dim(), "more iterations than the dimension");
            assert!(err <= 1e-5, "{act:?} N={width} H={hidden} B={batch} sample {s}: {e:?} against {want:?}");
            let k_err = (e.kappa - want.kappa).abs() / want.kappa;
            assert!(k_err <= 1e-3, "sample {s}: κ {} against {}", e.kappa, want.kappa);
        }
    }
}

#[test]
fn the_gpu_product_equals_the_cpu_one_on_odd_sizes_deep_stacks_and_batches() {
    let Some(ctx) = gpu() else { return };
    let cases = [
        (Activation::Tanh, Param::Mupc, true, 7, 5, 3),
        (Activation::Relu, Param::Sp, true, 33, 1, 1),
        (Activation::Gelu, Param::Mupc, true, 16, 64, 2),
        (Activation::Silu, Param::Sp, false, 5, 3, 37),
        (Activation::LeakyRelu, Param::Mupc, true, 40, 9, 5),
    ];
    for (act, param, skips, width, hidden, batch) in cases {
        let arch = Arch { input: 11, width, hidden, output: 4, act, skips, param };
        let net64: Network<f64> = Network::init(arch, 5);
        let net = net_f32(&net64);
        let x = Mat::from_vec(batch, 11, (0..batch * 11).map(|i| ((i as f64) * 0.37).sin()).collect()).expect("x");
        let mut y = Mat::zeros(batch, 4);
        (0..batch).for_each(|s| y.data[s * 4 + s % 4] = 1.0);
        let (z, gpu) = relaxed_on_gpu(&ctx, &net64, &net, &x, &y, 0.3, 3);
        let (n, d) = (width, width * hidden);
        let v: Vec<f32> = (0..gpu.len()).map(|i| ((i as f32) * 0.61).cos()).collect();
        let got = pollster::block_on(gpu.apply(&v)).expect("product");
        for s in 0..batch {
            // Sample s's slice of the stacked (H, B, N) layout, and the CPU's product in f64.
            let pick = |all: &[f32]| -> Vec<f64> {
                (0..hidden)
                    .flat_map(|l| all[(l * batch + s) * n..(l * batch + s + 1) * n].iter().map(|&x| x as f64))
                    .collect()
            };
            let p64 = HessianPoint::new(&net64, &x, &y, &z, s);
            let want = hvp(&net64, &p64, &pick(&v));
            let err = rel_err(&pick(&got), &want);
            assert_eq!(want.len(), d);
            assert!(err <= 2e-5, "{act:?} N={width} H={hidden} B={batch} sample {s}: relative error {err:e}");
        }
    }
}
