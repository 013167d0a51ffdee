// One wiring for every service in both modes: NATS JetStream when `natsUrl` is given, the
// in-process adapters (with files under `dataDir`) otherwise.
//
// Each process opens its ports once and passes them to whatever needs them. In single-node mode
// the four services run in one process and get the same ports from their one caller
// (services/single-node.ts), which is what lets a job enqueued by the orchestrator reach
// inference; two `createPorts` calls give two independent sets.
import { EventEmitter } from "node:events";
import { resolve } from "node:path";
import { connect, type NatsConnection } from "@nats-io/transport-node";
import { pino, type Logger } from "pino";
import type { BlobStore } from "../ports/blob-store.ts";
import type { EventBus } from "../ports/event-bus.ts";
import type { WorkQueue } from "../ports/work-queue.ts";
import { InProcessBlobStore } from "./blob-store.in-process.ts";
import { NatsBlobStore } from "./blob-store.nats.ts";
import { InProcessEventBus } from "./event-bus.in-process.ts";
import { NatsEventBus } from "./event-bus.nats.ts";
import { InProcessWorkQueue } from "./work-queue.in-process.ts";
import { NatsWorkQueue } from "./work-queue.nats.ts";

export { InProcessBlobStore, type InProcessBlobStoreOptions } from "./blob-store.in-process.ts";
export { NatsBlobStore, type NatsBlobStoreOptions } from "./blob-store.nats.ts";
export { InProcessEventBus, type InProcessEventBusOptions } from "./event-bus.in-process.ts";
export { NatsEventBus, type NatsEventBusOptions } from "./event-bus.nats.ts";
export { InProcessWorkQueue, type InProcessWorkQueueOptions } from "./work-queue.in-process.ts";
export { NatsWorkQueue, type NatsWorkQueueOptions } from "./work-queue.nats.ts";

export interface PortsOptions {
  /** NATS server(s), comma-separated; unset means single-node mode with the in-process adapters. */
  natsUrl?: string;
  /** Credentials on the NATS server; both or neither. */
  natsUser?: string;
  natsPassword?: string;
  /** Where the in-process adapters keep their files (`blobs/`, `events/`, `work-queue/` dead letters). @default "./.data" */
  dataDir?: string;
  /** Prefix of every NATS stream, bucket and subject ([A-Za-z0-9_-]+). @default "cutline" */
  namePrefix?: string;
  /** Blobs are gone this long after their put. @default 86400000 ms (24 h) */
  blobTtlMs?: number;
  /** Work messages the queue holds; past it enqueue throws `QueueFullError`. @default 10000 messages */
  queueLengthMax?: number;
  /** Deliveries of one work message before it is dropped. @default 5 deliveries */
  deliveryCountMax?: number;
  /** A work message not settled nor marked working within this is redelivered. @default 30000 ms */
  ackWaitMs?: number;
  /** How long a work message id is remembered for dedup. @default 120000 ms */
  dedupWindowMs?: number;
  /** Events are discarded this long after their publish. @default 604800000 ms (7 days) */
  eventMaxAgeMs?: number;
  /** Deliveries of one event to one durable name before it is skipped. @default 10 deliveries */
  eventDeliveryCountMax?: number;
  /** Wait before redelivering an event whose handler threw. @default 1000 ms */
  eventRetryDelayMs?: number;
  /** Replicas of every NATS stream, consumer and bucket (3 in a 3-node JetStream cluster); a single server takes only 1. @default 1 */
  replicas?: number;
  /** @default a pino logger at level "info" */
  log?: Logger;
}

export interface Ports {
  readonly kind: "nats" | "in-process";
  /** Image tasks (and any task an older orchestrator enqueued). */
  readonly workQueue: WorkQueue;
  /**
   * Video tasks, apart from the images: each inference worker takes them under its own bound
   * (VIDEO_CONCURRENCY), so a long video never holds the slots images are taken with. NATS:
   * stream `<prefix>_video_work`; in process: a second queue.
   */
  readonly videoQueue: WorkQueue;
  readonly eventBus: EventBus;
  readonly blobStore: BlobStore;
  /**
   * Calls `listener` with whether the broker is reachable now, then on each change (NATS
   * disconnects and reconnects; in-process ports are always reachable). Returns an unsubscribe.
   */
  watchConnection(listener: (connected: boolean) => void): () => void;
  /** Closes the adapters (and the NATS connection); later calls wait for the first. */
  close(): Promise<void>;
}

export async function createPorts(options: PortsOptions = {}): Promise<Ports> {
  const log = (options.log ?? pino({ level: "info" })).child({ component: "ports" });
  return options.natsUrl ? openNats({ ...options, natsUrl: options.natsUrl }, log) : openInProcess(options, log);
}

async function openInProcess(options: PortsOptions, log: Logger): Promise<Ports> {
  const dataDir = resolve(options.dataDir ?? "./.data");
  const workQueue = new InProcessWorkQueue({ ...queueLimits(options), dataDir, log: log.child({ port: "work-queue" }) });
  const videoQueue = new InProcessWorkQueue({ ...queueLimits(options), dataDir, name: "video-queue", log: log.child({ port: "video-queue" }) });
  const eventBus = new InProcessEventBus({ dataDir, ...eventLimits(options), log: log.child({ port: "event-bus" }) });
  const blobStore = new InProcessBlobStore({ dataDir, ttlMs: options.blobTtlMs, log: log.child({ port: "blob-store" }) });
  log.info({ dataDir }, "ports: in-process adapters");
  return {
    kind: "in-process",
    workQueue,
    videoQueue,
    eventBus,
    blobStore,
    watchConnection(listener) {
      listener(true);
      return () => {};
    },
    close: once(async () => {
      await Promise.all([workQueue.close(), videoQueue.close(), eventBus.close(), blobStore.close()]);
    }),
  };
}

async function openNats(options: PortsOptions & { natsUrl: string }, log: Logger): Promise<Ports> {
  const { natsUrl, namePrefix = "cutline", replicas = 1 } = options;
  // Reconnects without end: a pod that gave up after the client's default 10 tries would stay
  // NOT_SERVING until restarted, though NATS came back.
  if ((options.natsUser === undefined) !== (options.natsPassword === undefined)) {
    throw new Error("NATS_USER and NATS_PASSWORD go together: set both or neither");
  }
  const connection: NatsConnection = await connect({
    servers: natsUrl.split(","),
    name: `cutline-${namePrefix}`,
    maxReconnectAttempts: -1,
    ...(options.natsUser === undefined ? {} : { user: options.natsUser, pass: options.natsPassword }),
  });
  const reachability = watchReachability(connection, log);
  try {
    const [workQueue, videoQueue, eventBus, blobStore] = await Promise.all([
      NatsWorkQueue.open({ connection, namePrefix, replicas, ...queueLimits(options), log: log.child({ port: "work-queue" }) }),
      NatsWorkQueue.open({ connection, namePrefix: `${namePrefix}_video`, replicas, ...queueLimits(options), log: log.child({ port: "video-queue" }) }),
      NatsEventBus.open({ connection, namePrefix, replicas, ...eventLimits(options), log: log.child({ port: "event-bus" }) }),
      NatsBlobStore.open({ connection, namePrefix, replicas, ttlMs: options.blobTtlMs, log: log.child({ port: "blob-store" }) }),
    ]);
    log.info({ natsUrl, namePrefix, replicas, server: connection.info?.version }, "ports: NATS JetStream adapters");
    return {
      kind: "nats",
      workQueue,
      videoQueue,
      eventBus,
      blobStore,
      watchConnection: reachability.watch,
      close: once(async () => {
        await Promise.all([workQueue.close(), videoQueue.close(), eventBus.close(), blobStore.close()]);
        reachability.closing();
        await connection.drain();
      }),
    };
  } catch (error) {
    await connection.close();
    throw error;
  }
}

/** Follows the connection's status events: disconnected from "disconnect" until "reconnect", and for good after "close". */
function watchReachability(connection: NatsConnection, log: Logger) {
  let connected = true;
  let closing = false;
  const changes = new EventEmitter();
  changes.setMaxListeners(0);
  const set = (value: boolean) => {
    if (value === connected) return;
    connected = value;
    if (!closing) log[value ? "info" : "warn"]({ server: connection.getServer() }, value ? "NATS connection restored" : "NATS connection lost; reconnecting");
    changes.emit("change", value);
  };
  void (async () => {
    for await (const status of connection.status()) {
      if (status.type === "disconnect" || status.type === "staleConnection") set(false);
      else if (status.type === "reconnect") set(true);
    }
  })();
  void connection.closed().then(() => set(false));
  return {
    /** The ports are closing: the connection's end is no loss to report. */
    closing() {
      closing = true;
    },
    watch(listener: (connected: boolean) => void): () => void {
      listener(connected);
      changes.on("change", listener);
      return () => changes.off("change", listener);
    },
  };
}

// A second close would drain a closed NATS connection, which throws.
function once(close: () => Promise<void>): () => Promise<void> {
  let closing: Promise<void> | undefined;
  return () => (closing ??= close());
}

function queueLimits(options: PortsOptions) {
  return {
    queueLengthMax: options.queueLengthMax,
    deliveryCountMax: options.deliveryCountMax,
    ackWaitMs: options.ackWaitMs,
    dedupWindowMs: options.dedupWindowMs,
  };
}

function eventLimits(options: PortsOptions) {
  return { maxAgeMs: options.eventMaxAgeMs, deliveryCountMax: options.eventDeliveryCountMax, retryDelayMs: options.eventRetryDelayMs };
}
