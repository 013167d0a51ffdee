// The job lifecycle as a pure state machine: queued -> running -> succeeded | failed | cancelled.
// A redelivered task may report "started" again, and a queued job may finish without a start
// event having been seen (events are at least once, not ordered across subjects).

export type JobStatus = "queued" | "running" | "succeeded" | "failed" | "cancelled";

const TERMINAL_STATUSES: ReadonlySet<JobStatus> = new Set(["succeeded", "failed", "cancelled"]);

const LEGAL: Record<JobStatus, ReadonlySet<JobStatus>> = {
  // queued -> queued: the reconciler puts a quiet job's task back on the queue.
  queued: new Set(["queued", "running", "succeeded", "failed", "cancelled"]),
  running: new Set(["running", "succeeded", "failed", "cancelled"]),
  succeeded: new Set(),
  failed: new Set(),
  cancelled: new Set(),
};

export function isTerminal(status: JobStatus): boolean {
  return TERMINAL_STATUSES.has(status);
}

export function canTransition(from: JobStatus, to: JobStatus): boolean {
  return LEGAL[from].has(to);
}

/** What to do with a task outcome for a job in `status`: apply it, or ignore a late duplicate. */
export type OutcomeDecision = { kind: "apply"; to: JobStatus } | { kind: "ignore"; why: string };

export function decideOutcome(status: JobStatus, outcome: "started" | "progress" | "succeeded" | "failed"): OutcomeDecision {
  const to: JobStatus = outcome === "started" || outcome === "progress" ? "running" : outcome;
  if (isTerminal(status)) return { kind: "ignore", why: `job already ${status}` };
  if (!canTransition(status, to)) return { kind: "ignore", why: `illegal transition ${status} -> ${to}` };
  return { kind: "apply", to };
}

/** Asserts a transition the code is about to make; an illegal one is a programming error. */
export function assertTransition(from: JobStatus, to: JobStatus): void {
  if (!canTransition(from, to)) throw new Error(`illegal job transition ${from} -> ${to}`);
}
