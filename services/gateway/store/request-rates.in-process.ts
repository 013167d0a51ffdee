// The in-process adapter of RequestRates: the pure token bucket on this process's clock. Alone it
// serves single-node mode; behind FailOpenRequestRates it is a replica's fallback.
import { RequestRateLimiter } from "../domain/rate-limits.ts";
import type { RateTake, RequestRates } from "./request-rates.ts";

export class InProcessRequestRates implements RequestRates {
  readonly #limiter = new RequestRateLimiter();

  async take(accountId: string, requestsPerMinute: number): Promise<RateTake> {
    const nowMs = Date.now();
    const outcome = this.#limiter.take(accountId, requestsPerMinute, nowMs);
    return { outcome, state: this.#limiter.state(accountId, requestsPerMinute, nowMs) };
  }
}
