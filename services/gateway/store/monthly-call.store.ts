import { sql, type Kysely } from "kysely";

export interface MonthlyCallTable {
  account_id: string;
  /** The billing cycle the count belongs to, by its start: a new cycle starts a new row at zero. */
  cycle_started_at: Date;
  calls: number;
}

export interface MonthlyCallSchema {
  gateway_monthly_calls: MonthlyCallTable;
}

/**
 * Calls per account per billing cycle, against the plan's monthly quota. One row per account and
 * cycle, taken with a single conditional upsert: the count survives gateway restarts and is shared
 * by every replica on the same database, and two calls racing for the last unit cannot both get it.
 */
export class MonthlyCallStore {
  constructor(private readonly db: Kysely<MonthlyCallSchema>) {}

  /**
   * Counts `calls` (one call, or a batch's items) for the account's cycle if the total stays
   * within `callsMax`; returns the total including them, or undefined when they do not fit
   * (nothing is counted).
   */
  async take(accountId: string, cycleStartedAt: Date, callsMax: number, calls = 1): Promise<number | undefined> {
    const { rows } = await sql<{ calls: string | number }>`
      insert into gateway_monthly_calls (account_id, cycle_started_at, calls)
      select ${accountId}, ${cycleStartedAt.toISOString()}::timestamptz, ${calls}::bigint where ${calls}::bigint <= ${callsMax}::bigint
      on conflict (account_id, cycle_started_at) do update set calls = gateway_monthly_calls.calls + excluded.calls
      where gateway_monthly_calls.calls + excluded.calls <= ${callsMax}::bigint
      returning calls`.execute(this.db);
    const total = rows[0] === undefined ? undefined : Number(rows[0].calls);
    // The first calls of a cycle drop the account's earlier cycles: one row per account stays.
    if (total === calls) {
      await this.db.deleteFrom("gateway_monthly_calls").where("account_id", "=", accountId).where("cycle_started_at", "<", cycleStartedAt).execute();
    }
    return total;
  }

  /** Calls counted in the account's cycle so far. */
  async count(accountId: string, cycleStartedAt: Date): Promise<number> {
    const row = await this.db
      .selectFrom("gateway_monthly_calls")
      .select("calls")
      .where("account_id", "=", accountId)
      .where("cycle_started_at", "=", cycleStartedAt)
      .executeTakeFirst();
    return row ? Number(row.calls) : 0;
  }
}
