// Accounts and the plan catalogue: the account row and its pools (locked together), cycles and
// their reports, members, plans and packs.
import { sql, type Selectable } from "kysely";
import type { Cycle, MemberRole } from "../domain/accounts.ts";
import { effectiveOnExhausted } from "../domain/exhaustion.ts";
import { overageCents, type OnExhausted, type Pack, type Plan } from "../domain/plans.ts";
import { DEFAULT_RENEWALS, type AccountTable, type BillingExecutor, type CreditAccountTable, type Renewals } from "./schema.ts";
import { planFromRow, toDate, type AccountView } from "./views.ts";

export interface LockedAccount {
  account: Selectable<AccountTable>;
  /** Every pool of the account, in id order. */
  pools: Selectable<CreditAccountTable>[];
}

export interface CycleReport {
  accountId: string;
  cycleIndex: number;
  plan: Plan;
  startedAt: Date;
  endedAt: Date;
}

export interface MemberRow {
  accountId: string;
  memberId: string;
  role: MemberRole;
  monthlyCapMillicredits: number | null;
  createdAt: Date;
  /** Where the account's notices go; undefined leaves it unknown. */
  email?: string;
}

/** An account row's cycle fields as the domain's Cycle. */
export function cycleOf(account: Selectable<AccountTable>): Cycle {
  return {
    anchorAt: toDate(account.cycle_anchor_at),
    cyclesSinceAnchor: account.cycles_since_anchor,
    cycleIndex: account.cycle_index,
    startedAt: toDate(account.cycle_started_at),
    nextRenewalAt: toDate(account.next_renewal_at),
  };
}

export class AccountStore {
  readonly #db: BillingExecutor;

  constructor(db: BillingExecutor) {
    this.#db = db;
  }

  async plan(code: string): Promise<Plan | undefined> {
    const row = await this.#db.selectFrom("billing_plans").selectAll().where("code", "=", code).executeTakeFirst();
    return row ? planFromRow(row) : undefined;
  }

  /** Plans offered for sale, cheapest first; unlisted plans (operators' test plan) can be assigned but are not offered. */
  async listedPlans(): Promise<Plan[]> {
    const rows = await this.#db.selectFrom("billing_plans").selectAll().where("listed", "=", true).orderBy("monthly_price_cents").orderBy("code").execute();
    return rows.map(planFromRow);
  }

  /** Packs on sale, cheapest first; packs the plans file dropped are kept unlisted and no longer sold. */
  async packs(): Promise<Pack[]> {
    const rows = await this.#db.selectFrom("billing_packs").selectAll().where("listed", "=", true).orderBy("price_cents").execute();
    return rows.map((row) => ({ code: row.code, priceCents: row.price_cents, creditsMillicredits: row.credits_mc, stripePriceId: row.stripe_price_id }));
  }

  async pack(code: string): Promise<Pack | undefined> {
    const row = await this.#db.selectFrom("billing_packs").selectAll().where("code", "=", code).where("listed", "=", true).executeTakeFirst();
    return row ? { code: row.code, priceCents: row.price_cents, creditsMillicredits: row.credits_mc, stripePriceId: row.stripe_price_id } : undefined;
  }

  /**
   * Locks the account row, then every pool of it in id order, so two multi-pool operations
   * never deadlock. Needs a transaction; undefined when there is no such account.
   */
  async lock(accountId: string): Promise<LockedAccount | undefined> {
    const account = await this.#db.selectFrom("billing_accounts").selectAll().where("account_id", "=", accountId).forUpdate().executeTakeFirst();
    if (!account) return undefined;
    const pools = await this.#db.selectFrom("billing_credit_accounts").selectAll().where("account_id", "=", accountId).orderBy("id").forUpdate().execute();
    return { account, pools };
  }

  /** Inserts the account unless it exists; true when this call created it. */
  async insert(account: { accountId: string; planCode: string; cycle: Cycle; createdAt: Date }): Promise<boolean> {
    const inserted = await this.#db
      .insertInto("billing_accounts")
      .values({
        account_id: account.accountId,
        plan_code: account.planCode,
        cycle_anchor_at: account.cycle.anchorAt,
        cycles_since_anchor: account.cycle.cyclesSinceAnchor,
        cycle_index: account.cycle.cycleIndex,
        cycle_started_at: account.cycle.startedAt,
        next_renewal_at: account.cycle.nextRenewalAt,
        created_at: account.createdAt,
      })
      .onConflict((conflict) => conflict.column("account_id").doNothing())
      .returning("account_id")
      .executeTakeFirst();
    return inserted !== undefined;
  }

  async planCodeOf(accountId: string): Promise<string> {
    return (await this.#db.selectFrom("billing_accounts").select("plan_code").where("account_id", "=", accountId).executeTakeFirstOrThrow()).plan_code;
  }

  /** The account's two pools, API and web, which never fund each other. */
  async openPools(accountId: string, lowBalanceThresholdMillicredits: number): Promise<void> {
    await this.#db
      .insertInto("billing_credit_accounts")
      .values([
        { account_id: accountId, pool: "api", low_balance_threshold_mc: lowBalanceThresholdMillicredits },
        { account_id: accountId, pool: "web", low_balance_threshold_mc: lowBalanceThresholdMillicredits },
      ])
      .execute();
  }

  /** Writes the account's cycle (and its plan, on a plan change). */
  async setCycle(accountId: string, cycle: Cycle, planCode?: string): Promise<void> {
    await this.#db
      .updateTable("billing_accounts")
      .set({
        ...(planCode === undefined ? {} : { plan_code: planCode }),
        cycle_anchor_at: cycle.anchorAt,
        cycles_since_anchor: cycle.cyclesSinceAnchor,
        cycle_index: cycle.cycleIndex,
        cycle_started_at: cycle.startedAt,
        next_renewal_at: cycle.nextRenewalAt,
      })
      .where("account_id", "=", accountId)
      .execute();
  }

  /** The account's choice when its credits run out; null: the plan's default. The account must be locked. */
  async setOnExhausted(accountId: string, onExhausted: OnExhausted | null): Promise<void> {
    await this.#db.updateTable("billing_accounts").set({ on_exhausted: onExhausted }).where("account_id", "=", accountId).execute();
  }

  /** Who grants the account's cycles from now on (billing, or the payment provider). The account must be locked. */
  async setRenewals(accountId: string, renewals: Renewals): Promise<void> {
    await this.#db.updateTable("billing_accounts").set({ renewals }).where("account_id", "=", accountId).execute();
  }

  /** The grant a provider's invoice made (its bucket; null when the plan granted nothing), or undefined when it made none yet. */
  async cycleGrant(accountId: string, invoiceKey: string): Promise<{ bucketId: number | null } | undefined> {
    const row = await this.#db.selectFrom("billing_cycle_grants").select("bucket_id").where("account_id", "=", accountId).where("invoice_key", "=", invoiceKey).executeTakeFirst();
    return row ? { bucketId: row.bucket_id } : undefined;
  }

  /** Keeps the invoice with the cycle it paid for, so a replay of it grants nothing. The account must be locked. */
  async putCycleGrant(grant: { accountId: string; invoiceKey: string; cyclesSinceAnchor: number; bucketId: number | null; now: Date }): Promise<void> {
    await this.#db
      .insertInto("billing_cycle_grants")
      .values({ account_id: grant.accountId, invoice_key: grant.invoiceKey, cycle_index: grant.cyclesSinceAnchor, bucket_id: grant.bucketId, occurred_at: grant.now })
      .execute();
  }

  async setLowBalanceThreshold(accountId: string, thresholdMillicredits: number): Promise<void> {
    await this.#db.updateTable("billing_credit_accounts").set({ low_balance_threshold_mc: thresholdMillicredits }).where("account_id", "=", accountId).execute();
  }

  /** Reports the ended cycle's overage (summed over pools, priced on the cycle's plan) and starts the next at zero. */
  async closeCycle(report: CycleReport): Promise<void> {
    const pools = await this.#db.selectFrom("billing_credit_accounts").select(["id", "cycle_overage_mc"]).where("account_id", "=", report.accountId).execute();
    const overageMillicredits = pools.reduce((sum, pool) => sum + pool.cycle_overage_mc, 0);
    await this.#db
      .insertInto("billing_cycle_reports")
      .values({
        account_id: report.accountId,
        cycle_index: report.cycleIndex,
        plan_code: report.plan.code,
        started_at: report.startedAt,
        ended_at: report.endedAt,
        overage_mc: overageMillicredits,
        overage_cents: overageCents(report.plan, overageMillicredits),
      })
      .execute();
    await this.#db.updateTable("billing_credit_accounts").set({ cycle_overage_mc: 0 }).where("account_id", "=", report.accountId).execute();
  }

  /** Accounts whose cycle has ended by `now`. */
  async dueForRenewal(now: Date, batchSize: number): Promise<string[]> {
    const rows = await this.#db.selectFrom("billing_accounts").select("account_id").where("next_renewal_at", "<=", now).limit(batchSize).execute();
    return rows.map((row) => row.account_id);
  }

  async memberIds(accountId: string): Promise<string[]> {
    const rows = await this.#db.selectFrom("billing_members").select("member_id").where("account_id", "=", accountId).execute();
    return rows.map((row) => row.member_id);
  }

  async addMember(member: MemberRow): Promise<void> {
    await this.#db.insertInto("billing_members").values(this.#memberValues(member)).execute();
  }

  /** Adds the member, or changes an existing member's role and cap. */
  async putMember(member: MemberRow): Promise<void> {
    await this.#db
      .insertInto("billing_members")
      .values(this.#memberValues(member))
      .onConflict((conflict) => conflict.columns(["account_id", "member_id"]).doUpdateSet({ role: member.role, monthly_cap_mc: member.monthlyCapMillicredits }))
      .execute();
  }

  #memberValues(member: MemberRow) {
    // The email only when given: a member without one writes exactly what it did before the column existed.
    return {
      account_id: member.accountId,
      member_id: member.memberId,
      role: member.role,
      monthly_cap_mc: member.monthlyCapMillicredits,
      created_at: member.createdAt,
      ...(member.email ? { email: member.email } : {}),
    };
  }

  /** The account with its plan, this cycle's overage and each member's use this cycle; undefined when there is none. */
  async view(accountId: string): Promise<AccountView | undefined> {
    const row = await this.#db
      .selectFrom("billing_accounts")
      .innerJoin("billing_plans", "billing_plans.code", "billing_accounts.plan_code")
      .selectAll("billing_plans")
      .select([
        "billing_accounts.account_id",
        "billing_accounts.cycle_index",
        "billing_accounts.cycle_started_at",
        "billing_accounts.next_renewal_at",
        "billing_accounts.created_at",
        // Read through the row's JSON so an account row from before 202611272111 (no such column) reads as the plan's default.
        sql<OnExhausted | null>`to_jsonb(billing_accounts) ->> 'on_exhausted'`.as("account_on_exhausted"),
        // Likewise before 202611280011: billing grants the cycles.
        sql<Renewals | null>`to_jsonb(billing_accounts) ->> 'renewals'`.as("account_renewals"),
      ])
      .where("billing_accounts.account_id", "=", accountId)
      .executeTakeFirst();
    if (!row) return undefined;
    const plan = planFromRow(row);
    const overage = await this.#db
      .selectFrom("billing_credit_accounts")
      .select((eb) => eb.fn.coalesce(eb.fn.sum<number>("cycle_overage_mc"), sql<number>`0`).as("overage"))
      .where("account_id", "=", accountId)
      .executeTakeFirstOrThrow();
    const overageMillicredits = Number(overage.overage);
    const members = await this.#db
      .selectFrom("billing_members as m")
      .select(["m.member_id", "m.role", "m.monthly_cap_mc"])
      // Through the row's JSON, so a members table from before 202611272112 (no email) reads as none.
      .select(sql<string | null>`to_jsonb(m) ->> 'email'`.as("email"))
      .select((eb) =>
        eb
          .selectFrom("billing_holds as h")
          .innerJoin("billing_credit_accounts as c", "c.id", "h.credit_account_id")
          .select(sql<number>`coalesce(sum(case when h.status = 'open' then h.amount_mc else h.captured_mc end), 0)`.as("used"))
          .whereRef("c.account_id", "=", "m.account_id")
          .whereRef("h.member_id", "=", "m.member_id")
          .where("h.cycle_index", "=", row.cycle_index)
          .as("used"),
      )
      .where("m.account_id", "=", accountId)
      .orderBy("m.created_at")
      .execute();
    return {
      accountId,
      plan,
      cycleIndex: row.cycle_index,
      cycleStartedAt: toDate(row.cycle_started_at),
      nextRenewalAt: toDate(row.next_renewal_at),
      createdAt: toDate(row.created_at),
      members: members.map((member) => ({
        memberId: member.member_id,
        role: member.role,
        monthlyCapMillicredits: member.monthly_cap_mc,
        cycleUsedMillicredits: Number(member.used ?? 0),
        email: member.email ?? "",
      })),
      cycleOverageMillicredits: overageMillicredits,
      cycleOverageCents: overageCents(plan, overageMillicredits),
      settings: {
        onExhausted: effectiveOnExhausted(plan, row.account_on_exhausted),
        onExhaustedIsPlanDefault: row.account_on_exhausted === null,
        renewals: row.account_renewals ?? DEFAULT_RENEWALS,
      },
    };
  }
}
