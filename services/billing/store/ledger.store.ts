import { createHash, randomUUID } from "node:crypto";
import { sql, type Kysely, type Selectable, type Transaction } from "kysely";
import type { Clock } from "../domain/clock.ts";
import { assertInvariant, fail, type Outcome } from "../domain/outcomes.ts";
import {
  cycleStart,
  lowBalanceThresholdMillicredits,
  overageCents,
  subscriptionGrant,
  TRIAL_DURATION_MS,
  TRIAL_MILLICREDITS,
  type Pack,
  type Plan,
} from "../domain/plans.ts";
import { referenceOperations, validatePriceBook, type OperationName, type PriceBook } from "../domain/price-book.ts";
import { BUCKET_KINDS, DEFAULT_PRIORITY, type BucketKind } from "../domain/spend-order.ts";
import type { BillingSchema, HoldTable, PlanTable, PoolName } from "./schema.ts";

/** Limits, each with its unit and default. */
export interface LedgerLimits {
  /** Hold lifetime when the caller sends 0. @default 900 s */
  holdTtlSecondsDefault: number;
  /** Longest hold a caller may ask for. @default 86_400 s */
  holdTtlSecondsMax: number;
  /** Largest single reserve or grant. @default 100_000_000 mc (100,000 credits) */
  amountMillicreditsMax: number;
  /** Idempotency keys, descriptions and ids longer than this are refused. @default 200 characters */
  textLengthMax: number;
  /** Page size cap for listings. @default 500 */
  pageSizeMax: number;
}

export const DEFAULT_LEDGER_LIMITS: LedgerLimits = {
  holdTtlSecondsDefault: 900,
  holdTtlSecondsMax: 86_400,
  amountMillicreditsMax: 100_000_000,
  textLengthMax: 200,
  pageSizeMax: 500,
};

export interface ReserveInput {
  accountId: string;
  pool: PoolName;
  amountMillicredits: number;
  idempotencyKey: string;
  holdTtlSeconds?: number;
  apiKeyId?: string;
  memberId?: string;
  description?: string;
}

export interface ReserveResult {
  holdId: string;
  amountMillicredits: number;
  overageMillicredits: number;
  expiresAt: Date;
  availableMillicredits: number;
  replayed: boolean;
  /** The hold's state when answered: a replay can find it already captured, released or expired. */
  status: HoldStatus;
}

export type HoldStatus = HoldTable["status"];

export interface SettleResult {
  capturedMillicredits: number;
  overageMillicredits: number;
  returnedMillicredits: number;
  availableMillicredits: number;
  replayed: boolean;
}

export interface GrantInput {
  accountId: string;
  pool: PoolName;
  kind: BucketKind;
  amountMillicredits?: number;
  packCode?: string;
  effectiveAt?: Date;
  /** null or undefined: never expires. */
  expiresAt?: Date | null;
  priority?: number;
  idempotencyKey: string;
  description?: string;
}

export interface BucketView {
  id: number;
  kind: string;
  grantedMillicredits: number;
  remainingMillicredits: number;
  heldMillicredits: number;
  effectiveAt: Date;
  expiresAt: Date | null;
  priority: number;
}

export interface MemberView {
  memberId: string;
  role: "owner" | "admin" | "member";
  monthlyCapMillicredits: number | null;
  cycleUsedMillicredits: number;
}

export interface AccountView {
  accountId: string;
  plan: Plan;
  cycleIndex: number;
  cycleStartedAt: Date;
  nextRenewalAt: Date;
  createdAt: Date;
  members: MemberView[];
  cycleOverageMillicredits: number;
  cycleOverageCents: number;
}

export interface BalanceView {
  availableMillicredits: number;
  heldMillicredits: number;
  buckets: BucketView[];
  affordable: { operation: OperationName; description: string; count: number }[];
}

export interface Page<T> {
  items: T[];
  nextPageToken: string;
}

export interface LedgerEntryView {
  id: number;
  kind: string;
  bucketId: number | null;
  holdId: string | null;
  remainingDeltaMillicredits: number;
  heldDeltaMillicredits: number;
  occurredAt: Date;
}

export interface UsageRecordView {
  holdId: string;
  status: string;
  heldMillicredits: number;
  capturedMillicredits: number;
  overageMillicredits: number;
  memberId: string | null;
  apiKeyId: string | null;
  description: string | null;
  createdAt: Date;
  settledAt: Date | null;
}

export interface UsageTotalView {
  dimension: "member" | "api_key";
  key: string;
  capturedMillicredits: number;
  calls: number;
}

export interface OutboxEvent {
  id: number;
  subject: string;
  payload: Record<string, unknown>;
}

type Db = Kysely<BillingSchema>;
type Executor = Db | Transaction<BillingSchema>;

// The functions answer with a small JSON object; its outcome names match FailureReason.
interface FunctionAnswer {
  outcome: string;
  replayed?: boolean;
  hold_id?: string;
  amount_mc?: number;
  overage_mc?: number;
  expires_at?: string;
  available_mc?: number;
  cost_mc?: number;
  captured_mc?: number;
  returned_mc?: number;
  used_mc?: number;
  cap_mc?: number;
  held_mc?: number;
  status?: string;
  overage_cap_reached?: boolean;
}

function planFromRow(row: Selectable<PlanTable>): Plan {
  return {
    code: row.code,
    name: row.name,
    monthlyPriceCents: row.monthly_price_cents,
    creditsPerCycleMillicredits: row.credits_per_cycle_mc,
    rolloverCycles: row.rollover_cycles,
    onExhausted: row.on_exhausted,
    overageRateCentsPerCredit: row.overage_rate_cents_per_credit,
    overageCapMillicredits: row.overage_cap_mc,
    requestsPerMinute: row.requests_per_minute,
    concurrency: row.concurrency,
    monthlyCalls: row.monthly_calls,
    maxUploadBytes: row.max_upload_bytes,
    longestSidePixels: row.longest_side_pixels,
    priorityLane: row.priority_lane,
    seats: row.seats,
  };
}

function encodePageToken(parts: (string | number)[]): string {
  return Buffer.from(JSON.stringify(parts)).toString("base64url");
}

function decodePageToken(token: string): (string | number)[] | undefined {
  if (!token) return undefined;
  try {
    const parsed: unknown = JSON.parse(Buffer.from(token, "base64url").toString());
    return Array.isArray(parsed) ? (parsed as (string | number)[]) : undefined;
  } catch {
    return undefined;
  }
}

const toDate = (value: Date | string): Date => (value instanceof Date ? value : new Date(value));

/**
 * The credit ledger. Every mutation locks the credit account row first (READ COMMITTED +
 * `FOR UPDATE`); operations touching several credit accounts lock them in id order, after the
 * account row. Reserve and settle run as one PL/pgSQL call each (see the ledger migration).
 */
export class LedgerStore {
  readonly #db: Db;
  readonly #clock: Clock;
  readonly #limits: LedgerLimits;
  readonly #emitEvents: boolean;
  #priceBook: { book: PriceBook; loadedAtMs: number } | undefined;

  constructor(options: { db: Db; clock: Clock; limits?: Partial<LedgerLimits>; emitEvents?: boolean }) {
    this.#db = options.db;
    this.#clock = options.clock;
    this.#limits = { ...DEFAULT_LEDGER_LIMITS, ...options.limits };
    this.#emitEvents = options.emitEvents ?? false;
  }

  get limits(): LedgerLimits {
    return this.#limits;
  }

  #checkText(name: string, value: string | undefined, required: boolean): string | undefined {
    if (required && !value) return `${name} is required`;
    if (value && value.length > this.#limits.textLengthMax) return `${name} is longer than ${this.#limits.textLengthMax} characters`;
    return undefined;
  }

  #checkAmount(amountMillicredits: number): string | undefined {
    if (!Number.isSafeInteger(amountMillicredits) || amountMillicredits <= 0) return "amount must be a positive integer of millicredits";
    if (amountMillicredits > this.#limits.amountMillicreditsMax) return `amount exceeds the limit of ${this.#limits.amountMillicreditsMax} millicredits`;
    return undefined;
  }

  // ── holds ────────────────────────────────────────────────────────────────────────────────

  async reserve(input: ReserveInput): Promise<Outcome<ReserveResult>> {
    const problem =
      this.#checkText("account_id", input.accountId, true) ??
      this.#checkText("idempotency_key", input.idempotencyKey, true) ??
      this.#checkText("api_key_id", input.apiKeyId, false) ??
      this.#checkText("member_id", input.memberId, false) ??
      this.#checkText("description", input.description, false) ??
      this.#checkAmount(input.amountMillicredits);
    if (problem) return fail("invalid_argument", problem);
    const ttlSeconds = input.holdTtlSeconds || this.#limits.holdTtlSecondsDefault;
    if (!Number.isSafeInteger(ttlSeconds) || ttlSeconds < 1 || ttlSeconds > this.#limits.holdTtlSecondsMax) {
      return fail("invalid_argument", `hold_ttl_seconds must be between 1 and ${this.#limits.holdTtlSecondsMax}`);
    }
    // What makes two requests "the same" for idempotency: everything that changes the charge.
    const requestHash = createHash("sha256")
      .update(JSON.stringify([input.pool, input.amountMillicredits, ttlSeconds, input.apiKeyId ?? "", input.memberId ?? "", input.description ?? ""]))
      .digest("base64url");
    for (let attempt = 0; attempt < 3; attempt += 1) {
      const now = this.#clock.now();
      const { rows } = await sql<{ answer: FunctionAnswer }>`select billing_reserve(${input.accountId}, ${input.pool},
          ${input.amountMillicredits}::bigint, ${input.idempotencyKey}, ${requestHash}, ${randomUUID()}, ${ttlSeconds}::integer,
          ${now.toISOString()}::timestamptz, ${input.apiKeyId ?? ""}, ${input.memberId ?? ""}, ${input.description ?? ""}) as answer`.execute(this.#db);
      const answer = rows[0]!.answer;
      switch (answer.outcome) {
        case "ok": {
          const replayed = answer.replayed === true;
          // A replay must not pass off a hold that has ended as one still open (a caller that
          // released it after a failed submit and then retries would otherwise run unpaid).
          const status = replayed
            ? (await this.#db.selectFrom("billing_holds").select("status").where("id", "=", answer.hold_id!).executeTakeFirstOrThrow()).status
            : "open";
          return {
            ok: true,
            holdId: answer.hold_id!,
            amountMillicredits: answer.amount_mc!,
            overageMillicredits: answer.overage_mc!,
            expiresAt: new Date(answer.expires_at!),
            availableMillicredits: answer.available_mc!,
            replayed,
            status,
          };
        }
        case "renewal_due":
          await this.renewAccount(input.accountId);
          continue;
        case "insufficient_credits":
          return fail(
            "insufficient_credits",
            answer.overage_cap_reached
              ? `the plan's overage cap is reached: ${answer.available_mc} millicredits available, ${answer.cost_mc} needed`
              : `${answer.available_mc} millicredits available, ${answer.cost_mc} needed; buy a top-up pack or upgrade the plan`,
            { availableMillicredits: answer.available_mc!, costMillicredits: answer.cost_mc! },
          );
        case "member_cap_reached":
          return fail("member_cap_reached", `member has used ${answer.used_mc} of a ${answer.cap_mc} millicredit monthly cap; this costs ${answer.cost_mc}`, {
            costMillicredits: answer.cost_mc!,
          });
        case "idempotency_conflict":
          return fail("idempotency_conflict", `idempotency key already used by a different request (hold ${answer.hold_id})`);
        case "account_not_found":
          return fail("account_not_found", `no ${input.pool} credit account for ${input.accountId}`);
        case "invalid_amount":
          return fail("invalid_argument", "amount must be positive");
        default:
          throw new Error(`billing_reserve answered an unknown outcome ${answer.outcome}`);
      }
    }
    throw new Error(`account ${input.accountId} still due for renewal after renewing`);
  }

  capture(holdId: string, amountMillicredits: number): Promise<Outcome<SettleResult>> {
    if (!Number.isSafeInteger(amountMillicredits) || amountMillicredits < 0) {
      return Promise.resolve(fail("invalid_argument", "capture amount must be a non-negative integer"));
    }
    return this.#settle(holdId, "capture", amountMillicredits, "");
  }

  release(holdId: string, reason: string): Promise<Outcome<SettleResult>> {
    return this.#settle(holdId, "release", 0, reason);
  }

  /**
   * Moves an open hold's deadline to now plus the lifetime it was reserved with, so a job that
   * keeps reporting progress keeps its hold however long it runs. The account row lock orders it
   * with the sweeper: a hold the sweeper expired first stays expired.
   */
  async extendHold(holdId: string): Promise<Outcome<{ expiresAt: Date }>> {
    const problem = this.#checkText("hold_id", holdId, true);
    if (problem) return fail("invalid_argument", problem);
    const now = this.#clock.now();
    return this.#db.transaction().execute(async (trx): Promise<Outcome<{ expiresAt: Date }>> => {
      const hold = await trx.selectFrom("billing_holds").select(["credit_account_id"]).where("id", "=", holdId).executeTakeFirst();
      if (!hold) return fail("hold_not_found", `no hold ${holdId}`);
      await trx.selectFrom("billing_credit_accounts").select("id").where("id", "=", hold.credit_account_id).forUpdate().execute();
      const current = await trx.selectFrom("billing_holds").select(["status", "expires_at", "created_at"]).where("id", "=", holdId).executeTakeFirstOrThrow();
      const expiresAt = new Date(current.expires_at);
      if (current.status === "expired" || (current.status === "open" && expiresAt <= now)) {
        return fail("hold_expired", `hold ${holdId} passed its deadline and was released`);
      }
      if (current.status !== "open") return fail("hold_already_settled", `hold ${holdId} is already ${current.status}`);
      const lifetimeMs = expiresAt.getTime() - new Date(current.created_at).getTime();
      const extended = new Date(Math.max(expiresAt.getTime(), now.getTime() + lifetimeMs));
      await trx.updateTable("billing_holds").set({ expires_at: extended }).where("id", "=", holdId).execute();
      return { ok: true, expiresAt: extended };
    });
  }

  async #settle(holdId: string, action: "capture" | "release" | "expire", amountMillicredits: number, reason: string): Promise<Outcome<SettleResult>> {
    const problem = this.#checkText("hold_id", holdId, true) ?? this.#checkText("reason", reason, false);
    if (problem) return fail("invalid_argument", problem);
    const now = this.#clock.now();
    const { rows } = await sql<{ answer: FunctionAnswer }>`select billing_settle(${holdId}, ${action}, ${amountMillicredits}::bigint,
        ${now.toISOString()}::timestamptz, ${reason}, ${this.#emitEvents}) as answer`.execute(this.#db);
    const answer = rows[0]!.answer;
    switch (answer.outcome) {
      case "ok":
        return {
          ok: true,
          capturedMillicredits: answer.captured_mc!,
          overageMillicredits: answer.overage_mc!,
          returnedMillicredits: answer.returned_mc!,
          availableMillicredits: answer.available_mc!,
          replayed: answer.replayed === true,
        };
      case "hold_not_found":
        return fail("hold_not_found", `no hold ${holdId}`);
      case "hold_expired":
        return fail("hold_expired", `hold ${holdId} passed its deadline and was released`);
      case "hold_already_settled":
        return fail("hold_already_settled", `hold ${holdId} is already ${answer.status}`);
      case "capture_exceeds_hold":
        return fail("capture_exceeds_hold", `capture of ${answer.cost_mc} exceeds the ${answer.held_mc} millicredits held`, {
          costMillicredits: answer.cost_mc!,
        });
      default:
        throw new Error(`billing_settle answered an unknown outcome ${answer.outcome}`);
    }
  }

  /** Expires open holds past their deadline; returns how many it expired. */
  async expireDueHolds(batchSize = 500): Promise<number> {
    const now = this.#clock.now();
    const due = await this.#db
      .selectFrom("billing_holds")
      .select("id")
      .where("status", "=", "open")
      .where("expires_at", "<=", now)
      .orderBy("expires_at")
      .limit(batchSize)
      .execute();
    let expired = 0;
    for (const { id } of due) {
      const outcome = await this.#settle(id, "expire", 0, "deadline passed");
      // A capture or release may win the race since the list was read; that is fine.
      if (outcome.ok) expired += 1;
    }
    return expired;
  }

  /** Books buckets past their expiry as expired; returns how many buckets it expired. */
  async expireDueBuckets(batchSize = 500): Promise<number> {
    const now = this.#clock.now();
    const accounts = await this.#db
      .selectFrom("billing_buckets")
      .select("credit_account_id")
      .distinct()
      .where("remaining_mc", ">", 0)
      .where("expires_at", "<=", now)
      .limit(batchSize)
      .execute();
    let expired = 0;
    for (const { credit_account_id } of accounts) {
      const { rows } = await sql<{ count: number }>`select billing_expire_buckets(${credit_account_id}::bigint,
          ${now.toISOString()}::timestamptz, ${this.#emitEvents}) as count`.execute(this.#db);
      expired += rows[0]!.count;
    }
    return expired;
  }

  /** Renews every account whose cycle has ended; returns how many accounts it renewed. */
  async renewDue(batchSize = 500): Promise<number> {
    const due = await this.#db
      .selectFrom("billing_accounts")
      .select("account_id")
      .where("next_renewal_at", "<=", this.#clock.now())
      .limit(batchSize)
      .execute();
    for (const { account_id } of due) await this.renewAccount(account_id);
    return due.length;
  }

  async renewAccount(accountId: string): Promise<void> {
    await this.#db.transaction().execute(async (trx) => {
      await this.#renewInTransaction(trx, accountId, this.#clock.now());
    });
  }

  // ── accounts and plans ───────────────────────────────────────────────────────────────────

  async #lockAccount(trx: Transaction<BillingSchema>, accountId: string) {
    const account = await trx.selectFrom("billing_accounts").selectAll().where("account_id", "=", accountId).forUpdate().executeTakeFirst();
    if (!account) return undefined;
    // Then every pool of it, in id order, so two multi-pool operations never deadlock.
    const pools = await trx.selectFrom("billing_credit_accounts").selectAll().where("account_id", "=", accountId).orderBy("id").forUpdate().execute();
    return { account, pools };
  }

  async #plan(executor: Executor, code: string): Promise<Plan | undefined> {
    const row = await executor.selectFrom("billing_plans").selectAll().where("code", "=", code).executeTakeFirst();
    return row ? planFromRow(row) : undefined;
  }

  async #renewInTransaction(trx: Transaction<BillingSchema>, accountId: string, now: Date): Promise<void> {
    const locked = await this.#lockAccount(trx, accountId);
    if (!locked) return;
    let { account } = locked;
    const plan = await this.#plan(trx, account.plan_code);
    assertInvariant(plan, `account ${accountId} is on unknown plan ${account.plan_code}`);
    const anchor = toDate(account.cycle_anchor_at);
    while (toDate(account.next_renewal_at).getTime() <= now.getTime()) {
      const endedAt = toDate(account.next_renewal_at);
      await this.#closeCycle(trx, account.account_id, account.cycle_index, plan, toDate(account.cycle_started_at), endedAt);
      const cyclesSinceAnchor = account.cycles_since_anchor + 1;
      account = await trx
        .updateTable("billing_accounts")
        .set({
          cycles_since_anchor: cyclesSinceAnchor,
          cycle_index: account.cycle_index + 1,
          cycle_started_at: endedAt,
          next_renewal_at: cycleStart(anchor, cyclesSinceAnchor + 1),
        })
        .where("account_id", "=", accountId)
        .returningAll()
        .executeTakeFirstOrThrow();
      await this.#grantSubscription(trx, accountId, plan, anchor, cyclesSinceAnchor, now);
    }
  }

  async #closeCycle(trx: Transaction<BillingSchema>, accountId: string, cycleIndex: number, plan: Plan, startedAt: Date, endedAt: Date): Promise<void> {
    const pools = await trx.selectFrom("billing_credit_accounts").select(["id", "cycle_overage_mc"]).where("account_id", "=", accountId).execute();
    const overageMillicredits = pools.reduce((sum, pool) => sum + pool.cycle_overage_mc, 0);
    await trx
      .insertInto("billing_cycle_reports")
      .values({
        account_id: accountId,
        cycle_index: cycleIndex,
        plan_code: plan.code,
        started_at: startedAt,
        ended_at: endedAt,
        overage_mc: overageMillicredits,
        overage_cents: overageCents(plan, overageMillicredits),
      })
      .execute();
    await trx.updateTable("billing_credit_accounts").set({ cycle_overage_mc: 0 }).where("account_id", "=", accountId).execute();
  }

  async #grantSubscription(trx: Transaction<BillingSchema>, accountId: string, plan: Plan, anchor: Date, cyclesSinceAnchor: number, now: Date): Promise<void> {
    const grant = subscriptionGrant(plan, anchor, cyclesSinceAnchor);
    if (!grant) return;
    await this.#grantInTransaction(trx, {
      accountId,
      pool: "api",
      kind: "subscription",
      amountMillicredits: grant.amountMillicredits,
      effectiveAt: grant.effectiveAt,
      expiresAt: grant.expiresAt,
      idempotencyKey: `subscription:${plan.code}:${anchor.toISOString()}:${cyclesSinceAnchor}`,
      description: `${plan.name} cycle ${cyclesSinceAnchor + 1}`,
    }, now);
  }

  async createAccount(input: { accountId: string; planCode?: string; ownerMemberId?: string; grantTrial?: boolean }): Promise<Outcome<{ account: AccountView; created: boolean }>> {
    const problem = this.#checkText("account_id", input.accountId, true) ?? this.#checkText("owner_member_id", input.ownerMemberId, false);
    if (problem) return fail("invalid_argument", problem);
    const planCode = input.planCode || "free";
    const now = this.#clock.now();
    const result = await this.#db.transaction().execute(async (trx): Promise<Outcome<{ created: boolean }>> => {
      const plan = await this.#plan(trx, planCode);
      if (!plan) return fail("plan_not_found", `no plan ${planCode}`);
      const inserted = await trx
        .insertInto("billing_accounts")
        .values({
          account_id: input.accountId,
          plan_code: plan.code,
          cycle_anchor_at: now,
          cycles_since_anchor: 0,
          cycle_index: 0,
          cycle_started_at: now,
          next_renewal_at: cycleStart(now, 1),
          created_at: now,
        })
        .onConflict((conflict) => conflict.column("account_id").doNothing())
        .returning("account_id")
        .executeTakeFirst();
      if (!inserted) {
        const existing = await trx.selectFrom("billing_accounts").select("plan_code").where("account_id", "=", input.accountId).executeTakeFirstOrThrow();
        if (existing.plan_code !== plan.code) return fail("account_exists", `account ${input.accountId} exists on plan ${existing.plan_code}`);
        return { ok: true, created: false };
      }
      const threshold = lowBalanceThresholdMillicredits(plan);
      await trx
        .insertInto("billing_credit_accounts")
        .values([
          { account_id: input.accountId, pool: "api", low_balance_threshold_mc: threshold },
          { account_id: input.accountId, pool: "web", low_balance_threshold_mc: threshold },
        ])
        .execute();
      if (input.grantTrial ?? true) {
        await this.#grantInTransaction(trx, {
          accountId: input.accountId,
          pool: "api",
          kind: "trial",
          amountMillicredits: TRIAL_MILLICREDITS,
          expiresAt: new Date(now.getTime() + TRIAL_DURATION_MS),
          idempotencyKey: "sign-up-trial",
          description: "sign-up trial",
        }, now);
      }
      await this.#grantSubscription(trx, input.accountId, plan, now, 0, now);
      if (input.ownerMemberId) {
        await trx.insertInto("billing_members").values({ account_id: input.accountId, member_id: input.ownerMemberId, role: "owner", monthly_cap_mc: null, created_at: now }).execute();
      }
      return { ok: true, created: true };
    });
    if (!result.ok) return result;
    const account = await this.getAccount(input.accountId);
    assertInvariant(account.ok, `account ${input.accountId} vanished after creation`);
    return { ok: true, account: account.account, created: result.created };
  }

  async getAccount(accountId: string): Promise<Outcome<{ account: AccountView }>> {
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
      ])
      .where("billing_accounts.account_id", "=", accountId)
      .executeTakeFirst();
    if (!row) return fail("account_not_found", `no account ${accountId}`);
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
      ok: true,
      account: {
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
        })),
        cycleOverageMillicredits: overageMillicredits,
        cycleOverageCents: overageCents(plan, overageMillicredits),
      },
    };
  }

  /** Switches plan at once: the cycle restarts now, remaining subscription credits carry into it, the new allocation is granted. */
  async changePlan(accountId: string, planCode: string): Promise<Outcome<{ account: AccountView }>> {
    const now = this.#clock.now();
    const result = await this.#db.transaction().execute(async (trx): Promise<Outcome<object>> => {
      const plan = await this.#plan(trx, planCode);
      if (!plan) return fail("plan_not_found", `no plan ${planCode}`);
      await this.#renewInTransaction(trx, accountId, now);
      const locked = await this.#lockAccount(trx, accountId);
      if (!locked) return fail("account_not_found", `no account ${accountId}`);
      const oldPlan = await this.#plan(trx, locked.account.plan_code);
      assertInvariant(oldPlan, `account ${accountId} is on unknown plan ${locked.account.plan_code}`);
      await this.#closeCycle(trx, accountId, locked.account.cycle_index, oldPlan, toDate(locked.account.cycle_started_at), now);
      await trx
        .updateTable("billing_accounts")
        .set({
          plan_code: plan.code,
          cycle_anchor_at: now,
          cycles_since_anchor: 0,
          cycle_index: locked.account.cycle_index + 1,
          cycle_started_at: now,
          next_renewal_at: cycleStart(now, 1),
        })
        .where("account_id", "=", accountId)
        .execute();
      await trx.updateTable("billing_credit_accounts").set({ low_balance_threshold_mc: lowBalanceThresholdMillicredits(plan) }).where("account_id", "=", accountId).execute();
      // Carry: subscription credits still alive survive at least through the new plan's first
      // cycle and its rollover, instead of dying at the old plan's renewal date.
      const carryUntil = cycleStart(now, 1 + plan.rolloverCycles);
      for (const pool of locked.pools) {
        const carried = await trx
          .updateTable("billing_buckets")
          .set({ expires_at: carryUntil })
          .where("credit_account_id", "=", pool.id)
          .where("kind", "=", "subscription")
          .where((eb) => eb.or([eb("remaining_mc", ">", 0), eb("held_mc", ">", 0)]))
          .where("expires_at", ">", now)
          .where("expires_at", "<", carryUntil)
          .returning("id")
          .execute();
        if (carried.length > 0) {
          await trx
            .insertInto("billing_ledger_entries")
            .values(carried.map(({ id }) => ({ credit_account_id: pool.id, bucket_id: id, hold_id: null, kind: "extend", remaining_delta_mc: 0, held_delta_mc: 0, occurred_at: now })))
            .execute();
        }
      }
      await this.#grantSubscription(trx, accountId, plan, now, 0, now);
      return { ok: true };
    });
    if (!result.ok) return result;
    return this.getAccount(accountId);
  }

  async setMember(input: { accountId: string; memberId: string; role: "owner" | "admin" | "member"; monthlyCapMillicredits: number | null }): Promise<Outcome<{ member: MemberView }>> {
    const problem = this.#checkText("member_id", input.memberId, true);
    if (problem) return fail("invalid_argument", problem);
    if (!["owner", "admin", "member"].includes(input.role)) return fail("invalid_argument", `role must be owner, admin or member`);
    if (input.monthlyCapMillicredits !== null && (!Number.isSafeInteger(input.monthlyCapMillicredits) || input.monthlyCapMillicredits <= 0)) {
      return fail("invalid_argument", "monthly cap must be a positive integer of millicredits, or none");
    }
    const now = this.#clock.now();
    const result = await this.#db.transaction().execute(async (trx): Promise<Outcome<object>> => {
      const locked = await this.#lockAccount(trx, input.accountId);
      if (!locked) return fail("account_not_found", `no account ${input.accountId}`);
      const plan = await this.#plan(trx, locked.account.plan_code);
      assertInvariant(plan, `unknown plan ${locked.account.plan_code}`);
      const members = await trx.selectFrom("billing_members").select("member_id").where("account_id", "=", input.accountId).execute();
      const isNew = !members.some((member) => member.member_id === input.memberId);
      if (isNew && members.length >= plan.seats) return fail("seat_limit_reached", `plan ${plan.code} has ${plan.seats} seats, all taken`);
      await trx
        .insertInto("billing_members")
        .values({ account_id: input.accountId, member_id: input.memberId, role: input.role, monthly_cap_mc: input.monthlyCapMillicredits, created_at: now })
        .onConflict((conflict) => conflict.columns(["account_id", "member_id"]).doUpdateSet({ role: input.role, monthly_cap_mc: input.monthlyCapMillicredits }))
        .execute();
      return { ok: true };
    });
    if (!result.ok) return result;
    const account = await this.getAccount(input.accountId);
    assertInvariant(account.ok, "account vanished");
    const member = account.account.members.find((candidate) => candidate.memberId === input.memberId);
    assertInvariant(member, "member vanished");
    return { ok: true, member };
  }

  async listPlans(): Promise<Plan[]> {
    // Unlisted plans (operators' test plan) can be assigned but are not offered.
    const rows = await this.#db.selectFrom("billing_plans").selectAll().where("listed", "=", true).orderBy("monthly_price_cents").execute();
    return rows.map(planFromRow);
  }

  async listPacks(): Promise<Pack[]> {
    const rows = await this.#db.selectFrom("billing_packs").selectAll().orderBy("price_cents").execute();
    return rows.map((row) => ({ code: row.code, priceCents: row.price_cents, creditsMillicredits: row.credits_mc }));
  }

  // ── grants ───────────────────────────────────────────────────────────────────────────────

  async grant(input: GrantInput): Promise<Outcome<{ bucket: BucketView; availableMillicredits: number; priceCents: number; replayed: boolean }>> {
    const problem =
      this.#checkText("account_id", input.accountId, true) ??
      this.#checkText("idempotency_key", input.idempotencyKey, true) ??
      this.#checkText("description", input.description, false);
    if (problem) return fail("invalid_argument", problem);
    if (!BUCKET_KINDS.includes(input.kind)) return fail("invalid_argument", `kind must be one of ${BUCKET_KINDS.join(", ")}`);
    const now = this.#clock.now();
    const result = await this.#db.transaction().execute(async (trx) => {
      // Admin grants live in their own key space so they can never replay a ledger-made grant.
      return this.#grantInTransaction(trx, { ...input, idempotencyKey: `admin:${input.idempotencyKey}` }, now);
    });
    if (!result.ok) return result;
    const available = await this.#spendable(result.creditAccountId, now);
    return { ok: true, bucket: result.bucket, availableMillicredits: available, priceCents: result.priceCents, replayed: result.replayed };
  }

  async #grantInTransaction(
    trx: Transaction<BillingSchema>,
    input: GrantInput,
    now: Date,
  ): Promise<Outcome<{ bucket: BucketView; creditAccountId: number; priceCents: number; replayed: boolean }>> {
    let amountMillicredits = input.amountMillicredits ?? 0;
    let priceCents = 0;
    let expiresAt = input.expiresAt ?? null;
    if (input.kind === "pack") {
      if (!input.packCode) return fail("invalid_argument", "a pack grant needs pack_code");
      const pack = await trx.selectFrom("billing_packs").selectAll().where("code", "=", input.packCode).executeTakeFirst();
      if (!pack) return fail("pack_not_found", `no pack ${input.packCode}`);
      if (amountMillicredits !== 0 && amountMillicredits !== pack.credits_mc) return fail("invalid_argument", "a pack sets its own amount; send 0");
      amountMillicredits = pack.credits_mc;
      priceCents = pack.price_cents;
      // Packs never expire and survive renewals.
      expiresAt = null;
    }
    const amountProblem = this.#checkAmount(amountMillicredits);
    if (amountProblem) return fail("invalid_argument", amountProblem);
    const effectiveAt = input.effectiveAt ?? now;
    if (expiresAt && expiresAt.getTime() <= effectiveAt.getTime()) return fail("invalid_argument", "expires_at must be after the grant takes effect");
    const creditAccount = await trx
      .selectFrom("billing_credit_accounts")
      .select("id")
      .where("account_id", "=", input.accountId)
      .where("pool", "=", input.pool)
      .forUpdate()
      .executeTakeFirst();
    if (!creditAccount) return fail("account_not_found", `no ${input.pool} credit account for ${input.accountId}`);
    const existing = await trx
      .selectFrom("billing_buckets")
      .selectAll()
      .where("credit_account_id", "=", creditAccount.id)
      .where("grant_key", "=", input.idempotencyKey)
      .executeTakeFirst();
    if (existing) {
      if (existing.kind !== input.kind || existing.granted_mc !== amountMillicredits) {
        return fail("idempotency_conflict", `idempotency key already used for a different grant (bucket ${existing.id})`);
      }
      return { ok: true, bucket: bucketView(existing), creditAccountId: creditAccount.id, priceCents: existing.price_cents, replayed: true };
    }
    const bucket = await trx
      .insertInto("billing_buckets")
      .values({
        credit_account_id: creditAccount.id,
        kind: input.kind,
        granted_mc: amountMillicredits,
        remaining_mc: amountMillicredits,
        effective_at: effectiveAt,
        expires_at: expiresAt,
        priority: input.priority ?? DEFAULT_PRIORITY[input.kind],
        created_at: now,
        grant_key: input.idempotencyKey,
        price_cents: priceCents,
        description: input.description ?? null,
      })
      .returningAll()
      .executeTakeFirstOrThrow();
    await trx
      .insertInto("billing_ledger_entries")
      .values({ credit_account_id: creditAccount.id, bucket_id: bucket.id, hold_id: null, kind: "grant", remaining_delta_mc: amountMillicredits, held_delta_mc: 0, occurred_at: now })
      .execute();
    await trx
      .updateTable("billing_credit_accounts")
      .set((eb) => ({ remaining_mc: eb("remaining_mc", "+", amountMillicredits) }))
      .where("id", "=", creditAccount.id)
      .execute();
    return { ok: true, bucket: bucketView(bucket), creditAccountId: creditAccount.id, priceCents, replayed: false };
  }

  // ── reads ────────────────────────────────────────────────────────────────────────────────

  async #spendable(creditAccountId: number, now: Date): Promise<number> {
    const { rows } = await sql<{ available: number }>`select billing_spendable_mc(${creditAccountId}::bigint, ${now.toISOString()}::timestamptz) as available`.execute(this.#db);
    return rows[0]!.available;
  }

  async #creditAccount(accountId: string, pool: PoolName) {
    return this.#db.selectFrom("billing_credit_accounts").selectAll().where("account_id", "=", accountId).where("pool", "=", pool).executeTakeFirst();
  }

  async balance(accountId: string, pool: PoolName): Promise<Outcome<BalanceView>> {
    const creditAccount = await this.#creditAccount(accountId, pool);
    if (!creditAccount) return fail("account_not_found", `no ${pool} credit account for ${accountId}`);
    const now = this.#clock.now();
    const buckets = await this.#db
      .selectFrom("billing_buckets")
      .selectAll()
      .where("credit_account_id", "=", creditAccount.id)
      .where((eb) => eb.or([eb("remaining_mc", ">", 0), eb("held_mc", ">", 0)]))
      .where((eb) => eb.or([eb("expires_at", "is", null), eb("expires_at", ">", now)]))
      .orderBy("priority")
      .orderBy(sql`expires_at nulls last`)
      .orderBy("created_at")
      .orderBy("id")
      .execute();
    const available = await this.#spendable(creditAccount.id, now);
    const book = await this.priceBook();
    return {
      ok: true,
      availableMillicredits: available,
      heldMillicredits: creditAccount.held_mc,
      buckets: buckets.map(bucketView),
      affordable: referenceOperations(book).map((reference) => ({
        operation: reference.operation,
        description: reference.description,
        count: Math.floor(available / reference.costMillicredits),
      })),
    };
  }

  async listLedger(accountId: string, pool: PoolName, pageSize: number, pageToken: string): Promise<Outcome<Page<LedgerEntryView>>> {
    const creditAccount = await this.#creditAccount(accountId, pool);
    if (!creditAccount) return fail("account_not_found", `no ${pool} credit account for ${accountId}`);
    const size = Math.min(Math.max(pageSize || 50, 1), this.#limits.pageSizeMax);
    const after = decodePageToken(pageToken);
    if (pageToken && (!after || typeof after[0] !== "number")) return fail("invalid_argument", "bad page_token");
    let query = this.#db.selectFrom("billing_ledger_entries").selectAll().where("credit_account_id", "=", creditAccount.id);
    if (after) query = query.where("id", "<", after[0] as number);
    const rows = await query.orderBy("id", "desc").limit(size + 1).execute();
    const page = rows.slice(0, size);
    return {
      ok: true,
      items: page.map((row) => ({
        id: row.id,
        kind: row.kind,
        bucketId: row.bucket_id,
        holdId: row.hold_id,
        remainingDeltaMillicredits: row.remaining_delta_mc,
        heldDeltaMillicredits: row.held_delta_mc,
        occurredAt: toDate(row.occurred_at),
      })),
      nextPageToken: rows.length > size ? encodePageToken([page[page.length - 1]!.id]) : "",
    };
  }

  async listUsage(accountId: string, pool: PoolName, pageSize: number, pageToken: string): Promise<Outcome<Page<UsageRecordView> & { totals: UsageTotalView[] }>> {
    const creditAccount = await this.#creditAccount(accountId, pool);
    if (!creditAccount) return fail("account_not_found", `no ${pool} credit account for ${accountId}`);
    const size = Math.min(Math.max(pageSize || 50, 1), this.#limits.pageSizeMax);
    const after = decodePageToken(pageToken);
    if (pageToken && (!after || after.length !== 2)) return fail("invalid_argument", "bad page_token");
    let query = this.#db.selectFrom("billing_holds").selectAll().where("credit_account_id", "=", creditAccount.id).where("status", "<>", "open");
    if (after) {
      const [createdAt, id] = after as [string, string];
      query = query.where((eb) => eb.or([eb("created_at", "<", new Date(createdAt)), eb.and([eb("created_at", "=", new Date(createdAt)), eb("id", "<", id)])]));
    }
    const rows = await query.orderBy("created_at", "desc").orderBy("id", "desc").limit(size + 1).execute();
    const page = rows.slice(0, size);
    const account = await this.#db.selectFrom("billing_accounts").select("cycle_index").where("account_id", "=", accountId).executeTakeFirstOrThrow();
    const totals: UsageTotalView[] = [];
    for (const [dimension, column] of [["member", "member_id"], ["api_key", "api_key_id"]] as const) {
      const grouped = await this.#db
        .selectFrom("billing_holds")
        .select([column, (eb) => eb.fn.sum<number>("captured_mc").as("captured"), (eb) => eb.fn.countAll<number>().as("calls")])
        .where("credit_account_id", "=", creditAccount.id)
        .where("status", "=", "captured")
        .where("cycle_index", "=", account.cycle_index)
        .where(column, "is not", null)
        .groupBy(column)
        .orderBy(column)
        .execute();
      for (const row of grouped) totals.push({ dimension, key: String(row[column]), capturedMillicredits: Number(row.captured), calls: Number(row.calls) });
    }
    const last = page[page.length - 1];
    return {
      ok: true,
      items: page.map((row) => ({
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
      })),
      nextPageToken: rows.length > size && last ? encodePageToken([toDate(last.created_at).toISOString(), last.id]) : "",
      totals,
    };
  }

  // ── price book ───────────────────────────────────────────────────────────────────────────

  /** The active price book; cached for a few seconds so quotes cost no query. */
  async priceBook(): Promise<PriceBook> {
    const cacheMs = 5_000;
    if (this.#priceBook && Date.now() - this.#priceBook.loadedAtMs < cacheMs) return this.#priceBook.book;
    const row = await this.#db.selectFrom("billing_price_books").select("rules").where("active", "=", true).executeTakeFirst();
    assertInvariant(row, "no active price book (the seed migration installs one)");
    const book = (typeof row.rules === "string" ? JSON.parse(row.rules) : row.rules) as PriceBook;
    this.#priceBook = { book, loadedAtMs: Date.now() };
    return book;
  }

  /** Stores a new price book version and makes it the active one. */
  async setPriceBook(book: PriceBook): Promise<Outcome<object>> {
    const problems = validatePriceBook(book);
    if (problems.length > 0) return fail("invalid_argument", `invalid price book: ${problems.join("; ")}`);
    await this.#db.transaction().execute(async (trx) => {
      await trx.updateTable("billing_price_books").set({ active: false }).where("active", "=", true).execute();
      await trx
        .insertInto("billing_price_books")
        .values({ version: book.version, rules: JSON.stringify(book), active: true, created_at: this.#clock.now() })
        .onConflict((conflict) => conflict.column("version").doUpdateSet({ rules: JSON.stringify(book), active: true }))
        .execute();
    });
    this.#priceBook = { book, loadedAtMs: Date.now() };
    return { ok: true };
  }

  // ── outbox ───────────────────────────────────────────────────────────────────────────────

  /**
   * Hands pending events to `publish` in order and deletes them once it resolves; if it throws,
   * nothing is deleted and the batch is offered again next time (at-least-once).
   */
  async relayOutbox(publish: (event: OutboxEvent) => Promise<void>, batchSize = 200): Promise<number> {
    return this.#db.transaction().execute(async (trx) => {
      const events = await trx.selectFrom("billing_outbox").selectAll().orderBy("id").limit(batchSize).forUpdate().skipLocked().execute();
      for (const event of events) {
        const payload = typeof event.payload === "string" ? (JSON.parse(event.payload) as Record<string, unknown>) : event.payload;
        await publish({ id: event.id, subject: event.subject, payload });
      }
      if (events.length > 0) await trx.deleteFrom("billing_outbox").where("id", "in", events.map((event) => event.id)).execute();
      return events.length;
    });
  }
}

function bucketView(row: {
  id: number;
  kind: string;
  granted_mc: number;
  remaining_mc: number;
  held_mc: number;
  effective_at: Date | string;
  expires_at: Date | string | null;
  priority: number;
}): BucketView {
  return {
    id: row.id,
    kind: row.kind,
    grantedMillicredits: row.granted_mc,
    remainingMillicredits: row.remaining_mc,
    heldMillicredits: row.held_mc,
    effectiveAt: toDate(row.effective_at),
    expiresAt: row.expires_at === null ? null : toDate(row.expires_at),
    priority: row.priority,
  };
}
