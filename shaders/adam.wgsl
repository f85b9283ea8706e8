// Adam exactly as optax (spec §5 step 4), over one weight buffer: dispatched once per buffer
// (W_1, W_2…W_H, W_L). Prefixed at load time by common.wgsl. Twin: pcn::learn::Adam::step.
//   m ← β₁m + (1−β₁)g,  v ← β₂v + (1−β₂)g²,  W ← W − η_w (m/bc1) / (√(v/bc2) + ε)
// with bc1 = 1 − β₁ᵗ and bc2 = 1 − β₂ᵗ computed on the host in f64.

@group(0) @binding(0) var<uniform> p: Params;
@group(0) @binding(1) var<storage, read_write> w: array<f32>;
@group(0) @binding(2) var<storage, read_write> g: array<f32>;
@group(0) @binding(3) var<storage, read_write> m: array<f32>;
@group(0) @binding(4) var<storage, read_write> v: array<f32>;

override WG: u32 = 256u;

@compute @workgroup_size(WG)
fn adam(@builtin(global_invocation_id) gid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>) {
    let stride = nwg.x * WG;
    for (var i = gid.x; i < p.count; i += stride) {
        let gi = g[i];
        let mi = p.beta1 * m[i] + (1.0 - p.beta1) * gi;
        let vi = p.beta2 * v[i] + (1.0 - p.beta2) * gi * gi;
        m[i] = mi;
        v[i] = vi;
        w[i] = w[i] - p.lr * (mi / p.bc1) / (sqrt(vi / p.bc2) + p.eps);
    }
}
