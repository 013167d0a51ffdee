// The states a job does not leave, as the public API (gateway's JobStatus) names them: what a
// client polls or watches for. Browser-safe (generated enums only): the CLI and the web app read it.
import { JobStatus } from "./gen/cutline/gateway/v1/job_service_pb.ts";

export const FINISHED_JOB_STATUSES: ReadonlySet<JobStatus> = new Set([JobStatus.SUCCEEDED, JobStatus.FAILED, JobStatus.CANCELLED]);

/** True once the job succeeded, failed or was cancelled: nothing about it changes any more. */
export function isFinishedJobStatus(status: JobStatus): boolean {
  return FINISHED_JOB_STATUSES.has(status);
}
