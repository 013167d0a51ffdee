// The per-minute limit's two adapters under one contract, on a real database (Postgres when
// DATABASE_URL is set, else PGlite); replicas racing on one account; and the fall-back to this
// replica's own bucket when the shared store is down or slow.
import assert from "node:assert/strict";
import { randomUUID } from "node:crypto";
import { after, before, describe, test } from "node:test";
import { setTimeout as sleep } from "node:timers/promises";
import { sql, type Kysely } from "kysely";
import { pino } from "pino";
import { createTestDatabase, type TestDatabase } from "../../../test/harness.ts";
import { openDatabase, type Database } from "../../common/database.ts";
import { migrateToLatest } from "../../common/migrate.ts";
import { gatewayMigrations } from "./migrations.ts";
import { describeRequestRatesContract } from "./request-rates.contract.ts";
import { InProcessRequestRates } from "./request-rates.in-process.ts";
import { openSharedRequestRates, REQUEST_RATE_APPLICATION_NAME, RequestRateStore, type RequestRateSchema } from "./request-rate.store.ts";
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

describe("the shared limit when Postgres is slow (a lock held on the bucket row)", () => {
  const log = pino({ level: "silent" });
  const opened: { close(): Promise<void> }[] = [];
  after(async () => {
    for (const rates of opened) await rates.close();
  });
  const shared = (options: { timeoutMs: number; coolDownMs: number }) => {
    if (testDatabase.location.kind !== "postgres") throw new Error("the shared limit needs DATABASE_URL");
    const opening = openSharedRequestRates(testDatabase.location, { ...options, log });
    opened.push(opening);
    return opening.rates;
  };
  const admin = () => {
    const database = openDatabase<RequestRateSchema>(testDatabase.location);
    databases.push(database);
    return database.db;
  };
  const tokensOf = async (db: Kysely<RequestRateSchema>, account: string) =>
    Number((await db.selectFrom("gateway_request_rates").select("tokens").where("account_id", "=", account).executeTakeFirstOrThrow()).tokens);
  const limiterBackendsActive = async (db: Kysely<RequestRateSchema>) =>
    Number((await sql<{ count: string }>`select count(*) from pg_stat_activity where application_name = ${REQUEST_RATE_APPLICATION_NAME} and state = 'active'`.execute(db)).rows[0]!.count);
  /** Runs `during` while another transaction holds the account's bucket row. */
  const whileLocked = async <T>(db: Kysely<RequestRateSchema>, account: string, during: () => Promise<T>): Promise<T> =>
    db.connection().execute(async (connection) => {
      await sql`begin`.execute(connection);
      await sql`select 1 from gateway_request_rates where account_id = ${account} for update`.execute(connection);
      try {
        return await during();
      } finally {
        await sql`rollback`.execute(connection);
      }
    });

  test("a take gives up within the timeout, the server cancels it, and it never commits later", async (context) => {
    if (testDatabase.location.kind === "pglite") return context.skip("PGlite has no other sessions: set DATABASE_URL");
    const rates = shared({ timeoutMs: 200, coolDownMs: 60_000 });
    const db = admin();
    const account = randomUUID();
    await rates.take(account, 10);
    const tokensBefore = await tokensOf(db, account);
    await whileLocked(db, account, async () => {
      const started = performance.now();
      const { outcome, state } = await rates.take(account, 10);
      assert.ok(performance.now() - started < 450, `waited ${performance.now() - started} ms`);
      assert.equal(outcome.ok, true);
      assert.equal(state?.remaining, 9, "judged by this replica's own bucket");
      // The statement was cancelled, not left queued on the lock holding its connection.
      let active = await limiterBackendsActive(db);
      for (let tries = 0; tries < 20 && active > 0; tries++) active = (await sleep(25), await limiterBackendsActive(db));
      assert.equal(active, 0, "the limiter's statement still runs after the take gave up");
    });
    await sleep(100);
    assert.equal(await tokensOf(db, account), tokensBefore, "a take abandoned by the gateway committed once the lock was released");
  });

  test("takes held up by the store hold none of the gateway's own connections", async (context) => {
    if (testDatabase.location.kind === "pglite") return context.skip("PGlite has no other sessions: set DATABASE_URL");
    // No cool-down: every take goes to the slow store, as during a slowdown's first moments on many replicas.
    const rates = shared({ timeoutMs: 300, coolDownMs: 0 });
    const gatewayPool = openDatabase<RequestRateSchema>({ ...testDatabase.location, poolSizeMax: 2 } as typeof testDatabase.location);
    databases.push(gatewayPool);
    const db = admin();
    const account = randomUUID();
    await rates.take(account, 100);
    await whileLocked(db, account, async () => {
      const takes = Promise.all(Array.from({ length: 20 }, () => rates.take(account, 100)));
      await sleep(50);
      // What authentication does on the gateway's pool meanwhile: answered at once, not after the takes.
      const answered = await Promise.race([sql`select 1`.execute(gatewayPool.db).then(() => true), sleep(150).then(() => false)]);
      assert.equal(answered, true, "an API-key query waited over 150 ms behind rate-limit takes");
      assert.ok((await limiterBackendsActive(db)) <= 4, "the limiter's pool holds at most 4 connections");
      const outcomes = await takes;
      assert.equal(outcomes.every((take) => take.outcome.ok), true);
    });
  });

  test("after a failure the replica judges alone for the cool-down, then tries the store again", async (context) => {
    if (testDatabase.location.kind === "pglite") return context.skip("PGlite has no other sessions: set DATABASE_URL");
    const rates = shared({ timeoutMs: 150, coolDownMs: 600 });
    const db = admin();
    const account = randomUUID();
    await rates.take(account, 10);
    await whileLocked(db, account, () => rates.take(account, 10));
    // Read the bucket once the abandoned take has settled: one sent just before its deadline may still
    // commit when the lock goes (statement_timeout counts from the server receiving it); this test is about the cool-down.
    await sleep(50);
    const tokensBefore = await tokensOf(db, account);
    // The store answers again, but the cool-down is not over: judged here, the shared bucket untouched.
    const started = performance.now();
    await rates.take(account, 10);
    assert.ok(performance.now() - started < 50, "a take in the cool-down waited for the store");
    assert.equal(await tokensOf(db, account), tokensBefore);
    await sleep(700);
    await rates.take(account, 10);
    assert.ok((await tokensOf(db, account)) < tokensBefore - 0.5, "the store was not tried again after the cool-down");
  });

  test("when the cool-down ends on a store still slow, one take tries it and the others do not wait", async (context) => {
    if (testDatabase.location.kind === "pglite") return context.skip("PGlite has no other sessions: set DATABASE_URL");
    const rates = shared({ timeoutMs: 200, coolDownMs: 300 });
    const db = admin();
    const account = randomUUID();
    await rates.take(account, 100);
    await whileLocked(db, account, async () => {
      await rates.take(account, 100);
      await sleep(350);
      const durationsMs = await Promise.all(
        Array.from({ length: 5 }, async () => {
          const started = performance.now();
          await rates.take(account, 100);
          return performance.now() - started;
        }),
      );
      assert.equal(durationsMs.filter((durationMs) => durationMs >= 150).length, 1, `durations ${durationsMs.map(Math.round).join(", ")} ms`);
      const started = performance.now();
      await rates.take(account, 100);
      assert.ok(performance.now() - started < 100, "the failed probe did not start a new cool-down");
    });
  });
});
