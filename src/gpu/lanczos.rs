//! Lanczos with full reorthogonalisation on the GPU (`shaders/lanczos.wgsl`), in f32, over the
//! products of a [`GpuHvp`]: the `B` independent per-sample problems of its points advance
//! together, every vector operation (inner products, classical Gram–Schmidt twice, norms,
//! scaling) runs on the GPU, and the CPU only reads α and β back every [`CHECK_EVERY`]
//! iterations to solve the small tridiagonal problems ([`crate::pcn::hessian::assess`], shared
//! with the f64 [`crate::pcn::hessian::Lanczos`], which is this one's twin).
//!
//! f32 limits what can be resolved: an eigenvalue is known to about `10⁻⁷·|λ_max|`, so λ_min of a
//! Hessian with κ beyond ~10⁶ is not, and its run reports `converged: false` rather than a
//! precise-looking number.

use super::hvp::GpuHvp;
use super::kernels::{binding, ELEMENTWISE_WG};
use super::layout::{Params, PARAMS_STRIDE};
use super::model::{bind_group, bytes_f32, new_buffer, pack_params, read_mapped, GpuModel};
use super::model::{READBACK, STORAGE, UNIFORM};
use super::GpuError;
use crate::pcn::hessian::{assess, start_vector, Extremes, LanczosConfig};

/// Iterations recorded per submit; α and β are read back after each.
pub const CHECK_EVERY: usize = 16;

/// `β ≤ F32_INVARIANT · max|T|` counts as a breakdown (an invariant Krylov space) in f32.
const F32_INVARIANT: f64 = 1e-5;

/// `B` Lanczos runs on the GPU, one per point of a [`GpuHvp`].
#[derive(Debug)]
pub struct GpuLanczos {
    hvp: GpuHvp,
    tol: f64,
    max_iter: usize,
    done: usize,
    basis: wgpu::Buffer,
    _coef: wgpu::Buffer,
    ab: wgpu::Buffer,
    read: wgpu::Buffer,
    _params: wgpu::Buffer,
    groups: [wgpu::BindGroup; 4],
    latest: Vec<Option<Extremes>>,
    results: Vec<Option<Extremes>>,
}

impl GpuLanczos {
    /// Allocates the basis (`max_iter + 1` stacked vectors; `max_iter` is `cfg.max_iter` capped at
    /// the dimension and at what one buffer of this adapter holds) and starts sample `s` from
    /// [`start_vector`] with seed `cfg.seed + s` — so sample 0 starts where the CPU's Lanczos does.
    pub fn new(hvp: GpuHvp, cfg: LanczosConfig) -> Result<Self, GpuError> {
        let ctx = hvp.context().clone();
        ctx.check_lost()?;
        let ((n, h), b) = (hvp.shape(), hvp.samples());
        let (dim, count) = (n * h, hvp.len());
        let lim = &ctx.limits;
        let max_bytes = lim.max_storage_buffer_binding_size.min(lim.max_buffer_size) as usize;
        let fits = (max_bytes / (4 * count)).saturating_sub(1);
        if fits == 0 {
            return Err(GpuError::TooLarge(format!(
                "a Lanczos basis of N·H·B = {count} floats per vector does not fit one buffer of {:.1} MB",
                max_bytes as f64 / 1e6
            )));
        }
        let wg_limit = lim.max_compute_workgroups_per_dimension as usize;
        if b > wg_limit {
            return Err(GpuError::TooLarge(format!("{b} samples exceed {wg_limit} workgroups per dimension")));
        }
        let max_iter = cfg.max_iter.clamp(1, dim).min(fits).min(wg_limit);
        let dev = &ctx.device;
        let buf = |label: &str, len: usize, usage| new_buffer(dev, label, bytes_f32(len), usage);
        let basis = buf("lanczos basis", (max_iter + 1) * count, STORAGE);
        let coef = buf("lanczos coefficients", max_iter * b, STORAGE);
        let ab = buf("lanczos alpha beta", 2 * max_iter * b, STORAGE);
        let read = buf("lanczos readback", 2 * max_iter * b, READBACK);
        let slots: Vec<Params> = (0..2 * max_iter)
            .map(|i| Params {
                batch: b as u32,
                n: n as u32,
                h: h as u32,
                step: (i / 2) as u32,
                update: (i % 2 == 0) as u32,
                count: count as u32,
                layer: (max_iter * b) as u32,
                ..Default::default()
            })
            .collect();
        let params = new_buffer(dev, "lanczos params", slots.len() as u64 * PARAMS_STRIDE, UNIFORM);
        ctx.queue.write_buffer(&params, 0, &pack_params(&slots));
        // q_0 of every sample, scattered into the stacked (H, B, N) layout.
        let mut q0 = vec![0.0f32; count];
        for s in 0..b {
            for (e, v) in start_vector(dim, cfg.seed.wrapping_add(s as u64)).into_iter().enumerate() {
                q0[((e / n) * b + s) * n + e % n] = v as f32;
            }
        }
        let (v, out) = hvp.io();
        ctx.queue.write_buffer(&basis, 0, bytemuck::cast_slice(&q0));
        ctx.queue.write_buffer(v, 0, bytemuck::cast_slice(&q0));
        let k = &ctx.kernels;
        let lookup = |id: u32| -> &wgpu::Buffer {
            use binding::*;
            match id {
                HV_V => v,
                HV_OUT => out,
                LZ_BASIS => &basis,
                LZ_COEF => &coef,
                _ => &ab,
            }
        };
        let groups = [&k.lz_dots, &k.lz_orth, &k.lz_norm, &k.lz_next].map(|k| bind_group(dev, &params, k, &lookup));
        Ok(GpuLanczos {
            hvp,
            tol: cfg.tol,
            max_iter,
            done: 0,
            basis,
            _coef: coef,
            ab,
            read,
            _params: params,
            groups,
            latest: vec![None; b],
            results: vec![None; b],
        })
    }

    /// The most iterations this run will take (see [`GpuLanczos::new`]).
    pub fn max_iter(&self) -> usize {
        self.max_iter
    }

    /// Iterations recorded so far (for every sample).
    pub fn iterations(&self) -> usize {
        self.done
    }

    /// Each sample's latest estimate (final once that sample has finished).
    pub fn estimates(&self) -> &[Option<Extremes>] {
        &self.latest
    }

    /// Bytes of the Lanczos buffers (the basis dominates).
    pub fn memory_bytes(&self) -> u64 {
        self.basis.size() + self.ab.size() * 2
    }

    /// Records up to `iters` more iterations in one submit, reads α and β back and assesses every
    /// sample still running after each new iteration; `Some` (one result per sample) once all
    /// have converged, broken down or used `max_iter`.
    pub async fn advance(&mut self, iters: usize) -> Result<Option<Vec<Extremes>>, GpuError> {
        if let Some(all) = self.finished() {
            return Ok(Some(all));
        }
        let ctx = self.hvp.context().clone();
        ctx.check_lost()?;
        let (from, upto) = (self.done, (self.done + iters.max(1)).min(self.max_iter));
        let b = self.hvp.samples();
        let k = &ctx.kernels;
        let elems = self.hvp.len().div_ceil(ELEMENTWISE_WG as usize).clamp(1, 4096);
        let mut enc = ctx.device.create_command_encoder(&wgpu::CommandEncoderDescriptor { label: Some("lanczos") });
        {
            let mut pass =
                enc.begin_compute_pass(&wgpu::ComputePassDescriptor { label: Some("lanczos"), timestamp_writes: None });
            let mut n = 0;
            for j in from..upto {
                self.hvp.record(&mut pass);
                for slot in [2 * j, 2 * j + 1] {
                    GpuModel::dispatch(&mut pass, &k.lz_dots, &self.groups[0], slot, [j + 1, b, 1], &mut n);
                    GpuModel::dispatch(&mut pass, &k.lz_orth, &self.groups[1], slot, [elems, 1, 1], &mut n);
                }
                GpuModel::dispatch(&mut pass, &k.lz_norm, &self.groups[2], 2 * j, [1, b, 1], &mut n);
                GpuModel::dispatch(&mut pass, &k.lz_next, &self.groups[3], 2 * j, [elems, 1, 1], &mut n);
            }
        }
        enc.copy_buffer_to_buffer(&self.ab, 0, &self.read, 0, None);
        ctx.queue.submit([enc.finish()]);
        let ab = read_mapped(&ctx, &self.read).await?;
        self.done = upto;
        let beta0 = self.max_iter * b;
        for s in 0..b {
            if self.results[s].is_some() {
                continue;
            }
            let alpha: Vec<f64> = (0..upto).map(|i| ab[i * b + s] as f64).collect();
            let beta: Vec<f64> = (0..upto).map(|i| ab[beta0 + i * b + s] as f64).collect();
            for j in from..upto {
                if !(alpha[j].is_finite() && beta[j].is_finite()) {
                    return Err(GpuError::Readback(format!(
                        "Lanczos produced a non-finite α or β for sample {s} at iteration {j}"
                    )));
                }
                let e = assess(&alpha[..=j], &beta[..j], beta[j], F32_INVARIANT, self.tol);
                let stop = e.converged || j + 1 == self.max_iter;
                self.latest[s] = Some(e.clone());
                if stop {
                    self.results[s] = Some(e);
                    break;
                }
            }
        }
        Ok(self.finished())
    }

    fn finished(&self) -> Option<Vec<Extremes>> {
        self.results.iter().cloned().collect()
    }

    /// Runs every sample to the end, [`CHECK_EVERY`] iterations per submit.
    pub async fn run(&mut self) -> Result<Vec<Extremes>, GpuError> {
        loop {
            if let Some(all) = self.advance(CHECK_EVERY).await? {
                return Ok(all);
            }
        }
    }
}
