// The follow-up idempotency key of a file whose job failed on the server's side. A file's key is a
// hash of its content and options, so every run sends the same one and the server replays the first
// job under it: a job that failed for a reason that is nobody's fault but the server's (and charged
// nothing) would answer that failure forever. The CLI then retries under `<base key>:after:<failed
// job id>`: derived from the failed job alone, so a run cut off during the retry sends the same
// follow-up key next time and the server replays that job instead of charging a second one.
import { Code, ConnectError } from "@connectrpc/connect";
import { REASON_HEADER } from "../services/common/errors.ts";

/** Metadata key in which the gateway names the job an error is about (services/gateway/image-jobs.ts). */
export const JOB_ID_HEADER = "cutline-job-id";

/** Follow-up keys one file may try in one run after a server-side failure of its job. */
export const FOLLOW_UP_RETRIES_MAX = 1;

/**
 * A job's failure reasons that are the server's, not the caller's, and charged nothing (its hold was
 * released): worth a new job. Not here: the caller's input (corrupt_image, too_many_bytes, video_*),
 * the account (insufficient_credits, member_cap_reached), a cancel someone asked for (cancelled), and
 * the answers about a job that did not fail (sync_timeout: it still runs; storage_unavailable: its
 * result could not be read for a moment), which the same key must replay.
 */
export const SERVER_SIDE_FAILURES: ReadonlySet<string> = new Set(["internal", "job_stuck", "job_timeout", "queue_full", "model_unavailable", "hold_expired"]);

/** `<base key>:after:<failed job id>`: the key of the retry of the file whose job under `baseKey` failed. */
export function followUpKeyOf(baseKey: string, failedJobId: string): string {
  if (failedJobId === "") throw new Error("a follow-up key needs the failed job's id");
  return `${baseKey}:after:${failedJobId}`;
}

/** A job's end as the CLI sees it: from JobService (video) or from a sync call's error (images). */
export interface JobEnd {
  jobId: string;
  failed: boolean;
  reason: string;
}

/** Whether a job's end is a server-side failure that a new job, under the follow-up key, may fix. */
export function worthAFollowUp(end: JobEnd, followUpsSoFar: number): boolean {
  return end.failed && end.jobId !== "" && SERVER_SIDE_FAILURES.has(end.reason) && followUpsSoFar < FOLLOW_UP_RETRIES_MAX;
}

/**
 * The failed job a sync call's error is about, or undefined. The gateway answers a failed job with
 * its reason and its id (jobFailure); an error without a job id (a refusal before any job) or with
 * INVALID_ARGUMENT (the input's fault) is no job's server-side failure.
 */
export function failedJobOf(error: unknown): JobEnd | undefined {
  if (!(error instanceof ConnectError) || error.code === Code.InvalidArgument) return undefined;
  const jobId = error.metadata.get(JOB_ID_HEADER);
  const reason = error.metadata.get(REASON_HEADER);
  if (!jobId || !reason || !SERVER_SIDE_FAILURES.has(reason)) return undefined;
  return { jobId, failed: true, reason };
}
