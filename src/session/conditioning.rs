//! κ of the inference landscape (spec §8) where the paper measures it: at initialisation, at the
//! feedforward activities of one training image, across depths (the sweep); and during training,
//! at the post-inference activities of the batch's first sample with the just-updated weights.
//! Always in float64 on the CPU here: dense eigenvalues up to [`DENSE_UP_TO`], Lanczos beyond.

use crate::data::Mnist;
use crate::pcn::forward::forward;
use crate::pcn::hessian::{extremes, Extremes, HessianPoint, LanczosConfig};
use crate::pcn::train::Model;
use crate::pcn::{Activation, Arch, Mat, Network, Param};
use std::fmt;
use std::str::FromStr;

/// Largest `N·H` whose Hessian is solved densely; larger ones use Lanczos.
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

fn to_f64(m: &Mat<f32>) -> Mat<f64> {
    Mat { rows: m.rows, cols: m.cols, data: m.data.iter().map(|&v| v as f64).collect() }
}

/// The extremes at `z` for sample `row` of `(x, y)`.
fn at(
    net: &Network<f64>,
    x: &Mat<f64>,
    y: &Mat<f64>,
    z: &[Mat<f64>],
    row: usize,
    cfg: LanczosConfig,
) -> Result<Extremes, String> {
    let p = HessianPoint::new(net, x, y, z, row);
    extremes(net, &p, DENSE_UP_TO, cfg)
}

/// κ at initialisation (weights from `seed`) at the feedforward activities of training image 0.
pub fn at_init(arch: Arch, seed: u64, data: &Mnist, cfg: LanczosConfig) -> Result<Extremes, String> {
    let net: Network<f64> = Network::init(arch, seed);
    let (x, y) = data.train.batch::<f64>(&[0]);
    let z = forward(&net, &x).0;
    at(&net, &x, &y, &z, 0, cfg)
}

/// κ of a PC model after its last [`Model::train_step`] on `(x, y)`: its post-inference
/// activities of the batch's first sample, with the just-updated weights.
pub fn of_model(model: &Model<f32>, x: &Mat<f32>, y: &Mat<f32>, cfg: LanczosConfig) -> Result<Extremes, String> {
    let net =
        Network::from_weights(model.net.arch, model.net.scalings, model.net.weights.iter().map(to_f64).collect())?;
    let z: Vec<Mat<f64>> = model.z.iter().map(to_f64).collect();
    at(&net, &to_f64(x), &to_f64(y), &z, 0, cfg)
}
