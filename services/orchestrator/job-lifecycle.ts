import { create, fromBinary, toBinary } from "@bufbuild/protobuf";
import { Code, ConnectError, type Client } from "@connectrpc/connect";
import { randomUUID } from "node:crypto";
import { EventEmitter, on } from "node:events";
import { reasonError, reasonOf } from "../common/errors.ts";
import type { BillingService } from "../common/gen/cutline/billing/v1/billing_service_pb.ts";
import type { ImageOptions } from "../common/gen/cutline/inference/v1/image_options_pb.ts";
import { ImageOptionsSchema } from "../common/gen/cutline/inference/v1/image_options_pb.ts";
import { SegmentTaskSchema, TaskEventSchema, type TaskEvent } from "../common/gen/cutline/inference/v1/task_pb.ts";
import type { Logger } from "../common/logging.ts";
import type { BlobStore } from "../common/ports/blob-store.ts";
import type { BusEvent } from "../common/ports/event-bus.ts";
import type { WorkQueue } from "../common/ports/work-queue.ts";
import { assertTransition, decideOutcome, isTerminal, type JobStatus } from "./domain/job-status.ts";
import type { JobRow, JobStore, JobUpdate } from "./store/job.store.ts";

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
}

export interface JobLifecycleOptions {
  /** How often WatchJob re-reads a job changed by another orchestrator replica. @default 500 */
  watchPollMs?: number;
}

/**
 * The job lifecycle: records jobs, enqueues their work, applies the outcomes inference workers
 * publish, and ends every hold exactly once: captured on success, released on failure or cancel.
 */
export class JobLifecycle {
  readonly #changes = new EventEmitter();
  readonly #watchPollMs: number;

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
  }

  async submit(request: SubmitJob): Promise<JobRow> {
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
    });
    // A replay of a job still queued enqueues again: the first attempt may have crashed between
    // the insert and the enqueue. The job id is the queue's dedup key, so a task that did reach
    // the queue is not doubled (and a late duplicate outcome is ignored by the state machine).
    if (!created && job.status !== "queued") return job;
    const task = create(SegmentTaskSchema, {
      jobId: job.id,
      inputBlobKey: job.input_blob_key,
      resultBlobKey: job.result_blob_key,
      options: fromBinary(ImageOptionsSchema, job.options),
      highPriority: job.high_priority,
      longestSideMax: job.longest_side_max,
    });
    try {
      await this.workQueue.enqueue(toBinary(SegmentTaskSchema, task), { id: job.id, priority: job.high_priority ? "high" : "normal" });
    } catch (error) {
      const failed = await this.#finishWithRelease(job, "failed", {
        error_reason: "queue_full",
        error_message: error instanceof Error ? error.message : String(error),
      });
      throw reasonError(Code.ResourceExhausted, "queue_full", failed?.error_message ?? "the work queue is full; retry later", { cause: error });
    }
    return job;
  }

  async get(id: string): Promise<JobRow> {
    const job = await this.jobs.get(id);
    if (!job) throw reasonError(Code.NotFound, "job_not_found", `job ${id} not found`);
    return job;
  }

  /** The job now, then each change, ending after a terminal state. */
  async *watch(id: string, signal: AbortSignal): AsyncGenerator<JobRow> {
    let job = await this.get(id);
    yield job;
    const local = on(this.#changes, id, { signal });
    try {
      while (!isTerminal(job.status) && !signal.aborted) {
        // A change made in this process wakes us at once; another replica's change within the poll interval.
        const timeout = new Promise<void>((resolve) => setTimeout(resolve, this.#watchPollMs).unref());
        await Promise.race([local.next().catch(() => undefined), timeout]);
        const next = await this.get(id);
        if (next.status !== job.status || next.updated_at.getTime() !== job.updated_at.getTime()) yield next;
        job = next;
      }
    } finally {
      // Also when the watcher stops early: the listener must not outlive the call.
      await local.return?.();
    }
  }

  async cancel(id: string): Promise<JobRow> {
    const job = await this.get(id);
    if (isTerminal(job.status)) {
      throw reasonError(Code.FailedPrecondition, "job_finished", `job ${id} is already ${job.status}; only queued or running jobs can be cancelled`);
    }
    const cancelled = await this.#finishWithRelease(job, "cancelled", { error_reason: "cancelled", error_message: "cancelled by the client" });
    // Lost the race to a worker's outcome: report where the job ended.
    return cancelled ?? this.get(id);
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
      // A result that arrives after a cancel is not the client's any more: drop it.
      if (outcome.case === "succeeded" && job.status === "cancelled") await this.blobs.delete(outcome.value.resultBlobKey);
      return;
    }
    switch (outcome.case) {
      case "started":
        await this.#update(job, "running");
        return;
      case "succeeded": {
        const captured = await this.#settle(job, "capture");
        await this.#update(job, "succeeded", {
          result_content_type: outcome.value.contentType,
          charged_millicredits: captured.chargedMillicredits,
          available_millicredits: captured.availableMillicredits,
          processing_time_ms: outcome.value.processingTimeMs,
        });
        return;
      }
      case "failed":
        await this.#finishWithRelease(job, "failed", { error_reason: outcome.value.reason, error_message: outcome.value.message });
        return;
    }
  }

  async #finishWithRelease(job: JobRow, to: JobStatus, update: JobUpdate): Promise<JobRow | undefined> {
    // Release first: a crash after it leaves the job open and the redelivered event releases
    // again, which billing answers idempotently; the reverse order could strand the hold.
    const released = await this.#settle(job, "release", update.error_reason ?? to);
    return this.#update(job, to, { ...update, available_millicredits: released.availableMillicredits });
  }

  /**
   * Captures (the full quote) or releases the job's hold. A hold that already ended (expired by
   * billing's sweeper) cannot be charged: the job then costs nothing, which is the honest outcome
   * of our own delay. Transient faults throw, so the event is redelivered and settled later.
   */
  async #settle(job: JobRow, action: "capture" | "release", reason = ""): Promise<{ chargedMillicredits: number; availableMillicredits: number }> {
    try {
      if (action === "capture") {
        const captured = await this.billing.capture({ holdId: job.hold_id, amountMillicredits: BigInt(job.held_millicredits) });
        return { chargedMillicredits: Number(captured.capturedMillicredits), availableMillicredits: Number(captured.availableMillicredits) };
      }
      const released = await this.billing.release({ holdId: job.hold_id, reason });
      return { chargedMillicredits: 0, availableMillicredits: Number(released.availableMillicredits) };
    } catch (error) {
      // Expired by the sweeper, or released by a failed duplicate submission: nothing to settle.
      const reason = error instanceof ConnectError ? reasonOf(error) : undefined;
      if (reason !== "hold_expired" && reason !== "hold_already_settled") throw error;
      this.log.warn({ jobId: job.id, holdId: job.hold_id, action, reason }, "the hold ended before the job did; nothing is charged");
      const balance = await this.billing.getBalance({ accountId: job.account_id });
      return { chargedMillicredits: 0, availableMillicredits: Number(balance.availableMillicredits) };
    }
  }

  async #update(job: JobRow, to: JobStatus, update: JobUpdate = {}): Promise<JobRow | undefined> {
    assertTransition(job.status, to);
    const updated = await this.jobs.transition(job.id, job.status, to, update);
    if (updated) {
      this.log.info({ jobId: job.id, from: job.status, to }, "job status changed");
      this.#changes.emit(job.id);
    }
    return updated;
  }
}
