import type { DeadLetter, DeadLetterListOptions } from "./dead-letter.ts";
import type { Subscription } from "./work-queue.ts";

export interface BusEvent {
  /** Dotted subject, e.g. `job.succeeded`. */
  readonly subject: string;
  readonly data: Uint8Array;
  /** 1 on first delivery to this durable name, incremented on each redelivery. */
  readonly deliveryCount: number;
  /** Headers given at publish (the W3C trace context, where tracing is on); undefined when none were. */
  readonly headers?: Readonly<Record<string, string>> | undefined;
}

export interface EventSubscribeOptions {
  /**
   * Durable name: subscribers sharing it split the events between them and resume where they
   * stopped after a restart. Subscribers with different names each see every event. A name seen
   * for the first time starts at the oldest event still retained (`maxAgeMs`).
   */
  durableName: string;
  /** Subject filter with NATS wildcards (`job.*`, `credits.>`). */
  subjectFilter: string;
}

export interface PublishOptions {
  /** Dedup key (see `publish`). @default none */
  id?: string | undefined;
  /** Carried with the event to every subscriber (NATS message headers; kept beside it in process). @default none */
  headers?: Readonly<Record<string, string>> | undefined;
}

/** Limits every event bus adapter takes; both adapters apply them the same way. */
export interface EventBusLimits {
  /** Events older than this are discarded, delivered or not. @default 604800000 ms (7 days) */
  maxAgeMs?: number;
  /** Deliveries of one event to one durable name before it is skipped and kept as a dead letter. @default 10 deliveries */
  deliveryCountMax?: number;
  /** Dead letters are kept this long. @default 2592000000 ms (30 days) */
  deadLetterMaxAgeMs?: number;
  /** Wait before redelivering an event whose handler threw. @default 1000 ms */
  retryDelayMs?: number;
  /** How long an event id is remembered for dedup. @default 120000 ms */
  dedupWindowMs?: number;
}

/**
 * Durable publish/subscribe for domain events; delivery is at least once, in order per subject
 * for a single subscriber. A handler that resolves acknowledges its event; one that throws gets
 * it again after `retryDelayMs`, up to `deliveryCountMax` deliveries.
 */
export interface EventBus {
  /** `id` makes a republish within the dedup window a no-op (e.g. `${jobId}:succeeded`). */
  publish(subject: string, data: Uint8Array, options?: PublishOptions): Promise<void>;
  subscribe(handler: (event: BusEvent) => Promise<void>, options: EventSubscribeOptions): Subscription;
  /** Events a durable name gave up on after `deliveryCountMax` deliveries, oldest first, within `deadLetterMaxAgeMs`. */
  deadLetters(options?: DeadLetterListOptions): Promise<DeadLetter[]>;
  /** Drains every subscription of this instance, then releases its resources. */
  close(): Promise<void>;
}
