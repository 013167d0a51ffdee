// The per-minute limit's two adapters under one contract, on a real database (Postgres when
// DATABASE_URL is set, else PGlite); replicas racing on one account; and the fall-back to this
// replica's own bucket when the shared store is down or slow.
import assert from "node:assert/strict";
import { randomUUID } from "node:crypto";
import { after, before, describe, test } from "node:test";
import { pino } from "pino";
import { createTestDatabase, type TestDatabase } from "../../../test/harness.ts";
import { openDatabase, type Database } from "../../common/database.ts";
import { migrateToLatest } from "../../common/migrate.ts";
import { gatewayMigrations } from "./migrations.ts";
import { describeRequestRatesContract } from "./request-rates.contract.ts";
import { InProcessRequestRates } from "./request-rates.in-process.ts";
import { RequestRateStore, type RequestRateSchema } from "./request-rate.store.ts";
import { FailOpenRequestRates, type RequestRates } from "./request-rates.ts";

let testDatabase: TestDatabase;
const databases: Database<RequestRateSchema>[] = [];
const replica = () => {
  const database = openDatabase<RequestRateSchema>(testDatabase.location);
  databases.push(database);
  return new RequestRateStore(database.db);
};

before(async () => {
  testDatabase = await createTestDatabase();
  const database = openDatabase<any>(testDatabase.location);
  await migrateToLatest(database.db, "gateway", gatewayMigrations);
  await database.close();
});

after(async () => {
  for (const database of databases) await database.close();
  await testDatabase?.dispose();
});

describeRequestRatesContract("in-process", () => new InProcessRequestRates());
let store: RequestRateStore | undefined;
describeRequestRatesContract("Postgres", () => (store ??= replica()));

describe("RequestRateStore shared by replicas", () => {
  test("two replicas racing on one account admit the plan's rate once between them", async (context) => {
    if (testDatabase.location.kind === "pglite") return context.skip("PGlite is one process's database: set DATABASE_URL for replicas");
    const [first, second] = [replica(), replica()];
    const account = randomUUID();
    const perMinute = 40;
    const takes = await Promise.all(Array.from({ length: perMinute * 2 }, (_, index) => (index % 2 === 0 ? first : second).take(account, perMinute)));
    const admitted = takes.filter((take) => take.outcome.ok);
    assert.equal(admitted.length, perMinute);
    // Every remaining count from 0 to 39 was handed out exactly once across the two.
    assert.deepEqual(admitted.map((take) => take.state!.remaining).sort((left, right) => left - right), Array.from({ length: perMinute }, (_, index) => index));
  });
});

describe("FailOpenRequestRates", () => {
  const lines: string[] = [];
  const log = pino({ level: "warn" }, { write: (line: string) => lines.push(line) });

  test("a store that is down leaves each replica its own bucket: limited, never open, never closed", async () => {
    const down: RequestRates = { take: () => Promise.reject(new Error("connect ECONNREFUSED 127.0.0.1:1")) };
    const rates = new FailOpenRequestRates(down, new InProcessRequestRates(), { log });
    const account = randomUUID();
    const outcomes = [];
    for (let index = 0; index < 4; index++) outcomes.push((await rates.take(account, 3)).outcome.ok);
    assert.deepEqual(outcomes, [true, true, true, false]);
    assert.equal(lines.length, 1, "logged once per interval, not per request");
    assert.match(lines[0]!, /shared rate limit store unavailable/);
  });

  test("a store slower than timeoutMs is not waited for", async () => {
    const hung: RequestRates = { take: () => new Promise(() => {}) };
    const rates = new FailOpenRequestRates(hung, new InProcessRequestRates(), { log, timeoutMs: 50 });
    const started = performance.now();
    const { outcome, state } = await rates.take(randomUUID(), 10);
    assert.equal(outcome.ok, true);
    assert.equal(state?.remaining, 9);
    assert.ok(performance.now() - started < 500);
  });

  test("a Postgres store on a database that is down falls back, and the shared one serves again once up", async () => {
    const unreachable = new RequestRateStore(openDatabase<RequestRateSchema>({ kind: "postgres", url: "postgres://postgres@127.0.0.1:1/none" }).db);
    const rates = new FailOpenRequestRates(unreachable, new InProcessRequestRates(), { log, timeoutMs: 2000 });
    assert.equal((await rates.take(randomUUID(), 1)).outcome.ok, true);
    const shared = new FailOpenRequestRates(replica(), new InProcessRequestRates(), { log });
    const account = randomUUID();
    await shared.take(account, 1);
    assert.equal((await shared.take(account, 1)).outcome.ok, false);
  });
});
