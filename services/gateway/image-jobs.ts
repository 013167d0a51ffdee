import { clone, create, toBinary } from "@bufbuild/protobuf";
import { Code, ConnectError, type Client } from "@connectrpc/connect";
import { createHash, randomUUID } from "node:crypto";
import { setTimeout as sleep } from "node:timers/promises";
import { timestampDate } from "@bufbuild/protobuf/wkt";
import { BillingService, HoldStatus, Operation, Pool, type Account, type Plan } from "../common/gen/cutline/billing/v1/billing_service_pb.ts";
import { ImageOptionsSchema, OutputSize, type ImageOptions } from "../common/gen/cutline/inference/v1/image_options_pb.ts";
import { JobStatus, OrchestratorService, type Job } from "../common/gen/cutline/orchestrator/v1/orchestrator_service_pb.ts";
import { reasonError } from "../common/errors.ts";
import { CachedReads } from "../common/cached-reads.ts";
import { checkedWebhookUrl } from "../common/outbound.ts";
import type { Logger } from "../common/logging.ts";
import type { BlobStore } from "../common/ports/blob-store.ts";
import { longestSideFor, processedSize } from "../common/images/image-size.ts";
import type { LongestSideLimits } from "../common/images/image-limits.ts";
import type { UploadInfo, UploadInspector } from "../common/images/upload.inspector.ts";
import { SNIFF_BYTES, sniffVideoContainer } from "../common/video/video-format.sniffer.ts";
import { imageOptionsProblem, isSmartCrop } from "./domain/image-options.ts";
import { ConcurrencyLimiter, RequestRateLimiter, type LimitName, type LimitOutcome, type RateLimitState } from "./domain/rate-limits.ts";
import type { ApiKeyOwner } from "./store/api-key.store.ts";
import type { MonthlyCallStore } from "./store/monthly-call.store.ts";
import { InProcessRequestRates } from "./store/request-rates.in-process.ts";
import type { RequestRates } from "./store/request-rates.ts";

export type { UploadInfo, UploadInspector };

export interface ImageJobsOptions {
  /** Largest upload accepted, in bytes. */
  uploadBytesMax: number;
  /** IMAGE_BYTES_MAX, which the inspector enforces too: bounds an image fetched from a URL (bytes). */
  imageBytesMax?: number;
  /** How long a synchronous call waits for its job before answering DEADLINE_EXCEEDED. */
  syncTimeoutMs: number;
  /** Hold lifetime; a hold not ended by then is released by billing's sweeper. */
  holdTtlSeconds: number;
  /** The longest sides inference processes at (IMAGE_LONGEST_SIDE_STANDARD / _PRO), so quotes price the processed size. */
  longestSide: LongestSideLimits;
  /** Job reads (GetJob, WatchJob, CancelJob) per account per minute; 0 for no limit. @default 600 requests */
  readRequestsPerMinute?: number;
  /** WatchJob streams open at once per account; 0 for no limit. @default 16 streams */
  watchStreamsMax?: number;
  /** Where the plan's per-minute buckets live (shared by replicas in the mesh). @default this process's memory */
  requestRates?: RequestRates;
  /**
   * How long an account's plan, members and cycle are kept for admitting its calls (ADMISSION_CACHE_MS);
   * `forgetAccount` drops one at once. @default 0: read on every call (a burst shares one read)
   */
  admissionCacheMs?: number;
}

/**
 * An account let in for one upload: authenticated, its per-minute token taken and (for calls
 * that wait for their result) one of its concurrent-request slots held, all before any body
 * byte is read. `release` frees the slot; it is idempotent.
 */
export interface Admission {
  owner: ApiKeyOwner;
  plan: Plan | undefined;
  /**
   * The member every hold of this call is recorded against (usage and the member's monthly
   * cap): the key's own member, or for an account-wide key the account's owner; "" when the
   * account has no members at all.
   */
  memberId?: string;
  release(): void;
  /** The account's per-minute budget after this call's token (X-RateLimit-*); undefined when the plan sets none. */
  rate?: RateLimitState;
}

/** The member a key's calls are recorded against: its own, else (an account-wide key) the account's owner, else "". */
export function usageMemberOf(owner: ApiKeyOwner, account: Pick<Account, "members"> | undefined): string {
  return owner.memberId ?? account?.members.find((member) => member.role === "owner")?.memberId ?? "";
}

/** Longest Idempotency-Key accepted, in characters. */
export const IDEMPOTENCY_KEY_LENGTH_MAX = 255;

/** The idempotency key a caller sent, checked against IDEMPOTENCY_KEY_LENGTH_MAX; "" for none. */
export function checkedIdempotencyKey(key: string | null | undefined): string {
  const value = (key ?? "").trim();
  if (value.length > IDEMPOTENCY_KEY_LENGTH_MAX) {
    throw reasonError(Code.InvalidArgument, "invalid_request", `the Idempotency-Key is ${value.length} characters; at most ${IDEMPOTENCY_KEY_LENGTH_MAX} (IDEMPOTENCY_KEY_LENGTH_MAX)`);
  }
  return value;
}

/**
 * SHA-256 (hex) of what a request asks for: the image, the background image and the options.
 * A replay of an idempotency key must carry the same, or it is refused (idempotency_key_reused).
 */
export function requestFingerprint(image: Uint8Array, options: ImageOptions | undefined): string {
  const hash = createHash("sha256");
  const withoutBackground = options ? clone(ImageOptionsSchema, options) : create(ImageOptionsSchema);
  const background = withoutBackground.backgroundImage;
  withoutBackground.backgroundImage = new Uint8Array();
  // Each part's length first, so no two different requests hash the same concatenation.
  for (const part of [image, background, toBinary(ImageOptionsSchema, withoutBackground)]) {
    hash.update(`${part.byteLength}:`).update(part);
  }
  return hash.digest("hex");
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
  private readonly rates: RequestRates;
  private readonly concurrency = new ConcurrencyLimiter();
  readonly #accounts: CachedReads<string, Account | undefined>;
  private readonly readRates = new RequestRateLimiter({
    limit: "read_requests_per_minute",
    message: (perMinute, seconds) => `job reads (GetJob, WatchJob, CancelJob) are limited to ${perMinute} per minute per account (READ_REQUESTS_PER_MINUTE); retry in ${seconds} s`,
  });
  private readonly watches = new ConcurrencyLimiter({
    limit: "watch_streams",
    message: (max) => `at most ${max} WatchJob streams may be open at once per account (WATCH_STREAMS_MAX); close one, or poll with GetJob`,
    retryAfterMs: 5000,
  });

  constructor(
    private readonly billing: Client<typeof BillingService>,
    private readonly orchestrator: Client<typeof OrchestratorService>,
    private readonly blobs: BlobStore,
    private readonly inspect: UploadInspector,
    private readonly log: Logger,
    private readonly options: ImageJobsOptions,
    /** Counts calls against the plan's monthly quota; without it the quota is not enforced. */
    private readonly monthlyCalls?: MonthlyCallStore,
  ) {
    this.rates = options.requestRates ?? new InProcessRequestRates();
    this.#accounts = new CachedReads({ ttlMs: options.admissionCacheMs ?? 0 });
  }

  /** The account changed (its plan, members, settings): its next call reads it again. */
  forgetAccount(accountId: string): void {
    this.#accounts.forget(accountId);
  }

  /**
   * Lets an authenticated account in for one upload, or throws RESOURCE_EXHAUSTED naming the
   * limit: takes the per-minute token and, with `slot`, a concurrent-request slot. Called on the
   * headers, before the body is read, so a refused client never gets to send (and us to buffer)
   * its upload. Asynchronous submits take no slot: they end as soon as the job is queued, and
   * the concurrency refusal tells clients to use them.
   */
  async admit(owner: ApiKeyOwner, options: { slot: boolean; calls?: number }): Promise<Admission> {
    const account = await this.#accountOf(owner);
    const plan = account?.plan;
    const { outcome: rate, state } = await this.rates.take(owner.accountId, plan?.requestsPerMinute ?? 0);
    // Every refusal from here on says where the per-minute budget stands (X-RateLimit-*), as a success does.
    if (!rate.ok) throw withRateLimitState(limitError(rate), state);
    const slot = options.slot ? this.concurrency.acquire(owner.accountId, plan?.concurrency ?? 0) : ({ ok: true, release: () => {} } as const);
    if (!slot.ok) throw withRateLimitState(limitError(slot), state);
    try {
      await this.#countCalls(owner, account, options.calls ?? 1);
    } catch (error) {
      slot.release();
      throw withRateLimitState(error, state);
    }
    return { owner, plan, memberId: usageMemberOf(owner, account), release: slot.release, rate: state };
  }

  /**
   * Counts the admitted calls against the plan's monthly quota (every admitted call counts,
   * whatever its outcome), or throws RESOURCE_EXHAUSTED monthly_quota_exceeded with Retry-After
   * set to the seconds until the cycle renews.
   */
  async #countCalls(owner: ApiKeyOwner, account: Account | undefined, calls: number): Promise<void> {
    const plan = account?.plan;
    // A quote (calls 0) is no call: it neither counts nor is refused.
    if (calls <= 0 || !this.monthlyCalls || !account || !plan || plan.monthlyCalls <= 0n || !account.cycleStartedAt || !account.nextRenewalAt) return;
    const nowMs = Date.now();
    let cycleStartedAt = timestampDate(account.cycleStartedAt);
    let renewsAt = timestampDate(account.nextRenewalAt);
    // Billing renews cycles in the background: one that is due has already reset the quota.
    if (renewsAt.getTime() <= nowMs) {
      const lengthMs = renewsAt.getTime() - cycleStartedAt.getTime();
      cycleStartedAt = renewsAt;
      renewsAt = new Date(renewsAt.getTime() + lengthMs);
    }
    const callsMax = Number(plan.monthlyCalls);
    if ((await this.monthlyCalls.take(owner.accountId, cycleStartedAt, callsMax, calls)) !== undefined) return;
    const retryAfterSeconds = Math.max(1, Math.ceil((renewsAt.getTime() - nowMs) / 1000));
    const what = calls === 1 ? "" : ` (this request counts ${calls})`;
    throw reasonError(
      Code.ResourceExhausted,
      "monthly_quota_exceeded",
      `the ${plan.name} plan allows ${callsMax} calls per billing cycle and they are used up${what}; the quota resets at ${renewsAt.toISOString()} (in ${retryAfterSeconds} s), or change plan`,
      { metadata: { "retry-after": String(retryAfterSeconds) } },
    );
  }
  /**
   * Synchronous: the job's result, for whichever operation `options.operation` names (remove
   * background unless it says smart crop). The admission (with its slot) is the caller's to release.
   */
  async removeBackground(
    admission: Admission,
    image: Uint8Array,
    options: ImageOptions | undefined,
    idempotencyKey: string,
    signal: AbortSignal,
    extra: { zeroRetention?: boolean } = {},
  ): Promise<ImageResult> {
    const submitted = await this.#submit(admission, image, options, idempotencyKey, { ...extra, synchronous: true });
    // A wait that throws (the caller left, SYNC_TIMEOUT_MS) leaves a job that may still run: its
    // files are the retention sweeper's once it ends.
    const job = await this.waitForEnd(submitted.id, signal);
    if (job.status !== JobStatus.SUCCEEDED) {
      // Zero retention: a job that ended without a result keeps nothing either.
      if (job.zeroRetention) await this.#deleteJobFiles(job.id);
      throw jobFailure(job);
    }
    // A result that cannot be read now stays: it is paid for, and GetJob fetches it.
    const result = await this.resultOf(job);
    // Zero retention (asked for, or the account's): the result is in hand, nothing stays behind.
    if (job.zeroRetention) await this.#deleteJobFiles(job.id);
    return result;
  }

  /** Asynchronous: the queued job; `webhookUrl` is told when it ends. */
  async submit(admission: Admission, image: Uint8Array, options: ImageOptions | undefined, idempotencyKey: string, extra: { webhookUrl?: string; zeroRetention?: boolean } = {}): Promise<Job> {
    return this.#submit(admission, image, options, idempotencyKey, extra);
  }

  /** A failure is logged, not answered: the result was paid for, and the orchestrator's retention sweeper deletes what is left. */
  async #deleteJobFiles(jobId: string): Promise<void> {
    await this.orchestrator.deleteJobFiles({ jobId }).catch((error: unknown) => {
      this.log.warn({ err: error, jobId }, "deleting a zero-retention job's files failed; the retention sweeper deletes them");
    });
  }

  /** A result's format and size, read from its header (the vendor routes' X-Width and X-Height). */
  async measure(image: Uint8Array): Promise<UploadInfo> {
    return this.inspect(image);
  }

  /**
   * One job read (GetJob, WatchJob, CancelJob, a result URL) by the account, or RESOURCE_EXHAUSTED
   * naming READ_REQUESTS_PER_MINUTE. Answers the read budget after it (undefined with no limit).
   */
  takeReadToken(owner: Pick<ApiKeyOwner, "accountId">): RateLimitState | undefined {
    const perMinute = this.options.readRequestsPerMinute ?? 600;
    const now = Date.now();
    const rate = this.readRates.take(owner.accountId, perMinute, now);
    const state = this.readRates.state(owner.accountId, perMinute, now);
    if (!rate.ok) throw withRateLimitState(limitError(rate), state);
    return state;
  }

  /** Holds one of the account's WatchJob streams until the returned release, or refuses naming WATCH_STREAMS_MAX. */
  openWatch(owner: ApiKeyOwner): () => void {
    const slot = this.watches.acquire(owner.accountId, this.options.watchStreamsMax ?? 16);
    if (!slot.ok) throw limitError(slot);
    return slot.release;
  }

  /** Read-only to its callers: kept for ADMISSION_CACHE_MS, and a burst of the account's calls shares one read. */
  async #accountOf(owner: ApiKeyOwner): Promise<Account | undefined> {
    return this.#accounts.get(owner.accountId, async () => (await this.billing.getAccount({ accountId: owner.accountId })).account);
  }

  /**
   * Byte limits, then the inspector's format and pixel checks. The plan's limit is the one a caller
   * meets (named in the refusal, also when it equals the ceiling); UPLOAD_BYTES_MAX is only the
   * ceiling above every plan, which an operator raises to let a larger plan limit through.
   */
  async #inspectUpload(plan: Plan | undefined, image: Uint8Array, name: "image" | "background_image"): Promise<UploadInfo> {
    const the = name === "image" ? "the image" : "the background_image";
    if (image.byteLength === 0) throw reasonError(Code.InvalidArgument, "empty_image", `${the} is empty`);
    // Before the byte limits: a video is refused for what it is, with where to send it, not for its size.
    const container = sniffVideoContainer(image.subarray(0, SNIFF_BYTES));
    if (container !== undefined) {
      throw reasonError(Code.InvalidArgument, "video_not_accepted", `${the} is a ${container.toUpperCase()} video, and this route takes images: post videos to POST /v1/video/matting`);
    }
    const planBytesMax = Number(plan?.maxUploadBytes ?? 0n);
    if (planBytesMax > 0 && image.byteLength > planBytesMax && planBytesMax <= this.options.uploadBytesMax) {
      throw reasonError(
        Code.InvalidArgument,
        "too_many_bytes",
        `${the} is ${image.byteLength} bytes; the ${plan?.name ?? ""} plan's upload limit is ${planBytesMax} bytes`,
      );
    }
    if (image.byteLength > this.options.uploadBytesMax) {
      throw reasonError(
        Code.InvalidArgument,
        "too_many_bytes",
        `${the} is ${image.byteLength} bytes; the upload limit is ${this.options.uploadBytesMax} bytes (UPLOAD_BYTES_MAX)`,
      );
    }
    if (name === "image") return this.inspect(image);
    try {
      return await this.inspect(image);
    } catch (error) {
      // Same code and reason as for the image; the message says which of the two failed.
      const refusal = ConnectError.from(error);
      throw new ConnectError(`background_image: ${refusal.rawMessage}`, refusal.code, refusal.metadata, undefined, refusal.cause ?? error);
    }
  }

  /**
   * What this call would cost, priced exactly as submitting it prices it (POST /v1/quote with the
   * operation's own body): the same option and image checks, nothing held, no job.
   */
  async quote(admission: Admission, image: Uint8Array, options: ImageOptions | undefined): Promise<{ costMillicredits: bigint; priceBookVersion: string }> {
    const { quote } = await this.#priced(admission, image, options);
    return { costMillicredits: quote.costMillicredits, priceBookVersion: quote.priceBookVersion };
  }

  /** The options and image checked (a user error is refused before any hold), then priced at the size inference will process. */
  async #priced(admission: Admission, image: Uint8Array, options: ImageOptions | undefined) {
    const { owner, plan } = admission;
    const optionsProblem = options ? imageOptionsProblem(options) : undefined;
    if (optionsProblem !== undefined) throw reasonError(Code.InvalidArgument, "invalid_option", optionsProblem);
    // The background image gets the same checks as the image: inference decodes it too.
    const info = await this.#inspectUpload(plan, image, "image");
    const background = options?.backgroundImage ?? new Uint8Array();
    const backgroundInfo = background.byteLength > 0 ? await this.#inspectUpload(plan, background, "background_image") : undefined;
    // After the plan's and the service's downscaling.
    const hd = options?.size === OutputSize.HD;
    const longestSideMax = longestSideFor(hd, this.options.longestSide, plan?.longestSidePixels ?? 0);
    const processed = processedSize(info.width, info.height, longestSideMax);
    const smartCrop = isSmartCrop(options);
    const quote = await this.billing.quote({
      accountId: owner.accountId,
      operation: smartCrop ? Operation.SMART_CROP : Operation.REMOVE_BACKGROUND,
      pixels: BigInt(processed.width * processed.height),
      hd,
    });
    return { info, backgroundInfo, quote, longestSideMax, smartCrop };
  }

  async #submit(
    admission: Admission,
    image: Uint8Array,
    options: ImageOptions | undefined,
    idempotencyKey: string,
    extra: { webhookUrl?: string; zeroRetention?: boolean; synchronous?: boolean } = {},
  ): Promise<Job> {
    const { owner, plan } = admission;
    // Refused before any hold; an account whose own retention is 0 is refused by the orchestrator (hold released).
    if (extra.zeroRetention && !extra.synchronous) {
      throw reasonError(Code.InvalidArgument, "zero_retention_async", "retention=none keeps nothing after the response, so an asynchronous job's result could never be fetched; call synchronously, or leave retention to the account's setting");
    }
    // Its scheme and length are checked here, before any hold; its address by the orchestrator, which fetches it.
    const webhookUrl = extra.webhookUrl ? checkedWebhookUrl(extra.webhookUrl) : "";
    // A user error is refused in there, before any hold: bad input never costs credits.
    const { info, backgroundInfo, quote, longestSideMax, smartCrop } = await this.#priced(admission, image, options);
    const background = options?.backgroundImage ?? new Uint8Array();
    // The bytes travel as a blob: jobs rows, queue messages and every watch update carry only its key.
    const jobOptions = options ? clone(ImageOptionsSchema, options) : create(ImageOptionsSchema);
    jobOptions.backgroundImage = new Uint8Array();
    const key = idempotencyKey || randomUUID();
    // Only a key the caller chose can be replayed: a random one needs no fingerprint.
    const fingerprint = idempotencyKey ? requestFingerprint(image, options) : "";
    const memberId = admission.memberId ?? usageMemberOf(owner, undefined);
    const hold = await this.billing.reserve({
      accountId: owner.accountId,
      pool: Pool.API,
      amountMillicredits: quote.costMillicredits,
      // The content is part of the hold's key: a replay with other content gets a hold (and an
      // input blob, keyed by the hold) of its own, which is released when the orchestrator refuses
      // the replay, instead of sharing, and overwriting, the first request's.
      idempotencyKey: fingerprint ? `image:${key}:${fingerprint}` : `image:${key}`,
      holdTtlSeconds: this.options.holdTtlSeconds,
      // Usage is recorded per key and per member on every call, whichever route made it.
      apiKeyId: owner.keyId,
      memberId,
      description: `${smartCrop ? "smart crop" : "remove background"} ${info.width}x${info.height} ${info.format}`,
      // The hold keeps the prices it was quoted under, whatever changes before the capture.
      priceBookVersion: quote.priceBookVersion,
    });
    const inputBlobKey = `inputs/${hold.holdId}`;
    const backgroundImageBlobKey = backgroundInfo ? `${inputBlobKey}/background` : "";
    // A replay whose first attempt was charged has its job: storing the input again would only
    // bring back files the caller may have deleted since.
    if (!(hold.replayed && hold.status === HoldStatus.CAPTURED)) {
      await this.#storeInputs(hold.holdId, [
        { key: inputBlobKey, data: image, format: info.format, what: "the image" },
        ...(backgroundInfo ? [{ key: backgroundImageBlobKey, data: background, format: backgroundInfo.format, what: "the background image" }] : []),
      ]);
    }
    try {
      const submitted = await this.orchestrator.submitJob({
        accountId: owner.accountId,
        idempotencyKey: key,
        inputBlobKey,
        backgroundImageBlobKey,
        options: jobOptions,
        holdId: hold.holdId,
        heldMillicredits: hold.amountMillicredits,
        highPriority: plan?.priorityLane === "high",
        longestSideMax,
        webhookUrl,
        requestFingerprint: fingerprint,
        zeroRetention: extra.zeroRetention ?? false,
        synchronous: extra.synchronous ?? false,
        apiKeyId: owner.keyId,
        memberId,
      });
      if (!submitted.job) throw new Error("orchestrator returned no job");
      return submitted.job;
    } catch (error) {
      // A submit that timed out or lost its connection may still have recorded the job, which
      // then captures or releases this hold itself: releasing it here would let that job's result
      // go out unpaid. Only an answer that says nothing was recorded returns the credits now; in
      // doubt the hold stays, and billing's sweeper expires it if no job claims it.
      if (submitSurelyFailed(error)) {
        await this.#releaseAfterFailedSubmit(hold.holdId);
        // This request's own input (a replayed hold's blob belongs to the attempt that made it).
        if (!hold.replayed) await this.#deleteInputs([inputBlobKey, backgroundImageBlobKey]);
      }
      else this.log.warn({ err: error, holdId: hold.holdId }, "submit outcome unknown: the hold is left to the job or to billing's sweeper");
      throw error;
    }
  }

  /** Stores the input blobs; where one fails, nothing was submitted and the credits go back now rather than when the hold expires. */
  async #storeInputs(holdId: string, inputs: { key: string; data: Uint8Array; format: string; what: string }[]): Promise<void> {
    try {
      for (const input of inputs) {
        await storage(() => this.blobs.put(input.key, input.data, { contentType: `image/${input.format}` }), `storing ${input.what}`);
      }
    } catch (error) {
      await this.#releaseAfterFailedSubmit(holdId);
      throw error;
    }
  }

  async #deleteInputs(keys: string[]): Promise<void> {
    await deleteUnsubmittedInputs(this.blobs, this.log, keys);
  }

  async #releaseAfterFailedSubmit(holdId: string): Promise<void> {
    await releaseAfterFailedSubmit(this.billing, this.log, holdId);
  }

  /** Waits for the job to end; a success returns the result, a failure throws its reason. */
  async waitForResult(jobId: string, signal: AbortSignal): Promise<ImageResult> {
    return this.resultOf(await this.waitForEnd(jobId, signal));
  }

  /** The job once it has ended (succeeded, failed or cancelled), or SYNC_TIMEOUT_MS's sync_timeout. */
  async waitForEnd(jobId: string, signal: AbortSignal): Promise<Job> {
    const timeout = AbortSignal.timeout(this.options.syncTimeoutMs);
    const both = AbortSignal.any([signal, timeout]);
    const jobIdMetadata = { "cutline-job-id": jobId };
    let job: Job | undefined;
    // A watch that breaks (the orchestrator restarting, a dropped connection) is opened again until
    // the sync timeout: the job goes on, and a caller told 4xx or nothing would lose what it pays for.
    while (!job || !TERMINAL.has(job.status)) {
      try {
        for await (const update of this.orchestrator.watchJob({ jobId }, { signal: both })) {
          job = update.job;
          if (job && TERMINAL.has(job.status)) break;
        }
        if (job && TERMINAL.has(job.status)) break;
        this.log.warn({ jobId }, "the job's watch ended before the job did; watching again");
      } catch (error) {
        if (signal.aborted) throw error; // the caller left: nobody to answer
        if (!(error instanceof ConnectError) || !WATCH_BROKEN.has(error.code)) throw error;
        if (timeout.aborted) {
          throw reasonError(
            Code.DeadlineExceeded,
            "sync_timeout",
            `job ${jobId} did not finish within ${this.options.syncTimeoutMs} ms (SYNC_TIMEOUT_MS); it goes on: poll it with JobService.GetJob`,
            { metadata: jobIdMetadata },
          );
        }
        this.log.warn({ err: error, jobId }, "the job's watch broke; watching again");
      }
      await sleep(WATCH_RETRY_DELAY_MS, undefined, { signal: both }).catch(() => undefined);
    }
    return job;
  }

  async resultOf(job: Job): Promise<ImageResult> {
    if (job.status === JobStatus.SUCCEEDED) {
      const blob = await storage(() => this.blobs.get(job.resultBlobKey), `reading the result of job ${job.id} (it is kept and paid for: fetch it with GetJob)`, job.id);
      if (!blob) throw reasonError(Code.NotFound, "result_expired", `the result of job ${job.id} is past its retention and was deleted`);
      return { job, image: blob.data, contentType: job.resultContentType || blob.contentType };
    }
    throw jobFailure(job);
  }
}

export const REASON_BY_LIMIT: Readonly<Record<LimitName, string>> = {
  requests_per_minute: "rate_limited",
  concurrency: "concurrency_limited",
  read_requests_per_minute: "read_rate_limited",
  watch_streams: "watch_streams_limited",
};

/** The X-RateLimit-* headers of a budget's state; none where no limit applies. */
export function rateLimitHeadersOf(state: RateLimitState | undefined): Record<string, string> {
  if (!state) return {};
  return { "x-ratelimit-limit": String(state.limit), "x-ratelimit-remaining": String(state.remaining), "x-ratelimit-reset": String(state.resetAtSeconds) };
}

/** The refusal with the budget's X-RateLimit-* in its metadata: Connect sends them as headers, REST copies them. */
function withRateLimitState(error: unknown, state: RateLimitState | undefined): unknown {
  if (!(error instanceof ConnectError)) return error;
  for (const [name, value] of Object.entries(rateLimitHeadersOf(state))) error.metadata.set(name, value);
  return error;
}

function limitError(refusal: Extract<LimitOutcome, { ok: false }>): ConnectError {
  return reasonError(Code.ResourceExhausted, REASON_BY_LIMIT[refusal.limit], refusal.message, {
    metadata: { "retry-after": String(Math.ceil(refusal.retryAfterMs / 1000)) },
  });
}

/**
 * A blob store fault (NATS restarting, a timeout) is the server's and worth a retry: UNAVAILABLE.
 * Left as it is, a NATS TimeoutError reads as the caller's own cancel (Connect maps errors named
 * TimeoutError to CANCELED, HTTP 499), which clients do not retry.
 */
export async function storage<T>(call: () => Promise<T>, what: string, jobId?: string): Promise<T> {
  try {
    return await call();
  } catch (error) {
    if (error instanceof ConnectError) throw error;
    const metadata: Record<string, string> = jobId ? { "cutline-job-id": jobId } : {};
    throw reasonError(Code.Unavailable, "storage_unavailable", `${what} failed for a moment; retry shortly`, { cause: error, metadata });
  }
}

// Pause before watching a job again after its watch broke.
const WATCH_RETRY_DELAY_MS = 250;
// How a watch ends when the orchestrator goes away under it (a restart resets the HTTP/2 stream).
const WATCH_BROKEN = new Set([Code.Unavailable, Code.Canceled, Code.Aborted, Code.Unknown, Code.Internal, Code.DeadlineExceeded]);

// Codes with which a peer answers before it records anything: the call surely had no effect.
const NOTHING_RECORDED = new Set([Code.InvalidArgument, Code.FailedPrecondition, Code.ResourceExhausted, Code.NotFound, Code.AlreadyExists, Code.PermissionDenied, Code.Unauthenticated, Code.OutOfRange]);

/** Deletes the blobs a request stored for a job that was never recorded; "" keys are skipped. A failure is left to the blobs' TTL. */
export async function deleteUnsubmittedInputs(blobs: BlobStore, log: Logger, keys: string[]): Promise<void> {
  for (const key of keys.filter((candidate) => candidate !== "")) {
    await blobs.delete(key).catch((error: unknown) => log.warn({ err: error, key }, "deleting an unsubmitted input failed; its TTL removes it"));
  }
}

/** Releases the hold of a job that was never recorded; a failure is left to billing's sweeper. */
export async function releaseAfterFailedSubmit(billing: Client<typeof BillingService>, log: Logger, holdId: string): Promise<void> {
  await billing.release({ holdId, reason: "submit_failed" }).catch((releaseError: unknown) => {
    log.error({ err: releaseError, holdId }, "release after a failed submit failed; the sweeper will expire it");
  });
}

export function submitSurelyFailed(error: unknown): boolean {
  return !(error instanceof ConnectError) || NOTHING_RECORDED.has(error.code);
}

// A job's failure answers with the code its reason has wherever it is raised (billing's, inference's,
// the orchestrator's own), so a client sees one code per reason; any other server fault is Internal.
export const JOB_FAILURE_CODES: Readonly<Record<string, Code>> = {
  queue_full: Code.ResourceExhausted,
  model_unavailable: Code.Unavailable,
  insufficient_credits: Code.FailedPrecondition,
  member_cap_reached: Code.FailedPrecondition,
  hold_expired: Code.FailedPrecondition,
  // The orchestrator's JOB_TIMEOUT_MS: the job took too long, nobody's mistake but the server's.
  job_timeout: Code.DeadlineExceeded,
};

/** The error a failed or cancelled job answers with: its reason, its message, one code. */
export function jobFailure(job: Job): ConnectError {
  if (job.status === JobStatus.CANCELLED) return reasonError(Code.Canceled, "cancelled", `job ${job.id} was cancelled`);
  const reason = job.errorReason || "internal";
  // Inference judged whether the input was at fault; the orchestrator carries its verdict.
  const code = job.userError ? Code.InvalidArgument : (JOB_FAILURE_CODES[reason] ?? Code.Internal);
  // A worker's own fault text (a stack's message, a path) stays in the logs and the job row.
  const told = job.userError || reason in JOB_FAILURE_CODES || reason === "job_stuck";
  const message = told && job.errorMessage ? job.errorMessage : `job ${job.id} failed on the server (${reason}); its credits were returned: submit it again`;
  return reasonError(code, reason, message, { metadata: { "cutline-job-id": job.id } });
}
