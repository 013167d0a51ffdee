import assert from "node:assert/strict";
import { test } from "node:test";
import { assertTransition, canTransition, decideOutcome, type JobStatus } from "./job-status.ts";

test("legal transitions follow queued -> running -> terminal", () => {
  const table: [JobStatus, JobStatus, boolean][] = [
    ["queued", "running", true],
    ["queued", "succeeded", true],
    ["queued", "cancelled", true],
    ["running", "running", true],
    ["running", "failed", true],
    ["succeeded", "failed", false],
    ["failed", "running", false],
    ["cancelled", "succeeded", false],
    ["running", "queued", false],
  ];
  for (const [from, to, legal] of table) assert.equal(canTransition(from, to), legal, `${from} -> ${to}`);
});

test("late or duplicate outcomes on a finished job are ignored, not applied", () => {
  assert.deepEqual(decideOutcome("queued", "started"), { kind: "apply", to: "running" });
  assert.deepEqual(decideOutcome("running", "succeeded"), { kind: "apply", to: "succeeded" });
  assert.equal(decideOutcome("succeeded", "succeeded").kind, "ignore");
  assert.equal(decideOutcome("cancelled", "succeeded").kind, "ignore");
  assert.equal(decideOutcome("failed", "started").kind, "ignore");
});

test("an illegal transition is a crash, not a log line", () => {
  assert.throws(() => assertTransition("succeeded", "running"), /illegal job transition succeeded -> running/);
});
