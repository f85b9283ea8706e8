//! κ of the inference landscape (docs/maths.md §8) where the paper measures it: at initialisation, at the
//! feedforward activities of one training image, across depths (the sweep); and during training,
//! at the post-inference activities of the batch's first sample with the just-updated weights.
//! In float64 on the CPU here, by a [`Method`] (dense eigenvalues up to [`DENSE_UP_TO`] by
//! default, block bisection or Lanczos beyond); [`on_gpu`] runs Lanczos on the GPU in f32.

use crate::data::Mnist;
use crate::pcn::forward::forward;
use crate::pcn::hessian::{
    extremes, hvp, BlockBisection, BlockHessian, Extremes, HessianPoint, Lanczos, LanczosConfig, Method,
};
use crate::pcn::train::Model;
use crate::pcn::{Activation, Arch, Mat, Network, Param};
use std::fmt;
use std::str::FromStr;

/// Largest `N·H` whose Hessian is solved densely by default ([`Method::auto`]).
pub const DENSE_UP_TO: usize = 1024;

/// The three networks the paper compares.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Scheme {
    /// Standard PC with identity skips.
    Sp,
    /// Standard PC without skips.
    SpNoSkip,
    /// μPC (with skips).
    Mupc,
}

impl Scheme {
    /// Every scheme, in table order.
    pub const ALL: [Scheme; 3] = [Scheme::Sp, Scheme::SpNoSkip, Scheme::Mupc];

    /// `sp`, `sp_noskip`, `mupc`.
    pub fn name(self) -> &'static str {
        match self {
            Scheme::Sp => "sp",
            Scheme::SpNoSkip => "sp_noskip",
            Scheme::Mupc => "mupc",
        }
    }

    /// The MNIST architecture of this scheme.
    pub fn arch(self, width: usize, depth: usize, act: Activation) -> Arch {
        let (param, skips) = match self {
            Scheme::Sp => (Param::Sp, true),
            Scheme::SpNoSkip => (Param::Sp, false),
            Scheme::Mupc => (Param::Mupc, true),
        };
        Arch {
            input: crate::config::INPUT_DIM,
            width,
            hidden: depth,
            output: crate::config::OUTPUT_DIM,
            act,
            skips,
            param,
        }
    }
}

impl fmt::Display for Scheme {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

impl FromStr for Scheme {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Scheme::ALL
            .into_iter()
            .find(|p| p.name() == s.trim())
            .ok_or_else(|| format!("unknown parameterisation '{s}': expected sp, sp_noskip or mupc"))
    }
}

/// A copy in `f64`.
pub fn to_f64(m: &Mat<f32>) -> Mat<f64> {
    Mat { rows: m.rows, cols: m.cols, data: m.data.iter().map(|&v| v as f64).collect() }
}

/// A copy of an `f32` network in `f64`.
pub fn net_f64(net: &Network<f32>) -> Result<Network<f64>, String> {
    Network::from_weights(net.arch, net.scalings, net.weights.iter().map(to_f64).collect())
}

/// The extremes at `z` for sample `row` of `(x, y)`.
fn at(
    net: &Network<f64>,
    x: &Mat<f64>,
    y: &Mat<f64>,
    z: &[Mat<f64>],
    row: usize,
    cfg: LanczosConfig,
    method: Method,
) -> Result<Extremes, String> {
    let p = HessianPoint::new(net, x, y, z, row);
    extremes(net, &p, method, cfg)
}

/// κ at initialisation (weights from `seed`) at the feedforward activities of training image 0;
/// by `method`.
pub fn at_init(arch: Arch, seed: u64, data: &Mnist, cfg: LanczosConfig, method: Method) -> Result<Extremes, String> {
    let (x, y) = first_image(data);
    let (net, z) = at_feedforward(arch, seed, &x);
    at(&net, &x, &y, &z, 0, cfg, method)
}

/// Training image 0 and its target, in f64: where κ at initialisation is measured.
fn first_image(data: &Mnist) -> (Mat<f64>, Mat<f64>) {
    data.train.batch::<f64>(&[0])
}

/// The network drawn from `seed` and its feedforward activities on `x`.
fn at_feedforward(arch: Arch, seed: u64, x: &Mat<f64>) -> (Network<f64>, Vec<Mat<f64>>) {
    let net: Network<f64> = Network::init(arch, seed);
    let z = forward(&net, x).0;
    (net, z)
}

/// `f32` weights, a batch and activities (a model's, or a GPU run's download) in f64.
#[allow(clippy::type_complexity)]
fn widen(
    net: &Network<f32>,
    x: &Mat<f32>,
    y: &Mat<f32>,
    z: &[Mat<f32>],
) -> Result<(Network<f64>, Mat<f64>, Mat<f64>, Vec<Mat<f64>>), String> {
    Ok((net_f64(net)?, to_f64(x), to_f64(y), z.iter().map(to_f64).collect()))
}

/// κ of a PC model after its last [`Model::train_step`] on `(x, y)`: its post-inference
/// activities of the batch's first sample, with the just-updated weights.
pub fn of_model(
    model: &Model<f32>,
    x: &Mat<f32>,
    y: &Mat<f32>,
    cfg: LanczosConfig,
    method: Method,
) -> Result<Extremes, String> {
    let (net, x, y, z) = widen(&model.net, x, y, &model.z)?;
    at(&net, &x, &y, &z, 0, cfg, method)
}

/// κ at each of the first `samples` rows of `(x, y)` and activities `z`, entirely on the GPU:
/// the Hessian-vector products and Lanczos's vector operations in f32 ([`crate::gpu::GpuLanczos`]),
/// the per-sample problems side by side; only the small tridiagonal problems are solved on the
/// CPU. Native: it waits for the GPU.
#[cfg(not(target_arch = "wasm32"))]
pub fn on_gpu(
    ctx: std::sync::Arc<crate::gpu::GpuContext>,
    net: &Network<f32>,
    x: &Mat<f32>,
    y: &Mat<f32>,
    z: &[Mat<f32>],
    samples: usize,
    cfg: LanczosConfig,
) -> Result<Vec<Extremes>, String> {
    if samples == 0 || samples > x.rows {
        return Err(format!("samples must be 1 … {} (the rows of the batch), got {samples}", x.rows));
    }
    let zs: Vec<Mat<f32>> = z.iter().map(|m| m.range_rows(0, samples)).collect();
    let points: Vec<HessianPoint<f32>> = (0..samples).map(|s| HessianPoint::new(net, x, y, z, s)).collect();
    let run = async {
        let hvp = crate::gpu::GpuHvp::new(ctx, net, &zs, &points)?;
        crate::gpu::GpuLanczos::new(hvp, cfg)?.run().await
    };
    pollster::block_on(run).map_err(|e| e.to_string())
}

/// One κ computation that can be advanced a little at a time — for a page, which must not hold the
/// main thread: block bisection (exact to `cfg.tol`, one `O(N³)` block step at a time; also for
/// [`Method::Dense`]) or Lanczos (one iteration at a time, owning its network and point).
#[derive(Debug)]
pub struct KappaJob {
    solver: Solver,
}

#[derive(Debug)]
enum Solver {
    Lanczos {
        net: Network<f64>,
        point: HessianPoint<f64>,
        lanczos: Lanczos,
    },
    /// The blocks, a layer per step, before the bisection.
    Building {
        net: Network<f64>,
        point: HessianPoint<f64>,
        blocks: BlockHessian,
        tol: f64,
    },
    Blocks(BlockBisection),
}

/// Widest network [`KappaJob::stepwise`] gives to block bisection (a block step is `O(N³)`:
/// about 7 MFLOP at 128, a few milliseconds).
pub const JOB_BLOCKS_UP_TO_WIDTH: usize = 128;

impl KappaJob {
    /// The method whose steps stay short at width `N`: blocks up to [`JOB_BLOCKS_UP_TO_WIDTH`],
    /// else Lanczos.
    pub fn stepwise(width: usize) -> Method {
        if width <= JOB_BLOCKS_UP_TO_WIDTH {
            Method::Blocks
        } else {
            Method::Lanczos
        }
    }

    /// κ at `z` for sample `row` of `(x, y)`.
    pub fn new(
        net: Network<f64>,
        x: &Mat<f64>,
        y: &Mat<f64>,
        z: &[Mat<f64>],
        row: usize,
        cfg: LanczosConfig,
        method: Method,
    ) -> Result<Self, String> {
        let point = HessianPoint::new(&net, x, y, z, row);
        let solver = if method != Method::Lanczos {
            Solver::Building { net, point, blocks: BlockHessian::default(), tol: cfg.tol }
        } else {
            let lanczos = Lanczos::new(point.dim(), cfg)?;
            Solver::Lanczos { net, point, lanczos }
        };
        Ok(KappaJob { solver })
    }

    /// The method this job uses.
    pub fn method(&self) -> Method {
        match self.solver {
            Solver::Lanczos { .. } => Method::Lanczos,
            Solver::Building { .. } | Solver::Blocks(_) => Method::Blocks,
        }
    }

    /// κ at initialisation (weights from `seed`) at the feedforward activities of training image 0.
    pub fn at_init(arch: Arch, seed: u64, data: &Mnist, cfg: LanczosConfig, method: Method) -> Result<Self, String> {
        let (x, y) = first_image(data);
        Self::at_feedforward(arch, seed, &x, &y, cfg, method)
    }

    /// κ at initialisation (weights from `seed`) at the feedforward activities of the sample `(x, y)`.
    pub fn at_feedforward(
        arch: Arch,
        seed: u64,
        x: &Mat<f64>,
        y: &Mat<f64>,
        cfg: LanczosConfig,
        method: Method,
    ) -> Result<Self, String> {
        let (net, z) = at_feedforward(arch, seed, x);
        Self::new(net, x, y, &z, 0, cfg, method)
    }

    /// κ of `f32` weights and activities (a GPU run's download), sample `row` of `(x, y)`.
    pub fn of_f32(
        net: &Network<f32>,
        x: &Mat<f32>,
        y: &Mat<f32>,
        z: &[Mat<f32>],
        row: usize,
        cfg: LanczosConfig,
        method: Method,
    ) -> Result<Self, String> {
        let (net, x, y, z) = widen(net, x, y, z)?;
        Self::new(net, &x, &y, &z, row, cfg, method)
    }

    /// Lanczos iterations, or definiteness tests, so far.
    pub fn iterations(&self) -> usize {
        match &self.solver {
            Solver::Lanczos { lanczos, .. } => lanczos.iterations(),
            Solver::Building { .. } => 0,
            Solver::Blocks(b) => b.iterations(),
        }
    }

    /// The latest estimate (Lanczos: after the first iteration; bisection: at the end).
    pub fn estimate(&self) -> Option<&Extremes> {
        match &self.solver {
            Solver::Lanczos { lanczos, .. } => lanczos.estimate.as_ref(),
            Solver::Building { .. } => None,
            Solver::Blocks(b) => b.estimate.as_ref(),
        }
    }

    /// Runs steps (Lanczos iterations, or block-Cholesky steps) while `more()` says so; the
    /// result when finished.
    pub fn advance(&mut self, mut more: impl FnMut() -> bool) -> Option<Extremes> {
        loop {
            let done = match &mut self.solver {
                Solver::Lanczos { net, point, lanczos } => {
                    lanczos.step(|v, out| out.copy_from_slice(&hvp(net, point, v)))
                }
                Solver::Building { net, point, blocks, tol } => {
                    if !blocks.add_layer(net, point) {
                        let b = BlockBisection::new(std::mem::take(blocks), *tol);
                        self.solver = Solver::Blocks(b);
                    }
                    None
                }
                Solver::Blocks(b) => b.step(),
            };
            if done.is_some() || !more() {
                return done;
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_job_advanced_in_slices_ends_where_one_run_ends() {
        // Block bisection (narrow) and Lanczos (wider than JOB_BLOCKS_UP_TO_WIDTH).
        for (width, depth, method) in [(6, 4, Method::Blocks), (JOB_BLOCKS_UP_TO_WIDTH + 3, 2, Method::Lanczos)] {
            let arch = Scheme::Mupc.arch(width, depth, Activation::Tanh);
            let net: Network<f64> = Network::init(Arch { input: 5, ..arch }, 2);
            let x = Mat::from_vec(1, 5, vec![0.3, -0.2, 0.5, 0.1, -0.4]).expect("x");
            let mut y = Mat::zeros(1, 10);
            y.data[3] = 1.0;
            let z = forward(&net, &x).0;
            let cfg = LanczosConfig { tol: 1e-9, ..Default::default() };
            let whole = at(&net, &x, &y, &z, 0, cfg, Method::Dense).expect("dense");
            let mut job = KappaJob::new(net, &x, &y, &z, 0, cfg, KappaJob::stepwise(width)).expect("job");
            assert_eq!(job.method(), method);
            let mut slices = 0;
            let got = loop {
                slices += 1;
                let mut budget = 3;
                if let Some(e) = job.advance(|| {
                    budget -= 1;
                    budget > 0
                }) {
                    break e;
                }
            };
            assert!(slices > 2, "the job ran in slices");
            assert!((got.kappa - whole.kappa).abs() <= 1e-6 * whole.kappa, "{method:?}: {got:?} vs {whole:?}");
        }
        assert!("sp_noskip".parse::<Scheme>() == Ok(Scheme::SpNoSkip) && "x".parse::<Scheme>().is_err());
    }
}
