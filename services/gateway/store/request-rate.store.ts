// The per-minute token buckets in Postgres, shared by every gateway replica on the database.
// Chosen over a NATS KV bucket for its latency on the request path: a take is one statement, one
// round trip, atomic under any number of racing replicas (the row lock orders them), where a KV
// bucket needs a get and a compare-and-set update, two round trips, retried whenever two replicas
// race for the same account (figures in README, "Rate limits across replicas").
import { sql, type Kysely } from "kysely";
import { openDatabase, type DatabaseLocation } from "../../common/database.ts";
import type { Logger } from "../../common/logging.ts";
import { refusalOf, stateOf } from "../domain/rate-limits.ts";
import { InProcessRequestRates } from "./request-rates.in-process.ts";
import { FailOpenRequestRates, type RateTake, type RequestRates } from "./request-rates.ts";

export interface RequestRateTable {
  account_id: string;
  /** Whole and partial requests left in the bucket when it was last taken from. */
  tokens: number;
  /** When it was last taken from, in Unix milliseconds of the database's clock. */
  refilled_at_ms: number;
  /** Whether that last take was admitted. */
  admitted: boolean;
}

export interface RequestRateSchema {
  gateway_request_rates: RequestRateTable;
}

/**
 * A token bucket per account: a minute's worth of requests may come in a burst, then they refill
 * evenly. Time is the database's (clock_timestamp()), so replicas with skewed clocks still share
 * one refill rate. One row per account: the table grows with the accounts that ever called, no more.
 */
export class RequestRateStore implements RequestRates {
  constructor(private readonly db: Kysely<RequestRateSchema>) {}

  async take(accountId: string, requestsPerMinute: number): Promise<RateTake> {
    if (requestsPerMinute <= 0) return { outcome: { ok: true }, state: undefined };
    const capacity = requestsPerMinute;
    const perMs = requestsPerMinute / 60_000;
    // `refilled` is the bucket refilled up to now; the update takes a token from it when a whole one is there.
    const refilled = sql`least(${capacity}::float8, gateway_request_rates.tokens + greatest(0, excluded.refilled_at_ms - gateway_request_rates.refilled_at_ms) * ${perMs}::float8)`;
    const { rows } = await sql<{ tokens: number; admitted: boolean; refilled_at_ms: number }>`
      insert into gateway_request_rates (account_id, tokens, refilled_at_ms, admitted)
      values (${accountId}, ${capacity - 1}::float8, extract(epoch from clock_timestamp()) * 1000, true)
      on conflict (account_id) do update set
        tokens = case when ${refilled} >= 1 then ${refilled} - 1 else ${refilled} end,
        admitted = ${refilled} >= 1,
        refilled_at_ms = greatest(gateway_request_rates.refilled_at_ms, excluded.refilled_at_ms)
      returning tokens, admitted, refilled_at_ms`.execute(this.db);
    const row = rows[0]!;
    const tokens = Number(row.tokens);
    const nowMs = Number(row.refilled_at_ms);
    return { outcome: row.admitted ? { ok: true } : refusalOf(tokens, requestsPerMinute), state: stateOf(tokens, requestsPerMinute, nowMs) };
  }
}

/** Seen in pg_stat_activity: the limiter's connections, apart from the gateway's own. */
export const REQUEST_RATE_APPLICATION_NAME = "cutline-gateway-rate-limit";

export interface SharedRequestRatesOptions {
  /** RATE_LIMIT_STORE_TIMEOUT_MS: the longest a take waits for a connection or its statement. */
  timeoutMs: number;
  log: Logger;
  /** Connections of the limiter's own pool. @default 4 */
  poolSizeMax?: number;
  /** How long takes are judged locally after the store failed. @default 5000 ms (FailOpenRequestRates) */
  coolDownMs?: number;
}

/**
 * The replicas' shared limit on a pool of its own, behind the fall-back to this replica's bucket.
 * Its own pool so a slow take never holds a connection that API-key, payment or batch queries
 * wait for; a small one (4: a take is one short statement) so a slowdown costs the database few
 * backends. The server cancels a take after `timeoutMs` (statement_timeout), which rolls it back:
 * a take the gateway stopped waiting for never commits later and drains the bucket twice.
 */
export function openSharedRequestRates(location: DatabaseLocation & { kind: "postgres" }, options: SharedRequestRatesOptions): { rates: RequestRates; close(): Promise<void> } {
  const database = openDatabase<RequestRateSchema>(
    { kind: "postgres", url: location.url, poolSizeMax: options.poolSizeMax ?? 4 },
    { applicationName: REQUEST_RATE_APPLICATION_NAME, statementTimeoutMs: options.timeoutMs, connectionTimeoutMs: options.timeoutMs },
  );
  const rates = new FailOpenRequestRates(new RequestRateStore(database.db), new InProcessRequestRates(), {
    timeoutMs: options.timeoutMs,
    coolDownMs: options.coolDownMs,
    log: options.log,
  });
  return { rates, close: () => database.close() };
}
