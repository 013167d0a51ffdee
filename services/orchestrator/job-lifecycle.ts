import { create, fromBinary, toBinary } from "@bufbuild/protobuf";
import { timestampNow } from "@bufbuild/protobuf/wkt";
import { Code, ConnectError, type Client } from "@connectrpc/connect";
import { randomUUID } from "node:crypto";
import { EventEmitter, on } from "node:events";
import { reasonError, reasonOf } from "../common/errors.ts";
import { HoldStatus, Pool, type BillingService } from "../common/gen/cutline/billing/v1/billing_service_pb.ts";
import type { ImageOptions } from "../common/gen/cutline/inference/v1/image_options_pb.ts";
import { ImageOptionsSchema } from "../common/gen/cutline/inference/v1/image_options_pb.ts";
import { countJobEnd, observeQueueWait } from "./orchestrator.metrics.ts";
import { SegmentTaskSchema, TaskEventSchema, TaskKind, type SegmentTask, type TaskEvent } from "../common/gen/cutline/inference/v1/task_pb.ts";
import { VideoOptionsSchema, type VideoOptions } from "../common/gen/cutline/inference/v1/video_options_pb.ts";
import { cancelMarkerKeyOf } from "../common/job-cancel-marker.ts";
import type { Logger } from "../common/logging.ts";
import type { BlobStore } from "../common/ports/blob-store.ts";
import type { BusEvent } from "../common/ports/event-bus.ts";
import { QueueFullError, type WorkQueue } from "../common/ports/work-queue.ts";
import { assertTransition, decideOutcome, isTerminal, type JobStatus } from "./domain/job-status.ts";
import { retentionOf } from "./domain/retention.ts";
import type { AccountSettingsStore } from "./store/account-settings.store.ts";
import type { Kysely } from "kysely";
import type { JobRow, JobStore, JobUpdate, OrchestratorSchema } from "./store/job.store.ts";

export interface SubmitJob {
  accountId: string;
  idempotencyKey: string;
  inputBlobKey: string;
  options: ImageOptions | undefined;
  holdId: string;
  heldMillicredits: number;
  highPriority: boolean;
  /** The plan's longest side in pixels; 0 leaves inference's own limit. */
  longestSideMax: number;
  /** The background image's blob key, or "" for none. The bytes never sit in `options`. */
  backgroundImageBlobKey?: string;
  /** Where the job's end is POSTed; "" or unset: the account's webhook URL, if any. Checked by the caller. */
  webhookUrl?: string;
  /** SHA-256 (hex) of the request's content; a replay of the key with another is refused. "" skips the check. */
  requestFingerprint?: string;
  /** Keep nothing after the response (per request `retention=none`), whatever the account's retention. */
  zeroRetention?: boolean;
  /** The caller waits for the result; zero retention is refused otherwise (zero_retention_async). */
  synchronous?: boolean;
  /** A video job: its options (`options` is then unset) and its probed duration, which scales its time limit. */
  video?: { options: VideoOptions; durationMs: number };
  /** Who the job's usage is recorded against, for a replacement hold; "" or unset: none. */
  apiKeyId?: string;
  memberId?: string;
}

/** Called in the transaction that records a job's end (for a success: after its capture). */
export type JobEndHook = (db: Kysely<OrchestratorSchema>, job: JobRow) => Promise<void>;

/** JOB_TIMEOUT_MS's default: 30 min from submission to an end, queue wait included. */
export const JOB_TIMEOUT_MS_DEFAULT = 1_800_000;

/**
 * VIDEO_JOB_TIMEOUT_MS_PER_SECOND's default: a video job gets JOB_TIMEOUT_MS plus this much per
 * second of video. One minute per second: the seeds run 2–3× slower than real time on GPUs,
 * and a CPU node at 1080p was measured near an hour per minute of video (60×), which this covers.
 */
export const VIDEO_JOB_TIMEOUT_MS_PER_SECOND_DEFAULT = 60_000;

/** A video job's time limit (ms from submission): the base limit plus the per-second allowance for each started second. */
export function videoJobTimeoutMs(durationMs: number, limits: { timeoutMs: number; videoTimeoutMsPerSecond: number }): number {
  return limits.timeoutMs + Math.ceil(durationMs / 1000) * limits.videoTimeoutMsPerSecond;
}

/** Jobs per page of ListJobs: the default and the most. */
export const LIST_JOBS_PAGE_SIZE_DEFAULT = 20;
export const LIST_JOBS_PAGE_SIZE_MAX = 100;

export interface JobLifecycleOptions {
  /** How often WatchJob re-reads a job changed by another orchestrator replica. @default 500 */
  watchPollMs?: number;
  /**
   * A queued or running job with no change for this long is taken for stuck (its task lost in a
   * restart, dead-lettered, or its outcome event lost) and reconciled. Keep it below the hold
   * lifetime (the gateway's HOLD_TTL_SECONDS, 900 s): each re-queue extends the hold, so a job
   * still waiting keeps it. @default 300000 (5 min)
   */
  quietMsMax?: number;
  /** Re-queues of a quiet job before it is failed and its hold released. @default 2 */
  requeuesMax?: number;
  /**
   * A job still queued or running this long after its submission fails with `job_timeout` and
   * its hold is released, however alive its worker says it is (JOB_TIMEOUT_MS); a result that
   * comes later is deleted, never charged. Applied by the reconciler, so a job may run up to one
   * reconcile interval past it. @default 1800000 (30 min)
   */
  timeoutMs?: number;
  /**
   * Added to `timeoutMs` for each started second of a video job (VIDEO_JOB_TIMEOUT_MS_PER_SECOND).
   * @default 60000 (1 min per second of video)
   */
  videoTimeoutMsPerSecond?: number;
  /** Jobs the reconciler looks at per pass. @default 100 */
  reconcileBatchMax?: number;
  /** Where video jobs' tasks go (the ports' videoQueue), apart from the images'. @default the work queue */
  videoQueue?: WorkQueue;
  /** The accounts' retention settings; unset: every account has the default retention. */
  settings?: AccountSettingsStore;
  /** Jobs whose files the retention sweeper deletes per pass. @default 100 */
  expireBatchMax?: number;
  /** Recorded with every job end, in the same transaction (the webhook event). */
  onEnd?: JobEndHook;
}

/** The charge for a result: captured on the job's hold, or on a new one where that hold ended. */
type Charge =
  | { ok: true; holdId: string; chargedMillicredits: number; availableMillicredits: number }
  | { ok: false; reason: string; message: string };

// Billing reasons that mean "this hold can no longer be captured or released by us".
const HOLD_GONE = new Set(["hold_expired", "hold_already_settled"]);
// Billing refusals of a new hold that are the account's state, not a fault to retry.
const RESERVE_REFUSALS = new Set(["insufficient_credits", "member_cap_reached", "account_not_found"]);

/**
 * The job lifecycle: records jobs, enqueues their work, applies the outcomes inference workers
 * publish, and ends every hold exactly once: captured on success, released on failure or cancel.
 */
export class JobLifecycle {
  readonly #changes = new EventEmitter();
  readonly #watchPollMs: number;
  readonly #quietMsMax: number;
  readonly #requeuesMax: number;
  readonly #timeoutMs: number;
  readonly #videoTimeoutMsPerSecond: number;
  readonly #reconcileBatchMax: number;
  readonly #onEnd: JobEndHook | undefined;
  readonly #settings: AccountSettingsStore | undefined;
  readonly #expireBatchMax: number;
  readonly #videoQueue: WorkQueue;

  constructor(
    private readonly jobs: JobStore,
    private readonly workQueue: WorkQueue,
    private readonly blobs: BlobStore,
    private readonly billing: Client<typeof BillingService>,
    private readonly log: Logger,
    options: JobLifecycleOptions = {},
  ) {
    this.#changes.setMaxListeners(0);
    this.#watchPollMs = options.watchPollMs ?? 500;
    this.#quietMsMax = options.quietMsMax ?? 300_000;
    this.#requeuesMax = options.requeuesMax ?? 2;
    this.#timeoutMs = options.timeoutMs ?? JOB_TIMEOUT_MS_DEFAULT;
    this.#videoTimeoutMsPerSecond = options.videoTimeoutMsPerSecond ?? VIDEO_JOB_TIMEOUT_MS_PER_SECOND_DEFAULT;
    this.#reconcileBatchMax = options.reconcileBatchMax ?? 100;
    this.#onEnd = options.onEnd;
    this.#settings = options.settings;
    this.#expireBatchMax = options.expireBatchMax ?? 100;
    this.#videoQueue = options.videoQueue ?? workQueue;
  }

  async submit(request: SubmitJob): Promise<JobRow> {
    const retention = retentionOf({
      zeroRetention: request.zeroRetention ?? false,
      synchronous: request.synchronous ?? false,
      accountRetentionHours: request.zeroRetention ? undefined : (await this.#settings?.get(request.accountId))?.retentionHours,
    });
    if (!retention.ok) {
      // A replay of a job made before the account chose zero retention is that job, not a
      // refusal: the gateway would release the hold the running job still needs.
      const existing = await this.jobs.byIdempotencyKey(request.accountId, request.idempotencyKey);
      if (existing) {
        assertSameRequest(existing, request.requestFingerprint ?? "");
        return existing;
      }
      throw reasonError(Code.InvalidArgument, retention.reason, retention.message);
    }
    const id = randomUUID();
    const { job, created } = await this.jobs.insertOrGet({
      id,
      account_id: request.accountId,
      idempotency_key: request.idempotencyKey,
      input_blob_key: request.inputBlobKey,
      result_blob_key: `results/${id}`,
      options: toBinary(ImageOptionsSchema, request.options ?? create(ImageOptionsSchema)),
      hold_id: request.holdId,
      held_millicredits: request.heldMillicredits,
      high_priority: request.highPriority,
      longest_side_max: request.longestSideMax,
      background_image_blob_key: request.backgroundImageBlobKey ?? "",
      webhook_url: request.webhookUrl ?? "",
      request_fingerprint: request.requestFingerprint ?? "",
      api_key_id: request.apiKeyId || null,
      member_id: request.memberId || null,
      retention_seconds: retention.retentionSeconds,
      ...(request.video
        ? {
            kind: "video" as const,
            video_options: toBinary(VideoOptionsSchema, request.video.options),
            video_duration_ms: request.video.durationMs,
            timeout_ms: videoJobTimeoutMs(request.video.durationMs, { timeoutMs: this.#timeoutMs, videoTimeoutMsPerSecond: this.#videoTimeoutMsPerSecond }),
          }
        : {}),
    });
    if (!created) assertSameRequest(job, request.requestFingerprint ?? "");
    // A replay of a job still queued enqueues again: the first attempt may have crashed between
    // the insert and the enqueue. The job id is the queue's dedup key, so a task that did reach
    // the queue is not doubled (and a late duplicate outcome is ignored by the state machine).
    if (!created && job.status !== "queued") return job;
    try {
      await this.#enqueue(job);
    } catch (error) {
      // The job's message reaches the client: a full queue names its limit; any other queue
      // fault (a broken connection) is logged, not told.
      if (!(error instanceof QueueFullError)) this.log.warn({ err: error, jobId: job.id }, "enqueueing a job failed");
      const message = error instanceof QueueFullError ? `${error.message}; its credits were returned: retry later` : "the work queue is unreachable; its credits were returned: retry later";
      const failed = await this.#fail(job, { error_reason: "queue_full", error_message: message });
      throw reasonError(Code.ResourceExhausted, "queue_full", failed?.error_message ?? "the work queue is full; retry later", { cause: error });
    }
    return job;
  }

  async get(id: string): Promise<JobRow> {
    const job = await this.jobs.get(id);
    if (!job) throw reasonError(Code.NotFound, "job_not_found", `job ${id} not found`);
    return job;
  }

  /** A page of the account's jobs, newest first, and the cursor of the next ("" after the last). */
  async list(accountId: string, options: { pageSize: number; pageToken: string; jobIds: string[] }): Promise<{ jobs: JobRow[]; nextPageToken: string }> {
    if (options.jobIds.length > LIST_JOBS_PAGE_SIZE_MAX) {
      throw reasonError(Code.InvalidArgument, "invalid_argument", `job_ids names ${options.jobIds.length} jobs; at most ${LIST_JOBS_PAGE_SIZE_MAX} (LIST_JOBS_PAGE_SIZE_MAX)`);
    }
    if (options.jobIds.length > 0) return { jobs: await this.jobs.list(accountId, { limit: LIST_JOBS_PAGE_SIZE_MAX, ids: options.jobIds }), nextPageToken: "" };
    if (options.pageSize > LIST_JOBS_PAGE_SIZE_MAX) {
      throw reasonError(Code.InvalidArgument, "invalid_argument", `page_size ${options.pageSize} is above ${LIST_JOBS_PAGE_SIZE_MAX} (LIST_JOBS_PAGE_SIZE_MAX)`);
    }
    const pageSize = options.pageSize || LIST_JOBS_PAGE_SIZE_DEFAULT;
    const beforeNumber = options.pageToken === "" ? undefined : submissionNumberOf(options.pageToken);
    // One more than the page: whether it exists says whether there is a next page.
    const rows = await this.jobs.list(accountId, { limit: pageSize + 1, beforeNumber });
    const page = rows.slice(0, pageSize);
    const last = page.at(-1);
    return { jobs: page, nextPageToken: rows.length > pageSize && last ? pageTokenOf(last.submission_number) : "" };
  }

  /**
   * Deletes a finished job's files (input, background, result) and marks it so. An unfinished
   * job is refused (cancel it first); deleting twice is answered like the first time.
   */
  async deleteFiles(id: string): Promise<JobRow> {
    const job = await this.get(id);
    if (!isTerminal(job.status)) {
      throw reasonError(Code.FailedPrecondition, "job_unfinished", `job ${id} is still ${job.status}; cancel it before deleting its files`);
    }
    return this.#deleteFilesOf(job, { expired: false });
  }

  /**
   * The retention sweeper: deletes the files of ended jobs kept past their retention (zero
   * retention after a short grace, for a synchronous caller that died before deleting them) and
   * marks the jobs, so their result reads as expired. Returns the jobs it acted on.
   */
  async expireFiles(now = new Date()): Promise<number> {
    const due = await this.jobs.filesPastRetention(now, this.#expireBatchMax);
    let expired = 0;
    for (const job of due) {
      try {
        await this.#deleteFilesOf(job, { expired: true });
        expired += 1;
      } catch (error) {
        this.log.error({ err: error, jobId: job.id }, "deleting an expired job's files failed; the next pass retries");
      }
    }
    if (expired > 0) this.log.info({ expired }, "retention sweeper deleted the files of ended jobs");
    return expired;
  }

  async #deleteFilesOf(job: JobRow, options: { expired: boolean }): Promise<JobRow> {
    // The blobs first: a crash in between leaves a job not yet marked, and a retry deletes again.
    for (const key of [job.input_blob_key, job.background_image_blob_key, job.result_blob_key]) {
      if (key !== "") await this.blobs.delete(key);
    }
    // Deleted on request before the sweeper came: it stays "deleted", not "expired".
    const marked = await this.jobs.markFilesDeleted(job.id, job.files_deleted_at ?? new Date(), { expired: options.expired && job.files_deleted_at === null });
    if (!marked) throw new Error(`job ${job.id} was finished but could not be marked`);
    this.#changes.emit(job.id, marked);
    return marked;
  }

  /** The job now, then each change, ending after a terminal state. */
  async *watch(id: string, signal: AbortSignal): AsyncGenerator<JobRow> {
    // Listening before the first read: a change that lands between the two still wakes this watch
    // (else a job that ended in that moment would be seen only at the next poll).
    const local = on(this.#changes, id, { signal });
    try {
      let job = await this.get(id);
      yield job;
      // One wake-up awaited at a time, kept across polls: events.on hands each change to the oldest
      // waiting next(), so one abandoned to a timeout would take the next change for itself and
      // leave this loop to wait out a whole poll interval (500 ms more on every synchronous call).
      let changed = local.next().catch(() => undefined);
      while (!isTerminal(job.status) && !signal.aborted) {
        // A change made in this process wakes us at once, with the row it wrote; another replica's change within the poll interval.
        const timeout = new Promise<"timeout">((resolve) => setTimeout(() => resolve("timeout"), this.#watchPollMs).unref());
        const woke = await Promise.race([changed, timeout]);
        let next: JobRow | undefined;
        if (woke !== "timeout") {
          changed = local.next().catch(() => undefined);
          // The writer's row saves a read when it is newer than what this watch has: a late wake-up of an
          // older write, or two writes within one millisecond (one updated_at), read the job instead.
          const written = woke?.done === false ? (woke.value as (JobRow | undefined)[])[0] : undefined;
          if (written !== undefined && written.updated_at.getTime() > job.updated_at.getTime()) next = written;
        }
        next ??= await this.get(id);
        // Progress too: two writes within one millisecond share an updated_at.
        const moved = next.status !== job.status || next.updated_at.getTime() !== job.updated_at.getTime() || next.progress !== job.progress || next.frames_done !== job.frames_done;
        if (moved) yield next;
        job = next;
      }
    } finally {
      // Also when the watcher stops early: the listener must not outlive the call.
      await local.return?.();
    }
  }

  /**
   * Records the cancel first, then releases: once the job says cancelled no result can claim the
   * hold, and a crash before the release leaves a hold that billing's sweeper expires (no charge).
   * A job an outcome has already claimed is past cancelling and reports where it ends.
   */
  async cancel(id: string): Promise<JobRow> {
    for (let attempt = 0; attempt < 3; attempt += 1) {
      const job = await this.get(id);
      if (isTerminal(job.status)) {
        throw reasonError(Code.FailedPrecondition, "job_finished", `job ${id} is already ${job.status}; only queued or running jobs can be cancelled`);
      }
      if (job.outcome_claim !== null) return job;
      assertTransition(job.status, "cancelled");
      const cancelled = await this.#recordingEnd((jobs) => jobs.cancelUnclaimed(id, job.status, { error_reason: "cancelled", error_message: "cancelled by the client" }));
      if (!cancelled) continue; // started, or claimed, meanwhile: look again
      this.log.info({ jobId: id, from: job.status, to: "cancelled" }, "job status changed");
      countJobEnd(cancelled);
      this.#changes.emit(id, cancelled);
      await this.#release(cancelled, "cancelled");
      await this.#stopWorker(cancelled);
      return cancelled;
    }
    return this.get(id);
  }

  /** Applies one task event; throws on a transient fault so the bus redelivers it. */
  async onTaskEvent(busEvent: BusEvent): Promise<void> {
    const event: TaskEvent = fromBinary(TaskEventSchema, busEvent.data);
    const job = await this.jobs.get(event.jobId);
    if (!job) {
      this.log.warn({ jobId: event.jobId, subject: busEvent.subject }, "event for an unknown job ignored");
      return;
    }
    const outcome = event.outcome;
    if (outcome.case === undefined) return;
    const decision = decideOutcome(job.status, outcome.case);
    if (decision.kind === "ignore") {
      this.log.debug({ jobId: job.id, outcome: outcome.case, why: decision.why }, "task event ignored");
      // A result that arrives after a cancel, a timeout or another failure is nobody's: drop it
      // (a repeated success of a succeeded job is the job's own result, kept).
      if (outcome.case === "succeeded" && job.status !== "succeeded") await this.blobs.delete(outcome.value.resultBlobKey);
      return;
    }
    switch (outcome.case) {
      case "started":
        // A worker is on it: the hold must outlive the work, and the reconciler must not take the job for stuck.
        await this.#extendHold(job);
        // The first claim moves the job from queued; a repeated start (a redelivery) finds it running.
        if ((await this.#update(job, "running")) && job.status === "queued") observeQueueWait(job);
        return;
      case "progress": {
        const fraction = Math.min(1, Math.max(0, outcome.value.fraction));
        const { framesDone, framesTotal, etaSeconds } = outcome.value;
        const frames = framesTotal > 0 ? { frames_done: framesDone, frames_total: framesTotal, eta_seconds: etaSeconds } : {};
        // A stage report comes within seconds of the start (whose event extended the hold): it
        // only moves the job's progress, and one that would not raise it is not written at all.
        // A video's frame report moves its frames too, as long as they advance.
        if (outcome.value.stage !== "") {
          const framesAdvance = framesTotal > 0 && framesDone > job.frames_done;
          if (job.status === "running" && fraction <= job.progress && !framesAdvance) return;
        } else {
          await this.#extendHold(job);
        }
        await this.#update(job, "running", { progress: fraction, ...frames });
        return;
      }
      case "succeeded": {
        const { foreground } = outcome.value;
        const claimed = await this.jobs.claim(job.id, "succeeded", {
          result_content_type: outcome.value.contentType,
          processing_time_ms: outcome.value.processingTimeMs,
          result_width: outcome.value.width,
          result_height: outcome.value.height,
          ...(foreground ? { foreground_left: foreground.left, foreground_top: foreground.top, foreground_width: foreground.width, foreground_height: foreground.height } : {}),
          queue_wait_ms: outcome.value.queueWaitMs,
          inference_ms: outcome.value.inferenceMs,
        });
        if (!claimed) {
          // A failure or a cancel took the job first: the result is nobody's.
          this.log.info({ jobId: job.id }, "result dropped: the job was already ending otherwise");
          await this.blobs.delete(outcome.value.resultBlobKey);
          return;
        }
        await this.#succeed(claimed);
        return;
      }
      case "failed":
        await this.#fail(job, { error_reason: outcome.value.reason, error_message: outcome.value.message, user_error: outcome.value.userError });
        return;
    }
  }

  /**
   * Settles jobs that went quiet: an outcome claimed but not recorded (a crash between the two)
   * is finished; a job whose task was lost (a single node restarted with it in memory, a
   * dead-lettered message, an event dropped) is re-queued with its hold extended, and after
   * `requeuesMax` re-queues failed with its hold released. Returns the jobs it acted on.
   */
  async reconcile(now = new Date(), options: { everyUnfinishedQuiet?: boolean } = {}): Promise<number> {
    const timedOut = await this.#failTimedOut(now);
    // At the start of a process whose queue forgot its tasks, every unfinished job counts as quiet.
    const quietBefore = options.everyUnfinishedQuiet ? now : new Date(now.getTime() - this.#quietMsMax);
    return timedOut + (await this.#settleQuiet(quietBefore, options.everyUnfinishedQuiet === true));
  }

  /** Fails jobs past `timeoutMs` since submission (job_timeout) and releases their holds; a claimed outcome is finished instead. */
  async #failTimedOut(now: Date): Promise<number> {
    const late = await this.jobs.unfinishedPastTimeout(now, this.#timeoutMs, this.#reconcileBatchMax);
    let settled = 0;
    for (const job of late) {
      try {
        if (job.outcome_claim === "succeeded") await this.#succeed(job);
        // A failure already claimed keeps its own reason: finishing it is not a timeout.
        else if (job.outcome_claim === "failed") await this.#fail(job, {});
        else {
          const limit = job.timeout_ms === null ? `${this.#timeoutMs} ms of its submission (JOB_TIMEOUT_MS)` : `${job.timeout_ms} ms of its submission (JOB_TIMEOUT_MS plus VIDEO_JOB_TIMEOUT_MS_PER_SECOND for each second of video)`;
          const failed = await this.#fail(job, {
            error_reason: "job_timeout",
            error_message: `job ${job.id} did not finish within ${limit}; its credits were returned, submit it again`,
          });
          if (failed) await this.#stopWorker(failed);
        }
        settled += 1;
      } catch (error) {
        this.log.error({ err: error, jobId: job.id }, "failing a timed-out job failed; the next pass retries");
      }
    }
    if (settled > 0) this.log.warn({ settled, timeoutMs: this.#timeoutMs }, "reconciler failed timed-out jobs");
    return settled;
  }

  async #settleQuiet(quietBefore: Date, queuedVideos: boolean): Promise<number> {
    const quiet = await this.jobs.quietSince(quietBefore, this.#reconcileBatchMax, { queuedVideos });
    let settled = 0;
    for (const job of quiet) {
      try {
        if (job.outcome_claim === "succeeded") await this.#succeed(job);
        else if (job.outcome_claim === "failed") await this.#fail(job, {});
        else if (job.requeues < this.#requeuesMax) await this.#requeue(job);
        else {
          await this.#fail(job, {
            error_reason: "job_stuck",
            error_message: `job ${job.id} made no progress for ${this.#quietMsMax} ms after ${job.requeues} re-queues; its credits were returned, submit it again`,
          });
        }
        settled += 1;
      } catch (error) {
        this.log.error({ err: error, jobId: job.id }, "reconciling a quiet job failed; the next pass retries");
      }
    }
    if (settled > 0) this.log.warn({ settled }, "reconciler settled quiet jobs");
    return settled;
  }

  /**
   * Tells a worker still at a video job that ended (cancelled, timed out) to stop at once: the
   * worker watches for this marker blob while it runs. Best effort: a marker not written leaves
   * the worker to finish, and its result is deleted uncharged. Image jobs end in seconds and
   * are not watched.
   */
  async #stopWorker(job: JobRow): Promise<void> {
    if (job.kind !== "video") return;
    await this.blobs.put(cancelMarkerKeyOf(job.id), new Uint8Array(), { contentType: "text/plain" }).catch((error: unknown) => {
      this.log.warn({ err: error, jobId: job.id }, "could not tell the worker to stop; its result will be dropped");
    });
  }

  /** The job's queue message, stamped now: it is made just before each enqueue. */
  #taskOf(job: JobRow): SegmentTask {
    if (job.kind === "video") {
      return create(SegmentTaskSchema, {
        enqueuedAt: timestampNow(),
        jobId: job.id,
        kind: TaskKind.VIDEO,
        inputBlobKey: job.input_blob_key,
        resultBlobKey: job.result_blob_key,
        videoOptions: job.video_options ? fromBinary(VideoOptionsSchema, job.video_options) : undefined,
        videoDurationMs: job.video_duration_ms,
        highPriority: job.high_priority,
        longestSideMax: job.longest_side_max,
        backgroundImageBlobKey: job.background_image_blob_key,
      });
    }
    return create(SegmentTaskSchema, {
      enqueuedAt: timestampNow(),
      jobId: job.id,
      inputBlobKey: job.input_blob_key,
      resultBlobKey: job.result_blob_key,
      options: fromBinary(ImageOptionsSchema, job.options),
      highPriority: job.high_priority,
      longestSideMax: job.longest_side_max,
      backgroundImageBlobKey: job.background_image_blob_key,
    });
  }

  /** The job's task, on the video queue for a video, else the work queue. */
  async #enqueue(job: JobRow): Promise<void> {
    const queue = job.kind === "video" ? this.#videoQueue : this.workQueue;
    await queue.enqueue(toBinary(SegmentTaskSchema, this.#taskOf(job)), { id: job.id, priority: job.high_priority ? "high" : "normal" });
  }

  async #requeue(job: JobRow): Promise<void> {
    await this.#extendHold(job);
    await this.#enqueue(job);
    assertTransition(job.status, job.status);
    await this.jobs.transition(job.id, job.status, job.status, { requeues: job.requeues + 1 });
    this.log.warn({ jobId: job.id, requeues: job.requeues + 1 }, "quiet job re-queued");
  }

  /** Charges the claimed result, then records success; where no charge is possible the job fails and its result is deleted. */
  async #succeed(job: JobRow): Promise<void> {
    const charge = await this.#charge(job);
    if (!charge.ok) {
      await this.blobs.delete(job.result_blob_key);
      await this.#finish(job, "failed", { error_reason: charge.reason, error_message: charge.message });
      return;
    }
    await this.#finish(job, "succeeded", {
      progress: 1,
      hold_id: charge.holdId,
      charged_millicredits: charge.chargedMillicredits,
      available_millicredits: charge.availableMillicredits,
    });
  }

  /**
   * No result leaves unpaid: the hold is captured in full, and a hold that ended before the
   * result came (expired in a long queue, or released by a caller that took a submit for
   * failed) is replaced by a new one for the same amount, captured at once. The new hold's key
   * is the job's, so a redelivered event finds it instead of holding twice.
   */
  async #charge(job: JobRow): Promise<Charge> {
    const amountMillicredits = BigInt(job.held_millicredits);
    try {
      const captured = await this.billing.capture({ holdId: job.hold_id, amountMillicredits });
      return { ok: true, holdId: job.hold_id, chargedMillicredits: Number(captured.capturedMillicredits), availableMillicredits: Number(captured.availableMillicredits) };
    } catch (error) {
      if (!(error instanceof ConnectError && HOLD_GONE.has(reasonOf(error) ?? ""))) throw error;
      this.log.warn({ jobId: job.id, holdId: job.hold_id, reason: reasonOf(error) }, "the job's hold ended before its result; charging a new hold");
    }
    let hold;
    try {
      hold = await this.billing.reserve({
        accountId: job.account_id,
        pool: Pool.API,
        amountMillicredits,
        idempotencyKey: `job:${job.id}:replacement-hold`,
        // Usage stays with the key and member that made the call.
        apiKeyId: job.api_key_id ?? "",
        memberId: job.member_id ?? "",
        description: `job ${job.id}: its first hold ${job.hold_id} ended before the result`,
      });
    } catch (error) {
      const reason = error instanceof ConnectError ? reasonOf(error) : undefined;
      if (!reason || !RESERVE_REFUSALS.has(reason)) throw error;
      return { ok: false, reason, message: `the job's credit hold ended before its result was ready, and a new one was refused: ${(error as ConnectError).rawMessage}; nothing was charged` };
    }
    // The replacement ended too (this result came later still): give up rather than chase it.
    const bothEnded: Charge = { ok: false, reason: "hold_expired", message: "the job's credit holds ended before its result was ready; nothing was charged, submit it again" };
    if (hold.status !== HoldStatus.OPEN && hold.status !== HoldStatus.CAPTURED) return bothEnded;
    try {
      const captured = await this.billing.capture({ holdId: hold.holdId, amountMillicredits });
      return { ok: true, holdId: hold.holdId, chargedMillicredits: Number(captured.capturedMillicredits), availableMillicredits: Number(captured.availableMillicredits) };
    } catch (error) {
      if (!(error instanceof ConnectError && HOLD_GONE.has(reasonOf(error) ?? ""))) throw error;
      return bothEnded;
    }
  }

  /** Claims the job for a failure, releases its hold, records the failure; undefined when a result or a cancel came first. */
  async #fail(job: JobRow, update: JobUpdate): Promise<JobRow | undefined> {
    const claimed = await this.jobs.claim(job.id, "failed", update);
    if (!claimed) return undefined;
    // Release before the status: a crash in between leaves the claim, and the redelivered event
    // (or the reconciler) releases again, which billing answers idempotently.
    const available = await this.#release(claimed, claimed.error_reason ?? "failed");
    return this.#finish(claimed, "failed", { available_millicredits: available });
  }

  /**
   * Records the end of a claimed job. A started or progress event may move it from queued to
   * running meanwhile (the claim does not stop those): look again rather than leave it open.
   */
  async #finish(job: JobRow, to: JobStatus, update: JobUpdate): Promise<JobRow | undefined> {
    let current = job;
    for (let attempt = 0; attempt < 3; attempt += 1) {
      const updated = await this.#update(current, to, update);
      if (updated) return updated;
      const fresh = await this.jobs.get(job.id);
      if (!fresh || isTerminal(fresh.status)) return undefined;
      current = fresh;
    }
    // Thrown so the event is redelivered (or the reconciler comes back): the claim keeps the outcome.
    throw new Error(`job ${job.id} kept changing while its ${to} was being recorded`);
  }

  /** Releases the job's hold; one that already ended returns nothing. Answers the available balance. */
  async #release(job: JobRow, reason: string): Promise<number> {
    try {
      const released = await this.billing.release({ holdId: job.hold_id, reason });
      return Number(released.availableMillicredits);
    } catch (error) {
      if (!(error instanceof ConnectError && HOLD_GONE.has(reasonOf(error) ?? ""))) throw error;
      const balance = await this.billing.getBalance({ accountId: job.account_id });
      return Number(balance.availableMillicredits);
    }
  }

  /** Best effort: a hold that could not be extended is replaced when the result comes. */
  async #extendHold(job: JobRow): Promise<void> {
    await this.billing.extendHold({ holdId: job.hold_id }).catch((error: unknown) => {
      this.log.warn({ err: error, jobId: job.id, holdId: job.hold_id }, "could not extend the job's hold");
    });
  }

  async #update(job: JobRow, to: JobStatus, update: JobUpdate = {}): Promise<JobRow | undefined> {
    assertTransition(job.status, to);
    const write = (jobs: JobStore) => jobs.transition(job.id, job.status, to, update);
    const updated = isTerminal(to) ? await this.#recordingEnd(write) : await write(this.jobs);
    if (updated) {
      this.log.info({ jobId: job.id, from: job.status, to }, "job status changed");
      if (isTerminal(to)) countJobEnd(updated);
      this.#changes.emit(job.id, updated);
    }
    return updated;
  }

  /** Writes a job's end and, in the same transaction, what goes with it (the webhook event): both or neither. */
  async #recordingEnd(write: (jobs: JobStore) => Promise<JobRow | undefined>): Promise<JobRow | undefined> {
    const onEnd = this.#onEnd;
    if (!onEnd) return write(this.jobs);
    return this.jobs.inTransaction(async (jobs, db) => {
      const ended = await write(jobs);
      if (ended) await onEnd(db, ended);
      return ended;
    });
  }
}

/** A replay of an idempotency key must carry the content of the request that first used it. */
function assertSameRequest(job: JobRow, fingerprint: string): void {
  if (fingerprint === "" || job.request_fingerprint === "" || job.request_fingerprint === fingerprint) return;
  throw reasonError(
    Code.InvalidArgument,
    "idempotency_key_reused",
    `the idempotency key ${job.idempotency_key} was first used for job ${job.id} with a different image or options; use a new key for a new request`,
  );
}

function pageTokenOf(submissionNumber: string): string {
  return Buffer.from(`jobs:${submissionNumber}`).toString("base64url");
}

function submissionNumberOf(pageToken: string): string {
  const match = /^jobs:(\d{1,19})$/.exec(Buffer.from(pageToken, "base64url").toString());
  if (!match) throw reasonError(Code.InvalidArgument, "invalid_argument", "page_token is not one this service gave out: pass next_page_token as it came");
  return match[1]!;
}
