// The port of the per-minute request limit: where an account's token bucket lives. In process for
// one gateway (single-node mode); in Postgres where several replicas must share one budget, so N
// replicas admit a plan's rate once, not N times.
import type { Logger } from "../../common/logging.ts";
import type { LimitOutcome, RateLimitState } from "../domain/rate-limits.ts";

/** One take: admitted or refused, and the budget after it (the X-RateLimit-* headers; undefined with no limit). */
export interface RateTake {
  outcome: LimitOutcome;
  state: RateLimitState | undefined;
}

export interface RequestRates {
  /** Takes one request from the account's bucket of `requestsPerMinute` (0: the plan sets no limit). */
  take(accountId: string, requestsPerMinute: number): Promise<RateTake>;
}

export interface FailOpenOptions {
  /** A take of the shared store slower than this falls back to this replica's own bucket. @default 250 ms */
  timeoutMs?: number;
  /** Where the fallback is logged (at most once per `logIntervalMs`). */
  log: Logger;
  /** @default 10000 ms */
  logIntervalMs?: number;
}

/**
 * The shared store, failing open to this replica's own bucket: when the store throws or answers
 * later than `timeoutMs`, the request is judged by `local` (the in-process limiter) instead. So a
 * store outage degrades the limit to what each replica enforces alone (at most N× the plan's rate
 * with N replicas), not to no limit and not to refusing every request. Failing closed would turn an
 * outage of a protection into an outage of the API; the credits a request spends are still held
 * at billing, whatever the limiter says.
 */
export class FailOpenRequestRates implements RequestRates {
  readonly #timeoutMs: number;
  readonly #logIntervalMs: number;
  #loggedAtMs = Number.NEGATIVE_INFINITY;

  constructor(
    private readonly shared: RequestRates,
    private readonly local: RequestRates,
    private readonly options: FailOpenOptions,
  ) {
    this.#timeoutMs = options.timeoutMs ?? 250;
    this.#logIntervalMs = options.logIntervalMs ?? 10_000;
  }

  async take(accountId: string, requestsPerMinute: number): Promise<RateTake> {
    if (requestsPerMinute <= 0) return { outcome: { ok: true }, state: undefined };
    let timer: NodeJS.Timeout | undefined;
    const late = new Promise<never>((_, reject) => {
      timer = setTimeout(() => reject(new Error(`the shared rate limit store did not answer within ${this.#timeoutMs} ms (RATE_LIMIT_STORE_TIMEOUT_MS)`)), this.#timeoutMs);
    });
    try {
      return await Promise.race([this.shared.take(accountId, requestsPerMinute), late]);
    } catch (error) {
      const nowMs = Date.now();
      if (nowMs - this.#loggedAtMs >= this.#logIntervalMs) {
        this.#loggedAtMs = nowMs;
        this.options.log.warn({ err: error }, "shared rate limit store unavailable: each gateway replica limits on its own until it answers");
      }
      return this.local.take(accountId, requestsPerMinute);
    } finally {
      clearTimeout(timer);
    }
  }
}
