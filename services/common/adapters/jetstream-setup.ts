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

export async function ensureStream(jsm: JetStreamManager, config: Partial<StreamConfig> & { name: string }): Promise<StreamInfo> {
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
