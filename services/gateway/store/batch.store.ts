import type { Generated, Kysely, Selectable } from "kysely";

export interface BatchTable {
  id: string;
  account_id: string;
  idempotency_key: string;
  request_fingerprint: string;
  item_count: number;
  created_at: Generated<Date>;
}

/** One image of a batch: the job it became, or the refusal that kept it from becoming one. */
export interface BatchItemTable {
  batch_id: string;
  item_index: number;
  job_id: string | null;
  error_code: string | null;
  error_title: string | null;
}

export interface BatchSchema {
  batches: BatchTable;
  batch_items: BatchItemTable;
}

export type BatchRow = Selectable<BatchTable>;
export type BatchItemRow = Selectable<BatchItemTable>;

export type BatchItemOutcome = { jobId: string } | { error: { code: string; title: string } };

/** Batches and their items. Items are written as they are submitted; a replay writes the same again. */
export class BatchStore {
  constructor(private readonly db: Kysely<BatchSchema>) {}

  /** Records the batch, or returns the one this account already made with the same idempotency key. */
  async insertOrGet(batch: Omit<BatchRow, "created_at">): Promise<{ batch: BatchRow; created: boolean }> {
    const inserted = await this.db
      .insertInto("batches")
      .values(batch)
      .onConflict((conflict) => conflict.columns(["account_id", "idempotency_key"]).doNothing())
      .returningAll()
      .executeTakeFirst();
    if (inserted) return { batch: inserted, created: true };
    const existing = await this.db
      .selectFrom("batches")
      .selectAll()
      .where("account_id", "=", batch.account_id)
      .where("idempotency_key", "=", batch.idempotency_key)
      .executeTakeFirstOrThrow();
    return { batch: existing, created: false };
  }

  /** The account's batch; another account's answers like a missing one. */
  async get(accountId: string, id: string): Promise<BatchRow | undefined> {
    return this.db.selectFrom("batches").selectAll().where("id", "=", id).where("account_id", "=", accountId).executeTakeFirst();
  }

  async items(batchId: string): Promise<BatchItemRow[]> {
    return this.db.selectFrom("batch_items").selectAll().where("batch_id", "=", batchId).orderBy("item_index").execute();
  }

  /** Records an item's outcome; a replay's (the same job, by the item's derived key) overwrites it. */
  async recordItem(batchId: string, index: number, outcome: BatchItemOutcome): Promise<void> {
    const values =
      "jobId" in outcome
        ? { job_id: outcome.jobId, error_code: null, error_title: null }
        : { job_id: null, error_code: outcome.error.code, error_title: outcome.error.title };
    await this.db
      .insertInto("batch_items")
      .values({ batch_id: batchId, item_index: index, ...values })
      .onConflict((conflict) => conflict.columns(["batch_id", "item_index"]).doUpdateSet(values))
      .execute();
  }
}
