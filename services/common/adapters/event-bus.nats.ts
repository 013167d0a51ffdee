// JetStream event bus: one stream with limits retention (`maxAgeMs`) over `<prefix>.events.>`;
// each durable name is a durable pull consumer filtered on `<prefix>.events.<subjectFilter>`, so
// subscribers sharing a name compete for its events and a restarted one resumes at its ack floor.
import { AckPolicy, DeliverPolicy, DiscardPolicy, jetstream, jetstreamManager, RetentionPolicy, StorageType, type ConsumerMessages, type JetStreamClient, type JetStreamManager, type JsMsg } from "@nats-io/jetstream";
import { nanos, type NatsConnection } from "@nats-io/transport-node";
import type { Logger } from "pino";
import type { BusEvent, EventBus, EventBusLimits, EventSubscribeOptions } from "../ports/event-bus.ts";
import type { Subscription } from "../ports/work-queue.ts";
import { assertValidPrefix, deleteStream, ensureConsumer, ensureStream } from "./jetstream-setup.ts";
import { assertValidDurableName, assertValidSubject } from "./subject-filter.ts";

export interface NatsEventBusOptions extends EventBusLimits {
  /** Owned by the caller: `close()` leaves it open. */
  connection: NatsConnection;
  /** Stream `<prefix>_events` over subjects `<prefix>.events.>`. */
  namePrefix: string;
  /**
   * An event not acknowledged within this is redelivered; a running handler keeps its event by
   * reporting progress every third of it. @default 30000 ms
   */
  ackWaitMs?: number;
  /** Deadline of each JetStream API call. @default 5000 ms */
  requestTimeoutMs?: number;
  log: Logger;
}

export class NatsEventBus implements EventBus {
  private readonly subscriptions = new Set<{ drain(): Promise<void> }>();

  private constructor(
    private readonly js: JetStreamClient,
    private readonly jsm: JetStreamManager,
    private readonly stream: string,
    private readonly subjectPrefix: string,
    private readonly limits: { deliveryCountMax: number; retryDelayMs: number; ackWaitMs: number },
    private readonly log: Logger,
  ) {}

  static async open(options: NatsEventBusOptions): Promise<NatsEventBus> {
    assertValidPrefix(options.namePrefix);
    const maxAgeMs = options.maxAgeMs ?? 604_800_000;
    const requestTimeoutMs = options.requestTimeoutMs ?? 5000;
    const jsm = await jetstreamManager(options.connection, { timeout: requestTimeoutMs });
    const stream = `${options.namePrefix}_events`;
    const subjectPrefix = `${options.namePrefix}.events`;
    await ensureStream(jsm, {
      name: stream,
      subjects: [`${subjectPrefix}.>`],
      retention: RetentionPolicy.Limits,
      storage: StorageType.File,
      discard: DiscardPolicy.Old,
      max_age: nanos(maxAgeMs),
      // JetStream refuses a duplicate window longer than the stream's max age.
      duplicate_window: nanos(Math.min(options.dedupWindowMs ?? 120_000, maxAgeMs)),
    });
    const limits = {
      deliveryCountMax: options.deliveryCountMax ?? 10,
      retryDelayMs: options.retryDelayMs ?? 1000,
      ackWaitMs: options.ackWaitMs ?? 30_000,
    };
    return new NatsEventBus(jetstream(options.connection, { timeout: requestTimeoutMs }), jsm, stream, subjectPrefix, limits, options.log);
  }

  async publish(subject: string, data: Uint8Array, options: { id?: string } = {}): Promise<void> {
    assertValidSubject(subject, { wildcards: false });
    await this.js.publish(`${this.subjectPrefix}.${subject}`, data, options.id === undefined ? undefined : { msgID: options.id });
  }

  subscribe(handler: (event: BusEvent) => Promise<void>, options: EventSubscribeOptions): Subscription {
    assertValidSubject(options.subjectFilter, { wildcards: true });
    assertValidDurableName(options.durableName);
    let stopped = false;
    let messages: ConsumerMessages | undefined;
    const loop = (async () => {
      await ensureConsumer(this.jsm, this.stream, {
        durable_name: options.durableName,
        filter_subject: `${this.subjectPrefix}.${options.subjectFilter}`,
        ack_policy: AckPolicy.Explicit,
        deliver_policy: DeliverPolicy.All,
        ack_wait: nanos(this.limits.ackWaitMs),
        max_deliver: this.limits.deliveryCountMax,
      });
      if (stopped) return;
      const consumer = await this.js.consumers.get(this.stream, options.durableName);
      // One message per pull: a subscriber holds no buffered events that a competing subscriber
      // (or itself, after a restart) would have to wait `ackWaitMs` for.
      messages = await consumer.consume({ max_messages: 1 });
      if (stopped) {
        await messages.close();
        return;
      }
      for await (const message of messages) {
        if (stopped) {
          message.nak();
          continue;
        }
        await this.handle(handler, message);
      }
    })().catch((error: unknown) => {
      this.log.error({ err: error, durableName: options.durableName }, "event subscription stopped");
    });
    const subscription = {
      drain: async () => {
        if (!this.subscriptions.delete(subscription)) return;
        stopped = true;
        await messages?.close();
        await loop;
      },
    };
    this.subscriptions.add(subscription);
    return subscription;
  }

  async close(): Promise<void> {
    await Promise.all([...this.subscriptions].map((subscription) => subscription.drain()));
  }

  /** Deletes the stream and its consumers; for tests and tear-down. */
  async destroy(): Promise<void> {
    await this.close();
    await deleteStream(this.jsm, this.stream);
  }

  private async handle(handler: (event: BusEvent) => Promise<void>, message: JsMsg): Promise<void> {
    const deliveryCount = message.info.deliveryCount;
    const subject = message.subject.slice(this.subjectPrefix.length + 1);
    const progress = setInterval(() => message.working(), this.limits.ackWaitMs / 3);
    try {
      await handler({ subject, data: message.data, deliveryCount });
      await message.ackAck();
    } catch (error) {
      const context = { err: error, subject, seq: message.seq, deliveryCount };
      if (deliveryCount >= this.limits.deliveryCountMax) {
        this.log.error({ ...context, deliveryCountMax: this.limits.deliveryCountMax }, "event skipped: deliveryCountMax reached");
        message.term("deliveryCountMax reached");
      } else {
        this.log.warn(context, "event handler failed; redelivering after retryDelayMs");
        message.nak(this.limits.retryDelayMs);
      }
    } finally {
      clearInterval(progress);
    }
  }
}
