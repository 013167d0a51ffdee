// Paces calls to what the account's plan allows, learned from the server's refusals: a
// concurrency refusal (the plan runs fewer requests at once than --concurrency) lowers how many
// calls this client keeps in flight, for the rest of the run; a rate refusal's retry-after pauses
// every call, not only the refused one. Without it each worker would retry on its own, and every
// refused retry would spend one of the plan's requests per minute (a free plan's 10 went on
// refusals within seconds, and a 4-file run waited 64 s).
import { setTimeout as sleep } from "node:timers/promises";

export class CallGate {
  #permits: number;
  #active = 0;
  #pausedUntilMs = 0;
  readonly #waiting: (() => void)[] = [];

  constructor(concurrency: number) {
    this.#permits = concurrency;
  }

  /** Calls allowed in flight now. */
  get permits(): number {
    return this.#permits;
  }

  /** `call` once a permit is free and no pause is on; the permit is given back however it ends. */
  async run<T>(call: () => Promise<T>): Promise<T> {
    for (;;) {
      const pauseMs = this.#pausedUntilMs - Date.now();
      if (pauseMs > 0) await sleep(pauseMs);
      else if (this.#active >= this.#permits) await new Promise<void>((resolve) => this.#waiting.push(resolve));
      else break;
    }
    this.#active += 1;
    try {
      return await call();
    } finally {
      this.#active -= 1;
      this.#waiting.shift()?.();
    }
  }

  /** The server runs fewer at once than were in flight: one fewer from now on (at least one). */
  fewerAtOnce(): void {
    this.#permits = Math.max(1, Math.min(this.#permits, this.#active + 1) - 1);
  }

  /** No call starts for `waitMs` (a retry-after). */
  pause(waitMs: number): void {
    this.#pausedUntilMs = Math.max(this.#pausedUntilMs, Date.now() + waitMs);
  }
}
