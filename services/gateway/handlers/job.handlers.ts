import { create } from "@bufbuild/protobuf";
import { Code, ConnectError, type Client, type ServiceImpl } from "@connectrpc/connect";
import { reasonError } from "../../common/errors.ts";
import { JobSchema, JobStatus, type Job, type JobService } from "../../common/gen/cutline/gateway/v1/job_service_pb.ts";
import type { Job as InternalJob, OrchestratorService } from "../../common/gen/cutline/orchestrator/v1/orchestrator_service_pb.ts";
import { authenticate } from "../authentication.ts";
import { checkedIdempotencyKey, type ImageJobs } from "../image-jobs.ts";
import type { ImageUrls } from "../image-urls.ts";
import type { ApiKeyOwner, ApiKeyStore } from "../store/api-key.store.ts";
import type { UploadAdmissions } from "./upload.admission.ts";

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
  });
}

function jobNotFound(jobId: string): ConnectError {
  return reasonError(Code.NotFound, "job_not_found", `job ${jobId} not found`);
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

export function createJobHandlers(
  apiKeys: ApiKeyStore,
  admissions: UploadAdmissions,
  imageJobs: ImageJobs,
  orchestrator: Client<typeof OrchestratorService>,
  imageUrls: ImageUrls,
): ServiceImpl<typeof JobService> {
  // Reads are cheap one by one, but a client polling in a loop (or watching thousands of jobs)
  // costs the orchestrator a query each: they have their own per-account budget.
  async function reader(headers: Headers): Promise<ApiKeyOwner> {
    const owner = await authenticate(apiKeys, headers);
    imageJobs.takeReadToken(owner);
    return owner;
  }

  // Another account's job answers exactly like a missing one, so ids cannot be probed.
  async function ownJob(owner: ApiKeyOwner, jobId: string): Promise<InternalJob> {
    const { job } = await orchestrator.getJob({ jobId }).catch((error: unknown) => {
      if (error instanceof ConnectError && error.code === Code.NotFound) return { job: undefined };
      throw error;
    });
    if (!job || job.accountId !== owner.accountId) throw jobNotFound(jobId);
    return job;
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
      const job = await ownJob(owner, request.jobId);
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
      await ownJob(owner, request.jobId);
      const { job } = await orchestrator.cancelJob({ jobId: request.jobId });
      if (!job) throw reasonError(Code.Internal, "internal", "orchestrator returned no job");
      return { job: publicJob(job) };
    },
  };
}
