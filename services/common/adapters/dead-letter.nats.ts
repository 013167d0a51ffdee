// JetStream dead letters: stream `<prefix>_dead_letters` over `<prefix>.dead-letter.>`, limits
// retention with a long max age. A letter is published to `<prefix>.dead-letter.<port>.<subject>`
// with its payload unchanged and the rest in headers; its message id makes the publish idempotent,
// because every replica of a service hears the same max-deliveries advisory and records it.
// The work queue and the event bus of one prefix share the stream; each lists its own subjects.
import { DiscardPolicy, JetStreamApiError, RetentionPolicy, StorageType, type JetStreamClient, type JetStreamManager } from "@nats-io/jetstream";
import { headers as natsHeaders, nanos } from "@nats-io/transport-node";
import type { Logger } from "pino";
import { deadLetterLimit, type DeadLetter, type DeadLetterListOptions, type DeadLetterPort, type DeadLetterReason } from "../ports/dead-letter.ts";
import { countDeadLetter } from "./dead-letter.metrics.ts";
import { deleteStream, ensureStream } from "./jetstream-setup.ts";

const HEADER = {
  id: "Cutline-Dead-Letter-Id",
  subject: "Cutline-Dead-Letter-Subject",
  deliveryCount: "Cutline-Dead-Letter-Deliveries",
  reason: "Cutline-Dead-Letter-Reason",
  durableName: "Cutline-Dead-Letter-Durable",
} as const;

export interface NatsDeadLettersOptions {
  jsm: JetStreamManager;
  js: JetStreamClient;
  namePrefix: string;
  /** Copies of the stream (see NatsWorkQueueOptions.replicas). @default 1 */
  replicas?: number;
  /** Letters are discarded this long after they were recorded. */
  maxAgeMs: number;
  log: Logger;
}

export class NatsDeadLetters {
  private constructor(
    private readonly options: NatsDeadLettersOptions,
    private readonly stream: string,
    private readonly subjectPrefix: string,
  ) {}

  static async open(options: NatsDeadLettersOptions): Promise<NatsDeadLetters> {
    const stream = `${options.namePrefix}_dead_letters`;
    const subjectPrefix = `${options.namePrefix}.dead-letter`;
    await ensureStream(options.jsm, {
      name: stream,
      subjects: [`${subjectPrefix}.>`],
      retention: RetentionPolicy.Limits,
      storage: StorageType.File,
      discard: DiscardPolicy.Old,
      max_age: nanos(options.maxAgeMs),
      duplicate_window: nanos(Math.min(120_000, options.maxAgeMs)),
      // Listing reads letters by subject with direct gets, without creating a consumer.
      allow_direct: true,
      num_replicas: options.replicas ?? 1,
    });
    return new NatsDeadLetters(options, stream, subjectPrefix);
  }

  /** Stores the letter (resolves once JetStream has it) and counts it unless another replica already did. */
  async record(letter: Omit<DeadLetter, "recordedAt">): Promise<void> {
    const header = natsHeaders();
    header.set(HEADER.id, letter.id);
    header.set(HEADER.subject, letter.subject);
    header.set(HEADER.deliveryCount, String(letter.deliveryCount));
    header.set(HEADER.reason, letter.reason);
    if (letter.durableName !== undefined) header.set(HEADER.durableName, letter.durableName);
    const acknowledgement = await this.options.js.publish(`${this.subjectPrefix}.${letter.port}.${letter.subject}`, letter.data, {
      msgID: `${letter.port}:${letter.id}`,
      headers: header,
    });
    if (acknowledgement.duplicate) return;
    countDeadLetter(letter.port, letter.subject);
    this.options.log.error(
      { id: letter.id, subject: letter.subject, deliveryCount: letter.deliveryCount, reason: letter.reason, durableName: letter.durableName, stream: this.stream },
      `${letter.port} message set aside as a dead letter`,
    );
  }

  async list(port: DeadLetterPort, options: DeadLetterListOptions = {}): Promise<DeadLetter[]> {
    const limit = deadLetterLimit(options);
    const letters: DeadLetter[] = [];
    let seq = 1;
    while (letters.length < limit) {
      const stored = await this.options.jsm.direct.getMessage(this.stream, { seq, next_by_subj: `${this.subjectPrefix}.${port}.>` }).catch((error: unknown) => {
        // 404: no letter at or after `seq`.
        if (error instanceof JetStreamApiError || (error instanceof Error && /no message found|404/i.test(error.message))) return null;
        throw error;
      });
      if (stored === null) break;
      const durableName = stored.header.get(HEADER.durableName);
      letters.push({
        port,
        id: stored.header.get(HEADER.id),
        subject: stored.header.get(HEADER.subject),
        data: stored.data,
        deliveryCount: Number(stored.header.get(HEADER.deliveryCount)),
        reason: stored.header.get(HEADER.reason) as DeadLetterReason,
        ...(durableName === "" ? {} : { durableName }),
        recordedAt: stored.time,
      });
      seq = stored.seq + 1;
    }
    return letters;
  }

  /** Deletes the stream; for tests and tear-down. */
  async destroy(): Promise<void> {
    await deleteStream(this.options.jsm, this.stream);
  }
}
