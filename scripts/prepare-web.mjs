#!/usr/bin/env node
// npm's `prepare` (run by `npm ci` and `npm install`): builds the web app into web/dist, so the
// README's `npm ci && npm start` serves it at /. Skipped, with a line saying why, where it cannot
// be built: without Vite (`npm ci --omit=dev`), without web/, or with CUTLINE_SKIP_WEB_BUILD=1.
// The images' dependency stages copy neither this file nor web/: package.json's prepare runs it
// only where it exists (deploy/Dockerfile builds the app in a stage of its own).
import { spawnSync } from "node:child_process";
import { existsSync } from "node:fs";
import { createRequire } from "node:module";
import { join } from "node:path";

const root = join(import.meta.dirname, "..");

function skip(why) {
  console.log(`prepare: web app not built (${why}); \`npm run build:web\` builds it`);
  process.exit(0);
}

if (process.env.CUTLINE_SKIP_WEB_BUILD === "1") skip("CUTLINE_SKIP_WEB_BUILD=1");
if (!existsSync(join(root, "web", "index.html"))) skip("no web/ folder here");
try {
  createRequire(join(root, "package.json")).resolve("vite/package.json");
} catch {
  skip("Vite is not installed: dev dependencies were omitted");
}
const result = spawnSync(process.platform === "win32" ? "npm.cmd" : "npm", ["run", "-s", "build:web"], { cwd: root, stdio: "inherit" });
process.exit(result.status ?? 1);
