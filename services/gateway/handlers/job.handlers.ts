import { create } from "@bufbuild/protobuf";
import { timestampFromDate } from "@bufbuild/protobuf/wkt";
import { Code, ConnectError, type Client, type ServiceImpl } from "@connectrpc/connect";
import { reasonError } from "../../common/errors.ts";
import { BatchItemSchema, BatchSchema, JobSchema, JobStatus, type Batch, type Job, type JobService } from "../../common/gen/cutline/gateway/v1/job_service_pb.ts";
import type { Job as InternalJob, OrchestratorService } from "../../common/gen/cutline/orchestrator/v1/orchestrator_service_pb.ts";
import { authenticate } from "../authentication.ts";
import { checkedIdempotencyKey, type ImageJobs } from "../image-jobs.ts";
import type { ImageUrls } from "../image-urls.ts";
import type { BatchView, JobBatches } from "../job-batches.ts";
import { checkedPageSize, jobNotFound, type JobReads } from "../job-reads.ts";
import type { ApiKeyOwner, ApiKeyStore } from "../store/api-key.store.ts";
import type { UploadAdmissions } from "./upload.admission.ts";
import { ImageOptionsSchema } from "../../common/gen/cutline/inference/v1/image_options_pb.ts";

/** The public view of a job: no hold ids or blob keys. The status enums share their numbers. */
export function publicJob(job: InternalJob): Job {
  return create(JobSchema, {
    id: job.id,
    status: job.status as number as JobStatus,
    creditsHeldMillicredits: job.heldMillicredits,
    creditsChargedMillicredits: job.chargedMillicredits,
    errorReason: job.errorReason,
    errorMessage: job.errorMessage,
    processingTimeMs: job.processingTimeMs,
    createdAt: job.createdAt,
    updatedAt: job.updatedAt,
    resultContentType: job.resultContentType,
    progress: job.progress,
    framesDone: job.framesDone,
    framesTotal: job.framesTotal,
    etaSeconds: job.etaSeconds,
  });
}

/** The public view of a batch: each item's job now, or its refusal. */
export function publicBatch(view: BatchView): Batch {
  return create(BatchSchema, {
    id: view.batch.id,
    createdAt: timestampFromDate(view.batch.created_at),
    items: view.items.map((item) =>
      create(BatchItemSchema, {
        index: item.index,
        job: item.job ? publicJob(item.job) : undefined,
        errorReason: item.error?.code ?? "",
        errorMessage: item.error?.title ?? "",
      }),
    ),
  });
}

// A missing job answers like another account's; other failures (an unreachable orchestrator) pass.
async function* withNotFoundAs<T>(updates: AsyncIterable<T>, jobId: string): AsyncGenerator<T> {
  try {
    yield* updates;
  } catch (error) {
    if (error instanceof ConnectError && error.code === Code.NotFound) throw jobNotFound(jobId);
    throw error;
  }
}

export interface JobHandlerDependencies {
  apiKeys: ApiKeyStore;
  admissions: UploadAdmissions;
  imageJobs: ImageJobs;
  orchestrator: Client<typeof OrchestratorService>;
  jobReads: JobReads;
  jobBatches: JobBatches;
  /** Fetches Submit's image_url and background_image_url through the outbound guard. */
  imageUrls: ImageUrls;
}

export function createJobHandlers(deps: JobHandlerDependencies): ServiceImpl<typeof JobService> {
  const { admissions, imageJobs, orchestrator, jobReads, jobBatches, imageUrls } = deps;
  // Reads are cheap one by one, but a client polling in a loop (or watching thousands of jobs)
  // costs the orchestrator a query each: they have their own per-account budget.
  async function reader(headers: Headers): Promise<ApiKeyOwner> {
    const owner = await authenticate(deps.apiKeys, headers);
    imageJobs.takeReadToken(owner);
    return owner;
  }

  return {
    async submit(request, context) {
      const idempotencyKey = checkedIdempotencyKey(request.idempotencyKey || context.requestHeader.get("idempotency-key"));
      const admission = await admissions.take(context.requestHeader, { slot: false });
      try {
        const input = await imageUrls.resolveTyped(request, { plan: admission.plan, signal: context.signal });
        return { job: publicJob(await imageJobs.submit(admission, input.image, input.options, idempotencyKey, { webhookUrl: request.webhookUrl })) };
      } finally {
        admission.release();
      }
    },
    async getJob(request, context) {
      const owner = await reader(context.requestHeader);
      const job = await jobReads.ownJob(owner, request.jobId);
      if (!request.includeResult || job.status !== JobStatus.SUCCEEDED) return { job: publicJob(job) };
      const result = await imageJobs.resultOf(job);
      return { job: publicJob(job), result: result.image };
    },
    async *watchJob(request, context) {
      const owner = await reader(context.requestHeader);
      const release = imageJobs.openWatch(owner);
      try {
        // The stream's first update is the job now: ownership is checked on it rather than with
        // a GetJob before the stream, which would read the same row twice per watch.
        let first = true;
        const updates = orchestrator.watchJob({ jobId: request.jobId }, { signal: context.signal });
        for await (const update of withNotFoundAs(updates, request.jobId)) {
          if (first && update.job?.accountId !== owner.accountId) throw jobNotFound(request.jobId);
          first = false;
          if (update.job) yield { job: publicJob(update.job) };
        }
      } finally {
        release();
      }
    },
    async cancelJob(request, context) {
      const owner = await reader(context.requestHeader);
      await jobReads.ownJob(owner, request.jobId);
      const { job } = await orchestrator.cancelJob({ jobId: request.jobId });
      if (!job) throw reasonError(Code.Internal, "internal", "orchestrator returned no job");
      return { job: publicJob(job) };
    },
    async listJobs(request, context) {
      const owner = await reader(context.requestHeader);
      const page = await jobReads.list(owner, { pageSize: checkedPageSize(request.pageSize, "page_size"), pageToken: request.pageToken });
      return { jobs: page.jobs.map(publicJob), nextPageToken: page.nextPageToken };
    },
    async submitBatch(request, context) {
      const idempotencyKey = checkedIdempotencyKey(request.idempotencyKey || context.requestHeader.get("idempotency-key"));
      // Let in on its headers by the server's admit hook, as REST is: one request of the plan's per
      // minute; the items are asynchronous and take no concurrency slot.
      const admission = await admissions.take(context.requestHeader, { slot: false });
      try {
        const options = request.options ?? create(ImageOptionsSchema);
        return { batch: publicBatch(await jobBatches.submit(admission, request.images.map((bytes) => ({ bytes })), options, idempotencyKey)) };
      } finally {
        admission.release();
      }
    },
    async getBatch(request, context) {
      const owner = await reader(context.requestHeader);
      if (request.batchId === "") throw reasonError(Code.InvalidArgument, "invalid_request", "batch_id is required");
      return { batch: publicBatch(await jobBatches.get(owner, request.batchId)) };
    },
  };
}
