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

  async remove(ids: readonly number[]): Promise<void> {
    if (ids.length === 0) return;
    await this.#db.deleteFrom("billing_outbox").where("id", "in", ids).execute();
  }
}
