// Single-node blob store: one file per blob under `<dataDir>/blobs/`, named by the SHA-256 of its
// key so that any key is a safe file name. A blob expires `ttlMs` after its file was written;
// `get` checks that, and a periodic sweep deletes the files nobody asked for again.
import { createHash, randomBytes } from "node:crypto";
import { mkdir, readdir, readFile, rename, rm, stat, writeFile } from "node:fs/promises";
import { join } from "node:path";
import type { Logger } from "pino";
import { startPeriodicTask, type PeriodicTask } from "../periodic-task.ts";
import type { BlobStore, BlobStoreLimits } from "../ports/blob-store.ts";

export interface InProcessBlobStoreOptions extends BlobStoreLimits {
  /** Blobs live in `<dataDir>/blobs/`. */
  dataDir: string;
  /** Time between sweeps of expired files. @default 60000 ms */
  sweepIntervalMs?: number;
  log: Logger;
}

const DEFAULT_CONTENT_TYPE = "application/octet-stream";
const SUFFIX = ".blob";

/** File layout: 4-byte big-endian header length, a JSON header `{ key, contentType }`, the bytes. */
function encode(key: string, contentType: string, data: Uint8Array): Buffer {
  const header = Buffer.from(JSON.stringify({ key, contentType }));
  const length = Buffer.alloc(4);
  length.writeUInt32BE(header.length);
  return Buffer.concat([length, header, data]);
}

export class InProcessBlobStore implements BlobStore {
  private readonly directory: string;
  private readonly ttlMs: number;
  private readonly log: Logger;
  private readonly sweepTask: PeriodicTask;
  private readonly ready: Promise<unknown>;

  constructor(options: InProcessBlobStoreOptions) {
    this.directory = join(options.dataDir, "blobs");
    this.ttlMs = options.ttlMs ?? 86_400_000;
    this.log = options.log;
    this.ready = mkdir(this.directory, { recursive: true });
    this.sweepTask = startPeriodicTask({ name: "blob sweep", intervalMs: options.sweepIntervalMs ?? 60_000, log: this.log, run: () => this.sweep() });
  }

  async put(key: string, data: Uint8Array, options: { contentType?: string } = {}): Promise<void> {
    await this.ready;
    const path = this.pathOf(key);
    // Write aside and rename, so a reader never sees half a blob.
    const temporary = `${path}.${randomBytes(4).toString("hex")}.tmp`;
    await writeFile(temporary, encode(key, options.contentType ?? DEFAULT_CONTENT_TYPE, data));
    await rename(temporary, path);
  }

  async get(key: string): Promise<{ data: Uint8Array; contentType: string } | undefined> {
    await this.ready;
    const path = this.pathOf(key);
    let file: Buffer;
    try {
      const { mtimeMs } = await stat(path);
      if (this.expired(mtimeMs)) {
        await rm(path, { force: true });
        return undefined;
      }
      file = await readFile(path);
    } catch (error) {
      if ((error as NodeJS.ErrnoException).code === "ENOENT") return undefined;
      throw error;
    }
    const headerLength = file.readUInt32BE(0);
    const header = JSON.parse(file.subarray(4, 4 + headerLength).toString()) as { key: string; contentType: string };
    return { data: new Uint8Array(file.subarray(4 + headerLength)), contentType: header.contentType };
  }

  async delete(key: string): Promise<void> {
    await this.ready;
    await rm(this.pathOf(key), { force: true });
  }

  async close(): Promise<void> {
    await this.sweepTask.stop();
    await this.ready;
  }

  /** Deletes expired blobs; returns how many. */
  async sweep(): Promise<number> {
    await this.ready;
    let removed = 0;
    for (const name of await readdir(this.directory)) {
      const path = join(this.directory, name);
      try {
        const { mtimeMs } = await stat(path);
        // Temporary files of a put that crashed are swept on the same clock.
        if (this.expired(mtimeMs) && (name.endsWith(SUFFIX) || name.endsWith(".tmp"))) {
          await rm(path, { force: true });
          removed += 1;
        }
      } catch (error) {
        if ((error as NodeJS.ErrnoException).code !== "ENOENT") this.log.warn({ err: error, path }, "blob sweep failed on a file");
      }
    }
    if (removed > 0) this.log.debug({ removed }, "expired blobs swept");
    return removed;
  }

  private expired(mtimeMs: number): boolean {
    return Date.now() - mtimeMs >= this.ttlMs;
  }

  private pathOf(key: string): string {
    return join(this.directory, createHash("sha256").update(key).digest("hex") + SUFFIX);
  }
}
