// `GET /v1/jobs`, `GET /v1/jobs/{id}`, `DELETE /v1/jobs/{id}`: the caller's jobs as JSON.
import { timestampDate } from "@bufbuild/protobuf/wkt";
import { Code, ConnectError } from "@connectrpc/connect";
import { reasonError, reasonOf } from "../../common/errors.ts";
import { JobStatus, type Job } from "../../common/gen/cutline/orchestrator/v1/orchestrator_service_pb.ts";
import type { HttpRequest, HttpRoutes } from "../../common/server.ts";
import { TaskKind } from "../../common/gen/cutline/inference/v1/task_pb.ts";
import { authenticate } from "../authentication.ts";
import { jobFailure } from "../image-jobs.ts";
import { checkedPageSize, JOBS_PAGE_LIMIT_DEFAULT, JOBS_PAGE_LIMIT_MAX } from "../job-reads.ts";
import type { ResultLinks } from "../result-links.ts";
import type { ApiKeyOwner } from "../store/api-key.store.ts";
import { headersOf } from "./upload.admission.ts";
import { creditsNumber } from "../../common/credits.ts";
import { sendError, sendJson, sendMethodNotAllowed, urlOf, type RestDependencies } from "./rest-support.ts";

const STATUS_NAMES: Readonly<Record<JobStatus, string>> = {
  [JobStatus.UNSPECIFIED]: "queued",
  [JobStatus.QUEUED]: "queued",
  [JobStatus.RUNNING]: "running",
  [JobStatus.SUCCEEDED]: "succeeded",
  [JobStatus.FAILED]: "failed",
  [JobStatus.CANCELLED]: "cancelled",
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
  /** Video jobs only: frames done and in all (0 until the worker reports), and its estimate of the seconds left. */
  frames_done?: number;
  frames_total?: number;
  eta_seconds?: number;
}

/** The public JSON of a job; `result_url` is signed now, for a succeeded job whose files are kept. */
export function jobJson(job: Job, links: ResultLinks, request: HttpRequest): JobJson {
  const failed = job.status === JobStatus.FAILED || job.status === JobStatus.CANCELLED;
  const failure = failed ? jobFailure(job) : undefined;
  const hasResult = job.status === JobStatus.SUCCEEDED && !job.filesDeleted;
  return {
    id: job.id,
    status: STATUS_NAMES[job.status],
    // float32 on the wire: 0.15 arrives as 0.15000000596; three decimals are all a client needs.
    progress: Math.round(job.progress * 1000) / 1000,
    credits_charged: creditsNumber(job.chargedMillicredits),
    result_url: hasResult ? links.signer(request.headers.host).urlFor(job.id) : null,
    error: failure ? { code: reasonOf(failure) ?? "internal", title: failure.rawMessage } : null,
    created_at: job.createdAt ? timestampDate(job.createdAt).toISOString() : null,
    processing_time_ms: job.status === JobStatus.SUCCEEDED ? job.processingTimeMs : null,
    queue_time_ms: job.status === JobStatus.SUCCEEDED ? job.queueWaitMs : null,
    inference_time_ms: job.status === JobStatus.SUCCEEDED ? job.inferenceMs : null,
    ...(job.kind === TaskKind.VIDEO ? { frames_done: job.framesDone, frames_total: job.framesTotal, eta_seconds: job.etaSeconds } : {}),
  };
}

/** `?limit=`: jobs per page, checked like JobService.ListJobs' page_size. */
function pageLimitOf(raw: string | null): number {
  if (raw === null || raw === "") return JOBS_PAGE_LIMIT_DEFAULT;
  const limit = /^\d{1,6}$/.test(raw) ? Number(raw) : Number.NaN;
  if (!Number.isInteger(limit) || limit === 0) {
    throw reasonError(Code.InvalidArgument, "invalid_request", `limit must be a whole number from 1 to ${JOBS_PAGE_LIMIT_MAX} (JOBS_PAGE_LIMIT_MAX); got "${raw}"`);
  }
  return checkedPageSize(limit, "limit");
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
        const page = await deps.jobReads.list(owner, { pageSize: pageLimitOf(url.searchParams.get("limit")), pageToken: url.searchParams.get("cursor") ?? "" });
        sendJson(response, 200, { jobs: page.jobs.map((job) => jobJson(job, deps.resultLinks, request)), next_cursor: page.nextPageToken || null });
      } else if (request.method === "GET") {
        sendJson(response, 200, jobJson(await deps.jobReads.ownJob(owner, jobId), deps.resultLinks, request));
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
  const job = await deps.jobReads.ownJob(owner, jobId);
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
