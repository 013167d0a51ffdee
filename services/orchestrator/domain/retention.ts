// How long a job's files (input, background, result) are kept after the job ends: the account's
// retention, or nothing at all. Pure, so the rules are tested without a clock or a database.

/** Retention of an account that never chose one, in hours. */
export const RETENTION_HOURS_DEFAULT = 24;
// The limit and its check are shared with the gateway, which validates a settings request whole before writing any of it.
import { checkRetentionHours, RETENTION_HOURS_MAX } from "../../common/retention-hours.ts";

export { checkRetentionHours, RETENTION_HOURS_MAX };
/**
 * Zero-retention files are deleted by the synchronous caller right after it read the result; one
 * that died before doing so leaves them to the sweeper after this many seconds, long enough for a
 * caller still reading the result not to lose it.
 */
export const ZERO_RETENTION_GRACE_SECONDS = 300;

export type RetentionDecision =
  | { ok: true; retentionSeconds: number }
  | { ok: false; reason: "zero_retention_async"; message: string };

/**
 * The retention of a new job, in seconds (0: zero retention). Zero retention serves synchronous
 * calls only: an asynchronous job's result exists to be fetched later, so keeping nothing would
 * make it unreachable (and paid for).
 */
export function retentionOf(request: { zeroRetention: boolean; synchronous: boolean; accountRetentionHours: number | undefined }): RetentionDecision {
  const hours = request.zeroRetention ? 0 : (request.accountRetentionHours ?? RETENTION_HOURS_DEFAULT);
  if (hours === 0 && !request.synchronous) {
    const why = request.zeroRetention ? "the request asks for retention=none" : "the account's retention is 0 hours (zero retention)";
    return {
      ok: false,
      reason: "zero_retention_async",
      message: `${why}, which keeps nothing after the response, so an asynchronous job's result could never be fetched; call synchronously, or set retention_hours between 1 and ${RETENTION_HOURS_MAX}`,
    };
  }
  return { ok: true, retentionSeconds: hours * 3600 };
}

/** Seconds a finished job's files are kept: its retention, the grace for zero retention, the default for jobs older than retention. */
export function keptForSeconds(retentionSeconds: number | null): number {
  if (retentionSeconds === null) return RETENTION_HOURS_DEFAULT * 3600;
  return retentionSeconds === 0 ? ZERO_RETENTION_GRACE_SECONDS : retentionSeconds;
}
