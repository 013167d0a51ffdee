// Opening the database in whichever mode the tests run (PGlite or Postgres), and the Postgres
// pool against a real server: the server ending a backend that a transaction holds must fail that
// transaction, not the process. The latter needs DATABASE_URL (CI sets it); PGlite has no backends
// to terminate.
import assert from "node:assert/strict";
import { describe, it } from "node:test";
import { sql } from "kysely";
import { createTestDatabase } from "../../test/harness.ts";
import { openDatabase } from "./database.ts";

const url = process.env.DATABASE_URL;

it("opens the test database and reads int8 as a number, as both modes must", async () => {
  const testDatabase = await createTestDatabase();
  const database = openDatabase<Record<string, never>>(testDatabase.location);
  try {
    const { rows } = await sql<{ answer: number }>`select 41::int8 + 1 as answer`.execute(database.db);
    assert.equal(rows[0]?.answer, 42);
  } finally {
    await database.close();
    await testDatabase.dispose();
  }
});

describe("postgres connections", { skip: url ? false : "DATABASE_URL is unset: no Postgres server to terminate backends on" }, () => {
  it("a backend terminated inside a transaction fails that transaction; the process and the pool go on", async () => {
    const uncaught: unknown[] = [];
    const onUncaught = (error: unknown) => uncaught.push(error);
    process.on("uncaughtException", onUncaught);
    const database = openDatabase<unknown>({ kind: "postgres", url: url!, poolSizeMax: 2 });
    const admin = openDatabase<unknown>({ kind: "postgres", url: url!, poolSizeMax: 1 });
    try {
      const transaction = database.db.transaction().execute(async (trx) => {
        const { rows } = await sql<{ pid: number }>`select pg_backend_pid() as pid`.execute(trx);
        await sql`select pg_terminate_backend(${rows[0]!.pid})`.execute(admin.db);
        // The client sits between statements while the server drops it, as a slow transaction would.
        await new Promise((resolve) => setTimeout(resolve, 300));
        await sql`select 1`.execute(trx);
      });
      await assert.rejects(transaction);
      await new Promise((resolve) => setTimeout(resolve, 100));
      assert.deepEqual(uncaught, []);
      const { rows } = await sql<{ one: number }>`select 1 as one`.execute(database.db);
      assert.equal(rows[0]!.one, 1);
    } finally {
      process.off("uncaughtException", onUncaught);
      await database.close();
      await admin.close();
    }
  });
});
