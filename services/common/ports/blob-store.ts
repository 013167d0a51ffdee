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
  /** Idempotent: deleting a missing key succeeds. */
  delete(key: string): Promise<void>;
  close(): Promise<void>;
}
