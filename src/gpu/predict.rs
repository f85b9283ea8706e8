//! A throughput model of one training iteration's kernels on a GPU that has not been measured
//! (`pclab bench --predict`). Per dispatch it charges each resource the work the kernel's shape
//! gives it — FMA issue, workgroup-memory wavefronts (with the staging's bank conflicts), bytes
//! from L2 into the SMs (with the loads' sector efficiency), DRAM bytes, a memory round trip per
//! slab for grids too small to hide it, and the launch — and takes the largest as the dispatch's
//! time and its bound. [`Kernels::Before`] is the kernel set before conflict-free staging (16-way
//! staging stores, back-projection and weight-gradient loads at a quarter of their sectors, a
//! separate update kernel writing and reading `back`, full-depth grids, one workgroup per layer
//! for the energies every step); [`Kernels::After`] is today's. Both read the metrics every
//! iteration. It is a model: timestamps (`pclab bench --kernels`) overrule it.

use crate::pcn::infer::{first_active_layer, lowest_moving_layer};
use crate::pcn::Arch;

/// The peaks of a GPU the model charges against.
#[derive(Clone, Copy, Debug)]
pub struct Peaks {
    /// What it is.
    pub name: &'static str,
    /// Streaming multiprocessors (compute units).
    pub sms: f64,
    /// Clock, GHz (one workgroup-memory wavefront per SM per clock).
    pub clock_ghz: f64,
    /// f32 FMA peak without tensor cores, TFLOP/s.
    pub fp32_tflops: f64,
    /// DRAM bandwidth, TB/s.
    pub dram_tbps: f64,
    /// L2 → SM bandwidth, TB/s.
    pub l2_tbps: f64,
    /// Launch and barrier per dispatch, µs.
    pub launch_us: f64,
    /// A global memory round trip, µs.
    pub mem_latency_us: f64,
}

/// An H200 SXM (the paper's class of GPU): 132 SMs at 1.98 GHz, 67 TFLOP/s f32, 4.8 TB/s HBM3e.
pub const H200: Peaks = Peaks {
    name: "H200 SXM",
    sms: 132.0,
    clock_ghz: 1.98,
    fp32_tflops: 67.0,
    dram_tbps: 4.8,
    l2_tbps: 10.0,
    launch_us: 2.0,
    mem_latency_us: 0.6,
};

/// Which kernel set to model.
#[derive(Clone, Copy, Debug, PartialEq)]
pub enum Kernels {
    /// Before conflict-free staging and the fused update.
    Before,
    /// Today's kernels.
    After,
}

/// What bounds a kernel's time.
#[derive(Clone, Copy, Debug, PartialEq)]
pub enum Bound {
    /// FMA issue.
    Arithmetic,
    /// Workgroup-memory wavefronts.
    SharedMemory,
    /// L2 → SM bytes.
    L2,
    /// DRAM bytes.
    Dram,
    /// Round trips a small grid cannot hide, and launches.
    Latency,
}

impl Bound {
    /// A short name.
    pub fn name(self) -> &'static str {
        match self {
            Bound::Arithmetic => "arithmetic",
            Bound::SharedMemory => "shared memory",
            Bound::L2 => "L2 → SM",
            Bound::Dram => "DRAM",
            Bound::Latency => "latency",
        }
    }
}

/// One kernel's predicted share of an iteration.
#[derive(Clone, Debug)]
pub struct Predicted {
    /// The WGSL entry point.
    pub name: &'static str,
    /// Its dispatches per iteration.
    pub dispatches: usize,
    /// Predicted milliseconds, all dispatches together.
    pub ms: f64,
    /// What bounds most of that time.
    pub bound: Bound,
}

/// Seconds each resource needs for one dispatch.
#[derive(Clone, Copy, Debug, Default)]
struct Cost {
    fma: f64,
    smem: f64,
    l2: f64,
    dram: f64,
    latency: f64,
}

impl Cost {
    fn time_and_bound(&self) -> (f64, Bound) {
        [
            (self.fma, Bound::Arithmetic),
            (self.smem, Bound::SharedMemory),
            (self.l2, Bound::L2),
            (self.dram, Bound::Dram),
            (self.latency, Bound::Latency),
        ]
        .into_iter()
        .fold((0.0, Bound::Latency), |best, (t, b)| if t > best.0 { (t, b) } else { best })
    }
}

/// Tile side, slab depth and threads per workgroup of the matrix kernels (the defaults).
const TM: f64 = 32.0;
const TK: f64 = 16.0;
const THREADS: f64 = 64.0;
/// Warps per SM the FMA pipes need to run at their peak; workgroups an SM holds at once.
const WARPS_FOR_PEAK: f64 = 8.0;
const RESIDENT: f64 = 8.0;
/// Cost of a workgroup that exits at once, µs of one SM.
const EMPTY_US: f64 = 0.2;

/// The staging of a matrix kernel: the stores' bank conflict, and the fraction of each loaded
/// sector operand A and B use.
#[derive(Clone, Copy)]
struct Staging {
    ways: f64,
    eff_a: f64,
    eff_b: f64,
}

/// One matrix dispatch: its products `(rows, cols, k)` side by side (one per layer), `extra`
/// epilogue bytes, `empty` workgroups that exit at once.
fn matrix(g: &Peaks, products: &[(f64, f64, f64)], st: Staging, extra: f64, empty: f64) -> Cost {
    let warps = THREADS / 32.0;
    let (mut wgs, mut flops, mut wavefronts, mut l2_bytes, mut unique, mut slabs_max) =
        (0.0, 0.0, 0.0, extra, extra, 0.0f64);
    for &(rows, cols, k) in products {
        let n_wg = (rows / TM).ceil() * (cols / TM).ceil();
        let slabs = (k / TK).ceil();
        wgs += n_wg;
        flops += n_wg * 2.0 * TM * TM * TK * slabs;
        // Per warp and slab: 8 reads per kk (4 of sa, broadcast; 4 of sb), 2·(TM·TK/threads) stores.
        wavefronts += n_wg * warps * slabs * (8.0 * TK + 2.0 * (TM * TK / THREADS) * st.ways);
        l2_bytes += n_wg * slabs * TM * TK * 4.0 * (1.0 / st.eff_a + 1.0 / st.eff_b);
        unique += 4.0 * (rows * k + k * cols + rows * cols);
        slabs_max = slabs_max.max(slabs);
    }
    let fill = (wgs * warps / (g.sms * WARPS_FOR_PEAK)).min(1.0);
    let on = g.sms.min(wgs).max(1.0);
    let empty_s = empty * EMPTY_US * 1e-6 / g.sms;
    Cost {
        fma: flops / (g.fp32_tflops * 1e12 * fill.max(1e-9)),
        smem: wavefronts / (on * g.clock_ghz * 1e9) + empty_s,
        l2: l2_bytes / (g.l2_tbps * 1e12 * (on / g.sms)),
        dram: unique / (g.dram_tbps * 1e12),
        latency: (wgs / (g.sms * RESIDENT)).ceil().max(1.0) * slabs_max * g.mem_latency_us * 1e-6
            + g.launch_us * 1e-6
            + empty_s,
    }
}

/// `groups` workgroups each summing `count` values alone (one workgroup per matrix or layer).
fn reduction(g: &Peaks, groups: f64, count: f64) -> Cost {
    // A workgroup alone streams about its SM's share of L2 bandwidth, then an 8-step tree.
    let per_sm = g.l2_tbps * 1e12 / g.sms;
    let waves = (groups / g.sms).ceil().max(1.0);
    Cost {
        latency: waves * count * 4.0 / per_sm + 8.0 * 0.05e-6 + g.launch_us * 1e-6,
        dram: groups * count * 4.0 / (g.dram_tbps * 1e12),
        ..Cost::default()
    }
}

/// An elementwise pass over `bytes` (many workgroups).
fn stream(g: &Peaks, bytes: f64) -> Cost {
    Cost { dram: bytes / (g.dram_tbps * 1e12), latency: g.launch_us * 1e-6, ..Cost::default() }
}

/// The predicted per-kernel time of one PC iteration of `arch` at batch `b` and `t` inference
/// steps on `g`, slowest kernel first.
pub fn predict(arch: &Arch, b: usize, t: usize, which: Kernels, g: &Peaks) -> Vec<Predicted> {
    let (h, n, o, d) = (arch.hidden, arch.width as f64, arch.output as f64, arch.input as f64);
    let bf = b as f64;
    let big_l = h + 1;
    let in_dim = |l: usize| if l == 1 { d } else { n };
    let out_dim = |l: usize| if l == big_l { o } else { n };
    let before = which == Kernels::Before;
    let ways = if before { 16.0 } else { 1.0 };
    // The old staging read W in the back-projection and both weight-gradient operands k-fastest
    // against their layout: 16 sectors per warp where 4 would do.
    let across = if before { 0.25 } else { 1.0 };
    let tiles = |rows: f64, cols: f64| (rows / TM).ceil() * (cols / TM).ceil();
    let mut rows: Vec<(&'static str, Cost)> = Vec::new();
    let coalesced = Staging { ways, eff_a: 1.0, eff_b: 1.0 };
    // The forward pass to z_H (ŷ comes with the first step's errors).
    for l in 1..=h {
        rows.push(("forward", matrix(g, &[(bf, out_dim(l), in_dim(l))], coalesced, 0.0, 0.0)));
    }
    for step in 0..=t {
        let from = first_active_layer(h, step);
        let errors: Vec<_> = (from..=big_l).map(|l| (bf, out_dim(l), in_dim(l))).collect();
        // The old grid covered every layer; the new one the layers reached.
        let empty = if before {
            tiles(bf, n.max(o)) * big_l as f64 - errors.iter().map(|p| tiles(p.0, p.1)).sum::<f64>()
        } else {
            0.0
        };
        // Epilogue: z_l, z_{l−1} read, e_l written (y for the output layer).
        let epilogue = errors.len() as f64 * bf * n * 12.0;
        rows.push(("errors", matrix(g, &errors, coalesced, epilogue, empty)));
        let lowest = lowest_moving_layer(from);
        let moving = if step < t { h + 1 - lowest } else { 0 };
        // back_k = e_{k+1} W_{k+1}: (B × out_{k+1}) · (out_{k+1} × N).
        let backs: Vec<_> = (lowest..lowest + moving).map(|k| (bf, n, out_dim(k + 1))).collect();
        if before {
            if moving > 0 {
                let empty = tiles(bf, n) * (h - moving) as f64;
                let st = Staging { ways, eff_a: 1.0, eff_b: across };
                rows.push(("back_project", matrix(g, &backs, st, moving as f64 * bf * n * 4.0, empty)));
            }
            // The update: z, e_k, e_{k+1}, back read, z written; and E_l of every layer, one
            // workgroup per layer, the same dispatch.
            let u = stream(g, moving as f64 * bf * n * 20.0);
            let e = reduction(g, big_l as f64, bf * n);
            rows.push(("update", Cost { dram: u.dram + e.dram, latency: e.latency.max(u.latency), ..Cost::default() }));
        } else if moving > 0 {
            // Epilogue: e_k, e_{k+1}, z_k read, z_k written.
            rows.push(("back_update", matrix(g, &backs, coalesced, moving as f64 * bf * n * 16.0, 0.0)));
        }
    }
    let grads: Vec<_> = (1..=big_l).map(|l| (out_dim(l), in_dim(l), bf)).collect();
    rows.push(("weight_grad", matrix(g, &grads, Staging { ways, eff_a: across, eff_b: across }, 0.0, 0.0)));
    let sizes = [d * n, (h - 1) as f64 * n * n, o * n];
    for c in sizes {
        // w, m, v read and written, g read.
        rows.push(("adam", stream(g, c * 28.0)));
    }
    rows.push(("act_rms", reduction(g, h as f64, bf * n)));
    for (groups, count) in [(1.0, d * n), ((h - 1) as f64, n * n), (1.0, o * n)] {
        if groups > 0.0 {
            rows.push(("adam_stats", reduction(g, groups, count)));
        }
    }
    if !before {
        // One thread per (step, layer), each summing its layer's tile sums.
        let table = ((t + 1) * big_l) as f64;
        rows.push(("energies", stream(g, table * (tiles(bf, n.max(o)) + 1.0) * 4.0)));
    }
    let mut out: Vec<Predicted> = Vec::new();
    // Per kernel: its total, and the bound that holds for most of that time.
    let mut by_bound: Vec<(&'static str, Bound, f64)> = Vec::new();
    for (name, c) in rows {
        let (s, bound) = c.time_and_bound();
        match out.iter_mut().find(|p| p.name == name) {
            Some(p) => {
                p.dispatches += 1;
                p.ms += s * 1e3;
            }
            None => out.push(Predicted { name, dispatches: 1, ms: s * 1e3, bound }),
        }
        match by_bound.iter_mut().find(|(n, b, _)| *n == name && *b == bound) {
            Some(e) => e.2 += s,
            None => by_bound.push((name, bound, s)),
        }
    }
    for p in &mut out {
        if let Some((_, b, _)) = by_bound.iter().filter(|(n, _, _)| *n == p.name).max_by(|a, b| a.2.total_cmp(&b.2)) {
            p.bound = *b;
        }
    }
    out.sort_by(|a, b| b.ms.total_cmp(&a.ms));
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::pcn::{Activation, Param};

    fn paper() -> Arch {
        Arch { input: 784, width: 512, hidden: 128, output: 10, act: Activation::Relu, skips: true, param: Param::Mupc }
    }

    #[test]
    fn the_model_counts_the_dispatches_an_iteration_records() {
        let a = paper();
        let count = |k| predict(&a, 64, 128, k, &H200).iter().map(|p| p.dispatches).sum::<usize>();
        // Today: H forward, per step errors + back_update (T of them),
        // the final errors, weight grads, 3 Adam, RMS, 3 update norms, energies.
        assert_eq!(count(Kernels::After), 128 + 2 * 128 + 1 + 1 + 3 + 1 + 3 + 1);
        // Before: errors, back_project and update per step; errors and update at the end.
        assert_eq!(count(Kernels::Before), 128 + 3 * 128 + 2 + 1 + 3 + 1 + 3);
    }

    #[test]
    fn conflict_free_staging_makes_the_matrix_kernels_faster_and_nothing_slower() {
        let a = paper();
        let before = predict(&a, 64, 128, Kernels::Before, &H200);
        let after = predict(&a, 64, 128, Kernels::After, &H200);
        let ms = |v: &[Predicted], name| v.iter().find(|p| p.name == name).map(|p| p.ms).unwrap();
        assert!(ms(&after, "errors") < ms(&before, "errors"));
        assert!(ms(&after, "back_update") < ms(&before, "back_project") + ms(&before, "update"));
        assert!(ms(&after, "weight_grad") <= ms(&before, "weight_grad"));
        let total = |v: &[Predicted]| v.iter().map(|p| p.ms).sum::<f64>();
        assert!(total(&after) < total(&before));
        // The old staging is shared-memory bound, as the read of the kernels said.
        assert_eq!(before.iter().find(|p| p.name == "errors").unwrap().bound, Bound::SharedMemory);
    }
}
