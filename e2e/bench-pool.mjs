// The pool against one worker in Chromium without WebGPU: ms per iteration, the median of the
// iterations after the first two, for each network and pool size given (not part of `make test`:
// a 128-layer network takes seconds per iteration). Usage:
//   node bench-pool.mjs [depth:width:workers ...]     (defaults: 128:128:1 128:128:2 8:128:1 8:128:2)
import { chromium } from "playwright-core";
import { serveDist } from "./serve.mjs";

const { url, server } = await serveDist();
const cases = process.argv.slice(2).length ? process.argv.slice(2) : ["128:128:1", "128:128:2", "8:128:1", "8:128:2"];
const browser = await chromium.launch({
  executablePath: process.env.CHROMIUM ?? "/usr/bin/chromium",
  args: ["--no-sandbox", "--disable-features=WebGPU,Vulkan", "--disable-background-networking", "--no-first-run"],
});
try {
  for (const c of cases) {
    const [depth, width, workers] = c.split(":").map(Number);
    const page = await browser.newPage();
    const want = depth >= 64 ? 6 : 40;
    await page.goto(`${url}?depth=${depth}&width=${width}&T=${depth}&batch=64&rules=mupc&eval_every=100000&workers=${workers}&autoplay=1`);
    const times = [];
    let last = 0, at = 0;
    const t0 = Date.now();
    while (times.length < want + 2 && Date.now() - t0 < 600000) {
      const it = Number(await page.textContent('[data-testid="iteration"]').catch(() => "0"));
      if (it > last) {
        const now = performance.now();
        if (last > 0) for (let k = last; k < it; k++) times.push((now - at) / (it - last));
        last = it;
        at = now;
      }
      await page.waitForTimeout(20);
    }
    const steady = times.slice(2).sort((a, b) => a - b);
    const median = steady[Math.floor(steady.length / 2)];
    const status = await page.textContent('[data-testid="throughput"]');
    console.log(JSON.stringify({ depth, width, workers, ms_per_iteration: Math.round(median * 10) / 10, iterations: steady.length, status }));
    await page.close();
  }
} finally {
  await browser.close();
  server.close();
}
