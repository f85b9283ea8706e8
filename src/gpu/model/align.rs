//! Aligned iterations (docs/maths.md §11): backprop's gradients of `ℓ̃` from the iteration's own
//! feedforward pass, by the BP kernels into a second set of gradient buffers; then PC's inference
//! as usual, with PC's weight gradient taken and compared after every `s`-th step and the last —
//! one `align_sums` dispatch per compared step writes each layer's `⟨g, g_bp⟩`, `‖g‖²`, `‖g_bp‖²`,
//! read back with the metrics. Twin: `pcn::alignment::Probe`.

use super::*;
use crate::pcn::alignment::{step_stride, AlignmentReport, LayerAlignment, STEP_COLUMNS};

/// Compared steps an aligned iteration has room for: [`STEP_COLUMNS`] strided ones and the last.
pub(super) const ALIGN_COLUMNS: usize = STEP_COLUMNS + 1;

/// Floats of the alignment sums: three per layer per compared step.
pub(super) fn align_len(a: &Arch) -> usize {
    ALIGN_COLUMNS * (a.hidden + 1) * 3
}

/// The steps an iteration of `steps` inference steps compares PC's gradient at (as the CPU's
/// [`crate::pcn::alignment::Probe`]): every `step_stride`-th before the last, and the last.
pub(super) fn compared_steps(steps: usize) -> Vec<usize> {
    (0..steps).step_by(step_stride(steps)).chain([steps]).collect()
}

/// Buffers of aligned iterations, allocated at the first one: backprop's gradients (shaped as
/// the weights) and the sums, with the two bind groups that use them.
#[derive(Debug)]
pub(super) struct AlignBuffers {
    pub(super) g: [wgpu::Buffer; 3],
    pub(super) sums: wgpu::Buffer,
    /// `weight_grad` writing into `g` (backprop's gradients from backprop's errors).
    pub(super) weight_grad: wgpu::BindGroup,
    /// `align_sums` over the model's gradients and `g`.
    pub(super) sums_group: wgpu::BindGroup,
}

impl AlignBuffers {
    pub(super) fn new(dev: &wgpu::Device, k: &Kernels, b: &Buffers, a: &Arch) -> Self {
        let names = ["W_1", "W_2..W_H", "W_L"];
        let shapes = matrix_sizes(a);
        let g = [0, 1, 2].map(|i| new_buffer(dev, &format!("bp grad {}", names[i]), bytes_f32(shapes[i]), STORAGE));
        let sums = new_buffer(dev, "alignment sums", bytes_f32(align_len(a)), STORAGE);
        let (weight_grad, sums_group) = Self::groups(dev, k, b, &g, &sums);
        AlignBuffers { g, sums, weight_grad, sums_group }
    }

    /// The bind groups (again after the `Params` table was replaced).
    pub(super) fn rebind(&mut self, dev: &wgpu::Device, k: &Kernels, b: &Buffers) {
        (self.weight_grad, self.sums_group) = Self::groups(dev, k, b, &self.g, &self.sums);
    }

    fn groups(
        dev: &wgpu::Device,
        k: &Kernels,
        b: &Buffers,
        gb: &[wgpu::Buffer; 3],
        sums: &wgpu::Buffer,
    ) -> (wgpu::BindGroup, wgpu::BindGroup) {
        use binding::*;
        let into_bp = |id: u32| -> &wgpu::Buffer {
            match id {
                IO => &b.io,
                Z => &b.z,
                E => &b.e,
                G1 => &gb[0],
                GH => &gb[1],
                GO => &gb[2],
                other => unreachable!("weight_grad has no binding {other}"),
            }
        };
        let both = |id: u32| -> &wgpu::Buffer {
            match id {
                G1 => &b.g[0],
                GH => &b.g[1],
                GO => &b.g[2],
                GB1 => &gb[0],
                GBH => &gb[1],
                GBO => &gb[2],
                ALIGN => sums,
                other => unreachable!("align_sums has no binding {other}"),
            }
        };
        (bind_group(dev, &b.params, &k.weight_grad, &into_bp), bind_group(dev, &b.params, &k.align_sums, &both))
    }
}

/// One layer's comparison from its three sums (in f32 on the GPU; the cosine in f64): `None`
/// where PC's gradient is exactly zero.
fn layer(dot: f32, pc: f32, bp: f32) -> Option<LayerAlignment> {
    LayerAlignment::from_sums(dot as f64, pc as f64, bp as f64)
}

impl GpuModel {
    /// The alignment of an aligned iteration from its energy table and sums.
    pub(super) fn alignment_report(&self, rows: &[Vec<f64>], sums: &[f32]) -> AlignmentReport {
        let l = self.arch.hidden + 1;
        let at = compared_steps(self.steps);
        let steps = (0..at.len())
            .map(|c| {
                (0..l)
                    .map(|k| {
                        let s = &sums[(c * l + k) * 3..];
                        layer(s[0], s[1], s[2])
                    })
                    .collect()
            })
            .collect();
        AlignmentReport {
            steps,
            at,
            energies: rows.iter().map(|r| r.iter().sum()).collect(),
            // F at the feedforward point is ℓ̃: only the output layer has an error there.
            bp_loss: rows.first().and_then(|r| r.last()).copied().unwrap_or(f64::NAN),
        }
    }
}
