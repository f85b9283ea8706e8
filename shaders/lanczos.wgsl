// Lanczos with full reorthogonalisation on the GPU (f32), for B independent per-sample problems at
// once. Compiled after common.wgsl. The operator is hvp.wgsl's product: each iteration reads its
// input from `hv_v` and its output from `hv_out`, both stacked (H, B, N) like the activities, so
// sample s's vector is the B-strided slices (l·B + s)·N … + N. Twin: pcn::hessian::Lanczos.
//
// Per iteration j (one Params slot per pass, `step` = j):
//   w = H q_j                                         (hvp.wgsl, into hv_out)
//   c_i = ⟨q_i, w⟩ for i ≤ j; α_j = c_j               (lz_dots; first pass records α_j)
//   w ← w − Σ_i c_i q_i                               (lz_orth; both passes: classical
//                                                      Gram–Schmidt twice, Kahan–Parlett)
//   β_j = ‖w‖                                         (lz_norm)
//   q_{j+1} = w / β_j, also copied into hv_v          (lz_next)
// The CPU reads α and β back every few iterations and solves the small tridiagonal problem.
//
// Field use here: `count` = H·B·N (one stacked vector), `layer` = index of β_0 in `lz_ab`
// (α_j,s at j·B + s, β_j,s at layer + j·B + s), `update` = 1 on the pass that records α.

@group(0) @binding(0) var<uniform> p: Params;
@group(0) @binding(16) var<storage, read_write> hv_v: array<f32>;
@group(0) @binding(18) var<storage, read_write> hv_out: array<f32>;
@group(0) @binding(19) var<storage, read_write> lz_basis: array<f32>;
@group(0) @binding(20) var<storage, read_write> lz_coef: array<f32>;
@group(0) @binding(21) var<storage, read_write> lz_ab: array<f32>;

override WG: u32 = 256u;

var<workgroup> lz_red: array<f32, 256>;

// Position in the stacked layout of element e (0 ≤ e < H·N) of sample s's vector.
fn stacked(s: u32, e: u32) -> u32 {
    let l = e / p.n;
    return (l * p.batch + s) * p.n + (e - l * p.n);
}

// Sample of a position in the stacked layout.
fn sample_of(k: u32) -> u32 {
    return (k / p.n) % p.batch;
}

// Sum over the workgroup (WG a power of two ≤ 256).
fn workgroup_sum(lid: u32, v: f32) -> f32 {
    lz_red[lid] = v;
    workgroupBarrier();
    for (var half = WG / 2u; half > 0u; half /= 2u) {
        if (lid < half) { lz_red[lid] += lz_red[lid + half]; }
        workgroupBarrier();
    }
    return lz_red[0];
}

// lz_dots: c_i,s = ⟨q_i, w⟩ of sample s; one workgroup per (i, s), dispatched (j + 1, B).
@compute @workgroup_size(WG)
fn lz_dots(@builtin(local_invocation_id) lid: vec3<u32>, @builtin(workgroup_id) wid: vec3<u32>) {
    let i = wid.x;
    let s = wid.y;
    let base = i * p.count;
    var acc = 0.0;
    for (var e = lid.x; e < p.h * p.n; e += WG) {
        let k = stacked(s, e);
        acc += lz_basis[base + k] * hv_out[k];
    }
    let total = workgroup_sum(lid.x, acc);
    if (lid.x == 0u) {
        lz_coef[i * p.batch + s] = total;
        if (p.update == 1u && i == p.step) { lz_ab[p.step * p.batch + s] = total; }
    }
}

// lz_orth: w ← w − Σ_{i ≤ j} c_i,s q_i, elementwise.
@compute @workgroup_size(WG)
fn lz_orth(
    @builtin(local_invocation_id) lid: vec3<u32>,
    @builtin(workgroup_id) wid: vec3<u32>,
    @builtin(num_workgroups) nwg: vec3<u32>,
) {
    for (var k = wid.x * WG + lid.x; k < p.count; k += nwg.x * WG) {
        let s = sample_of(k);
        var acc = 0.0;
        for (var i = 0u; i <= p.step; i++) {
            acc += lz_coef[i * p.batch + s] * lz_basis[i * p.count + k];
        }
        hv_out[k] -= acc;
    }
}

// lz_norm: β_j,s = ‖w_s‖; one workgroup per sample, dispatched (1, B).
@compute @workgroup_size(WG)
fn lz_norm(@builtin(local_invocation_id) lid: vec3<u32>, @builtin(workgroup_id) wid: vec3<u32>) {
    let s = wid.y;
    var acc = 0.0;
    for (var e = lid.x; e < p.h * p.n; e += WG) {
        let x = hv_out[stacked(s, e)];
        acc += x * x;
    }
    let total = workgroup_sum(lid.x, acc);
    if (lid.x == 0u) { lz_ab[p.layer + p.step * p.batch + s] = sqrt(total); }
}

// lz_next: q_{j+1} = w / β_j (zero after a breakdown), stored in the basis and in hv_v.
@compute @workgroup_size(WG)
fn lz_next(
    @builtin(local_invocation_id) lid: vec3<u32>,
    @builtin(workgroup_id) wid: vec3<u32>,
    @builtin(num_workgroups) nwg: vec3<u32>,
) {
    for (var k = wid.x * WG + lid.x; k < p.count; k += nwg.x * WG) {
        let b = lz_ab[p.layer + p.step * p.batch + sample_of(k)];
        let q = select(0.0, hv_out[k] / b, b > 0.0);
        lz_basis[(p.step + 1u) * p.count + k] = q;
        hv_v[k] = q;
    }
}
