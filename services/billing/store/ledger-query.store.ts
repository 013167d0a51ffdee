// Reads for balances and history: live buckets, spendable credits, ledger entries and settled
// holds, newest first by an index-backed cursor.
import { sql, type Selectable } from "kysely";
import type { BillingExecutor, BucketTable, CreditAccountTable, PoolName } from "./schema.ts";
import { onlyRow, toDate, type AccountSummaryView, type LedgerEntryView, type UsageDayView, type UsageRecordView, type UsageTotalView } from "./views.ts";

export class LedgerQueryStore {
  readonly #db: BillingExecutor;

  constructor(db: BillingExecutor) {
    this.#db = db;
  }

  async pool(accountId: string, pool: PoolName): Promise<Selectable<CreditAccountTable> | undefined> {
    return this.#db.selectFrom("billing_credit_accounts").selectAll().where("account_id", "=", accountId).where("pool", "=", pool).executeTakeFirst();
  }

  /** Buckets with credits left or held that have not expired, in spend order. */
  async liveBuckets(creditAccountId: number, now: Date): Promise<Selectable<BucketTable>[]> {
    return this.#db
      .selectFrom("billing_buckets")
      .selectAll()
      .where("credit_account_id", "=", creditAccountId)
      .where((eb) => eb.or([eb("remaining_mc", ">", 0), eb("held_mc", ">", 0)]))
      .where((eb) => eb.or([eb("expires_at", "is", null), eb("expires_at", ">", now)]))
      .orderBy(sql`expires_at nulls last`)
      .orderBy("priority")
      .orderBy("created_at")
      .orderBy("id")
      .execute();
  }

  /** What the pool can spend now: remaining credits of buckets in effect and not expired. */
  async spendable(creditAccountId: number, now: Date): Promise<number> {
    const { rows } = await sql<{ available: number }>`select billing_spendable_mc(${creditAccountId}::bigint, ${now.toISOString()}::timestamptz) as available`.execute(this.#db);
    return onlyRow(rows, "billing_spendable_mc").available;
  }

  /** Up to `limit` entries older than `beforeId` (all when undefined), newest first. */
  async entries(query: { creditAccountId: number; beforeId: number | undefined; limit: number }): Promise<LedgerEntryView[]> {
    let select = this.#db.selectFrom("billing_ledger_entries").selectAll().where("credit_account_id", "=", query.creditAccountId);
    if (query.beforeId !== undefined) select = select.where("id", "<", query.beforeId);
    const rows = await select.orderBy("id", "desc").limit(query.limit).execute();
    return rows.map((row) => ({
      id: row.id,
      kind: row.kind,
      bucketId: row.bucket_id,
      holdId: row.hold_id,
      remainingDeltaMillicredits: row.remaining_delta_mc,
      heldDeltaMillicredits: row.held_delta_mc,
      occurredAt: toDate(row.occurred_at),
    }));
  }

  /** Up to `limit` settled holds before the cursor (all when undefined), newest first. */
  async settledHolds(query: { creditAccountId: number; before: { createdAt: Date; id: string } | undefined; limit: number }): Promise<UsageRecordView[]> {
    let select = this.#db.selectFrom("billing_holds").selectAll().where("credit_account_id", "=", query.creditAccountId).where("status", "<>", "open");
    const { before } = query;
    if (before) {
      select = select.where((eb) => eb.or([eb("created_at", "<", before.createdAt), eb.and([eb("created_at", "=", before.createdAt), eb("id", "<", before.id)])]));
    }
    const rows = await select.orderBy("created_at", "desc").orderBy("id", "desc").limit(query.limit).execute();
    return rows.map((row) => ({
      holdId: row.id,
      status: row.status,
      heldMillicredits: row.amount_mc,
      capturedMillicredits: row.captured_mc,
      overageMillicredits: row.captured_overage_mc,
      memberId: row.member_id,
      apiKeyId: row.api_key_id,
      description: row.description,
      createdAt: toDate(row.created_at),
      settledAt: row.settled_at === null ? null : toDate(row.settled_at),
      priceBookVersion: row.price_book_version ?? "",
    }));
  }

  /** Up to `limit` accounts after `afterAccountId` (from the first when undefined), by id, with their API pool's balance. */
  async accountSummaries(query: { afterAccountId: string | undefined; limit: number; now: Date }): Promise<AccountSummaryView[]> {
    const after = query.afterAccountId ?? null;
    const { rows } = await sql<{ account_id: string; plan_code: string; available: number; held: number }>`
      select a.account_id, a.plan_code, billing_spendable_mc(c.id, ${query.now.toISOString()}::timestamptz) as available, c.held_mc as held
      from billing_accounts a join billing_credit_accounts c on c.account_id = a.account_id and c.pool = 'api'
      where ${after}::text is null or a.account_id > ${after}::text
      order by a.account_id
      limit ${query.limit}`.execute(this.#db);
    return rows.map((row) => ({ accountId: row.account_id, planCode: row.plan_code, availableMillicredits: Number(row.available), heldMillicredits: Number(row.held) }));
  }

  async cycleIndexOf(accountId: string): Promise<number> {
    return (await this.#db.selectFrom("billing_accounts").select("cycle_index").where("account_id", "=", accountId).executeTakeFirstOrThrow()).cycle_index;
  }

  /** Captured credits and calls this cycle, per member and then per API key, each sorted by key. */
  async usageTotals(creditAccountId: number, cycleIndex: number): Promise<UsageTotalView[]> {
    const totals: UsageTotalView[] = [];
    for (const [dimension, column] of [["member", "member_id"], ["api_key", "api_key_id"]] as const) {
      const grouped = await this.#db
        .selectFrom("billing_holds")
        .select([column, (eb) => eb.fn.sum<number>("captured_mc").as("captured"), (eb) => eb.fn.countAll<number>().as("calls")])
        .where("credit_account_id", "=", creditAccountId)
        .where("status", "=", "captured")
        .where("cycle_index", "=", cycleIndex)
        .where(column, "is not", null)
        .groupBy(column)
        .orderBy(column)
        .execute();
      for (const row of grouped) totals.push({ dimension, key: String(row[column]), capturedMillicredits: Number(row.captured), calls: Number(row.calls) });
    }
    return totals;
  }

  /**
   * Captured credits and calls this cycle per UTC day, API key and member, oldest day first; at
   * most `rowsMax` rows (a cycle has at most 31 days, so only an account with very many keys and
   * members reaches it).
   */
  async usageDays(creditAccountId: number, cycleIndex: number, rowsMax: number): Promise<UsageDayView[]> {
    const { rows } = await sql<{ day: string; api_key_id: string | null; member_id: string | null; captured: string | number; calls: string | number }>`
      select to_char(created_at at time zone 'UTC', 'YYYY-MM-DD') as day, api_key_id, member_id,
             sum(captured_mc) as captured, count(*) as calls
      from billing_holds
      where credit_account_id = ${creditAccountId} and status = 'captured' and cycle_index = ${cycleIndex}
      group by day, api_key_id, member_id
      order by day, api_key_id nulls first, member_id nulls first
      limit ${rowsMax}`.execute(this.#db);
    return rows.map((row) => ({
      date: row.day,
      apiKeyId: row.api_key_id ?? "",
      memberId: row.member_id ?? "",
      capturedMillicredits: Number(row.captured),
      calls: Number(row.calls),
    }));
  }

  /** Up to `limit` closed cycles of the account after `afterCycleIndex`, oldest first. */
  async cycleReports(query: { accountId: string; afterCycleIndex: number; limit: number }): Promise<CycleReportView[]> {
    const rows = await this.#db
      .selectFrom("billing_cycle_reports")
      .selectAll()
      .where("account_id", "=", query.accountId)
      .where("cycle_index", ">", query.afterCycleIndex)
      .orderBy("cycle_index")
      .limit(query.limit)
      .execute();
    return rows.map((row) => ({
      cycleIndex: row.cycle_index,
      planCode: row.plan_code,
      startedAt: toDate(row.started_at),
      endedAt: toDate(row.ended_at),
      overageMillicredits: Number(row.overage_mc),
      overageCents: Number(row.overage_cents),
    }));
  }
}

/** A closed billing cycle and its overage (billing_cycle_reports). */
export interface CycleReportView {
  cycleIndex: number;
  planCode: string;
  startedAt: Date;
  endedAt: Date;
  overageMillicredits: number;
  overageCents: number;
}
