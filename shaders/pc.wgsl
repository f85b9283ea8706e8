// Predictive-coding training kernels (spec §2, §4, §5), prefixed at load time by common.wgsl.
// CPU twins: src/pcn/forward.rs (forward), energy.rs (errors), infer.rs (back, update), learn.rs
// (weight_grad). Every kernel covers all layers in one dispatch (workgroup grid z = layer) except the
// forward pass, which is sequential in depth: one dispatch per layer, `p.layer` says which.
//
// Buffers (row-major, f32):
//   io    x (B, D) then y (B, O)
//   z     z_1 … z_H (each (B, N)), then slot H: the drive a_1 x W_1ᵀ (constant during inference)
//   w1    W_1 (N, D)      wh   W_2 … W_H ((H−1), N, N)      wo   W_L (O, N)
//   e     e_1 … e_H (each (B, N)), then e_L (B, O)
//   back  back_k = e_{k+1} W_{k+1}, k = 1 … H (each (B, N))
//   energy E_l per inference step: row t (0 … T), column l − 1
//   g1    ∂F/∂W_1       gh   ∂F/∂W_2 … ∂F/∂W_H       go   ∂F/∂W_L
//   yhat  ŷ (B, O) of the last forward pass

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

const TILE: u32 = 16u;
// Elementwise kernels' workgroup size; keep equal to ELEMENTWISE_WG in src/gpu/kernels.rs.
override WG: u32 = 256u;

var<workgroup> ta: array<array<f32, 16>, 16>;
var<workgroup> tb: array<array<f32, 16>, 16>;
var<workgroup> red: array<f32, 256>;

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

// Σ_i in(b, i) W_l[o, i] for this thread's (b = row, o = col): the prediction's matrix product.
fn pred_tile(l: u32, lid: vec3<u32>, wid: vec3<u32>) -> f32 {
    let row = wid.y * TILE + lid.y;
    let wrow = wid.x * TILE + lid.y;
    let kdim = in_dim(l);
    let odim = out_dim(l);
    var acc = 0.0;
    for (var k0 = 0u; k0 < kdim; k0 += TILE) {
        let k = k0 + lid.x;
        var av = 0.0;
        if (row < p.batch && k < kdim) { av = in_at(l, row, k); }
        ta[lid.y][lid.x] = av;
        var bv = 0.0;
        if (wrow < odim && k < kdim) { bv = w_at(l, wrow, k); }
        tb[lid.x][lid.y] = bv;
        workgroupBarrier();
        for (var j = 0u; j < TILE; j++) { acc += ta[lid.y][j] * tb[j][lid.x]; }
        workgroupBarrier();
    }
    return acc;
}

// forward: layer p.layer of the feedforward pass (twin: pcn::forward::forward_into).
@compute @workgroup_size(16, 16)
fn forward(@builtin(local_invocation_id) lid: vec3<u32>, @builtin(workgroup_id) wid: vec3<u32>) {
    let l = p.layer;
    let acc = pred_tile(l, lid, wid);
    let row = wid.y * TILE + lid.y;
    let col = wid.x * TILE + lid.x;
    if (row >= p.batch || col >= out_dim(l)) { return; }
    let v = scale(l) * acc;
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

// errors: e_l for every layer l ≥ p.from_layer at once (twin: pcn::energy::errors_into).
@compute @workgroup_size(16, 16)
fn errors(@builtin(local_invocation_id) lid: vec3<u32>, @builtin(workgroup_id) wid: vec3<u32>) {
    let l = wid.z + 1u;
    if (l < p.from_layer || wid.x * TILE >= out_dim(l)) { return; }
    let row = wid.y * TILE + lid.y;
    let col = wid.x * TILE + lid.x;
    if (l == 1u) {
        if (row < p.batch && col < p.n) {
            let i = row * p.n + col;
            e[i] = z[i] - z[zoff(p.h) + i];
        }
        return;
    }
    let acc = pred_tile(l, lid, wid);
    if (row >= p.batch || col >= out_dim(l)) { return; }
    let pred = scale(l) * acc;
    if (l == big_l()) {
        e[eoff(l) + row * p.o + col] = io[p.batch * p.d + row * p.o + col] - pred;
    } else {
        let i = row * p.n + col;
        e[eoff(l) + i] = z[zoff(l - 1u) + i] - (tau() * z[zoff(l - 2u) + i] + pred);
    }
}

// back: back_k = e_{k+1} W_{k+1} for every hidden layer k (twin: the `with_back` product of
// pcn::energy::errors_into).
@compute @workgroup_size(16, 16)
fn back_project(@builtin(local_invocation_id) lid: vec3<u32>, @builtin(workgroup_id) wid: vec3<u32>) {
    let k = wid.z + 1u;
    let l = k + 1u;
    if (l < p.from_layer) { return; }
    let row = wid.y * TILE + lid.y;   // batch row
    let col = wid.x * TILE + lid.x;   // input feature i of W_l
    let kdim = out_dim(l);            // summed over the outputs o of W_l
    var acc = 0.0;
    for (var k0 = 0u; k0 < kdim; k0 += TILE) {
        let o = k0 + lid.x;
        var av = 0.0;
        if (row < p.batch && o < kdim) { av = e[eoff(l) + row * kdim + o]; }
        ta[lid.y][lid.x] = av;
        let ob = k0 + lid.y;
        var bv = 0.0;
        if (ob < kdim && col < p.n) { bv = w_at(l, ob, col); }
        tb[lid.y][lid.x] = bv;
        workgroupBarrier();
        for (var j = 0u; j < TILE; j++) { acc += ta[lid.y][j] * tb[j][lid.x]; }
        workgroupBarrier();
    }
    if (row < p.batch && col < p.n) { back[(k - 1u) * p.batch * p.n + row * p.n + col] = acc; }
}

// update: z_k ← z_k − η_z ∂F/∂z_k for every hidden layer (slices z < H), and E_l into row p.step of
// `energy` (slices H … H+L−1, one workgroup each). Twin: pcn::infer::infer_step.
@compute @workgroup_size(WG)
fn update(@builtin(local_invocation_id) lid: vec3<u32>, @builtin(workgroup_id) wid: vec3<u32>) {
    let bn = p.batch * p.n;
    if (wid.z < p.h) {
        let k = wid.z + 1u;
        let idx = wid.x * WG + lid.x;
        // ∂F/∂z_k involves e_k and e_{k+1}: zero below layer from − 1.
        if (p.update == 0u || idx >= bn || k + 1u < p.from_layer) { return; }
        let zi = zoff(k - 1u) + idx;
        let zv = z[zi];
        var g = e[eoff(k) + idx] - scale(k + 1u) * dphi(p.act, zv) * back[(k - 1u) * bn + idx];
        if (k < p.h) { g -= tau() * e[eoff(k + 1u) + idx]; }
        z[zi] = zv - p.eta_z * (g / f32(p.batch));
        return;
    }
    if (wid.x != 0u) { return; }
    let l = wid.z - p.h + 1u;
    let count = p.batch * out_dim(l);
    var s = 0.0;
    for (var i = lid.x; i < count; i += WG) {
        let v = e[eoff(l) + i];
        s += v * v;
    }
    red[lid.x] = s;
    workgroupBarrier();
    for (var stride = WG / 2u; stride > 0u; stride /= 2u) {
        if (lid.x < stride) { red[lid.x] += red[lid.x + stride]; }
        workgroupBarrier();
    }
    if (lid.x == 0u) { energy[p.step * big_l() + l - 1u] = 0.5 * red[0] / f32(p.batch); }
}

// weight_grad: ∂F/∂W_l = −(a_l/B) e_lᵀ in_l for every layer (twin: pcn::learn::weight_grads_into).
@compute @workgroup_size(16, 16)
fn weight_grad(@builtin(local_invocation_id) lid: vec3<u32>, @builtin(workgroup_id) wid: vec3<u32>) {
    let l = wid.z + 1u;
    let odim = out_dim(l);
    let idim = in_dim(l);
    if (wid.y * TILE >= odim || wid.x * TILE >= idim) { return; }
    let orow = wid.y * TILE + lid.y;
    let icol = wid.x * TILE + lid.x;
    var acc = 0.0;
    for (var b0 = 0u; b0 < p.batch; b0 += TILE) {
        // ta[o][b] = e_l[b, o];  tb[b][i] = in_l(b, i)
        let ob = wid.y * TILE + lid.x;
        let bb = b0 + lid.y;
        var av = 0.0;
        if (ob < odim && bb < p.batch) { av = e[eoff(l) + bb * odim + ob]; }
        ta[lid.x][lid.y] = av;
        var bv = 0.0;
        if (bb < p.batch && icol < idim) { bv = in_at(l, bb, icol); }
        tb[lid.y][lid.x] = bv;
        workgroupBarrier();
        for (var j = 0u; j < TILE; j++) { acc += ta[lid.y][j] * tb[j][lid.x]; }
        workgroupBarrier();
    }
    if (orow >= odim || icol >= idim) { return; }
    let g = -(scale(l) / f32(p.batch)) * acc;
    if (l == 1u) {
        g1[orow * p.d + icol] = g;
    } else if (l == big_l()) {
        go[orow * p.n + icol] = g;
    } else {
        gh[(l - 2u) * p.n * p.n + orow * p.n + icol] = g;
    }
}
