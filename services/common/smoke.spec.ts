import assert from "node:assert/strict";
import { test } from "node:test";
import { openDatabase } from "./database.ts";
import { createTestDatabase } from "../../test/harness.ts";

test("opens the test database and runs a query", async () => {
  const testDatabase = await createTestDatabase();
  const database = openDatabase<Record<string, never>>(testDatabase.location);
  const { sql } = await import("kysely");
  const result = await sql<{ answer: number }>`select 41::int8 + 1 as answer`.execute(database.db);
  assert.equal(result.rows[0]?.answer, 42);
  await database.close();
  await testDatabase.dispose();
});
