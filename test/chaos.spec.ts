// A short `npm run chaos` round in CI: jobs through the four-process mesh while inference is
// SIGKILLed mid-job, the NATS server restarts and Postgres backends are terminated; afterwards
// every job has ended, every hold ended once, and the ledger agrees with what clients were told.
// It restarts a nats-server of its own (on a free port) so other suites on the machine's server
// are not disturbed; `npm run chaos` restarts the machine's server itself.
import assert from "node:assert/strict";
import { existsSync, rmSync } from "node:fs";
import { test } from "node:test";
import { SYSTEM_NATS_BINARY } from "../scripts/chaos-faults.ts";
import { runChaos } from "../scripts/chaos-run.ts";

const databaseUrl = process.env.DATABASE_URL;
const skip =
  !databaseUrl || !process.env.NATS_URL
    ? "the chaos round needs real Postgres and NATS: set DATABASE_URL and NATS_URL (CI does)"
    : !existsSync(SYSTEM_NATS_BINARY)
      ? `the chaos round restarts a nats-server of its own and needs the binary at ${SYSTEM_NATS_BINARY}`
      : false;

test("chaos: no job left open, no hold settled twice, no result unpaid, no credit lost", { skip, timeout: 300_000 }, async (context) => {
  const lines: string[] = [];
  const report = await runChaos({
    jobs: 16,
    seconds: 50,
    seed: 7,
    concurrency: 3,
    faultEverySeconds: 7,
    holdTtlSeconds: 40,
    jobQuietSeconds: 15,
    settleSeconds: 100,
    privateNats: true,
    databaseUrl: databaseUrl!,
    keep: false,
    log: (line) => lines.push(line),
  });
  context.diagnostic(`chaos ${JSON.stringify(report.summary)}`);
  const trail = [...lines, ...report.violations.map((violation) => `${violation.rule}: ${violation.detail}`), JSON.stringify(report.summary)].join("\n");
  assert.ok(report.summary.jobs > 0, trail);
  assert.ok(report.summary.faults >= 3, `too few faults to mean anything\n${trail}`);
  assert.deepEqual(
    {
      lostCredits: report.summary.lostCredits,
      doubleCharged: report.summary.doubleCharged,
      freeResults: report.summary.freeResults,
      chargeMismatches: report.summary.chargeMismatches,
      unfinished: report.summary.unfinished,
      holdsOpen: report.summary.holdsOpen,
      ledgerViolations: report.ledger.map((violation) => violation.invariant),
      crashes: report.summary.crashes,
    },
    { lostCredits: 0, doubleCharged: 0, freeResults: 0, chargeMismatches: 0, unfinished: 0, holdsOpen: 0, ledgerViolations: [], crashes: {} },
    trail,
  );
  rmSync(report.summary.logDirectory, { recursive: true, force: true });
});
