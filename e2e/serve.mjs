// Serves the built page (dist/, from `trunk build --release`) on a free local port, for the
// browser tests and the probes. Resolves to the page's URL and the server. Like `make serve`
// (Trunk.toml) it sends the headers that make the page cross-origin isolated, so that the CPU
// pool's workers share memory; `{ isolated: false }` serves without them (the ports fallback).
import { createServer } from "node:http";
import { readFile } from "node:fs/promises";
import { extname, join, normalize } from "node:path";
import { fileURLToPath } from "node:url";

// DIST=<folder> serves another build (a benchmark comparing two builds of the page).
const dist = process.env.DIST ? join(process.env.DIST, "/") : fileURLToPath(new URL("../dist/", import.meta.url));
const types = { ".html": "text/html", ".js": "text/javascript", ".wasm": "application/wasm", ".css": "text/css", ".gz": "application/gzip" };

export const isolation = { "cross-origin-opener-policy": "same-origin", "cross-origin-embedder-policy": "require-corp" };

export async function serveDist({ isolated = true } = {}) {
  const server = createServer(async (req, res) => {
    const path = normalize(decodeURIComponent(new URL(req.url, "http://x").pathname)).replace(/^(\.\.[/\\])+/, "");
    try {
      const file = join(dist, path.endsWith("/") ? path + "index.html" : path);
      const body = await readFile(file);
      res.writeHead(200, { "content-type": types[extname(file)] ?? "application/octet-stream", ...(isolated ? isolation : {}) });
      res.end(body);
    } catch {
      res.writeHead(404).end("not found");
    }
  });
  await new Promise((ok) => server.listen(0, "127.0.0.1", ok));
  return { url: `http://127.0.0.1:${server.address().port}/`, server };
}
