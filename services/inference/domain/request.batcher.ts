import { InferenceError } from "./inference.errors.ts";

export interface BatcherOptions {
  /** Most rows in one run (tensor rows): an item counts `rowsOf` rows, one by default. */
  batchSizeMax: number;
  /** Longest the oldest queued item of a group waits for a fuller batch while a runner is free (milliseconds). */
  queueDelayMsMax: number;
  /** Items waiting across both lanes; one more is refused with queue_full (items). */
  queueLengthMax: number;
  /** Batches that may run at once, e.g. one per session worker (batches). */
  concurrency: number;
}

/** Items of one group can share a batch, others never (e.g. the model's input size); by default all share. */
export type BatchGroupOf<Item> = (item: Item) => string | number;

/** How items fill a batch: which may share one, and how many of its rows each takes. */
export interface BatchShape<Item> {
  /** @default every item in one group */
  groupOf?: BatchGroupOf<Item> | undefined;
  /** Rows of the run's tensor the item takes, a positive integer (a mirrored image is two). @default 1 */
  rowsOf?: ((item: Item) => number) | undefined;
}

/**
 * An item that has waited this many queue delays is starved: its group runs next, whatever the
 * lanes hold. Without it a stream of high-priority items of one size would keep a normal item of
 * another size waiting for as long as the stream lasts. At a delay of 0 the oldest item's group
 * always goes first.
 */
export const STARVED_AFTER_DELAYS = 4;

/** Hooks for metrics; all optional. */
export interface BatcherObserver {
  batchStarted?(size: number): void;
  batchFinished?(size: number, runMs: number): void;
  /** An item left the queue for a batch after waiting this long (milliseconds). */
  dequeued?(waitMs: number, highPriority: boolean): void;
  depthChanged?(depth: number): void;
}

/** One item's call: its lane, its cancel, and who is told how long it waited. */
export interface BatcherCall {
  highPriority: boolean;
  signal?: AbortSignal;
  /** Called once the item leaves the queue for a batch, with how long it waited (milliseconds). */
  onDequeued?(waitMs: number): void;
}

interface Entry<Item, Result> {
  item: Item;
  group: string | number;
  rows: number;
  highPriority: boolean;
  enqueuedAt: number;
  onDequeued: ((waitMs: number) => void) | undefined;
  resolve(result: Result): void;
  reject(error: unknown): void;
  detach(): void;
}

/**
 * Triton-style dynamic batching. Items wait in two lanes; a batch holds items of one group
 * (`groupOf`: the model takes one tensor shape per run), high-priority ones first, up to
 * `batchSizeMax` rows. When a runner is free, a group is ready once its items fill a batch or its
 * oldest has waited `queueDelayMsMax`; of the ready groups, one with high-priority items goes
 * first, then the one with most rows. A starved item (STARVED_AFTER_DELAYS) puts its group first.
 * A full queue refuses new items with queue_full and a retry hint; an item whose signal aborts
 * while queued is removed and rejected as cancelled. Once a batch has started its items run to
 * the end: the model cannot drop one image of a batch, so the caller checks its own signal again
 * when the result comes back. An item of more rows than a batch runs alone.
 */
export class DynamicBatcher<Item, Result> {
  private readonly lanes: { high: Entry<Item, Result>[]; normal: Entry<Item, Result>[] } = { high: [], normal: [] };
  private running = 0;
  private timer: NodeJS.Timeout | undefined;
  private closedReason: InferenceError | undefined;
  /** Exponential average of a batch's run time, for the retry hint (milliseconds). */
  private runMsAverage = 1000;
  private readonly groupOf: BatchGroupOf<Item>;
  private readonly rowsOf: (item: Item) => number;

  constructor(
    private readonly options: BatcherOptions,
    private readonly run: (items: Item[]) => Promise<Result[]>,
    private readonly observer: BatcherObserver = {},
    shape: BatchShape<Item> = {},
  ) {
    this.groupOf = shape.groupOf ?? (() => 0);
    this.rowsOf = shape.rowsOf ?? (() => 1);
    for (const [name, value] of Object.entries(options)) {
      if (!Number.isInteger(value) || value < (name === "queueDelayMsMax" ? 0 : 1)) {
        throw new Error(`DynamicBatcher: ${name} must be a positive integer, got ${value}`);
      }
    }
  }

  /** Items waiting, not yet in a batch. */
  get depth(): number {
    return this.lanes.high.length + this.lanes.normal.length;
  }

  /** Items the batcher holds at most: the queue plus the batches running. */
  get capacity(): number {
    return this.options.queueLengthMax + this.options.concurrency * this.options.batchSizeMax;
  }

  submit(item: Item, call: BatcherCall): Promise<Result> {
    if (this.closedReason !== undefined) return Promise.reject(this.closedReason);
    if (call.signal?.aborted) return Promise.reject(cancelled());
    const rows = this.rowsOf(item);
    if (!Number.isInteger(rows) || rows < 1) throw new Error(`DynamicBatcher: an item's rows must be a positive integer, got ${rows}`);
    if (this.depth >= this.options.queueLengthMax) {
      const retryAfterMs = this.retryAfterMs();
      return Promise.reject(
        new InferenceError(
          "queue_full",
          `the inference queue is full (INFERENCE_QUEUE_LENGTH_MAX=${this.options.queueLengthMax} images waiting); retry after ${retryAfterMs} ms`,
          { retryAfterMs },
        ),
      );
    }
    return new Promise<Result>((resolve, reject) => {
      const lane = call.highPriority ? this.lanes.high : this.lanes.normal;
      const onAbort = () => {
        const position = lane.indexOf(entry);
        if (position >= 0) {
          lane.splice(position, 1);
          this.observer.depthChanged?.(this.depth);
        }
        reject(cancelled());
      };
      const entry: Entry<Item, Result> = {
        item,
        group: this.groupOf(item),
        rows,
        highPriority: call.highPriority,
        enqueuedAt: performance.now(),
        onDequeued: call.onDequeued,
        resolve,
        reject,
        detach: () => call.signal?.removeEventListener("abort", onAbort),
      };
      call.signal?.addEventListener("abort", onAbort, { once: true });
      lane.push(entry);
      this.observer.depthChanged?.(this.depth);
      this.pump();
    });
  }

  /** Refuses new items and fails the queued ones with `reason`; running batches finish. */
  close(reason = new InferenceError("model_unavailable", "the inference engine is shutting down")): void {
    this.closedReason = reason;
    clearTimeout(this.timer);
    for (const entry of [...this.lanes.high.splice(0), ...this.lanes.normal.splice(0)]) {
      entry.detach();
      entry.reject(reason);
    }
    this.observer.depthChanged?.(0);
  }

  private retryAfterMs(): number {
    const batchesAhead = Math.ceil(this.depth / (this.options.batchSizeMax * this.options.concurrency)) + 1;
    return Math.max(100, Math.round(batchesAhead * this.runMsAverage));
  }

  private pump(): void {
    clearTimeout(this.timer);
    this.timer = undefined;
    while (this.running < this.options.concurrency && this.depth > 0) {
      const next = this.nextGroup(performance.now());
      if ("waitMs" in next) {
        this.timer = setTimeout(() => this.pump(), Math.ceil(next.waitMs));
        return;
      }
      const batch = this.take(next.group);
      this.observer.depthChanged?.(this.depth);
      void this.runBatch(batch);
    }
  }

  /** The group whose batch runs now, or how long until one is ready (milliseconds). */
  private nextGroup(now: number): { group: string | number } | { waitMs: number } {
    const { high, normal } = this.lanes;
    const oldest = high[0] === undefined || (normal[0] !== undefined && normal[0].enqueuedAt < high[0].enqueuedAt) ? normal[0]! : high[0];
    if (now - oldest.enqueuedAt >= STARVED_AFTER_DELAYS * this.options.queueDelayMsMax) return { group: oldest.group };
    const queued = new Map<string | number, { rows: number; highPriority: boolean; oldestAt: number }>();
    for (const entry of [...high, ...normal]) {
      const group = queued.get(entry.group);
      if (group === undefined) queued.set(entry.group, { rows: entry.rows, highPriority: entry.highPriority, oldestAt: entry.enqueuedAt });
      else {
        group.rows += entry.rows;
        group.oldestAt = Math.min(group.oldestAt, entry.enqueuedAt);
      }
    }
    let chosen: { group: string | number; rows: number; highPriority: boolean } | undefined;
    let waitMs = Number.POSITIVE_INFINITY;
    for (const [group, { rows, highPriority, oldestAt }] of queued) {
      const waitedMs = now - oldestAt;
      if (rows < this.options.batchSizeMax && waitedMs < this.options.queueDelayMsMax) {
        waitMs = Math.min(waitMs, this.options.queueDelayMsMax - waitedMs);
      } else if (chosen === undefined || (highPriority && !chosen.highPriority) || (highPriority === chosen.highPriority && rows > chosen.rows)) {
        chosen = { group, rows, highPriority };
      }
    }
    return chosen === undefined ? { waitMs } : { group: chosen.group };
  }

  /**
   * Removes and returns the entries of `group` for one batch: the high lane's, then the normal
   * lane's, in order, until the next would pass `batchSizeMax` rows. Stopping there rather than
   * skipping to a smaller item keeps each lane in order, at the cost of at most one row.
   */
  private take(group: string | number): Entry<Item, Result>[] {
    const taken: Entry<Item, Result>[] = [];
    let rows = 0;
    for (const lane of [this.lanes.high, this.lanes.normal]) {
      for (let index = 0; index < lane.length; ) {
        const entry = lane[index]!;
        if (entry.group !== group) {
          index++;
          continue;
        }
        if (taken.length > 0 && rows + entry.rows > this.options.batchSizeMax) return taken;
        taken.push(...lane.splice(index, 1));
        rows += entry.rows;
        if (rows >= this.options.batchSizeMax) return taken;
      }
    }
    return taken;
  }

  private async runBatch(batch: Entry<Item, Result>[]): Promise<void> {
    this.running++;
    const started = performance.now();
    for (const entry of batch) {
      entry.detach();
      entry.onDequeued?.(started - entry.enqueuedAt);
      this.observer.dequeued?.(started - entry.enqueuedAt, entry.highPriority);
    }
    this.observer.batchStarted?.(batch.length);
    try {
      const results = await this.run(batch.map((entry) => entry.item));
      if (results.length !== batch.length) throw new Error(`batch of ${batch.length} returned ${results.length} results`);
      batch.forEach((entry, index) => entry.resolve(results[index]!));
    } catch (error) {
      for (const entry of batch) entry.reject(error);
    } finally {
      const runMs = performance.now() - started;
      this.runMsAverage = 0.8 * this.runMsAverage + 0.2 * runMs;
      this.observer.batchFinished?.(batch.length, runMs);
      this.running--;
      if (this.closedReason === undefined) this.pump();
    }
  }
}

function cancelled(): InferenceError {
  return new InferenceError("cancelled", "the request was cancelled before the model ran");
}
