// Adam exactly as optax (docs/maths.md §5 step 4), over one weight buffer: dispatched once per buffer
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

// The stats of the update just applied, per weight matrix: ‖W_before‖² and ‖ΔW‖², recomputed from
// the moments (ΔW = η_w m̂/(√v̂ + ε), W_before = W + ΔW) so Adam itself stays one pass. Slice
// wid.z is matrix p.layer + wid.z (0-based) of p.count weights each; one workgroup per matrix.
// Results: stats[p.h + m] = ‖W_before‖², stats[p.h + L + m] = ‖ΔW‖² (the first H entries are the
// activation RMS of pc.wgsl's act_rms). Twin: the relative change returned by pcn::learn::Adam::step.
@group(0) @binding(5) var<storage, read_write> stats: array<f32>;

var<workgroup> red_w: array<f32, 256>;
var<workgroup> red_d: array<f32, 256>;

@compute @workgroup_size(WG)
fn adam_stats(@builtin(local_invocation_id) lid: vec3<u32>, @builtin(workgroup_id) wid: vec3<u32>) {
    let base = wid.z * p.count;
    var sw = 0.0;
    var sd = 0.0;
    for (var i = lid.x; i < p.count; i += WG) {
        let d = p.lr * (m[base + i] / p.bc1) / (sqrt(v[base + i] / p.bc2) + p.eps);
        let before = w[base + i] + d;
        sw += before * before;
        sd += d * d;
    }
    red_w[lid.x] = sw;
    red_d[lid.x] = sd;
    workgroupBarrier();
    for (var s = WG / 2u; s > 0u; s /= 2u) {
        if (lid.x < s) {
            red_w[lid.x] += red_w[lid.x + s];
            red_d[lid.x] += red_d[lid.x + s];
        }
        workgroupBarrier();
    }
    if (lid.x == 0u) {
        let m_index = p.layer + wid.z;
        stats[p.h + m_index] = red_w[0];
        stats[p.h + p.h + 1u + m_index] = red_d[0];
    }
}
