// Profiles the page's start on the CPU fallback (no WebGPU): a CPU profile of the main thread from
// navigation to the first drawn plot, printing the long tasks and the heaviest functions in them.
// Usage: node probe-startup.mjs [--webgpu]; NOPROF=1 without the profiler (its timing as the
// test sees it); JSFLAGS=… passes V8 flags (e.g. --no-wasm-lazy-compilation).
import { chromium } from "playwright-core";
import { serveDist } from "./serve.mjs";

const webgpu = process.argv.includes("--webgpu");
const { url, server } = await serveDist();
const browser = await chromium.launch({
  executablePath: process.env.CHROMIUM ?? "/usr/bin/chromium",
  args: [...(process.env.JSFLAGS ? [`--js-flags=${process.env.JSFLAGS}`] : []), "--no-sandbox", webgpu ? "--enable-unsafe-webgpu" : "--disable-features=WebGPU,Vulkan", "--disable-background-networking", "--disable-component-update", "--no-first-run"],
});
const page = await browser.newPage({ viewport: { width: 1400, height: 1000 } });
await page.addInitScript(() => {
  window.__markerAt = performance.now();
  (function __marker() { const t = performance.now(); while (performance.now() - t < 4); })();
  window.__long = [];
  window.__phases = [];
  new PerformanceObserver((l) => { for (const e of l.getEntries()) window.__long.push([Math.round(e.startTime), Math.round(e.duration)]); })
    .observe({ type: "longtask", buffered: true });
  const note = () => {
    const s = document.querySelector('[data-testid="status"]')?.textContent ?? "";
    if (window.__phases.at(-1)?.[1] !== s) window.__phases.push([Math.round(performance.now()), s.slice(0, 90)]);
  };
  new MutationObserver(note).observe(document, { subtree: true, childList: true, characterData: true });
});
const cdp = await page.context().newCDPSession(page);
const prof = !process.env.NOPROF;
if (prof) await cdp.send("Profiler.enable");
if (prof) await cdp.send("Profiler.setSamplingInterval", { interval: 500 });
if (prof) await cdp.send("Profiler.start");
await page.goto(url + "?depth=4&width=64&rules=sp,mupc,bp_mup&autoplay=1&eval_every=5");
await page.waitForFunction(() => [...document.querySelectorAll("canvas[role=img]")].some((c) => /: (?!nothing)/.test(c.getAttribute("aria-label") ?? "")), null, { timeout: 90000, polling: 250 });
const { profile } = prof ? await cdp.send("Profiler.stop") : { profile: null };
const long = await page.evaluate(() => window.__long);
const phases = await page.evaluate(() => window.__phases);
console.log("long tasks:", JSON.stringify(long));
for (const [t, s] of phases) console.log(`  ${t} ms  ${s}`);
if (!prof) { await browser.close(); server.close(); process.exit(0); }
let t = profile.startTime;
const samples = profile.samples.map((id, i) => { t += profile.timeDeltas[i]; return [t, id]; });
const nodes = new Map(profile.nodes.map((n) => [n.id, n]));
const parent = new Map();
for (const n of profile.nodes) for (const c of n.children ?? []) parent.set(c, n.id);
const name = (n) => `${n.callFrame.functionName || "(anon)"} ${n.callFrame.url.split("/").pop()}`.slice(0, 150);
const stack = (id) => { const s = []; for (let c = id; c !== undefined; c = parent.get(c)) s.push(name(nodes.get(c))); return s; };
const markerAt = await page.evaluate(() => window.__markerAt);
const first = samples.find(([, id]) => stack(id).some((f) => f.startsWith("__marker")));
const offset = first[0] / 1000 - markerAt; // profile ms = page ms + offset
for (const [start, dur] of long) {
  const incl = new Map(), self = new Map();
  const inside = samples.filter(([ts]) => ts / 1000 - offset >= start && ts / 1000 - offset < start + dur);
  for (let i = 0; i < inside.length; i++) {
    const dt = i + 1 < inside.length ? (inside[i + 1][0] - inside[i][0]) / 1000 : 0;
    const st = stack(inside[i][1]);
    self.set(st[0], (self.get(st[0]) ?? 0) + dt);
    for (const f of new Set(st)) incl.set(f, (incl.get(f) ?? 0) + dt);
  }
  console.log(`long task ${dur} ms at ${start} ms`);
  const top = (m, k) => [...m.entries()].sort((a, b) => b[1] - a[1]).slice(0, k);
  console.log("  self:"); for (const [k, v] of top(self, 10)) console.log(`    ${v.toFixed(1)} ms  ${k}`);
  console.log("  inclusive:"); for (const [k, v] of top(incl, 45)) console.log(`    ${v.toFixed(1)} ms  ${k}`);
}
await browser.close();
server.close();
