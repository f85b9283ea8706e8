// The inference Hessian's vector product (docs/maths.md §8), for B independent samples at once and every
// layer in one dispatch, like an inference step. Compiled after common.wgsl and pc.wgsl, whose
// helpers (tiles, weights, scalings) it shares; `back_project` of pc.wgsl is its middle stage.
// Twin: pcn::hessian::hvp.
//
//   u_1 = v_1,  u_l = v_l − τ v_{l−1} − a_h (φ'(z_{l−1}) ⊙ v_{l−1}) W_lᵀ,  u_L = −a_L (φ'(z_H) ⊙ v_H) W_Lᵀ
//   back_k = u_{k+1} W_{k+1}                                   (pc.wgsl's back_project, u in `e`)
//   (Hv)_k = u_k − τ u_{k+1} − a_{k+1} φ'(z_k) ⊙ back_k − c_k ⊙ v_k   (no τ term for k = H)
//
// z (binding 2) holds the point z_1 … z_H, each (B, N); v, curv (c_k) and hv are (H, B, N).

@group(0) @binding(16) var<storage, read_write> hv_v: array<f32>;
@group(0) @binding(17) var<storage, read_write> hv_curv: array<f32>;
@group(0) @binding(18) var<storage, read_write> hv_out: array<f32>;

// (φ'(z_{l−1}) ⊙ v_{l−1}) (B, N) · W_lᵀ → (B, out), for l ≥ 2.
fn jvp_tile(l: u32, lid: vec3<u32>, wid: vec3<u32>) -> array<vec4<f32>, 4> {
    let r0 = wid.y * TM;
    let c0 = wid.x * TM;
    let t = lid.y * (TM / 4u) + lid.x;
    let odim = out_dim(l);
    var acc: array<vec4<f32>, 4>;
    for (var k0 = 0u; k0 < p.n; k0 += TK) {
        for (var q = 0u; q < slab_loads(); q++) {
            // Both operands run along k (as the prediction's).
            let s = slab_k(t + q * threads());
            let k = k0 + s.x;
            var av = 0.0;
            if (r0 + s.y < p.batch && k < p.n) {
                let i = zoff(l - 2u) + (r0 + s.y) * p.n + k;
                av = dphi(p.act, z[i]) * hv_v[i];
            }
            sa[s.x * sp() + s.y] = av;
            var bv = 0.0;
            if (c0 + s.y < odim && k < p.n) { bv = w_at(l, c0 + s.y, k); }
            sb[s.x * sp() + s.y] = bv;
        }
        workgroupBarrier();
        fma_tile(&acc, lid);
        workgroupBarrier();
    }
    return acc;
}

// hvp_u: u_l for every layer l = 1 … L at once, into `e` (laid out like the errors).
@compute @workgroup_size(TM / 4u, TM / 4u)
fn hvp_u(@builtin(local_invocation_id) lid: vec3<u32>, @builtin(workgroup_id) wid: vec3<u32>) {
    let l = wid.z + 1u;
    if (wid.x * TM >= out_dim(l)) { return; }
    if (l == 1u) {
        for (var q = 0u; q < 16u; q++) {
            let row = tile_row(wid, lid, q);
            let col = tile_col(wid, lid, q);
            if (row < p.batch && col < p.n) { e[row * p.n + col] = hv_v[row * p.n + col]; }
        }
        return;
    }
    let acc = jvp_tile(l, lid, wid);
    for (var q = 0u; q < 16u; q++) {
        let row = tile_row(wid, lid, q);
        let col = tile_col(wid, lid, q);
        if (row >= p.batch || col >= out_dim(l)) { continue; }
        let jv = scale(l) * acc[q / 4u][q % 4u];
        if (l == big_l()) {
            e[eoff(l) + row * p.o + col] = -jv;
        } else {
            let i = row * p.n + col;
            e[eoff(l) + i] = hv_v[zoff(l - 1u) + i] - (tau() * hv_v[zoff(l - 2u) + i] + jv);
        }
    }
}

// hvp_out: (Hv)_k for every hidden layer k, elementwise.
@compute @workgroup_size(WG)
fn hvp_out(
    @builtin(local_invocation_id) lid: vec3<u32>,
    @builtin(workgroup_id) wid: vec3<u32>,
    @builtin(num_workgroups) nwg: vec3<u32>,
) {
    let bn = p.batch * p.n;
    let k = wid.z + 1u;
    let a_next = scale(k + 1u);
    let t = tau() * select(0.0, 1.0, k < p.h);
    let ua = select(eoff(k), eoff(k + 1u), k < p.h);
    for (var idx = wid.x * WG + lid.x; idx < bn; idx += nwg.x * WG) {
        let i = zoff(k - 1u) + idx;
        let jt = t * e[ua + idx] + a_next * dphi(p.act, z[i]) * back[(k - 1u) * bn + idx];
        hv_out[i] = e[eoff(k) + idx] - jt - hv_curv[i] * hv_v[i];
    }
}
