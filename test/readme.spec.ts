// README.md stays true: its configuration table is what scripts/config-table.ts prints from
// the config specs, and it gives the two commands that CI and a new user run.
import assert from "node:assert/strict";
import { execFileSync, spawnSync } from "node:child_process";
import { readFileSync } from "node:fs";
import { join } from "node:path";
import { test } from "node:test";

const root = join(import.meta.dirname, "..");
const readme = readFileSync(join(root, "README.md"), "utf8");

test("README's configuration table is the one generated from the config specs", () => {
  const generated = execFileSync(process.execPath, ["--import", "tsx", "scripts/config-table.ts"], { cwd: root, encoding: "utf8" }).trim();
  const start = readme.indexOf("<!-- config-table:start -->\n") + "<!-- config-table:start -->\n".length;
  const end = readme.indexOf("\n<!-- config-table:end -->");
  assert.equal(readme.slice(start, end), generated, "run `npx tsx scripts/config-table.ts` and paste it into README.md");
});

test("README gives the run and test commands, and CI runs the test one", () => {
  assert.match(readme, /npm ci && npm start/);
  assert.match(readme, /^npm test\b/m);
  assert.match(readFileSync(join(root, ".ci/run"), "utf8"), /^npm test$/m);
});

test("a bad variable stops a service at start, naming it", () => {
  const result = spawnSync(process.execPath, ["--import", "tsx", "services/gateway/main.ts"], {
    cwd: root,
    env: { ...process.env, PORT: "abc", SYNC_TIMEOUT_MS: "-5" },
    encoding: "utf8",
    timeout: 60_000,
  });
  assert.equal(result.status, 1);
  assert.match(result.stderr, /PORT="abc": expected an integer between 0 and 65535/);
  assert.match(result.stderr, /SYNC_TIMEOUT_MS="-5"/);
});
