// Not a test: what `device=auto` chooses on this machine's software adapter (SwiftShader) for
// each network given, and the two timings it gave. Each network in a browser of its own.
// Usage: node probe-device-pick.mjs [DEPTH:WIDTH[:WORKERS] …]   (default 8:128 32:128 8:512)
import { chromium } from "playwright-core";
import { serveDist } from "./serve.mjs";

const { url, server } = await serveDist();
const shapes = process.argv.slice(2).length ? process.argv.slice(2) : ["8:128", "32:128", "8:512"];
for (const shape of shapes) {
  const [depth, width, workers] = shape.split(":");
  const browser = await chromium.launch({ executablePath: process.env.CHROMIUM ?? "/usr/bin/chromium", args: ["--no-sandbox", "--enable-unsafe-webgpu"] });
  try {
    const page = await browser.newPage();
    await page.goto(`${url}?depth=${depth}&width=${width}&rules=mupc&batch=64&eval_every=100000${workers ? `&workers=${workers}` : ""}`);
    await page.waitForFunction(() => document.querySelector('[data-testid="device-pick"]'), null, { timeout: 600000 });
    const why = (await page.textContent('[data-testid="device-pick"]')).replace(/^ · /, "");
    console.log(`H = ${depth}, N = ${width}${workers ? `, workers=${workers}` : ""}: ${why}`);
  } catch (e) {
    console.log(`H = ${depth}, N = ${width}: no choice came (${String(e).split("\n")[0]})`);
  } finally {
    await browser.close();
  }
}
server.close();
