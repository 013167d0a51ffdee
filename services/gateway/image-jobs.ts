import { Code, ConnectError, type Client } from "@connectrpc/connect";
import { randomUUID } from "node:crypto";
import { BillingService, Operation, Pool, type Plan } from "../common/gen/cutline/billing/v1/billing_service_pb.ts";
import { OutputSize, type ImageOptions } from "../common/gen/cutline/inference/v1/image_options_pb.ts";
import { JobStatus, OrchestratorService, type Job } from "../common/gen/cutline/orchestrator/v1/orchestrator_service_pb.ts";
import { reasonError } from "../common/errors.ts";
import type { Logger } from "../common/logging.ts";
import type { BlobStore } from "../common/ports/blob-store.ts";
import { longestSideFor, processedSize } from "../inference/domain/image-size.ts";
import { isUserErrorReason } from "../inference/domain/inference.errors.ts";
import { ConcurrencyLimiter, RequestRateLimiter, type LimitOutcome } from "./domain/rate-limits.ts";
import type { ApiKeyOwner } from "./store/api-key.store.ts";

/** What the gateway learns from an upload's header before any hold is taken. */
export interface UploadInfo {
  format: string;
  width: number;
  height: number;
  pixels: number;
}

/** Sniffs the format and checks limits from the header; throws a user error naming the limit. */
export type UploadInspector = (image: Uint8Array) => Promise<UploadInfo>;

export interface ImageJobsOptions {
  /** Largest upload accepted, in bytes. */
  uploadBytesMax: number;
  /** How long a synchronous call waits for its job before answering DEADLINE_EXCEEDED. */
  syncTimeoutMs: number;
  /** Hold lifetime; a hold not ended by then is released by billing's sweeper. */
  holdTtlSeconds: number;
  /** Inference's longest sides (IMAGE_LONGEST_SIDE_STANDARD / _PRO), so quotes price the processed size. */
  longestSide: { standard: number; pro: number };
}

export interface ImageResult {
  job: Job;
  image: Uint8Array;
  contentType: string;
}

const TERMINAL = new Set([JobStatus.SUCCEEDED, JobStatus.FAILED, JobStatus.CANCELLED]);

/**
 * The gateway's part of every image job: validate before any hold, quote, hold, store the
 * input, submit; and for synchronous calls, wait for the outcome and fetch the result.
 */
export class ImageJobs {
  private readonly rates = new RequestRateLimiter();
  private readonly concurrency = new ConcurrencyLimiter();

  constructor(
    private readonly billing: Client<typeof BillingService>,
    private readonly orchestrator: Client<typeof OrchestratorService>,
    private readonly blobs: BlobStore,
    private readonly inspect: UploadInspector,
    private readonly log: Logger,
    private readonly options: ImageJobsOptions,
  ) {}

  /** Synchronous: the job's result, holding one of the account's concurrent-request slots meanwhile. */
  async removeBackground(
    owner: ApiKeyOwner,
    image: Uint8Array,
    options: ImageOptions | undefined,
    idempotencyKey: string,
    signal: AbortSignal,
  ): Promise<ImageResult> {
    const plan = await this.#planOf(owner);
    const slot = this.concurrency.acquire(owner.accountId, plan?.concurrency ?? 0);
    if (!slot.ok) throw limitError(slot);
    try {
      const job = await this.#submit(owner, plan, image, options, idempotencyKey);
      return await this.waitForResult(job.id, signal);
    } finally {
      slot.release();
    }
  }

  /** Asynchronous: the queued job. */
  async submit(owner: ApiKeyOwner, image: Uint8Array, options: ImageOptions | undefined, idempotencyKey: string): Promise<Job> {
    return this.#submit(owner, await this.#planOf(owner), image, options, idempotencyKey);
  }

  async #planOf(owner: ApiKeyOwner): Promise<Plan | undefined> {
    return (await this.billing.getAccount({ accountId: owner.accountId })).account?.plan;
  }

  async #submit(owner: ApiKeyOwner, plan: Plan | undefined, image: Uint8Array, options: ImageOptions | undefined, idempotencyKey: string): Promise<Job> {
    const rate = this.rates.take(owner.accountId, plan?.requestsPerMinute ?? 0, Date.now());
    if (!rate.ok) throw limitError(rate);
    if (image.byteLength === 0) throw reasonError(Code.InvalidArgument, "empty_image", "the image is empty");
    const planBytesMax = Number(plan?.maxUploadBytes ?? 0n);
    if (planBytesMax > 0 && image.byteLength > planBytesMax && planBytesMax < this.options.uploadBytesMax) {
      throw reasonError(
        Code.InvalidArgument,
        "too_many_bytes",
        `the image is ${image.byteLength} bytes; the ${plan?.name ?? ""} plan's upload limit is ${planBytesMax} bytes`,
      );
    }
    if (image.byteLength > this.options.uploadBytesMax) {
      throw reasonError(
        Code.InvalidArgument,
        "too_many_bytes",
        `the image is ${image.byteLength} bytes; the upload limit is ${this.options.uploadBytesMax} bytes (UPLOAD_BYTES_MAX)`,
      );
    }
    // A user error is rejected here, before any hold: bad input never costs credits.
    const info = await this.inspect(image);
    const key = idempotencyKey || randomUUID();
    // Priced at the size inference will process: after the plan's and the service's downscaling.
    const hd = options?.size === OutputSize.HD;
    const longestSideMax = longestSideFor(hd, this.options.longestSide, plan?.longestSidePixels ?? 0);
    const processed = processedSize(info.width, info.height, longestSideMax);
    const quote = await this.billing.quote({
      accountId: owner.accountId,
      operation: Operation.REMOVE_BACKGROUND,
      pixels: BigInt(processed.width * processed.height),
      hd,
    });
    const hold = await this.billing.reserve({
      accountId: owner.accountId,
      pool: Pool.API,
      amountMillicredits: quote.costMillicredits,
      idempotencyKey: `image:${key}`,
      holdTtlSeconds: this.options.holdTtlSeconds,
      apiKeyId: owner.keyId,
      description: `remove background ${info.width}x${info.height} ${info.format}`,
    });
    try {
      const inputBlobKey = `inputs/${hold.holdId}`;
      await this.blobs.put(inputBlobKey, image, { contentType: `image/${info.format}` });
      const submitted = await this.orchestrator.submitJob({
        accountId: owner.accountId,
        idempotencyKey: key,
        inputBlobKey,
        options,
        holdId: hold.holdId,
        heldMillicredits: hold.amountMillicredits,
        highPriority: plan?.priorityLane === "high",
        longestSideMax,
      });
      if (!submitted.job) throw new Error("orchestrator returned no job");
      return submitted.job;
    } catch (error) {
      // Nothing was queued: return the credits now rather than when the hold expires.
      await this.billing.release({ holdId: hold.holdId, reason: "submit_failed" }).catch((releaseError: unknown) => {
        this.log.error({ err: releaseError, holdId: hold.holdId }, "release after a failed submit failed; the sweeper will expire it");
      });
      throw error;
    }
  }

  /** Waits for the job to end; a success returns the result, a failure throws its reason. */
  async waitForResult(jobId: string, signal: AbortSignal): Promise<ImageResult> {
    const timeout = AbortSignal.timeout(this.options.syncTimeoutMs);
    const both = AbortSignal.any([signal, timeout]);
    let job: Job | undefined;
    try {
      for await (const update of this.orchestrator.watchJob({ jobId }, { signal: both })) {
        job = update.job;
        if (job && TERMINAL.has(job.status)) break;
      }
    } catch (error) {
      if (timeout.aborted) {
        throw reasonError(
          Code.DeadlineExceeded,
          "sync_timeout",
          `job ${jobId} did not finish within ${this.options.syncTimeoutMs} ms (SYNC_TIMEOUT_MS); it goes on: poll it with JobService.GetJob`,
          { metadata: { "cutline-job-id": jobId } },
        );
      }
      throw error;
    }
    if (!job || !TERMINAL.has(job.status)) throw new ConnectError(`job ${jobId} ended without an outcome`, Code.Internal);
    return this.resultOf(job);
  }

  async resultOf(job: Job): Promise<ImageResult> {
    if (job.status === JobStatus.SUCCEEDED) {
      const blob = await this.blobs.get(job.resultBlobKey);
      if (!blob) throw reasonError(Code.NotFound, "result_expired", `the result of job ${job.id} is past its retention and was deleted`);
      return { job, image: blob.data, contentType: job.resultContentType || blob.contentType };
    }
    throw jobFailure(job);
  }
}

function limitError(refusal: Extract<LimitOutcome, { ok: false }>): ConnectError {
  return reasonError(Code.ResourceExhausted, refusal.limit === "concurrency" ? "concurrency_limited" : "rate_limited", refusal.message, {
    metadata: { "retry-after": String(Math.ceil(refusal.retryAfterMs / 1000)) },
  });
}

/** The error a failed or cancelled job answers with: its reason, its message, one code. */
export function jobFailure(job: Job): ConnectError {
  if (job.status === JobStatus.CANCELLED) return reasonError(Code.Canceled, "cancelled", `job ${job.id} was cancelled`);
  const reason = job.errorReason || "internal";
  const code = isUserErrorReason(reason) ? Code.InvalidArgument : reason === "queue_full" ? Code.ResourceExhausted : Code.Internal;
  return reasonError(code, reason, job.errorMessage || `job ${job.id} failed`, { metadata: { "cutline-job-id": job.id } });
}
