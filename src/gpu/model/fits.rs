//! Whether a configuration fits the adapter's limits, refused before anything is allocated.

use super::*;

impl GpuModel {
    /// Refuses a configuration whose buffers or dispatches exceed the adapter's limits, naming the
    /// sizes — before anything is allocated, on the CPU or the GPU.
    pub fn check_fits(ctx: &GpuContext, a: &Arch, batch: usize, steps: usize) -> Result<(), GpuError> {
        ctx.check_lost()?;
        match Self::excess(ctx, a, batch, steps) {
            Some(why) => Err(GpuError::TooLarge(format!("{why}; {}", Self::largest_fitting(ctx, a, batch, steps)))),
            None => Ok(()),
        }
    }

    /// What would fit instead: the deepest network of the same width and the widest of the same
    /// depth (batch and `T` kept), in words.
    pub fn largest_fitting(ctx: &GpuContext, a: &Arch, batch: usize, steps: usize) -> String {
        let fits =
            |hidden: usize, width: usize| Self::excess(ctx, &Arch { hidden, width, ..*a }, batch, steps).is_none();
        // Both searches are monotone: more layers or width never needs less.
        let largest = |hi: usize, ok: &dyn Fn(usize) -> bool| {
            let (mut lo, mut hi) = (0, hi);
            while lo < hi {
                let mid = (lo + hi).div_ceil(2);
                if ok(mid) {
                    lo = mid;
                } else {
                    hi = mid - 1;
                }
            }
            lo
        };
        let h = largest(a.hidden, &|h| h >= 1 && fits(h, a.width));
        let n = 16 * largest(a.width / 16, &|k| k >= 1 && fits(a.hidden, 16 * k));
        let mut parts = Vec::new();
        if h >= 1 {
            parts.push(format!("H={h} at N={}", a.width));
        }
        if n >= 16 {
            parts.push(format!("N={n} at H={}", a.hidden));
        }
        if parts.is_empty() {
            format!("no network of this shape fits at B={batch}; try a smaller batch")
        } else {
            format!("the largest that fit this adapter (B={batch}): {}", parts.join(", or "))
        }
    }

    /// Why a configuration exceeds the adapter's limits, or `None` when it fits.
    pub(super) fn excess(ctx: &GpuContext, a: &Arch, batch: usize, steps: usize) -> Option<String> {
        let (b, d, n, o, h) = (batch, a.input, a.width, a.output, a.hidden);
        let sizes = [
            ("weights W_2…W_H", bytes_f32((h - 1) * n * n)),
            ("weights W_1", bytes_f32(n * d)),
            ("activities", bytes_f32((h + 1) * b * n)),
            ("errors", bytes_f32(h * b * n + b * o)),
            ("energy table", bytes_f32((steps + 1) * (h + 1))),
            ("energy tile sums", bytes_f32((steps + 1) * (h + 1) * error_tiles(a, b, ctx.kernels.tile))),
        ];
        let lim = &ctx.limits;
        let max = lim.max_storage_buffer_binding_size.min(lim.max_buffer_size);
        if let Some((what, size)) = sizes.iter().find(|(_, s)| *s > max) {
            return Some(format!(
                "{what} need {:.1} MB in one buffer; this adapter allows {:.1} MB (N={n}, H={h}, B={b})",
                *size as f64 / 1e6,
                max as f64 / 1e6
            ));
        }
        let wg_limit = lim.max_compute_workgroups_per_dimension as usize;
        if b.div_ceil(ctx.kernels.tile as usize).max(h + 1) > wg_limit {
            return Some(format!("B={b}, H={h} needs more than {wg_limit} workgroups per dimension"));
        }
        None
    }
}
