import { InferenceError } from "./inference.errors.ts";

export interface BatcherOptions {
  /** Most items in one run (items). */
  batchSizeMax: number;
  /** Longest the oldest queued item waits for a fuller batch while a runner is free (milliseconds). */
  queueDelayMsMax: number;
  /** Items waiting across both lanes; one more is refused with queue_full (items). */
  queueLengthMax: number;
  /** Batches that may run at once, e.g. one per session worker (batches). */
  concurrency: number;
}

/** Items of one group can share a batch, others never (e.g. the model's input size); by default all share. */
export type BatchGroupOf<Item> = (item: Item) => string | number;

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
  highPriority: boolean;
  enqueuedAt: number;
  onDequeued: ((waitMs: number) => void) | undefined;
  resolve(result: Result): void;
  reject(error: unknown): void;
  detach(): void;
}

/**
 * Triton-style dynamic batching. Items wait in two lanes (high priority is always taken
 * first); when a runner is free, a batch starts as soon as `batchSizeMax` items wait or the
 * oldest has waited `queueDelayMsMax`. A full queue refuses new items with queue_full and a
 * retry hint; an item whose signal aborts while queued is removed and rejected as cancelled.
 * Once a batch has started its items run to the end: the model cannot drop one image of a
 * batch, so the caller checks its own signal again when the result comes back. A batch holds
 * only items of the head item's group (`groupOf`): the model takes one tensor shape per run.
 */
export class DynamicBatcher<Item, Result> {
  private readonly lanes: { high: Entry<Item, Result>[]; normal: Entry<Item, Result>[] } = { high: [], normal: [] };
  private running = 0;
  private timer: NodeJS.Timeout | undefined;
  private closedReason: InferenceError | undefined;
  /** Exponential average of a batch's run time, for the retry hint (milliseconds). */
  private runMsAverage = 1000;

  constructor(
    private readonly options: BatcherOptions,
    private readonly run: (items: Item[]) => Promise<Result[]>,
    private readonly observer: BatcherObserver = {},
    private readonly groupOf: BatchGroupOf<Item> = () => 0,
  ) {
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
      const oldest = Math.min(
        this.lanes.high[0]?.enqueuedAt ?? Number.POSITIVE_INFINITY,
        this.lanes.normal[0]?.enqueuedAt ?? Number.POSITIVE_INFINITY,
      );
      const waitedMs = performance.now() - oldest;
      const group = this.groupOf((this.lanes.high[0] ?? this.lanes.normal[0])!.item);
      const fits = (entry: Entry<Item, Result>) => this.groupOf(entry.item) === group;
      const ready = this.lanes.high.filter(fits).length + this.lanes.normal.filter(fits).length;
      if (ready < this.options.batchSizeMax && waitedMs < this.options.queueDelayMsMax) {
        this.timer = setTimeout(() => this.pump(), Math.ceil(this.options.queueDelayMsMax - waitedMs));
        return;
      }
      const batch = this.take(this.lanes.high, fits, this.options.batchSizeMax);
      batch.push(...this.take(this.lanes.normal, fits, this.options.batchSizeMax - batch.length));
      this.observer.depthChanged?.(this.depth);
      void this.runBatch(batch);
    }
  }

  /** Removes and returns the first `count` entries of `lane` that `fits` accepts, in order. */
  private take(lane: Entry<Item, Result>[], fits: (entry: Entry<Item, Result>) => boolean, count: number): Entry<Item, Result>[] {
    const taken: Entry<Item, Result>[] = [];
    for (let index = 0; index < lane.length && taken.length < count; ) {
      if (fits(lane[index]!)) taken.push(...lane.splice(index, 1));
      else index++;
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
