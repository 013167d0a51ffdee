// Billing's sweeper runs on a timer: a sweep that fails (here: a database without billing's
// tables, as after a botched restore) is logged and retried, and never crashes the process.
import assert from "node:assert/strict";
import { test } from "node:test";
import type { Kysely } from "kysely";
import { pino } from "pino";
import { createTestDatabase } from "../../test/harness.ts";
import { openDatabase } from "../common/database.ts";
import { createBilling } from "./index.ts";

test("a billing sweep that fails is logged and retried next period, never an unhandled rejection", async () => {
  const unhandled: unknown[] = [];
  const onUnhandled = (reason: unknown) => unhandled.push(reason);
  process.on("unhandledRejection", onUnhandled);
  const testDatabase = await createTestDatabase();
  const database = openDatabase(testDatabase.location);
  const failures: string[] = [];
  const log = pino({ level: "info" }, { write: (line: string) => void (JSON.parse(line).level === 50 && failures.push(line)) });
  try {
    const billing = await createBilling({ db: database.db as Kysely<unknown>, log, sweepIntervalMs: 20 }); // not migrated: every sweep fails
    billing.sweeper.start();
    const deadline = Date.now() + 10_000;
    while (failures.length < 2 && Date.now() < deadline) await new Promise((resolve) => setTimeout(resolve, 20));
    await billing.sweeper.stop();
    assert.ok(failures.length >= 2, "each failed sweep is logged, and the next one runs");
    assert.match(failures[0]!, /billing sweep failed; retrying in 20 ms/);
    await new Promise((resolve) => setImmediate(resolve));
    assert.deepEqual(unhandled, []);
  } finally {
    process.off("unhandledRejection", onUnhandled);
    await database.close();
    await testDatabase.dispose();
  }
});
