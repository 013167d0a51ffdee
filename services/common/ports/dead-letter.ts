// What the work queue and the event bus keep of a message they stopped delivering. Retries are
// bounded (`deliveryCountMax`), so a message that keeps failing must leave the queue; before this
// record existed it was dropped with one log line, and a job event lost that way left its job
// (and the job's credit hold) stuck with no trace an operator would find. Now each such message is
// kept, listed by the port's `deadLetters()`, and counted in `cutline_dead_letters_total{port,subject}`,
// which an alert watches (k8s/README.md).

/** The port that set the message aside. */
export type DeadLetterPort = "work-queue" | "event-bus";

/**
 * Why delivery stopped (stable, machine-readable): `delivery_count_max` when the last delivery
 * allowed was nak'ed or its handler failed; `ack_wait_expired` when the last delivery was neither
 * settled nor marked working within the ack deadline (a hung handler or a process that died).
 */
export type DeadLetterReason = "delivery_count_max" | "ack_wait_expired";

export interface DeadLetter {
  readonly port: DeadLetterPort;
  /** The work message's id, or `<durableName>:<stream sequence>` for an event. */
  readonly id: string;
  /** `work.high` / `work.normal` for work, the event's own subject (`job.succeeded`) for events. */
  readonly subject: string;
  /** The message's payload, unchanged, so it can be inspected or re-published. */
  readonly data: Uint8Array;
  /** Deliveries made before it was set aside (as far as the adapter knows). */
  readonly deliveryCount: number;
  readonly reason: DeadLetterReason;
  /** The subscriber that gave up on the event (event bus only). */
  readonly durableName?: string;
  readonly recordedAt: Date;
}

export interface DeadLetterListOptions {
  /** Most letters returned, oldest first. @default 100 letters */
  limit?: number;
}

/** Default of both ports' `deadLetterMaxAgeMs`: long enough for someone to notice the alert and look. */
export const DEAD_LETTER_MAX_AGE_MS_DEFAULT = 30 * 24 * 60 * 60 * 1000;

export function deadLetterLimit(options: DeadLetterListOptions = {}): number {
  const limit = options.limit ?? 100;
  if (!(Number.isInteger(limit) && limit >= 1 && limit <= 10_000)) throw new RangeError(`limit must be an integer from 1 to 10000 letters, got ${limit}`);
  return limit;
}
