// The outbox: events written in the same transaction as the change they describe, relayed to
// the bus afterwards, so a crash between commit and publish delays an event but never loses it.
import type { BillingExecutor } from "./schema.ts";

export interface OutboxEvent {
  id: number;
  subject: string;
  payload: Record<string, unknown>;
}

export class OutboxStore {
  readonly #db: BillingExecutor;

  constructor(db: BillingExecutor) {
    this.#db = db;
  }

  /**
   * Locks up to `batchSize` pending events in order, skipping those another relay holds, so two
   * relays never publish the same batch at once. Needs a transaction, held until they are removed.
   */
  async lockPending(batchSize: number): Promise<OutboxEvent[]> {
    const rows = await this.#db.selectFrom("billing_outbox").selectAll().orderBy("id").limit(batchSize).forUpdate().skipLocked().execute();
    return rows.map((row) => ({
      id: row.id,
      subject: row.subject,
      payload: typeof row.payload === "string" ? (JSON.parse(row.payload) as Record<string, unknown>) : row.payload,
    }));
  }

  /** Writes one event in the caller's transaction. */
  async add(subject: string, payload: Record<string, unknown>, now: Date): Promise<void> {
    await this.#db.insertInto("billing_outbox").values({ subject, payload: JSON.stringify(payload), created_at: now }).execute();
  }

  /**
   * The pool's balance events for a drop from `beforeMc` to `afterMc` that is not a capture (a
   * refund): credits.low when it crosses the pool's threshold, credits.exhausted when it reaches 0,
   * the same events billing_settle writes for a capture.
   */
  async balanceDropped(creditAccountId: number, beforeMc: number, afterMc: number, now: Date): Promise<void> {
    if (afterMc >= beforeMc) return;
    const pool = await this.#db.selectFrom("billing_credit_accounts").select(["account_id", "pool", "low_balance_threshold_mc"]).where("id", "=", creditAccountId).executeTakeFirstOrThrow();
    const occurredAt = now.toISOString();
    const threshold = pool.low_balance_threshold_mc;
    if (threshold > 0 && beforeMc >= threshold && afterMc < threshold && afterMc > 0) {
      await this.add("credits.low", { account_id: pool.account_id, pool: pool.pool, available_mc: afterMc, threshold_mc: threshold, occurred_at: occurredAt }, now);
    }
    if (afterMc === 0 && beforeMc > 0) await this.add("credits.exhausted", { account_id: pool.account_id, pool: pool.pool, occurred_at: occurredAt }, now);
  }

  async remove(ids: readonly number[]): Promise<void> {
    if (ids.length === 0) return;
    await this.#db.deleteFrom("billing_outbox").where("id", "in", ids).execute();
  }
}
