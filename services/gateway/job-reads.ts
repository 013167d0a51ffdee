// Reads of the caller's own jobs, shared by the REST routes (GET /v1/jobs...) and JobService.
import { Code, ConnectError, type Client } from "@connectrpc/connect";
import { reasonError } from "../common/errors.ts";
import type { Job, OrchestratorService } from "../common/gen/cutline/orchestrator/v1/orchestrator_service_pb.ts";
import type { ApiKeyOwner } from "./store/api-key.store.ts";

/** Jobs per page of a job listing: the default and the most (the orchestrator's LIST_JOBS_PAGE_SIZE_MAX). */
export const JOBS_PAGE_LIMIT_DEFAULT = 20;
export const JOBS_PAGE_LIMIT_MAX = 100;

export function jobNotFound(jobId: string): ConnectError {
  return reasonError(Code.NotFound, "job_not_found", `job ${jobId} not found`);
}

/** A page size as asked (`field` names it in the refusal); 0 or unset means the default. */
export function checkedPageSize(pageSize: number, field: string): number {
  if (pageSize === 0) return JOBS_PAGE_LIMIT_DEFAULT;
  if (!Number.isInteger(pageSize) || pageSize < 1 || pageSize > JOBS_PAGE_LIMIT_MAX) {
    throw reasonError(Code.InvalidArgument, "invalid_request", `${field} must be a whole number from 1 to ${JOBS_PAGE_LIMIT_MAX} (JOBS_PAGE_LIMIT_MAX); got ${pageSize}`);
  }
  return pageSize;
}

export class JobReads {
  constructor(private readonly orchestrator: Client<typeof OrchestratorService>) {}

  /** The caller's job; another account's answers exactly like a missing one, so ids cannot be probed. */
  async ownJob(owner: ApiKeyOwner, jobId: string): Promise<Job> {
    const { job } = await this.orchestrator.getJob({ jobId }).catch((error: unknown) => {
      if (error instanceof ConnectError && error.code === Code.NotFound) return { job: undefined };
      throw error;
    });
    if (!job || job.accountId !== owner.accountId) throw jobNotFound(jobId);
    return job;
  }

  /** A page of the caller's jobs, newest first; `nextPageToken` is "" on the last page. */
  async list(owner: ApiKeyOwner, page: { pageSize: number; pageToken: string }): Promise<{ jobs: Job[]; nextPageToken: string }> {
    const { jobs, nextPageToken } = await this.orchestrator.listJobs({ accountId: owner.accountId, pageSize: page.pageSize, pageToken: page.pageToken });
    return { jobs, nextPageToken };
  }

  /** The named jobs of the account (at most JOBS_PAGE_LIMIT_MAX), by id. */
  async byId(accountId: string, jobIds: string[]): Promise<Map<string, Job>> {
    const jobs = new Map<string, Job>();
    if (jobIds.length === 0) return jobs;
    for (const job of (await this.orchestrator.listJobs({ accountId, jobIds })).jobs) jobs.set(job.id, job);
    return jobs;
  }
}
