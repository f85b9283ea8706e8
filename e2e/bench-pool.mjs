// The pool against one worker in Chromium without WebGPU: ms per iteration over the iterations
// after the first two (their total time over their count; the median of single iterations too), for each network and pool size given (not part of `make test`:
// a 128-layer network takes seconds per iteration). The page is cross-origin isolated (the pool's
// workers share memory) unless PORTS=1: then the boundary values go by message ports. κ during
// training is switched off (its block bisection runs on the page's thread and would take a core's
// share from the workers) unless KAPPA=1. Usage:
//   node bench-pool.mjs [depth:width:workers[:pages] ...]     (defaults: 128:128:1 128:128:2 8:128:1 8:128:2)
import { chromium } from "playwright-core";
import { serveDist } from "./serve.mjs";
import { timeIterations } from "./timing.mjs";

const { url, server } = await serveDist({ isolated: process.env.PORTS !== "1" });
const cases = process.argv.slice(2).length ? process.argv.slice(2) : ["128:128:1", "128:128:2", "8:128:1", "8:128:2"];
const browser = await chromium.launch({
  executablePath: process.env.CHROMIUM ?? "/usr/bin/chromium",
  args: ["--no-sandbox", "--disable-features=WebGPU,Vulkan", "--disable-background-networking", "--no-first-run"],
});
try {
  for (const c of cases) {
    // depth:width:workers, or depth:width:1:pages — that many one-worker pages training at once,
    // each timed: what the machine gives independent workers, the most a pool could reach.
    const [depth, width, workers, pages = 1] = c.split(":").map(Number);
    const want = Number(process.env.ITERATIONS ?? (depth >= 64 ? 6 : 40));
    const open = await Promise.all([...Array(pages)].map(() => browser.newPage()));
    const q = `?depth=${depth}&width=${width}&T=${depth}&batch=64&rules=mupc&eval_every=100000&workers=${workers}&autoplay=1`;
    await Promise.all(open.map((page) => page.goto(url + q)));
    if (process.env.KAPPA !== "1") {
      await Promise.all(open.map((page) => page.selectOption('[data-testid="kappa-every"]', "0", { force: true })));
    }
    // A 128-layer iteration takes over a second: reading the counter four times a second is plenty
    // and leaves the page's thread (and the workers' cores) alone.
    const timed = await Promise.all(open.map((page) => timeIterations(page, { want, pollMs: depth >= 64 ? 250 : 20 })));
    for (const [k, page] of open.entries()) {
      const status = await page.textContent('[data-testid="throughput"]');
      const backend = await page.textContent('[data-testid="backend"]');
      const of = pages > 1 ? { page: k + 1, pages } : {};
      console.log(JSON.stringify({ depth, width, workers, ...of, kappa: process.env.KAPPA === "1", ...timed[k], status, backend }));
      await page.close();
    }
  }
} finally {
  await browser.close();
  server.close();
}
