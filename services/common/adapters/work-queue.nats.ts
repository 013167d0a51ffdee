// JetStream work queue: one stream with `workqueue` retention over `<prefix>.work.high` and
// `<prefix>.work.normal`, one durable pull consumer per lane.
//
// Priority needs "a high message if there is one, else a normal one" at the moment a handler slot
// frees up. The client's pull helpers (`next`, `fetch`, `consume`) hold a pull open for at least a
// second or buffer messages ahead, either of which lets normal work jump ahead of high work, so
// each free slot sends one `no_wait` pull to the high lane and then to the normal lane. When both
// are empty the dispatcher sleeps until a publish on the work subjects wakes it (a plain core
// subscription sees each one) or `idlePollMs` passes (redeliveries after a nak delay or an ack
// timeout publish nothing).
import {
  AckPolicy,
  DiscardPolicy,
  jetstream,
  jetstreamManager,
  JetStreamApiError,
  RetentionPolicy,
  StorageType,
  type JetStreamClient,
  type JetStreamManager,
} from "@nats-io/jetstream";
import { nanos, type Msg, type NatsConnection, type Subscription as NatsSubscription } from "@nats-io/transport-node";
import type { Logger } from "pino";
import { DEAD_LETTER_MAX_AGE_MS_DEFAULT, type DeadLetter, type DeadLetterListOptions } from "../ports/dead-letter.ts";
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
import { NatsDeadLetters } from "./dead-letter.nats.ts";
import { natsHeadersOf, recordOfNatsHeaders } from "./nats-headers.ts";
import { assertValidPrefix, assertValidReplicas, deleteStream, ensureConsumer, ensureStream } from "./jetstream-setup.ts";

export interface NatsWorkQueueOptions extends WorkQueueLimits {
  /** Owned by the caller: `close()` leaves it open. */
  connection: NatsConnection;
  /** Stream `<prefix>_work`, subjects `<prefix>.work.<lane>`, consumers `high` and `normal`. */
  namePrefix: string;
  /** Longest sleep of an idle dispatcher before it pulls again. @default 250 ms */
  idlePollMs?: number;
  /** Deadline of each JetStream API call. @default 5000 ms */
  requestTimeoutMs?: number;
  /** Copies of each stream, consumer and bucket (1, 3 or 5; more than 1 needs a JetStream cluster). @default 1 */
  replicas?: number;
  log: Logger;
}

const LANES: readonly Priority[] = ["high", "normal"];
/** JetStream's "maximum messages exceeded", answered when a `discard: new` stream is full. */
const MAXIMUM_MESSAGES_EXCEEDED = 10077;

interface Delivery {
  readonly message: WorkMessage;
  settled(): boolean;
}

/** Parses the delivery count and stream sequence out of a `$JS.ACK.…` reply subject (v1 and v2 forms). */
function deliveryOf(reply: string): { deliveryCount: number; streamSeq: number } {
  const tokens = reply.split(".");
  const offset = tokens.length === 9 ? 4 : 6;
  return { deliveryCount: Number(tokens[offset]), streamSeq: Number(tokens[offset + 1]) };
}

/** `+TERM <reason>` is understood from nats-server 2.10.4; older servers take it for an unknown ack and redeliver. */
function termTakesReason(version: string | undefined): boolean {
  const [major = 0, minor = 0, patch = 0] = (version ?? "0.0.0").split(/[.-]/).map(Number);
  return major > 2 || (major === 2 && (minor > 10 || (minor === 10 && patch >= 4)));
}

export class NatsWorkQueue implements WorkQueue {
  private readonly dispatchers = new Set<{ drain(): Promise<void> }>();

  private constructor(
    private readonly connection: NatsConnection,
    private readonly js: JetStreamClient,
    private readonly jsm: JetStreamManager,
    private readonly stream: string,
    private readonly subjectPrefix: string,
    private readonly limits: Required<WorkQueueLimits> & { idlePollMs: number; requestTimeoutMs: number },
    private readonly advisories: NatsSubscription,
    private readonly letters: NatsDeadLetters,
    private readonly log: Logger,
  ) {}

  static async open(options: NatsWorkQueueOptions): Promise<NatsWorkQueue> {
    assertValidPrefix(options.namePrefix);
    const replicas = options.replicas ?? 1;
    assertValidReplicas(replicas);
    const limits = {
      queueLengthMax: options.queueLengthMax ?? 10_000,
      deliveryCountMax: options.deliveryCountMax ?? 5,
      ackWaitMs: options.ackWaitMs ?? 30_000,
      dedupWindowMs: options.dedupWindowMs ?? 120_000,
      deadLetterMaxAgeMs: options.deadLetterMaxAgeMs ?? DEAD_LETTER_MAX_AGE_MS_DEFAULT,
      idlePollMs: options.idlePollMs ?? 250,
      requestTimeoutMs: options.requestTimeoutMs ?? 5000,
    };
    const connection = options.connection;
    const jsm = await jetstreamManager(connection, { timeout: limits.requestTimeoutMs });
    const stream = `${options.namePrefix}_work`;
    const subjectPrefix = `${options.namePrefix}.work`;
    await ensureStream(jsm, {
      name: stream,
      subjects: LANES.map((lane) => `${subjectPrefix}.${lane}`),
      retention: RetentionPolicy.Workqueue,
      storage: StorageType.File,
      // `discard: new` makes a full queue refuse the publish instead of dropping the oldest work.
      discard: DiscardPolicy.New,
      max_msgs: limits.queueLengthMax,
      duplicate_window: nanos(limits.dedupWindowMs),
      num_replicas: replicas,
    });
    for (const lane of LANES) {
      await ensureConsumer(jsm, stream, {
        durable_name: lane,
        filter_subject: `${subjectPrefix}.${lane}`,
        ack_policy: AckPolicy.Explicit,
        ack_wait: nanos(limits.ackWaitMs),
        max_deliver: limits.deliveryCountMax,
        // Everything the queue may hold may be in flight; the real bound is each consume's inFlightMax.
        max_ack_pending: limits.queueLengthMax,
        num_replicas: replicas,
      });
    }
    const js = jetstream(connection, { timeout: limits.requestTimeoutMs });
    const letters = await NatsDeadLetters.open({ jsm, js, namePrefix: options.namePrefix, replicas, maxAgeMs: limits.deadLetterMaxAgeMs, log: options.log });
    // A workqueue stream keeps a message whose deliveries ran out (ack timeouts on the last one),
    // where it would count against max_msgs forever; the server's advisory says which one. It is
    // kept as a dead letter first, then deleted. Several services get the same advisory: the
    // letter's message id makes their records one, the first delete wins, the others find nothing.
    const advisories = connection.subscribe(`$JS.EVENT.ADVISORY.CONSUMER.MAX_DELIVERIES.${stream}.*`, {
      callback: (error, message) => {
        if (error) return;
        const { stream_seq: streamSeq, deliveries } = message.json<{ stream_seq: number; deliveries: number }>();
        void (async () => {
          const stored = await jsm.streams.getMessage(stream, { seq: streamSeq }).catch(() => null);
          if (stored === null) return;
          await letters.record({
            port: "work-queue",
            id: stored.header?.get("Nats-Msg-Id") ?? String(streamSeq),
            subject: stored.subject.slice(options.namePrefix.length + 1),
            data: stored.data,
            deliveryCount: deliveries,
            reason: "ack_wait_expired",
          });
          await jsm.streams.deleteMessage(stream, streamSeq, false).catch(() => undefined);
        })().catch((failure: unknown) => options.log.error({ err: failure, stream, streamSeq }, "work message could not be kept as a dead letter; it stays in the stream"));
      },
    });
    return new NatsWorkQueue(connection, js, jsm, stream, subjectPrefix, limits, advisories, letters, options.log);
  }

  async enqueue(payload: Uint8Array, options: EnqueueOptions): Promise<void> {
    try {
      await this.js.publish(`${this.subjectPrefix}.${options.priority ?? "normal"}`, payload, { msgID: options.id, headers: natsHeadersOf(options.headers) });
    } catch (error) {
      if (error instanceof JetStreamApiError && error.code === MAXIMUM_MESSAGES_EXCEEDED) {
        throw new QueueFullError(this.limits.queueLengthMax, { cause: error });
      }
      throw error;
    }
  }

  async depth(): Promise<number> {
    const infos = await Promise.all(LANES.map((lane) => this.jsm.consumers.info(this.stream, lane)));
    return infos.reduce((sum, info) => sum + info.num_pending, 0);
  }

  async pending(): Promise<Record<Priority, number>> {
    const [high, normal] = await Promise.all(LANES.map((lane) => this.jsm.consumers.info(this.stream, lane)));
    return { high: high!.num_pending + high!.num_ack_pending, normal: normal!.num_pending + normal!.num_ack_pending };
  }

  consume(handler: (message: WorkMessage) => Promise<void>, options: ConsumeOptions = {}): Subscription {
    const inFlightMax = options.inFlightMax ?? 1;
    if (!(Number.isInteger(inFlightMax) && inFlightMax >= 1)) throw new RangeError(`inFlightMax must be a positive integer, got ${inFlightMax}`);
    const inFlight = new Set<Promise<void>>();
    let stopped = false;
    let wake: (() => void) | undefined;
    // A signal while the loop is busy pulling is kept, so the next sleep returns at once.
    let woken = false;
    // The core subscriber may hear a publish a moment before the stream has stored it.
    let published = false;
    const signal = () => {
      if (wake === undefined) woken = true;
      wake?.();
      wake = undefined;
    };
    const sleep = (ms: number) => {
      if (woken) {
        woken = false;
        return Promise.resolve();
      }
      return new Promise<void>((resolve) => {
        const timer = setTimeout(signal, ms);
        wake = () => {
          clearTimeout(timer);
          resolve();
        };
      });
    };
    const publishes = this.connection.subscribe(`${this.subjectPrefix}.*`, {
      callback: () => {
        published = true;
        signal();
      },
    });
    const loop = (async () => {
      while (!stopped) {
        if (inFlight.size >= inFlightMax) {
          await sleep(this.limits.idlePollMs);
          continue;
        }
        let delivery: Delivery | undefined;
        try {
          delivery = (await this.pull("high")) ?? (await this.pull("normal"));
        } catch (error) {
          if (stopped) break;
          this.log.warn({ err: error, stream: this.stream }, "work queue pull failed; retrying");
          await sleep(this.limits.idlePollMs);
          continue;
        }
        if (delivery === undefined) {
          const retrySoon = published;
          published = false;
          await sleep(retrySoon ? 10 : this.limits.idlePollMs);
          continue;
        }
        const run = this.run(handler, delivery);
        inFlight.add(run);
        void run.finally(() => {
          inFlight.delete(run);
          signal();
        });
      }
    })();
    const dispatcher = {
      drain: async () => {
        if (!this.dispatchers.delete(dispatcher)) return;
        stopped = true;
        publishes.unsubscribe();
        signal();
        await loop;
        await Promise.allSettled([...inFlight]);
      },
    };
    this.dispatchers.add(dispatcher);
    return dispatcher;
  }

  deadLetters(options?: DeadLetterListOptions): Promise<DeadLetter[]> {
    return this.letters.list("work-queue", options);
  }

  async close(): Promise<void> {
    await Promise.all([...this.dispatchers].map((dispatcher) => dispatcher.drain()));
    this.advisories.unsubscribe();
  }

  /** Deletes the stream and its consumers, and the prefix's dead letters; for tests and tear-down. */
  async destroy(): Promise<void> {
    await this.close();
    await deleteStream(this.jsm, this.stream);
    await this.letters.destroy();
  }

  private async pull(lane: Priority): Promise<Delivery | undefined> {
    const response = await this.connection.request(
      `$JS.API.CONSUMER.MSG.NEXT.${this.stream}.${lane}`,
      JSON.stringify({ batch: 1, no_wait: true }),
      // A pulled message arrives on the inbox under its own subject, which the shared (muxed)
      // inbox cannot match to the request; a dedicated inbox can.
      { timeout: this.limits.requestTimeoutMs, noMux: true },
    );
    // 404 (no messages), 408 (request expired) and 409 (consumer busy) all mean "nothing now".
    if (response.headers?.code || !response.reply) return undefined;
    return this.wrap(response, response.reply, lane);
  }

  private wrap(response: Msg, reply: string, lane: Priority): Delivery {
    const { deliveryCount } = deliveryOf(reply);
    const id = response.headers?.get("Nats-Msg-Id") ?? "";
    let settled = false;
    const settle = async (body: string) => {
      if (settled) throw new Error(`work message ${id} settled twice`);
      settled = true;
      // A request, not a publish: the server confirms the ack, so "resolved" means "settled".
      await this.connection.request(reply, body, { timeout: this.limits.requestTimeoutMs });
    };
    const term = (reason: string) => {
      this.log.warn({ id, deliveryCount, reason }, "work message terminated");
      return settle(termTakesReason(this.connection.info?.version) ? `+TERM ${reason}` : "+TERM");
    };
    const message: WorkMessage = {
      id,
      payload: response.data,
      priority: lane,
      deliveryCount,
      headers: recordOfNatsHeaders(response.headers),
      ack: () => settle("+ACK"),
      nak: async (delayMs = 0) => {
        // JetStream would keep the message in the stream after its last delivery; it is kept as a
        // dead letter, then term removes it. A letter that cannot be stored (NATS down) leaves the
        // message un-settled: the ack deadline's max-deliveries advisory then records it.
        if (deliveryCount >= this.limits.deliveryCountMax) {
          if (settled) throw new Error(`work message ${id} settled twice`);
          await this.letters.record({ port: "work-queue", id, subject: `work.${lane}`, data: response.data, deliveryCount, reason: "delivery_count_max" });
          return settle("+TERM");
        }
        return settle(delayMs > 0 ? `-NAK ${JSON.stringify({ delay: nanos(delayMs) })}` : "-NAK");
      },
      term,
      working: async () => {
        if (!settled) this.connection.publish(reply, "+WPI");
      },
    };
    return { message, settled: () => settled };
  }

  private async run(handler: (message: WorkMessage) => Promise<void>, { message, settled }: Delivery): Promise<void> {
    try {
      await handler(message);
    } catch (error) {
      this.log.error({ err: error, id: message.id, deliveryCount: message.deliveryCount }, "work handler failed");
    }
    if (!settled()) {
      await message.nak().catch((error: unknown) => this.log.warn({ err: error, id: message.id }, "nak after an unsettled handler failed"));
    }
  }
}
