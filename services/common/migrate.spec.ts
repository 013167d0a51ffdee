// The migration runner every service uses, on a real database: name order, legacy renames on a
// database migrated under old names, the failing migration named with its detail, and the hook
// that runs after the last migration on every start.
import assert from "node:assert/strict";
import { randomBytes } from "node:crypto";
import { after, before, describe, it } from "node:test";
import { sql, type Kysely, type Migration } from "kysely";
import { createTestDatabase, type TestDatabase } from "../../test/harness.ts";
import { openDatabase, type Database } from "./database.ts";
import { migrateToLatest } from "./migrate.ts";

/** A migration that creates one table and counts its runs. */
function creating(table: string, runs: Map<string, number>): Migration {
  return {
    async up(db: Kysely<any>) {
      runs.set(table, (runs.get(table) ?? 0) + 1);
      await sql`create table ${sql.table(table)} (id integer)`.execute(db);
    },
  };
}

async function recordedNames(db: Kysely<any>, service: string): Promise<string[]> {
  const rows = await db.selectFrom(`${service}_migrations`).select("name").orderBy("name").execute();
  return rows.map((row) => String(row.name));
}

async function tableExists(db: Kysely<any>, table: string): Promise<boolean> {
  const { rows } = await sql<{ present: boolean }>`select to_regclass(${table}) is not null as present`.execute(db);
  return rows[0]?.present === true;
}

async function rejection(promise: Promise<unknown>): Promise<Error> {
  try {
    await promise;
  } catch (error) {
    assert.ok(error instanceof Error);
    return error;
  }
  assert.fail("expected the migration to fail");
}

describe("migrateToLatest", () => {
  let testDatabase: TestDatabase;
  let database: Database<any>;
  // Each test migrates its own service's tables, so the tests share one database.
  const serviceName = () => `svc_${randomBytes(4).toString("hex")}`;
  before(async () => {
    testDatabase = await createTestDatabase();
    database = openDatabase<any>(testDatabase.location);
  });
  after(async () => {
    await database?.close();
    await testDatabase?.dispose();
  });

  it("applies pending migrations in name order, each once", async () => {
    const service = serviceName();
    const runs = new Map<string, number>();
    const order: string[] = [];
    const tracked = (name: string): Migration => ({ up: async (db) => void (order.push(name), await creating(`${service}_${name}`, runs).up(db)) });
    await migrateToLatest(database.db, service, { "202602010000_b": tracked("b"), "202601010000_a": tracked("a") });
    await migrateToLatest(database.db, service, { "202601010000_a": tracked("a"), "202602010000_b": tracked("b"), "202603010000_c": tracked("c") });
    assert.deepEqual(order, ["a", "b", "c"]);
    assert.deepEqual(await recordedNames(database.db, service), ["202601010000_a", "202602010000_b", "202603010000_c"]);
  });

  it("renames legacy names first, so a database migrated under the old names keeps working, and renaming again changes nothing", async () => {
    const service = serviceName();
    const runs = new Map<string, number>();
    const [a, b, c] = ["a", "b", "c"].map((name) => creating(`${service}_${name}`, runs)) as [Migration, Migration, Migration];
    await migrateToLatest(database.db, service, { "2025-01-01T00-00-a": a, "2025-01-01T00-01-b": b });
    assert.deepEqual(await recordedNames(database.db, service), ["2025-01-01T00-00-a", "2025-01-01T00-01-b"]);

    const renamed = { "202501010000_a": a, "202501010001_b": b, "202601010000_c": c };
    const legacyNames = { "2025-01-01T00-00-a": "202501010000_a", "2025-01-01T00-01-b": "202501010001_b" };
    const withoutMap = await rejection(migrateToLatest(database.db, service, renamed));
    assert.match(withoutMap.message, new RegExp(`^${service} migrations failed: corrupted migrations: previously executed migration 2025-01-01T00-00-a is missing`));

    await migrateToLatest(database.db, service, renamed, { legacyNames });
    await migrateToLatest(database.db, service, renamed, { legacyNames });
    assert.deepEqual(await recordedNames(database.db, service), ["202501010000_a", "202501010001_b", "202601010000_c"]);
    assert.deepEqual(Object.fromEntries(runs), { [`${service}_a`]: 1, [`${service}_b`]: 1, [`${service}_c`]: 1 }, "no migration ran twice");
  });

  it("needs no migration table for the renames on a fresh database", async () => {
    const service = serviceName();
    const runs = new Map<string, number>();
    await migrateToLatest(database.db, service, { "202501010000_a": creating(`${service}_a`, runs) }, { legacyNames: { "2025-01-01T00-00-a": "202501010000_a" } });
    assert.deepEqual(await recordedNames(database.db, service), ["202501010000_a"]);
  });

  it("refuses a legacy name mapped to a migration it does not have", async () => {
    const service = serviceName();
    const error = await rejection(migrateToLatest(database.db, service, {}, { legacyNames: { old: "202501010000_gone" } }));
    assert.equal(error.message, `${service} legacy migration name old maps to 202501010000_gone, which is not one of its migrations`);
  });

  it("names the failing migration and its detail, keeps the cause, and applies none of the run (one transaction on Postgres)", async () => {
    const service = serviceName();
    const runs = new Map<string, number>();
    const failing: Migration = {
      async up(db) {
        await sql`create table ${sql.table(`${service}_half`)} (id integer)`.execute(db);
        await sql`select * from ${sql.table(`${service}_missing`)}`.execute(db);
      },
    };
    const error = await rejection(migrateToLatest(database.db, service, { "202601010000_ok": creating(`${service}_ok`, runs), "202602010000_bad": failing }));
    assert.match(error.message, new RegExp(`^${service} migration 202602010000_bad failed: relation "${service}_missing" does not exist$`));
    assert.ok(error.cause instanceof Error);
    assert.deepEqual(await recordedNames(database.db, service), []);
    assert.equal(await tableExists(database.db, `${service}_ok`), false, "the run's earlier migration is rolled back with it");
    assert.equal(await tableExists(database.db, `${service}_half`), false, "a failed migration leaves nothing behind");
  });

  it("runs afterMigrations after the last migration on every start, all or nothing", async () => {
    const service = serviceName();
    const runs = new Map<string, number>();
    const migrations = { "202601010000_a": creating(`${service}_a`, runs) };
    const seen: boolean[] = [];
    const afterMigrations = async (db: Kysely<any>) => void seen.push(await tableExists(db, `${service}_a`));
    await migrateToLatest(database.db, service, migrations, { afterMigrations });
    await migrateToLatest(database.db, service, migrations, { afterMigrations });
    assert.deepEqual(seen, [true, true], "runs on every start and sees the migrated schema");

    const error = await rejection(
      migrateToLatest(database.db, service, migrations, {
        async afterMigrations(db) {
          await sql`create table ${sql.table(`${service}_partial`)} (id integer)`.execute(db);
          throw new Error("definition refused");
        },
      }),
    );
    assert.equal(error.message, `${service} definitions after the last migration failed: definition refused`);
    assert.equal(await tableExists(database.db, `${service}_partial`), false, "a failed hook rolls back");
  });
});
