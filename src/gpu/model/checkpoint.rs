//! A GPU run's training state on the CPU side, and a model rebuilt from it (after a lost device).

use super::*;

/// Checkpoints keep Adam's moments for networks up to this many weights (16 M: 192 MB for the
/// three copies).
pub const CHECKPOINT_MOMENTS_UP_TO: usize = 1 << 24;

/// Adam's first and second moments, `W_1 … W_L`-shaped each.
pub type Moments = (Vec<Mat<f32>>, Vec<Mat<f32>>);

/// A GPU model's training state, kept on the CPU side (see [`GpuModel::checkpoint`]).
#[derive(Clone, Debug)]
pub struct Checkpoint {
    /// The weights.
    pub net: Network<f32>,
    /// Adam's first and second moments, `W_1 … W_L`-shaped (small networks only).
    pub moments: Option<Moments>,
    /// Adam updates applied (the step count `t`).
    pub updates: usize,
}

impl GpuModel {
    /// The training state on the CPU side: the weights, and Adam's moments and step count when
    /// the network has at most [`CHECKPOINT_MOMENTS_UP_TO`] weights (beyond that only the
    /// weights: three copies of a paper-size network are 400 MB of readback per evaluation).
    pub async fn checkpoint(&self) -> Result<Checkpoint, GpuError> {
        let net = self.network().await?;
        let moments = if net.arch.parameter_count() <= CHECKPOINT_MOMENTS_UP_TO {
            Some((self.download_matrices(&self.bufs.m).await?, self.download_matrices(&self.bufs.v).await?))
        } else {
            None
        };
        Ok(Checkpoint { net, moments, updates: self.iterations })
    }

    /// A model on `ctx` (a new device, after a loss) in the state of `cp`: its weights, Adam's
    /// moments and step count when it has them (else fresh moments from step `updates`).
    pub async fn restore(
        ctx: Arc<GpuContext>,
        cp: &Checkpoint,
        batch: usize,
        learning: Learning,
        lr: f64,
        adam: AdamConfig,
    ) -> Result<Self, GpuError> {
        let mut model = Self::new(ctx, &cp.net, batch, learning, lr, adam).await?;
        if let Some((m, v)) = &cp.moments {
            model.upload_matrices(&model.bufs.m, m);
            model.upload_matrices(&model.bufs.v, v);
        }
        model.iterations = cp.updates;
        // Those updates are done: nothing of the new model is in flight.
        model.done.store(cp.updates, std::sync::atomic::Ordering::Relaxed);
        Ok(model)
    }
}
