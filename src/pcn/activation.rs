//! The activation φ with its first and second derivatives (docs/maths.md §1, §5, §8).
//!
//! ReLU's derivative at exactly 0 is 0; GELU is the tanh approximation (as `jax.nn.gelu`).
//! The WGSL twin is `shaders/common.wgsl` (`phi`, `dphi`, `ddphi`); keep the two in sync, codes
//! included ([`Activation::code`]).

use super::linalg::Real;
use serde::{Deserialize, Serialize};
use std::fmt;
use std::str::FromStr;

/// An elementwise activation φ.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Activation {
    /// φ(u) = u
    Linear,
    /// φ(u) = tanh u
    Tanh,
    /// φ(u) = max(u, 0)
    Relu,
    /// φ(u) = u for u > 0, 0.01·u otherwise
    LeakyRelu,
    /// φ(u) = ½u(1 + tanh(√(2/π)(u + 0.044715u³)))
    Gelu,
    /// φ(u) = u·σ(u)
    Silu,
}

const LEAK: f64 = 0.01;
const GELU_C: f64 = 0.797_884_560_802_865_4; // √(2/π)
const GELU_A: f64 = 0.044_715;

impl Activation {
    /// Every activation, in the order the UI and CLI list them.
    pub const ALL: [Activation; 6] = [
        Activation::Linear,
        Activation::Tanh,
        Activation::Relu,
        Activation::LeakyRelu,
        Activation::Gelu,
        Activation::Silu,
    ];

    /// The spelling used by the CLI, URLs and fixtures.
    pub fn name(self) -> &'static str {
        match self {
            Activation::Linear => "linear",
            Activation::Tanh => "tanh",
            Activation::Relu => "relu",
            Activation::LeakyRelu => "leaky_relu",
            Activation::Gelu => "gelu",
            Activation::Silu => "silu",
        }
    }

    /// The code the WGSL kernels switch on (`ACT_*` in `shaders/common.wgsl`).
    pub fn code(self) -> u32 {
        match self {
            Activation::Linear => 0,
            Activation::Tanh => 1,
            Activation::Relu => 2,
            Activation::LeakyRelu => 3,
            Activation::Gelu => 4,
            Activation::Silu => 5,
        }
    }

    /// φ(u).
    #[inline]
    pub fn f<T: Real>(self, u: T) -> T {
        match self {
            Activation::Linear => u,
            Activation::Tanh => u.tanh(),
            Activation::Relu => relu(u),
            Activation::LeakyRelu => {
                if u > T::zero() {
                    u
                } else {
                    T::of(LEAK) * u
                }
            }
            Activation::Gelu => {
                let half = T::of(0.5);
                half * u * (T::one() + (T::of(GELU_C) * (u + T::of(GELU_A) * u * u * u)).tanh())
            }
            Activation::Silu => u / (T::one() + (-u).exp()),
        }
    }

    /// φ'(u).
    #[inline]
    pub fn df<T: Real>(self, u: T) -> T {
        match self {
            Activation::Linear => T::one(),
            Activation::Tanh => {
                let t = u.tanh();
                T::one() - t * t
            }
            Activation::Relu => {
                if u > T::zero() {
                    T::one()
                } else {
                    T::zero()
                }
            }
            Activation::LeakyRelu => {
                if u > T::zero() {
                    T::one()
                } else {
                    T::of(LEAK)
                }
            }
            Activation::Gelu => {
                let (c, a, half) = (T::of(GELU_C), T::of(GELU_A), T::of(0.5));
                let inner = c * (u + a * u * u * u);
                let t = inner.tanh();
                let dinner = c * (T::one() + T::of(3.0) * a * u * u);
                half * (T::one() + t) + half * u * (T::one() - t * t) * dinner
            }
            Activation::Silu => {
                let s = T::one() / (T::one() + (-u).exp());
                s * (T::one() + u * (T::one() - s))
            }
        }
    }

    /// φ''(u) (zero almost everywhere for the piecewise-linear activations).
    #[inline]
    pub fn ddf<T: Real>(self, u: T) -> T {
        match self {
            Activation::Linear | Activation::Relu | Activation::LeakyRelu => T::zero(),
            Activation::Tanh => {
                let t = u.tanh();
                T::of(-2.0) * t * (T::one() - t * t)
            }
            Activation::Gelu => {
                let (c, a, half) = (T::of(GELU_C), T::of(GELU_A), T::of(0.5));
                let inner = c * (u + a * u * u * u);
                let t = inner.tanh();
                let sech2 = T::one() - t * t;
                let dinner = c * (T::one() + T::of(3.0) * a * u * u);
                let ddinner = c * T::of(6.0) * a * u;
                sech2 * dinner + half * u * (T::of(-2.0) * t * sech2 * dinner * dinner + sech2 * ddinner)
            }
            Activation::Silu => {
                let s = T::one() / (T::one() + (-u).exp());
                let ds = s * (T::one() - s);
                ds * (T::of(2.0) + u * (T::one() - T::of(2.0) * s))
            }
        }
    }
}

/// ReLU, `max(u, 0)`: the one definition [`Activation::f`] and [`Activation::map`] share.
#[inline]
fn relu<T: Real>(u: T) -> T {
    u.max(T::zero())
}

impl Activation {
    /// `dst = φ(src)`, with the activation chosen once outside the loop so it vectorises.
    pub fn map<T: Real>(self, src: &[T], dst: &mut [T]) {
        match self {
            Activation::Linear => dst.copy_from_slice(src),
            Activation::Relu => dst.iter_mut().zip(src).for_each(|(d, &s)| *d = relu(s)),
            act => dst.iter_mut().zip(src).for_each(|(d, &s)| *d = act.f(s)),
        }
    }

    /// Calls `k` with φ' as a concrete closure: ReLU and linear get branch-free closures the
    /// compiler can vectorise; the others evaluate [`Activation::df`].
    #[inline]
    pub fn with_df<T: Real, R>(self, k: impl DfKernel<T, R>) -> R {
        match self {
            Activation::Linear => k.run(|_| T::one()),
            Activation::Relu => k.run(|u: T| if u > T::zero() { T::one() } else { T::zero() }),
            act => k.run(move |u| act.df(u)),
        }
    }
}

/// A loop over φ' (see [`Activation::with_df`]): generic over the closure so each activation gets
/// its own monomorphised, vectorisable copy.
pub trait DfKernel<T, R> {
    /// Runs the loop with `df` as φ'.
    fn run(self, df: impl Fn(T) -> T + Copy) -> R;
}

impl fmt::Display for Activation {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

impl FromStr for Activation {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Activation::ALL.into_iter().find(|a| a.name() == s).ok_or_else(|| {
            let names: Vec<_> = Activation::ALL.iter().map(|a| a.name()).collect();
            format!("unknown activation '{s}': expected one of {}", names.join(", "))
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn derivatives_match_central_differences() {
        let h = 1e-5;
        for act in Activation::ALL {
            for &u in &[-2.3f64, -0.7, 0.31, 1.9] {
                let d = (act.f(u + h) - act.f(u - h)) / (2.0 * h);
                assert!((d - act.df(u)).abs() < 1e-7, "{act} φ' at {u}: {d} vs {}", act.df(u));
                let dd = (act.df(u + h) - act.df(u - h)) / (2.0 * h);
                assert!((dd - act.ddf(u)).abs() < 1e-6, "{act} φ'' at {u}: {dd} vs {}", act.ddf(u));
            }
        }
    }

    #[test]
    fn relu_derivative_at_zero_is_zero() {
        assert_eq!(Activation::Relu.df(0.0f64), 0.0);
    }

    #[test]
    fn parse_names_and_reject_unknown() {
        for act in Activation::ALL {
            assert_eq!(act.name().parse::<Activation>(), Ok(act));
        }
        let err = "sigmoid".parse::<Activation>().unwrap_err();
        assert!(err.contains("sigmoid") && err.contains("relu"), "{err}");
    }
}
