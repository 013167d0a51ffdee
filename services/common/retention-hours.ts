// The retention an account may choose for its jobs' files: the orchestrator enforces it, and the
// gateway checks a settings request against it before writing any part of the request.

/** Longest retention an account may choose, in hours: blobs themselves expire after BLOB_TTL_MS (24 h). */
export const RETENTION_HOURS_MAX = 24;

/** A retention an account may choose, or a message naming the limit. */
export function checkRetentionHours(hours: number): string | undefined {
  if (Number.isInteger(hours) && hours >= 0 && hours <= RETENTION_HOURS_MAX) return undefined;
  return `retention_hours must be a whole number of hours from 0 (zero retention) to ${RETENTION_HOURS_MAX} (RETENTION_HOURS_MAX); got ${hours}`;
}
