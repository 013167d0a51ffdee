#!/usr/bin/env node
// Runs every *.spec.ts under services/, cli/ and test/ with Node's test runner (Node 20's --test has
// no glob support, so the files are listed here). Extra arguments narrow the run: `npm test -- billing`.
import { spawnSync } from "node:child_process";
import { readdirSync } from "node:fs";
import { join, relative } from "node:path";

const root = join(import.meta.dirname, "..");
const filters = process.argv.slice(2);

function* specs(directory) {
  for (const entry of readdirSync(directory, { withFileTypes: true })) {
    if (entry.name === "node_modules" || entry.name === "gen") continue;
    const path = join(directory, entry.name);
    if (entry.isDirectory()) yield* specs(path);
    else if (entry.name.endsWith(".spec.ts")) yield relative(root, path);
  }
}

const files = [...specs(join(root, "services")), ...specs(join(root, "cli")), ...specs(join(root, "test"))]
  .filter((file) => filters.length === 0 || filters.some((filter) => file.includes(filter)))
  .sort();
if (files.length === 0) {
  console.error(`no spec files match ${filters.join(" ")}`);
  process.exit(1);
}
const result = spawnSync(
  process.execPath,
  ["--import", "tsx", "--test", "--test-concurrency=2", "--test-timeout=300000", ...files],
  { cwd: root, stdio: "inherit" },
);
process.exit(result.status ?? 1);
