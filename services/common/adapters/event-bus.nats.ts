// JetStream event bus: one stream with limits retention (`maxAgeMs`) over `<prefix>.events.>`;
// each durable name is a durable pull consumer filtered on `<prefix>.events.<subjectFilter>`, so
// subscribers sharing a name compete for its events and a restarted one resumes at its ack floor.
import { AckPolicy, DeliverPolicy, DiscardPolicy, jetstream, jetstreamManager, RetentionPolicy, StorageType, type ConsumerMessages, type JetStreamClient, type JetStreamManager, type JsMsg } from "@nats-io/jetstream";
import { nanos, type NatsConnection, type Subscription as NatsSubscription } from "@nats-io/transport-node";
import type { Logger } from "pino";
import { DEAD_LETTER_MAX_AGE_MS_DEFAULT, type DeadLetter, type DeadLetterListOptions } from "../ports/dead-letter.ts";
import type { BusEvent, EventBus, EventBusLimits, EventSubscribeOptions, PublishOptions } from "../ports/event-bus.ts";
import type { Subscription } from "../ports/work-queue.ts";
import { NatsDeadLetters } from "./dead-letter.nats.ts";
import { natsHeadersOf, recordOfNatsHeaders } from "./nats-headers.ts";
import { assertValidPrefix, assertValidReplicas, deleteStream, ensureConsumer, ensureStream } from "./jetstream-setup.ts";
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
  /** Copies of each stream, consumer and bucket (1, 3 or 5; more than 1 needs a JetStream cluster). @default 1 */
  replicas?: number;
  log: Logger;
}

export class NatsEventBus implements EventBus {
  private readonly subscriptions = new Set<{ drain(): Promise<void> }>();

  private constructor(
    private readonly js: JetStreamClient,
    private readonly jsm: JetStreamManager,
    private readonly stream: string,
    private readonly subjectPrefix: string,
    private readonly limits: { deliveryCountMax: number; retryDelayMs: number; ackWaitMs: number; replicas: number },
    private readonly letters: NatsDeadLetters,
    private readonly advisories: NatsSubscription,
    private readonly log: Logger,
  ) {}

  static async open(options: NatsEventBusOptions): Promise<NatsEventBus> {
    assertValidPrefix(options.namePrefix);
    const replicas = options.replicas ?? 1;
    assertValidReplicas(replicas);
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
      num_replicas: replicas,
    });
    const limits = {
      deliveryCountMax: options.deliveryCountMax ?? 10,
      retryDelayMs: options.retryDelayMs ?? 1000,
      ackWaitMs: options.ackWaitMs ?? 30_000,
      replicas,
    };
    const js = jetstream(options.connection, { timeout: requestTimeoutMs });
    const letters = await NatsDeadLetters.open({
      jsm,
      js,
      namePrefix: options.namePrefix,
      replicas,
      maxAgeMs: options.deadLetterMaxAgeMs ?? DEAD_LETTER_MAX_AGE_MS_DEFAULT,
      log: options.log,
    });
    // A durable whose last delivery of an event was never acknowledged (its process died, or the
    // handler hung past ackWaitMs) skips the event silently; the server's advisory names it, and
    // the event, still in the stream, is kept as a dead letter. Every subscriber hears it; the
    // letter's id makes their records one.
    const advisories = options.connection.subscribe(`$JS.EVENT.ADVISORY.CONSUMER.MAX_DELIVERIES.${stream}.*`, {
      callback: (error, message) => {
        if (error) return;
        const { stream_seq: streamSeq, deliveries, consumer } = message.json<{ stream_seq: number; deliveries: number; consumer: string }>();
        void (async () => {
          const stored = await jsm.streams.getMessage(stream, { seq: streamSeq }).catch(() => null);
          if (stored === null) return;
          await letters.record({
            port: "event-bus",
            id: `${consumer}:${streamSeq}`,
            subject: stored.subject.slice(subjectPrefix.length + 1),
            data: stored.data,
            deliveryCount: deliveries,
            reason: "ack_wait_expired",
            durableName: consumer,
          });
        })().catch((failure: unknown) => options.log.error({ err: failure, stream, streamSeq, consumer }, "event could not be kept as a dead letter"));
      },
    });
    return new NatsEventBus(js, jsm, stream, subjectPrefix, limits, letters, advisories, options.log);
  }

  async publish(subject: string, data: Uint8Array, options: PublishOptions = {}): Promise<void> {
    assertValidSubject(subject, { wildcards: false });
    await this.js.publish(`${this.subjectPrefix}.${subject}`, data, { ...(options.id === undefined ? {} : { msgID: options.id }), headers: natsHeadersOf(options.headers) });
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
        num_replicas: this.limits.replicas,
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
        await this.handle(handler, message, options.durableName);
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

  deadLetters(options?: DeadLetterListOptions): Promise<DeadLetter[]> {
    return this.letters.list("event-bus", options);
  }

  async close(): Promise<void> {
    await Promise.all([...this.subscriptions].map((subscription) => subscription.drain()));
    this.advisories.unsubscribe();
  }

  /** Deletes the stream and its consumers, and the prefix's dead letters; for tests and tear-down. */
  async destroy(): Promise<void> {
    await this.close();
    await deleteStream(this.jsm, this.stream);
    await this.letters.destroy();
  }

  private async handle(handler: (event: BusEvent) => Promise<void>, message: JsMsg, durableName: string): Promise<void> {
    const deliveryCount = message.info.deliveryCount;
    const subject = message.subject.slice(this.subjectPrefix.length + 1);
    const progress = setInterval(() => message.working(), this.limits.ackWaitMs / 3);
    try {
      await handler({ subject, data: message.data, deliveryCount, headers: recordOfNatsHeaders(message.headers) });
      await message.ackAck();
    } catch (error) {
      const context = { err: error, subject, seq: message.seq, deliveryCount };
      if (deliveryCount >= this.limits.deliveryCountMax) {
        this.log.error({ ...context, deliveryCountMax: this.limits.deliveryCountMax }, "event skipped: deliveryCountMax reached");
        try {
          // Kept before it is acknowledged; if it cannot be kept now, the nak leaves it to the
          // max-deliveries advisory, which tries again.
          await this.letters.record({ port: "event-bus", id: `${durableName}:${message.seq}`, subject, data: message.data, deliveryCount, reason: "delivery_count_max", durableName });
          message.term("deliveryCountMax reached");
        } catch (recordError) {
          this.log.error({ err: recordError, subject, seq: message.seq }, "event could not be kept as a dead letter");
          message.nak(this.limits.retryDelayMs);
        }
      } else {
        this.log.warn(context, "event handler failed; redelivering after retryDelayMs");
        message.nak(this.limits.retryDelayMs);
      }
    } finally {
      clearInterval(progress);
    }
  }
}
