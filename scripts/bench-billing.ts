// Billing benchmark, in one run on one Postgres:
//   1. pgbench's built-in TPC-B-like transaction rate (the floor for "a few statements per
//      transaction" on this machine and server),
//   2. reserve+capture pairs/s across 1,000 accounts, 16 concurrent clients,
//   3. the same on one hot team account (every pair contends for one row lock),
//   4. an invariant check over the whole ledger.
// The last line is one JSON object. Knobs: DATABASE_URL (default the local test server),
// BENCH_SECONDS per phase (default 10), BENCH_CLIENTS (default 16), PGBENCH (path).
import { execFileSync } from "node:child_process";
import { randomBytes } from "node:crypto";
import { existsSync, readdirSync } from "node:fs";
import { Kysely } from "kysely";
import pg from "pg";
import pino from "pino";
import { openDatabase } from "../services/common/database.ts";
import { createBilling } from "../services/billing/index.ts";
import type { LedgerStore } from "../services/billing/store/ledger.store.ts";

const serverUrl = process.env.DATABASE_URL ?? "postgres://postgres@127.0.0.1:5432/test";
const phaseSeconds = Number(process.env.BENCH_SECONDS ?? 10);
const clients = Number(process.env.BENCH_CLIENTS ?? 16);
const accountCount = 1_000;

function findPgbench(): string {
  if (process.env.PGBENCH) return process.env.PGBENCH;
  const root = "/usr/lib/postgresql";
  const versions = existsSync(root) ? readdirSync(root).sort((a, b) => Number(b) - Number(a)) : [];
  for (const version of versions) {
    const candidate = `${root}/${version}/bin/pgbench`;
    if (existsSync(candidate)) return candidate;
  }
  return "pgbench";
}

function percentile(sortedMs: number[], fraction: number): number {
  if (sortedMs.length === 0) return 0;
  return sortedMs[Math.min(sortedMs.length - 1, Math.floor(sortedMs.length * fraction))]!;
}

const round = (value: number, digits = 1) => Number(value.toFixed(digits));

async function runPairs(ledger: LedgerStore, pickAccount: () => string, label: string) {
  const latenciesMs: number[] = [];
  let failures = 0;
  const deadline = performance.now() + phaseSeconds * 1000;
  const started = performance.now();
  await Promise.all(
    Array.from({ length: clients }, async (_, client) => {
      let serial = 0;
      while (performance.now() < deadline) {
        serial += 1;
        const pairStart = performance.now();
        const hold = await ledger.reserve({
          accountId: pickAccount(),
          // As the gateway reserves: with the version its quote was priced under.
          priceBookVersion: (await ledger.priceBook()).version,
          pool: "api",
          amountMillicredits: 1_100,
          idempotencyKey: `${label}-${client}-${serial}`,
          apiKeyId: `key-${client}`,
          memberId: `member-${client % 4}`,
        });
        if (!hold.ok) {
          failures += 1;
          continue;
        }
        const capture = await ledger.capture(hold.holdId, 800);
        if (!capture.ok) failures += 1;
        latenciesMs.push(performance.now() - pairStart);
      }
    }),
  );
  const elapsedSeconds = (performance.now() - started) / 1000;
  latenciesMs.sort((a, b) => a - b);
  return {
    pairs: latenciesMs.length,
    pairsPerSecond: latenciesMs.length / elapsedSeconds,
    p50Ms: percentile(latenciesMs, 0.5),
    p99Ms: percentile(latenciesMs, 0.99),
    failures,
  };
}

async function main() {
  const name = `cutline_bench_${randomBytes(4).toString("hex")}`;
  const admin = new pg.Client({ connectionString: serverUrl });
  await admin.connect();
  await admin.query(`create database ${name}`);
  const url = new URL(serverUrl);
  url.pathname = `/${name}`;
  const log = pino({ level: "silent" });
  try {
    const pgbench = findPgbench();
    const connection = ["-h", url.hostname, "-p", url.port || "5432", "-U", decodeURIComponent(url.username || "postgres")];
    console.log(`# pgbench: ${pgbench} (TPC-B-like, scale 16, ${clients} clients, ${phaseSeconds} s)`);
    execFileSync(pgbench, [...connection, "-i", "-q", "-s", "16", name], { stdio: ["ignore", "ignore", "ignore"] });
    const pgbenchOutput = execFileSync(pgbench, [...connection, "-c", String(clients), "-j", "2", "-T", String(phaseSeconds), name], { encoding: "utf8", stdio: ["ignore", "pipe", "ignore"] });
    const tpsMatch = /tps = ([\d.]+)/.exec(pgbenchOutput);
    if (!tpsMatch) throw new Error(`could not read pgbench's tps from:\n${pgbenchOutput}`);
    const pgbenchTps = Number(tpsMatch[1]);
    console.log(`# pgbench tps = ${pgbenchTps}`);

    const database = openDatabase<unknown>({ kind: "postgres", url: url.toString(), poolSizeMax: clients });
    const billing = await createBilling({ db: database.db as Kysely<unknown>, log });
    await billing.migrate();
    const { ledger } = billing;
    const accounts = Array.from({ length: accountCount }, (_, index) => `bench-${index}`);
    for (let start = 0; start < accounts.length; start += clients) {
      await Promise.all(
        accounts.slice(start, start + clients).map(async (accountId) => {
          const created = await ledger.createAccount({ accountId, planCode: "business", grantTrial: true });
          if (!created.ok) throw new Error(created.message);
          const grant = await ledger.grant({ accountId, pool: "api", kind: "top_up", amountMillicredits: 50_000_000, idempotencyKey: "bench" });
          if (!grant.ok) throw new Error(grant.message);
        }),
      );
    }
    const hot = "bench-hot-team";
    if (!(await ledger.createAccount({ accountId: hot, planCode: "business", ownerMemberId: "member-0" })).ok) throw new Error("hot account");
    for (let index = 0; index < 2; index += 1) {
      const grant = await ledger.grant({ accountId: hot, pool: "api", kind: "top_up", amountMillicredits: 100_000_000, idempotencyKey: `bench-${index}` });
      if (!grant.ok) throw new Error(grant.message);
    }
    console.log(`# ${accountCount} accounts + 1 hot team account ready; ${clients} clients, ${phaseSeconds} s per phase`);

    const spread = await runPairs(ledger, () => accounts[Math.floor(Math.random() * accounts.length)]!, "spread");
    console.log(`# across accounts: ${round(spread.pairsPerSecond)} pairs/s, p50 ${round(spread.p50Ms, 2)} ms, p99 ${round(spread.p99Ms, 2)} ms, ${spread.failures} failures`);
    const hotRun = await runPairs(ledger, () => hot, "hot");
    console.log(`# one hot account: ${round(hotRun.pairsPerSecond)} pairs/s, p50 ${round(hotRun.p50Ms, 2)} ms, p99 ${round(hotRun.p99Ms, 2)} ms, ${hotRun.failures} failures`);

    const checkStarted = performance.now();
    const violations = await billing.checkInvariants();
    for (const violation of violations) console.log(`# VIOLATION ${violation.invariant}: ${violation.count} rows, e.g. ${JSON.stringify(violation.sample)}`);
    console.log(`# invariant check over ${spread.pairs + hotRun.pairs} pairs took ${round((performance.now() - checkStarted) / 1000, 2)} s`);
    await database.close();

    console.log(
      JSON.stringify({
        pairsPerSecond: round(spread.pairsPerSecond),
        hotPairsPerSecond: round(hotRun.pairsPerSecond),
        pgbenchTps: round(pgbenchTps),
        // Each pair is two transactions; pgbench counts one transaction per TPC-B step.
        ratio: round(spread.pairsPerSecond / pgbenchTps, 3),
        p50Ms: round(spread.p50Ms, 2),
        p99Ms: round(spread.p99Ms, 2),
        hotP50Ms: round(hotRun.p50Ms, 2),
        hotP99Ms: round(hotRun.p99Ms, 2),
        clients,
        accounts: accountCount,
        phaseSeconds,
        failures: spread.failures + hotRun.failures,
        violations: violations.reduce((sum, violation) => sum + violation.count, 0),
      }),
    );
    if (violations.length > 0 || spread.failures + hotRun.failures > 0) process.exitCode = 1;
  } finally {
    // Without force: every connection of ours is closed by now, and forcing would kill a
    // closing pool connection whose error event has no listener left.
    for (let attempt = 0; ; attempt += 1) {
      try {
        await admin.query(`drop database if exists ${name}`);
        break;
      } catch (error) {
        if (attempt >= 20) throw error;
        await new Promise((resolve) => setTimeout(resolve, 250));
      }
    }
    await admin.end();
  }
}

await main();
