// Shared set-up for billing specs: a fresh migrated database per call (real Postgres when
// DATABASE_URL is set, else PGlite), a manual clock, and the ledger.
import pino from "pino";
import { openDatabase } from "../common/database.ts";
import { createTestDatabase } from "../../test/harness.ts";
import type { EventBus } from "../common/ports/event-bus.ts";
import { ManualClock } from "./domain/clock.ts";
import { createBilling, type Billing } from "./index.ts";
import type { BillingSchema } from "./store/schema.ts";
import type { Kysely } from "kysely";

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
      await testDatabase.dispose();
    },
  };
}

export const DAY_MS = 24 * 60 * 60 * 1000;
