import type { Subscription } from "./work-queue.ts";

export interface BusEvent {
  /** Dotted subject, e.g. `job.succeeded`. */
  readonly subject: string;
  readonly data: Uint8Array;
}

export interface EventSubscribeOptions {
  /**
   * Durable name: subscribers sharing it split the events between them and resume where they
   * stopped after a restart. Subscribers with different names each see every event.
   */
  durableName: string;
  /** Subject filter with NATS wildcards (`job.*`, `credits.>`). */
  subjectFilter: string;
}

/** Durable publish/subscribe for domain events; delivery is at least once, in order per subject. */
export interface EventBus {
  publish(subject: string, data: Uint8Array, options?: { id?: string }): Promise<void>;
  subscribe(handler: (event: BusEvent) => Promise<void>, options: EventSubscribeOptions): Subscription;
  close(): Promise<void>;
}
