import type { DeadLetter, DeadLetterListOptions } from "./dead-letter.ts";

/** A unit of work pulled from the queue; the handler must settle it exactly once. */
export interface WorkMessage {
  /** Client-chosen id; a second enqueue with the same id within the dedup window is dropped. */
  readonly id: string;
  readonly payload: Uint8Array;
  readonly priority: Priority;
  /** 1 on first delivery, incremented on each redelivery. */
  readonly deliveryCount: number;
  /** Headers given at enqueue (the W3C trace context, where tracing is on); undefined when none were. */
  readonly headers?: Readonly<Record<string, string>> | undefined;
  /** Done: the message is removed from the queue. */
  ack(): Promise<void>;
  /**
   * Failed for now: redeliver after `delayMs` (default 0 ms). On the last delivery the queue
   * allows (`deliveryCountMax`) this removes the message instead and keeps it as a dead letter.
   */
  nak(delayMs?: number): Promise<void>;
  /** Failed for good: never redeliver. The reason is logged (and, on NATS ≥ 2.10.4, put in the term advisory). */
  term(reason: string): Promise<void>;
  /** Still working: restarts the ack deadline (`ackWaitMs`) so the message is not redelivered meanwhile. */
  working(): Promise<void>;
}

export type Priority = "high" | "normal";

export interface EnqueueOptions {
  /** Dedup key; see `WorkMessage.id`. */
  id: string;
  /** Lane: high (paid plans) is always drained before normal. @default "normal" */
  priority?: Priority;
  /** Carried with the message to its consumer (NATS message headers; kept beside it in process). @default none */
  headers?: Readonly<Record<string, string>> | undefined;
}

export interface ConsumeOptions {
  /** Messages handed to the handler at once and not yet settled. @default 1 */
  inFlightMax?: number;
}

/** Limits every work queue adapter takes; both adapters apply them the same way. */
export interface WorkQueueLimits {
  /**
   * Messages the queue holds, across lanes, counting those in flight and those waiting for a
   * redelivery; an enqueue past it fails with `QueueFullError`. @default 10000 messages
   */
  queueLengthMax?: number;
  /**
   * Deliveries of one message, first included; after the last one fails (nak, a handler that
   * throws, or no settlement within `ackWaitMs`) the message leaves the queue as a dead letter. @default 5 deliveries
   */
  deliveryCountMax?: number;
  /** Dead letters are kept this long. @default 2592000000 ms (30 days) */
  deadLetterMaxAgeMs?: number;
  /** A message not settled, nor marked `working()`, within this is redelivered. @default 30000 ms */
  ackWaitMs?: number;
  /** How long an id is remembered for dedup, from its first enqueue. @default 120000 ms */
  dedupWindowMs?: number;
}

/** Enqueue rejected because the queue holds `queueLengthMax` messages; the caller maps it to RESOURCE_EXHAUSTED. */
export class QueueFullError extends Error {
  constructor(
    readonly queueLengthMax: number,
    options?: { cause?: unknown },
  ) {
    super(`work queue is full: queueLengthMax = ${queueLengthMax} messages`, options);
    this.name = "QueueFullError";
  }
}

export interface Subscription {
  /** Stops taking new messages and waits for the handlers in flight. */
  drain(): Promise<void>;
}

/** At-least-once work queue with two priority lanes. */
export interface WorkQueue {
  /**
   * Resolves once the message is stored (or recognised as a duplicate, which is not an error).
   * @throws QueueFullError when the queue holds `queueLengthMax` messages.
   */
  enqueue(payload: Uint8Array, options: EnqueueOptions): Promise<void>;
  /** Messages waiting for their first delivery, across lanes (in-flight and redelivered ones excluded). */
  depth(): Promise<number>;
  /**
   * Messages not yet settled, per lane: waiting (first delivery or a redelivery) plus delivered
   * and not yet acked. JetStream's num_pending + num_ack_pending, the lag KEDA scales on.
   */
  pending(): Promise<Record<Priority, number>>;
  /**
   * Hands messages to `handler`, high lane first. A handler that throws, or returns without
   * settling its message, has it nak'ed (redelivered at once, within `deliveryCountMax`).
   */
  consume(handler: (message: WorkMessage) => Promise<void>, options?: ConsumeOptions): Subscription;
  /**
   * Messages whose deliveries ran out, oldest first, within `deadLetterMaxAgeMs`. A message
   * `term`ed by its handler is a deliberate end, not a dead letter.
   */
  deadLetters(options?: DeadLetterListOptions): Promise<DeadLetter[]>;
  /** Drains every subscription of this instance, then releases its resources. */
  close(): Promise<void>;
}
