import type { Kysely, Transaction } from "kysely";
import {
  carryOver,
  paidCreditsEnd,
  cycleAnchoredAt,
  DEFAULT_PLAN_CODE,
  invoicedCycle,
  memberProblem,
  renewalsDue,
  repeatedSignUp,
  seatRefusal,
  signUpTrial,
  subscriptionAllocation,
  type LedgerGrant,
  type MemberRole,
} from "../domain/accounts.ts";
import type { Clock } from "../domain/clock.ts";
import { adminGrantKey, adminGrantProblem, grantReplayConflict, refundTargetMillicredits, resolveGrant, type GrantTerms } from "../domain/grants.ts";
import { captureAmountProblem, checkReserve, extendedDeadline, RESERVE_ATTEMPTS_MAX, reserveRequestHash, settleProblem, type HoldStatus, type ReserveRequest } from "../domain/holds.ts";
import { DEFAULT_LEDGER_LIMITS, textProblem, type LedgerLimits } from "../domain/limits.ts";
import { assertInvariant, fail, type Outcome } from "../domain/outcomes.ts";
import { accountCursor, encodePageToken, ledgerCursor, pageSize, usageCursor } from "../domain/paging.ts";
import { onExhaustedProblem } from "../domain/exhaustion.ts";
import { lowBalanceThresholdMillicredits, type OnExhausted, type Pack, type Plan } from "../domain/plans.ts";
import { affordableOperations, isPriceBookFresh, validatePriceBook, type PriceBook } from "../domain/price-book.ts";
import { AccountStore, cycleOf } from "./account.store.ts";
import { GrantStore } from "./grant.store.ts";
import { countRefunded, countReserved, countSettled } from "../billing.metrics.ts";
import { HoldStore, reserveFailure, settleOutcome, type SettleAction, type SettleResult } from "./hold.store.ts";
import { LedgerQueryStore, type CycleReportView } from "./ledger-query.store.ts";
import { OutboxStore, type OutboxEvent } from "./outbox.store.ts";
import { PriceBookStore } from "./price-book.store.ts";
import { DEFAULT_RENEWALS, type BillingSchema, type PoolName, type Renewals } from "./schema.ts";
import { bucketView, toDate, type AccountSummaryView, type AccountView, type BalanceView, type BucketView, type LedgerEntryView, type MemberView, type Page, type UsageDayView, type UsageRecordView, type UsageTotalView } from "./views.ts";

export { DEFAULT_LEDGER_LIMITS, type LedgerLimits } from "../domain/limits.ts";

/** Holds the sweeper expires per pass. @default 500 */
export const EXPIRE_HOLDS_BATCH_SIZE = 500;
/** Pools whose expired buckets the sweeper books per pass. @default 500 */
export const EXPIRE_BUCKETS_BATCH_SIZE = 500;
/** Rows of usage per day, API key and member that ListUsage returns for one cycle. */
const USAGE_DAY_ROWS_MAX = 10_000;
/** Accounts the sweeper renews per pass. @default 500 */
export const RENEW_BATCH_SIZE = 500;
/** Outbox events relayed per transaction. @default 200 */
export const RELAY_BATCH_SIZE = 200;

export interface ReserveInput extends ReserveRequest {
  pool: PoolName;
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
  /** The price book version the hold was made with; "" for none. */
  priceBookVersion: string;
}

export interface GrantInput extends GrantTerms {
  accountId: string;
  pool: PoolName;
  idempotencyKey: string;
  description?: string;
}

export interface PageQuery {
  accountId: string;
  pool: PoolName;
  /** 0: the default page size. */
  pageSize: number;
  /** "" for the first page. */
  pageToken: string;
}

export type { HoldStatus } from "../domain/holds.ts";
export type { SettleResult } from "./hold.store.ts";
export type { OutboxEvent } from "./outbox.store.ts";
export type { AccountView, BalanceView, BucketView, LedgerEntryView, MemberView, Page, UsageDayView, UsageRecordView, UsageTotalView } from "./views.ts";

type Db = Kysely<BillingSchema>;
type Trx = Transaction<BillingSchema>;

/**
 * The stores on the pool, for single statements (each its own transaction), built once: the
 * hot path (reserve, capture) allocates nothing it does not need. Stores on a transaction are
 * built per transaction.
 */
interface PoolStores {
  holds: HoldStore;
  accounts: AccountStore;
  grants: GrantStore;
  queries: LedgerQueryStore;
  priceBooks: PriceBookStore;
}

interface GrantedBucket {
  bucket: BucketView;
  creditAccountId: number;
  priceCents: number;
  replayed: boolean;
}

/**
 * The credit ledger: checks input, applies the domain rules and runs each operation in one
 * transaction over the aggregate stores. Every mutation locks the credit account row first
 * (READ COMMITTED + `FOR UPDATE`); operations touching several credit accounts lock them in id
 * order, after the account row. Reserve and settle run as one PL/pgSQL call each
 * (functions.sql.ts), on the pool without BEGIN/COMMIT.
 */
export class LedgerStore {
  readonly #db: Db;
  readonly #clock: Clock;
  readonly #limits: LedgerLimits;
  readonly #emitEvents: boolean;
  readonly #pool: PoolStores;
  #priceBook: { book: PriceBook; loadedAt: Date } | undefined;

  constructor(options: { db: Db; clock: Clock; limits?: Partial<LedgerLimits>; emitEvents?: boolean }) {
    this.#db = options.db;
    this.#clock = options.clock;
    this.#limits = { ...DEFAULT_LEDGER_LIMITS, ...options.limits };
    this.#emitEvents = options.emitEvents ?? false;
    this.#pool = {
      holds: new HoldStore(options.db),
      accounts: new AccountStore(options.db),
      grants: new GrantStore(options.db),
      queries: new LedgerQueryStore(options.db),
      priceBooks: new PriceBookStore(options.db),
    };
  }

  get limits(): LedgerLimits {
    return this.#limits;
  }

  // ── holds ────────────────────────────────────────────────────────────────────────────────

  async reserve(input: ReserveInput): Promise<Outcome<ReserveResult>> {
    const checked = checkReserve(this.#limits, input);
    if (!checked.ok) return checked;
    const { ttlSeconds } = checked;
    const requestHash = reserveRequestHash(input, ttlSeconds);
    const { holds } = this.#pool;
    if (input.priceBookVersion && !(await this.#isStoredVersion(input.priceBookVersion))) {
      return fail("invalid_argument", `price_book_version ${JSON.stringify(input.priceBookVersion)} is not a price book version billing has stored; send the one Quote answered`);
    }
    for (let attempt = 0; attempt < RESERVE_ATTEMPTS_MAX; attempt += 1) {
      const answer = await holds.reserve({
        accountId: input.accountId,
        pool: input.pool,
        amountMillicredits: input.amountMillicredits,
        idempotencyKey: input.idempotencyKey,
        requestHash,
        ttlSeconds,
        now: this.#clock.now(),
        apiKeyId: input.apiKeyId,
        memberId: input.memberId,
        description: input.description,
        priceBookVersion: input.priceBookVersion,
      });
      if (answer.outcome === "renewal_due") {
        await this.renewAccount(input.accountId);
        continue;
      }
      if (answer.outcome !== "ok") return reserveFailure(answer, input);
      // A replay must not pass off a hold that has ended as one still open (a caller that
      // released it after a failed submit and then retries would otherwise run unpaid).
      const status = answer.replayed ? await holds.status(answer.hold_id) : "open";
      if (!answer.replayed) countReserved(answer.amount_mc);
      return {
        ok: true,
        holdId: answer.hold_id,
        amountMillicredits: answer.amount_mc,
        overageMillicredits: answer.overage_mc,
        expiresAt: new Date(answer.expires_at),
        availableMillicredits: answer.available_mc,
        replayed: answer.replayed,
        status,
        priceBookVersion: answer.price_book_version ?? "",
      };
    }
    throw new Error(`account ${input.accountId} still due for renewal after renewing`);
  }

  capture(holdId: string, amountMillicredits: number): Promise<Outcome<SettleResult>> {
    const problem = captureAmountProblem(amountMillicredits);
    if (problem) return Promise.resolve(fail("invalid_argument", problem));
    return this.#settle({ holdId, action: "capture", amountMillicredits, reason: "" });
  }

  release(holdId: string, reason: string): Promise<Outcome<SettleResult>> {
    return this.#settle({ holdId, action: "release", amountMillicredits: 0, reason });
  }

  /**
   * Moves an open hold's deadline to now plus the lifetime it was reserved with, so a job that
   * keeps reporting progress keeps its hold however long it runs. The account row lock orders it
   * with the sweeper: a hold the sweeper expired first stays expired.
   */
  async extendHold(holdId: string): Promise<Outcome<{ expiresAt: Date }>> {
    const problem = textProblem(this.#limits, "hold_id", holdId, true);
    if (problem) return fail("invalid_argument", problem);
    const now = this.#clock.now();
    return this.#db.transaction().execute(async (trx): Promise<Outcome<{ expiresAt: Date }>> => {
      const holds = new HoldStore(trx);
      const hold = await holds.lockDeadline(holdId);
      if (!hold) return fail("hold_not_found", `no hold ${holdId}`);
      const extended = extendedDeadline(hold, now);
      if (extended.ok) await holds.moveDeadline(holdId, extended.expiresAt);
      return extended;
    });
  }

  async #settle(settlement: { holdId: string; action: SettleAction; amountMillicredits: number; reason: string }): Promise<Outcome<SettleResult>> {
    const problem = settleProblem(this.#limits, settlement.holdId, settlement.reason);
    if (problem) return fail("invalid_argument", problem);
    const answer = await this.#pool.holds.settle({
      holdId: settlement.holdId,
      action: settlement.action,
      amountMillicredits: settlement.amountMillicredits,
      reason: settlement.reason,
      now: this.#clock.now(),
      emitEvents: this.#emitEvents,
    });
    const outcome = settleOutcome(answer, settlement.holdId);
    if (outcome.ok && !outcome.replayed) countSettled(settlement.action, outcome);
    if (answer.outcome === "ok") countRefunded(answer.refunded_mc ?? 0);
    return outcome;
  }

  /** Holds neither captured, released nor expired (the partial index on open holds answers it). */
  openHolds(): Promise<number> {
    return this.#pool.holds.countOpen();
  }

  /** Expires open holds past their deadline; returns how many it expired. */
  async expireDueHolds(batchSize = EXPIRE_HOLDS_BATCH_SIZE): Promise<number> {
    const due = await this.#pool.holds.dueForExpiry(this.#clock.now(), batchSize);
    let expired = 0;
    for (const holdId of due) {
      const outcome = await this.#settle({ holdId, action: "expire", amountMillicredits: 0, reason: "deadline passed" });
      // A capture or release may win the race since the list was read; that is fine.
      if (outcome.ok) expired += 1;
    }
    return expired;
  }

  /** Books buckets past their expiry as expired; returns how many buckets it expired. */
  async expireDueBuckets(batchSize = EXPIRE_BUCKETS_BATCH_SIZE): Promise<number> {
    const now = this.#clock.now();
    const { grants } = this.#pool;
    let expired = 0;
    for (const creditAccountId of await grants.poolsWithExpiredCredits(now, batchSize)) {
      expired += await grants.expire(creditAccountId, now, this.#emitEvents);
    }
    return expired;
  }

  // ── accounts and plans ───────────────────────────────────────────────────────────────────

  /** Renews every account whose cycle has ended; returns how many accounts it renewed. */
  async renewDue(batchSize = RENEW_BATCH_SIZE): Promise<number> {
    const due = await this.#pool.accounts.dueForRenewal(this.#clock.now(), batchSize);
    for (const accountId of due) await this.renewAccount(accountId);
    return due.length;
  }

  async renewAccount(accountId: string): Promise<void> {
    await this.#db.transaction().execute(async (trx) => {
      await this.#renew(trx, accountId, this.#clock.now());
    });
  }

  async #renew(trx: Trx, accountId: string, now: Date): Promise<void> {
    const accounts = new AccountStore(trx);
    const locked = await accounts.lock(accountId);
    if (!locked) return;
    const plan = await accounts.plan(locked.account.plan_code);
    assertInvariant(plan, `account ${accountId} is on unknown plan ${locked.account.plan_code}`);
    // A provider-paid account's cycles are granted by its paid invoices (grantCycle), never here too.
    const grantsCycles = (locked.account.renewals ?? DEFAULT_RENEWALS) === "ledger";
    for (const renewal of renewalsDue(cycleOf(locked.account), now)) {
      await accounts.closeCycle({ accountId, plan, ...renewal.ended });
      await accounts.setCycle(accountId, renewal.next);
      if (grantsCycles) await this.#grantSubscription(trx, { accountId, plan, anchor: renewal.next.anchorAt, cyclesSinceAnchor: renewal.next.cyclesSinceAnchor, now });
    }
  }

  /**
   * Grants the subscription credits a provider's paid invoice pays for, on an account whose
   * renewals the provider pays (settings.renewals = provider): the cycle starting nearest the
   * invoice's period start (see invoicedCycle). Once per invoice (its key is kept with the cycle
   * it paid for, so a replay grants nothing however late), and once per cycle (the grant carries
   * the cycle's own key, the one billing's renewal would use).
   */
  async grantCycle(input: { accountId: string; invoiceKey: string; periodStart?: Date }): Promise<Outcome<{ bucket: BucketView | undefined; replayed: boolean; account: AccountView }>> {
    const problem = textProblem(this.#limits, "account_id", input.accountId, true) ?? textProblem(this.#limits, "idempotency_key", input.invoiceKey, true);
    if (problem) return fail("invalid_argument", problem);
    const now = this.#clock.now();
    const result = await this.#db.transaction().execute(async (trx): Promise<Outcome<{ bucket: BucketView | undefined; replayed: boolean }>> => {
      await this.#renew(trx, input.accountId, now);
      const accounts = new AccountStore(trx);
      const locked = await accounts.lock(input.accountId);
      if (!locked) return fail("account_not_found", `no account ${input.accountId}`);
      const granted = await accounts.cycleGrant(input.accountId, input.invoiceKey);
      if (granted) {
        const bucket = granted.bucketId === null ? undefined : await new GrantStore(trx).bucketById(granted.bucketId);
        return { ok: true, bucket: bucket ? bucketView(bucket) : undefined, replayed: true };
      }
      const plan = await accounts.plan(locked.account.plan_code);
      assertInvariant(plan, `account ${input.accountId} is on unknown plan ${locked.account.plan_code}`);
      const cycle = cycleOf(locked.account);
      const cyclesSinceAnchor = invoicedCycle(cycle, input.periodStart);
      const allocation = subscriptionAllocation(plan, cycle.anchorAt, cyclesSinceAnchor);
      if ((locked.account.renewals ?? DEFAULT_RENEWALS) !== "provider") {
        // Billing grants these cycles itself; the invoice only learns which bucket its payment bought (for a refund).
        const pool = allocation ? locked.pools.find((candidate) => candidate.pool === (plan.pool === "web" ? "web" : "api")) : undefined;
        const existing = allocation && pool ? await new GrantStore(trx).bucketByKey(pool.id, allocation.idempotencyKey) : undefined;
        return { ok: true, bucket: existing ? bucketView(existing) : undefined, replayed: true };
      }
      let bucket: BucketView | undefined;
      if (allocation) {
        const grant = await this.#grantInTransaction(trx, { ...allocation, accountId: input.accountId, pool: plan.pool === "web" ? "web" : "api" }, now);
        if (!grant.ok) return grant;
        bucket = grant.bucket;
      }
      await accounts.putCycleGrant({ accountId: input.accountId, invoiceKey: input.invoiceKey, cyclesSinceAnchor, bucketId: bucket ? Number(bucket.id) : null, now });
      return { ok: true, bucket, replayed: false };
    });
    if (!result.ok) return result;
    const account = await this.getAccount(input.accountId);
    assertInvariant(account.ok, `account ${input.accountId} vanished`);
    return { ok: true, bucket: result.bucket, replayed: result.replayed, account: account.account };
  }

  async #grantSubscription(trx: Trx, cycle: { accountId: string; plan: Plan; anchor: Date; cyclesSinceAnchor: number; now: Date }): Promise<void> {
    const allocation = subscriptionAllocation(cycle.plan, cycle.anchor, cycle.cyclesSinceAnchor);
    // Into the plan's pool: a web plan's credits (web_basic) never fund API calls.
    if (allocation) await this.#grantInTransaction(trx, { ...allocation, accountId: cycle.accountId, pool: cycle.plan.pool === "web" ? "web" : "api" }, cycle.now);
  }

  /** A grant the ledger makes itself, to the API pool; its outcome is not the caller's to see. */
  async #grantByLedger(trx: Trx, accountId: string, grant: LedgerGrant, now: Date): Promise<void> {
    await this.#grantInTransaction(trx, { ...grant, accountId, pool: "api" }, now);
  }

  async createAccount(input: { accountId: string; planCode?: string; ownerMemberId?: string; ownerEmail?: string; grantTrial?: boolean }): Promise<Outcome<{ account: AccountView; created: boolean }>> {
    const problem =
      textProblem(this.#limits, "account_id", input.accountId, true) ??
      textProblem(this.#limits, "owner_member_id", input.ownerMemberId, false) ??
      textProblem(this.#limits, "owner_email", input.ownerEmail, false) ??
      (input.ownerEmail && !input.ownerMemberId ? "owner_email needs owner_member_id" : undefined);
    if (problem) return fail("invalid_argument", problem);
    const planCode = input.planCode || DEFAULT_PLAN_CODE;
    const now = this.#clock.now();
    const result = await this.#db.transaction().execute(async (trx): Promise<Outcome<{ created: boolean }>> => {
      const accounts = new AccountStore(trx);
      const plan = await accounts.plan(planCode);
      if (!plan) return fail("plan_not_found", `no plan ${planCode}`);
      const created = await accounts.insert({ accountId: input.accountId, planCode: plan.code, cycle: cycleAnchoredAt(now, 0), createdAt: now });
      if (!created) return repeatedSignUp(input.accountId, await accounts.planCodeOf(input.accountId), plan.code);
      await accounts.openPools(input.accountId, lowBalanceThresholdMillicredits(plan));
      // Every sign-up gets the free plan's trial, whatever plan it starts on.
      const freePlan = plan.code === DEFAULT_PLAN_CODE ? plan : await accounts.plan(DEFAULT_PLAN_CODE);
      const trial = signUpTrial(now, input.grantTrial, freePlan);
      if (trial) await this.#grantByLedger(trx, input.accountId, trial, now);
      await this.#grantSubscription(trx, { accountId: input.accountId, plan, anchor: now, cyclesSinceAnchor: 0, now });
      if (input.ownerMemberId) {
        await accounts.addMember({ accountId: input.accountId, memberId: input.ownerMemberId, role: "owner", monthlyCapMillicredits: null, createdAt: now, email: input.ownerEmail });
      }
      return { ok: true, created: true };
    });
    if (!result.ok) return result;
    const account = await this.getAccount(input.accountId);
    assertInvariant(account.ok, `account ${input.accountId} vanished after creation`);
    return { ok: true, account: account.account, created: result.created };
  }

  async getAccount(accountId: string): Promise<Outcome<{ account: AccountView }>> {
    const account = await this.#pool.accounts.view(accountId);
    if (!account) return fail("account_not_found", `no account ${accountId}`);
    return { ok: true, account };
  }

  /**
   * Switches plan at once: the cycle restarts now, remaining subscription credits carry into it (a
   * downgrade to free ends them at the old cycle's end, rollover or annual term notwithstanding), the
   * new allocation is granted. `fromPlanCode`, when given, is the plan the caller saw: checked under
   * the account's lock, a different plan refuses with `plan_changed` (another change won the race),
   * so two callers who both saw the old plan change it once.
   */
  async changePlan(accountId: string, planCode: string, options: { fromPlanCode?: string } = {}): Promise<Outcome<{ account: AccountView }>> {
    const now = this.#clock.now();
    const result = await this.#db.transaction().execute(async (trx): Promise<Outcome<object>> => {
      const accounts = new AccountStore(trx);
      const plan = await accounts.plan(planCode);
      if (!plan) return fail("plan_not_found", `no plan ${planCode}`);
      await this.#renew(trx, accountId, now);
      const locked = await accounts.lock(accountId);
      if (!locked) return fail("account_not_found", `no account ${accountId}`);
      if (options.fromPlanCode !== undefined && locked.account.plan_code !== options.fromPlanCode) {
        return fail("plan_changed", `account ${accountId} is on plan ${locked.account.plan_code}, not ${options.fromPlanCode} as the change expected; read the account and retry if still wanted`);
      }
      const oldPlan = await accounts.plan(locked.account.plan_code);
      assertInvariant(oldPlan, `account ${accountId} is on unknown plan ${locked.account.plan_code}`);
      await accounts.closeCycle({ accountId, cycleIndex: locked.account.cycle_index, plan: oldPlan, startedAt: toDate(locked.account.cycle_started_at), endedAt: now });
      await accounts.setCycle(accountId, cycleAnchoredAt(now, locked.account.cycle_index + 1), plan.code);
      await accounts.setLowBalanceThreshold(accountId, lowBalanceThresholdMillicredits(plan));
      // A term plan's one invoice pays for many cycles, so billing grants them; the provider may bill only monthly plans' cycles.
      if (plan.termMonths !== 0) await accounts.setRenewals(accountId, "ledger");
      const grants = new GrantStore(trx);
      const rule = carryOver(plan, now);
      if (rule) for (const pool of locked.pools) await grants.carryOver(pool.id, rule);
      const cutBack = paidCreditsEnd(plan, toDate(locked.account.next_renewal_at), now);
      if (cutBack) for (const pool of locked.pools) await grants.cutBack(pool.id, cutBack);
      await this.#grantSubscription(trx, { accountId, plan, anchor: now, cyclesSinceAnchor: 0, now });
      return { ok: true };
    });
    if (!result.ok) return result;
    return this.getAccount(accountId);
  }

  /**
   * Sets the account's own settings; `onExhausted` undefined leaves it, null returns to the
   * plan's default. Under the account's and its pools' locks, so a reserve running at the same
   * time sees the old choice or the new one, never a mix.
   */
  async setAccountSettings(input: { accountId: string; onExhausted?: OnExhausted | null; renewals?: Renewals; expectedPlanCode?: string }): Promise<Outcome<{ account: AccountView }>> {
    const problem = textProblem(this.#limits, "account_id", input.accountId, true);
    if (problem) return fail("invalid_argument", problem);
    const result = await this.#db.transaction().execute(async (trx): Promise<Outcome<object>> => {
      const accounts = new AccountStore(trx);
      const locked = await accounts.lock(input.accountId);
      if (!locked) return fail("account_not_found", `no account ${input.accountId}`);
      // Settings decided from a plan read earlier must not land on the plan a concurrent change put in its place.
      if (input.expectedPlanCode !== undefined && locked.account.plan_code !== input.expectedPlanCode) {
        return fail("plan_changed", `account ${input.accountId} is on plan ${locked.account.plan_code}, not ${input.expectedPlanCode} as the settings expected; read the account and decide again`);
      }
      if (input.renewals !== undefined) await accounts.setRenewals(input.accountId, input.renewals);
      if (input.onExhausted === undefined) return { ok: true };
      const plan = await accounts.plan(locked.account.plan_code);
      assertInvariant(plan, `account ${input.accountId} is on unknown plan ${locked.account.plan_code}`);
      const settingProblem = onExhaustedProblem(plan, input.onExhausted);
      if (settingProblem) return fail("invalid_argument", settingProblem);
      await accounts.setOnExhausted(input.accountId, input.onExhausted);
      return { ok: true };
    });
    if (!result.ok) return result;
    return this.getAccount(input.accountId);
  }

  async setMember(input: { accountId: string; memberId: string; role: MemberRole; monthlyCapMillicredits: number | null }): Promise<Outcome<{ member: MemberView }>> {
    const problem = memberProblem(this.#limits, input);
    if (problem) return fail("invalid_argument", problem);
    const now = this.#clock.now();
    const result = await this.#db.transaction().execute(async (trx): Promise<Outcome<object>> => {
      const accounts = new AccountStore(trx);
      const locked = await accounts.lock(input.accountId);
      if (!locked) return fail("account_not_found", `no account ${input.accountId}`);
      const plan = await accounts.plan(locked.account.plan_code);
      assertInvariant(plan, `unknown plan ${locked.account.plan_code}`);
      const refusal = seatRefusal(plan, await accounts.memberIds(input.accountId), input.memberId);
      if (refusal) return refusal;
      await accounts.putMember({ ...input, createdAt: now });
      return { ok: true };
    });
    if (!result.ok) return result;
    const account = await this.getAccount(input.accountId);
    assertInvariant(account.ok, "account vanished");
    const member = account.account.members.find((candidate) => candidate.memberId === input.memberId);
    assertInvariant(member, "member vanished");
    return { ok: true, member };
  }

  listPlans(): Promise<Plan[]> {
    return this.#pool.accounts.listedPlans();
  }

  listPacks(): Promise<Pack[]> {
    return this.#pool.accounts.packs();
  }

  // ── grants ───────────────────────────────────────────────────────────────────────────────

  async grant(input: GrantInput): Promise<Outcome<{ bucket: BucketView; availableMillicredits: number; priceCents: number; replayed: boolean }>> {
    const problem = adminGrantProblem(this.#limits, input);
    if (problem) return fail("invalid_argument", problem);
    const now = this.#clock.now();
    const result = await this.#db.transaction().execute((trx) => this.#grantInTransaction(trx, { ...input, idempotencyKey: adminGrantKey(input.idempotencyKey) }, now));
    if (!result.ok) return result;
    const available = await this.#pool.queries.spendable(result.creditAccountId, now);
    return { ok: true, bucket: result.bucket, availableMillicredits: available, priceCents: result.priceCents, replayed: result.replayed };
  }

  async #grantInTransaction(trx: Trx, input: GrantInput, now: Date): Promise<Outcome<GrantedBucket>> {
    const pack = input.kind === "pack" && input.packCode ? await new AccountStore(trx).pack(input.packCode) : undefined;
    const resolved = resolveGrant(this.#limits, input, pack, now);
    if (!resolved.ok) return resolved;
    const { grant } = resolved;
    const grants = new GrantStore(trx);
    const creditAccountId = await grants.lockPool(input.accountId, input.pool);
    if (creditAccountId === undefined) return fail("account_not_found", `no ${input.pool} credit account for ${input.accountId}`);
    const existing = await grants.bucketByKey(creditAccountId, input.idempotencyKey);
    if (existing) {
      const conflict = grantReplayConflict({ bucketId: existing.id, kind: existing.kind, grantedMillicredits: existing.granted_mc }, grant);
      if (conflict) return conflict;
      return { ok: true, bucket: bucketView(existing), creditAccountId, priceCents: existing.price_cents, replayed: true };
    }
    const bucket = await grants.addBucket({ creditAccountId, grant, grantKey: input.idempotencyKey, description: input.description ?? null, now });
    return { ok: true, bucket: bucketView(bucket), creditAccountId, priceCents: grant.priceCents, replayed: false };
  }

  /**
   * Takes back what a refunded payment granted: all refunds of it together take the bucket's
   * grant times the share refunded (refundTargetMillicredits); each takes what that adds to the
   * earlier ones' requests, from the bucket's remaining credits only: never below zero, never
   * what open holds reserved (a running job keeps its credits), never another bucket's. What it
   * cannot take now is reported as unrecovered; of that, what open holds keep is owed on the
   * bucket and taken as they give it back (billing_settle), so it never becomes spendable again.
   * A replay of the key answers the first refund.
   */
  async refundGrant(input: { accountId: string; bucketId: string; refundedMinor: number; paidMinor: number; refundKey: string }): Promise<
    Outcome<{ refundedMillicredits: number; unrecoveredMillicredits: number; availableMillicredits: number; replayed: boolean }>
  > {
    const problem = textProblem(this.#limits, "account_id", input.accountId, true) ?? textProblem(this.#limits, "idempotency_key", input.refundKey, true);
    if (problem) return fail("invalid_argument", problem);
    const bucketId = Number(input.bucketId);
    if (!/^[1-9][0-9]{0,15}$/.test(input.bucketId) || !Number.isSafeInteger(bucketId)) return fail("invalid_argument", `bucket_id must be a bucket's id (digits), got ${JSON.stringify(input.bucketId)}`);
    const now = this.#clock.now();
    const key = `refund:${input.refundKey}`;
    const result = await this.#db.transaction().execute(async (trx) => {
      const grants = new GrantStore(trx);
      const creditAccountId = await grants.poolOfBucket(input.accountId, bucketId);
      if (creditAccountId === undefined) return fail("bucket_not_found", `account ${input.accountId} has no bucket ${input.bucketId}`);
      await grants.lockPoolById(creditAccountId);
      const earlier = await grants.refundByKey(creditAccountId, key);
      if (earlier) {
        if (earlier.bucket_id !== bucketId) return fail("idempotency_conflict", `idempotency key already used for a refund of bucket ${earlier.bucket_id}`);
        return { ok: true as const, creditAccountId, refunded: earlier.refunded_mc, requested: earlier.requested_mc, replayed: true };
      }
      const bucket = await grants.bucketById(bucketId);
      assertInvariant(bucket, `bucket ${bucketId} vanished under its pool's lock`);
      const target = refundTargetMillicredits(bucket.granted_mc, input.refundedMinor, input.paidMinor);
      if (!target.ok) return target;
      const requested = Math.max(0, target.targetMillicredits - (await grants.requestedRefunds(bucketId)));
      const queries = new LedgerQueryStore(trx);
      const before = this.#emitEvents ? await queries.spendable(creditAccountId, now) : 0;
      const refunded = await grants.takeBack({ creditAccountId, bucket, requestedMillicredits: requested, refundKey: key, now });
      if (this.#emitEvents && refunded > 0) await new OutboxStore(trx).balanceDropped(creditAccountId, before, await queries.spendable(creditAccountId, now), now);
      return { ok: true as const, creditAccountId, refunded, requested, replayed: false };
    });
    if (!result.ok) return result;
    if (!result.replayed) countRefunded(result.refunded);
    const available = await this.#pool.queries.spendable(result.creditAccountId, now);
    return { ok: true, refundedMillicredits: result.refunded, unrecoveredMillicredits: result.requested - result.refunded, availableMillicredits: available, replayed: result.replayed };
  }

  // ── reads ────────────────────────────────────────────────────────────────────────────────

  async balance(accountId: string, pool: PoolName): Promise<Outcome<BalanceView>> {
    const { queries } = this.#pool;
    const creditAccount = await queries.pool(accountId, pool);
    if (!creditAccount) return fail("account_not_found", `no ${pool} credit account for ${accountId}`);
    const now = this.#clock.now();
    const buckets = await queries.liveBuckets(creditAccount.id, now);
    const available = await queries.spendable(creditAccount.id, now);
    const book = await this.priceBook();
    return {
      ok: true,
      availableMillicredits: available,
      heldMillicredits: creditAccount.held_mc,
      buckets: buckets.map(bucketView),
      affordable: affordableOperations(book, available),
    };
  }

  async listLedger(query: PageQuery): Promise<Outcome<Page<LedgerEntryView>>> {
    const { queries } = this.#pool;
    const creditAccount = await queries.pool(query.accountId, query.pool);
    if (!creditAccount) return fail("account_not_found", `no ${query.pool} credit account for ${query.accountId}`);
    const size = pageSize(query.pageSize, this.#limits.pageSizeMax);
    const cursor = ledgerCursor(query.pageToken);
    if (!cursor.ok) return cursor;
    // One row more than the page tells whether another page follows.
    const rows = await queries.entries({ creditAccountId: creditAccount.id, beforeId: cursor.beforeId, limit: size + 1 });
    const items = rows.slice(0, size);
    const last = items[items.length - 1];
    // One row more than the page tells whether another page follows.
    return { ok: true, items, nextPageToken: rows.length > size && last ? encodePageToken([last.id]) : "" };
  }

  async listUsage(query: PageQuery): Promise<Outcome<Page<UsageRecordView> & { totals: UsageTotalView[]; days: UsageDayView[] }>> {
    const { queries } = this.#pool;
    const creditAccount = await queries.pool(query.accountId, query.pool);
    if (!creditAccount) return fail("account_not_found", `no ${query.pool} credit account for ${query.accountId}`);
    const size = pageSize(query.pageSize, this.#limits.pageSizeMax);
    const cursor = usageCursor(query.pageToken);
    if (!cursor.ok) return cursor;
    const rows = await queries.settledHolds({ creditAccountId: creditAccount.id, before: cursor.before, limit: size + 1 });
    const items = rows.slice(0, size);
    const cycleIndex = await queries.cycleIndexOf(query.accountId);
    const totals = await queries.usageTotals(creditAccount.id, cycleIndex);
    const days = await queries.usageDays(creditAccount.id, cycleIndex, USAGE_DAY_ROWS_MAX);
    const last = items[items.length - 1];
    return { ok: true, items, nextPageToken: rows.length > size && last ? encodePageToken([last.createdAt.toISOString(), last.holdId]) : "", totals, days };
  }

  /** Every account by id, a page at a time, with its plan and API balance (operators' listing). */
  async listAccounts(query: { pageSize: number; pageToken: string }): Promise<Outcome<Page<AccountSummaryView>>> {
    const size = pageSize(query.pageSize, this.#limits.pageSizeMax);
    const cursor = accountCursor(query.pageToken);
    if (!cursor.ok) return cursor;
    const rows = await this.#pool.queries.accountSummaries({ afterAccountId: cursor.afterAccountId, limit: size + 1, now: this.#clock.now() });
    const items = rows.slice(0, size);
    const last = items[items.length - 1];
    // One row more than the page tells whether another page follows.
    return { ok: true, items, nextPageToken: rows.length > size && last ? encodePageToken([last.accountId]) : "" };
  }

  /** The account's closed cycles after `afterCycleIndex`, oldest first, a page at a time. */
  async listCycleReports(query: { accountId: string; afterCycleIndex: number; pageSize: number }): Promise<Outcome<{ reports: CycleReportView[] }>> {
    const problem = textProblem(this.#limits, "account_id", query.accountId, true);
    if (problem) return fail("invalid_argument", problem);
    const reports = await this.#pool.queries.cycleReports({ accountId: query.accountId, afterCycleIndex: query.afterCycleIndex, limit: pageSize(query.pageSize, this.#limits.pageSizeMax) });
    return { ok: true, reports };
  }

  // ── price book ───────────────────────────────────────────────────────────────────────────

  /** The active price book; cached (PRICE_BOOK_CACHE_MS by the injected clock) so quotes cost no query. */
  async priceBook(): Promise<PriceBook> {
    const now = this.#clock.now();
    if (this.#priceBook && isPriceBookFresh(this.#priceBook.loadedAt, now)) return this.#priceBook.book;
    const book = await this.#pool.priceBooks.active();
    this.#priceBook = { book, loadedAt: now };
    return book;
  }

  /** The active version (cached) answers without a query; an older one, quoted before a price change, is looked up. */
  async #isStoredVersion(version: string): Promise<boolean> {
    if (version === (await this.priceBook()).version) return true;
    return this.#pool.priceBooks.exists(version);
  }

  /** Stores a new price book version and makes it the active one. */
  async setPriceBook(book: PriceBook): Promise<Outcome<object>> {
    const problems = validatePriceBook(book);
    if (problems.length > 0) return fail("invalid_argument", `invalid price book: ${problems.join("; ")}`);
    const now = this.#clock.now();
    await this.#db.transaction().execute((trx) => new PriceBookStore(trx).activate(book, now));
    this.#priceBook = { book, loadedAt: now };
    return { ok: true };
  }

  // ── outbox ───────────────────────────────────────────────────────────────────────────────

  /**
   * Hands pending events to `publish` in order and deletes them once it resolves; if it throws,
   * nothing is deleted and the batch is offered again next time (at-least-once).
   */
  async relayOutbox(publish: (event: OutboxEvent) => Promise<void>, batchSize = RELAY_BATCH_SIZE): Promise<number> {
    return this.#db.transaction().execute(async (trx) => {
      const outbox = new OutboxStore(trx);
      const events = await outbox.lockPending(batchSize);
      for (const event of events) await publish(event);
      await outbox.remove(events.map((event) => event.id));
      return events.length;
    });
  }
}
