// Not a test: loads each preset for a fixed time on this machine's browser and prints what it
// shows (iterations, throughput, accuracy) — the figures for documenting the presets.
import { chromium } from "playwright-core";
import { serveDist } from "./serve.mjs";

const { url, server } = await serveDist();
const browser = await chromium.launch({ executablePath: "/usr/bin/chromium", args: ["--no-sandbox", "--enable-unsafe-webgpu"] });
const seconds = parseInt(process.argv[2] ?? "30");
for (const id of (process.argv[3] ?? "").split(",").filter(Boolean)) {
  const page = await browser.newPage({ viewport: { width: 1400, height: 1000 } });
  await page.goto(`${url}?preset=${id}&autoplay=1`);
  await page.waitForTimeout(seconds * 1000);
  const info = await page.evaluate(() => {
    const t = (id) => document.querySelector(`[data-testid="${id}"]`)?.textContent ?? "";
    const rules = [...document.querySelectorAll('[data-testid^="test-accuracy-"]')].map((e) => `${e.dataset.testid.slice(14)} ${e.textContent} / loss ${t("train-loss-" + e.dataset.testid.slice(14))}`);
    return `iteration ${t("iteration")} · ${t("throughput")} · ${t("memory")} · ${rules.join("; ")} · sweep ${t("kappa-sweep-progress")} · grid ${t("lr-grid-progress")}`;
  });
  console.log(`${id} (${seconds} s): ${info}`);
  await page.close();
}
await browser.close();
server.close();
