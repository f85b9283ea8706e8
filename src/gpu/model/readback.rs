//! Metrics come back through a ring of staging buffers, at most
//! [`MAX_READBACKS_IN_FLIGHT`] in flight; weights, activities and gradients are downloaded on demand.

use super::*;

/// A metrics readback in flight.
#[derive(Debug)]
pub(super) struct Pending {
    pub(super) iteration: usize,
    pub(super) slot: usize,
    #[cfg_attr(target_arch = "wasm32", allow(dead_code))]
    pub(super) submission: wgpu::SubmissionIndex,
    pub(super) mapped: futures_channel::oneshot::Receiver<Result<(), wgpu::BufferAsyncError>>,
    /// The iteration compared PC's gradients with backprop's: its sums follow the stats.
    pub(super) aligned: bool,
    /// The map's outcome once it has been awaited (rather than polled) for.
    pub(super) landed: Option<Result<(), wgpu::BufferAsyncError>>,
}

/// Polls that [`read_mapped`] and [`GpuModel::ready_reports`] allow for a map callback to fire,
/// a millisecond apart: with several threads on one device, another thread's poll may be the one
/// running our callback.
#[cfg(not(target_arch = "wasm32"))]
pub(super) const MAX_POLLS: usize = 20_000;

/// Lets another thread's poll finish running callbacks (native only).
#[cfg(not(target_arch = "wasm32"))]
pub(super) fn settle() {
    std::thread::sleep(std::time::Duration::from_millis(1));
}

/// Maps a staging buffer and copies its floats out (natively the device is polled until the
/// map completes; on the web the browser completes it and nothing blocks).
pub(in crate::gpu) async fn read_mapped(ctx: &GpuContext, staging: &wgpu::Buffer) -> Result<Vec<f32>, GpuError> {
    #[cfg_attr(target_arch = "wasm32", allow(unused_mut))]
    let (tx, mut rx) = futures_channel::oneshot::channel();
    staging.map_async(wgpu::MapMode::Read, .., move |r| {
        let _ = tx.send(r);
    });
    let dropped = || GpuError::Readback("the map callback was dropped".into());
    // Natively the callback fires inside a poll — not always the first one after the work is
    // done — so poll until it has; on the web the browser fires it and this awaits.
    #[cfg(not(target_arch = "wasm32"))]
    let outcome = {
        let mut outcome = None;
        for _ in 0..MAX_POLLS {
            ctx.device.poll(wgpu::PollType::wait_indefinitely()).map_err(|e| GpuError::Readback(e.to_string()))?;
            if let Some(r) = rx.try_recv().map_err(|_| dropped())? {
                outcome = Some(r);
                break;
            }
            settle();
        }
        outcome.ok_or_else(|| GpuError::Readback(format!("no map callback after {MAX_POLLS} polls")))?
    };
    #[cfg(target_arch = "wasm32")]
    let outcome = rx.await.map_err(|_| dropped())?;
    outcome.map_err(|e| GpuError::Readback(e.to_string()))?;
    let data = {
        let view = staging.get_mapped_range(..).map_err(|e| GpuError::Readback(e.to_string()))?;
        bytemuck::cast_slice::<u8, f32>(&view).to_vec()
    };
    staging.unmap();
    ctx.check_lost()?;
    Ok(data)
}

impl GpuModel {
    /// Metrics readbacks currently in flight (never more than [`MAX_READBACKS_IN_FLIGHT`]).
    pub fn readbacks_in_flight(&self) -> usize {
        self.pending.len()
    }

    #[cfg(not(target_arch = "wasm32"))]
    pub(super) fn wait_oldest(&mut self) -> Result<(), GpuError> {
        for _ in 0..MAX_POLLS {
            let Some(p) = self.pending.front_mut() else { return Ok(()) };
            if p.landed.is_some() {
                return Ok(());
            }
            let wait = wgpu::PollType::Wait { submission_index: Some(p.submission.clone()), timeout: None };
            self.ctx.device.poll(wait).map_err(|e| GpuError::Readback(e.to_string()))?;
            // The callback may fire on a later poll than the one that saw the work finish.
            match p.mapped.try_recv() {
                Ok(None) => settle(),
                Ok(Some(r)) => p.landed = Some(r),
                Err(_) => p.landed = Some(Err(wgpu::BufferAsyncError)),
            }
        }
        Ok(())
    }

    /// Moves every readback that has landed, oldest first, from `pending` into `ready`, unmapping
    /// its staging buffer whatever happens.
    pub(super) fn collect_landed(&mut self) -> Result<(), GpuError> {
        // A lost device's mapped ranges cannot be read: say it was lost, not that reading failed.
        self.ctx.check_lost()?;
        while let Some(p) = self.pending.front_mut() {
            let outcome = match p.landed.take() {
                Some(r) => r,
                None => match p.mapped.try_recv() {
                    Ok(None) => break,
                    Ok(Some(r)) => r,
                    Err(_) => Err(wgpu::BufferAsyncError),
                },
            };
            let Some(p) = self.pending.pop_front() else { break };
            outcome.map_err(|e| GpuError::Readback(format!("iteration {}: {e}", p.iteration)))?;
            let staging = &self.bufs.read[p.slot];
            let all = staging.get_mapped_range(..).map(|view| bytemuck::cast_slice::<u8, f32>(&view).to_vec());
            staging.unmap();
            let all = all.map_err(|e| GpuError::Readback(e.to_string()))?;
            let report = self.report(&all, p.aligned);
            self.ready.push_back((p.iteration, report));
        }
        Ok(())
    }

    /// The reports whose readbacks have landed, oldest first, with the iteration each describes.
    /// With `wait` (native only) every readback in flight is waited for first.
    pub fn ready_reports(&mut self, wait: bool) -> Result<Vec<(usize, IterationReport)>, GpuError> {
        #[cfg(not(target_arch = "wasm32"))]
        {
            let poll = if wait && !self.pending.is_empty() {
                wgpu::PollType::wait_indefinitely()
            } else {
                wgpu::PollType::Poll
            };
            self.ctx.device.poll(poll).map_err(|e| GpuError::Readback(e.to_string()))?;
            self.collect_landed()?;
            // A map callback can fire on a later poll than the one that saw its work finish.
            let mut polls = 0;
            while wait && !self.pending.is_empty() && polls < MAX_POLLS {
                settle();
                self.ctx
                    .device
                    .poll(wgpu::PollType::wait_indefinitely())
                    .map_err(|e| GpuError::Readback(e.to_string()))?;
                self.collect_landed()?;
                polls += 1;
            }
        }
        #[cfg(target_arch = "wasm32")]
        let _ = wait;
        self.collect_landed()?;
        self.ctx.check_lost()?;
        Ok(self.ready.drain(..).collect())
    }

    /// Waits (without blocking: awaiting) for every metrics readback in flight, then hands out
    /// every report that has come back.
    pub async fn flush(&mut self) -> Result<Vec<(usize, IterationReport)>, GpuError> {
        #[cfg(not(target_arch = "wasm32"))]
        return self.ready_reports(true);
        #[cfg(target_arch = "wasm32")]
        {
            for p in self.pending.iter_mut().filter(|p| p.landed.is_none()) {
                let r = (&mut p.mapped).await;
                p.landed = Some(r.map_err(|_| GpuError::Readback("the map callback was dropped".into()))?);
            }
            self.ready_reports(false)
        }
    }

    /// The report of one metrics readback: energies, then activation RMS and weight norms, then
    /// (when `aligned`) the alignment sums.
    pub(super) fn report(&self, all: &[f32], aligned: bool) -> IterationReport {
        let energy_len = self.bufs.energy.size() as usize / 4;
        let (flat, rest) = all.split_at(energy_len);
        let (stats, sums) = rest.split_at(stats_len(&self.arch));
        let (h, l) = (self.arch.hidden, self.arch.hidden + 1);
        let act_rms: Vec<f64> = stats[..h].iter().map(|&v| v as f64).collect();
        let rel_dw: Vec<f64> = (0..l)
            .map(|m| {
                let (w2, d2) = (stats[h + m] as f64, stats[h + l + m] as f64);
                if !(w2.is_finite() && d2.is_finite()) {
                    f64::NAN
                } else if w2 > 0.0 {
                    (d2 / w2).sqrt()
                } else {
                    d2.sqrt()
                }
            })
            .collect();
        let rows: Vec<Vec<f64>> =
            flat.chunks(l).take(self.steps + 1).map(|r| r.iter().map(|&v| v as f64).collect()).collect();
        if self.bp {
            // The energy table's row: the output's energy, and the hidden entries kernels leave.
            let loss = rows[0][l - 1];
            let mut report = IterationReport::bp(loss, 2.0 * loss / self.arch.output as f64, act_rms, rel_dw);
            report.finite &= rows[0].iter().all(|v| v.is_finite());
            return report;
        }
        let alignment = aligned.then(|| self.alignment_report(&rows, sums));
        IterationReport { alignment, ..IterationReport::pc(rows, act_rms, rel_dw) }
    }

    pub(super) async fn read_mapped(&self, staging: &wgpu::Buffer) -> Result<Vec<f32>, GpuError> {
        read_mapped(&self.ctx, staging).await
    }

    /// Reads `len` floats of a storage buffer back.
    pub(super) async fn download(&self, src: &wgpu::Buffer, len: usize) -> Result<Vec<f32>, GpuError> {
        let size = bytes_f32(len);
        let staging = new_buffer(&self.ctx.device, "download", size, READBACK);
        let mut enc =
            self.ctx.device.create_command_encoder(&wgpu::CommandEncoderDescriptor { label: Some("download") });
        enc.copy_buffer_to_buffer(src, 0, &staging, 0, size);
        self.ctx.queue.submit([enc.finish()]);
        let mut v = self.read_mapped(&staging).await?;
        v.truncate(len);
        Ok(v)
    }

    /// The three weight-shaped buffers (weights, gradients) as matrices `W_1 … W_L`.
    pub(super) async fn download_matrices(&self, bufs: &[wgpu::Buffer; 3]) -> Result<Vec<Mat<f32>>, GpuError> {
        let a = self.arch;
        let (n, d, o, h) = (a.width, a.input, a.output, a.hidden);
        let [w1, wh, wo] = matrix_sizes(&a);
        let mut out = vec![Mat { rows: n, cols: d, data: self.download(&bufs[0], w1).await? }];
        let hidden = self.download(&bufs[1], wh).await?;
        out.extend(hidden.chunks(n * n).take(h - 1).map(|c| Mat { rows: n, cols: n, data: c.to_vec() }));
        out.push(Mat { rows: o, cols: n, data: self.download(&bufs[2], wo).await? });
        Ok(out)
    }

    /// The current weights as a CPU network.
    pub async fn network(&self) -> Result<Network<f32>, GpuError> {
        let weights = self.download_matrices(&self.bufs.w).await?;
        Network::from_weights(self.arch, self.scalings, weights).map_err(GpuError::Readback)
    }

    /// The activities after the last iteration's inference, `z_1 … z_H`.
    pub async fn activities(&self) -> Result<Vec<Mat<f32>>, GpuError> {
        let (b, n, h) = (self.batch, self.arch.width, self.arch.hidden);
        let z = self.download(&self.bufs.z, h * b * n).await?;
        Ok(z.chunks(b * n).map(|c| Mat { rows: b, cols: n, data: c.to_vec() }).collect())
    }

    /// The last iteration's weight gradients, `∂F/∂W_1 … ∂F/∂W_L`.
    pub async fn weight_grads(&self) -> Result<Vec<Mat<f32>>, GpuError> {
        self.download_matrices(&self.bufs.g).await
    }
}
