// How the variables every service shares (commonConfigSpec) become its database and ports, in
// one place for the four mains and single-node mode.
import { createPorts, type Ports } from "./adapters/index.ts";
import { databaseLocation, openDatabase, type Database } from "./database.ts";
import type { Logger } from "./logging.ts";
import { tracedEventBus, tracedWorkQueue } from "./tracing.ts";

interface CommonConfig {
  DATABASE_URL: string | undefined;
  NATS_URL: string | undefined;
  NATS_NAME_PREFIX: string;
  NATS_REPLICAS: number;
  NATS_USER: string | undefined;
  NATS_PASSWORD: string | undefined;
  CUTLINE_DATA_DIR: string;
  BLOB_TTL_MS: number;
  JOB_RETRY_MAX: number;
}

/**
 * NATS JetStream when NATS_URL is set, else the in-process adapters under CUTLINE_DATA_DIR; the
 * queue and the bus carry the trace context of what they publish (when tracing is on).
 */
export async function openPorts(config: CommonConfig, log: Logger): Promise<Ports> {
  const ports = await createPorts({
    natsUrl: config.NATS_URL,
    dataDir: config.CUTLINE_DATA_DIR,
    namePrefix: config.NATS_NAME_PREFIX,
    replicas: config.NATS_REPLICAS,
    natsUser: config.NATS_USER,
    natsPassword: config.NATS_PASSWORD,
    blobTtlMs: config.BLOB_TTL_MS,
    // Every service opening the queue declares the same delivery limit (JetStream's max_deliver).
    deliveryCountMax: config.JOB_RETRY_MAX + 1,
    log,
  });
  return { ...ports, workQueue: tracedWorkQueue(ports.workQueue), videoQueue: tracedWorkQueue(ports.videoQueue), eventBus: tracedEventBus(ports.eventBus) };
}

/** Postgres at DATABASE_URL when set, else PGlite under CUTLINE_DATA_DIR. */
export function openServiceDatabase<Schema>(config: CommonConfig): Database<Schema> {
  return openDatabase<Schema>(databaseLocation(config.DATABASE_URL, config.CUTLINE_DATA_DIR));
}
