// The page's WebGPU backend in Chromium (SwiftShader here, the adapter the browser offers
// elsewhere): ms per iteration of μPC (B = 64, T = H) for each network given, over the
// iterations after the first two (their total time over their count; the median of single
// iterations too). Not part of `make test`: on a software adapter a 128-layer network takes
// seconds per iteration. DIST=<folder> benchmarks another build of the page; ITERATIONS=K times K
// iterations after SKIP=S (default 2) untimed ones. Usage:
//   node bench-gpu.mjs [depth:width ...]     (defaults: 32:128 128:128)
import { chromium } from "playwright-core";
import { serveDist } from "./serve.mjs";
import { timeIterations } from "./timing.mjs";

const { url, server } = await serveDist();
const cases = process.argv.slice(2).length ? process.argv.slice(2) : ["32:128", "128:128"];
try {
  for (const c of cases) {
    const [depth, width] = c.split(":").map(Number);
    // A fresh browser per case: a closed page's GPU work stays queued in its GPU process.
    const browser = await chromium.launch({
      executablePath: process.env.CHROMIUM ?? "/usr/bin/chromium",
      args: ["--no-sandbox", "--enable-unsafe-webgpu", "--disable-background-networking", "--no-first-run"],
    });
    const page = await browser.newPage();
    const want = Number(process.env.ITERATIONS ?? (depth >= 64 ? 4 : 12));
    await page.goto(`${url}?depth=${depth}&width=${width}&T=${depth}&batch=64&rules=mupc&eval_every=100000&device=gpu&autoplay=1`);
    const timed = await timeIterations(page, { want, skip: Number(process.env.SKIP ?? 2), limitMs: 1800000 });
    const backend = await page.textContent('[data-testid="backend"]');
    // A page that lost its device trains on the CPU worker instead: that is not a GPU figure.
    if (!backend.startsWith("WebGPU")) console.log(JSON.stringify({ depth, width, invalid: `the page trained on: ${backend}` }));
    else console.log(JSON.stringify({ depth, width, ...timed, backend }));
    await browser.close();
  }
} finally {
  server.close();
}
