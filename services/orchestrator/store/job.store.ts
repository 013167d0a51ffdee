import { sql, type ColumnType, type Generated, type Kysely, type Selectable } from "kysely";
import { keptForSeconds } from "../domain/retention.ts";
import type { JobStatus } from "../domain/job-status.ts";
import type { EmailOutboxTable } from "./email-outbox.store.ts";
import type { WebhookTables } from "./webhook.store.ts";

export interface JobTable {
  id: string;
  account_id: string;
  idempotency_key: string;
  status: JobStatus;
  input_blob_key: string;
  result_blob_key: string;
  result_content_type: string | null;
  options: Uint8Array;
  hold_id: string;
  held_millicredits: number;
  charged_millicredits: Generated<number>;
  available_millicredits: number | null;
  error_reason: string | null;
  error_message: string | null;
  /** The failure is the caller's mistake (inference's verdict); false for every other failure. */
  user_error: Generated<boolean>;
  high_priority: boolean;
  longest_side_max: Generated<number>;
  background_image_blob_key: Generated<string>;
  processing_time_ms: number | null;
  /** As the worker reported them on success: enqueue to the model, and the engine's own work (ms). */
  queue_wait_ms: number | null;
  inference_ms: number | null;
  /** The outcome that has taken the hold (capture or release) before the status records it. */
  outcome_claim: OutcomeClaim | null;
  requeues: Generated<number>;
  /** The job's own webhook URL; empty: the account's, if any. */
  webhook_url: Generated<string>;
  /** SHA-256 (hex) of the request's content; '' where none was given. */
  request_fingerprint: Generated<string>;
  files_deleted_at: Date | null;
  /** Seconds the files are kept after the job ends (0: zero retention); null for jobs older than the setting. */
  retention_seconds: number | null;
  /** The retention sweeper deleted the files (rather than the caller). */
  files_expired: Generated<boolean>;
  /** Who the job's usage is recorded against (its hold's, and a replacement hold's); null when none. */
  api_key_id: ColumnType<string | null, string | null | undefined, string | null>;
  member_id: ColumnType<string | null, string | null | undefined, string | null>;
  /** The result's size in pixels, and the subject's box in it (null: no subject, or an older job). */
  result_width: number | null;
  result_height: number | null;
  foreground_left: number | null;
  foreground_top: number | null;
  foreground_width: number | null;
  foreground_height: number | null;
  /** The fraction of the work done, 0 to 1, never decreasing; 1 once succeeded. */
  progress: Generated<number>;
  /** "image" or "video"; video jobs keep VideoOptions (binary) in video_options and leave options empty. */
  kind: Generated<JobKind>;
  video_options: Uint8Array | null;
  /** Video jobs: the probed duration (ms), and the worker's last frames done, frames in all and seconds left. */
  video_duration_ms: Generated<number>;
  frames_done: Generated<number>;
  frames_total: Generated<number>;
  eta_seconds: Generated<number>;
  /** Milliseconds from submission the job may take; null: the lifecycle's JOB_TIMEOUT_MS. */
  timeout_ms: number | null;
  /** Order of submission (bigserial: the driver answers int8 as a string). */
  submission_number: Generated<string>;
  created_at: Generated<Date>;
  updated_at: Generated<Date>;
}

export interface AccountSettingsTable {
  account_id: string;
  retention_hours: number;
  updated_at: Generated<Date>;
}

export interface OrchestratorSchema extends WebhookTables {
  jobs: JobTable;
  account_settings: AccountSettingsTable;
  email_outbox: EmailOutboxTable;
}

export type JobRow = Selectable<JobTable>;

export type OutcomeClaim = "succeeded" | "failed";

export type JobKind = "image" | "video";

export type NewJob = Pick<
  JobTable,
  "id" | "account_id" | "idempotency_key" | "input_blob_key" | "result_blob_key" | "options" | "hold_id" | "held_millicredits" | "high_priority"
> & {
  longest_side_max: number;
  background_image_blob_key: string;
  webhook_url?: string;
  request_fingerprint: string;
  retention_seconds?: number;
  api_key_id?: string | null;
  member_id?: string | null;
  kind?: JobKind;
  video_options?: Uint8Array | null;
  video_duration_ms?: number;
  timeout_ms?: number | null;
};

export interface JobUpdate {
  result_content_type?: string;
  charged_millicredits?: number;
  available_millicredits?: number;
  error_reason?: string;
  error_message?: string;
  user_error?: boolean;
  processing_time_ms?: number;
  result_width?: number;
  result_height?: number;
  foreground_left?: number;
  foreground_top?: number;
  foreground_width?: number;
  foreground_height?: number;
  queue_wait_ms?: number;
  inference_ms?: number;
  /** A job whose first hold ended before its result came is charged on a new one. */
  hold_id?: string;
  requeues?: number;
  /** Raises the job's progress to this fraction (0 to 1); a lower one leaves it as it is. */
  progress?: number;
  /** Video jobs: the worker's last report (frames done and in all, seconds left). */
  frames_done?: number;
  frames_total?: number;
  eta_seconds?: number;
}

/** The jobs table. Every status change is a compare-and-set on the previous status. */
export class JobStore {
  constructor(private readonly db: Kysely<OrchestratorSchema>) {}

  /** Runs `work` in one transaction, with a store (and the connection) bound to it. */
  async inTransaction<T>(work: (jobs: JobStore, db: Kysely<OrchestratorSchema>) => Promise<T>): Promise<T> {
    return this.db.transaction().execute((trx) => work(new JobStore(trx), trx));
  }

  /** Inserts the job, or returns the one already submitted with the same idempotency key. */
  async insertOrGet(job: NewJob): Promise<{ job: JobRow; created: boolean }> {
    const inserted = await this.db
      .insertInto("jobs")
      .values({ ...job, status: "queued" })
      .onConflict((conflict) => conflict.columns(["account_id", "idempotency_key"]).doNothing())
      .returningAll()
      .executeTakeFirst();
    if (inserted) return { job: inserted, created: true };
    const existing = await this.byIdempotencyKey(job.account_id, job.idempotency_key);
    if (!existing) throw new Error(`job ${job.account_id}/${job.idempotency_key} conflicted on insert but cannot be read`);
    return { job: existing, created: false };
  }

  /** The job the account submitted with this idempotency key, if any. */
  async byIdempotencyKey(accountId: string, idempotencyKey: string): Promise<JobRow | undefined> {
    return this.db.selectFrom("jobs").selectAll().where("account_id", "=", accountId).where("idempotency_key", "=", idempotencyKey).executeTakeFirst();
  }

  async get(id: string): Promise<JobRow | undefined> {
    return this.db.selectFrom("jobs").selectAll().where("id", "=", id).executeTakeFirst();
  }

  /**
   * Lets one outcome take the hold of an unfinished job: the first claim wins, a repeat of the
   * same claim (a redelivered event) still holds it, and no other outcome or cancel gets it.
   */
  async claim(id: string, outcome: OutcomeClaim, update: JobUpdate = {}): Promise<JobRow | undefined> {
    return this.db
      .updateTable("jobs")
      .set({ ...update, outcome_claim: outcome })
      .where("id", "=", id)
      .where("status", "in", ["queued", "running"])
      .where((where) => where.or([where("outcome_claim", "is", null), where("outcome_claim", "=", outcome)]))
      .returningAll()
      .executeTakeFirst();
  }

  /** Records a cancel, only while no outcome has claimed the job; undefined when one has. */
  async cancelUnclaimed(id: string, from: JobStatus, update: JobUpdate): Promise<JobRow | undefined> {
    return this.db
      .updateTable("jobs")
      .set({ ...update, status: "cancelled", updated_at: new Date() })
      .where("id", "=", id)
      .where("status", "=", from)
      .where("outcome_claim", "is", null)
      .returningAll()
      .executeTakeFirst();
  }

  /**
   * The account's jobs, newest first: `limit` of them submitted before `beforeNumber` (a page
   * cursor), or with `ids`, exactly those of the account's jobs.
   */
  async list(accountId: string, options: { limit: number; beforeNumber?: string; ids?: string[] }): Promise<JobRow[]> {
    let query = this.db.selectFrom("jobs").selectAll().where("account_id", "=", accountId);
    if (options.ids) query = query.where("id", "in", options.ids.length > 0 ? options.ids : [""]);
    if (options.beforeNumber !== undefined) query = query.where("submission_number", "<", options.beforeNumber);
    return query.orderBy("submission_number", "desc").limit(options.limit).execute();
  }

  /** Marks a finished job's files deleted (`expired`: by the retention sweeper); undefined unless the job is finished. */
  async markFilesDeleted(id: string, at: Date, options: { expired?: boolean } = {}): Promise<JobRow | undefined> {
    return this.db
      .updateTable("jobs")
      .set({ files_deleted_at: at, ...(options.expired ? { files_expired: true } : {}) })
      .where("id", "=", id)
      .where("status", "in", ["succeeded", "failed", "cancelled"])
      .returningAll()
      .executeTakeFirst();
  }

  /** Unfinished jobs not changed since `before`, oldest first: candidates for the reconciler. */
  /**
   * Unfinished jobs untouched since `before`, oldest first. A queued video job is not quiet
   * unless `queuedVideos`: it waits its turn behind other (long) videos, nothing reports on it
   * meanwhile, and its own time limit (timeout_ms) already covers the wait; re-queuing it would
   * run it twice. `queuedVideos`: at the start of a process whose queue forgot its tasks.
   */
  async quietSince(before: Date, limit: number, options: { queuedVideos?: boolean } = {}): Promise<JobRow[]> {
    return this.db
      .selectFrom("jobs")
      .selectAll()
      .where("status", "in", ["queued", "running"])
      .where("updated_at", "<", before)
      .$if(options.queuedVideos !== true, (query) => query.where((row) => row.not(row.and([row("status", "=", "queued"), row("kind", "=", "video")]))))
      .orderBy("updated_at")
      .limit(limit)
      .execute();
  }

  /**
   * Ended jobs whose files are kept past their retention at `now` (keptForSeconds, in SQL:
   * zero retention gets its grace, jobs from before retention the default), oldest first.
   */
  async filesPastRetention(now: Date, limit: number): Promise<JobRow[]> {
    const keptSeconds = sql<number>`case when retention_seconds is null then ${keptForSeconds(null)} when retention_seconds = 0 then ${keptForSeconds(0)} else retention_seconds end`;
    return this.db
      .selectFrom("jobs")
      .selectAll()
      .where("files_deleted_at", "is", null)
      .where("status", "in", ["succeeded", "failed", "cancelled"])
      .where(sql<boolean>`updated_at + ${keptSeconds} * interval '1 second' < ${now}`)
      .orderBy("updated_at")
      .limit(limit)
      .execute();
  }

  /**
   * Unfinished jobs past their time limit at `now`, oldest first: their own `timeout_ms` from
   * submission (video jobs), else `defaultTimeoutMs`.
   */
  async unfinishedPastTimeout(now: Date, defaultTimeoutMs: number, limit: number): Promise<JobRow[]> {
    return this.db
      .selectFrom("jobs")
      .selectAll()
      .where("status", "in", ["queued", "running"])
      // Every job is past the default before it is past a longer limit of its own: the index on created_at narrows it first.
      .where("created_at", "<", new Date(now.getTime() - defaultTimeoutMs))
      .where(sql<boolean>`created_at + coalesce(timeout_ms, ${defaultTimeoutMs}) * interval '1 millisecond' < ${now}`)
      .orderBy("created_at")
      .limit(limit)
      .execute();
  }

  /** Queued or running jobs whose `column` is before `before`, oldest by it first. */
  /** Moves the job from `from` to `to`; undefined when another writer changed it first. */
  async transition(id: string, from: JobStatus, to: JobStatus, update: JobUpdate = {}): Promise<JobRow | undefined> {
    const { progress, ...rest } = update;
    // Progress only rises: two reports of one job applied out of order keep the higher.
    const raised = progress === undefined ? {} : { progress: sql<number>`greatest(progress, ${progress})` };
    return this.db
      .updateTable("jobs")
      .set({ ...rest, ...raised, status: to, updated_at: new Date() })
      .where("id", "=", id)
      .where("status", "=", from)
      .returningAll()
      .executeTakeFirst();
  }
}
