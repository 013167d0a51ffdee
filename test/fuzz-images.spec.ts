// CI's short run of the image fuzzer (scripts/fuzz-images.ts): mutated real images against a
// single node of its own, weighted to refusals so the model (slow on CPU) runs for few of them.
// No mutated file may get a 5xx or take the process down, and every 4xx carries a stable code.
import assert from "node:assert/strict";
import { spawnSync } from "node:child_process";
import { join } from "node:path";
import { test } from "node:test";

const root = join(import.meta.dirname, "..");

// About a quarter reach the model (at 896², preview-size): 200 took 128 s alone on a 2-core CPU and over
// the runner's 300 s per file beside CI's other suites, so CI sends 120 and ends the fuzzer itself, with
// its summary, before the runner would kill this file and leave the fuzzer running.
test("120 mutated images: no server error, no crash, every refusal with a stable code", { timeout: 290_000 }, () => {
  const run = spawnSync(
    process.execPath,
    ["--import", "tsx", "scripts/fuzz-images.ts", "--count", "120", "--seed", "7", "--concurrency", "4", "--valid-share", "0", "--mix", "refusals"],
    { cwd: root, encoding: "utf8", timeout: 240_000, killSignal: "SIGINT", maxBuffer: 16 * 1024 * 1024 },
  );
  const lines = run.stdout.trim().split("\n");
  assert.equal(run.status, 0, `the fuzzer failed:\n${run.stdout.slice(-3000)}\n${run.stderr.slice(-3000)}`);
  const summary = JSON.parse(lines.at(-1)!) as {
    sent: number;
    ok: number;
    clientErrors: number;
    serverErrors: number;
    crashes: number;
    transportErrors: number;
    unstableCodes: number;
    maxRssMb: number;
    maxEventLoopDelayMs: number;
    codes: Record<string, number>;
  };
  const findings = lines.filter((line) => line.startsWith("FINDING")).join("\n");
  assert.equal(summary.sent, 120, `the fuzzer was stopped at its time limit: ${lines.at(-1)}`);
  assert.equal(summary.serverErrors, 0, findings);
  assert.equal(summary.crashes, 0, findings);
  assert.equal(summary.transportErrors, 0, findings);
  assert.equal(summary.unstableCodes, 0, findings);
  assert.equal(summary.ok + summary.clientErrors, summary.sent);
  assert.ok(summary.clientErrors > summary.sent / 2, `a refusal-weighted run refuses most files: ${JSON.stringify(summary)}`);
  for (const key of Object.keys(summary.codes)) assert.match(key, /^4\d\d [a-z][a-z0-9_]*$/, `status and stable code: ${key}`);
  // The sampler saw the server (the metrics endpoint and /proc answered).
  assert.ok(summary.maxRssMb > 0, "RSS was sampled");
  console.log(`# fuzz: ${lines.at(-1)}`);
});
