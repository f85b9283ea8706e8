//! Each WGSL entry point run alone, on random inputs, against its CPU twin (in the manner of
//! llm.c's `dev/` kernels): a failure names the kernel, not the iteration it broke.
//!
//! Every buffer a kernel writes is filled with NaN before it runs, so an element it should have
//! written and did not fails (NaN-aware comparison, named by index); every element it must not
//! write is checked to be bit-for-bit what it was. The twins run in float64 on the same f32 inputs;
//! the bound is 1e-5 of the output's largest magnitude (f32 sums of at most a few hundred terms).
//! Sizes are odd on purpose: B = 37 and N = 33 are not multiples of the 32-wide tiles, D = 30 and
//! O = 10 differ from N, and a tanh network has a non-zero curvature term.

// `!(err <= m)` on purpose: it is true for NaN.
#![allow(clippy::neg_cmp_op_on_partial_ord)]
// Index loops over layers read like the maths; a written range is a list of ranges.
#![allow(clippy::needless_range_loop, clippy::single_range_in_vec_init)]

mod common;

use common::*;
use pclab::gpu::layout::Params;
use pclab::gpu::{binding, GpuContext, Kernel, ELEMENTWISE_WG};
use pclab::pcn::energy::{errors_into, Workspace};
use pclab::pcn::forward::{apply_phi, branch_into, rms};
use pclab::pcn::hessian::{hvp_out, hvp_u, HessianPoint};
use pclab::pcn::infer::activity_grads_into;
use pclab::pcn::learn::{weight_grads_into, Adam, AdamConfig};
use pclab::pcn::linalg::gemm;
use pclab::pcn::network::seeded_rng;
use pclab::pcn::{Activation, Arch, Mat, Network, Param, Real};
use rand_distr::{Distribution, StandardNormal};
use std::collections::BTreeMap;
use wgpu::util::DeviceExt;

const TOL: f64 = 1e-5;
const TILE: usize = 32;

/// Buffer contents by binding.
type Data = BTreeMap<u32, Vec<f32>>;

/// Runs `kernel` once over `data` (every binding it takes must be there) with `p` at binding 0,
/// and reads every buffer back.
fn run(ctx: &GpuContext, kernel: &Kernel, p: Params, data: &Data, dims: [usize; 3]) -> Data {
    let dev = &ctx.device;
    let usage = wgpu::BufferUsages::STORAGE | wgpu::BufferUsages::COPY_SRC | wgpu::BufferUsages::COPY_DST;
    let params = dev.create_buffer_init(&wgpu::util::BufferInitDescriptor {
        label: Some("params"),
        contents: bytemuck::bytes_of(&p),
        usage: wgpu::BufferUsages::UNIFORM,
    });
    let bufs: BTreeMap<u32, wgpu::Buffer> = kernel
        .bindings
        .iter()
        .map(|&id| {
            let v = data.get(&id).unwrap_or_else(|| panic!("no data for binding {id}"));
            let v: &[f32] = if v.is_empty() { &[0.0] } else { v };
            let b = dev.create_buffer_init(&wgpu::util::BufferInitDescriptor {
                label: None,
                contents: bytemuck::cast_slice(v),
                usage,
            });
            (id, b)
        })
        .collect();
    let mut entries = vec![wgpu::BindGroupEntry {
        binding: 0,
        resource: wgpu::BindingResource::Buffer(wgpu::BufferBinding {
            buffer: &params,
            offset: 0,
            size: std::num::NonZeroU64::new(std::mem::size_of::<Params>() as u64),
        }),
    }];
    entries.extend(bufs.iter().map(|(&id, b)| wgpu::BindGroupEntry { binding: id, resource: b.as_entire_binding() }));
    let group =
        dev.create_bind_group(&wgpu::BindGroupDescriptor { label: None, layout: &kernel.layout, entries: &entries });
    let reads: BTreeMap<u32, wgpu::Buffer> = bufs
        .iter()
        .map(|(&id, b)| {
            let r = dev.create_buffer(&wgpu::BufferDescriptor {
                label: None,
                size: b.size(),
                usage: wgpu::BufferUsages::MAP_READ | wgpu::BufferUsages::COPY_DST,
                mapped_at_creation: false,
            });
            (id, r)
        })
        .collect();
    let mut enc = dev.create_command_encoder(&wgpu::CommandEncoderDescriptor { label: None });
    {
        let mut pass = enc.begin_compute_pass(&wgpu::ComputePassDescriptor { label: None, timestamp_writes: None });
        pass.set_pipeline(&kernel.pipeline);
        pass.set_bind_group(0, &group, &[0]);
        pass.dispatch_workgroups(dims[0] as u32, dims[1] as u32, dims[2] as u32);
    }
    for (id, b) in &bufs {
        enc.copy_buffer_to_buffer(b, 0, &reads[id], 0, None);
    }
    ctx.queue.submit([enc.finish()]);
    let mut out = Data::new();
    for (&id, r) in &reads {
        let (tx, rx) = std::sync::mpsc::channel();
        r.map_async(wgpu::MapMode::Read, .., move |res| {
            let _ = tx.send(res);
        });
        let mut mapped = None;
        for _ in 0..10_000 {
            dev.poll(wgpu::PollType::wait_indefinitely()).expect("poll");
            if let Ok(res) = rx.try_recv() {
                mapped = Some(res);
                break;
            }
            std::thread::sleep(std::time::Duration::from_millis(1));
        }
        mapped.expect("the map callback fired").expect("mapped");
        let v = bytemuck::cast_slice::<u8, f32>(&r.get_mapped_range(..).expect("range")).to_vec();
        r.unmap();
        out.insert(id, v[..data[&id].len()].to_vec());
    }
    ctx.check_lost().expect("no device error");
    out
}

fn nan(len: usize) -> Vec<f32> {
    vec![f32::NAN; len]
}

fn to64(v: &[f32]) -> Vec<f64> {
    v.iter().map(|&x| x as f64).collect()
}

fn cast<A: Real, B: Real>(m: &Mat<A>) -> Mat<B> {
    Mat { rows: m.rows, cols: m.cols, data: m.data.iter().map(|&v| B::of(v.f64())).collect() }
}

fn concat(ms: &[Mat<f32>]) -> Vec<f32> {
    ms.iter().flat_map(|m| m.data.iter().copied()).collect()
}

/// One kernel's verdict: its largest error and what failed.
#[derive(Default)]
struct Verdict {
    checker: Checker,
    untouched: Vec<String>,
}

impl Verdict {
    fn close(&mut self, what: &str, got: &[f32], want: &[f64]) {
        self.checker.values(what, got, want, TOL);
    }
    /// `got[range]` must be bit-for-bit `before[range]`.
    fn untouched(&mut self, what: &str, got: &[f32], before: &[f32], range: std::ops::Range<usize>) {
        if let Some(i) = range.clone().find(|&i| got[i].to_bits() != before[i].to_bits()) {
            self.untouched
                .push(format!("{what}: [{i}] was written ({} → {}), which it must not be", before[i], got[i]));
        }
    }
    fn failures(&self) -> Vec<String> {
        let mut f = self.checker.failures();
        f.extend(self.untouched.iter().cloned());
        f
    }
    fn largest(&self) -> f64 {
        self.checker.entries.values().fold(0.0, |m, e| if !(e.err <= m) { e.err } else { m })
    }
}

/// A random tanh network with skips at odd sizes, a batch, and random activities (not the
/// feedforward point, so every error is non-zero).
struct State {
    arch: Arch,
    b: usize,
    net: Network<f32>,
    net64: Network<f64>,
    x: Mat<f32>,
    y: Mat<f32>,
    z: Vec<Mat<f32>>,
    drive: Mat<f32>,
    rng: rand_chacha::ChaCha8Rng,
}

impl State {
    fn new(act: Activation, param: Param) -> Self {
        let arch = Arch { input: 30, width: 33, hidden: 3, output: 10, act, skips: true, param };
        let b = 37;
        let net: Network<f32> = Network::init(arch, 11);
        let net64 = Network::from_weights(arch, net.scalings, net.weights.iter().map(cast).collect()).expect("weights");
        let mut rng = seeded_rng(5, 3);
        let mut m = |r, c, s: f64| Mat {
            rows: r,
            cols: c,
            data: (0..r * c)
                .map(|_| {
                    let v: f64 = StandardNormal.sample(&mut rng);
                    (s * v) as f32
                })
                .collect(),
        };
        let (x, y) = (m(b, arch.input, 1.0), m(b, arch.output, 0.5));
        let z = (0..arch.hidden).map(|_| m(b, arch.width, 0.7)).collect();
        let drive = m(b, arch.width, 0.7);
        State { arch, b, net, net64, x, y, z, drive, rng: seeded_rng(6, 3) }
    }

    fn random(&mut self, len: usize, scale: f64) -> Vec<f32> {
        (0..len)
            .map(|_| {
                let v: f64 = StandardNormal.sample(&mut self.rng);
                (scale * v) as f32
            })
            .collect()
    }

    fn params(&self) -> Params {
        let (a, s) = (&self.arch, &self.net.scalings);
        Params {
            batch: self.b as u32,
            d: a.input as u32,
            n: a.width as u32,
            o: a.output as u32,
            h: a.hidden as u32,
            act: a.act.code(),
            skips: a.skips as u32,
            from_layer: 1,
            a_in: s.a_in as f32,
            a_h: s.a_hidden as f32,
            a_out: s.a_out as f32,
            grad_scale: 1.0,
            ..Default::default()
        }
    }

    fn bn(&self) -> usize {
        self.b * self.arch.width
    }

    /// `z_1 … z_H` then the drive, as `pc.wgsl` lays them out.
    fn z_buffer(&self) -> Vec<f32> {
        let mut v = concat(&self.z);
        v.extend_from_slice(&self.drive.data);
        v
    }

    fn weights(&self, d: &mut Data) {
        let h = self.arch.hidden;
        d.insert(binding::W1, self.net.weights[0].data.clone());
        d.insert(binding::WH, concat(&self.net.weights[1..h]));
        d.insert(binding::WO, self.net.weights[h].data.clone());
    }

    fn io(&self) -> Vec<f32> {
        let mut v = self.x.data.clone();
        v.extend_from_slice(&self.y.data);
        v
    }

    /// Random errors `e_1 … e_H, e_L`, as matrices and as `pc.wgsl`'s buffer.
    fn random_errors(&mut self) -> (Vec<Mat<f32>>, Vec<f32>) {
        let (b, n, o, h) = (self.b, self.arch.width, self.arch.output, self.arch.hidden);
        let e: Vec<Mat<f32>> = (1..=h + 1)
            .map(|l| {
                let c = if l == h + 1 { o } else { n };
                Mat { rows: b, cols: c, data: self.random(b * c, 0.3) }
            })
            .collect();
        let flat = concat(&e);
        (e, flat)
    }

    fn z64(&self) -> Vec<Mat<f64>> {
        self.z.iter().map(cast).collect()
    }

    /// A float64 workspace holding errors `e` and, for layers ≥ 2, `φ(z_{l−1})` and `back`.
    fn workspace(&self, e: &[Mat<f32>], back: Option<&[Mat<f32>]>) -> Workspace<f64> {
        let mut ws = Workspace::new(&self.net64, self.b);
        let z = self.z64();
        for (l, buf) in ws.layers.iter_mut().enumerate().map(|(k, b)| (k + 1, b)) {
            buf.e = cast(&e[l - 1]);
            if l >= 2 {
                apply_phi(self.arch.act, &z[l - 2], &mut buf.phi_in);
                if let Some(back) = back {
                    buf.back = cast(&back[l - 2]);
                }
            }
        }
        ws
    }
}

fn tiles(v: usize) -> usize {
    v.div_ceil(TILE)
}

fn check_forward(ctx: &GpuContext, st: &mut State) -> Verdict {
    let (b, n, o, h) = (st.b, st.arch.width, st.arch.output, st.arch.hidden);
    let bn = st.bn();
    let mut v = Verdict::default();
    let z64 = st.z64();
    let x64: Mat<f64> = cast(&st.x);
    for l in [1, 2, h, h + 1] {
        let mut d = Data::new();
        d.insert(binding::IO, st.io());
        st.weights(&mut d);
        let mut zb = st.z_buffer();
        let written: Vec<std::ops::Range<usize>> = match l {
            1 => vec![0..bn, h * bn..(h + 1) * bn],
            l if l <= h => vec![(l - 1) * bn..l * bn],
            _ => vec![],
        };
        for r in &written {
            zb[r.clone()].fill(f32::NAN);
        }
        d.insert(binding::Z, zb.clone());
        d.insert(binding::YHAT, nan(b * o));
        let out_dim = if l == h + 1 { o } else { n };
        let p = Params { layer: l as u32, ..st.params() };
        let got = run(ctx, &ctx.kernels().forward, p, &d, [tiles(out_dim), tiles(b), 1]);
        let mut want = vec![0.0; b * out_dim];
        if l == 1 {
            gemm(st.net64.a(1), x64.view(), st.net64.weights[0].view().t(), 0.0, &mut want);
            v.close("forward z_1", &got[&binding::Z][..bn], &want);
            v.close("forward drive", &got[&binding::Z][h * bn..], &want);
        } else {
            let mut phi = Mat::zeros(b, n);
            branch_into(&st.net64, l, &z64[l - 2], &mut phi, &mut want);
            if l <= h {
                let tau = st.arch.tau();
                for (w, &p) in want.iter_mut().zip(&z64[l - 2].data) {
                    *w += tau * p;
                }
                v.close(&format!("forward z_{l}"), &got[&binding::Z][(l - 1) * bn..l * bn], &want);
            } else {
                v.close("forward ŷ", &got[&binding::YHAT], &want);
            }
        }
        // Nothing else of z moves.
        let mut rest: Vec<usize> = (0..zb.len()).filter(|i| !written.iter().any(|r| r.contains(i))).collect();
        rest.dedup();
        for i in rest {
            v.untouched(&format!("forward (layer {l}) z"), &got[&binding::Z], &zb, i..i + 1);
        }
    }
    v
}

fn check_errors(ctx: &GpuContext, st: &mut State) -> Verdict {
    let (b, n, o, h) = (st.b, st.arch.width, st.arch.output, st.arch.hidden);
    let bn = st.bn();
    let mut v = Verdict::default();
    for from in [1, h] {
        let mut d = Data::new();
        d.insert(binding::IO, st.io());
        d.insert(binding::Z, st.z_buffer());
        st.weights(&mut d);
        let poisoned = nan(h * bn + b * o);
        d.insert(binding::E, poisoned.clone());
        // Step 1 of T = 2: its rows of tile sums are written, the others stay.
        let (steps, step, big_l) = (2, 1, h + 1);
        let (tx, ty) = (tiles(n.max(o)), tiles(b));
        let per_layer = tx * ty;
        let sums = nan((steps + 1) * big_l * per_layer);
        d.insert(binding::EPART, sums.clone());
        let p = Params { from_layer: from as u32, step: step as u32, ..st.params() };
        // The grid covers layers from … L only.
        let got = run(ctx, &ctx.kernels().errors, p, &d, [tx, ty, h + 2 - from]);
        let mut ws = Workspace::new(&st.net64, b);
        ws.drive = cast(&st.drive);
        errors_into(&st.net64, &cast(&st.y), &st.z64(), &mut ws, false, from);
        let mut written = Vec::new();
        for l in 1..=big_l {
            let at = (l - 1) * bn;
            let e = &ws.layers[l - 1].e;
            let len = e.data.len();
            let label = format!("errors (from {from}) e_{l}");
            if l >= from {
                v.close(&label, &got[&binding::E][at..at + len], &e.data);
                // Each output tile's Σ e² (tiles past a narrow layer's width are not written).
                for (yy, xx) in (0..ty).flat_map(|yy| (0..tx).map(move |xx| (yy, xx))) {
                    if xx * TILE >= e.cols {
                        continue;
                    }
                    let mut want = 0.0;
                    for r in yy * TILE..((yy + 1) * TILE).min(b) {
                        for c in xx * TILE..((xx + 1) * TILE).min(e.cols) {
                            want += e.data[r * e.cols + c].powi(2);
                        }
                    }
                    let i = (step * big_l + l - 1) * per_layer + yy * tx + xx;
                    v.close(&format!("{label} tile ({yy}, {xx}) Σe²"), &got[&binding::EPART][i..i + 1], &[want]);
                    written.push(i);
                }
            } else {
                v.untouched(&label, &got[&binding::E], &poisoned, at..at + len);
            }
        }
        for i in (0..sums.len()).filter(|i| !written.contains(i)) {
            v.untouched(&format!("errors (from {from}) other tile sums"), &got[&binding::EPART], &sums, i..i + 1);
        }
    }
    v
}

fn check_energies(ctx: &GpuContext, st: &mut State) -> Verdict {
    let (b, h) = (st.b, st.arch.hidden);
    let (steps, per_layer) = (3, 5);
    let table = (steps + 1) * (h + 1);
    let mut v = Verdict::default();
    let sums = st.random(table * per_layer, 2.0).iter().map(|x| x.abs()).collect::<Vec<f32>>();
    let mut d = Data::new();
    d.insert(binding::EPART, sums.clone());
    d.insert(binding::ENERGY, nan(table));
    let p = Params { step: steps as u32, count: per_layer as u32, ..st.params() };
    let got = run(ctx, &ctx.kernels().energies, p, &d, [table.div_ceil(ELEMENTWISE_WG as usize), 1, 1]);
    let want: Vec<f64> =
        sums.chunks(per_layer).map(|c| 0.5 * c.iter().map(|&x| x as f64).sum::<f64>() / b as f64).collect();
    v.close("energies E_l per step", &got[&binding::ENERGY], &want);
    v.untouched("energies (tile sums)", &got[&binding::EPART], &sums, 0..sums.len());
    v
}

fn check_back_project(ctx: &GpuContext, st: &mut State) -> Verdict {
    let (b, n, h) = (st.b, st.arch.width, st.arch.hidden);
    let bn = st.bn();
    let mut v = Verdict::default();
    let (e, flat) = st.random_errors();
    for from in [1, h] {
        let mut d = Data::new();
        st.weights(&mut d);
        d.insert(binding::E, flat.clone());
        let poisoned = nan(h * bn);
        d.insert(binding::BACK, poisoned.clone());
        let p = Params { from_layer: from as u32, ..st.params() };
        let got = run(ctx, &ctx.kernels().back_project, p, &d, [tiles(n), tiles(b), h]);
        for k in 1..=h {
            let l = k + 1;
            let range = (k - 1) * bn..k * bn;
            if l >= from {
                // The product `errors_into` forms with `with_back`: e_l W_l.
                let mut want = vec![0.0; bn];
                gemm(1.0, cast::<f32, f64>(&e[l - 1]).view(), st.net64.weights[l - 1].view(), 0.0, &mut want);
                v.close(&format!("back_project (from {from}) back_{k}"), &got[&binding::BACK][range], &want);
            } else {
                v.untouched(&format!("back_project (from {from}) back_{k}"), &got[&binding::BACK], &poisoned, range);
            }
        }
    }
    v
}

fn check_back_update(ctx: &GpuContext, st: &mut State) -> Verdict {
    let (b, n, h) = (st.b, st.arch.width, st.arch.hidden);
    let bn = st.bn();
    let eta_z = 0.3;
    let mut v = Verdict::default();
    let (e, flat) = st.random_errors();
    // The back-projections e_l W_l in float64, as `errors_into` forms them with `with_back`.
    let mut ws = st.workspace(&e, None);
    for l in 2..=h + 1 {
        let mut back = vec![0.0; bn];
        gemm(1.0, cast::<f32, f64>(&e[l - 1]).view(), st.net64.weights[l - 1].view(), 0.0, &mut back);
        ws.layers[l - 1].back = Mat { rows: b, cols: n, data: back };
    }
    let z64 = st.z64();
    let mut grads = z64.clone();
    activity_grads_into(&st.net64, &z64, &ws, &mut grads);
    for from in [1, 2, h + 1] {
        let mut d = Data::new();
        st.weights(&mut d);
        let zb = st.z_buffer();
        d.insert(binding::Z, zb.clone());
        d.insert(binding::E, flat.clone());
        // The layers that move (∂F/∂z_k needs e_k or e_{k+1}: k + 1 ≥ from); the grid covers them only.
        let lowest = from.saturating_sub(1).max(1);
        let p = Params { from_layer: from as u32, layer: lowest as u32, eta_z, ..st.params() };
        let got = run(ctx, &ctx.kernels().back_update, p, &d, [tiles(n), tiles(b), h + 1 - lowest]);
        let label = format!("back_update (from {from})");
        for k in 1..=h {
            let range = (k - 1) * bn..k * bn;
            if k >= lowest {
                let want: Vec<f64> =
                    z64[k - 1].data.iter().zip(&grads[k - 1].data).map(|(z, g)| z - eta_z as f64 * g).collect();
                v.close(&format!("{label} z_{k}"), &got[&binding::Z][range], &want);
            } else {
                v.untouched(&format!("{label} z_{k}"), &got[&binding::Z], &zb, range);
            }
        }
        v.untouched(&format!("{label} drive"), &got[&binding::Z], &zb, h * bn..(h + 1) * bn);
        v.untouched(&format!("{label} e"), &got[&binding::E], &flat, 0..flat.len());
    }
    v
}

fn check_weight_grad(ctx: &GpuContext, st: &mut State) -> Verdict {
    let (d_in, n, o, h) = (st.arch.input, st.arch.width, st.arch.output, st.arch.hidden);
    let mut v = Verdict::default();
    let (e, flat) = st.random_errors();
    for grad_scale in [1.0f32, 2.0 / o as f32] {
        let mut d = Data::new();
        d.insert(binding::IO, st.io());
        d.insert(binding::Z, st.z_buffer());
        d.insert(binding::E, flat.clone());
        d.insert(binding::G1, nan(n * d_in));
        d.insert(binding::GH, nan((h - 1) * n * n));
        d.insert(binding::GO, nan(o * n));
        let p = Params { grad_scale, ..st.params() };
        let got = run(ctx, &ctx.kernels().weight_grad, p, &d, [tiles(d_in.max(n)), tiles(n.max(o)), h + 1]);
        let ws = st.workspace(&e, None);
        let mut grads = pclab::pcn::learn::zeros_like(&st.net64);
        weight_grads_into(&st.net64, &cast(&st.x), &ws, &mut grads);
        let s = grad_scale as f64;
        let scaled = |m: &Mat<f64>| m.data.iter().map(|g| s * g).collect::<Vec<f64>>();
        v.close(&format!("weight_grad (×{s:.2}) ∂W_1"), &got[&binding::G1], &scaled(&grads[0]));
        let hidden: Vec<f64> = grads[1..h].iter().flat_map(scaled).collect();
        v.close(&format!("weight_grad (×{s:.2}) ∂W_2..W_H"), &got[&binding::GH], &hidden);
        v.close(&format!("weight_grad (×{s:.2}) ∂W_L"), &got[&binding::GO], &scaled(&grads[h]));
    }
    v
}

fn check_bp_back(ctx: &GpuContext, st: &mut State) -> Verdict {
    let (b, n, h) = (st.b, st.arch.width, st.arch.hidden);
    let bn = st.bn();
    let mut v = Verdict::default();
    let z64 = st.z64();
    for l in [h + 1, h, 2] {
        let (e, mut flat) = st.random_errors();
        let below = (l - 2) * bn..(l - 1) * bn;
        flat[below.clone()].fill(f32::NAN);
        let mut d = Data::new();
        d.insert(binding::Z, st.z_buffer());
        st.weights(&mut d);
        d.insert(binding::E, flat.clone());
        let p = Params { layer: l as u32, ..st.params() };
        let got = run(ctx, &ctx.kernels().bp_back, p, &d, [tiles(n), tiles(b), 1]);
        let (mut back, mut want) = (Mat::zeros(b, n), Mat::zeros(b, n));
        pclab::pcn::bp::back_step(&st.net64, l, &cast(&e[l - 1]), &z64[l - 2], &mut back, &mut want);
        v.close(&format!("bp_back (layer {l}) e_{}", l - 1), &got[&binding::E][below.clone()], &want.data);
        v.untouched(&format!("bp_back (layer {l}) other errors"), &got[&binding::E], &flat, 0..below.start);
        v.untouched(&format!("bp_back (layer {l}) other errors"), &got[&binding::E], &flat, below.end..flat.len());
    }
    v
}

fn check_act_rms(ctx: &GpuContext, st: &mut State, layers: usize) -> Verdict {
    let h = st.arch.hidden;
    let mut v = Verdict::default();
    let mut d = Data::new();
    d.insert(binding::Z, st.z_buffer());
    let stats = nan(h + 2 * (h + 1));
    d.insert(binding::STATS, stats.clone());
    let got = run(ctx, &ctx.kernels().act_rms, st.params(), &d, [1, 1, layers]);
    v.close("act_rms", &got[&binding::STATS][..h], &rms(&st.z64()));
    v.untouched("act_rms (weight stats)", &got[&binding::STATS], &stats, h..stats.len());
    v
}

fn check_accuracy(ctx: &GpuContext, st: &mut State) -> Verdict {
    let (b, o) = (st.b, st.arch.output);
    let mut v = Verdict::default();
    let mut yhat = st.random(b * o, 1.0);
    yhat[3 * o..4 * o].fill(f32::NAN); // a row of NaNs counts as wrong
    yhat[5 * o + 2] = yhat[5 * o..6 * o].iter().fold(f32::MIN, |m, &x| m.max(x)); // a tie: the first wins
    let labels: Vec<u8> = (0..b).map(|r| ((r * 3) % o) as u8).collect();
    // About half the rows right.
    for r in (0..b).step_by(2).filter(|&r| r != 3) {
        yhat[r * o + labels[r] as usize] = 10.0;
    }
    let y = Mat { rows: b, cols: o, data: yhat.clone() };
    let mut d = Data::new();
    d.insert(binding::YHAT, yhat);
    d.insert(binding::LABELS, labels.iter().map(|&l| f32::from_bits(l as u32)).collect());
    // Counts by (label, guess), guess o meaning none, each starting from 5 (the kernel adds).
    let cells = o * (o + 1);
    d.insert(binding::CORRECT, vec![f32::from_bits(5); cells]);
    let got = run(ctx, &ctx.kernels().accuracy, st.params(), &d, [b.div_ceil(ELEMENTWISE_WG as usize), 1, 1]);
    let want = pclab::data::Evaluation::of(&y, &labels);
    let counted: Vec<u32> = got[&binding::CORRECT].iter().map(|c| c.to_bits() - 5).collect();
    let from_gpu = pclab::data::Evaluation::from_counts(&counted, o, Vec::new());
    let off =
        |a: &[Vec<u32>], b: &[Vec<u32>]| a.iter().flatten().zip(b.iter().flatten()).map(|(x, y)| x.abs_diff(*y)).max();
    v.checker.scalar(
        "confusion counts (largest difference of a cell)",
        off(&from_gpu.confusion, &want.confusion).unwrap_or(u32::MAX) as f64,
        0.0,
        0.0,
    );
    v.checker.scalar(
        "images without a guess (the row of NaNs)",
        from_gpu.no_guess.iter().sum::<u32>() as f64,
        1.0,
        0.0,
    );
    v.checker.scalar("accuracy (percent)", from_gpu.accuracy, pclab::data::accuracy(&y, &labels), 0.0);
    v
}

/// Adam over the hidden-weights buffer, resumed after two updates, then its stats.
fn check_adam(ctx: &GpuContext, st: &mut State) -> (Verdict, Verdict) {
    use binding::adam::*;
    let (n, h) = (st.arch.width, st.arch.hidden);
    let cfg = AdamConfig::default();
    let (lr, t) = (0.01, 3);
    let mats = |st: &mut State, scale: f64, positive: bool| -> Vec<Mat<f32>> {
        (0..h - 1)
            .map(|_| {
                let mut data = st.random(n * n, scale);
                if positive {
                    data.iter_mut().for_each(|x| *x = x.abs());
                }
                Mat { rows: n, cols: n, data }
            })
            .collect()
    };
    let w: Vec<Mat<f32>> = st.net.weights[1..h].to_vec();
    let g = mats(st, 1e-2, false);
    let m = mats(st, 1e-2, false);
    let vv = mats(st, 1e-4, true);
    // A few gradients at Adam's ε scale, where the step is most sensitive.
    let mut g = g;
    g[0].data[..5].iter_mut().for_each(|x| *x *= 1e-6);
    let count = (h - 1) * n * n;
    let mut d = Data::new();
    d.insert(W, concat(&w));
    d.insert(G, concat(&g));
    d.insert(M, concat(&m));
    d.insert(V, concat(&vv));
    let p = Params {
        count: count as u32,
        lr: lr as f32,
        beta1: cfg.beta1 as f32,
        beta2: cfg.beta2 as f32,
        eps: cfg.eps as f32,
        bc1: (1.0 - cfg.beta1.powi(t)) as f32,
        bc2: (1.0 - cfg.beta2.powi(t)) as f32,
        ..st.params()
    };
    // Fewer workgroups than elements: each strides.
    let got = run(ctx, &ctx.kernels().adam, p, &d, [3, 1, 1]);
    let c64 = |v: &[Mat<f32>]| v.iter().map(cast).collect::<Vec<Mat<f64>>>();
    let mut adam = Adam::resume(lr, cfg, (t - 1) as u64, c64(&m), c64(&vv));
    let mut after = c64(&w);
    let rel = adam.step(&mut after, &c64(&g));
    let flat = |v: &[Mat<f64>]| v.iter().flat_map(|m| m.data.iter().copied()).collect::<Vec<f64>>();
    let mut va = Verdict::default();
    let (m_after, v_after) = adam.moments();
    va.close("adam W", &got[&W], &flat(&after));
    va.close("adam m", &got[&M], &flat(m_after));
    va.close("adam v", &got[&V], &flat(v_after));
    va.untouched("adam g", &got[&G], &d[&G], 0..count);

    // adam_stats over what the Adam kernel left: ‖W_before‖² and ‖ΔW‖² per matrix.
    let big_l = h + 1;
    let stats = nan(h + 2 * big_l);
    let mut ds = Data::new();
    ds.insert(W, got[&W].clone());
    ds.insert(M, got[&M].clone());
    ds.insert(V, got[&V].clone());
    ds.insert(STATS, stats.clone());
    let ps = Params { layer: 1, count: (n * n) as u32, ..p };
    let gs = run(ctx, &ctx.kernels().adam_stats, ps, &ds, [1, 1, h - 1]);
    let mut vs = Verdict::default();
    let before2: Vec<f64> = w.iter().map(|m| cast::<f32, f64>(m).sum_sq()).collect();
    let s = &gs[&STATS];
    vs.close("adam_stats ‖W_before‖²", &s[h + 1..h + h], &before2);
    let got_rel: Vec<f32> = (1..h).map(|m| (s[h + big_l + m] / s[h + m]).sqrt()).collect();
    vs.close("adam_stats ‖ΔW‖/‖W‖", &got_rel, &rel);
    vs.untouched("adam_stats (other matrices)", s, &stats, 0..h + 1);
    vs.untouched("adam_stats (other matrices)", s, &stats, h + h..h + big_l + 1);
    vs.untouched("adam_stats (other matrices)", s, &stats, h + big_l + h..stats.len());
    (va, vs)
}

/// The Hessian points of every sample at `z`, and `v` stacked `(H, B, N)` as `hvp.wgsl` wants,
/// with each sample's own stacked `(z_1 … z_H)` vector.
fn hvp_inputs(st: &mut State) -> (Vec<HessianPoint<f64>>, Vec<f32>, Vec<Vec<f64>>) {
    let (b, n, h) = (st.b, st.arch.width, st.arch.hidden);
    let (x, y, z) = (cast(&st.x), cast(&st.y), st.z64());
    let points: Vec<HessianPoint<f64>> = (0..b).map(|s| HessianPoint::new(&st.net64, &x, &y, &z, s)).collect();
    let v = st.random(h * b * n, 1.0);
    let per_sample: Vec<Vec<f64>> =
        (0..b).map(|s| (0..h).flat_map(|l| to64(&v[(l * b + s) * n..(l * b + s + 1) * n])).collect()).collect();
    (points, v, per_sample)
}

fn check_hvp(ctx: &GpuContext, st: &mut State) -> (Verdict, Verdict) {
    let (b, n, o, h) = (st.b, st.arch.width, st.arch.output, st.arch.hidden);
    let bn = st.bn();
    let (points, v, per_sample) = hvp_inputs(st);
    let zb = concat(&st.z);
    let us: Vec<Vec<Vec<f64>>> = (0..b).map(|s| hvp_u(&st.net64, &points[s], &per_sample[s])).collect();
    // hvp_u: u_l of every layer, laid out like the errors.
    let mut d = Data::new();
    d.insert(binding::Z, zb.clone());
    st.weights(&mut d);
    d.insert(binding::E, nan(h * bn + b * o));
    d.insert(binding::HV_V, v.clone());
    let got = run(ctx, &ctx.kernels().hvp_u, st.params(), &d, [tiles(n.max(o)), tiles(b), h + 1]);
    let mut vu = Verdict::default();
    for l in 1..=h + 1 {
        let cols = if l == h + 1 { o } else { n };
        let want: Vec<f64> = (0..b).flat_map(|s| us[s][l - 1].iter().copied()).collect();
        vu.close(&format!("hvp_u u_{l}"), &got[&binding::E][(l - 1) * bn..(l - 1) * bn + b * cols], &want);
    }
    // hvp_out, given u and back_k = u_{k+1} W_{k+1} (back_project's product).
    let u_flat: Vec<f32> = (1..=h + 1)
        .flat_map(|l| (0..b).map(move |s| (l, s)))
        .flat_map(|(l, s)| us[s][l - 1].iter().map(|&x| x as f32).collect::<Vec<_>>())
        .collect();
    let mut back = Vec::with_capacity(h * bn);
    for k in 1..=h {
        let u_next =
            Mat { rows: b, cols: if k == h { o } else { n }, data: (0..b).flat_map(|s| us[s][k].clone()).collect() };
        let mut out = vec![0.0; bn];
        gemm(1.0, u_next.view(), st.net64.weights[k].view(), 0.0, &mut out);
        back.extend(out.iter().map(|&x| x as f32));
    }
    let curv: Vec<f32> =
        (0..h).flat_map(|l| points.iter().flat_map(move |p| p.curv[l].iter().map(|&c| c as f32))).collect();
    let mut d = Data::new();
    d.insert(binding::Z, zb);
    d.insert(binding::E, u_flat);
    d.insert(binding::BACK, back);
    d.insert(binding::HV_V, v);
    d.insert(binding::HV_CURV, curv);
    d.insert(binding::HV_OUT, nan(h * bn));
    let groups = bn.div_ceil(ELEMENTWISE_WG as usize).min(2);
    let got = run(ctx, &ctx.kernels().hvp_out, st.params(), &d, [groups, 1, h]);
    let hv: Vec<Vec<f64>> = (0..b).map(|s| hvp_out(&st.net64, &points[s], &per_sample[s], &us[s])).collect();
    let want: Vec<f64> = (0..h)
        .flat_map(|l| (0..b).map(move |s| (l, s)))
        .flat_map(|(l, s)| hv[s][l * n..(l + 1) * n].to_vec())
        .collect();
    let mut vo = Verdict::default();
    vo.close("hvp_out (Hv)", &got[&binding::HV_OUT], &want);
    (vu, vo)
}

/// The Lanczos kernels over stacked `(H, B, N)` vectors: dots, orthogonalisation, norm, next.
/// Twins: the operations of `pcn::hessian::Lanczos::step`, written out per sample in f64.
fn check_lanczos(ctx: &GpuContext, st: &mut State) -> [Verdict; 4] {
    let (b, n, h) = (st.b, st.arch.width, st.arch.hidden);
    let count = h * b * n;
    let j = 2usize; // this iteration; the basis holds q_0 … q_j
    let beta0 = 8 * b; // where β_0 sits in lz_ab (after room for 8 α rows)
    let stacked = |s: usize, e: usize| {
        let l = e / n;
        (l * b + s) * n + (e - l * n)
    };
    let w = st.random(count, 1.0);
    let mut basis = st.random((j + 2) * count, 0.2);
    let p = Params { count: count as u32, layer: beta0 as u32, step: j as u32, update: 1, ..st.params() };
    let ab_len = beta0 + 8 * b;
    let dot = |a: &[f32], ao: usize, c: &[f32], s: usize| -> f64 {
        (0..h * n).map(|e| a[ao + stacked(s, e)] as f64 * c[stacked(s, e)] as f64).sum()
    };

    // lz_dots: c_i,s = ⟨q_i, w⟩, α_j = c_j.
    let mut d = Data::new();
    d.insert(binding::HV_OUT, w.clone());
    d.insert(binding::LZ_BASIS, basis.clone());
    d.insert(binding::LZ_COEF, nan((j + 1) * b));
    let ab = nan(ab_len);
    d.insert(binding::LZ_AB, ab.clone());
    let got = run(ctx, &ctx.kernels().lz_dots, p, &d, [j + 1, b, 1]);
    let coef_want: Vec<f64> =
        (0..=j).flat_map(|i| (0..b).map(move |s| (i, s))).map(|(i, s)| dot(&basis, i * count, &w, s)).collect();
    let mut v1 = Verdict::default();
    v1.close("lz_dots c", &got[&binding::LZ_COEF], &coef_want);
    v1.close("lz_dots α_j", &got[&binding::LZ_AB][j * b..(j + 1) * b], &coef_want[j * b..]);
    v1.untouched("lz_dots (other α, β)", &got[&binding::LZ_AB], &ab, 0..j * b);
    v1.untouched("lz_dots (other α, β)", &got[&binding::LZ_AB], &ab, (j + 1) * b..ab_len);

    // lz_orth: w ← w − Σ_{i ≤ j} c_i,s q_i.
    let coef = st.random((j + 1) * b, 0.5);
    let mut d = Data::new();
    d.insert(binding::HV_OUT, w.clone());
    d.insert(binding::LZ_BASIS, basis.clone());
    d.insert(binding::LZ_COEF, coef.clone());
    let got = run(ctx, &ctx.kernels().lz_orth, p, &d, [2, 1, 1]);
    let want: Vec<f64> = (0..count)
        .map(|k| {
            let s = (k / n) % b;
            w[k] as f64 - (0..=j).map(|i| coef[i * b + s] as f64 * basis[i * count + k] as f64).sum::<f64>()
        })
        .collect();
    let mut v2 = Verdict::default();
    v2.close("lz_orth w", &got[&binding::HV_OUT], &want);

    // lz_norm: β_j,s = ‖w_s‖.
    let mut d = Data::new();
    d.insert(binding::HV_OUT, w.clone());
    d.insert(binding::LZ_AB, ab.clone());
    let got = run(ctx, &ctx.kernels().lz_norm, p, &d, [1, b, 1]);
    let norms: Vec<f64> = (0..b).map(|s| dot(&w, 0, &w, s).sqrt()).collect();
    let at = beta0 + j * b;
    let mut v3 = Verdict::default();
    v3.close("lz_norm β_j", &got[&binding::LZ_AB][at..at + b], &norms);
    v3.untouched("lz_norm (other α, β)", &got[&binding::LZ_AB], &ab, 0..at);
    v3.untouched("lz_norm (other α, β)", &got[&binding::LZ_AB], &ab, at + b..ab_len);

    // lz_next: q_{j+1} = w / β_j (zero for a sample whose β is 0), into the basis and into v.
    let mut ab = ab;
    for s in 0..b {
        ab[at + s] = if s == 4 { 0.0 } else { norms[s] as f32 };
    }
    let next = (j + 1) * count..(j + 2) * count;
    basis[next.clone()].fill(f32::NAN);
    let mut d = Data::new();
    d.insert(binding::HV_V, nan(count));
    d.insert(binding::HV_OUT, w.clone());
    d.insert(binding::LZ_BASIS, basis.clone());
    d.insert(binding::LZ_AB, ab.clone());
    let got = run(ctx, &ctx.kernels().lz_next, p, &d, [2, 1, 1]);
    let want: Vec<f64> = (0..count)
        .map(|k| {
            let beta = ab[at + (k / n) % b] as f64;
            if beta > 0.0 {
                w[k] as f64 / beta
            } else {
                0.0
            }
        })
        .collect();
    let mut v4 = Verdict::default();
    v4.close("lz_next q_{j+1}", &got[&binding::LZ_BASIS][next.clone()], &want);
    v4.close("lz_next v", &got[&binding::HV_V], &want);
    v4.untouched("lz_next (earlier basis)", &got[&binding::LZ_BASIS], &basis, 0..next.start);
    [v1, v2, v3, v4]
}

/// Every kernel's check on `ctx`, for a tanh network under standard PC and a GELU one under μPC.
fn every_kernel(ctx: &GpuContext) -> Vec<(String, Verdict)> {
    let mut rows: Vec<(String, Verdict)> = Vec::new();
    for (act, param) in [(Activation::Tanh, Param::Sp), (Activation::Gelu, Param::Mupc)] {
        let mut st = State::new(act, param);
        let tag = |name: &str| format!("{name} [{act} {param:?}]");
        rows.push((tag("forward"), check_forward(ctx, &mut st)));
        rows.push((tag("errors"), check_errors(ctx, &mut st)));
        rows.push((tag("back_project"), check_back_project(ctx, &mut st)));
        rows.push((tag("back_update"), check_back_update(ctx, &mut st)));
        rows.push((tag("energies"), check_energies(ctx, &mut st)));
        rows.push((tag("weight_grad"), check_weight_grad(ctx, &mut st)));
        rows.push((tag("bp_back"), check_bp_back(ctx, &mut st)));
        let h = st.arch.hidden;
        rows.push((tag("act_rms"), check_act_rms(ctx, &mut st, h)));
        rows.push((tag("accuracy"), check_accuracy(ctx, &mut st)));
        let (adam, stats) = check_adam(ctx, &mut st);
        rows.push((tag("adam"), adam));
        rows.push((tag("adam_stats"), stats));
        let (u, out) = check_hvp(ctx, &mut st);
        rows.push((tag("hvp_u"), u));
        rows.push((tag("hvp_out"), out));
        let [dots, orth, norm, next] = check_lanczos(ctx, &mut st);
        rows.push((tag("lz_dots"), dots));
        rows.push((tag("lz_orth"), orth));
        rows.push((tag("lz_norm"), norm));
        rows.push((tag("lz_next"), next));
    }
    rows
}

/// The kernels whose check failed, printing every kernel's line.
fn failed_kernels(rows: &[(String, Verdict)], verbose: bool) -> Vec<String> {
    let mut failed = Vec::new();
    for (name, v) in rows {
        let f = v.failures();
        if verbose {
            let verdict = if f.is_empty() { "ok" } else { "FAILED" };
            println!("kernel {name:<36} largest error {:.2e} (bound {TOL:.0e}) {verdict}", v.largest());
            for m in f.iter().take(6) {
                println!("  {m}");
            }
        }
        if !f.is_empty() {
            failed.push(name.clone());
        }
    }
    failed
}

#[test]
fn each_kernel_alone_matches_its_cpu_twin() {
    let Some(ctx) = gpu() else { return };
    let failed = failed_kernels(&every_kernel(&ctx), true);
    assert!(failed.is_empty(), "kernels that disagree with their CPU twins: {failed:?}");
}

/// Negative controls: a defect planted in one kernel fails that kernel's check (and names it).
#[test]
fn a_planted_defect_fails_the_kernel_it_is_in() {
    if gpu().is_none() {
        return;
    }
    let plant = |module: &str, from: &str, to: &str| {
        let mut modules = pclab::gpu::shaders::modules();
        for (name, src) in modules.iter_mut() {
            if *name == module || module == "*" {
                *src = src.replace(from, to);
            }
        }
        assert!(modules.iter().any(|(_, s)| s.contains(to)), "the defect `{to}` was not planted");
        modules
    };
    let cases = [
        ("Adam never writes W", plant("adam", "w[i] = w[i] - p.lr", "_ = w[i] - p.lr"), &["adam ["][..]),
        (
            "back_project drops the last column",
            plant("pc", "if (row < p.batch && col < p.n) { back[", "if (row < p.batch && col + 1u < p.n) { back["),
            &["back_project ["][..],
        ),
        ("lz_norm forgets the square root", plant("lanczos", "= sqrt(total); }", "= total; }"), &["lz_norm ["][..]),
        (
            "back_update drops the skip's τ e_{k+1}",
            plant("pc", "let g = e[eoff(k) + idx] - t * e[ea + idx]", "let g = e[eoff(k) + idx] - 0.0 * e[ea + idx]"),
            &["back_update ["][..],
        ),
        (
            "errors leaves the batch's last row out (its e and its tile sums)",
            plant(
                "pc",
                "            if (row < p.batch && col < out_dim(l)) {",
                "            if (row + 1u < p.batch && col < out_dim(l)) {",
            ),
            &["errors ["][..],
        ),
        (
            "energies skip the first tile sum",
            plant(
                "pc",
                "for (var j = 0u; j < p.count; j++) { s += epart",
                "for (var j = 1u; j < p.count; j++) { s += epart",
            ),
            &["energies ["][..],
        ),
    ];
    for (what, modules, expect) in cases {
        let ctx = block(GpuContext::with_shaders(&modules)).expect("a device with the planted kernel");
        let failed = failed_kernels(&every_kernel(&ctx), false);
        for e in expect {
            assert!(failed.iter().any(|f| f.starts_with(e)), "{what}: the check of {e}…] passed ({failed:?})");
        }
        println!("planted {what}: failed {failed:?}");
    }
}

fn block<T>(f: impl std::future::Future<Output = T>) -> T {
    pollster::block_on(f)
}

/// The harness's negative control: a dispatch that leaves one layer unwritten is caught by the
/// poison (its elements stay NaN), and a kernel that writes where it must not is caught by the
/// untouched check.
#[test]
fn an_unwritten_or_overwritten_element_is_caught() {
    let Some(ctx) = gpu() else { return };
    let mut st = State::new(Activation::Tanh, Param::Sp);
    let h = st.arch.hidden;
    // One layer short: stats[H − 1] is never written.
    let v = check_act_rms(&ctx, &mut st, h - 1);
    let f = v.failures();
    assert!(f.iter().any(|m| m.contains("act_rms") && m.contains(&format!("[{}] is NaN", h - 1))), "{f:?}");
    // A write outside the allowed range is named.
    let mut v = Verdict::default();
    let before = vec![f32::NAN, 1.0, 2.0];
    v.untouched("probe", &[f32::NAN, 1.0, 2.5], &before, 0..3);
    assert!(v.failures().iter().any(|m| m.contains("[2] was written")), "{:?}", v.failures());
}
