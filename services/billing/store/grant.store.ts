// Grants: buckets, each booked with its ledger entry and its pool's balance in the same
// transaction; their expiry (billing_expire_buckets) and the carry-over on a plan change.
import { sql, type Selectable } from "kysely";
import type { CarryOver, CutBack } from "../domain/accounts.ts";
import type { ResolvedGrant } from "../domain/grants.ts";
import type { BillingExecutor, BucketTable, GrantRefundTable, PoolName } from "./schema.ts";
import { onlyRow } from "./views.ts";

export interface NewBucket {
  creditAccountId: number;
  grant: ResolvedGrant;
  grantKey: string;
  description: string | null;
  now: Date;
}

export class GrantStore {
  readonly #db: BillingExecutor;

  constructor(db: BillingExecutor) {
    this.#db = db;
  }

  /** Locks the pool a grant goes to; undefined when the account has no such pool. Needs a transaction. */
  async lockPool(accountId: string, pool: PoolName): Promise<number | undefined> {
    const row = await this.#db
      .selectFrom("billing_credit_accounts")
      .select("id")
      .where("account_id", "=", accountId)
      .where("pool", "=", pool)
      .forUpdate()
      .executeTakeFirst();
    return row?.id;
  }

  async bucketByKey(creditAccountId: number, grantKey: string): Promise<Selectable<BucketTable> | undefined> {
    return this.#db.selectFrom("billing_buckets").selectAll().where("credit_account_id", "=", creditAccountId).where("grant_key", "=", grantKey).executeTakeFirst();
  }

  /** Books the bucket, its grant entry and the pool's new remaining balance; the pool must be locked. */
  async addBucket(bucket: NewBucket): Promise<Selectable<BucketTable>> {
    const { creditAccountId, grant, now } = bucket;
    const row = await this.#db
      .insertInto("billing_buckets")
      .values({
        credit_account_id: creditAccountId,
        kind: grant.kind,
        granted_mc: grant.amountMillicredits,
        remaining_mc: grant.amountMillicredits,
        effective_at: grant.effectiveAt,
        expires_at: grant.expiresAt,
        priority: grant.priority,
        created_at: now,
        grant_key: bucket.grantKey,
        price_cents: grant.priceCents,
        description: bucket.description,
      })
      .returningAll()
      .executeTakeFirstOrThrow();
    await this.#db
      .insertInto("billing_ledger_entries")
      .values({ credit_account_id: creditAccountId, bucket_id: row.id, hold_id: null, kind: "grant", remaining_delta_mc: grant.amountMillicredits, held_delta_mc: 0, occurred_at: now })
      .execute();
    await this.#db
      .updateTable("billing_credit_accounts")
      .set((eb) => ({ remaining_mc: eb("remaining_mc", "+", grant.amountMillicredits) }))
      .where("id", "=", creditAccountId)
      .execute();
    return row;
  }

  /** Extends the pool's buckets that the carry-over covers, with an `extend` entry each; the pool must be locked. */
  async carryOver(creditAccountId: number, rule: CarryOver): Promise<void> {
    const carried = await this.#db
      .updateTable("billing_buckets")
      .set({ expires_at: rule.extendTo })
      .where("credit_account_id", "=", creditAccountId)
      .where("kind", "=", rule.kind)
      .where((eb) => eb.or([eb("remaining_mc", ">", 0), eb("held_mc", ">", 0)]))
      .where("expires_at", ">", rule.aliveAt)
      .where("expires_at", "<", rule.extendTo)
      .returning("id")
      .execute();
    if (carried.length === 0) return;
    await this.#db
      .insertInto("billing_ledger_entries")
      .values(carried.map(({ id }) => ({ credit_account_id: creditAccountId, bucket_id: id, hold_id: null, kind: "extend", remaining_delta_mc: 0, held_delta_mc: 0, occurred_at: rule.aliveAt })))
      .execute();
  }

  /**
   * Moves the expiry of the pool's buckets that the cut-back covers forward to its end, with an
   * `extend` entry each (the ledger's record of an expiry change, no amounts); the pool must be locked.
   */
  async cutBack(creditAccountId: number, rule: CutBack): Promise<void> {
    const cut = await this.#db
      .updateTable("billing_buckets")
      .set({ expires_at: rule.endAt })
      .where("credit_account_id", "=", creditAccountId)
      .where("kind", "=", rule.kind)
      .where((eb) => eb.or([eb("remaining_mc", ">", 0), eb("held_mc", ">", 0)]))
      .where((eb) => eb.or([eb("expires_at", "is", null), eb("expires_at", ">", rule.endAt)]))
      .where((eb) => eb.or([eb("expires_at", "is", null), eb("expires_at", ">", rule.aliveAt)]))
      .returning("id")
      .execute();
    if (cut.length === 0) return;
    await this.#db
      .insertInto("billing_ledger_entries")
      .values(cut.map(({ id }) => ({ credit_account_id: creditAccountId, bucket_id: id, hold_id: null, kind: "extend", remaining_delta_mc: 0, held_delta_mc: 0, occurred_at: rule.aliveAt })))
      .execute();
  }

  /** The pool (credit account id) that holds the account's bucket; undefined when the account has no such bucket. */
  async poolOfBucket(accountId: string, bucketId: number): Promise<number | undefined> {
    const row = await this.#db
      .selectFrom("billing_buckets")
      .innerJoin("billing_credit_accounts", "billing_credit_accounts.id", "billing_buckets.credit_account_id")
      .select("billing_buckets.credit_account_id")
      .where("billing_buckets.id", "=", bucketId)
      .where("billing_credit_accounts.account_id", "=", accountId)
      .executeTakeFirst();
    return row?.credit_account_id;
  }

  /** Locks the pool by its id (the lock every bucket change takes first). Needs a transaction. */
  async lockPoolById(creditAccountId: number): Promise<void> {
    await this.#db.selectFrom("billing_credit_accounts").select("id").where("id", "=", creditAccountId).forUpdate().executeTakeFirstOrThrow();
  }

  async bucketById(bucketId: number): Promise<Selectable<BucketTable> | undefined> {
    return this.#db.selectFrom("billing_buckets").selectAll().where("id", "=", bucketId).executeTakeFirst();
  }

  async refundByKey(creditAccountId: number, refundKey: string): Promise<Selectable<GrantRefundTable> | undefined> {
    return this.#db.selectFrom("billing_grant_refunds").selectAll().where("credit_account_id", "=", creditAccountId).where("refund_key", "=", refundKey).executeTakeFirst();
  }

  /** What the bucket's earlier refunds asked for together (taken or not). */
  async requestedRefunds(bucketId: number): Promise<number> {
    const row = await this.#db
      .selectFrom("billing_grant_refunds")
      .select((eb) => eb.fn.coalesce(eb.fn.sum<number>("requested_mc"), eb.lit(0)).as("requested"))
      .where("bucket_id", "=", bucketId)
      .executeTakeFirstOrThrow();
    return Number(row.requested);
  }

  /**
   * Takes up to `requestedMillicredits` of the bucket's remaining (unspent, unheld) credits back:
   * the bucket's voided_mc, a `refund` entry and the pool's balance move together, and the refund
   * is kept under its key. What it cannot take now is owed on the bucket (owed_mc). The pool must
   * be locked. Returns what it took now.
   */
  async takeBack(refund: { creditAccountId: number; bucket: Selectable<BucketTable>; requestedMillicredits: number; refundKey: string; now: Date }): Promise<number> {
    const { creditAccountId, bucket, now } = refund;
    const taken = Math.min(refund.requestedMillicredits, bucket.remaining_mc);
    // What open holds keep is owed, and billing_settle takes it when they give it back; what was
    // spent already is gone (unrecovered), so the debt never exceeds what is held.
    const owed = Math.min(refund.requestedMillicredits - taken, bucket.held_mc - bucket.owed_mc);
    if (taken > 0 || owed > 0) {
      await this.#db
        .updateTable("billing_buckets")
        .set((eb) => ({ remaining_mc: eb("remaining_mc", "-", taken), voided_mc: eb("voided_mc", "+", taken), owed_mc: eb("owed_mc", "+", owed) }))
        .where("id", "=", bucket.id)
        .execute();
    }
    if (taken > 0) {
      await this.#db
        .insertInto("billing_ledger_entries")
        .values({ credit_account_id: creditAccountId, bucket_id: bucket.id, hold_id: null, kind: "refund", remaining_delta_mc: -taken, held_delta_mc: 0, occurred_at: now })
        .execute();
      await this.#db
        .updateTable("billing_credit_accounts")
        .set((eb) => ({ remaining_mc: eb("remaining_mc", "-", taken) }))
        .where("id", "=", creditAccountId)
        .execute();
    }
    await this.#db
      .insertInto("billing_grant_refunds")
      .values({ credit_account_id: creditAccountId, refund_key: refund.refundKey, bucket_id: bucket.id, requested_mc: refund.requestedMillicredits, refunded_mc: taken, occurred_at: now })
      .execute();
    return taken;
  }

  /** Pools holding credits past their expiry. */
  async poolsWithExpiredCredits(now: Date, batchSize: number): Promise<number[]> {
    const rows = await this.#db
      .selectFrom("billing_buckets")
      .select("credit_account_id")
      .distinct()
      .where("remaining_mc", ">", 0)
      .where("expires_at", "<=", now)
      .limit(batchSize)
      .execute();
    return rows.map((row) => row.credit_account_id);
  }

  /** Books the pool's expired credits as expired (one call, under the pool's lock); returns how many buckets. */
  async expire(creditAccountId: number, now: Date, emitEvents: boolean): Promise<number> {
    const { rows } = await sql<{ count: number }>`select billing_expire_buckets(${creditAccountId}::bigint,
          ${now.toISOString()}::timestamptz, ${emitEvents}) as count`.execute(this.#db);
    return onlyRow(rows, "billing_expire_buckets").count;
  }
}
