import { create, fromBinary } from "@bufbuild/protobuf";
import { timestampFromDate } from "@bufbuild/protobuf/wkt";
import { Code, ConnectError, type Client, type ServiceImpl } from "@connectrpc/connect";
import type { BillingService } from "../../common/gen/cutline/billing/v1/billing_service_pb.ts";
import { ImageOptionsSchema } from "../../common/gen/cutline/inference/v1/image_options_pb.ts";
import { TaskKind } from "../../common/gen/cutline/inference/v1/task_pb.ts";
import { VideoOptionsSchema } from "../../common/gen/cutline/inference/v1/video_options_pb.ts";
import { reasonError } from "../../common/errors.ts";
import { checkRetentionHours, RETENTION_HOURS_DEFAULT } from "../domain/retention.ts";
import type { AccountSettingsStore } from "../store/account-settings.store.ts";
import {
  AccountSettingsSchema,
  JobSchema,
  JobStatus,
  type Job,
  type OrchestratorService,
} from "../../common/gen/cutline/orchestrator/v1/orchestrator_service_pb.ts";
import type { JobStatus as DomainJobStatus } from "../domain/job-status.ts";
import type { JobLifecycle } from "../job-lifecycle.ts";
import type { JobRow } from "../store/job.store.ts";
import type { Webhooks } from "../webhooks.ts";
import { createWebhookHandlers } from "./webhook.handlers.ts";

const STATUS: Record<DomainJobStatus, JobStatus> = {
  queued: JobStatus.QUEUED,
  running: JobStatus.RUNNING,
  succeeded: JobStatus.SUCCEEDED,
  failed: JobStatus.FAILED,
  cancelled: JobStatus.CANCELLED,
};

export function jobMessage(row: JobRow): Job {
  return create(JobSchema, {
    id: row.id,
    accountId: row.account_id,
    status: STATUS[row.status],
    inputBlobKey: row.input_blob_key,
    resultBlobKey: row.result_blob_key,
    resultContentType: row.result_content_type ?? "",
    options: fromBinary(ImageOptionsSchema, row.options),
    holdId: row.hold_id,
    heldMillicredits: BigInt(row.held_millicredits),
    chargedMillicredits: BigInt(row.charged_millicredits),
    errorReason: row.error_reason ?? "",
    errorMessage: row.error_message ?? "",
    userError: row.user_error,
    highPriority: row.high_priority,
    processingTimeMs: row.processing_time_ms ?? 0,
    queueWaitMs: row.queue_wait_ms ?? 0,
    inferenceMs: row.inference_ms ?? 0,
    createdAt: timestampFromDate(row.created_at),
    updatedAt: timestampFromDate(row.updated_at),
    availableMillicredits: BigInt(row.available_millicredits ?? 0),
    backgroundImageBlobKey: row.background_image_blob_key,
    filesDeleted: row.files_deleted_at !== null,
    filesExpired: row.files_expired,
    zeroRetention: row.retention_seconds === 0,
    resultWidth: row.result_width ?? 0,
    resultHeight: row.result_height ?? 0,
    foreground:
      row.foreground_width === null
        ? undefined
        : { left: row.foreground_left ?? 0, top: row.foreground_top ?? 0, width: row.foreground_width, height: row.foreground_height ?? 0 },
    progress: row.progress,
    kind: row.kind === "video" ? TaskKind.VIDEO : TaskKind.IMAGE,
    videoOptions: row.video_options ? fromBinary(VideoOptionsSchema, row.video_options) : undefined,
    videoDurationMs: row.video_duration_ms,
    framesDone: row.frames_done,
    framesTotal: row.frames_total,
    etaSeconds: row.eta_seconds,
  });
}

function required(value: string, field: string): string {
  if (value === "") throw new ConnectError(`${field} is required`, Code.InvalidArgument);
  return value;
}

/** The account's settings with the defaults filled in. */
async function settingsOf(store: AccountSettingsStore, accountId: string) {
  const stored = await store.get(accountId);
  return create(AccountSettingsSchema, { retentionHours: stored.retentionHours ?? RETENTION_HOURS_DEFAULT });
}

export function createOrchestratorHandlers(
  lifecycle: JobLifecycle,
  webhooks: Webhooks,
  billing: Client<typeof BillingService>,
  settings: AccountSettingsStore,
): ServiceImpl<typeof OrchestratorService> {
  return {
    ...createWebhookHandlers(webhooks, billing),
    async submitJob(request) {
      if (request.heldMillicredits < 0n) throw new ConnectError("held_millicredits must be ≥ 0", Code.InvalidArgument);
      // Kept out of the jobs row and the queue message, which every poll and delivery would carry.
      if ((request.options?.backgroundImage.length ?? 0) > 0) {
        throw new ConnectError("options.background_image must be stored as a blob and passed as background_image_blob_key", Code.InvalidArgument);
      }
      const video = request.kind === TaskKind.VIDEO;
      if (video && !request.videoOptions) throw new ConnectError("a video job needs video_options", Code.InvalidArgument);
      if ((request.videoOptions?.backgroundImage.length ?? 0) > 0) {
        throw new ConnectError("video_options.background_image must be stored as a blob and passed as background_image_blob_key", Code.InvalidArgument);
      }
      const job = await lifecycle.submit({
        accountId: required(request.accountId, "account_id"),
        idempotencyKey: required(request.idempotencyKey, "idempotency_key"),
        inputBlobKey: required(request.inputBlobKey, "input_blob_key"),
        options: request.options,
        holdId: required(request.holdId, "hold_id"),
        heldMillicredits: Number(request.heldMillicredits),
        highPriority: request.highPriority,
        longestSideMax: request.longestSideMax,
        backgroundImageBlobKey: request.backgroundImageBlobKey,
        // Checked before the job is recorded: a bad URL fails the submit, and the caller releases its hold.
        webhookUrl: request.webhookUrl === "" ? "" : webhooks.checkUrl(request.webhookUrl),
        requestFingerprint: request.requestFingerprint,
        zeroRetention: request.zeroRetention,
        synchronous: request.synchronous,
        video: video ? { options: request.videoOptions!, durationMs: request.videoDurationMs } : undefined,
      });
      return { job: jobMessage(job) };
    },
    async getJob(request) {
      return { job: jobMessage(await lifecycle.get(required(request.jobId, "job_id"))) };
    },
    async *watchJob(request, context) {
      for await (const job of lifecycle.watch(required(request.jobId, "job_id"), context.signal)) {
        yield { job: jobMessage(job) };
      }
    },
    async cancelJob(request) {
      return { job: jobMessage(await lifecycle.cancel(required(request.jobId, "job_id"))) };
    },
    async listJobs(request) {
      const page = await lifecycle.list(required(request.accountId, "account_id"), {
        pageSize: request.pageSize,
        pageToken: request.pageToken,
        jobIds: request.jobIds,
      });
      return { jobs: page.jobs.map(jobMessage), nextPageToken: page.nextPageToken };
    },
    async getAccountSettings(request) {
      return { settings: await settingsOf(settings, required(request.accountId, "account_id")) };
    },
    async setAccountSettings(request) {
      const accountId = required(request.accountId, "account_id");
      if (request.retentionHours !== undefined) {
        const refusal = checkRetentionHours(request.retentionHours);
        if (refusal) throw reasonError(Code.InvalidArgument, "invalid_argument", refusal);
        await settings.setRetentionHours(accountId, request.retentionHours);
      }
      return { settings: await settingsOf(settings, accountId) };
    },
    async deleteJobFiles(request) {
      return { job: jobMessage(await lifecycle.deleteFiles(required(request.jobId, "job_id"))) };
    },
  };
}
