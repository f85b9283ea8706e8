//! "time the GPU kernels": one PC iteration of the networks' current shape with every dispatch
//! timed by the adapter's timestamp queries — what `pclab bench --kernels` prints — on a network
//! of its own, so the session's runs are not touched. Adapters without timestamp queries say so.

use super::{with, Runner};
use crate::config::BackendKind;
use crate::gpu::GpuModel;
use crate::pcn::learn::AdamConfig;
use crate::pcn::Network;

impl Runner {
    /// Starts timing the kernels (once at a time); the result lands in `kernel_times`.
    pub fn start_kernel_timing(&mut self) {
        if self.kernel_timing {
            return;
        }
        let Some(ctx) = self.gpu.clone() else {
            self.kernel_times = "no WebGPU device here: there are no GPU kernels to time".into();
            self.touch();
            return;
        };
        let Some((data, _)) = self.data.clone() else {
            self.kernel_times = "MNIST is still loading; time the kernels once it is in".into();
            self.touch();
            return;
        };
        let rc = self.cfg.run_config(BackendKind::Gpu);
        let Some(rs) = rc.rules.iter().find(|r| r.rule.is_pc()).cloned() else {
            self.kernel_times = "the kernels timed are PC's: add μPC or standard PC to the rules".into();
            self.touch();
            return;
        };
        let (arch, learning, batch) = (rc.arch(rs.rule), rc.learning(&rs), rc.batch);
        let indices: Vec<usize> = (0..batch).collect();
        let (x, y) = data.train.batch::<f32>(&indices);
        self.kernel_timing = true;
        self.kernel_times = format!("timing every GPU kernel of one {} iteration…", rs.rule.name());
        self.touch();
        let seed = rc.seed;
        wasm_bindgen_futures::spawn_local(async move {
            let net = Network::init(arch, seed);
            let text = match GpuModel::new(ctx, &net, batch, learning, rs.lr, AdamConfig::default()).await {
                Ok(mut m) => match m.profile_kernels(&x, &y).await {
                    Ok(times) => {
                        let c = &rc;
                        format!(
                            "{} at H = {} · N = {} · B = {} · T = {}: {}",
                            rs.rule.name(),
                            c.depth,
                            c.width,
                            batch,
                            c.inference_steps(),
                            crate::gpu::kernel_summary(&times)
                        )
                    }
                    Err(e) => e.to_string(),
                },
                Err(e) => format!("the network to time could not be built: {e}"),
            };
            with(|r| {
                r.kernel_timing = false;
                r.kernel_times = text;
                r.touch();
            });
        });
    }
}
