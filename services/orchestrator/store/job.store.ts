import type { Generated, Kysely, Selectable } from "kysely";
import type { JobStatus } from "../domain/job-status.ts";

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
  high_priority: boolean;
  longest_side_max: Generated<number>;
  processing_time_ms: number | null;
  created_at: Generated<Date>;
  updated_at: Generated<Date>;
}

export interface OrchestratorSchema {
  jobs: JobTable;
}

export type JobRow = Selectable<JobTable>;

export type NewJob = Pick<
  JobTable,
  "id" | "account_id" | "idempotency_key" | "input_blob_key" | "result_blob_key" | "options" | "hold_id" | "held_millicredits" | "high_priority"
> & { longest_side_max: number };

export interface JobUpdate {
  result_content_type?: string;
  charged_millicredits?: number;
  available_millicredits?: number;
  error_reason?: string;
  error_message?: string;
  processing_time_ms?: number;
}

/** The jobs table. Every status change is a compare-and-set on the previous status. */
export class JobStore {
  constructor(private readonly db: Kysely<OrchestratorSchema>) {}

  /** Inserts the job, or returns the one already submitted with the same idempotency key. */
  async insertOrGet(job: NewJob): Promise<{ job: JobRow; created: boolean }> {
    const inserted = await this.db
      .insertInto("jobs")
      .values({ ...job, status: "queued" })
      .onConflict((conflict) => conflict.columns(["account_id", "idempotency_key"]).doNothing())
      .returningAll()
      .executeTakeFirst();
    if (inserted) return { job: inserted, created: true };
    const existing = await this.db
      .selectFrom("jobs")
      .selectAll()
      .where("account_id", "=", job.account_id)
      .where("idempotency_key", "=", job.idempotency_key)
      .executeTakeFirstOrThrow();
    return { job: existing, created: false };
  }

  async get(id: string): Promise<JobRow | undefined> {
    return this.db.selectFrom("jobs").selectAll().where("id", "=", id).executeTakeFirst();
  }

  /** Moves the job from `from` to `to`; undefined when another writer changed it first. */
  async transition(id: string, from: JobStatus, to: JobStatus, update: JobUpdate = {}): Promise<JobRow | undefined> {
    return this.db
      .updateTable("jobs")
      .set({ ...update, status: to, updated_at: new Date() })
      .where("id", "=", id)
      .where("status", "=", from)
      .returningAll()
      .executeTakeFirst();
  }
}
