// The per-minute check on the request path, three ways, in one run: the in-process bucket, the
// Postgres store the gateway replicas share (one upsert), and what a NATS KV bucket would cost
// (get, then a compare-and-set update retried on a conflict: the KV has no atomic read-modify-write).
// Each is timed per take, first one caller over 200 accounts, then 16 callers on two connections
// racing on one hot account. Prints p50/p99 in microseconds and the load average; the last line is
// one JSON object. Knobs: DATABASE_URL, NATS_URL (defaults: the local test servers), BENCH_TAKES (default 2000).
import { jetstreamManager } from "@nats-io/jetstream";
import { Kvm, type KV } from "@nats-io/kv";
import { connect } from "@nats-io/transport-node";
import { readFileSync } from "node:fs";
import { createTestDatabase } from "../test/harness.ts";
import { openDatabase } from "../services/common/database.ts";
import { migrateToLatest } from "../services/common/migrate.ts";
import { gatewayMigrations } from "../services/gateway/store/migrations.ts";
import { RequestRateStore } from "../services/gateway/store/request-rate.store.ts";
import { InProcessRequestRates } from "../services/gateway/store/request-rates.in-process.ts";
import type { RequestRates } from "../services/gateway/store/request-rates.ts";

process.env.DATABASE_URL ??= "postgres://postgres@127.0.0.1:5432/test";
const natsUrl = process.env.NATS_URL ?? "nats://127.0.0.1:4222";
const takes = Number(process.env.BENCH_TAKES ?? 2000);
const PER_MINUTE = 1_000_000; // never refuses: every take writes

/** The token bucket as a KV adapter would keep it, for the comparison only. */
function kvRates(kv: KV, retries: { count: number }): RequestRates {
  return {
    async take(accountId, requestsPerMinute) {
      for (;;) {
        const entry = await kv.get(accountId);
        const nowMs = Date.now();
        const bucket = entry?.value.length ? (JSON.parse(entry.string()) as { tokens: number; atMs: number }) : { tokens: requestsPerMinute, atMs: nowMs };
        const tokens = Math.min(requestsPerMinute, bucket.tokens + ((nowMs - bucket.atMs) * requestsPerMinute) / 60_000);
        const next = JSON.stringify({ tokens: tokens >= 1 ? tokens - 1 : tokens, atMs: nowMs });
        try {
          if (entry) await kv.update(accountId, next, entry.revision);
          else await kv.create(accountId, next);
          return { outcome: { ok: true }, state: undefined };
        } catch {
          retries.count += 1; // another caller wrote first: read again
        }
      }
    },
  };
}

function percentiles(samples: number[]): { p50Us: number; p99Us: number } {
  const sorted = [...samples].sort((left, right) => left - right);
  const at = (fraction: number) => Math.round(sorted[Math.min(sorted.length - 1, Math.floor(fraction * sorted.length))]! * 1000);
  return { p50Us: at(0.5), p99Us: at(0.99) };
}

async function timed(rates: RequestRates[], callers: number, account: (index: number) => string): Promise<{ p50Us: number; p99Us: number }> {
  const samples: number[] = [];
  let next = 0;
  await Promise.all(
    Array.from({ length: callers }, async (_, caller) => {
      while (next < takes) {
        const index = next++;
        const started = performance.now();
        await rates[caller % rates.length]!.take(account(index), PER_MINUTE);
        samples.push(performance.now() - started);
      }
    }),
  );
  return percentiles(samples);
}

const loadBefore = readFileSync("/proc/loadavg", "utf8").trim();
const testDatabase = await createTestDatabase();
const databases = [openDatabase<any>(testDatabase.location), openDatabase<any>(testDatabase.location)];
await migrateToLatest(databases[0]!.db, "gateway", gatewayMigrations);
const connections = [await connect({ servers: natsUrl }), await connect({ servers: natsUrl })];
const bucket = `bench_rates_${Date.now()}`;
const kvs = [await new Kvm(connections[0]!).create(bucket, { history: 1 }), await new Kvm(connections[1]!).open(bucket)];
const kvRetries = { count: 0 };

const local = [new InProcessRequestRates()];
const postgres = databases.map((database) => new RequestRateStore(database.db));
const kv = kvs.map((opened) => kvRates(opened, kvRetries));
const spread = (index: number) => `account-${index % 200}`;
const hot = () => "hot-account";

// Warm every path (connections, plans) before timing.
for (const rates of [local, postgres, kv]) await timed(rates, 1, spread);
const results = {
  loadAverage: loadBefore,
  takes,
  inProcess: { sequential: await timed(local, 1, spread), hotAccount16: await timed(local, 16, hot) },
  postgres: { sequential: await timed(postgres, 1, spread), hotAccount16: await timed(postgres, 16, hot) },
  natsKv: { sequential: await timed(kv, 1, spread), hotAccount16: await timed(kv, 16, hot), casRetries: kvRetries.count },
  loadAverageAfter: readFileSync("/proc/loadavg", "utf8").trim(),
};
for (const [name, value] of Object.entries(results)) console.log(name, JSON.stringify(value));
console.log(JSON.stringify(results));

await jetstreamManager(connections[0]!).then((manager) => manager.streams.delete(`KV_${bucket}`));
for (const connection of connections) await connection.close();
for (const database of databases) await database.close();
await testDatabase.dispose();
