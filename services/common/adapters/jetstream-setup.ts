// Add-or-update for streams and consumers: every service of a mesh calls these at start with the
// same names, and whichever comes first creates them; the others find them and bring their
// limits up to date.
import {
  JetStreamApiCodes,
  JetStreamApiError,
  type ConsumerConfig,
  type ConsumerInfo,
  type JetStreamManager,
  type StreamConfig,
  type StreamInfo,
} from "@nats-io/jetstream";

function isApiError(error: unknown, code: number): boolean {
  return error instanceof JetStreamApiError && error.code === code;
}

/** Replicas of every stream, consumer and bucket: JetStream accepts 1, 3 or 5, and more than 1 only in a cluster. */
export function assertValidReplicas(replicas: number): void {
  if (![1, 3, 5].includes(replicas)) throw new RangeError(`replicas must be 1, 3 or 5 (JetStream's supported counts), got ${replicas}`);
}

/** Why a stream could not be created with `replicas` copies: a single server has no peers to hold the others. */
function replicasError(name: string, replicas: number | undefined, error: unknown): unknown {
  if (replicas === undefined || replicas <= 1 || !(error instanceof JetStreamApiError)) return error;
  return new Error(
    `JetStream stream ${name} cannot have ${replicas} replicas: ${error.message} (a single NATS server or a cluster with fewer JetStream peers holds only 1; set NATS_REPLICAS to at most the cluster's JetStream peer count)`,
    { cause: error },
  );
}

export async function ensureStream(jsm: JetStreamManager, config: Partial<StreamConfig> & { name: string }): Promise<StreamInfo> {
  try {
    return await ensureStreamOnce(jsm, config);
  } catch (error) {
    throw replicasError(config.name, config.num_replicas, error);
  }
}

async function ensureStreamOnce(jsm: JetStreamManager, config: Partial<StreamConfig> & { name: string }): Promise<StreamInfo> {
  try {
    return await jsm.streams.add(config);
  } catch (error) {
    // "already in use" (a different config) or a race with another service: update instead.
    if (!(error instanceof JetStreamApiError)) throw error;
    const { name, retention: _retention, storage: _storage, ...updatable } = config;
    return await jsm.streams.update(name, updatable);
  }
}

export async function ensureConsumer(
  jsm: JetStreamManager,
  stream: string,
  config: Partial<ConsumerConfig> & { durable_name: string },
): Promise<ConsumerInfo> {
  try {
    return await jsm.consumers.add(stream, config);
  } catch (error) {
    if (!(error instanceof JetStreamApiError) || isApiError(error, JetStreamApiCodes.StreamNotFound)) throw error;
    const { durable_name, ack_policy: _ackPolicy, deliver_policy: _deliverPolicy, ...updatable } = config;
    return await jsm.consumers.update(stream, durable_name, updatable);
  }
}

/** Deletes a stream if it exists; for tests and tear-down. */
export async function deleteStream(jsm: JetStreamManager, name: string): Promise<void> {
  try {
    await jsm.streams.delete(name);
  } catch (error) {
    if (!isApiError(error, JetStreamApiCodes.StreamNotFound)) throw error;
  }
}

/** JetStream names allow neither dots, wildcards nor whitespace; subjects get the prefix as one token. */
export function assertValidPrefix(namePrefix: string): void {
  if (!/^[A-Za-z0-9_-]+$/.test(namePrefix)) throw new Error(`namePrefix must match [A-Za-z0-9_-]+, got ${JSON.stringify(namePrefix)}`);
}
