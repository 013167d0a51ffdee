import type { Readable } from "node:stream";

/** What a stored blob is, without its bytes. */
export interface BlobInfo {
  contentType: string;
  bytes: number;
}

/** Limits every blob store adapter takes. */
export interface BlobStoreLimits {
  /** Blobs are gone this long after their last put. @default 86400000 ms (24 h) */
  ttlMs?: number;
}

/** Inputs and results, kept no longer than the store's TTL (24 h by default). */
export interface BlobStore {
  /** Replaces any blob under `key`; restarts its TTL. */
  put(key: string, data: Uint8Array, options?: { contentType?: string }): Promise<void>;
  /** The bytes, or undefined when the key is unknown, deleted or past its TTL. `contentType` defaults to `application/octet-stream`. */
  get(key: string): Promise<{ data: Uint8Array; contentType: string } | undefined>;
  /**
   * Replaces any blob under `key` with the file's bytes, streamed: a video of a gigabyte is never
   * held in memory. Restarts its TTL.
   */
  putFile(key: string, path: string, options?: { contentType?: string }): Promise<void>;
  /**
   * Streams the blob into a new file at `path` (replaced if it exists); undefined, and no file,
   * when the key is unknown, deleted or past its TTL.
   */
  getToFile(key: string, path: string): Promise<{ contentType: string; bytes: number } | undefined>;
  /** The blob's content type and size without reading its bytes (a HEAD); undefined when unknown, deleted or past its TTL. */
  stat(key: string): Promise<BlobInfo | undefined>;
  /**
   * The blob's bytes as a stream, read as the caller consumes it (a video result goes to its HTTP
   * response without a copy on disk or whole in memory); undefined when unknown, deleted or past
   * its TTL. A failure part-way destroys the stream with the error. The caller reads it to its
   * end or destroys it.
   */
  getStream(key: string): Promise<(BlobInfo & { stream: Readable }) | undefined>;
  /** Idempotent: deleting a missing key succeeds. */
  delete(key: string): Promise<void>;
  close(): Promise<void>;
}
