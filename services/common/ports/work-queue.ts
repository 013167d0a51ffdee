/** A unit of work pulled from the queue; the handler must settle it exactly once. */
export interface WorkMessage {
  /** Client-chosen id; a second enqueue with the same id within the dedup window is dropped. */
  readonly id: string;
  readonly payload: Uint8Array;
  /** 1 on first delivery, incremented on each redelivery. */
  readonly deliveryCount: number;
  /** Done: the message is removed from the queue. */
  ack(): Promise<void>;
  /** Failed for now: redeliver after `delayMs` (default 0 ms), until the queue's delivery limit. */
  nak(delayMs?: number): Promise<void>;
  /** Failed for good: never redeliver. */
  term(reason: string): Promise<void>;
  /** Still working: extends the ack deadline so the message is not redelivered meanwhile. */
  working(): Promise<void>;
}

export type Priority = "high" | "normal";

export interface EnqueueOptions {
  /** Dedup key; see `WorkMessage.id`. */
  id: string;
  /** Lane: high (paid plans) is always drained before normal. @default "normal" */
  priority?: Priority;
}

export interface ConsumeOptions {
  /** Messages handed to the handler at once and not yet settled. @default 1 */
  inFlightMax?: number;
}

export interface Subscription {
  /** Stops taking new messages and waits for the handlers in flight. */
  drain(): Promise<void>;
}

/** At-least-once work queue with two priority lanes. */
export interface WorkQueue {
  enqueue(payload: Uint8Array, options: EnqueueOptions): Promise<void>;
  /** Messages waiting (not in flight), across lanes. */
  depth(): Promise<number>;
  consume(handler: (message: WorkMessage) => Promise<void>, options?: ConsumeOptions): Subscription;
  close(): Promise<void>;
}
