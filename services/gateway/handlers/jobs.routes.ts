// `GET /v1/jobs`, `GET /v1/jobs/{id}`, `DELETE /v1/jobs/{id}`: the caller's jobs as JSON.
import { timestampDate } from "@bufbuild/protobuf/wkt";
import { Code, ConnectError } from "@connectrpc/connect";
import { reasonError, reasonOf } from "../../common/errors.ts";
import { JobStatus, type Job } from "../../common/gen/cutline/orchestrator/v1/orchestrator_service_pb.ts";
import type { HttpRequest, HttpRoutes } from "../../common/server.ts";
import { authenticate } from "../authentication.ts";
import { jobFailure } from "../image-jobs.ts";
import type { ResultLinks } from "../result-links.ts";
import type { ApiKeyOwner } from "../store/api-key.store.ts";
import { headersOf } from "./upload.admission.ts";
import { creditsNumber } from "../../common/credits.ts";
import { sendError, sendJson, sendMethodNotAllowed, urlOf, type RestDependencies } from "./rest-support.ts";

/** Jobs per page of `GET /v1/jobs`: the default and the most (the orchestrator's LIST_JOBS_PAGE_SIZE_MAX). */
const JOBS_PAGE_LIMIT_DEFAULT = 20;
const JOBS_PAGE_LIMIT_MAX = 100;

const STATUS_NAMES: Readonly<Record<JobStatus, string>> = {
  [JobStatus.UNSPECIFIED]: "queued",
  [JobStatus.QUEUED]: "queued",
  [JobStatus.RUNNING]: "running",
  [JobStatus.SUCCEEDED]: "succeeded",
  [JobStatus.FAILED]: "failed",
  [JobStatus.CANCELLED]: "cancelled",
};

// One image has no finer progress than its status: waiting, being worked on, or done.
const PROGRESS: Readonly<Record<JobStatus, number>> = {
  [JobStatus.UNSPECIFIED]: 0,
  [JobStatus.QUEUED]: 0,
  [JobStatus.RUNNING]: 0.5,
  [JobStatus.SUCCEEDED]: 1,
  [JobStatus.FAILED]: 1,
  [JobStatus.CANCELLED]: 1,
};

export interface JobJson {
  id: string;
  status: string;
  progress: number;
  credits_charged: number;
  result_url: string | null;
  error: { code: string; title: string } | null;
  created_at: string | null;
  /** The worker's figures once the job succeeded (as the X-*-Time-Ms headers), else null. */
  processing_time_ms: number | null;
  queue_time_ms: number | null;
  inference_time_ms: number | null;
}

/** The public JSON of a job; `result_url` is signed now, for a succeeded job whose files are kept. */
export function jobJson(job: Job, links: ResultLinks, request: HttpRequest): JobJson {
  const failed = job.status === JobStatus.FAILED || job.status === JobStatus.CANCELLED;
  const failure = failed ? jobFailure(job) : undefined;
  const hasResult = job.status === JobStatus.SUCCEEDED && !job.filesDeleted;
  return {
    id: job.id,
    status: STATUS_NAMES[job.status],
    progress: PROGRESS[job.status],
    credits_charged: creditsNumber(job.chargedMillicredits),
    result_url: hasResult ? links.signer(request.headers.host).urlFor(job.id) : null,
    error: failure ? { code: reasonOf(failure) ?? "internal", title: failure.rawMessage } : null,
    created_at: job.createdAt ? timestampDate(job.createdAt).toISOString() : null,
    processing_time_ms: job.status === JobStatus.SUCCEEDED ? job.processingTimeMs : null,
    queue_time_ms: job.status === JobStatus.SUCCEEDED ? job.queueWaitMs : null,
    inference_time_ms: job.status === JobStatus.SUCCEEDED ? job.inferenceMs : null,
  };
}

/**
 * Where a succeeded job's time went, as its worker reported it: the wait from the enqueue to the
 * model, the engine's own work, and the worker's whole time on the job. What a client measures
 * beyond queue and inference time is the system's own overhead.
 */
export function timingHeaders(job: Job): Record<string, string> {
  return {
    "x-processing-time-ms": String(job.processingTimeMs),
    "x-queue-time-ms": String(job.queueWaitMs),
    "x-inference-time-ms": String(job.inferenceMs),
  };
}

export function jobNotFound(jobId: string): ConnectError {
  return reasonError(Code.NotFound, "job_not_found", `job ${jobId} not found`);
}

/** The caller's job; another account's answers exactly like a missing one, so ids cannot be probed. */
export async function ownJob(deps: RestDependencies, owner: ApiKeyOwner, jobId: string): Promise<Job> {
  const { job } = await deps.orchestrator.getJob({ jobId }).catch((error: unknown) => {
    if (error instanceof ConnectError && error.code === Code.NotFound) return { job: undefined };
    throw error;
  });
  if (!job || job.accountId !== owner.accountId) throw jobNotFound(jobId);
  return job;
}

function pageLimitOf(raw: string | null): number {
  if (raw === null || raw === "") return JOBS_PAGE_LIMIT_DEFAULT;
  const limit = Number(raw);
  if (!Number.isInteger(limit) || limit < 1 || limit > JOBS_PAGE_LIMIT_MAX) {
    throw reasonError(Code.InvalidArgument, "invalid_request", `limit must be a whole number from 1 to ${JOBS_PAGE_LIMIT_MAX} (JOBS_PAGE_LIMIT_MAX); got "${raw}"`);
  }
  return limit;
}

export function createJobsRoutes(deps: RestDependencies): HttpRoutes {
  return async (request, response) => {
    const url = urlOf(request);
    const match = /^\/v1\/jobs(?:\/([^/]+))?$/.exec(url.pathname);
    if (!match) return false;
    const jobId = match[1] === undefined ? undefined : decodeURIComponent(match[1]);
    const allowed = jobId === undefined ? "GET" : "GET, DELETE";
    if (!allowed.split(", ").includes(request.method ?? "")) {
      sendMethodNotAllowed(response, allowed, jobId === undefined ? "use GET to list your jobs" : "use GET to read the job, DELETE to cancel it or delete its files");
      return true;
    }
    try {
      const owner = await authenticate(deps.apiKeys, headersOf(request));
      // Polling is cheap one by one, but not in a tight loop: the reads' own per-account budget.
      deps.imageJobs.takeReadToken(owner);
      if (jobId === undefined) {
        const page = await deps.orchestrator.listJobs({
          accountId: owner.accountId,
          pageSize: pageLimitOf(url.searchParams.get("limit")),
          pageToken: url.searchParams.get("cursor") ?? "",
        });
        sendJson(response, 200, { jobs: page.jobs.map((job) => jobJson(job, deps.resultLinks, request)), next_cursor: page.nextPageToken || null });
      } else if (request.method === "GET") {
        sendJson(response, 200, jobJson(await ownJob(deps, owner, jobId), deps.resultLinks, request));
      } else {
        sendJson(response, 200, jobJson(await cancelOrDeleteFiles(deps, owner, jobId), deps.resultLinks, request));
      }
    } catch (error) {
      sendError(request, response, error, deps.log);
    }
    return true;
  };
}

/** A queued or running job is cancelled (its hold released); a finished one has its files deleted. */
async function cancelOrDeleteFiles(deps: RestDependencies, owner: ApiKeyOwner, jobId: string): Promise<Job> {
  const job = await ownJob(deps, owner, jobId);
  if (job.status === JobStatus.QUEUED || job.status === JobStatus.RUNNING) {
    try {
      const { job: cancelled } = await deps.orchestrator.cancelJob({ jobId });
      if (!cancelled) throw new Error("orchestrator returned no job");
      return cancelled;
    } catch (error) {
      // It finished meanwhile: then its files are what is deleted.
      if (!(error instanceof ConnectError && reasonOf(error) === "job_finished")) throw error;
    }
  }
  const { job: deleted } = await deps.orchestrator.deleteJobFiles({ jobId });
  if (!deleted) throw new Error("orchestrator returned no job");
  return deleted;
}
