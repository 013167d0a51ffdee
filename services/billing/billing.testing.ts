// Shared set-up for billing specs: a fresh migrated database per call (real Postgres when
// DATABASE_URL is set, else PGlite), a manual clock, and the ledger.
import assert from "node:assert/strict";
import type { Outcome } from "./domain/outcomes.ts";
import pino from "pino";
import { openDatabase } from "../common/database.ts";
import { createTestDatabase } from "../../test/harness.ts";
import type { EventBus } from "../common/ports/event-bus.ts";
import { ManualClock } from "./domain/clock.ts";
import { createBilling, type Billing } from "./index.ts";
import type { BillingSchema } from "./store/schema.ts";
import type { Kysely } from "kysely";
import pg from "pg";

// A DROP DATABASE ... WITH (FORCE) that reaches a connection still closing makes the pool log a
// lost connection; wait until the server saw them all go, so a clean run prints nothing.
async function waitForConnectionsToClose(url: string): Promise<void> {
  const database = new URL(url).pathname.slice(1);
  const serverUrl = new URL(url);
  serverUrl.pathname = "/postgres";
  const client = new pg.Client({ connectionString: serverUrl.toString() });
  await client.connect();
  try {
    for (let attempt = 0; attempt < 100; attempt += 1) {
      const { rows } = await client.query<{ count: string }>("select count(*) from pg_stat_activity where datname = $1", [database]);
      if (Number(rows[0]!.count) === 0) return;
      await new Promise((resolve) => setTimeout(resolve, 20));
    }
  } finally {
    await client.end();
  }
}

export interface BillingFixture extends Billing {
  clock: ManualClock;
  db: Kysely<BillingSchema>;
  /** Fails the test when any ledger invariant is broken. */
  assertHealthy(): Promise<void>;
  dispose(): Promise<void>;
}

export async function createBillingFixture(options: { eventBus?: EventBus; poolSizeMax?: number } = {}): Promise<BillingFixture> {
  const testDatabase = await createTestDatabase();
  const location = testDatabase.location.kind === "postgres" ? { ...testDatabase.location, poolSizeMax: options.poolSizeMax ?? 10 } : testDatabase.location;
  const database = openDatabase<BillingSchema>(location);
  const clock = new ManualClock();
  const billing = await createBilling({ db: database.db as Kysely<unknown>, clock, eventBus: options.eventBus, log: pino({ level: "silent" }) });
  await billing.migrate();
  return {
    ...billing,
    clock,
    db: database.db,
    async assertHealthy() {
      const violations = await billing.checkInvariants();
      if (violations.length > 0) throw new Error(`ledger invariants broken: ${JSON.stringify(violations, null, 2)}`);
    },
    async dispose() {
      await billing.sweeper.stop();
      await database.close();
      if (location.kind === "postgres") await waitForConnectionsToClose(location.url);
      await testDatabase.dispose();
    },
  };
}

export const DAY_MS = 24 * 60 * 60 * 1000;

/** The outcome's value; fails the test naming the refusal otherwise. */
export function ok<T>(outcome: Outcome<T>): { ok: true } & T {
  if (!outcome.ok) assert.fail(`expected ok, got ${outcome.reason}: ${outcome.message}`);
  return outcome;
}
