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
    /// backward layers of BP), `H+1 … H+1+T` the inference steps, then three Adam slots, three
    /// Adam-stats slots, [`align::ALIGN_COLUMNS`] alignment columns ([`GpuModel::align_slot`]) and
    /// the energy table's slot ([`GpuModel::energies_slot`]).
    pub(super) fn params_table(&self) -> Vec<u8> {
        let (h, t) = (self.arch.hidden, self.steps);
        let base = self.base_params();
        let mut slots: Vec<Params> = (1..=h).map(|l| Params { layer: l as u32, ..base }).collect();
        slots.push(Params { layer: h as u32 + 1, ..base });
        // BP: its one "step" computes the output error ê_L = y − ŷ and E_L, nothing moves.
        slots.extend((0..=t).map(|step| {
            let from = self.lowest_error_layer(step);
            Params {
                from_layer: from as u32,
                // The lowest hidden layer the step moves (∂F/∂z_k needs e_k or e_{k+1}).
                layer: lowest_moving_layer(from) as u32,
                step: step as u32,
                update: (step < t) as u32,
                ..base
            }
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
        slots.extend((0..align::ALIGN_COLUMNS).map(|c| Params { step: c as u32, ..base }));
        let tiles = error_tiles(&self.arch, self.batch, self.kernels.tile);
        slots.push(Params { step: t as u32, count: tiles as u32, ..base });
        pack_params(&slots)
    }

    /// The lowest layer with an error at inference step `step` (BP: only the output's).
    fn lowest_error_layer(&self, step: usize) -> usize {
        if self.bp {
            self.arch.hidden + 1
        } else {
            first_active_layer(self.arch.hidden, step)
        }
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

    /// The `Params` slot of alignment column `c`.
    fn align_slot(&self, c: usize) -> usize {
        self.arch.hidden + 1 + self.steps + 7 + c
    }

    /// The `Params` slot of the energy table's dispatch.
    fn energies_slot(&self) -> usize {
        self.align_slot(align::ALIGN_COLUMNS)
    }

    /// Every dispatch of one training iteration whose metrics are read, in order, and how many
    /// each inference step takes.
    pub(in crate::gpu) fn dispatches(&self) -> (Vec<Dispatch<'_>>, Vec<usize>) {
        let (list, per_step, _) = self.dispatches_with(None, true);
        (list, per_step)
    }

    /// [`GpuModel::dispatches`], and with `align` those of an aligned iteration: after the
    /// forward pass backprop's backward pass and its gradients into `align`'s buffers, and PC's
    /// gradient with its sums after each compared step. The returned index is where inference
    /// begins (after the forward pass, and with `align` after backprop's); with `align` the errors
    /// and their tile sums must be cleared again there (backprop's errors are not inference's).
    /// Without `metrics` (an iteration whose metrics are
    /// not read) the activation RMS, the energy table and the update norms are left out.
    pub(super) fn dispatches_with<'a>(
        &'a self,
        align: Option<&'a AlignBuffers>,
        metrics: bool,
    ) -> (Vec<Dispatch<'a>>, Vec<usize>, usize) {
        let metrics = metrics || align.is_some();
        let (h, t) = (self.arch.hidden, self.steps);
        let (b, n, o, d) = (self.batch, self.arch.width, self.arch.output, self.arch.input);
        let (k, g) = (&self.kernels, &self.groups);
        let tiles = |v: usize| v.div_ceil(self.kernels.tile as usize);
        let mut list = Vec::new();
        let mut push = |kernel, group, slot, dims| list.push(Dispatch { kernel, group, slot, dims });
        for l in 1..=h {
            push(&k.forward, &g.forward, l - 1, [tiles(n), tiles(b), 1]);
        }
        if metrics {
            push(&k.act_rms, &g.act_rms, 0, [1, 1, h]);
        }
        let compared = if align.is_some() { align::compared_steps(t) } else { Vec::new() };
        let sums_dims = [1, 1, h + 1];
        if let Some(al) = align {
            // ê_L = y − ŷ (the first step's slot: from layer L), backprop's errors down to layer 1,
            // and ∂ℓ̃/∂W_l (grad_scale 1: ℓ̃ is on the energy's scale) into the second gradients.
            push(&k.errors, &g.errors, h + 1, [tiles(n.max(o)), tiles(b), 1]);
            for l in (2..=h + 1).rev() {
                push(&k.bp_back, &g.bp_back, l - 1, [tiles(n), tiles(b), 1]);
            }
            push(&k.weight_grad, &al.weight_grad, h + 1 + t, [tiles(d.max(n)), tiles(n.max(o)), h + 1]);
        }
        // The forward pass and the activation RMS, then backprop's errors, backward pass and gradients.
        let split = h + usize::from(metrics) + if align.is_some() { h + 2 } else { 0 };
        let mut per_step = Vec::with_capacity(t);
        let mut count = split;
        for step in 0..=t {
            let before = count;
            let slot = h + 1 + step;
            // Grids over the layers the wavefront has reached: from `from` (errors), from the
            // lowest that moves (back_update).
            let from = self.lowest_error_layer(step);
            push(&k.errors, &g.errors, slot, [tiles(n.max(o)), tiles(b), h + 2 - from]);
            count += 1;
            if let (Some(al), Some(c)) = (align, compared.iter().position(|&s| s == step)) {
                if step < t {
                    // PC's gradient at this step's errors (before the update moves z), and its sums.
                    push(&k.weight_grad, &g.weight_grad, slot, [tiles(d.max(n)), tiles(n.max(o)), h + 1]);
                    push(&k.align_sums, &al.sums_group, self.align_slot(c), sums_dims);
                    count += 2;
                }
            }
            if step < t {
                let lowest = lowest_moving_layer(from);
                push(&k.back_update, &g.back_update, slot, [tiles(n), tiles(b), h + 1 - lowest]);
                count += 1;
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
        if let Some(al) = align {
            push(&k.align_sums, &al.sums_group, self.align_slot(compared.len() - 1), sums_dims);
        }
        for (i, c) in matrix_sizes(&self.arch).iter().enumerate() {
            let groups = c.div_ceil(ELEMENTWISE_WG as usize).clamp(1, ADAM_GROUPS);
            push(&k.adam, &g.adam[i], last + 1 + i, [groups, 1, 1]);
        }
        if metrics {
            for (i, matrices) in [1, h - 1, 1].into_iter().enumerate() {
                if matrices > 0 {
                    push(&k.adam_stats, &g.adam_stats[i], last + 4 + i, [1, 1, matrices]);
                }
            }
            push(
                &k.energies,
                &g.energies,
                self.energies_slot(),
                [((t + 1) * (h + 1)).div_ceil(ELEMENTWISE_WG as usize), 1, 1],
            );
        }
        (list, per_step, split)
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

    /// The compiled kernels this model dispatches.
    pub(in crate::gpu) fn kernels(&self) -> &Kernels {
        &self.kernels
    }

    /// `(architecture, B, T, backprop?)`.
    pub(in crate::gpu) fn shape(&self) -> (Arch, usize, usize, bool) {
        (self.arch, self.batch, self.steps, self.bp)
    }

    /// Clears what an iteration accumulates into (before its first dispatch): the errors (the
    /// layers the wavefront has not reached keep e = 0) and their per-tile energy sums.
    pub(in crate::gpu) fn clear_accumulators(&self, enc: &mut wgpu::CommandEncoder) {
        enc.clear_buffer(&self.bufs.e, 0, None);
        enc.clear_buffer(&self.bufs.epart, 0, None);
    }

    /// Records one training iteration (aligned with `align`, its metrics computed with
    /// `metrics`); returns how many dispatches it took and how many each inference step took.
    pub(super) fn record(
        &self,
        enc: &mut wgpu::CommandEncoder,
        align: Option<&AlignBuffers>,
        metrics: bool,
    ) -> (usize, Vec<usize>) {
        let (list, per_step, split) = self.dispatches_with(align, metrics);
        self.clear_accumulators(enc);
        let mut count = 0;
        let parts = [(&list[..split], "pc iteration"), (&list[split..], "pc inference after backprop")];
        for (i, (part, label)) in parts.into_iter().enumerate() {
            if part.is_empty() {
                continue;
            }
            if i > 0 && align.is_some() {
                // Backprop's errors are not inference's starting point.
                self.clear_accumulators(enc);
            }
            let mut pass =
                enc.begin_compute_pass(&wgpu::ComputePassDescriptor { label: Some(label), timestamp_writes: None });
            for x in part {
                Self::dispatch(&mut pass, x.kernel, x.group, x.slot, x.dims, &mut count);
            }
        }
        (count, per_step)
    }

    /// Records one iteration whose metrics are read into a throwaway encoder and counts its
    /// dispatches (total, per step).
    pub fn count_dispatches(&self) -> (usize, Vec<usize>) {
        let mut enc = self.ctx.device.create_command_encoder(&wgpu::CommandEncoderDescriptor { label: Some("count") });
        self.record(&mut enc, None, true)
    }

    /// Submits one training iteration on `(x, y)`: one encoder, one submit, nothing waited for.
    /// When metrics are due they are copied to a staging buffer and mapped asynchronously; at most
    /// [`MAX_READBACKS_IN_FLIGHT`] are in flight. When both are, natively this waits for the
    /// oldest (the queue keeps the newest iteration), and on the web this iteration's metrics are
    /// skipped rather than block. Reports come from [`GpuModel::ready_reports`].
    /// `iteration` (from 1) is what the reports of this step will be filed under.
    pub fn submit_step(&mut self, iteration: usize, x: &Mat<f32>, y: &Mat<f32>) -> Result<(), GpuError> {
        self.submit_step_aligned(iteration, x, y, false)
    }

    /// [`GpuModel::submit_step`]; with `align` a PC iteration also compares its weight gradients
    /// with backprop's on the same batch (its report's `alignment`, as the CPU's
    /// `Model::train_step_aligned`), and its metrics are read back whatever `metrics_every` says.
    /// On the web, when both readbacks are still in flight, the iteration runs unaligned.
    pub fn submit_step_aligned(
        &mut self,
        iteration: usize,
        x: &Mat<f32>,
        y: &Mat<f32>,
        align: bool,
    ) -> Result<(), GpuError> {
        self.ctx.check_lost()?;
        assert_eq!(
            (x.rows, y.rows),
            (self.batch, self.batch),
            "GpuModel::submit_step: batch size is fixed at creation"
        );
        let align = align && !self.bp;
        let want_metrics = align || (self.iterations + 1) % self.metrics_every == 0;
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
        let busy: Vec<usize> = self.pending.iter().map(|p| p.slot).collect();
        let slot = (0..MAX_READBACKS_IN_FLIGHT).find(|s| !busy.contains(s));
        let align = align && slot.is_some();
        if align && self.align.is_none() {
            self.align = Some(AlignBuffers::new(&self.ctx.device, &self.kernels, &self.bufs, &self.arch));
        }
        // Metrics that cannot be read back (no free staging buffer) need not be computed.
        let metrics = want_metrics && slot.is_some();
        let (count, _) = self.record(&mut enc, self.align.as_ref().filter(|_| align), metrics);
        self.dispatches_last_iteration = count;
        if let (true, Some(slot)) = (want_metrics, slot) {
            let energy_bytes = self.bufs.energy.size();
            enc.copy_buffer_to_buffer(&self.bufs.energy, 0, &self.bufs.read[slot], 0, None);
            enc.copy_buffer_to_buffer(&self.bufs.stats, 0, &self.bufs.read[slot], energy_bytes, None);
            if let (true, Some(al)) = (align, &self.align) {
                let at = energy_bytes + bytes_f32(stats_len(&self.arch));
                enc.copy_buffer_to_buffer(&al.sums, 0, &self.bufs.read[slot], at, None);
            }
            let submission = q.submit([enc.finish()]);
            let (tx, mapped) = futures_channel::oneshot::channel();
            self.bufs.read[slot].map_async(wgpu::MapMode::Read, .., move |r| {
                let _ = tx.send(r);
            });
            self.pending.push_back(Pending { iteration, slot, submission, mapped, landed: None, aligned: align });
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
        self.train_step_aligned(x, y, false).await
    }

    /// [`GpuModel::train_step`], aligned with `align` (see [`GpuModel::submit_step_aligned`]).
    pub async fn train_step_aligned(
        &mut self,
        x: &Mat<f32>,
        y: &Mat<f32>,
        align: bool,
    ) -> Result<IterationReport, GpuError> {
        let every = std::mem::replace(&mut self.metrics_every, 1);
        let iteration = self.iterations + 1;
        let submitted = self.submit_step_aligned(iteration, x, y, align);
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
