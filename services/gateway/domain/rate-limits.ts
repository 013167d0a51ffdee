// Per-account request limits from the account's plan. The classes keep them in this gateway's
// memory: each replica enforces them for the traffic it sees. The per-minute plan limit is shared
// by every replica through the RequestRates port (store/request-rate.store.ts keeps the bucket in
// Postgres, with the same arithmetic: refusalOf, stateOf); concurrency, job reads
// and watch streams stay per replica.

/** The named limits a refusal reports; each maps to one stable reason at the API edge. */
export type LimitName = "requests_per_minute" | "concurrency" | "read_requests_per_minute" | "watch_streams";

export type LimitOutcome = { ok: true } | { ok: false; limit: LimitName; retryAfterMs: number; message: string };

export interface RequestRateLimiterOptions {
  /** Accounts tracked at once; the longest-idle are forgotten (they had refilled). @default 100000 accounts */
  accountsMax?: number;
  /** The limit a refusal names. @default "requests_per_minute" */
  limit?: LimitName;
  /** The refusal's message, from the rate and the seconds until a retry succeeds. @default the plan's rate */
  message?: (requestsPerMinute: number, retryAfterSeconds: number) => string;
}

export interface ConcurrencyLimiterOptions {
  /** The limit a refusal names. @default "concurrency" */
  limit?: LimitName;
  /** The refusal's message, from the number allowed at once. @default the plan's concurrent requests */
  message?: (concurrency: number) => string;
  /** What a refusal's Retry-After suggests. @default 1000 ms */
  retryAfterMs?: number;
}

export interface PlanRequestLimits {
  requestsPerMinute: number;
  concurrency: number;
}

interface Bucket {
  tokens: number;
  refilledAtMs: number;
}

/**
 * A token bucket per account: a minute's worth of requests may come in a burst, then they
 * refill evenly (requests per minute / 60 per second). Pure: the caller passes the time.
 */
export class RequestRateLimiter {
  readonly #buckets = new Map<string, Bucket>();
  readonly #accountsMax: number;
  readonly #limit: LimitName;
  readonly #message: (requestsPerMinute: number, retryAfterSeconds: number) => string;

  constructor(options: RequestRateLimiterOptions = {}) {
    this.#accountsMax = options.accountsMax ?? 100_000;
    this.#limit = options.limit ?? "requests_per_minute";
    this.#message = options.message ?? requestsPerMinuteMessage;
  }

  take(accountId: string, requestsPerMinute: number, nowMs: number): LimitOutcome {
    if (requestsPerMinute <= 0) return { ok: true }; // 0 means the plan sets no limit
    const perMs = requestsPerMinute / 60_000;
    const bucket = this.#buckets.get(accountId) ?? { tokens: requestsPerMinute, refilledAtMs: nowMs };
    bucket.tokens = Math.min(requestsPerMinute, bucket.tokens + (nowMs - bucket.refilledAtMs) * perMs);
    bucket.refilledAtMs = nowMs;
    // Re-inserting keeps the map in order of last use, so eviction drops the longest idle.
    this.#buckets.delete(accountId);
    this.#buckets.set(accountId, bucket);
    if (this.#buckets.size > this.#accountsMax) this.#buckets.delete(this.#buckets.keys().next().value!);
    if (bucket.tokens >= 1) {
      bucket.tokens -= 1;
      return { ok: true };
    }
    return refusalOf(bucket.tokens, requestsPerMinute, { limit: this.#limit, message: this.#message });
  }

  /** The account's budget at `nowMs` without taking from it; undefined when the plan sets no limit. */
  state(accountId: string, requestsPerMinute: number, nowMs: number): RateLimitState | undefined {
    if (requestsPerMinute <= 0) return undefined;
    const perMs = requestsPerMinute / 60_000;
    const bucket = this.#buckets.get(accountId);
    const tokens = bucket ? Math.min(requestsPerMinute, bucket.tokens + (nowMs - bucket.refilledAtMs) * perMs) : requestsPerMinute;
    return stateOf(tokens, requestsPerMinute, nowMs);
  }
}

/** The per-minute refusal when `tokens` (below 1) are left: Retry-After is when the next whole token is in. */
export function refusalOf(
  tokens: number,
  requestsPerMinute: number,
  options: { limit?: LimitName; message?: (requestsPerMinute: number, retryAfterSeconds: number) => string } = {},
): Extract<LimitOutcome, { ok: false }> {
  const retryAfterMs = Math.ceil((1 - tokens) / (requestsPerMinute / 60_000));
  const message = options.message ?? requestsPerMinuteMessage;
  return { ok: false, limit: options.limit ?? "requests_per_minute", retryAfterMs, message: message(requestsPerMinute, Math.ceil(retryAfterMs / 1000)) };
}

/** The budget with `tokens` in the bucket at `nowMs`: the X-RateLimit-* headers. */
export function stateOf(tokens: number, requestsPerMinute: number, nowMs: number): RateLimitState {
  const fullAtMs = nowMs + (requestsPerMinute - tokens) / (requestsPerMinute / 60_000);
  return { limit: requestsPerMinute, remaining: Math.floor(tokens), resetAtSeconds: Math.ceil(fullAtMs / 1000) };
}

function requestsPerMinuteMessage(perMinute: number, seconds: number): string {
  return `your plan allows ${perMinute} requests per minute; retry in ${seconds} s`;
}

/** What an account has left of its per-minute budget: the X-RateLimit-* headers. */
export interface RateLimitState {
  /** The plan's requests per minute (a full bucket). */
  limit: number;
  /** Whole requests that may be made now. */
  remaining: number;
  /** When the bucket is full again, in Unix seconds (rounded up). */
  resetAtSeconds: number;
}

/** Requests in flight per account; `acquire` hands back the release, or the refusal. */
export class ConcurrencyLimiter {
  readonly #inFlight = new Map<string, number>();
  readonly #limit: LimitName;
  readonly #message: (concurrency: number) => string;
  readonly #retryAfterMs: number;

  constructor(options: ConcurrencyLimiterOptions = {}) {
    this.#limit = options.limit ?? "concurrency";
    this.#message =
      options.message ?? ((concurrency) => `your plan allows ${concurrency} concurrent requests; wait for one to finish, or submit the job asynchronously`);
    this.#retryAfterMs = options.retryAfterMs ?? 1000;
  }

  acquire(accountId: string, concurrency: number): { ok: true; release: () => void } | Extract<LimitOutcome, { ok: false }> {
    const current = this.#inFlight.get(accountId) ?? 0;
    if (concurrency > 0 && current >= concurrency) {
      return { ok: false, limit: this.#limit, retryAfterMs: this.#retryAfterMs, message: this.#message(concurrency) };
    }
    this.#inFlight.set(accountId, current + 1);
    let released = false;
    return {
      ok: true,
      release: () => {
        if (released) return;
        released = true;
        const left = (this.#inFlight.get(accountId) ?? 1) - 1;
        if (left <= 0) this.#inFlight.delete(accountId);
        else this.#inFlight.set(accountId, left);
      },
    };
  }

  inFlight(accountId: string): number {
    return this.#inFlight.get(accountId) ?? 0;
  }
}
