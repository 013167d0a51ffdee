/** Inputs and results, kept no longer than the store's TTL (24 h by default). */
export interface BlobStore {
  put(key: string, data: Uint8Array, options?: { contentType?: string }): Promise<void>;
  /** The bytes, or undefined when the key is unknown, deleted or past its TTL. */
  get(key: string): Promise<{ data: Uint8Array; contentType: string } | undefined>;
  /** Idempotent: deleting a missing key succeeds. */
  delete(key: string): Promise<void>;
  close(): Promise<void>;
}
