import { sql, type Generated, type Kysely } from "kysely";

export interface PaymentCustomerTable {
  account_id: string;
  provider: string;
  customer_id: string;
  subscription_id: string | null;
  subscribed_at: Date | null;
  overage_cycle_index_done: Generated<number>;
  created_at: Generated<Date>;
}

export interface PaymentEventTable {
  event_id: string;
  kind: string;
  claimed_at: Date;
  done_at: Date | null;
}

export interface PaymentPurchaseTable {
  payment_id: string;
  account_id: string;
  product_code: string;
  bucket_id: string;
  amount_minor: string | number;
  currency: string;
  refunded_minor: Generated<string | number>;
  refund_flagged_at: Date | null;
  created_at: Generated<Date>;
}

export interface PaymentOverageReportTable {
  account_id: string;
  cycle_started_at: Date;
  reported_millicredits: string | number;
  pending_millicredits: string | number | null;
  pending_since: Date | null;
}

export interface PaymentSchema {
  payment_customers: PaymentCustomerTable;
  payment_events: PaymentEventTable;
  payment_purchases: PaymentPurchaseTable;
  payment_overage_reports: PaymentOverageReportTable;
}

export interface SubscribedAccount {
  accountId: string;
  customerId: string;
  /** Start of the first cycle the subscription pays for. */
  subscribedAt: Date;
  /** Closed cycles up to this index are reconciled with the provider. */
  overageCycleIndexDone: number;
}

/** How a claim on an event went: ours to process, already done, or being processed by another delivery. */
export type EventClaim = "claimed" | "done" | "in_progress";

export interface PurchaseView {
  paymentId: string;
  accountId: string;
  productCode: string;
  bucketId: string;
  amountMinor: number;
  refundedMinor: number;
  refundFlaggedAt: Date | undefined;
}

/**
 * The payment provider's side of an account: its customer and subscription, the provider events
 * already applied, one-off purchases (for refunds) and the overage already reported.
 */
export class PaymentStore {
  constructor(private readonly db: Kysely<PaymentSchema>) {}

  async customerOf(accountId: string): Promise<{ customerId: string; subscriptionId: string | undefined } | undefined> {
    const row = await this.db.selectFrom("payment_customers").select(["customer_id", "subscription_id"]).where("account_id", "=", accountId).executeTakeFirst();
    return row ? { customerId: row.customer_id, subscriptionId: row.subscription_id ?? undefined } : undefined;
  }

  /** Keeps the first customer recorded for the account; returns the one kept. */
  async putCustomer(accountId: string, provider: string, customerId: string): Promise<string> {
    await this.db.insertInto("payment_customers").values({ account_id: accountId, provider, customer_id: customerId, subscription_id: null, subscribed_at: null }).onConflict((conflict) => conflict.column("account_id").doNothing()).execute();
    return (await this.customerOf(accountId))!.customerId;
  }

  /**
   * Records the account's subscription (null when it ended) and, when it starts, the start of the
   * first cycle it pays for; the customer row is made if missing.
   */
  async setSubscription(input: { accountId: string; provider: string; customerId: string | undefined; subscriptionId: string | null; subscribedAt?: Date }): Promise<void> {
    if (input.customerId) await this.putCustomer(input.accountId, input.provider, input.customerId);
    const changes = input.subscribedAt ? { subscription_id: input.subscriptionId, subscribed_at: input.subscribedAt } : { subscription_id: input.subscriptionId };
    await this.db.updateTable("payment_customers").set(changes).where("account_id", "=", input.accountId).execute();
  }

  /** The account a subscription belongs to, when it was recorded here. */
  async accountOfSubscription(subscriptionId: string): Promise<string | undefined> {
    const row = await this.db.selectFrom("payment_customers").select("account_id").where("subscription_id", "=", subscriptionId).executeTakeFirst();
    return row?.account_id;
  }

  /** Accounts with a live subscription, after `afterAccountId`, by account id. */
  async subscribedAccounts(afterAccountId: string, limit: number): Promise<SubscribedAccount[]> {
    const rows = await this.db
      .selectFrom("payment_customers")
      .select(["account_id", "customer_id", "subscribed_at", "overage_cycle_index_done"])
      .where("subscription_id", "is not", null)
      .where("account_id", ">", afterAccountId)
      .orderBy("account_id")
      .limit(limit)
      .execute();
    return rows.map((row) => ({
      accountId: row.account_id,
      customerId: row.customer_id,
      subscribedAt: row.subscribed_at ?? new Date(0),
      overageCycleIndexDone: row.overage_cycle_index_done,
    }));
  }

  /** Moves the account's reconciled-cycle cursor forward (never back). */
  async setOverageCycleIndexDone(accountId: string, cycleIndex: number): Promise<void> {
    await this.db.updateTable("payment_customers").set({ overage_cycle_index_done: cycleIndex }).where("account_id", "=", accountId).where("overage_cycle_index_done", "<", cycleIndex).execute();
  }

  /**
   * Claims an event for processing. A claim not marked done within `staleAfterSeconds` (a gateway
   * that crashed mid-event) is taken over by the next delivery.
   */
  async claimEvent(eventId: string, kind: string, now: Date, staleAfterSeconds: number): Promise<EventClaim> {
    const staleBefore = new Date(now.getTime() - staleAfterSeconds * 1000);
    const { rows } = await sql<{ event_id: string }>`
      insert into payment_events (event_id, kind, claimed_at) values (${eventId}, ${kind}, ${now.toISOString()}::timestamptz)
      on conflict (event_id) do update set claimed_at = excluded.claimed_at
      where payment_events.done_at is null and payment_events.claimed_at < ${staleBefore.toISOString()}::timestamptz
      returning event_id`.execute(this.db);
    if (rows.length > 0) return "claimed";
    const row = await this.db.selectFrom("payment_events").select("done_at").where("event_id", "=", eventId).executeTakeFirst();
    return row?.done_at ? "done" : "in_progress";
  }

  async finishEvent(eventId: string, now: Date): Promise<void> {
    await this.db.updateTable("payment_events").set({ done_at: now }).where("event_id", "=", eventId).execute();
  }

  /** Gives a failed event's claim back, so the provider's retry processes it. */
  async abandonEvent(eventId: string): Promise<void> {
    await this.db.deleteFrom("payment_events").where("event_id", "=", eventId).where("done_at", "is", null).execute();
  }

  async putPurchase(input: { paymentId: string; accountId: string; productCode: string; bucketId: string; amountMinor: number; currency: string }): Promise<void> {
    await this.db
      .insertInto("payment_purchases")
      .values({ payment_id: input.paymentId, account_id: input.accountId, product_code: input.productCode, bucket_id: input.bucketId, amount_minor: input.amountMinor, currency: input.currency })
      .onConflict((conflict) => conflict.column("payment_id").doNothing())
      .execute();
  }

  async purchase(paymentId: string): Promise<PurchaseView | undefined> {
    const row = await this.db.selectFrom("payment_purchases").selectAll().where("payment_id", "=", paymentId).executeTakeFirst();
    if (!row) return undefined;
    return {
      paymentId: row.payment_id,
      accountId: row.account_id,
      productCode: row.product_code,
      bucketId: row.bucket_id,
      amountMinor: Number(row.amount_minor),
      refundedMinor: Number(row.refunded_minor),
      refundFlaggedAt: row.refund_flagged_at ?? undefined,
    };
  }

  /** Records the refunded total (Stripe sends the cumulative amount) and flags the purchase. */
  async flagRefund(paymentId: string, refundedMinor: number, now: Date): Promise<void> {
    await this.db.updateTable("payment_purchases").set({ refunded_minor: refundedMinor, refund_flagged_at: now }).where("payment_id", "=", paymentId).execute();
  }

  /**
   * Claims the right to report the cycle's overage up to `totalMillicredits`. Answers what to send
   * (`pendingMillicredits` minus `reportedMillicredits`), or undefined when there is nothing new or
   * another reporter holds a fresh claim. A claim older than `staleAfterSeconds` (a reporter that
   * crashed) is taken over with its own total, so the provider sees the same report again and
   * drops it by its identifier.
   */
  async claimOverage(input: { accountId: string; cycleStartedAt: Date; totalMillicredits: number; now: Date; staleAfterSeconds: number }): Promise<{ reportedMillicredits: number; pendingMillicredits: number } | undefined> {
    const staleBefore = new Date(input.now.getTime() - input.staleAfterSeconds * 1000);
    const { rows } = await sql<{ reported_millicredits: string | number; pending_millicredits: string | number }>`
      insert into payment_overage_reports (account_id, cycle_started_at, reported_millicredits, pending_millicredits, pending_since)
      values (${input.accountId}, ${input.cycleStartedAt.toISOString()}::timestamptz, 0, ${input.totalMillicredits}::bigint, ${input.now.toISOString()}::timestamptz)
      on conflict (account_id, cycle_started_at) do update
        set pending_millicredits = coalesce(payment_overage_reports.pending_millicredits, excluded.pending_millicredits), pending_since = excluded.pending_since
        where (payment_overage_reports.pending_millicredits is null and payment_overage_reports.reported_millicredits < excluded.pending_millicredits)
           or payment_overage_reports.pending_since < ${staleBefore.toISOString()}::timestamptz
      returning reported_millicredits, pending_millicredits`.execute(this.db);
    const row = rows[0];
    return row ? { reportedMillicredits: Number(row.reported_millicredits), pendingMillicredits: Number(row.pending_millicredits) } : undefined;
  }

  /** The overage of the account's cycle the provider has (0 when none was reported), in millicredits. */
  async reportedOverage(accountId: string, cycleStartedAt: Date): Promise<number> {
    const row = await this.db
      .selectFrom("payment_overage_reports")
      .select("reported_millicredits")
      .where("account_id", "=", accountId)
      .where("cycle_started_at", "=", cycleStartedAt)
      .executeTakeFirst();
    return row ? Number(row.reported_millicredits) : 0;
  }

  /** The claimed total reached the provider: it becomes the reported total. */
  async finishOverage(accountId: string, cycleStartedAt: Date, pendingMillicredits: number): Promise<void> {
    await this.db
      .updateTable("payment_overage_reports")
      .set({ reported_millicredits: pendingMillicredits, pending_millicredits: null, pending_since: null })
      .where("account_id", "=", accountId)
      .where("cycle_started_at", "=", cycleStartedAt)
      .where("pending_millicredits", "=", pendingMillicredits)
      .execute();
  }

  /** The provider call failed: the claim is given back for the next run. */
  async abandonOverage(accountId: string, cycleStartedAt: Date, pendingMillicredits: number): Promise<void> {
    await this.db
      .updateTable("payment_overage_reports")
      .set({ pending_millicredits: null, pending_since: null })
      .where("account_id", "=", accountId)
      .where("cycle_started_at", "=", cycleStartedAt)
      .where("pending_millicredits", "=", pendingMillicredits)
      .execute();
  }
}
