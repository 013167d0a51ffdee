// Background sweeps never crash the process: a run that throws or rejects is logged and retried
// next period, and never becomes an unhandled rejection (which Node turns into an exit).
import assert from "node:assert/strict";
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { after, before, test } from "node:test";
import { pino } from "pino";
import { InProcessBlobStore } from "./adapters/blob-store.in-process.ts";
import { startPeriodicTask } from "./periodic-task.ts";

const unhandled: unknown[] = [];
const onUnhandled = (reason: unknown) => unhandled.push(reason);
before(() => process.on("unhandledRejection", onUnhandled));
after(() => process.off("unhandledRejection", onUnhandled));

/** A real pino logger whose lines are kept for the test to read. */
function capturingLogger() {
  const lines: { level: number; msg: string; task?: string }[] = [];
  const log = pino({ level: "debug" }, { write: (line: string) => void lines.push(JSON.parse(line)) });
  return { log, lines };
}

async function until(condition: () => boolean, timeoutMs = 5_000): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!condition()) {
    assert.ok(Date.now() < deadline, "condition not met in time");
    await new Promise((resolve) => setTimeout(resolve, 10));
  }
}

test("a run that throws or rejects is logged and retried next period, never an unhandled rejection", async () => {
  const { log, lines } = capturingLogger();
  let runs = 0;
  const task = startPeriodicTask({
    name: "test sweep",
    intervalMs: 10,
    log,
    run: () => {
      runs += 1;
      if (runs % 2 === 1) throw new Error(`sync failure ${runs}`);
      return Promise.reject(new Error(`async failure ${runs}`));
    },
  });
  await until(() => runs >= 4);
  await task.stop();
  await new Promise((resolve) => setImmediate(resolve));
  assert.deepEqual(unhandled, []);
  const failures = lines.filter((line) => line.level === 50 && line.task === "test sweep");
  assert.ok(failures.length >= 4, `each failed run logged: ${JSON.stringify(lines)}`);
  assert.match(failures[0]!.msg, /test sweep failed; retrying in 10 ms/);
});

test("runs never overlap: a slow run makes the timer skip, not stack", async () => {
  const { log } = capturingLogger();
  let concurrent = 0;
  let concurrentMax = 0;
  let runs = 0;
  const task = startPeriodicTask({
    name: "slow sweep",
    intervalMs: 5,
    log,
    run: async () => {
      runs += 1;
      concurrent += 1;
      concurrentMax = Math.max(concurrentMax, concurrent);
      await new Promise((resolve) => setTimeout(resolve, 30));
      concurrent -= 1;
    },
  });
  await until(() => runs >= 3);
  await task.stop();
  assert.equal(concurrentMax, 1);
  assert.equal(concurrent, 0, "stop waited for the run in progress");
});

test("the in-process blob store's sweep survives its directory vanishing", async () => {
  const { log, lines } = capturingLogger();
  const dataDir = mkdtempSync(join(tmpdir(), "cutline-sweep-"));
  const store = new InProcessBlobStore({ dataDir, sweepIntervalMs: 10, ttlMs: 1_000, log });
  await store.put("k", new Uint8Array([1, 2, 3]));
  rmSync(dataDir, { recursive: true, force: true });
  await until(() => lines.filter((line) => line.task === "blob sweep").length >= 2);
  await store.close();
  await new Promise((resolve) => setImmediate(resolve));
  assert.deepEqual(unhandled, [], "an ENOENT from readdir once crashed the process");
});
