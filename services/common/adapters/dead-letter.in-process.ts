// Single-node dead letters: one JSON line per letter appended to a file under the data directory
// (so they outlive a restart, like the events they came from), or kept in memory when the adapter
// has no directory. Letters older than `maxAgeMs` are dropped when the file is loaded and listed.
import { appendFile, mkdir, readFile, rename, writeFile } from "node:fs/promises";
import { dirname } from "node:path";
import type { Logger } from "pino";
import { deadLetterLimit, type DeadLetter, type DeadLetterListOptions } from "../ports/dead-letter.ts";
import { countDeadLetter } from "./dead-letter.metrics.ts";

export interface InProcessDeadLettersOptions {
  /** JSON-lines file; unset keeps the letters in memory only. */
  file?: string;
  /** Letters are dropped this long after they were recorded. */
  maxAgeMs: number;
  log: Logger;
}

interface SavedLetter extends Omit<DeadLetter, "data" | "recordedAt"> {
  data: string;
  recordedAtMs: number;
}

export class InProcessDeadLetters {
  private readonly letters: DeadLetter[] = [];
  private readonly ready: Promise<void>;
  /** File writes, one at a time and in order. */
  private writes: Promise<void> = Promise.resolve();

  constructor(private readonly options: InProcessDeadLettersOptions) {
    this.ready = this.load();
  }

  /** Keeps the letter (on disk before this resolves, when there is a file) and counts it. */
  async record(letter: Omit<DeadLetter, "recordedAt">): Promise<void> {
    await this.ready;
    const recorded: DeadLetter = { ...letter, recordedAt: new Date() };
    this.letters.push(recorded);
    countDeadLetter(letter.port, letter.subject);
    this.options.log.error(
      { id: letter.id, subject: letter.subject, deliveryCount: letter.deliveryCount, reason: letter.reason, durableName: letter.durableName },
      `${letter.port} message set aside as a dead letter`,
    );
    const file = this.options.file;
    if (file !== undefined) await this.write(() => appendFile(file, JSON.stringify(serialize(recorded)) + "\n"));
  }

  async list(options: DeadLetterListOptions = {}): Promise<DeadLetter[]> {
    const limit = deadLetterLimit(options);
    await this.ready;
    await this.writes;
    const oldest = Date.now() - this.options.maxAgeMs;
    return this.letters.filter((letter) => letter.recordedAt.getTime() >= oldest).slice(0, limit);
  }

  /** Waits for pending writes. */
  async close(): Promise<void> {
    await this.ready;
    await this.writes;
  }

  private write(operation: () => Promise<void>): Promise<void> {
    const result = this.writes.then(operation);
    this.writes = result.catch((error: unknown) => this.options.log.error({ err: error, file: this.options.file }, "dead letter write failed"));
    return result;
  }

  private async load(): Promise<void> {
    const file = this.options.file;
    if (file === undefined) return;
    await mkdir(dirname(file), { recursive: true });
    const text = await readFile(file, "utf8").catch(() => "");
    const oldest = Date.now() - this.options.maxAgeMs;
    let dropped = 0;
    for (const line of text.split("\n")) {
      if (line === "") continue;
      try {
        const saved = JSON.parse(line) as SavedLetter;
        if (saved.recordedAtMs < oldest) dropped += 1;
        else this.letters.push(deserialize(saved));
      } catch {
        // A line cut short by a crash during append: its record() never resolved.
        dropped += 1;
      }
    }
    if (dropped > 0) {
      const temporary = `${file}.tmp`;
      await writeFile(temporary, this.letters.map((letter) => JSON.stringify(serialize(letter)) + "\n").join(""));
      await rename(temporary, file);
    }
  }
}

function serialize(letter: DeadLetter): SavedLetter {
  const { data, recordedAt, ...rest } = letter;
  return { ...rest, data: Buffer.from(data).toString("base64"), recordedAtMs: recordedAt.getTime() };
}

function deserialize(saved: SavedLetter): DeadLetter {
  const { data, recordedAtMs, ...rest } = saved;
  return { ...rest, data: new Uint8Array(Buffer.from(data, "base64")), recordedAt: new Date(recordedAtMs) };
}
