//! The inference Hessian's vector product on the GPU (`shaders/hvp.wgsl`), for `B` independent
//! samples at once: three dispatches whatever the depth — `u` of every layer, the
//! back-projections (`pc.wgsl`'s `back_project`), then `H v` of every hidden layer. The point
//! (the activities `z`, and the curvature term `c_k` from [`crate::pcn::hessian::HessianPoint`])
//! is uploaded once; each product uploads `v` and reads `H v` back. Twin: `pcn::hessian::hvp`.

use super::context::GpuContext;
use super::kernels::{binding, Kernels, ELEMENTWISE_WG};
use super::layout::{Params, PARAMS_STRIDE};
use super::model::{
    bind_group, bytes_f32, matrix_sizes, new_buffer, pack_params, read_mapped, write_matrices, GpuModel,
};
use super::model::{READBACK, STORAGE, UNIFORM};
use super::GpuError;
use crate::pcn::hessian::HessianPoint;
use crate::pcn::{Arch, Mat, Network};
use std::sync::Arc;

/// A network and `B` Hessian points on the GPU, ready for products.
#[derive(Debug)]
pub struct GpuHvp {
    ctx: Arc<GpuContext>,
    kernels: Arc<Kernels>,
    arch: Arch,
    batch: usize,
    _buffers: Vec<wgpu::Buffer>,
    v: wgpu::Buffer,
    out: wgpu::Buffer,
    read: wgpu::Buffer,
    groups: [wgpu::BindGroup; 3],
}

impl GpuHvp {
    /// Uploads `net` and the points: `z` are the activities `z_1 … z_H`, each `(B, N)` (row `b`
    /// is sample `b`), and `points[b]` the [`HessianPoint`] of sample `b` at them.
    pub fn new(
        ctx: Arc<GpuContext>,
        net: &Network<f32>,
        z: &[Mat<f32>],
        points: &[HessianPoint<f32>],
    ) -> Result<Self, GpuError> {
        ctx.check_lost()?;
        let a = net.arch;
        let (b, n, h, o) = (points.len(), a.width, a.hidden, a.output);
        if b == 0 || z.len() != h || z.iter().any(|m| m.rows != b || m.cols != n) {
            return Err(GpuError::Unsupported(format!(
                "a Hessian-vector product needs H = {h} activity matrices of {b} × {n}, one row per point"
            )));
        }
        GpuModel::check_fits(&ctx, &a, b, 0)?;
        let dev = &ctx.device;
        let buf = |label: &str, len: usize, usage| new_buffer(dev, label, bytes_f32(len), usage);
        // (H, B, N), layer-major like the activities of a training batch.
        let zs: Vec<f32> = (0..h).flat_map(|l| (0..b).flat_map(move |s| z[l].row(s).iter().copied())).collect();
        let curv: Vec<f32> = (0..h).flat_map(|l| points.iter().flat_map(move |p| p.curv[l].iter().copied())).collect();
        let shapes = matrix_sizes(&a);
        let w = [0, 1, 2].map(|i| buf(["hvp W_1", "hvp W_2..W_H", "hvp W_L"][i], shapes[i], STORAGE));
        let q = &ctx.queue;
        write_matrices(q, &w, &net.weights);
        let zb = buf("hvp z", h * b * n, STORAGE);
        q.write_buffer(&zb, 0, bytemuck::cast_slice(&zs));
        let cb = buf("hvp curvature", h * b * n, STORAGE);
        q.write_buffer(&cb, 0, bytemuck::cast_slice(&curv));
        let u = buf("hvp u", h * b * n + b * o, STORAGE);
        let back = buf("hvp back", h * b * n, STORAGE);
        let v = buf("hvp v", h * b * n, STORAGE);
        let out = buf("hvp out", h * b * n, STORAGE);
        let read = buf("hvp readback", h * b * n, READBACK);
        let params = new_buffer(dev, "hvp params", PARAMS_STRIDE, UNIFORM);
        let p = Params {
            batch: b as u32,
            d: a.input as u32,
            n: n as u32,
            o: o as u32,
            h: h as u32,
            act: a.act.code(),
            skips: a.skips as u32,
            from_layer: 1,
            a_in: net.scalings.a_in as f32,
            a_h: net.scalings.a_hidden as f32,
            a_out: net.scalings.a_out as f32,
            ..Default::default()
        };
        q.write_buffer(&params, 0, &pack_params(&[p]));
        let kernels = ctx.kernels.clone();
        let lookup = |id: u32| -> &wgpu::Buffer {
            use binding::*;
            match id {
                Z => &zb,
                W1 => &w[0],
                WH => &w[1],
                WO => &w[2],
                E => &u,
                BACK => &back,
                HV_V => &v,
                HV_CURV => &cb,
                _ => &out,
            }
        };
        let groups =
            [&kernels.hvp_u, &kernels.back_project, &kernels.hvp_out].map(|k| bind_group(dev, &params, k, &lookup));
        let [w0, w1, w2] = w;
        Ok(GpuHvp {
            ctx: ctx.clone(),
            kernels,
            arch: a,
            batch: b,
            _buffers: vec![w0, w1, w2, zb, cb, u, back, params],
            v,
            out,
            read,
            groups,
        })
    }

    /// `N·H·B`: the length of the stacked vectors, layer-major: `v[(l·B + s)·N + i]` is unit `i`
    /// of layer `l+1` of sample `s`.
    pub fn len(&self) -> usize {
        self.arch.hidden * self.batch * self.arch.width
    }

    /// Always false: a network has at least one hidden layer.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Records the product's three dispatches: `H v` from the `v` buffer into the `out` buffer.
    pub(super) fn record(&self, pass: &mut wgpu::ComputePass<'_>) {
        let (a, b, k) = (&self.arch, self.batch, &self.kernels);
        let tiles = |v: usize| v.div_ceil(k.tile as usize);
        let (n, h, o) = (a.width, a.hidden, a.output);
        let mut count = 0;
        GpuModel::dispatch(pass, &k.hvp_u, &self.groups[0], 0, [tiles(n.max(o)), tiles(b), h + 1], &mut count);
        GpuModel::dispatch(pass, &k.back_project, &self.groups[1], 0, [tiles(n), tiles(b), h], &mut count);
        let elems = (b * n).div_ceil(ELEMENTWISE_WG as usize).clamp(1, 64);
        GpuModel::dispatch(pass, &k.hvp_out, &self.groups[2], 0, [elems, 1, h], &mut count);
    }

    /// The product's input buffer (`v`) and output buffer (`H v`), `N·H·B` floats each.
    pub(super) fn io(&self) -> (&wgpu::Buffer, &wgpu::Buffer) {
        (&self.v, &self.out)
    }

    /// The context the product runs on.
    pub(super) fn context(&self) -> &Arc<GpuContext> {
        &self.ctx
    }

    /// `B`: the independent samples.
    pub fn samples(&self) -> usize {
        self.batch
    }

    /// `(N, H)`.
    pub fn shape(&self) -> (usize, usize) {
        (self.arch.width, self.arch.hidden)
    }

    /// `H v` for every sample at once (layout of [`GpuHvp::len`]).
    pub async fn apply(&self, v: &[f32]) -> Result<Vec<f32>, GpuError> {
        if v.len() != self.len() {
            return Err(GpuError::Unsupported(format!("v has {} entries, expected N·H·B = {}", v.len(), self.len())));
        }
        self.ctx.queue.write_buffer(&self.v, 0, bytemuck::cast_slice(v));
        let mut enc = self.ctx.device.create_command_encoder(&wgpu::CommandEncoderDescriptor { label: Some("hvp") });
        {
            let mut pass =
                enc.begin_compute_pass(&wgpu::ComputePassDescriptor { label: Some("hvp"), timestamp_writes: None });
            self.record(&mut pass);
        }
        enc.copy_buffer_to_buffer(&self.out, 0, &self.read, 0, None);
        self.ctx.queue.submit([enc.finish()]);
        let mut hv = read_mapped(&self.ctx, &self.read).await?;
        hv.truncate(self.len());
        Ok(hv)
    }
}
