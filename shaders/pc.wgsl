// Predictive-coding training kernels (docs/maths.md §2, §4, §5), prefixed at load time by common.wgsl.
// CPU twins: src/pcn/forward.rs (forward), energy.rs (errors), infer.rs (back_update), learn.rs
// (weight_grad). Every kernel covers all layers in one dispatch (workgroup grid z = layer) except the
// forward pass, which is sequential in depth: one dispatch per layer, `p.layer` says which. Grids
// of the per-step kernels cover only the layers the wavefront has reached (`p.from_layer` on).
//
// Buffers (row-major, f32):
//   io    x (B, D) then y (B, O)
//   z     z_1 … z_H (each (B, N)), then slot H: the drive a_1 x W_1ᵀ (constant during inference)
//   w1    W_1 (N, D)      wh   W_2 … W_H ((H−1), N, N)      wo   W_L (O, N)
//   e     e_1 … e_H (each (B, N)), then e_L (B, O)
//   back  back_k = e_{k+1} W_{k+1}, k = 1 … H (each (B, N); the Hessian product's middle stage —
//         training fuses it into the activity update and never writes it)
//   epart per inference step t and layer l, one partial sum of e_l² per output tile of `errors`:
//         [((t·L) + l − 1)·P + tile], P = that dispatch's tiles per layer (cleared each iteration)
//   energy E_l per inference step: row t (0 … T), column l − 1 (summed from epart by `energies`)
//   g1    ∂F/∂W_1       gh   ∂F/∂W_2 … ∂F/∂W_H       go   ∂F/∂W_L
//   yhat  ŷ (B, O) of the last forward pass
//   labels, correct   test labels (B) and the running counts by (label, guess) (evaluation)
//   stats activation RMS per hidden layer (H), then ‖W_l‖² before and ‖ΔW_l‖² of the Adam update
//         (L each; written by adam.wgsl's adam_stats)
//   gb1, gbh, gbo   ∂ℓ̃/∂W_l, backprop's gradients on the energy's scale (aligned iterations only)
//   asums           per compared inference step c and layer l: ⟨∂F/∂W_l, ∂ℓ̃/∂W_l⟩, ‖∂F/∂W_l‖²,
//                   ‖∂ℓ̃/∂W_l‖² at [(c·L + l − 1)·3 …]

@group(0) @binding(0) var<uniform> p: Params;
@group(0) @binding(1) var<storage, read_write> io: array<f32>;
@group(0) @binding(2) var<storage, read_write> z: array<f32>;
@group(0) @binding(3) var<storage, read_write> w1: array<f32>;
@group(0) @binding(4) var<storage, read_write> wh: array<f32>;
@group(0) @binding(5) var<storage, read_write> wo: array<f32>;
@group(0) @binding(6) var<storage, read_write> e: array<f32>;
@group(0) @binding(7) var<storage, read_write> back: array<f32>;
@group(0) @binding(8) var<storage, read_write> energy: array<f32>;
@group(0) @binding(9) var<storage, read_write> g1: array<f32>;
@group(0) @binding(10) var<storage, read_write> gh: array<f32>;
@group(0) @binding(11) var<storage, read_write> yhat: array<f32>;
@group(0) @binding(12) var<storage, read_write> go: array<f32>;
@group(0) @binding(13) var<storage, read_write> stats: array<f32>;
@group(0) @binding(14) var<storage, read_write> labels: array<u32>;
@group(0) @binding(15) var<storage, read_write> correct: array<atomic<u32>>;
@group(0) @binding(22) var<storage, read_write> gb1: array<f32>;
@group(0) @binding(23) var<storage, read_write> gbh: array<f32>;
@group(0) @binding(24) var<storage, read_write> gbo: array<f32>;
@group(0) @binding(25) var<storage, read_write> asums: array<f32>;
@group(0) @binding(26) var<storage, read_write> epart: array<f32>;

// Matrix kernels: a workgroup of (TM/4)×(TM/4) threads computes a TM×TM output tile, each
// thread 4×4 of its outputs (strided: see tile_row), stepping through the summed dimension TK at a time via workgroup memory.
// Overridable per pipeline; the host sets all three (src/gpu/kernels.rs: TILE, TILE_K, and PAD
// from them).
override TM: u32 = 32u;
override TK: u32 = 16u;
// Row stride of the staged slabs is SP = TM + PAD words. An operand whose memory runs along the
// summed index is staged k-fastest across lanes (so its global reads are coalesced); a warp then
// stores 32/TK rows of TK entries each, SP words apart per entry: with SP ≡ 32/TK (mod 32) the 32
// stores land in 32 different banks. PAD = 32/TK (1 for TK ≥ 32) makes that so for any TM that is
// a multiple of 32, and keeps the other staging (rows fastest, SP-independent) conflict-free too.
override PAD: u32 = 2u;
// Elementwise kernels' workgroup size; keep equal to ELEMENTWISE_WG in src/gpu/kernels.rs.
override WG: u32 = 256u;

var<workgroup> sa: array<f32, (TM + PAD) * TK>;   // [TK][SP], k-major
var<workgroup> sb: array<f32, (TM + PAD) * TK>;   // [TK][SP], k-major
var<workgroup> red: array<f32, 256>;
var<workgroup> red3: array<vec3<f32>, 256>;

fn big_l() -> u32 { return p.h + 1u; }
fn tau() -> f32 { return select(0.0, 1.0, p.skips != 0u); }
fn out_dim(l: u32) -> u32 { return select(p.n, p.o, l == big_l()); }
fn in_dim(l: u32) -> u32 { return select(p.n, p.d, l == 1u); }
fn scale(l: u32) -> f32 {
    if (l == 1u) { return p.a_in; }
    if (l == big_l()) { return p.a_out; }
    return p.a_h;
}
// Offset of z_l (slot l − 1; slot H is the drive) and of e_l (e_L after the H hidden ones).
fn zoff(slot: u32) -> u32 { return slot * p.batch * p.n; }
fn eoff(l: u32) -> u32 { return (l - 1u) * p.batch * p.n; }

// W_l[o, i]
fn w_at(l: u32, o: u32, i: u32) -> f32 {
    if (l == 1u) { return w1[o * p.d + i]; }
    if (l == big_l()) { return wo[o * p.n + i]; }
    return wh[(l - 2u) * p.n * p.n + o * p.n + i];
}
// Layer l's input at (b, i): x for l = 1, φ(z_{l−1}) above.
fn in_at(l: u32, b: u32, i: u32) -> f32 {
    if (l == 1u) { return io[b * p.d + i]; }
    return phi(p.act, z[zoff(l - 2u) + b * p.n + i]);
}

// The three products of a PC iteration, C = A·B with (rows, summed, cols); each stages its own
// operands (so each entry point binds only the buffers it reads) and shares the 4×4 register tile:
//   prediction        in_l (B, in) · W_lᵀ            → (B, out)   A and B both run along k
//   back-projection   e_l (B, out) · W_l             → (B, in)    A along k, B along its columns
//   weight gradient   e_lᵀ (out, B) · in_l (B, in)   → (out, in)  A and B both along their columns
// Staging: thread t loads (TM·TK)/(TM/4)² entries of each TM×TK operand slab, entry idx at
// (kk, rr) = slab_k(idx) for an operand contiguous in k, slab_r(idx) for one contiguous in its
// rows/columns: either way consecutive lanes read consecutive words of memory.

fn sp() -> u32 { return TM + PAD; }
fn threads() -> u32 { return (TM / 4u) * (TM / 4u); }
fn slab_loads() -> u32 { return (TM * TK) / threads(); }
// (kk, rr) of slab entry idx, k fastest.
fn slab_k(idx: u32) -> vec2<u32> { return vec2<u32>(idx % TK, idx / TK); }
// (kk, rr) of slab entry idx, rows fastest.
fn slab_r(idx: u32) -> vec2<u32> { return vec2<u32>(idx / TM, idx % TM); }

// Thread (lid.x, lid.y) holds the outputs at rows lid.y + i·TM/4 and columns lid.x + j·TM/4 of
// the tile, i, j = 0 … 3 (a strided register tile: lanes next to each other own columns next to
// each other, so the reads below and the epilogues' global writes are contiguous across lanes).
fn tile_row(wid: vec3<u32>, lid: vec3<u32>, q: u32) -> u32 { return wid.y * TM + lid.y + (q / 4u) * (TM / 4u); }
fn tile_col(wid: vec3<u32>, lid: vec3<u32>, q: u32) -> u32 { return wid.x * TM + lid.x + (q % 4u) * (TM / 4u); }

// acc[i][j] += Σ_kk sa[kk][lid.y + i·TM/4] · sb[kk][lid.x + j·TM/4]  (written out: constant
// indices keep the accumulators in registers on every compiler, software ones included). Reads:
// a warp's lanes share lid.y in groups of TM/4 (broadcasts) and read sb at consecutive words.
fn fma_tile(acc: ptr<function, array<vec4<f32>, 4>>, lid: vec3<u32>) {
    var a0 = (*acc)[0];
    var a1 = (*acc)[1];
    var a2 = (*acc)[2];
    var a3 = (*acc)[3];
    let stride = sp();
    let side = TM / 4u;
    for (var kk = 0u; kk < TK; kk++) {
        let ab = kk * stride + lid.y;
        let bb = kk * stride + lid.x;
        let bv = vec4<f32>(sb[bb], sb[bb + side], sb[bb + 2u * side], sb[bb + 3u * side]);
        a0 += sa[ab] * bv;
        a1 += sa[ab + side] * bv;
        a2 += sa[ab + 2u * side] * bv;
        a3 += sa[ab + 3u * side] * bv;
    }
    (*acc)[0] = a0;
    (*acc)[1] = a1;
    (*acc)[2] = a2;
    (*acc)[3] = a3;
}

fn pred_tile(l: u32, lid: vec3<u32>, wid: vec3<u32>) -> array<vec4<f32>, 4> {
    let r0 = wid.y * TM;
    let c0 = wid.x * TM;
    let t = lid.y * (TM / 4u) + lid.x;
    let kdim = in_dim(l);
    let odim = out_dim(l);
    var acc: array<vec4<f32>, 4>;
    for (var k0 = 0u; k0 < kdim; k0 += TK) {
        for (var q = 0u; q < slab_loads(); q++) {
            // Both operands run along k: in_l (B, in) and W_l (out, in) row-major.
            let s = slab_k(t + q * threads());
            let k = k0 + s.x;
            var av = 0.0;
            if (r0 + s.y < p.batch && k < kdim) { av = in_at(l, r0 + s.y, k); }
            sa[s.x * sp() + s.y] = av;
            var bv = 0.0;
            if (c0 + s.y < odim && k < kdim) { bv = w_at(l, c0 + s.y, k); }
            sb[s.x * sp() + s.y] = bv;
        }
        workgroupBarrier();
        fma_tile(&acc, lid);
        workgroupBarrier();
    }
    return acc;
}

fn back_tile(l: u32, lid: vec3<u32>, wid: vec3<u32>) -> array<vec4<f32>, 4> {
    let r0 = wid.y * TM;
    let c0 = wid.x * TM;
    let t = lid.y * (TM / 4u) + lid.x;
    let kdim = out_dim(l);
    let idim = in_dim(l);
    var acc: array<vec4<f32>, 4>;
    for (var k0 = 0u; k0 < kdim; k0 += TK) {
        for (var q = 0u; q < slab_loads(); q++) {
            let i = t + q * threads();
            // e_l (B, out) runs along k; W_l (out, in) read as (k, column) runs along its columns.
            let s = slab_k(i);
            let k = k0 + s.x;
            var av = 0.0;
            if (r0 + s.y < p.batch && k < kdim) { av = e[eoff(l) + (r0 + s.y) * kdim + k]; }
            sa[s.x * sp() + s.y] = av;
            let u = slab_r(i);
            let kb = k0 + u.x;
            var bv = 0.0;
            if (c0 + u.y < idim && kb < kdim) { bv = w_at(l, kb, c0 + u.y); }
            sb[u.x * sp() + u.y] = bv;
        }
        workgroupBarrier();
        fma_tile(&acc, lid);
        workgroupBarrier();
    }
    return acc;
}

fn wgrad_tile(l: u32, lid: vec3<u32>, wid: vec3<u32>) -> array<vec4<f32>, 4> {
    let r0 = wid.y * TM;
    let c0 = wid.x * TM;
    let t = lid.y * (TM / 4u) + lid.x;
    let odim = out_dim(l);
    let idim = in_dim(l);
    var acc: array<vec4<f32>, 4>;
    for (var k0 = 0u; k0 < p.batch; k0 += TK) {
        for (var q = 0u; q < slab_loads(); q++) {
            // e_l (B, out) read as (k = sample, row = output) and in_l (B, in) as (k, column):
            // both run along their rows/columns.
            let s = slab_r(t + q * threads());
            let k = k0 + s.x;
            var av = 0.0;
            if (r0 + s.y < odim && k < p.batch) { av = e[eoff(l) + k * odim + r0 + s.y]; }
            sa[s.x * sp() + s.y] = av;
            var bv = 0.0;
            if (c0 + s.y < idim && k < p.batch) { bv = in_at(l, k, c0 + s.y); }
            sb[s.x * sp() + s.y] = bv;
        }
        workgroupBarrier();
        fma_tile(&acc, lid);
        workgroupBarrier();
    }
    return acc;
}

// forward: layer p.layer of the feedforward pass (twin: pcn::forward::forward_into).
@compute @workgroup_size(TM / 4u, TM / 4u)
fn forward(@builtin(local_invocation_id) lid: vec3<u32>, @builtin(workgroup_id) wid: vec3<u32>) {
    let l = p.layer;
    let acc = pred_tile(l, lid, wid);
    for (var q = 0u; q < 16u; q++) {
        let row = tile_row(wid, lid, q);
        let col = tile_col(wid, lid, q);
        if (row >= p.batch || col >= out_dim(l)) { continue; }
        let v = scale(l) * acc[q / 4u][q % 4u];
        if (l == 1u) {
            z[row * p.n + col] = v;
            z[zoff(p.h) + row * p.n + col] = v;
        } else if (l == big_l()) {
            yhat[row * p.o + col] = v;
        } else {
            let prev = z[zoff(l - 2u) + row * p.n + col];
            z[zoff(l - 1u) + row * p.n + col] = tau() * prev + v;
        }
    }
}

// The sum over a workgroup of one value per thread (every thread calls it; thread 0 gets the
// sum). Any workgroup of up to 256 threads; `red` is shared scratch.
fn workgroup_sum(v: f32, t: u32) -> f32 {
    red[t] = v;
    workgroupBarrier();
    for (var stride = 128u; stride > 0u; stride /= 2u) {
        if (t < stride && t + stride < threads()) { red[t] += red[t + stride]; }
        workgroupBarrier();
    }
    return red[0];
}

// errors: e_l for every layer l ≥ p.from_layer at once (grid slice z = layer from_layer + z; twin:
// pcn::energy::errors_into), and each output tile's Σ e² into epart for the energies.
@compute @workgroup_size(TM / 4u, TM / 4u)
fn errors(
    @builtin(local_invocation_id) lid: vec3<u32>,
    @builtin(workgroup_id) wid: vec3<u32>,
    @builtin(num_workgroups) nwg: vec3<u32>,
) {
    let l = wid.z + p.from_layer;
    if (l > big_l() || wid.x * TM >= out_dim(l)) { return; }
    var s = 0.0;
    if (l == 1u) {
        for (var q = 0u; q < 16u; q++) {
            let row = tile_row(wid, lid, q);
            let col = tile_col(wid, lid, q);
            if (row < p.batch && col < p.n) {
                let i = row * p.n + col;
                let v = z[i] - z[zoff(p.h) + i];
                e[i] = v;
                s += v * v;
            }
        }
    } else {
        let acc = pred_tile(l, lid, wid);
        for (var q = 0u; q < 16u; q++) {
            let row = tile_row(wid, lid, q);
            let col = tile_col(wid, lid, q);
            // (No `continue`: the tile's sum below needs the loop to end in uniform control flow.)
            if (row < p.batch && col < out_dim(l)) {
                let pred = scale(l) * acc[q / 4u][q % 4u];
                var v: f32;
                if (l == big_l()) {
                    v = io[p.batch * p.d + row * p.o + col] - pred;
                    e[eoff(l) + row * p.o + col] = v;
                } else {
                    let i = row * p.n + col;
                    v = z[zoff(l - 1u) + i] - (tau() * z[zoff(l - 2u) + i] + pred);
                    e[eoff(l) + i] = v;
                }
                s += v * v;
            }
        }
    }
    let total = workgroup_sum(s, lid.y * (TM / 4u) + lid.x);
    if (lid.x == 0u && lid.y == 0u) {
        let tiles = nwg.x * nwg.y;
        epart[(p.step * big_l() + l - 1u) * tiles + wid.y * nwg.x + wid.x] = total;
    }
}

// back_project: back_k = e_{k+1} W_{k+1} for every hidden layer k into `back` (the Hessian
// product's middle stage, hvp.wgsl; training uses back_update).
@compute @workgroup_size(TM / 4u, TM / 4u)
fn back_project(@builtin(local_invocation_id) lid: vec3<u32>, @builtin(workgroup_id) wid: vec3<u32>) {
    let k = wid.z + 1u;
    let l = k + 1u;
    if (l < p.from_layer) { return; }
    let acc = back_tile(l, lid, wid);
    for (var q = 0u; q < 16u; q++) {
        let row = tile_row(wid, lid, q);
        let col = tile_col(wid, lid, q);
        if (row < p.batch && col < p.n) { back[(k - 1u) * p.batch * p.n + row * p.n + col] = acc[q / 4u][q % 4u]; }
    }
}

// back_update: one inference step's activity update, z_k ← z_k − (η_z/B) ∂F/∂z_k with
//   ∂F/∂z_k = e_k − τ e_{k+1} − a_{k+1} φ'(z_k) ⊙ (e_{k+1} W_{k+1})      (no τ term for k = H)
// for every hidden layer k ≥ p.layer (grid slice z = layer p.layer + z; the host sets p.layer to
// the lowest layer that moves, from − 1 and at least 1). Twin: pcn::infer::infer_step.
// The back-projection e_{k+1} W_{k+1} is this workgroup's output tile and never leaves registers.
// Race-free: the dispatch reads only e and W (neither written here) to form its tiles, and each
// entry z_k[b, i] is read and written by the one invocation whose tile holds (k, b, i).
@compute @workgroup_size(TM / 4u, TM / 4u)
fn back_update(@builtin(local_invocation_id) lid: vec3<u32>, @builtin(workgroup_id) wid: vec3<u32>) {
    let k = wid.z + p.layer;
    if (k > p.h) { return; }
    let acc = back_tile(k + 1u, lid, wid);
    let a_next = scale(k + 1u);
    let t = tau() * select(0.0, 1.0, k < p.h);
    let ea = select(eoff(k), eoff(k + 1u), k < p.h);
    let step = p.eta_z / f32(p.batch);
    for (var q = 0u; q < 16u; q++) {
        let row = tile_row(wid, lid, q);
        let col = tile_col(wid, lid, q);
        if (row >= p.batch || col >= p.n) { continue; }
        let idx = row * p.n + col;
        let zi = zoff(k - 1u) + idx;
        let zv = z[zi];
        let g = e[eoff(k) + idx] - t * e[ea + idx] - a_next * dphi(p.act, zv) * acc[q / 4u][q % 4u];
        z[zi] = zv - step * g;
    }
}

// energies: E_l of every step t = 0 … p.step and layer l, ½ Σ e_l² / B from the p.count tile sums
// `errors` left in epart, into energy[t·L + l − 1]. Dispatched only when the metrics are read.
@compute @workgroup_size(WG)
fn energies(@builtin(global_invocation_id) gid: vec3<u32>) {
    let i = gid.x;
    if (i >= (p.step + 1u) * big_l()) { return; }
    var s = 0.0;
    for (var j = 0u; j < p.count; j++) { s += epart[i * p.count + j]; }
    energy[i] = 0.5 * s / f32(p.batch);
}

// bp_back: one step of backprop's backward pass, layer p.layer = l ≥ 2 (twin: pcn::bp). With
// ê_L = y − ŷ (from `errors`) it forms ê_{l−1} = τ ê_l + a_l (ê_l W_l) ⊙ φ'(z_{l−1}) (no τ term
// out of the output layer); the gradients are then weight_grad's with grad_scale = 2/O, since
// backprop's δ_l = −(2/(B·O)) ê_l.
@compute @workgroup_size(TM / 4u, TM / 4u)
fn bp_back(@builtin(local_invocation_id) lid: vec3<u32>, @builtin(workgroup_id) wid: vec3<u32>) {
    let l = p.layer;
    let acc = back_tile(l, lid, wid);
    let t = select(tau(), 0.0, l == big_l());
    for (var q = 0u; q < 16u; q++) {
        let row = tile_row(wid, lid, q);
        let col = tile_col(wid, lid, q);
        if (row >= p.batch || col >= p.n) { continue; }
        let i = row * p.n + col;
        var carried = 0.0;
        if (l < big_l()) { carried = t * e[eoff(l) + i]; }
        e[eoff(l - 1u) + i] = carried + scale(l) * acc[q / 4u][q % 4u] * dphi(p.act, z[zoff(l - 2u) + i]);
    }
}

// weight_grad: ∂F/∂W_l = −(a_l/B) e_lᵀ in_l for every layer (twin: pcn::learn::weight_grads_into).
@compute @workgroup_size(TM / 4u, TM / 4u)
fn weight_grad(@builtin(local_invocation_id) lid: vec3<u32>, @builtin(workgroup_id) wid: vec3<u32>) {
    let l = wid.z + 1u;
    let odim = out_dim(l);
    let idim = in_dim(l);
    if (wid.y * TM >= odim || wid.x * TM >= idim) { return; }
    let acc = wgrad_tile(l, lid, wid);
    let s = -(p.grad_scale * scale(l) / f32(p.batch));
    for (var q = 0u; q < 16u; q++) {
        let orow = tile_row(wid, lid, q);
        let icol = tile_col(wid, lid, q);
        if (orow >= odim || icol >= idim) { continue; }
        if (l == 1u) {
            g1[orow * p.d + icol] = s * acc[q / 4u][q % 4u];
        } else if (l == big_l()) {
            go[orow * p.n + icol] = s * acc[q / 4u][q % 4u];
        } else {
            gh[(l - 2u) * p.n * p.n + orow * p.n + icol] = s * acc[q / 4u][q % 4u];
        }
    }
}

// act_rms: the forward pass's scale, √(mean z_l²) per hidden layer into stats[l − 1] (one
// workgroup per layer; twin: pcn::forward::rms).
@compute @workgroup_size(WG)
fn act_rms(@builtin(local_invocation_id) lid: vec3<u32>, @builtin(workgroup_id) wid: vec3<u32>) {
    let count = p.batch * p.n;
    var s = 0.0;
    for (var i = lid.x; i < count; i += WG) {
        let v = z[zoff(wid.z) + i];
        s += v * v;
    }
    red[lid.x] = s;
    workgroupBarrier();
    for (var stride = WG / 2u; stride > 0u; stride /= 2u) {
        if (lid.x < stride) { red[lid.x] += red[lid.x + stride]; }
        workgroupBarrier();
    }
    if (lid.x == 0u) { stats[wid.z] = sqrt(red[0] / f32(count)); }
}

// accuracy: argmax ŷ of each of the p.batch rows counted by (label, guess) into
// correct[label · (o + 1) + guess], guess o meaning none — the confusion matrix, whose diagonal
// is the correct count (test accuracy is the feedforward pass only; twin: data::Evaluation::of).
// Ties go to the first maximum.
@compute @workgroup_size(WG)
fn accuracy(@builtin(global_invocation_id) gid: vec3<u32>) {
    let row = gid.x;
    if (row >= p.batch) { return; }
    // As the CPU: strictly greater than everything before, so NaNs are never chosen and a row
    // of NaNs has no guess.
    var best = p.o;
    var best_v = -3.4028234e38; // -f32::MAX (rounded down: Tint rejects literals beyond f32)
    for (var j = 0u; j < p.o; j++) {
        let v = yhat[row * p.o + j];
        if (v > best_v) { best = j; best_v = v; }
    }
    let label = labels[row];
    if (label < p.o) { atomicAdd(&correct[label * (p.o + 1u) + best], 1u); }
}

// align_sums: PC's weight gradient (g1, gh, go) against backprop's (gb1, gbh, gbo), one workgroup
// per layer l = wid.z + 1: ⟨g, g_bp⟩, ‖g‖², ‖g_bp‖² into column p.step of asums (twin:
// pcn::alignment::profile, which sums in f64).
@compute @workgroup_size(WG)
fn align_sums(@builtin(local_invocation_id) lid: vec3<u32>, @builtin(workgroup_id) wid: vec3<u32>) {
    let l = wid.z + 1u;
    let count = out_dim(l) * in_dim(l);
    let base = select(0u, (l - 2u) * p.n * p.n, l > 1u && l < big_l());
    var s = vec3<f32>(0.0);
    for (var i = lid.x; i < count; i += WG) {
        var a: f32;
        var b: f32;
        if (l == 1u) {
            a = g1[i];
            b = gb1[i];
        } else if (l == big_l()) {
            a = go[i];
            b = gbo[i];
        } else {
            a = gh[base + i];
            b = gbh[base + i];
        }
        s += vec3<f32>(a * b, a * a, b * b);
    }
    red3[lid.x] = s;
    workgroupBarrier();
    for (var stride = WG / 2u; stride > 0u; stride /= 2u) {
        if (lid.x < stride) { red3[lid.x] += red3[lid.x + stride]; }
        workgroupBarrier();
    }
    if (lid.x == 0u) {
        let at = (p.step * big_l() + l - 1u) * 3u;
        asums[at] = red3[0].x;
        asums[at + 1u] = red3[0].y;
        asums[at + 2u] = red3[0].z;
    }
}
