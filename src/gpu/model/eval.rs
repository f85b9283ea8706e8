//! Test accuracy on the GPU: the feedforward pass over the test set in chunks.

use super::*;

/// Buffers for evaluating the feedforward pass on chunks of `rows` test images.
#[derive(Debug)]
pub(super) struct EvalBuffers {
    pub(super) rows: usize,
    pub(super) params: wgpu::Buffer,
    pub(super) x: wgpu::Buffer,
    pub(super) labels: wgpu::Buffer,
    pub(super) correct: wgpu::Buffer,
    pub(super) read: wgpu::Buffer,
    pub(super) yhat: wgpu::Buffer,
    pub(super) forward: wgpu::BindGroup,
    pub(super) accuracy: wgpu::BindGroup,
}

impl GpuModel {
    /// Rows per evaluation chunk: as many as fit the adapter's binding limit, at most 1000.
    pub(super) fn eval_rows(&self, total: usize) -> usize {
        let (n, h) = (self.arch.width, self.arch.hidden);
        let lim = &self.ctx.limits;
        let max = lim.max_storage_buffer_binding_size.min(lim.max_buffer_size) as usize;
        (max / (4 * (h + 1) * n).max(1)).clamp(1, 1000).min(total.max(1))
    }

    pub(super) fn eval_buffers(&self, rows: usize) -> EvalBuffers {
        let dev = &self.ctx.device;
        let (a, k) = (&self.arch, &self.kernels);
        let buf = |label: &str, size: u64, usage| new_buffer(dev, label, size, usage);
        let params = buf("eval params", (a.hidden + 2) as u64 * PARAMS_STRIDE, UNIFORM);
        let x = buf("eval x", bytes_f32(rows * a.input), STORAGE);
        let z = buf("eval z", bytes_f32((a.hidden + 1) * rows * a.width), STORAGE);
        let yhat = buf("eval yhat", bytes_f32(rows * a.output), STORAGE);
        let labels = buf("eval labels", bytes_f32(rows), STORAGE);
        let counts = bytes_f32(self.count_cells());
        let correct = buf("eval counts", counts, STORAGE);
        let read = buf("eval readback", counts, READBACK);
        let lookup = |id: u32| -> &wgpu::Buffer {
            use binding::*;
            match id {
                IO => &x,
                Z => &z,
                W1 => &self.bufs.w[0],
                WH => &self.bufs.w[1],
                WO => &self.bufs.w[2],
                LABELS => &labels,
                CORRECT => &correct,
                _ => &yhat,
            }
        };
        let entries = |kernel: &Kernel| bind_group(dev, &params, kernel, &lookup);
        let (forward, accuracy) = (entries(&k.forward), entries(&k.accuracy));
        EvalBuffers { rows, params, x, labels, correct, read, yhat, forward, accuracy }
    }

    /// Cells of the counts by (label, guess): `O · (O + 1)`.
    fn count_cells(&self) -> usize {
        self.arch.output * (self.arch.output + 1)
    }

    /// Test accuracy in percent: [`GpuModel::evaluate`]'s.
    pub async fn accuracy(&mut self, x: &Mat<f32>, labels: &[u8]) -> Result<f64, GpuError> {
        Ok(self.evaluate(x, labels).await?.accuracy)
    }

    /// The feedforward pass and argmax on the GPU, over `x` in chunks, counted by (label, guess):
    /// accuracy and confusion matrix; the outputs of the chunks holding the strip's sample are
    /// read back for its guesses.
    pub async fn evaluate(&mut self, x: &Mat<f32>, labels: &[u8]) -> Result<Evaluation, GpuError> {
        self.ctx.check_lost()?;
        let total = x.rows.min(labels.len());
        let rows = self.eval_rows(total);
        if self.eval.as_ref().is_none_or(|e| e.rows != rows) {
            self.eval = Some(self.eval_buffers(rows));
        }
        let Some(ev) = self.eval.as_ref() else { return Err(GpuError::Readback("no evaluation buffers".into())) };
        let (q, h, d, o) = (&self.ctx.queue, self.arch.hidden, self.arch.input, self.arch.output);
        let cells = self.count_cells();
        q.write_buffer(&ev.correct, 0, bytemuck::cast_slice(&vec![0u32; cells]));
        let sample = digit_sample(total);
        let mut guesses = vec![None; sample.len()];
        let mut counts = vec![0u32; cells];
        for start in (0..total).step_by(rows) {
            let m = rows.min(total - start);
            let base = Params { batch: m as u32, ..self.base_params() };
            let slots: Vec<Params> = (1..=h + 1).map(|l| Params { layer: l as u32, ..base }).collect();
            q.write_buffer(&ev.params, 0, &pack_params(&slots));
            q.write_buffer(&ev.x, 0, bytemuck::cast_slice(&x.data[start * d..(start + m) * d]));
            let chunk_labels: Vec<u32> = labels[start..start + m].iter().map(|&l| l as u32).collect();
            q.write_buffer(&ev.labels, 0, bytemuck::cast_slice(&chunk_labels));
            let mut enc =
                self.ctx.device.create_command_encoder(&wgpu::CommandEncoderDescriptor { label: Some("eval") });
            {
                let mut pass = enc
                    .begin_compute_pass(&wgpu::ComputePassDescriptor { label: Some("eval"), timestamp_writes: None });
                let (k, mut count) = (&self.kernels, 0);
                let tiles = |v: usize| v.div_ceil(self.kernels.tile as usize);
                for l in 1..=h + 1 {
                    let cols = if l == h + 1 { o } else { self.arch.width };
                    Self::dispatch(&mut pass, &k.forward, &ev.forward, l - 1, [tiles(cols), tiles(m), 1], &mut count);
                }
                let groups = m.div_ceil(ELEMENTWISE_WG as usize);
                Self::dispatch(&mut pass, &k.accuracy, &ev.accuracy, h, [groups, 1, 1], &mut count);
            }
            enc.copy_buffer_to_buffer(&ev.correct, 0, &ev.read, 0, bytes_f32(cells));
            q.submit([enc.finish()]);
            // Waiting for each chunk (its running counts) lets a page handle events between chunks:
            // uploading all 10 000 test images at once would hold the main thread for ~0.1 s.
            let read = self.read_mapped(&ev.read).await?;
            counts = read.iter().map(|v| v.to_bits()).collect();
            let here: Vec<usize> = (0..sample.len()).filter(|&k| (start..start + m).contains(&sample[k])).collect();
            if !here.is_empty() {
                let y_hat = self.download(&ev.yhat, m * o).await?;
                for k in here {
                    let i = sample[k] - start;
                    guesses[k] = guess(&y_hat[i * o..(i + 1) * o]).map(|g| g as u8);
                }
            }
        }
        counts.resize(cells, 0);
        Ok(Evaluation::from_counts(&counts, o, guesses))
    }
}
