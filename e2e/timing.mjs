// Times a training page's iterations from its counter, for the benchmarks (bench-pool.mjs,
// bench-gpu.mjs). The counter moves when an iteration is submitted; the first `skip` intervals are
// left out (start-up, and a pipelined backend filling its queue). Resolves to the mean ms per
// iteration over the timed ones (their total time over their count), their median, and how many.
// `pollMs` is how often the counter is read (each read is a little work for the page's thread).
export async function timeIterations(page, { want, skip = 2, limitMs = 600000, pollMs = 20 }) {
  const times = [];
  let last = 0, at = 0, from = null;
  const t0 = Date.now();
  while (times.length < want + skip && Date.now() - t0 < limitMs) {
    const it = Number(await page.textContent('[data-testid="iteration"]').catch(() => "0"));
    if (it > last) {
      const now = performance.now();
      if (last > 0) for (let k = last; k < it; k++) times.push((now - at) / (it - last));
      if (from === null && it >= skip + 1) from = [it, now];
      last = it;
      at = now;
    }
    await page.waitForTimeout(pollMs);
  }
  const steady = times.slice(skip).sort((a, b) => a - b);
  const round = (v) => Math.round(v * 10) / 10;
  return {
    ms_per_iteration: round(from && last > from[0] ? (at - from[1]) / (last - from[0]) : NaN),
    median_ms: round(steady[Math.floor(steady.length / 2)]),
    iterations: steady.length,
  };
}
