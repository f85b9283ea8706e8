//! One training iteration recorded into one command encoder: the `Params` table, the dispatch
//! list (shared by recording and profiling) and the submit.

use super::*;

/// One dispatch of an iteration: the kernel, its bind group, its `Params` slot and its grid.
pub(in crate::gpu) struct Dispatch<'a> {
    pub(in crate::gpu) kernel: &'a Kernel,
    pub(in crate::gpu) group: &'a wgpu::BindGroup,
    pub(in crate::gpu) slot: usize,
    pub(in crate::gpu) dims: [usize; 3],
}

/// `Params` slots laid out at [`PARAMS_STRIDE`] for a uniform table.
pub(in crate::gpu) fn pack_params(slots: &[Params]) -> Vec<u8> {
    let mut table = vec![0u8; slots.len() * PARAMS_STRIDE as usize];
    for (i, s) in slots.iter().enumerate() {
        let at = i * PARAMS_STRIDE as usize;
        table[at..at + std::mem::size_of::<Params>()].copy_from_slice(bytemuck::bytes_of(s));
    }
    table
}

impl GpuModel {
    pub(super) fn base_params(&self) -> Params {
        let a = &self.arch;
        let c = &self.adam;
        // Adam's t: every iteration is one update, so it is the number submitted.
        let t = self.iterations as i32;
        Params {
            batch: self.batch as u32,
            d: a.input as u32,
            n: a.width as u32,
            o: a.output as u32,
            h: a.hidden as u32,
            act: a.act.code(),
            skips: a.skips as u32,
            a_in: self.scalings.a_in as f32,
            a_h: self.scalings.a_hidden as f32,
            a_out: self.scalings.a_out as f32,
            eta_z: self.eta_z as f32,
            lr: self.lr as f32,
            beta1: c.beta1 as f32,
            beta2: c.beta2 as f32,
            eps: c.eps as f32,
            bc1: (1.0 - c.beta1.powi(t)) as f32,
            bc2: (1.0 - c.beta2.powi(t)) as f32,
            grad_scale: if self.bp { 2.0 / a.output as f32 } else { 1.0 },
            ..Default::default()
        }
    }

    /// The parameter table of one iteration: slots `0 … H` the forward layers `1 … L` (also the
    /// backward layers of BP), `H+1 … H+1+T` the inference steps, then three Adam slots and three
    /// Adam-stats slots.
    pub(super) fn params_table(&self) -> Vec<u8> {
        let (h, t) = (self.arch.hidden, self.steps);
        let base = self.base_params();
        let mut slots: Vec<Params> = (1..=h).map(|l| Params { layer: l as u32, ..base }).collect();
        slots.push(Params { layer: h as u32 + 1, ..base });
        // BP: its one "step" computes the output error ê_L = y − ŷ and E_L, nothing moves.
        slots.extend((0..=t).map(|step| Params {
            from_layer: if self.bp { h as u32 + 1 } else { first_active_layer(h, step) as u32 },
            step: step as u32,
            update: (step < t) as u32,
            ..base
        }));
        // Adam over each buffer, then its per-matrix stats (first matrix index, size of one matrix).
        let [w1, wh, wo] = matrix_sizes(&self.arch);
        slots.extend([w1, wh, wo].iter().map(|&c| Params { count: c as u32, ..base }));
        let one_hidden = self.arch.width * self.arch.width;
        slots.extend([(0, w1), (1, one_hidden), (h, wo)].iter().map(|&(first, c)| Params {
            layer: first as u32,
            count: c as u32,
            ..base
        }));
        pack_params(&slots)
    }

    pub(in crate::gpu) fn dispatch(
        pass: &mut wgpu::ComputePass<'_>,
        k: &Kernel,
        g: &wgpu::BindGroup,
        slot: usize,
        dims: [usize; 3],
        n: &mut usize,
    ) {
        pass.set_pipeline(&k.pipeline);
        pass.set_bind_group(0, g, &[(slot as u64 * PARAMS_STRIDE) as u32]);
        pass.dispatch_workgroups(dims[0] as u32, dims[1] as u32, dims[2] as u32);
        *n += 1;
    }

    /// Every dispatch of one training iteration, in order, and how many each inference step takes.
    pub(in crate::gpu) fn dispatches(&self) -> (Vec<Dispatch<'_>>, Vec<usize>) {
        let (h, t) = (self.arch.hidden, self.steps);
        let (b, n, o, d) = (self.batch, self.arch.width, self.arch.output, self.arch.input);
        let (k, g) = (&self.kernels, &self.groups);
        let tiles = |v: usize| v.div_ceil(self.kernels.tile as usize);
        let mut list = Vec::new();
        let mut push = |kernel, group, slot, dims| list.push(Dispatch { kernel, group, slot, dims });
        for l in 1..=h {
            push(&k.forward, &g.forward, l - 1, [tiles(n), tiles(b), 1]);
        }
        push(&k.act_rms, &g.act_rms, 0, [1, 1, h]);
        let mut per_step = Vec::with_capacity(t);
        let mut count = h + 1;
        for step in 0..=t {
            let before = count;
            let slot = h + 1 + step;
            push(&k.errors, &g.errors, slot, [tiles(n.max(o)), tiles(b), h + 1]);
            count += 1;
            if step < t {
                push(&k.back_project, &g.back_project, slot, [tiles(n), tiles(b), h]);
                count += 1;
            }
            // A few workgroups per layer, each striding over its layer's B·N entries.
            let elems = (b * n).div_ceil(ELEMENTWISE_WG as usize).min(UPDATE_GROUPS_PER_LAYER);
            push(&k.update, &g.update, slot, [elems, 1, 2 * h + 1]);
            count += 1;
            if step < t {
                per_step.push(count - before);
            }
        }
        let last = h + 1 + t;
        if self.bp {
            // Backprop is sequential in depth: one dispatch per layer, from the output down.
            for l in (2..=h + 1).rev() {
                push(&k.bp_back, &g.bp_back, l - 1, [tiles(n), tiles(b), 1]);
            }
        }
        push(&k.weight_grad, &g.weight_grad, last, [tiles(d.max(n)), tiles(n.max(o)), h + 1]);
        for (i, c) in matrix_sizes(&self.arch).iter().enumerate() {
            let groups = c.div_ceil(ELEMENTWISE_WG as usize).clamp(1, ADAM_GROUPS);
            push(&k.adam, &g.adam[i], last + 1 + i, [groups, 1, 1]);
        }
        for (i, matrices) in [1, h - 1, 1].into_iter().enumerate() {
            if matrices > 0 {
                push(&k.adam_stats, &g.adam_stats[i], last + 4 + i, [1, 1, matrices]);
            }
        }
        (list, per_step)
    }

    /// Uploads the parameter table and the batch of the next iteration and counts it as submitted
    /// (what [`GpuModel::submit_step`] does before recording), for callers that record it
    /// themselves (the per-kernel profile).
    pub(in crate::gpu) fn prepare_iteration(&mut self, x: &Mat<f32>, y: &Mat<f32>) {
        self.iterations += 1;
        let q = &self.ctx.queue;
        q.write_buffer(&self.bufs.params, 0, &self.params_table());
        q.write_buffer(&self.bufs.io, 0, bytemuck::cast_slice(&x.data));
        q.write_buffer(&self.bufs.io, (x.data.len() * 4) as u64, bytemuck::cast_slice(&y.data));
    }

    /// `(architecture, B, T, backprop?)`.
    pub(in crate::gpu) fn shape(&self) -> (Arch, usize, usize, bool) {
        (self.arch, self.batch, self.steps, self.bp)
    }

    /// Clears what an iteration accumulates into (before its first dispatch).
    pub(in crate::gpu) fn clear_accumulators(&self, enc: &mut wgpu::CommandEncoder) {
        enc.clear_buffer(&self.bufs.e, 0, None);
        enc.clear_buffer(&self.bufs.back, 0, None);
    }

    /// Records one training iteration; returns how many dispatches each inference step took.
    pub(super) fn record(&self, enc: &mut wgpu::CommandEncoder) -> (usize, Vec<usize>) {
        let (list, per_step) = self.dispatches();
        self.clear_accumulators(enc);
        let mut pass = enc
            .begin_compute_pass(&wgpu::ComputePassDescriptor { label: Some("pc iteration"), timestamp_writes: None });
        let mut count = 0;
        for x in &list {
            Self::dispatch(&mut pass, x.kernel, x.group, x.slot, x.dims, &mut count);
        }
        drop(pass);
        (count, per_step)
    }

    /// Records one iteration into a throwaway encoder and counts its dispatches (total, per step).
    pub fn count_dispatches(&self) -> (usize, Vec<usize>) {
        let mut enc = self.ctx.device.create_command_encoder(&wgpu::CommandEncoderDescriptor { label: Some("count") });
        self.record(&mut enc)
    }

    /// Submits one training iteration on `(x, y)`: one encoder, one submit, nothing waited for.
    /// When metrics are due they are copied to a staging buffer and mapped asynchronously; at most
    /// [`MAX_READBACKS_IN_FLIGHT`] are in flight. When both are, natively this waits for the
    /// oldest (the queue keeps the newest iteration), and on the web this iteration's metrics are
    /// skipped rather than block. Reports come from [`GpuModel::ready_reports`].
    /// `iteration` (from 1) is what the reports of this step will be filed under.
    pub fn submit_step(&mut self, iteration: usize, x: &Mat<f32>, y: &Mat<f32>) -> Result<(), GpuError> {
        self.ctx.check_lost()?;
        assert_eq!(
            (x.rows, y.rows),
            (self.batch, self.batch),
            "GpuModel::submit_step: batch size is fixed at creation"
        );
        let want_metrics = (self.iterations + 1) % self.metrics_every == 0;
        if want_metrics && self.pending.len() >= MAX_READBACKS_IN_FLIGHT {
            // Natively wait for the oldest readback and move it out, freeing its staging buffer;
            // on the web only take what has landed (if nothing has, this step's metrics are skipped).
            #[cfg(not(target_arch = "wasm32"))]
            self.wait_oldest()?;
            self.collect_landed()?;
        }
        self.prepare_iteration(x, y);
        let q = &self.ctx.queue;
        let mut enc =
            self.ctx.device.create_command_encoder(&wgpu::CommandEncoderDescriptor { label: Some("iteration") });
        let (count, _) = self.record(&mut enc);
        self.dispatches_last_iteration = count;
        let busy: Vec<usize> = self.pending.iter().map(|p| p.slot).collect();
        let slot = (0..MAX_READBACKS_IN_FLIGHT).find(|s| !busy.contains(s));
        if let (true, Some(slot)) = (want_metrics, slot) {
            let energy_bytes = self.bufs.energy.size();
            enc.copy_buffer_to_buffer(&self.bufs.energy, 0, &self.bufs.read[slot], 0, None);
            enc.copy_buffer_to_buffer(&self.bufs.stats, 0, &self.bufs.read[slot], energy_bytes, None);
            let submission = q.submit([enc.finish()]);
            let (tx, mapped) = futures_channel::oneshot::channel();
            self.bufs.read[slot].map_async(wgpu::MapMode::Read, .., move |r| {
                let _ = tx.send(r);
            });
            self.pending.push_back(Pending { iteration, slot, submission, mapped, landed: None });
        } else {
            q.submit([enc.finish()]);
        }
        let done = self.done.clone();
        q.on_submitted_work_done(move || {
            done.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        });
        Ok(())
    }

    /// One iteration, waiting for its metrics (tests, the CPU-like synchronous use).
    pub async fn train_step(&mut self, x: &Mat<f32>, y: &Mat<f32>) -> Result<IterationReport, GpuError> {
        let every = std::mem::replace(&mut self.metrics_every, 1);
        let iteration = self.iterations + 1;
        let submitted = self.submit_step(iteration, x, y);
        self.metrics_every = every;
        submitted?;
        self.flush()
            .await?
            .into_iter()
            .find(|(at, _)| *at == iteration)
            .map(|(_, r)| r)
            .ok_or_else(|| GpuError::Readback(format!("the metrics of iteration {iteration} did not come back")))
    }
}
