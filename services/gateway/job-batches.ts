// Batches: several images in one call, shared by POST /v1/matting/batch and JobService.SubmitBatch.
// Each item is its own job, with its own hold and an idempotency key derived from the batch's key
// and its index: one item's refusal or failure never charges or fails the others, and a replayed
// batch replays each item (charged once) rather than submitting it again.
import { Code, ConnectError } from "@connectrpc/connect";
import { createHash, randomUUID } from "node:crypto";
import { reasonError, reasonOf } from "../common/errors.ts";
import type { ImageOptions } from "../common/gen/cutline/inference/v1/image_options_pb.ts";
import type { Job } from "../common/gen/cutline/orchestrator/v1/orchestrator_service_pb.ts";
import type { Logger } from "../common/logging.ts";
import { requestFingerprint, type Admission, type ImageJobs } from "./image-jobs.ts";
import type { ImageUrls } from "./image-urls.ts";
import type { JobReads } from "./job-reads.ts";
import type { ApiKeyOwner } from "./store/api-key.store.ts";
import type { BatchItemOutcome, BatchRow, BatchStore } from "./store/batch.store.ts";

/** Items of one batch submitted at once: enough to overlap the hold and blob round trips, few enough to leave room for others. */
const ITEM_SUBMITS_CONCURRENT = 4;

/** One image of a batch as the caller gave it: its bytes, or a URL fetched in its item's turn (`field` names it in a refusal). */
export type BatchImage = { bytes: Uint8Array } | { url: string; field: string };

export interface BatchItemView {
  index: number;
  /** The item's job now; undefined when the item was refused. */
  job: Job | undefined;
  /** The refusal that kept the item from becoming a job. */
  error: { code: string; title: string } | undefined;
}

export interface BatchView {
  batch: BatchRow;
  items: BatchItemView[];
}

export interface JobBatchesOptions {
  /** Images per batch call (BATCH_ITEMS_MAX). @default 50 images */
  batchItemsMax: number;
}

export function batchNotFound(batchId: string): ConnectError {
  return reasonError(Code.NotFound, "batch_not_found", `batch ${batchId} not found`);
}

/** The item's refusal as the batch reports it: its stable reason and its message. */
function itemError(error: unknown): { code: string; title: string } {
  const connectError = ConnectError.from(error);
  return { code: reasonOf(connectError) ?? Code[connectError.code].toLowerCase(), title: connectError.rawMessage };
}

/** An item's part of the batch fingerprint: its bytes, or (not fetched yet) its URL, with the options. */
function itemFingerprint(item: BatchImage, options: ImageOptions): string {
  return "bytes" in item ? requestFingerprint(item.bytes, options) : `url:${requestFingerprint(new TextEncoder().encode(item.url), options)}`;
}

/** SHA-256 over every item's fingerprint, in order: the content of the whole call. */
function batchFingerprint(itemFingerprints: string[]): string {
  return createHash("sha256").update(itemFingerprints.join("\n")).digest("hex");
}

async function runInPool(count: number, concurrency: number, work: (index: number) => Promise<void>): Promise<void> {
  let next = 0;
  const worker = async () => {
    while (next < count) await work(next++);
  };
  await Promise.all(Array.from({ length: Math.min(concurrency, count) }, worker));
}

export class JobBatches {
  constructor(
    private readonly imageJobs: ImageJobs,
    private readonly imageUrls: ImageUrls,
    private readonly jobReads: JobReads,
    private readonly batches: BatchStore,
    private readonly log: Logger,
    private readonly options: JobBatchesOptions,
  ) {}

  /** Images per call (BATCH_ITEMS_MAX). */
  get itemsMax(): number {
    return this.options.batchItemsMax;
  }

  /** Refuses a call with no image (`howToAdd` says how to send one) or more than BATCH_ITEMS_MAX, before anything is held. */
  checkItemCount(count: number, howToAdd: string): void {
    if (count === 0) throw reasonError(Code.InvalidArgument, "missing_image", `the batch has no image: ${howToAdd}`);
    if (count > this.options.batchItemsMax) {
      throw reasonError(Code.InvalidArgument, "too_many_items", `the batch has ${count} images; at most ${this.options.batchItemsMax} per call (BATCH_ITEMS_MAX): split it`);
    }
  }

  /**
   * Submits every image as its own job with the same options, or replays the batch first made
   * with `idempotencyKey` (the same images and options, or idempotency_key_reused). A URL is
   * fetched in its item's turn, so at most ITEM_SUBMITS_CONCURRENT images are in memory at once;
   * one that cannot be fetched is that item's error, not the call's.
   */
  async submit(admission: Admission, items: BatchImage[], options: ImageOptions, idempotencyKey: string): Promise<BatchView> {
    this.checkItemCount(items.length, "add one image per item");
    const batchKey = idempotencyKey || randomUUID();
    const fingerprint = batchFingerprint(items.map((item) => itemFingerprint(item, options)));
    const { batch, created } = await this.batches.insertOrGet({
      id: randomUUID(),
      account_id: admission.owner.accountId,
      idempotency_key: batchKey,
      request_fingerprint: fingerprint,
      item_count: items.length,
    });
    if (!created && batch.request_fingerprint !== fingerprint) {
      throw reasonError(
        Code.InvalidArgument,
        "idempotency_key_reused",
        `the idempotency key ${idempotencyKey} was first used for batch ${batch.id} with different images or options; use a new key for a new request`,
      );
    }
    const recorded = created ? [] : await this.batches.items(batch.id);
    if (recorded.length < batch.item_count) {
      // New, or a replay of one cut short: every item again, each idempotent on its derived key.
      await runInPool(items.length, ITEM_SUBMITS_CONCURRENT, async (index) => {
        let outcome: BatchItemOutcome;
        try {
          const item = items[index]!;
          const image = "bytes" in item ? item.bytes : await this.imageUrls.fetch(item.url, { field: item.field, plan: admission.plan });
          const job = await this.imageJobs.submit(admission, image, options, `${batchKey}:${index}`);
          outcome = { jobId: job.id };
        } catch (error) {
          if (!(error instanceof ConnectError)) this.log.error({ err: error, batchId: batch.id, index }, "a batch item failed");
          outcome = { error: itemError(error) };
        }
        await this.batches.recordItem(batch.id, index, outcome);
      });
    }
    return this.#view(batch);
  }

  /** The caller's batch and each item's job now; another account's answers like a missing one. */
  async get(owner: ApiKeyOwner, batchId: string): Promise<BatchView> {
    const batch = await this.batches.get(owner.accountId, batchId);
    if (!batch) throw batchNotFound(batchId);
    return this.#view(batch);
  }

  async #view(batch: BatchRow): Promise<BatchView> {
    const items = await this.batches.items(batch.id);
    const jobs = await this.jobReads.byId(batch.account_id, items.flatMap((item) => (item.job_id ? [item.job_id] : [])));
    return {
      batch,
      items: items.map((item) => ({
        index: item.item_index,
        job: item.job_id ? jobs.get(item.job_id) : undefined,
        error: item.error_code ? { code: item.error_code, title: item.error_title ?? "" } : undefined,
      })),
    };
  }
}
