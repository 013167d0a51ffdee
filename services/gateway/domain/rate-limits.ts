// Per-account request limits from the account's plan, kept in this gateway's memory: each
// replica enforces them for the traffic it sees (a load balancer with N replicas lets an
// account reach up to N times its plan's rate; pin accounts to replicas or divide the plan's
// figures by N where that matters).

export type LimitOutcome = { ok: true } | { ok: false; limit: "requests_per_minute" | "concurrency"; retryAfterMs: number; message: string };

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

  /** @param accountsMax accounts tracked at once; the longest-idle are forgotten (they had refilled). @default 100000 */
  constructor(private readonly accountsMax = 100_000) {}

  take(accountId: string, requestsPerMinute: number, nowMs: number): LimitOutcome {
    if (requestsPerMinute <= 0) return { ok: true }; // 0 means the plan sets no limit
    const perMs = requestsPerMinute / 60_000;
    const bucket = this.#buckets.get(accountId) ?? { tokens: requestsPerMinute, refilledAtMs: nowMs };
    bucket.tokens = Math.min(requestsPerMinute, bucket.tokens + (nowMs - bucket.refilledAtMs) * perMs);
    bucket.refilledAtMs = nowMs;
    // Re-inserting keeps the map in order of last use, so eviction drops the longest idle.
    this.#buckets.delete(accountId);
    this.#buckets.set(accountId, bucket);
    if (this.#buckets.size > this.accountsMax) this.#buckets.delete(this.#buckets.keys().next().value!);
    if (bucket.tokens >= 1) {
      bucket.tokens -= 1;
      return { ok: true };
    }
    const retryAfterMs = Math.ceil((1 - bucket.tokens) / perMs);
    return {
      ok: false,
      limit: "requests_per_minute",
      retryAfterMs,
      message: `your plan allows ${requestsPerMinute} requests per minute; retry in ${Math.ceil(retryAfterMs / 1000)} s`,
    };
  }
}

/** Requests in flight per account; `acquire` hands back the release, or the refusal. */
export class ConcurrencyLimiter {
  readonly #inFlight = new Map<string, number>();

  acquire(accountId: string, concurrency: number): { ok: true; release: () => void } | Extract<LimitOutcome, { ok: false }> {
    const current = this.#inFlight.get(accountId) ?? 0;
    if (concurrency > 0 && current >= concurrency) {
      return {
        ok: false,
        limit: "concurrency",
        retryAfterMs: 1000,
        message: `your plan allows ${concurrency} concurrent requests; wait for one to finish, or submit the job asynchronously`,
      };
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
