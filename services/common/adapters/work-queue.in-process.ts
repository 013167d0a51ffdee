// Single-node work queue: in memory (a restart loses what was queued, like any in-flight request
// of that process), with the same lanes, dedup and limits as the JetStream adapter.
import { join } from "node:path";
import type { Logger } from "pino";
import { DEAD_LETTER_MAX_AGE_MS_DEFAULT, type DeadLetter, type DeadLetterListOptions, type DeadLetterReason } from "../ports/dead-letter.ts";
import {
  QueueFullError,
  type ConsumeOptions,
  type EnqueueOptions,
  type Priority,
  type Subscription,
  type WorkMessage,
  type WorkQueue,
  type WorkQueueLimits,
} from "../ports/work-queue.ts";
import { InProcessDeadLetters } from "./dead-letter.in-process.ts";

export interface InProcessWorkQueueOptions extends WorkQueueLimits {
  /** Dead letters go to `<dataDir>/<name>/dead-letters.jsonl`; unset keeps them in memory. */
  dataDir?: string;
  /** The queue's folder under `dataDir`, so two queues keep their dead letters apart. @default "work-queue" */
  name?: string;
  log: Logger;
}

interface Entry {
  readonly id: string;
  readonly payload: Uint8Array;
  readonly priority: Priority;
  readonly headers: Readonly<Record<string, string>> | undefined;
  deliveryCount: number;
  /** Bumped on each delivery, so settling a delivery that already timed out does nothing. */
  delivery: number;
  timer?: NodeJS.Timeout;
}

interface Consumer {
  readonly handler: (message: WorkMessage) => Promise<void>;
  readonly inFlightMax: number;
  readonly inFlight: Set<Promise<void>>;
}

export class InProcessWorkQueue implements WorkQueue {
  private readonly queueLengthMax: number;
  private readonly deliveryCountMax: number;
  private readonly ackWaitMs: number;
  private readonly dedupWindowMs: number;
  private readonly log: Logger;
  private readonly ready: Record<Priority, Entry[]> = { high: [], normal: [] };
  /** Every message not yet acked, termed or dropped: ready, in flight or waiting for a redelivery. */
  private readonly held = new Set<Entry>();
  private readonly dedupExpiresAt = new Map<string, number>();
  private readonly consumers = new Set<Consumer>();
  private readonly letters: InProcessDeadLetters;

  constructor(options: InProcessWorkQueueOptions) {
    this.queueLengthMax = options.queueLengthMax ?? 10_000;
    this.deliveryCountMax = options.deliveryCountMax ?? 5;
    this.ackWaitMs = options.ackWaitMs ?? 30_000;
    this.dedupWindowMs = options.dedupWindowMs ?? 120_000;
    this.log = options.log;
    this.letters = new InProcessDeadLetters({
      file: options.dataDir === undefined ? undefined : join(options.dataDir, options.name ?? "work-queue", "dead-letters.jsonl"),
      maxAgeMs: options.deadLetterMaxAgeMs ?? DEAD_LETTER_MAX_AGE_MS_DEFAULT,
      log: options.log,
    });
  }

  async enqueue(payload: Uint8Array, options: EnqueueOptions): Promise<void> {
    const now = Date.now();
    for (const [id, expiresAt] of this.dedupExpiresAt) {
      // Map order is insertion order, so the oldest come first.
      if (expiresAt > now) break;
      this.dedupExpiresAt.delete(id);
    }
    // Dedup is checked before the length limit, as JetStream does: a retried enqueue of a
    // message already stored succeeds even when the queue is full.
    if (this.dedupExpiresAt.has(options.id)) return;
    if (this.held.size >= this.queueLengthMax) throw new QueueFullError(this.queueLengthMax);
    this.dedupExpiresAt.set(options.id, now + this.dedupWindowMs);
    const entry: Entry = { id: options.id, payload, priority: options.priority ?? "normal", headers: options.headers, deliveryCount: 0, delivery: 0 };
    this.held.add(entry);
    this.ready[entry.priority].push(entry);
    this.pump();
  }

  async depth(): Promise<number> {
    return this.ready.high.filter((entry) => entry.deliveryCount === 0).length + this.ready.normal.filter((entry) => entry.deliveryCount === 0).length;
  }

  async pending(): Promise<Record<Priority, number>> {
    const counts: Record<Priority, number> = { high: 0, normal: 0 };
    for (const entry of this.held) counts[entry.priority] += 1;
    return counts;
  }

  consume(handler: (message: WorkMessage) => Promise<void>, options: ConsumeOptions = {}): Subscription {
    const inFlightMax = options.inFlightMax ?? 1;
    if (!(Number.isInteger(inFlightMax) && inFlightMax >= 1)) throw new RangeError(`inFlightMax must be a positive integer, got ${inFlightMax}`);
    const consumer: Consumer = { handler, inFlightMax, inFlight: new Set() };
    this.consumers.add(consumer);
    queueMicrotask(() => this.pump());
    return {
      drain: async () => {
        this.consumers.delete(consumer);
        await Promise.allSettled([...consumer.inFlight]);
      },
    };
  }

  deadLetters(options?: DeadLetterListOptions): Promise<DeadLetter[]> {
    return this.letters.list(options);
  }

  async close(): Promise<void> {
    const consumers = [...this.consumers];
    this.consumers.clear();
    await Promise.allSettled(consumers.flatMap((consumer) => [...consumer.inFlight]));
    for (const entry of this.held) clearTimeout(entry.timer);
    await this.letters.close();
  }

  private pump(): void {
    for (const consumer of this.consumers) {
      while (consumer.inFlight.size < consumer.inFlightMax) {
        const entry = this.ready.high.shift() ?? this.ready.normal.shift();
        if (entry === undefined) return;
        this.deliver(consumer, entry);
      }
    }
  }

  private deliver(consumer: Consumer, entry: Entry): void {
    entry.deliveryCount += 1;
    const delivery = ++entry.delivery;
    const current = () => entry.delivery === delivery && this.held.has(entry);
    const startAckTimer = () => {
      clearTimeout(entry.timer);
      entry.timer = setTimeout(() => {
        this.log.warn({ id: entry.id, deliveryCount: entry.deliveryCount, ackWaitMs: this.ackWaitMs }, "work message not settled within ackWaitMs; redelivering");
        this.retry(entry, 0, "ack_wait_expired");
      }, this.ackWaitMs).unref();
    };
    let settled = false;
    const settle = (action: () => void) => {
      if (settled) throw new Error(`work message ${entry.id} settled twice`);
      settled = true;
      // A delivery whose ack deadline passed was already handed out again; settling it is moot.
      if (current()) action();
    };
    const message: WorkMessage = {
      id: entry.id,
      payload: entry.payload,
      priority: entry.priority,
      deliveryCount: entry.deliveryCount,
      headers: entry.headers,
      ack: async () => settle(() => this.remove(entry)),
      nak: async (delayMs = 0) => settle(() => this.retry(entry, delayMs, "delivery_count_max")),
      term: async (reason) =>
        settle(() => {
          this.log.warn({ id: entry.id, deliveryCount: entry.deliveryCount, reason }, "work message terminated");
          this.remove(entry);
        }),
      working: async () => {
        if (!settled && current()) startAckTimer();
      },
    };
    startAckTimer();
    const run = (async () => {
      try {
        await consumer.handler(message);
      } catch (error) {
        this.log.error({ err: error, id: entry.id, deliveryCount: entry.deliveryCount }, "work handler failed");
      }
      if (!settled) {
        settled = true;
        if (current()) this.retry(entry, 0, "delivery_count_max");
      }
    })();
    consumer.inFlight.add(run);
    void run.finally(() => {
      consumer.inFlight.delete(run);
      this.pump();
    });
  }

  private remove(entry: Entry): void {
    clearTimeout(entry.timer);
    this.held.delete(entry);
  }

  /** Redelivers after `delayMs`, or sets the message aside as a dead letter when its deliveries are used up. */
  private retry(entry: Entry, delayMs: number, reason: DeadLetterReason): void {
    clearTimeout(entry.timer);
    entry.delivery += 1;
    if (entry.deliveryCount >= this.deliveryCountMax) {
      this.held.delete(entry);
      const letter = { port: "work-queue", id: entry.id, subject: `work.${entry.priority}`, data: entry.payload, deliveryCount: entry.deliveryCount, reason } as const;
      this.letters.record(letter).catch((error: unknown) => this.log.error({ err: error, id: entry.id }, "work message could not be kept as a dead letter"));
      return;
    }
    const requeue = () => {
      // Redeliveries go first in their lane, as JetStream serves its redelivery queue first.
      this.ready[entry.priority].unshift(entry);
      this.pump();
    };
    // Not unref'd: a pending redelivery is work the process still has to do.
    if (delayMs > 0) entry.timer = setTimeout(requeue, delayMs);
    else requeue();
  }
}
