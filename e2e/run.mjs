// Browser tests of the built page (dist/, from `trunk build --release`): Playwright drives Debian's
// Chromium headless with WebGPU enabled (SwiftShader, a software Vulkan, in CI).
// With PCLAB_REQUIRE_GPU=1 a page that finds no WebGPU adapter fails the test.
import { chromium } from "playwright-core";
import { createServer } from "node:http";
import { readFile } from "node:fs/promises";
import { extname, join, normalize } from "node:path";
import { fileURLToPath } from "node:url";

const dist = fileURLToPath(new URL("../dist/", import.meta.url));
const types = { ".html": "text/html", ".js": "text/javascript", ".wasm": "application/wasm", ".css": "text/css", ".gz": "application/gzip" };

const server = createServer(async (req, res) => {
  const path = normalize(decodeURIComponent(new URL(req.url, "http://x").pathname)).replace(/^(\.\.[/\\])+/, "");
  try {
    const file = join(dist, path.endsWith("/") ? path + "index.html" : path);
    const body = await readFile(file);
    res.writeHead(200, { "content-type": types[extname(file)] ?? "application/octet-stream" });
    res.end(body);
  } catch {
    res.writeHead(404).end("not found");
  }
});
await new Promise((ok) => server.listen(0, "127.0.0.1", ok));
const url = `http://127.0.0.1:${server.address().port}/`;

const browser = await chromium.launch({
  executablePath: process.env.CHROMIUM ?? "/usr/bin/chromium",
  args: ["--no-sandbox", "--enable-unsafe-webgpu", "--disable-background-networking", "--disable-component-update",
         "--disable-sync", "--no-first-run", "--disable-quic"],
});
let failed = 0;
async function test(name, body) {
  const page = await browser.newPage();
  const errors = [];
  page.on("pageerror", (e) => errors.push(String(e)));
  try {
    await body(page);
    if (errors.length) throw new Error(`uncaught page errors: ${errors.join("; ")}`);
    console.log(`ok   ${name}`);
  } catch (e) {
    failed += 1;
    console.log(`FAIL ${name}\n     ${e.message}`);
  } finally {
    await page.close();
  }
}
function check(cond, msg) { if (!cond) throw new Error(msg); }

await test("the page loads the wasm and shows its name, version and WebGPU adapter", async (page) => {
  await page.goto(url);
  await page.waitForFunction(() => document.querySelector("#adapter")?.dataset.state !== "loading"
    && !document.querySelector("#adapter")?.textContent.startsWith("Looking"), null, { timeout: 30000 });
  check((await page.textContent("h1")) === "pclab", "title");
  const version = await page.textContent("#version");
  check(/^version \d+\.\d+\.\d+/.test(version), `version line: ${version}`);
  const state = await page.getAttribute("#adapter", "data-state");
  const text = await page.textContent("#adapter");
  console.log(`     adapter (${state}): ${text}`);
  check(state === "found" || state === "missing", `adapter state ${state}`);
  check(text.length > 10, "the adapter line says something");
  if (process.env.PCLAB_REQUIRE_GPU === "1") check(state === "found", `PCLAB_REQUIRE_GPU=1 but: ${text}`);
});

await test("the WGSL kernels run under the browser's WebGPU and match the CPU reference", async (page) => {
  await page.goto(url);
  await page.waitForFunction(() => ["ok", "failed", "skipped"].includes(document.querySelector("#gpu-check")?.dataset.state),
    null, { timeout: 120000 });
  const state = await page.getAttribute("#gpu-check", "data-state");
  const text = await page.textContent("#gpu-check");
  console.log(`     gpu check (${state}): ${text}`);
  check(state !== "failed", text);
  if (process.env.PCLAB_REQUIRE_GPU === "1") check(state === "ok", `PCLAB_REQUIRE_GPU=1 but: ${text}`);
});

await browser.close();
server.close();
process.exit(failed ? 1 : 0);
