// Not a test: the CPU worker's speed for μPC at H = 8, N = 128, B = 64, T = 8 (the figure compared
// with `pclab bench --backend cpu`). Prints the page's throughput line after a minute of training.
import { chromium } from "playwright-core";
import { serveDist } from "./serve.mjs";

const { url, server } = await serveDist();
const browser = await chromium.launch({ executablePath: process.env.CHROMIUM ?? "/usr/bin/chromium", args: ["--no-sandbox"] });
const page = await browser.newPage();
const seconds = parseInt(process.argv[2] ?? "60");
await page.goto(`${url}?depth=8&width=128&rules=mupc&batch=64&device=cpu&eval_every=100000&autoplay=1`);
await page.waitForFunction(() => parseInt(document.querySelector('[data-testid="iteration"]')?.textContent ?? "0") > 0, null, { timeout: 120000 });
await page.waitForTimeout(seconds * 1000);
console.log(`iteration ${await page.textContent('[data-testid="iteration"]')}: ${await page.textContent('[data-testid="throughput"]')}`);
await browser.close();
server.close();
