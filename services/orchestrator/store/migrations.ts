import { sql, type Kysely, type Migration } from "kysely";
import type { ServiceMigrations } from "../../common/migrate.ts";

// Frozen in time: never edit a migration that has shipped; add a new one.
export const orchestratorMigrations: Record<string, Migration> = {
  "202611210900_jobs": {
    async up(db: Kysely<any>) {
      await db.schema
        .createTable("jobs")
        .addColumn("id", "text", (column) => column.primaryKey())
        .addColumn("account_id", "text", (column) => column.notNull())
        .addColumn("idempotency_key", "text", (column) => column.notNull())
        .addColumn("status", "text", (column) => column.notNull())
        .addColumn("input_blob_key", "text", (column) => column.notNull())
        .addColumn("result_blob_key", "text", (column) => column.notNull())
        .addColumn("result_content_type", "text")
        .addColumn("options", "bytea", (column) => column.notNull())
        .addColumn("hold_id", "text", (column) => column.notNull())
        .addColumn("held_millicredits", "int8", (column) => column.notNull())
        .addColumn("charged_millicredits", "int8", (column) => column.notNull().defaultTo(0))
        .addColumn("available_millicredits", "int8")
        .addColumn("error_reason", "text")
        .addColumn("error_message", "text")
        .addColumn("high_priority", "boolean", (column) => column.notNull())
        .addColumn("processing_time_ms", "int4")
        .addColumn("created_at", "timestamptz", (column) => column.notNull().defaultTo(sql`now()`))
        .addColumn("updated_at", "timestamptz", (column) => column.notNull().defaultTo(sql`now()`))
        .addCheckConstraint("jobs_status_check", sql`status in ('queued','running','succeeded','failed','cancelled')`)
        .addCheckConstraint("jobs_charged_le_held", sql`charged_millicredits between 0 and held_millicredits`)
        .addUniqueConstraint("jobs_account_idempotency_key", ["account_id", "idempotency_key"])
        .execute();
      await db.schema.createIndex("jobs_status_updated_at").on("jobs").columns(["status", "updated_at"]).execute();
    },
  },
  "202611211000_jobs_longest_side_max": {
    async up(db: Kysely<any>) {
      // The plan's longest side travels with the job so a re-enqueued task keeps it.
      await db.schema.alterTable("jobs").addColumn("longest_side_max", "int4", (column) => column.notNull().defaultTo(0)).execute();
    },
  },
  "202611271200_jobs_background_image_blob_key": {
    async up(db: Kysely<any>) {
      // The background image is a blob beside the input: only its key is kept, never the bytes
      // (they made every read of the row, each watch poll included, carry the whole image).
      await db.schema.alterTable("jobs").addColumn("background_image_blob_key", "text", (column) => column.notNull().defaultTo("")).execute();
    },
  },
  "202611271300_jobs_outcome_claim": {
    async up(db: Kysely<any>) {
      // Which outcome took the job's hold (capture for a result, release for a failure) before
      // the status says so; a cancel may only end a job that no outcome has claimed.
      await db.schema
        .alterTable("jobs")
        .addColumn("outcome_claim", "text", (column) => column.check(sql`outcome_claim in ('succeeded', 'failed')`))
        .execute();
      // Times the reconciler put the task back on the queue after it went quiet.
      await db.schema.alterTable("jobs").addColumn("requeues", "int4", (column) => column.notNull().defaultTo(0)).execute();
    },
  },
  "202611271400_jobs_user_error": {
    async up(db: Kysely<any>) {
      // Inference's own verdict on a failure (bad input or not), kept so readers need not re-derive it from the reason.
      await db.schema.alterTable("jobs").addColumn("user_error", "boolean", (column) => column.notNull().defaultTo(false)).execute();
    },
  },
  "202611271630_webhooks": {
    async up(db: Kysely<any>) {
      // A job's own webhook URL; empty: the account's (account_webhooks), if any.
      await db.schema.alterTable("jobs").addColumn("webhook_url", "text", (column) => column.notNull().defaultTo("")).execute();
      await db.schema
        .createTable("account_webhooks")
        .addColumn("account_id", "text", (column) => column.primaryKey())
        .addColumn("webhook_url", "text", (column) => column.notNull().defaultTo(""))
        .addColumn("secret", "text", (column) => column.notNull())
        .addColumn("created_at", "timestamptz", (column) => column.notNull().defaultTo(sql`now()`))
        .addColumn("updated_at", "timestamptz", (column) => column.notNull().defaultTo(sql`now()`))
        .execute();
      // One delivery per job and event type: a job-end event applied twice enqueues once.
      await db.schema
        .createTable("webhook_deliveries")
        .addColumn("id", "text", (column) => column.primaryKey())
        .addColumn("job_id", "text", (column) => column.notNull())
        .addColumn("account_id", "text", (column) => column.notNull())
        .addColumn("url", "text", (column) => column.notNull())
        .addColumn("type", "text", (column) => column.notNull())
        .addColumn("body", "text", (column) => column.notNull())
        .addColumn("status", "text", (column) => column.notNull().defaultTo("pending"))
        .addColumn("attempts", "int4", (column) => column.notNull().defaultTo(0))
        .addColumn("next_attempt_at", "timestamptz", (column) => column.notNull())
        .addColumn("last_status_code", "int4")
        .addColumn("last_error", "text")
        .addColumn("created_at", "timestamptz", (column) => column.notNull())
        .addColumn("delivered_at", "timestamptz")
        .addCheckConstraint("webhook_deliveries_status_check", sql`status in ('pending','delivered','failed')`)
        .addUniqueConstraint("webhook_deliveries_job_type", ["job_id", "type"])
        .execute();
      await db.schema.createIndex("webhook_deliveries_due").on("webhook_deliveries").columns(["status", "next_attempt_at"]).execute();
      // Every attempt, for the delivery log.
      await db.schema
        .createTable("webhook_attempts")
        .addColumn("delivery_id", "text", (column) => column.notNull().references("webhook_deliveries.id").onDelete("cascade"))
        .addColumn("attempt", "int4", (column) => column.notNull())
        .addColumn("attempted_at", "timestamptz", (column) => column.notNull())
        .addColumn("status_code", "int4")
        .addColumn("error", "text")
        .addColumn("duration_ms", "int4", (column) => column.notNull())
        .addPrimaryKeyConstraint("webhook_attempts_pkey", ["delivery_id", "attempt"])
        .execute();
    },
  },
  "202611271700_jobs_public_api": {
    async up(db: Kysely<any>) {
      // What the request carried (image, background, options), hashed: a replayed idempotency key
      // with other content is refused rather than answered with the first job. '' for older jobs.
      await db.schema.alterTable("jobs").addColumn("request_fingerprint", "text", (column) => column.notNull().defaultTo("")).execute();
      // Set when the caller deleted the job's files (DELETE /v1/jobs/{id}); the row stays for the record.
      await db.schema.alterTable("jobs").addColumn("files_deleted_at", "timestamptz").execute();
      // Submission order for listing newest first: a timestamp can tie, and a cursor on it would need microseconds.
      await db.schema.alterTable("jobs").addColumn("submission_number", "bigserial", (column) => column.notNull()).execute();
      await db.schema.createIndex("jobs_account_submission_number").on("jobs").columns(["account_id", "submission_number desc"]).execute();
    },
  },
  "202611271900_retention": {
    async up(db: Kysely<any>) {
      // The account's choice of how long files are kept after a job ends (0: zero retention).
      await db.schema
        .createTable("account_settings")
        .addColumn("account_id", "text", (column) => column.primaryKey())
        .addColumn("retention_hours", "int4", (column) => column.notNull().check(sql`retention_hours between 0 and 24`))
        .addColumn("updated_at", "timestamptz", (column) => column.notNull().defaultTo(sql`now()`))
        .execute();
      // Each job keeps the retention it was submitted under (a later change of the setting does not
      // shorten what a caller was promised); null for older jobs, which get the default.
      await db.schema.alterTable("jobs").addColumn("retention_seconds", "int4").execute();
      // Set with files_deleted_at when the sweeper, not the caller, deleted the files.
      await db.schema.alterTable("jobs").addColumn("files_expired", "boolean", (column) => column.notNull().defaultTo(false)).execute();
      // The retention sweeper reads ended jobs whose files are still kept, oldest change first.
      await sql`create index jobs_files_kept on jobs (updated_at) where files_deleted_at is null and status in ('succeeded', 'failed', 'cancelled')`.execute(db);
    },
  },
  "202611271910_jobs_result_geometry": {
    async up(db: Kysely<any>) {
      // What inference measured of the result: its size, and the subject's box in it (null when
      // the mask found none). Null for jobs that ended before this was kept.
      for (const column of ["result_width", "result_height", "foreground_left", "foreground_top", "foreground_width", "foreground_height"]) {
        await db.schema.alterTable("jobs").addColumn(column, "int4").execute();
      }
    },
  },
  // After main's retention and geometry migrations: kysely refuses a new migration named before
  // the last one a database ran, so this could not keep its first name (202611271830).
  "202611271920_jobs_progress": {
    async up(db: Kysely<any>) {
      // The fraction of the work done, 0 to 1 (never decreasing), as the worker reports its stages.
      await db.schema.alterTable("jobs").addColumn("progress", "real", (column) => column.notNull().defaultTo(0)).execute();
      await sql`update jobs set progress = 1 where status = 'succeeded'`.execute(db);
    },
  },
  "202611271930_jobs_timings": {
    async up(db: Kysely<any>) {
      // The worker's split of a job's time (queue wait, inference), so a client can tell the
      // system's own overhead apart from waiting and work. Null for jobs that ended before.
      await db.schema.alterTable("jobs").addColumn("queue_wait_ms", "int4").execute();
      await db.schema.alterTable("jobs").addColumn("inference_ms", "int4").execute();
    },
  },
  "202611272100_jobs_video": {
    async up(db: Kysely<any>) {
      // Video jobs share the jobs table: their kind, their options (VideoOptions, binary), the
      // probed duration that scales their time limit, and the worker's frame progress.
      await db.schema.alterTable("jobs").addColumn("kind", "text", (column) => column.notNull().defaultTo("image")).execute();
      await db.schema.alterTable("jobs").addColumn("video_options", "bytea").execute();
      for (const column of ["video_duration_ms", "frames_done", "frames_total", "eta_seconds"]) {
        await db.schema.alterTable("jobs").addColumn(column, "int4", (column) => column.notNull().defaultTo(0)).execute();
      }
      // The job's own time limit (ms from submission); null: JOB_TIMEOUT_MS, as every job before had.
      await db.schema.alterTable("jobs").addColumn("timeout_ms", "int4").execute();
    },
  },
  "202611272110_email_outbox": {
    async up(db: Kysely<any>) {
      // Credit notices (credits.low, credits.exhausted) an operator relays by email: one row per
      // billing event, keyed by its id; recipient null when billing knows no owner email.
      await db.schema
        .createTable("email_outbox")
        .addColumn("id", "text", (column) => column.primaryKey())
        .addColumn("account_id", "text", (column) => column.notNull())
        .addColumn("kind", "text", (column) => column.notNull())
        .addColumn("recipient", "text")
        .addColumn("subject", "text", (column) => column.notNull())
        .addColumn("body", "text", (column) => column.notNull())
        .addColumn("created_at", "timestamptz", (column) => column.notNull())
        .addColumn("sent_at", "timestamptz")
        .execute();
      await sql`create index email_outbox_unsent on email_outbox (created_at) where sent_at is null`.execute(db);
    },
  },
  "202611272111_jobs_usage": {
    async up(db: Kysely<any>) {
      // Who a job's usage is recorded against, so a replacement hold is recorded like the first.
      await db.schema.alterTable("jobs").addColumn("api_key_id", "text").execute();
      await db.schema.alterTable("jobs").addColumn("member_id", "text").execute();
    },
  },
};

/** The orchestrator's migrations for the shared runner (services/common/migrate.ts). */
export const orchestratorMigrationSet: ServiceMigrations = { service: "orchestrator", migrations: orchestratorMigrations };
