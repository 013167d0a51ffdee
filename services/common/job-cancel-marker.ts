// How an orchestrator tells the worker running a long (video) job that the job ended under it
// (cancelled, timed out): an empty blob under this key, which the worker looks for while it
// works. The blob store is the one port both share in every mode (single node and mesh), and a
// marker survives a worker that was restarting when the cancel came; it expires with the store's TTL.

/** Blob key of a job's cancel marker. */
export function cancelMarkerKeyOf(jobId: string): string {
  return `cancels/${jobId}`;
}
