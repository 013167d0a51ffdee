// Single-node blob store: one file per blob under `<dataDir>/blobs/`, named by the SHA-256 of its
// key so that any key is a safe file name. A blob expires `ttlMs` after its file was written;
// `get` checks that, and a periodic sweep deletes the files nobody asked for again.
//
// Small blobs just written are also kept in memory (bounded by bytes, least recently used
// out first), so the worker's read of an input and the gateway's read of a result need no file
// operation: each is a trip through libuv's thread pool, which on a busy node queues behind
// sharp's decodes and encodes (0.1–1.5 s each on 2 cores under load). Writes still reach the
// file before `put` resolves. The directory must belong to this store alone: a file changed
// behind its back is not seen while its copy is in memory.
import { createHash, randomBytes } from "node:crypto";
import { createReadStream, createWriteStream } from "node:fs";
import { mkdir, open, readdir, readFile, rename, rm, stat, writeFile } from "node:fs/promises";
import { pipeline } from "node:stream/promises";
import { join } from "node:path";
import type { Logger } from "pino";
import { startPeriodicTask, type PeriodicTask } from "../periodic-task.ts";
import type { Readable } from "node:stream";
import type { BlobInfo, BlobStore, BlobStoreLimits } from "../ports/blob-store.ts";

export interface InProcessBlobStoreOptions extends BlobStoreLimits {
  /** Blobs live in `<dataDir>/blobs/`. */
  dataDir: string;
  /** Time between sweeps of expired files. @default 60000 ms */
  sweepIntervalMs?: number;
  /** Bytes of blobs kept in memory besides their files; 0 keeps none. @default 67108864 (64 MiB) */
  memoryBytesMax?: number;
  /** Largest blob kept in memory (bytes); larger ones are always read from their file. @default 4194304 (4 MiB) */
  memoryBlobBytesMax?: number;
  log: Logger;
}

interface MemoryCopy {
  data: Uint8Array;
  contentType: string;
  /** Date.now() when its file was written: the TTL counts from there, as it does from the file's mtime. */
  writtenAtMs: number;
}

/** Recently used blobs, least recently used first (a Map keeps insertion order), within a byte budget. */
class RecentBlobs {
  private readonly copies = new Map<string, MemoryCopy>();
  private bytes = 0;

  constructor(
    private readonly bytesMax: number,
    private readonly blobBytesMax: number,
  ) {}

  /** A copy of the bytes: a caller may transfer (detach) or change what it is given. */
  get(key: string): MemoryCopy | undefined {
    const copy = this.copies.get(key);
    if (copy === undefined) return undefined;
    this.copies.delete(key);
    this.copies.set(key, copy);
    return { ...copy, data: new Uint8Array(copy.data) };
  }

  /** Keeps a copy of `data`, or none (and forgets any older one) when it is over the per-blob limit. */
  set(key: string, copy: MemoryCopy): void {
    this.delete(key);
    if (copy.data.byteLength > this.blobBytesMax || copy.data.byteLength > this.bytesMax) return;
    this.copies.set(key, { ...copy, data: new Uint8Array(copy.data) });
    this.bytes += copy.data.byteLength;
    for (const [oldest, { data }] of this.copies) {
      if (this.bytes <= this.bytesMax) break;
      this.copies.delete(oldest);
      this.bytes -= data.byteLength;
    }
  }

  delete(key: string): void {
    const copy = this.copies.get(key);
    if (copy === undefined) return;
    this.copies.delete(key);
    this.bytes -= copy.data.byteLength;
  }

  /** Forgets every copy written before `writtenBeforeMs`. */
  deleteWrittenBefore(writtenBeforeMs: number): void {
    for (const [key, copy] of this.copies) if (copy.writtenAtMs < writtenBeforeMs) this.delete(key);
  }
}

const DEFAULT_CONTENT_TYPE = "application/octet-stream";
const SUFFIX = ".blob";

/** File layout: 4-byte big-endian header length, a JSON header `{ key, contentType }`, the bytes. */
function encode(key: string, contentType: string, data: Uint8Array): Buffer {
  return Buffer.concat([headerOf(key, contentType), data]);
}

/** The 4-byte length and the JSON header that come before a blob's bytes. */
function headerOf(key: string, contentType: string): Buffer {
  const header = Buffer.from(JSON.stringify({ key, contentType }));
  const length = Buffer.alloc(4);
  length.writeUInt32BE(header.length);
  return Buffer.concat([length, header]);
}

export class InProcessBlobStore implements BlobStore {
  private readonly directory: string;
  private readonly ttlMs: number;
  private readonly log: Logger;
  private readonly sweepTask: PeriodicTask;
  private readonly ready: Promise<unknown>;
  private readonly recent: RecentBlobs;
  /** Per key, the put or delete that started last and has not ended: only that put may leave a copy in memory. */
  private readonly latestChange = new Map<string, symbol>();

  constructor(options: InProcessBlobStoreOptions) {
    this.recent = new RecentBlobs(options.memoryBytesMax ?? 64 * 1024 * 1024, options.memoryBlobBytesMax ?? 4 * 1024 * 1024);
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
    const contentType = options.contentType ?? DEFAULT_CONTENT_TYPE;
    // Forgotten first: a reader during the write gets the old file or the new one, never a stale copy after it.
    const change = this.changeStarts(key);
    const writtenAtMs = Date.now();
    try {
      await writeFile(temporary, encode(key, contentType, data));
      await rename(temporary, path);
      this.changeLanded(key, change, { data, contentType, writtenAtMs });
    } finally {
      this.changeEnds(key, change);
    }
  }

  /** Forgets the key's copy in memory and marks this change as its latest. */
  private changeStarts(key: string): symbol {
    const change = Symbol(key);
    this.latestChange.set(key, change);
    this.recent.delete(key);
    return change;
  }

  /**
   * Called once a change's rename or removal is on disk. Only the latest change may leave a copy
   * in memory; an older one that lands after it has replaced the file the copy was made from, so
   * the copy goes (the next get reads the file).
   */
  private changeLanded(key: string, change: symbol, copy?: MemoryCopy): void {
    if (copy !== undefined && this.latestChange.get(key) === change) this.recent.set(key, copy);
    else this.recent.delete(key);
  }

  private changeEnds(key: string, change: symbol): void {
    if (this.latestChange.get(key) === change) this.latestChange.delete(key);
  }

  async putFile(key: string, path: string, options: { contentType?: string } = {}): Promise<void> {
    await this.ready;
    // Held until the rename lands: a put that starts during the copy must not keep its bytes in
    // memory while this file replaces its own.
    const change = this.changeStarts(key);
    const target = this.pathOf(key);
    const temporary = `${target}.${randomBytes(4).toString("hex")}.tmp`;
    try {
      const output = createWriteStream(temporary);
      output.write(headerOf(key, options.contentType ?? DEFAULT_CONTENT_TYPE));
      await pipeline(createReadStream(path), output);
      await rename(temporary, target);
      this.changeLanded(key, change);
    } catch (error) {
      await rm(temporary, { force: true });
      throw error;
    } finally {
      this.changeEnds(key, change);
    }
  }

  async getToFile(key: string, path: string): Promise<{ contentType: string; bytes: number } | undefined> {
    const blob = await this.getStream(key);
    if (blob === undefined) return undefined;
    await pipeline(blob.stream, createWriteStream(path));
    return { contentType: blob.contentType, bytes: blob.bytes };
  }

  async stat(key: string): Promise<BlobInfo | undefined> {
    const opened = await this.openBlob(key);
    if (opened === undefined) return undefined;
    await opened.file.close();
    return { contentType: opened.contentType, bytes: opened.bytes };
  }

  async getStream(key: string): Promise<(BlobInfo & { stream: Readable }) | undefined> {
    const opened = await this.openBlob(key);
    if (opened === undefined) return undefined;
    // Read through the open descriptor, closed with the stream: a put that renames over the blob meanwhile does not tear it.
    const stream = opened.file.createReadStream({ start: opened.bodyStart, autoClose: true });
    return { contentType: opened.contentType, bytes: opened.bytes, stream };
  }

  /** The blob's file, opened, with its header read; undefined when missing or expired. The caller closes `file`. */
  private async openBlob(key: string) {
    await this.ready;
    const source = this.pathOf(key);
    try {
      const stats = await stat(source);
      if (this.expired(stats.mtimeMs)) {
        await rm(source, { force: true });
        return undefined;
      }
      const file = await open(source, "r");
      try {
        const length = Buffer.alloc(4);
        await file.read(length, 0, 4, 0);
        const headerBytes = Buffer.alloc(length.readUInt32BE(0));
        await file.read(headerBytes, 0, headerBytes.length, 4);
        const header = JSON.parse(headerBytes.toString()) as { key: string; contentType: string };
        const bodyStart = 4 + headerBytes.length;
        return { file, contentType: header.contentType, bodyStart, bytes: stats.size - bodyStart };
      } catch (error) {
        await file.close();
        throw error;
      }
    } catch (error) {
      if ((error as NodeJS.ErrnoException).code === "ENOENT") return undefined;
      throw error;
    }
  }

  async get(key: string): Promise<{ data: Uint8Array; contentType: string } | undefined> {
    await this.ready;
    const copy = this.recent.get(key);
    if (copy !== undefined && !this.expired(copy.writtenAtMs)) return { data: copy.data, contentType: copy.contentType };
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
    // Not kept in memory: a put racing this read could be overtaken by the older bytes.
    return { data: new Uint8Array(file.subarray(4 + headerLength)), contentType: header.contentType };
  }

  async delete(key: string): Promise<void> {
    await this.ready;
    const change = this.changeStarts(key);
    try {
      await rm(this.pathOf(key), { force: true });
      this.changeLanded(key, change);
    } finally {
      this.changeEnds(key, change);
    }
  }

  async close(): Promise<void> {
    await this.sweepTask.stop();
    await this.ready;
  }

  /** Deletes expired blobs; returns how many. */
  async sweep(): Promise<number> {
    await this.ready;
    this.recent.deleteWrittenBefore(Date.now() - this.ttlMs);
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
