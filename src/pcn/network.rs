//! Shapes, parameterisations, scalings and seeded initialisation (docs/maths.md §1–§3).
//!
//! Weights are `W_1 (N, D)`, `W_l (N, N)` for `2 ≤ l ≤ H`, `W_L (O, N)`, stored `(out, in)` row-major,
//! no biases. A parameterisation fixes the branch scalings `a_1, a_h, a_L` and the init:
//!
//! | `Param` | `a_1` | `a_h` | `a_L` | init |
//! |---|---|---|---|---|
//! | `Sp` (standard) | 1 | 1 | 1 | `U(−1/√fan_in, +1/√fan_in)` |
//! | `Mupc` (μPC / Depth-μP) | `1/√D` | `1/√(N·L)` (`1/√N` without skips) | `1/N` | `N(0, 1)` |

use super::activation::Activation;
use super::linalg::{Mat, Real};
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use rand_distr::{Distribution, StandardNormal, Uniform};
use serde::{Deserialize, Serialize};

/// A parameterisation: the scalings and the initialisation of every weight matrix.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Param {
    /// Standard parameterisation: unit scalings, uniform fan-in init.
    Sp,
    /// μPC / Depth-μP: depth- and width-aware scalings, standard normal init.
    Mupc,
}

/// The branch scalings `a_1`, `a_h`, `a_L` (constants of the shapes; no gradient flows through them).
#[derive(Clone, Copy, Debug, PartialEq, Serialize, Deserialize)]
pub struct Scalings {
    /// `a_1`, on the input layer.
    pub a_in: f64,
    /// `a_h`, on every residual branch `2 ≤ l ≤ H`.
    pub a_hidden: f64,
    /// `a_L`, on the output layer.
    pub a_out: f64,
}

/// Everything that fixes a network's shape and forward pass.
#[derive(Clone, Copy, Debug, PartialEq, Serialize, Deserialize)]
pub struct Arch {
    /// `D`, the input dimension.
    pub input: usize,
    /// `N`, the width of every hidden layer.
    pub width: usize,
    /// `H`, the number of hidden layers.
    pub hidden: usize,
    /// `O`, the output dimension.
    pub output: usize,
    /// φ.
    pub act: Activation,
    /// Identity skips on layers `2 … H` (`τ = 1`).
    pub skips: bool,
    /// Scalings and init.
    pub param: Param,
}

impl Arch {
    /// `L = H + 1`, the number of weight matrices.
    pub fn layers(&self) -> usize {
        self.hidden + 1
    }

    /// `τ`: 1 with skips, 0 without.
    pub fn tau(&self) -> f64 {
        if self.skips {
            1.0
        } else {
            0.0
        }
    }

    /// `(out, in)` of `W_l`, `l` counted from 1.
    pub fn weight_shape(&self, l: usize) -> (usize, usize) {
        let (h, n) = (self.hidden, self.width);
        match l {
            1 => (n, self.input),
            _ if l == h + 1 => (self.output, n),
            _ => (n, n),
        }
    }

    /// Width of layer `l`'s activity or error (`N` for hidden layers, `O` for the output).
    pub fn out_dim(&self, l: usize) -> usize {
        self.weight_shape(l).0
    }

    /// The scalings this parameterisation prescribes for these shapes.
    pub fn scalings(&self) -> Scalings {
        match self.param {
            Param::Sp => Scalings { a_in: 1.0, a_hidden: 1.0, a_out: 1.0 },
            Param::Mupc => {
                let n = self.width as f64;
                let a_hidden = if self.skips { 1.0 / (n * self.layers() as f64).sqrt() } else { 1.0 / n.sqrt() };
                Scalings { a_in: 1.0 / (self.input as f64).sqrt(), a_hidden, a_out: 1.0 / n }
            }
        }
    }

    /// Number of weights in all matrices.
    pub fn parameter_count(&self) -> usize {
        (1..=self.layers()).map(|l| self.weight_shape(l)).map(|(o, i)| o * i).sum()
    }
}

/// A network: shapes, scalings and the weights `W_1 … W_L`.
#[derive(Clone, Debug, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct Network<T> {
    /// Shapes and forward pass.
    pub arch: Arch,
    /// Branch scalings (normally `arch.scalings()`; fixtures may pin their own).
    pub scalings: Scalings,
    /// `W_1 … W_L`, each `(out, in)`.
    pub weights: Vec<Mat<T>>,
}

impl<T: Real> Network<T> {
    /// Seeded initialisation. Values are drawn in `f64` from ChaCha8 (same numbers natively and in
    /// wasm, whatever `T` is), matrix after matrix, row-major.
    pub fn init(arch: Arch, seed: u64) -> Self {
        let mut rng = ChaCha8Rng::seed_from_u64(seed);
        let weights = (1..=arch.layers())
            .map(|l| {
                let (out, inp) = arch.weight_shape(l);
                let data = match arch.param {
                    Param::Sp => {
                        let bound = 1.0 / (inp as f64).sqrt();
                        match Uniform::new_inclusive(-bound, bound) {
                            Ok(u) => (0..out * inp).map(|_| T::of(u.sample(&mut rng))).collect(),
                            Err(_) => vec![T::zero(); out * inp], // fan_in = 0: nothing to draw
                        }
                    }
                    Param::Mupc => (0..out * inp).map(|_| T::of(StandardNormal.sample(&mut rng))).collect::<Vec<T>>(),
                };
                Mat { rows: out, cols: inp, data }
            })
            .collect();
        Network { arch, scalings: arch.scalings(), weights }
    }

    /// A network from given weights (fixtures, uploads); checks every shape.
    pub fn from_weights(arch: Arch, scalings: Scalings, weights: Vec<Mat<T>>) -> Result<Self, String> {
        if weights.len() != arch.layers() {
            return Err(format!("expected {} weight matrices, got {}", arch.layers(), weights.len()));
        }
        for (i, w) in weights.iter().enumerate() {
            let (out, inp) = arch.weight_shape(i + 1);
            if (w.rows, w.cols) != (out, inp) {
                return Err(format!("W_{} is {}x{}, expected {out}x{inp}", i + 1, w.rows, w.cols));
            }
        }
        Ok(Network { arch, scalings, weights })
    }

    /// The scaling on `W_l`'s branch.
    pub fn a(&self, l: usize) -> T {
        let s = &self.scalings;
        T::of(if l == 1 {
            s.a_in
        } else if l == self.arch.layers() {
            s.a_out
        } else {
            s.a_hidden
        })
    }

    /// True when every weight is finite.
    pub fn all_finite(&self) -> bool {
        self.weights.iter().all(Mat::all_finite)
    }
}

/// A seeded stream for anything else that needs randomness (data order, probes), kept apart from
/// the init stream so changing one never shifts the other.
pub fn seeded_rng(seed: u64, stream: u64) -> ChaCha8Rng {
    let mut rng = ChaCha8Rng::seed_from_u64(seed);
    rng.set_stream(stream);
    // Burn one value so streams never share a first draw even for pathological seeds.
    let _: u32 = rng.random();
    rng
}

#[cfg(test)]
mod tests {
    use super::*;

    fn arch(param: Param) -> Arch {
        Arch { input: 784, width: 128, hidden: 8, output: 10, act: Activation::Relu, skips: true, param }
    }

    #[test]
    fn mupc_scalings_follow_the_spec() {
        let s = arch(Param::Mupc).scalings();
        assert!((s.a_in - 1.0 / 28.0).abs() < 1e-15);
        assert!((s.a_hidden - 1.0 / (128.0f64 * 9.0).sqrt()).abs() < 1e-15);
        assert!((s.a_out - 1.0 / 128.0).abs() < 1e-15);
    }

    #[test]
    fn init_is_seeded_and_shaped() {
        let a: Network<f32> = Network::init(arch(Param::Sp), 7);
        let b: Network<f32> = Network::init(arch(Param::Sp), 7);
        let c: Network<f32> = Network::init(arch(Param::Sp), 8);
        assert_eq!(a.weights, b.weights);
        assert_ne!(a.weights, c.weights);
        assert_eq!(a.weights.len(), 9);
        assert_eq!((a.weights[0].rows, a.weights[0].cols), (128, 784));
        assert_eq!((a.weights[8].rows, a.weights[8].cols), (10, 128));
        let bound = 1.0 / 784f32.sqrt();
        assert!(a.weights[0].data.iter().all(|v| v.abs() <= bound));
    }

    #[test]
    fn mupc_init_is_standard_normal() {
        let n: Network<f64> = Network::init(arch(Param::Mupc), 1);
        let w = &n.weights[0].data;
        let mean = w.iter().sum::<f64>() / w.len() as f64;
        let var = w.iter().map(|v| (v - mean).powi(2)).sum::<f64>() / w.len() as f64;
        assert!(mean.abs() < 0.01 && (var - 1.0).abs() < 0.02, "mean {mean} var {var}");
    }
}
