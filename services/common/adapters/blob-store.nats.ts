// JetStream object store: one bucket whose max age is the store's TTL. The server expires the
// chunks on its own clock; `get` also compares the object's mtime with the TTL so that a blob is
// never served past its TTL, whatever the server's expiry timing.
import { jetstreamManager, type JetStreamManager } from "@nats-io/jetstream";
import { Objm, type ObjectStore } from "@nats-io/obj";
import { nanos, type NatsConnection } from "@nats-io/transport-node";
import { createReadStream, createWriteStream } from "node:fs";
import { rm } from "node:fs/promises";
import { Readable, Writable } from "node:stream";
import type { Logger } from "pino";
import type { BlobInfo, BlobStore, BlobStoreLimits } from "../ports/blob-store.ts";
import { assertValidPrefix, assertValidReplicas, deleteStream } from "./jetstream-setup.ts";

export interface NatsBlobStoreOptions extends BlobStoreLimits {
  /** Owned by the caller: `close()` leaves it open. */
  connection: NatsConnection;
  /** Bucket `<prefix>_blobs` (stream `OBJ_<prefix>_blobs`). */
  namePrefix: string;
  /** Copies of each stream, consumer and bucket (1, 3 or 5; more than 1 needs a JetStream cluster). @default 1 */
  replicas?: number;
  log: Logger;
}

const DEFAULT_CONTENT_TYPE = "application/octet-stream";

export class NatsBlobStore implements BlobStore {
  private constructor(
    private readonly store: ObjectStore,
    private readonly jsm: JetStreamManager,
    private readonly stream: string,
    private readonly ttlMs: number,
  ) {}

  static async open(options: NatsBlobStoreOptions): Promise<NatsBlobStore> {
    assertValidPrefix(options.namePrefix);
    const replicas = options.replicas ?? 1;
    assertValidReplicas(replicas);
    const ttlMs = options.ttlMs ?? 86_400_000;
    const bucket = `${options.namePrefix}_blobs`;
    // `create` opens an existing bucket as it is; a changed TTL or replica count is applied to its stream.
    const stream = `OBJ_${bucket}`;
    const store = await new Objm(options.connection).create(bucket, { ttl: nanos(ttlMs), replicas }).catch((error: unknown) => {
      if (replicas <= 1) throw error;
      throw new Error(`object store bucket ${bucket} cannot have ${replicas} replicas: ${String(error)} (set NATS_REPLICAS to at most the cluster's JetStream peer count)`, { cause: error });
    });
    const jsm = await jetstreamManager(options.connection);
    const status = await store.status();
    if (status.ttl !== nanos(ttlMs) || status.replicas !== replicas) {
      options.log.info({ bucket, fromMs: status.ttl / 1_000_000, toMs: ttlMs, fromReplicas: status.replicas, toReplicas: replicas }, "blob bucket TTL or replicas changed");
      await jsm.streams.update(stream, { max_age: nanos(ttlMs), num_replicas: replicas });
    }
    return new NatsBlobStore(store, jsm, stream, ttlMs);
  }

  async put(key: string, data: Uint8Array, options: { contentType?: string } = {}): Promise<void> {
    await this.store.putBlob({ name: key, metadata: { contentType: options.contentType ?? DEFAULT_CONTENT_TYPE } }, data);
  }

  async putFile(key: string, path: string, options: { contentType?: string } = {}): Promise<void> {
    // The object store chunks the stream as it reads it: the file is never whole in memory.
    const stream = Readable.toWeb(createReadStream(path)) as ReadableStream<Uint8Array>;
    await this.store.put({ name: key, metadata: { contentType: options.contentType ?? DEFAULT_CONTENT_TYPE } }, stream);
  }

  async getToFile(key: string, path: string): Promise<{ contentType: string; bytes: number } | undefined> {
    const result = await this.store.get(key);
    if (result === null) return undefined;
    if (Date.now() - Date.parse(result.info.mtime) >= this.ttlMs) {
      await result.data.cancel();
      return undefined;
    }
    try {
      await result.data.pipeTo(Writable.toWeb(createWriteStream(path)) as WritableStream<Uint8Array>);
      const error = await result.error;
      if (error) throw error;
    } catch (error) {
      await rm(path, { force: true });
      throw error;
    }
    return { contentType: result.info.metadata?.contentType ?? DEFAULT_CONTENT_TYPE, bytes: result.info.size };
  }

  async stat(key: string): Promise<BlobInfo | undefined> {
    const info = await this.store.info(key);
    if (info === null || info.deleted || Date.now() - Date.parse(info.mtime) >= this.ttlMs) return undefined;
    return { contentType: info.metadata?.contentType ?? DEFAULT_CONTENT_TYPE, bytes: info.size };
  }

  async getStream(key: string): Promise<(BlobInfo & { stream: Readable }) | undefined> {
    const result = await this.store.get(key);
    if (result === null) return undefined;
    if (Date.now() - Date.parse(result.info.mtime) >= this.ttlMs) {
      await result.data.cancel();
      return undefined;
    }
    const stream = Readable.fromWeb(result.data as import("node:stream/web").ReadableStream<Uint8Array>);
    // The object store reports a bad chunk (a digest mismatch, a lost chunk) on `error`, not on the stream.
    void result.error.then((error) => {
      if (error) stream.destroy(error);
    });
    return { contentType: result.info.metadata?.contentType ?? DEFAULT_CONTENT_TYPE, bytes: result.info.size, stream };
  }

  async get(key: string): Promise<{ data: Uint8Array; contentType: string } | undefined> {
    const result = await this.store.get(key);
    if (result === null) return undefined;
    if (Date.now() - Date.parse(result.info.mtime) >= this.ttlMs) {
      await result.data.cancel();
      return undefined;
    }
    const data = new Uint8Array(await new Response(result.data).arrayBuffer());
    const error = await result.error;
    if (error) throw error;
    return { data, contentType: result.info.metadata?.contentType ?? DEFAULT_CONTENT_TYPE };
  }

  async delete(key: string): Promise<void> {
    if ((await this.store.info(key)) === null) return;
    await this.store.delete(key);
  }

  async close(): Promise<void> {}

  /** Deletes the bucket; for tests and tear-down. */
  async destroy(): Promise<void> {
    await deleteStream(this.jsm, this.stream);
  }
}
