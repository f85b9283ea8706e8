// Not a test: the CPU worker's speed for μPC at H = 8, N = 128, B = 64, T = 8 (the figure compared
// with `pclab bench --backend cpu`). Prints the page's throughput line after a minute of training.
import { chromium } from "playwright-core";
import { createServer } from "node:http";
import { readFile } from "node:fs/promises";
import { extname, join, normalize } from "node:path";
import { fileURLToPath } from "node:url";

const dist = fileURLToPath(new URL("../dist/", import.meta.url));
const types = { ".html": "text/html", ".js": "text/javascript", ".wasm": "application/wasm", ".css": "text/css" };
const server = createServer(async (req, res) => {
  const path = normalize(decodeURIComponent(new URL(req.url, "http://x").pathname)).replace(/^(\.\.[/\\])+/, "");
  try {
    const file = join(dist, path.endsWith("/") ? path + "index.html" : path);
    res.writeHead(200, { "content-type": types[extname(file)] ?? "application/octet-stream" });
    res.end(await readFile(file));
  } catch { res.writeHead(404).end(); }
});
await new Promise((ok) => server.listen(0, "127.0.0.1", ok));
const browser = await chromium.launch({ executablePath: process.env.CHROMIUM ?? "/usr/bin/chromium", args: ["--no-sandbox"] });
const page = await browser.newPage();
const seconds = parseInt(process.argv[2] ?? "60");
await page.goto(`http://127.0.0.1:${server.address().port}/?depth=8&width=128&rules=mupc&batch=64&device=cpu&eval_every=100000&autoplay=1`);
await page.waitForFunction(() => parseInt(document.querySelector('[data-testid="iteration"]')?.textContent ?? "0") > 0, null, { timeout: 120000 });
await page.waitForTimeout(seconds * 1000);
console.log(`iteration ${await page.textContent('[data-testid="iteration"]')}: ${await page.textContent('[data-testid="throughput"]')}`);
await browser.close();
server.close();
