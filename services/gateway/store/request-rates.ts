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
  /**
   * After the store failed or was late, how long takes skip it and are judged here alone; then one
   * take tries the store again while the others stay local until it answers. @default 5000 ms
   */
  coolDownMs?: number;
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
 *
 * A failure opens a cool-down of `coolDownMs`: without it, every request during a slowdown would
 * wait the full `timeoutMs` before being judged locally, and pile more statements on a store that
 * is already behind. The race below only stops waiting; the statement itself must be cancelled by
 * the store (RequestRateStore's statement_timeout), or a late take would still commit.
 */
export class FailOpenRequestRates implements RequestRates {
  readonly #timeoutMs: number;
  readonly #coolDownMs: number;
  readonly #logIntervalMs: number;
  #loggedAtMs = Number.NEGATIVE_INFINITY;
  /** Until when takes skip the store (Unix ms); after it, the first take probes it. */
  #skipUntilMs = Number.NEGATIVE_INFINITY;
  /** Whether the last take of the store failed: then only one take at a time probes it. */
  #failing = false;
  #probing = false;

  constructor(
    private readonly shared: RequestRates,
    private readonly local: RequestRates,
    private readonly options: FailOpenOptions,
  ) {
    this.#timeoutMs = options.timeoutMs ?? 250;
    this.#coolDownMs = options.coolDownMs ?? 5000;
    this.#logIntervalMs = options.logIntervalMs ?? 10_000;
  }

  async take(accountId: string, requestsPerMinute: number): Promise<RateTake> {
    if (requestsPerMinute <= 0) return { outcome: { ok: true }, state: undefined };
    if (Date.now() < this.#skipUntilMs || this.#probing) return this.local.take(accountId, requestsPerMinute);
    const probe = this.#failing;
    if (probe) this.#probing = true;
    let timer: NodeJS.Timeout | undefined;
    const late = new Promise<never>((_, reject) => {
      timer = setTimeout(() => reject(new Error(`the shared rate limit store did not answer within ${this.#timeoutMs} ms (RATE_LIMIT_STORE_TIMEOUT_MS)`)), this.#timeoutMs);
    });
    try {
      const take = await Promise.race([this.shared.take(accountId, requestsPerMinute), late]);
      this.#failing = false;
      return take;
    } catch (error) {
      const nowMs = Date.now();
      this.#failing = true;
      this.#skipUntilMs = nowMs + this.#coolDownMs;
      if (nowMs - this.#loggedAtMs >= this.#logIntervalMs) {
        this.#loggedAtMs = nowMs;
        this.options.log.warn({ err: error, coolDownMs: this.#coolDownMs }, "shared rate limit store unavailable: each gateway replica limits on its own until it answers");
      }
      return this.local.take(accountId, requestsPerMinute);
    } finally {
      if (probe) this.#probing = false;
      clearTimeout(timer);
    }
  }
}
