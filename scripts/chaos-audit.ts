// After a chaos run: compares what the client was told with what the orchestrator and the
// ledger recorded, job by job, and names every job whose money trail breaks a rule.
import { sql, type Kysely } from "kysely";
import { checkLedgerInvariants, type InvariantViolation } from "../services/billing/store/invariants.ts";
import type { BillingSchema } from "../services/billing/store/schema.ts";

/** What the client saw of one job (or of one request that never learned its job id). */
export interface ClientRecord {
  /** The client's idempotency key; retries of one request share it. */
  key: string;
  mode: "sync" | "async";
  /** The job id the client was given; the audit fills it in from the key where the client never learned it. */
  jobId?: string;
  /** "succeeded" (2xx image or SUCCEEDED job), "failed:<reason>", "cancelled", "error:<what>". */
  outcome: string;
  /** Credits the client was told it paid: X-Credits-Charged or the job's creditsChargedMillicredits. */
  chargedMillicredits?: number;
  /** True when the client holds a result: a 2xx image, or a job it saw SUCCEEDED. */
  gotResult: boolean;
  attempts: number;
  /** True when the client asked to cancel the job (racing its result). */
  cancelAttempted?: boolean;
}

interface JobRow {
  id: string;
  idempotency_key: string;
  status: string;
  hold_id: string;
  charged_millicredits: number;
  error_reason: string | null;
  hold_status: string | null;
  hold_captured_mc: number | null;
  hold_amount_mc: number | null;
  hold_settle_reason: string | null;
}

interface HoldRow {
  id: string;
  idempotency_key: string;
  status: string;
  amount_mc: number;
  captured_mc: number;
  settle_reason: string | null;
  capture_entries: number;
  allocations: number;
}

/** One broken rule on one job or hold, with the trail needed to follow it in the logs. */
export interface Violation {
  rule: "freeResult" | "doubleCharged" | "chargeMismatch" | "unfinishedJob" | "openHold" | "orphanCapture";
  jobId?: string;
  holdId?: string;
  key?: string;
  detail: string;
}

export interface AuditResult {
  jobsInDatabase: number;
  jobsByStatus: Record<string, number>;
  holdsByStatus: Record<string, number>;
  unfinished: number;
  holdsOpen: number;
  freeResults: number;
  doubleCharged: number;
  chargeMismatches: number;
  /** Granted − remaining − captured for succeeded jobs, in millicredits; 0 when no credit is lost. */
  lostCredits: number;
  grantedMillicredits: number;
  remainingMillicredits: number;
  capturedMillicredits: number;
  ledgerViolations: InvariantViolation[];
  violations: Violation[];
  succeededJobIds: Set<string>;
}

const count = (values: string[]) => values.reduce<Record<string, number>>((totals, value) => ((totals[value] = (totals[value] ?? 0) + 1), totals), {});

/** Jobs still queued or running, and holds still open: what the settle period waits for. */
export async function pendingWork(db: Kysely<any>, accountId: string): Promise<{ jobs: number; holds: number }> {
  const { rows } = await sql<{ jobs: number; holds: number }>`select
      (select count(*)::int from jobs where account_id = ${accountId} and status in ('queued', 'running')) as jobs,
      (select count(*)::int from billing_holds h join billing_credit_accounts c on c.id = h.credit_account_id
        where c.account_id = ${accountId} and h.status = 'open') as holds`.execute(db);
  return rows[0]!;
}

export async function auditRun(db: Kysely<any>, accountId: string, records: ClientRecord[]): Promise<AuditResult> {
  const { rows: jobs } = await sql<JobRow>`select j.id, j.idempotency_key, j.status, j.hold_id, j.charged_millicredits, j.error_reason,
      h.status as hold_status, h.captured_mc as hold_captured_mc, h.amount_mc as hold_amount_mc, h.settle_reason as hold_settle_reason
    from jobs j left join billing_holds h on h.id = j.hold_id where j.account_id = ${accountId} order by j.created_at`.execute(db);
  const { rows: holds } = await sql<HoldRow>`select h.id, h.idempotency_key, h.status, h.amount_mc, h.captured_mc, h.settle_reason,
      (select count(*)::int from billing_ledger_entries e where e.hold_id = h.id and e.kind like '%capture%') as capture_entries,
      (select count(*)::int from billing_hold_allocations a where a.hold_id = h.id) + (case when h.overage_mc > 0 then 1 else 0 end) as allocations
    from billing_holds h join billing_credit_accounts c on c.id = h.credit_account_id
    where c.account_id = ${accountId} and c.pool = 'api'`.execute(db);
  const { rows: balances } = await sql<{ granted: number; remaining: number }>`select
      coalesce((select sum(b.granted_mc) from billing_buckets b where b.credit_account_id = c.id), 0)::int8 as granted, c.remaining_mc as remaining
    from billing_credit_accounts c where c.account_id = ${accountId} and c.pool = 'api'`.execute(db);
  const balance = balances[0] ?? { granted: 0, remaining: 0 };

  const violations: Violation[] = [];
  // A request whose answer carried no job id (an error before or instead of it) is matched by its idempotency key.
  const jobIdByKey = new Map(jobs.map((job) => [job.idempotency_key, job.id]));
  for (const record of records) record.jobId ??= jobIdByKey.get(record.key);
  const recordsByJob = new Map<string, ClientRecord[]>();
  for (const record of records) if (record.jobId) recordsByJob.set(record.jobId, [...(recordsByJob.get(record.jobId) ?? []), record]);
  const jobsByHold = new Map<string, JobRow[]>();
  for (const job of jobs) jobsByHold.set(job.hold_id, [...(jobsByHold.get(job.hold_id) ?? []), job]);

  let capturedForResults = 0;
  for (const job of jobs) {
    const trail = `job ${job.id} key ${job.idempotency_key} status ${job.status} charged ${job.charged_millicredits} mc; hold ${job.hold_id} ${job.hold_status ?? "missing"} captured ${job.hold_captured_mc ?? 0}/${job.hold_amount_mc ?? 0} mc (${job.hold_settle_reason ?? "no reason"})`;
    const seen = recordsByJob.get(job.id) ?? [];
    const captured = job.hold_status === "captured" ? (job.hold_captured_mc ?? 0) : 0;
    if (job.status === "queued" || job.status === "running") {
      violations.push({ rule: "unfinishedJob", jobId: job.id, holdId: job.hold_id, key: job.idempotency_key, detail: trail });
    }
    const resultServed = job.status === "succeeded" || seen.some((record) => record.gotResult);
    if (resultServed && (captured === 0 || job.hold_status !== "captured")) {
      violations.push({
        rule: "freeResult",
        jobId: job.id,
        holdId: job.hold_id,
        key: job.idempotency_key,
        detail: `${trail}; client saw ${seen.map((record) => record.outcome).join(",") || "nothing"}`,
      });
    }
    if (!resultServed && job.hold_status === "captured") {
      violations.push({ rule: "doubleCharged", jobId: job.id, holdId: job.hold_id, key: job.idempotency_key, detail: `captured for a job that did not succeed: ${trail}` });
    }
    if (job.status === "succeeded") capturedForResults += captured;
    if (job.charged_millicredits !== captured) {
      violations.push({ rule: "chargeMismatch", jobId: job.id, holdId: job.hold_id, detail: `job records ${job.charged_millicredits} mc charged, ledger captured ${captured}: ${trail}` });
    }
    for (const record of seen) {
      // An error as the final answer says nothing was charged; a capture behind it is a charge the client was not told of
      // (it will not retry a 4xx, so it never gets what it paid for). Requests the run itself cut off are left out.
      if (!record.gotResult && record.outcome !== "error:abandoned" && captured > 0) {
        violations.push({
          rule: "chargeMismatch",
          jobId: job.id,
          holdId: job.hold_id,
          key: record.key,
          detail: `client (${record.mode}) was answered ${record.outcome} (nothing charged), ledger captured ${captured}: ${trail}`,
        });
      }
      if (record.chargedMillicredits !== undefined && record.chargedMillicredits !== captured) {
        violations.push({
          rule: "chargeMismatch",
          jobId: job.id,
          holdId: job.hold_id,
          key: record.key,
          detail: `client (${record.mode}) was told ${record.chargedMillicredits} mc, ledger captured ${captured}: ${trail}`,
        });
      }
    }
  }
  for (const [holdId, sharing] of jobsByHold) {
    if (sharing.length > 1 && sharing.filter((job) => job.status === "succeeded").length > 1) {
      violations.push({ rule: "doubleCharged", holdId, detail: `one hold serves ${sharing.length} succeeded jobs: ${sharing.map((job) => job.id).join(", ")}` });
    }
  }
  for (const hold of holds) {
    if (hold.status === "open") violations.push({ rule: "openHold", holdId: hold.id, key: hold.idempotency_key, detail: `hold ${hold.id} (${hold.idempotency_key}) still open` });
    if (hold.capture_entries > hold.allocations) {
      violations.push({ rule: "doubleCharged", holdId: hold.id, detail: `hold ${hold.id} has ${hold.capture_entries} capture entries for ${hold.allocations} allocations` });
    }
    if (hold.status === "captured" && !jobsByHold.has(hold.id)) {
      violations.push({ rule: "orphanCapture", holdId: hold.id, key: hold.idempotency_key, detail: `hold ${hold.id} (${hold.idempotency_key}) captured ${hold.captured_mc} mc but no job points at it` });
    }
  }
  // A request the client never learned a job id for must not have produced a charge either; it
  // shows up above as an orphan capture or as a captured hold of a job it never saw succeed.
  const capturedTotal = holds.filter((hold) => hold.status === "captured").reduce((sum, hold) => sum + hold.captured_mc, 0);
  const byRule = count(violations.map((violation) => violation.rule));
  return {
    jobsInDatabase: jobs.length,
    jobsByStatus: count(jobs.map((job) => job.status)),
    holdsByStatus: count(holds.map((hold) => hold.status)),
    unfinished: byRule.unfinishedJob ?? 0,
    holdsOpen: byRule.openHold ?? 0,
    freeResults: byRule.freeResult ?? 0,
    doubleCharged: (byRule.doubleCharged ?? 0) + (byRule.orphanCapture ?? 0),
    chargeMismatches: byRule.chargeMismatch ?? 0,
    lostCredits: balance.granted - balance.remaining - capturedForResults,
    grantedMillicredits: balance.granted,
    remainingMillicredits: balance.remaining,
    capturedMillicredits: capturedTotal,
    ledgerViolations: await checkLedgerInvariants(db as Kysely<BillingSchema>),
    violations,
    succeededJobIds: new Set(jobs.filter((job) => job.status === "succeeded").map((job) => job.id)),
  };
}
