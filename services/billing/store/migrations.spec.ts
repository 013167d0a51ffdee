// Billing's migrations through the shared runner: a database migrated under the old migration
// names (before every service took the `YYYYMMDDHHMM_what` scheme) keeps working and keeps its
// money, and every SQL function ends up as its current definition in functions.sql.ts.
import assert from "node:assert/strict";
import { after, before, describe, it } from "node:test";
import { Migrator, sql, type Kysely } from "kysely";
import pino from "pino";
import { createTestDatabase, type TestDatabase } from "../../../test/harness.ts";
import { openDatabase, type Database } from "../../common/database.ts";
import { ManualClock } from "../domain/clock.ts";
import { DEFAULT_PRICE_BOOK, SMART_CROP_PRICE } from "../domain/price-book.ts";
import { ok } from "../billing.testing.ts";
import { createBilling } from "../index.ts";
import { BILLING_FUNCTIONS } from "./functions.sql.ts";
import { checkLedgerInvariants } from "./invariants.ts";
import { LedgerStore } from "./ledger.store.ts";
import { BILLING_LEGACY_MIGRATION_NAMES, billingMigrations, migrateBilling } from "./migrations.ts";
import { PriceBookStore } from "./price-book.store.ts";
import type { BillingSchema } from "./schema.ts";

/** Migrates the way billing did before the rename: its own Migrator, the old names, the same migration code. */
async function migrateUnderOldNames(db: Kysely<unknown>, oldNames: string[]): Promise<void> {
  const byOldName = Object.fromEntries(oldNames.map((oldName) => {
    const migration = billingMigrations[BILLING_LEGACY_MIGRATION_NAMES[oldName] ?? ""];
    assert.ok(migration, `no migration for ${oldName}`);
    return [oldName, migration];
  }));
  const migrator = new Migrator({ db, provider: { getMigrations: async () => byOldName }, migrationTableName: "billing_migrations", migrationLockTableName: "billing_migrations_lock" });
  const { error } = await migrator.migrateToLatest();
  assert.equal(error, undefined);
}

async function recordedNames(db: Kysely<BillingSchema>): Promise<string[]> {
  const { rows } = await sql<{ name: string }>`select name from billing_migrations order by name`.execute(db);
  return rows.map((row) => row.name);
}

/** Every function named billing_*, with its body, as the database has it. */
async function installedFunctions(db: Kysely<BillingSchema>): Promise<{ name: string; body: string }[]> {
  const { rows } = await sql<{ name: string; body: string }>`select proname as name, prosrc as body from pg_proc
    where proname like 'billing\\_%' order by proname`.execute(db);
  return rows;
}

function currentBody(statement: string): string {
  const body = /\$\$([\s\S]*)\$\$/.exec(statement)?.[1];
  assert.ok(body !== undefined, "a definition without a $$ body");
  return body;
}

const currentFunctions = () =>
  BILLING_FUNCTIONS.map((definition) => ({ name: definition.name, body: currentBody(definition.statement) })).sort((a, b) => a.name.localeCompare(b.name));

describe("billing migrations", () => {
  let testDatabase: TestDatabase;
  let database: Database<BillingSchema>;
  const clock = new ManualClock();
  const migrate = () => createBilling({ db: database.db as Kysely<unknown>, clock, log: pino({ level: "silent" }) }).then((billing) => billing.migrate());
  before(async () => {
    testDatabase = await createTestDatabase();
    database = openDatabase<BillingSchema>(testDatabase.location);
  });
  after(async () => {
    await database?.close();
    await testDatabase?.dispose();
  });

  it("keeps a database migrated under the old names working, its money intact, and runs what it missed", async () => {
    // A database from before the unlimited plan, with an account that has spent credits.
    await migrateUnderOldNames(database.db as Kysely<unknown>, ["2025-01-01T00-00-ledger", "2025-01-01T00-01-seed"]);
    const ledger = new LedgerStore({ db: database.db, clock });
    ok(await ledger.createAccount({ accountId: "old", planCode: "starter", ownerMemberId: "ann" }));
    const hold = ok(await ledger.reserve({ accountId: "old", pool: "api", amountMillicredits: 2_000, idempotencyKey: "before-upgrade" }));
    ok(await ledger.capture(hold.holdId, 1_500));
    const before = ok(await ledger.balance("old", "api")).availableMillicredits;
    assert.equal(before, 60_000 - 1_500);

    await migrate();
    assert.deepEqual(await recordedNames(database.db), Object.keys(billingMigrations).sort());
    const unlimited = await database.db.selectFrom("billing_plans").select(["code", "listed"]).where("code", "=", "unlimited").executeTakeFirst();
    assert.deepEqual(unlimited, { code: "unlimited", listed: false }, "the migration it missed ran under its new name");
    assert.equal(ok(await ledger.balance("old", "api")).availableMillicredits, before);
    const replay = ok(await ledger.reserve({ accountId: "old", pool: "api", amountMillicredits: 2_000, idempotencyKey: "before-upgrade" }));
    assert.deepEqual([replay.holdId, replay.replayed, replay.status], [hold.holdId, true, "captured"], "holds from before still replay");
    const next = ok(await ledger.reserve({ accountId: "old", pool: "api", amountMillicredits: 500, idempotencyKey: "after-upgrade" }));
    ok(await ledger.capture(next.holdId, 500));
    assert.equal(ok(await ledger.balance("old", "api")).availableMillicredits, before - 500);

    await migrate();
    assert.deepEqual(await recordedNames(database.db), Object.keys(billingMigrations).sort(), "a second start renames nothing and runs nothing");
    assert.deepEqual(await checkLedgerInvariants(database.db), []);
    assert.deepEqual(await installedFunctions(database.db), currentFunctions());
  });

  it("leaves every billing function at its current definition, even one a database has in an older form", async () => {
    // What the migrations left, plus a stale body as a database might hold from an older release.
    await sql.raw(`create or replace function billing_spendable_mc(p_credit_account_id bigint, p_now timestamptz) returns bigint
      language sql stable as $$ select 0::bigint $$`).execute(database.db);
    assert.notDeepEqual(await installedFunctions(database.db), currentFunctions());
    await migrate();
    const installed = await installedFunctions(database.db);
    assert.deepEqual(installed, currentFunctions(), "one function per definition (no stale overload or leftover), each with today's body");
    assert.deepEqual(installed.map((definition) => definition.name), ["billing_expire_buckets", "billing_ledger_is_append_only", "billing_reserve", "billing_settle", "billing_spendable_mc"]);
    const ledger = new LedgerStore({ db: database.db, clock });
    assert.equal(ok(await ledger.balance("old", "api")).availableMillicredits, 60_000 - 1_500 - 500, "the current billing_spendable_mc answers again");
  });
});

describe("billing migrations: the smart crop price", () => {
  const databases: { test: TestDatabase; database: Database<BillingSchema> }[] = [];
  const clock = new ManualClock();
  async function freshDatabase(): Promise<Database<BillingSchema>> {
    const test = await createTestDatabase();
    const database = openDatabase<BillingSchema>(test.location);
    databases.push({ test, database });
    return database;
  }
  after(async () => {
    for (const { test, database } of databases) {
      await database.close();
      await test.dispose();
    }
  });

  it("the migrations alone leave DEFAULT_PRICE_BOOK: the seed's book plus smart crop (the plans file's book comes after them)", async () => {
    const database = await freshDatabase();
    await migrateBilling(database.db as Kysely<unknown>);
    assert.deepEqual(await new PriceBookStore(database.db).active(), DEFAULT_PRICE_BOOK);
  });

  it("an operator's edited book keeps its edits and gains smart crop in a new version", async () => {
    const database = await freshDatabase();
    await migrateUnderOldNames(database.db as Kysely<unknown>, ["2025-01-01T00-00-ledger", "2025-01-01T00-01-seed"]);
    const seeded = await new PriceBookStore(database.db).active();
    assert.equal(seeded.operations.smart_crop, undefined, "the seed's book predates smart crop");
    const edited = { ...seeded, version: "operator-2026-06", extras: { ...seeded.extras, shadow: 300 } };
    await database.db.transaction().execute((transaction) => new PriceBookStore(transaction).activate(edited, clock.now()));
    await migrateBilling(database.db as Kysely<unknown>);
    const active = await new PriceBookStore(database.db).active();
    assert.deepEqual(active, { ...edited, version: "2026-11-smart-crop", operations: { ...edited.operations, smart_crop: SMART_CROP_PRICE } });
    const versions = await database.db.selectFrom("billing_price_books").select(["version", "active"]).orderBy("version").execute();
    assert.deepEqual(versions, [
      { version: "2025-01-default", active: false },
      { version: "2026-11-smart-crop", active: true },
      { version: "operator-2026-06", active: false },
    ]);
  });
});

describe("billing migrations: functions and refunds", () => {
  it("leaves billing_reserve in place when the migrations commit, before the current definitions are applied", async () => {
    const test = await createTestDatabase();
    const database = openDatabase<BillingSchema>(test.location);
    try {
      // The migrations alone, the way the runner applies them before afterMigrations' own transaction.
      const migrator = new Migrator({ db: database.db, provider: { getMigrations: async () => billingMigrations }, migrationTableName: "billing_migrations", migrationLockTableName: "billing_migrations_lock" });
      const { error } = await migrator.migrateToLatest();
      assert.equal(error, undefined);
      assert.ok((await installedFunctions(database.db)).some((fn) => fn.name === "billing_reserve"), "billing_reserve exists between the two transactions");
      // Down past the refunds migration with a refund entry booked keeps the ledger valid.
      await migrateBilling(database.db as Kysely<unknown>);
      const ledger = new LedgerStore({ db: database.db, clock: new ManualClock() });
      ok(await ledger.createAccount({ accountId: "down-refund", planCode: "free", grantTrial: false }));
      const granted = ok(await ledger.grant({ accountId: "down-refund", pool: "api", kind: "top_up", amountMillicredits: 1_000, idempotencyKey: "paid" }));
      ok(await ledger.refundGrant({ accountId: "down-refund", bucketId: String(granted.bucket.id), refundedMinor: 1, paidMinor: 1, refundKey: "all" }));
      const down = await new Migrator({ db: database.db, provider: { getMigrations: async () => billingMigrations }, migrationTableName: "billing_migrations", migrationLockTableName: "billing_migrations_lock" }).migrateTo("202611272112_member_email");
      assert.equal(down.error, undefined, `down failed: ${String(down.error)}`);
    } finally {
      await database.close();
      await test.dispose();
    }
  });
});
