// Single-node event bus with the JetStream semantics the services rely on: events are appended
// to `<dataDir>/events/events.jsonl` and synced to the disk before `publish` resolves and before
// any subscriber sees them, and each durable name's ack floor is kept in `durables.json`, so a
// restarted process resumes where it stopped (redelivering at most the events acked above the
// floor, which at-least-once allows).
import { mkdir, open, readFile, rename, truncate, writeFile, type FileHandle } from "node:fs/promises";
import { join } from "node:path";
import type { Logger } from "pino";
import { startPeriodicTask, type PeriodicTask } from "../periodic-task.ts";
import { DEAD_LETTER_MAX_AGE_MS_DEFAULT, type DeadLetter, type DeadLetterListOptions } from "../ports/dead-letter.ts";
import type { BusEvent, EventBus, EventBusLimits, EventSubscribeOptions, PublishOptions } from "../ports/event-bus.ts";
import type { Subscription } from "../ports/work-queue.ts";
import { InProcessDeadLetters } from "./dead-letter.in-process.ts";
import { assertValidDurableName, assertValidSubject, subjectMatches } from "./subject-filter.ts";

export interface InProcessEventBusOptions extends EventBusLimits {
  /** Events live in `<dataDir>/events/`. */
  dataDir: string;
  log: Logger;
}

interface StoredEvent {
  readonly seq: number;
  readonly subject: string;
  readonly data: Uint8Array;
  readonly time: number;
  readonly headers?: Readonly<Record<string, string>> | undefined;
}

interface Subscriber {
  readonly handler: (event: BusEvent) => Promise<void>;
  current?: Promise<void>;
  draining: boolean;
}

interface Durable {
  readonly name: string;
  filter: string;
  /** Every event up to this sequence is acknowledged. */
  ackFloor: number;
  /** Next sequence to look at for a first delivery. */
  nextSeq: number;
  /** Delivered and not yet acknowledged: in a handler or waiting for a retry. */
  readonly pending: Map<number, { deliveryCount: number; timer?: NodeJS.Timeout }>;
  /** Due for redelivery, served before new events. */
  readonly retries: number[];
  readonly subscribers: Set<Subscriber>;
}

/** Lines published while the previous append was in flight, written by one append. */
interface Batch {
  text: string;
  firstSeq: number;
  lastSeq: number;
  /** Dedup ids of its events: forgotten again if the append fails, so a retry is written. */
  readonly ids: string[];
  written: Promise<void>;
}

interface SavedState {
  lastSeq: number;
  durables: Record<string, { filter: string; ackFloor: number }>;
}

export class InProcessEventBus implements EventBus {
  private readonly directory: string;
  private readonly maxAgeMs: number;
  private readonly deliveryCountMax: number;
  private readonly retryDelayMs: number;
  private readonly dedupWindowMs: number;
  private readonly log: Logger;
  private readonly events: StoredEvent[] = [];
  private readonly durables = new Map<string, Durable>();
  /** Per dedup id, when it is forgotten and the append of its event: a republish waits for that write. */
  private readonly dedup = new Map<string, { expiresAtMs: number; written: Promise<void> }>();
  /** The last sequence handed out; events past `appendedSeq` are still on their way to the log. */
  private lastSeq = 0;
  /** Writes of the event log, one at a time and in order. */
  private writes: Promise<void> = Promise.resolve();
  /**
   * Writes of the durables' state, one at a time, beside the log's: a state file written (4 pool
   * trips) no longer holds up the appends behind it. It only ever names events already appended:
   * an event is delivered, and so acknowledged, after its append.
   */
  private stateWrites: Promise<void> = Promise.resolve();
  /**
   * Lines published while the previous append was in flight, written together by the next one
   * (group commit). Each file operation is a trip through libuv's thread pool, which on a busy
   * node queues behind sharp's decodes and encodes for 0.1–1.5 s: one append per event, in
   * series, made every event wait for all those before it.
   */
  private unwritten: Batch | undefined;
  /**
   * The last sequence synced to the log file. Events up to here are delivered, and the state file
   * records it, so no acknowledgement or delivery ever runs ahead of what a crash keeps.
   */
  private appendedSeq = 0;
  /** Size of the log up to its last whole, synced line: a failed append is cut back to it. */
  private logBytes = 0;
  /** A failed append may have left part of a line past `logBytes`; cut before the next append. */
  private logDamaged = false;
  /** The event log open for appending (one pool trip per append instead of open, write, close); reopened after a rewrite. */
  private logFile: FileHandle | undefined;
  private stateDirty = false;
  private readonly sweepTask: PeriodicTask;
  private readonly ready: Promise<void>;
  private readonly letters: InProcessDeadLetters;

  constructor(options: InProcessEventBusOptions) {
    this.directory = join(options.dataDir, "events");
    this.maxAgeMs = options.maxAgeMs ?? 604_800_000;
    this.deliveryCountMax = options.deliveryCountMax ?? 10;
    this.retryDelayMs = options.retryDelayMs ?? 1000;
    this.dedupWindowMs = options.dedupWindowMs ?? 120_000;
    this.log = options.log;
    this.letters = new InProcessDeadLetters({
      file: join(this.directory, "dead-letters.jsonl"),
      maxAgeMs: options.deadLetterMaxAgeMs ?? DEAD_LETTER_MAX_AGE_MS_DEFAULT,
      log: options.log,
    });
    this.ready = this.load();
    this.sweepTask = startPeriodicTask({ name: "event sweep", intervalMs: Math.min(this.maxAgeMs, 60_000), log: this.log, run: () => this.sweep() });
  }

  async publish(subject: string, data: Uint8Array, options: PublishOptions = {}): Promise<void> {
    assertValidSubject(subject, { wildcards: false });
    await this.ready;
    const now = Date.now();
    if (options.id !== undefined) {
      for (const [id, { expiresAtMs }] of this.dedup) {
        if (expiresAtMs > now) break;
        this.dedup.delete(id);
      }
      // Resolves when the first publish's line is written, and fails with it.
      const earlier = this.dedup.get(options.id);
      if (earlier !== undefined) return earlier.written;
    }
    const event: StoredEvent = { seq: ++this.lastSeq, subject, data, time: now, headers: options.headers };
    this.events.push(event);
    const written = this.append(event, options.id);
    if (options.id !== undefined) this.dedup.set(options.id, { expiresAtMs: now + this.dedupWindowMs, written });
    await written;
    for (const durable of this.durables.values()) this.dispatch(durable);
  }

  subscribe(handler: (event: BusEvent) => Promise<void>, options: EventSubscribeOptions): Subscription {
    assertValidSubject(options.subjectFilter, { wildcards: true });
    assertValidDurableName(options.durableName);
    const subscriber: Subscriber = { handler, draining: false };
    let durable: Durable | undefined;
    const attached = this.ready.then(() => {
      durable = this.durable(options.durableName, options.subjectFilter);
      durable.subscribers.add(subscriber);
      this.dispatch(durable);
    });
    return {
      drain: async () => {
        await attached;
        subscriber.draining = true;
        durable?.subscribers.delete(subscriber);
        await subscriber.current;
      },
    };
  }

  deadLetters(options?: DeadLetterListOptions): Promise<DeadLetter[]> {
    return this.letters.list(options);
  }

  async close(): Promise<void> {
    await this.sweepTask.stop();
    await this.ready;
    const running: Promise<void>[] = [];
    for (const durable of this.durables.values()) {
      for (const subscriber of durable.subscribers) {
        subscriber.draining = true;
        if (subscriber.current) running.push(subscriber.current);
      }
      durable.subscribers.clear();
    }
    await Promise.allSettled(running);
    for (const durable of this.durables.values()) for (const { timer } of durable.pending.values()) clearTimeout(timer);
    this.saveState();
    await Promise.all([this.writes, this.stateWrites]);
    await this.closeLog();
    await this.letters.close();
  }

  private durable(name: string, filter: string): Durable {
    let durable = this.durables.get(name);
    if (durable === undefined) {
      const first = this.events[0]?.seq ?? this.lastSeq + 1;
      durable = { name, filter, ackFloor: first - 1, nextSeq: first, pending: new Map(), retries: [], subscribers: new Set() };
      this.durables.set(name, durable);
      this.saveState();
    } else if (durable.filter !== filter) {
      // Like a JetStream consumer update: the name keeps its position, the filter changes.
      this.log.info({ durableName: name, from: durable.filter, to: filter }, "durable subscription filter changed");
      durable.filter = filter;
      this.saveState();
    }
    return durable;
  }

  /** The retained event with this sequence; a failed append leaves a gap, so the index is only a first guess. */
  private eventAt(seq: number): StoredEvent | undefined {
    const guess = this.events[seq - (this.events[0]?.seq ?? 0)];
    if (guess?.seq === seq) return guess;
    const index = this.indexOf(seq);
    return this.events[index]?.seq === seq ? this.events[index] : undefined;
  }

  /** Index of the first retained event with a sequence at or above `seq` (events are in sequence order). */
  private indexOf(seq: number): number {
    let low = 0;
    let high = this.events.length;
    while (low < high) {
      const middle = (low + high) >>> 1;
      if (this.events[middle]!.seq < seq) low = middle + 1;
      else high = middle;
    }
    return low;
  }

  private next(durable: Durable): { event: StoredEvent; deliveryCount: number } | undefined {
    while (durable.retries.length > 0) {
      const seq = durable.retries.shift()!;
      const pending = durable.pending.get(seq);
      const event = this.eventAt(seq);
      if (pending === undefined) continue;
      if (event === undefined) {
        // Expired while waiting for its retry.
        this.settle(durable, seq);
        continue;
      }
      pending.deliveryCount += 1;
      return { event, deliveryCount: pending.deliveryCount };
    }
    const firstRetained = this.events[0]?.seq ?? this.lastSeq + 1;
    if (durable.nextSeq < firstRetained) durable.nextSeq = firstRetained;
    // Only what the log holds: an event delivered and acknowledged before its batch is written
    // would be lost to a crash, and its sequence handed out again after the restart.
    while (durable.nextSeq <= this.appendedSeq) {
      const event = this.eventAt(durable.nextSeq++);
      if (event === undefined || !subjectMatches(durable.filter, event.subject)) continue;
      durable.pending.set(event.seq, { deliveryCount: 1 });
      return { event, deliveryCount: 1 };
    }
    this.updateFloor(durable);
    return undefined;
  }

  private dispatch(durable: Durable): void {
    for (const subscriber of durable.subscribers) {
      if (subscriber.current !== undefined || subscriber.draining) continue;
      const delivery = this.next(durable);
      if (delivery === undefined) return;
      const { event, deliveryCount } = delivery;
      subscriber.current = (async () => {
        try {
          await subscriber.handler({ subject: event.subject, data: event.data, deliveryCount, headers: event.headers });
          this.settle(durable, event.seq);
        } catch (error) {
          await this.failed(durable, event, deliveryCount, error);
        }
      })().finally(() => {
        subscriber.current = undefined;
        this.dispatch(durable);
      });
    }
  }

  private async failed(durable: Durable, event: StoredEvent, deliveryCount: number, error: unknown): Promise<void> {
    const context = { err: error, subject: event.subject, seq: event.seq, deliveryCount };
    if (deliveryCount >= this.deliveryCountMax) {
      this.log.error({ ...context, deliveryCountMax: this.deliveryCountMax }, "event skipped: deliveryCountMax reached");
      // Kept before it is acknowledged: a crash in between redelivers it, never loses it.
      const letter = { port: "event-bus", id: `${durable.name}:${event.seq}`, subject: event.subject, data: event.data, deliveryCount, reason: "delivery_count_max", durableName: durable.name } as const;
      await this.letters.record(letter).catch((recordError: unknown) => this.log.error({ err: recordError, seq: event.seq }, "event could not be kept as a dead letter"));
      this.settle(durable, event.seq);
      return;
    }
    this.log.warn(context, "event handler failed; redelivering after retryDelayMs");
    const pending = durable.pending.get(event.seq);
    if (pending === undefined) return;
    pending.timer = setTimeout(() => {
      pending.timer = undefined;
      durable.retries.push(event.seq);
      durable.retries.sort((left, right) => left - right);
      this.dispatch(durable);
    }, this.retryDelayMs);
  }

  private settle(durable: Durable, seq: number): void {
    const pending = durable.pending.get(seq);
    clearTimeout(pending?.timer);
    durable.pending.delete(seq);
    this.updateFloor(durable);
  }

  private updateFloor(durable: Durable): void {
    let floor = durable.nextSeq - 1;
    for (const seq of durable.pending.keys()) floor = Math.min(floor, seq - 1);
    if (floor !== durable.ackFloor) {
      durable.ackFloor = floor;
      this.saveState();
    }
  }

  private logPath(): string {
    return join(this.directory, "events.jsonl");
  }

  private statePath(): string {
    return join(this.directory, "durables.json");
  }

  private write(operation: () => Promise<void>): Promise<void> {
    const result = this.writes.then(operation);
    this.writes = result.catch((error: unknown) => this.log.error({ err: error }, "event bus write failed"));
    return result;
  }

  private writeState(operation: () => Promise<void>): void {
    this.stateWrites = this.stateWrites.then(operation).catch((error: unknown) => this.log.error({ err: error }, "event bus state write failed"));
  }

  /** Resolves once the event's line is synced to the log, with every line handed in before it; rejects if that fails. */
  private append(event: StoredEvent, id: string | undefined): Promise<void> {
    const line = storedLine(event);
    const pending = this.unwritten;
    if (pending !== undefined) {
      pending.text += line;
      pending.lastSeq = event.seq;
      if (id !== undefined) pending.ids.push(id);
      return pending.written;
    }
    const batch: Batch = { text: line, firstSeq: event.seq, lastSeq: event.seq, ids: id === undefined ? [] : [id], written: Promise.resolve() };
    batch.written = this.write(async () => {
      // Lines added from here on go to the next batch.
      this.unwritten = undefined;
      const text = Buffer.from(batch.text);
      try {
        if (this.logFile === undefined) {
          await this.cutDamage();
          const created = this.logBytes === 0;
          this.logFile = await open(this.logPath(), "a");
          if (created) await this.syncDirectory();
        }
        await this.logFile.appendFile(text);
        // One sync per batch: without it a resolved publish lasts only until the OS goes down.
        await this.logFile.datasync();
      } catch (error) {
        await this.appendFailed(batch);
        throw error;
      }
      this.logBytes += text.byteLength;
      this.appendedSeq = batch.lastSeq;
    });
    this.unwritten = batch;
    return batch.written;
  }

  /**
   * The batch's publishes reject: its events leave memory undelivered, their dedup ids are
   * forgotten so a retry is written, and the log is cut back to its last whole line, so the next
   * batch does not start on the end of a partial one. Its sequences stay unused.
   */
  private async appendFailed(batch: Batch): Promise<void> {
    const start = this.indexOf(batch.firstSeq);
    let end = start;
    while (end < this.events.length && this.events[end]!.seq <= batch.lastSeq) end += 1;
    this.events.splice(start, end - start);
    for (const id of batch.ids) this.dedup.delete(id);
    this.logDamaged = true;
    await this.closeLog().catch((error: unknown) => this.log.warn({ err: error }, "event log could not be closed after a failed append"));
    // Tried again before the next append if this fails too.
    await this.cutDamage().catch((error: unknown) => this.log.error({ err: error, logBytes: this.logBytes }, "event log could not be cut back after a failed append"));
  }

  /** A new or renamed log's directory entry, synced: without it an OS crash can lose the whole file. */
  private async syncDirectory(): Promise<void> {
    const directory = await open(this.directory, "r");
    try {
      await directory.sync();
    } finally {
      await directory.close();
    }
  }

  private async cutDamage(): Promise<void> {
    if (!this.logDamaged) return;
    await truncate(this.logPath(), this.logBytes);
    this.logDamaged = false;
  }

  private async closeLog(): Promise<void> {
    const file = this.logFile;
    this.logFile = undefined;
    await file?.close();
  }

  /** Coalesces: many acks in a row write the state file once. */
  private saveState(): void {
    if (this.stateDirty) return;
    this.stateDirty = true;
    this.writeState(async () => {
      this.stateDirty = false;
      const state: SavedState = { lastSeq: this.appendedSeq, durables: {} };
      for (const [name, durable] of this.durables) state.durables[name] = { filter: durable.filter, ackFloor: durable.ackFloor };
      const temporary = `${this.statePath()}.tmp`;
      await writeFile(temporary, JSON.stringify(state), { flush: true });
      await rename(temporary, this.statePath());
    });
  }

  private async load(): Promise<void> {
    await mkdir(this.directory, { recursive: true });
    const state = await readFile(this.statePath(), "utf8").then(
      (text) => JSON.parse(text) as SavedState,
      () => ({ lastSeq: 0, durables: {} }) satisfies SavedState,
    );
    const text = await readFile(this.logPath(), "utf8").catch(() => "");
    const oldest = Date.now() - this.maxAgeMs;
    let dropped = 0;
    let previousSeq = 0;
    for (const line of text.split("\n")) {
      if (line === "") continue;
      let parsed: { seq: number; subject: string; time: number; data: string; headers?: Record<string, string> };
      try {
        parsed = JSON.parse(line) as typeof parsed;
      } catch {
        // A line cut short by a crash during append: the publish never resolved, so nobody relied on it.
        dropped += 1;
        continue;
      }
      // A line repeated or out of order (an earlier version's sweep could write a queued batch twice):
      // the first is kept, since positions in memory follow sequences.
      if (parsed.time < oldest || !(parsed.seq > previousSeq)) {
        dropped += 1;
        continue;
      }
      previousSeq = parsed.seq;
      this.events.push({ seq: parsed.seq, subject: parsed.subject, time: parsed.time, data: new Uint8Array(Buffer.from(parsed.data, "base64")), headers: parsed.headers });
    }
    // Never below an ack floor: a durable resumes above it, so a sequence at or below it handed out
    // again would never be delivered (an earlier version could acknowledge events it had not written).
    const ackFloors = Object.values(state.durables).map((saved) => saved.ackFloor);
    this.lastSeq = Math.max(state.lastSeq, this.events.at(-1)?.seq ?? 0, ...ackFloors);
    this.appendedSeq = this.lastSeq;
    for (const [name, saved] of Object.entries(state.durables)) {
      this.durables.set(name, { name, filter: saved.filter, ackFloor: saved.ackFloor, nextSeq: saved.ackFloor + 1, pending: new Map(), retries: [], subscribers: new Set() });
    }
    this.logBytes = Buffer.byteLength(text);
    // A last line without its newline (cut by a crash) would swallow the next append's first.
    if (dropped > 0 || !(text === "" || text.endsWith("\n"))) await this.rewriteLog();
  }

  /** Drops events past `maxAgeMs`, in memory and on disk. */
  private async sweep(): Promise<void> {
    await this.ready;
    const oldest = Date.now() - this.maxAgeMs;
    let count = 0;
    while (count < this.events.length && this.events[count]!.time < oldest) count += 1;
    if (count === 0) return;
    this.events.splice(0, count);
    await this.write(() => this.rewriteLog());
  }

  /**
   * Writes the retained events that are already in the log. Runs in the append queue, so events
   * past `appendedSeq` belong to a batch queued behind it, which appends them to the new file.
   */
  private async rewriteLog(): Promise<void> {
    const text = Buffer.from(this.events.filter((event) => event.seq <= this.appendedSeq).map(storedLine).join(""));
    const temporary = `${this.logPath()}.tmp`;
    await writeFile(temporary, text, { flush: true });
    // The open handle would go on appending to the file the rename replaces.
    await this.closeLog();
    await rename(temporary, this.logPath());
    await this.syncDirectory();
    this.logBytes = text.byteLength;
    this.logDamaged = false;
    this.saveState();
  }
}

/** One event as a line of the log file. */
function storedLine(event: StoredEvent): string {
  return JSON.stringify({ seq: event.seq, subject: event.subject, time: event.time, data: Buffer.from(event.data).toString("base64"), headers: event.headers }) + "\n";
}
