/** Every time-dependent billing rule asks this for "now", so tests can jump months ahead. */
export interface Clock {
  now(): Date;
}

export const systemClock: Clock = { now: () => new Date() };

/** A clock that only moves when told to; for tests and simulations. */
export class ManualClock implements Clock {
  #epochMs: number;

  constructor(start: Date = new Date("2025-01-15T12:00:00.000Z")) {
    this.#epochMs = start.getTime();
  }

  now(): Date {
    return new Date(this.#epochMs);
  }

  advanceMs(durationMs: number): void {
    if (!Number.isFinite(durationMs) || durationMs < 0) throw new RangeError(`clock only moves forward, got ${durationMs} ms`);
    this.#epochMs += durationMs;
  }

  set(to: Date): void {
    if (to.getTime() < this.#epochMs) throw new RangeError("clock only moves forward");
    this.#epochMs = to.getTime();
  }
}
