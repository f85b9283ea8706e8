// Shared by every pclab kernel: the activation φ and its derivatives (docs/maths.md §1, §5, §8).
// Keep in sync with src/pcn/activation.rs (the CPU twin): same codes, same formulas, ReLU'(0) = 0,
// GELU as the tanh approximation, leaky ReLU slope 0.01. φ, φ' and φ'' switch on the ACT_*
// names only (tests/shaders.rs ties each to `Activation::code` and forbids literal cases).

const ACT_LINEAR: u32 = 0u;
const ACT_TANH: u32 = 1u;
const ACT_RELU: u32 = 2u;
const ACT_LEAKY_RELU: u32 = 3u;
const ACT_GELU: u32 = 4u;
const ACT_SILU: u32 = 5u;

const LEAK: f32 = 0.01;
const GELU_C: f32 = 0.7978845608028654; // √(2/π)
const GELU_A: f32 = 0.044715;

fn sigmoid(u: f32) -> f32 {
    return 1.0 / (1.0 + exp(-u));
}

// φ(u)
fn phi(act: u32, u: f32) -> f32 {
    switch act {
        case ACT_TANH: { return tanh(u); }
        case ACT_RELU: { return max(u, 0.0); }
        case ACT_LEAKY_RELU: { return select(LEAK * u, u, u > 0.0); }
        case ACT_GELU: { return 0.5 * u * (1.0 + tanh(GELU_C * (u + GELU_A * u * u * u))); }
        case ACT_SILU: { return u * sigmoid(u); }
        default: { return u; }
    }
}

// φ'(u)
fn dphi(act: u32, u: f32) -> f32 {
    switch act {
        case ACT_TANH: { let t = tanh(u); return 1.0 - t * t; }
        case ACT_RELU: { return select(0.0, 1.0, u > 0.0); }
        case ACT_LEAKY_RELU: { return select(LEAK, 1.0, u > 0.0); }
        case ACT_GELU: {
            let t = tanh(GELU_C * (u + GELU_A * u * u * u));
            let dinner = GELU_C * (1.0 + 3.0 * GELU_A * u * u);
            return 0.5 * (1.0 + t) + 0.5 * u * (1.0 - t * t) * dinner;
        }
        case ACT_SILU: { let s = sigmoid(u); return s * (1.0 + u * (1.0 - s)); }
        default: { return 1.0; }
    }
}

// φ''(u) (zero for the piecewise-linear activations)
fn ddphi(act: u32, u: f32) -> f32 {
    switch act {
        case ACT_TANH: { let t = tanh(u); return -2.0 * t * (1.0 - t * t); }
        case ACT_GELU: {
            let t = tanh(GELU_C * (u + GELU_A * u * u * u));
            let sech2 = 1.0 - t * t;
            let dinner = GELU_C * (1.0 + 3.0 * GELU_A * u * u);
            let ddinner = GELU_C * 6.0 * GELU_A * u;
            return sech2 * dinner + 0.5 * u * (-2.0 * t * sech2 * dinner * dinner + sech2 * ddinner);
        }
        case ACT_SILU: { let s = sigmoid(u); let ds = s * (1.0 - s); return ds * (2.0 + u * (1.0 - 2.0 * s)); }
        default: { return 0.0; }
    }
}

// Per-dispatch parameters: one 256-byte slot per dispatch in a uniform table, chosen by dynamic
// offset. Keep in sync with src/gpu/layout.rs (`Params`): same fields, same order, 96 bytes.
struct Params {
    batch: u32, d: u32, n: u32, o: u32,
    h: u32, act: u32, skips: u32, layer: u32,
    from_layer: u32, step: u32, update: u32, count: u32,
    a_in: f32, a_h: f32, a_out: f32, eta_z: f32,
    lr: f32, beta1: f32, beta2: f32, eps: f32,
    bc1: f32, bc2: f32, grad_scale: f32, pad1: f32,
}
