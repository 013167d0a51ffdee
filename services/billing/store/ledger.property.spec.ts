// Model-based property test: random sequences of grants, reserves (and replays), captures,
// releases, sweeps, plan changes, the account's choice when credits run out, price book
// versions and clock jumps run against the real ledger (Postgres or PGlite) and against a plain
// in-memory model built from the domain rules. After every step the outcome, the spend order of
// each new hold (soonest expiry first, whatever the kind: grants of every kind and expiry race
// the trial and subscription buckets) and every pool's available balance must agree; after every
// run each bucket must agree field by field, each hold must keep the amount of the price book
// version it was quoted under and record that version (quotes made before the last price change
// and reserved after it included), and the ledger invariants must hold.
// BILLING_PROPERTY_RUNS sets the number of runs (default 12).
import assert from "node:assert/strict";
import { after, before, describe, it } from "node:test";
import fc from "fast-check";
import { allocate, DEFAULT_PRIORITY, type BucketKind } from "../domain/spend-order.ts";
import { readCatalogueFile } from "./catalogue.store.ts";
import { effectiveOnExhausted, onExhaustedProblem } from "../domain/exhaustion.ts";
import { cycleStart, DEFAULT_PLANS, subscriptionGrant, type OnExhausted, type Plan } from "../domain/plans.ts";
import { DEFAULT_PRICE_BOOK, priceOf, type PriceBook } from "../domain/price-book.ts";
import { createBillingFixture, DAY_MS, type BillingFixture } from "../billing.testing.ts";
import type { PoolName } from "./schema.ts";

const RUNS = Number(process.env.BILLING_PROPERTY_RUNS ?? 12);
// What the database holds: the 2025 plans (retired, still assignable) under the plans file's presets (business is both).
const plansByCode = new Map([...DEFAULT_PLANS, ...readCatalogueFile().plans].map((plan) => [plan.code, plan]));
const plan = (code: string): Plan => plansByCode.get(code)!;

interface ModelBucket {
  key: string;
  pool: PoolName;
  id?: number;
  kind: BucketKind;
  granted: number;
  remaining: number;
  held: number;
  captured: number;
  expired: number;
  /** Taken back by refunds, now or as holds gave it back. */
  voided: number;
  /** What refunds asked but open holds kept (taken as they give it back). */
  owed: number;
  /** What the bucket's refunds asked for together. */
  refundRequested: number;
  effectiveAt: Date;
  expiresAt: Date | null;
  priority: number;
  createdAt: Date;
}

interface ModelHold {
  id: string;
  account: number;
  pool: PoolName;
  key: string;
  amount: number;
  overage: number;
  allocations: { bucket: ModelBucket; amount: number }[];
  status: "open" | "captured" | "released" | "expired";
  captured: number;
  expiresAt: Date;
  ttlSeconds: number;
  /** The price book version the amount was quoted under; "" for a hold of a plain amount. */
  priceBookVersion: string;
  quotedPixels?: number;
  quotedHd?: boolean;
}

interface ModelAccount {
  id: string;
  plan: Plan;
  anchor: Date;
  cyclesSinceAnchor: number;
  nextRenewalAt: Date;
  buckets: ModelBucket[];
  cycleOverage: Record<PoolName, number>;
  overageHeld: Record<PoolName, number>;
  /** The account's choice when credits run out; null: the plan's. */
  onExhausted: OnExhausted | null;
}

type Command =
  | { type: "advance"; ms: number }
  | { type: "grant"; account: number; pool: PoolName; kind: "promo" | "top_up" | "refund"; amount: number; expiresInMs: number | null; effectiveInMs: number; priority: number }
  | { type: "reserve"; account: number; pool: PoolName; amount: number; ttlSeconds: number }
  | { type: "replay"; pick: number; changeAmount: boolean }
  | { type: "capture"; pick: number; permille: number }
  | { type: "release"; pick: number }
  | { type: "sweep" }
  | { type: "changePlan"; account: number; plan: string }
  | { type: "setOnExhausted"; account: number; choice: OnExhausted | null }
  | { type: "reprice"; permille: number }
  | { type: "quotedReserve"; account: number; pixels: number; hd: boolean; ttlSeconds: number; versionsAgo: number }
  | { type: "refund"; account: number; pick: number; permille: number; replay: boolean };

const poolArbitrary = fc.constantFrom<PoolName>("api", "api", "web");
const commandArbitrary: fc.Arbitrary<Command> = fc.oneof(
  { arbitrary: fc.record({ type: fc.constant("advance" as const), ms: fc.constantFrom(60_000, 3_600_000, DAY_MS, 8 * DAY_MS, 31 * DAY_MS) }), weight: 2 },
  {
    arbitrary: fc.record({
      type: fc.constant("grant" as const),
      account: fc.nat(1),
      pool: poolArbitrary,
      kind: fc.constantFrom("promo" as const, "top_up" as const, "refund" as const),
      amount: fc.integer({ min: 1, max: 20_000 }),
      expiresInMs: fc.option(fc.constantFrom(3_600_000, 2 * DAY_MS, 20 * DAY_MS), { nil: null }),
      effectiveInMs: fc.constantFrom(0, 0, DAY_MS),
      // Shared priorities (with subscriptions at 40) make expiry and age decide the order.
      priority: fc.constantFrom(20, 40, 40, 50),
    }),
    weight: 3,
  },
  {
    arbitrary: fc.record({
      type: fc.constant("reserve" as const),
      account: fc.nat(1),
      pool: poolArbitrary,
      amount: fc.integer({ min: 1, max: 30_000 }),
      ttlSeconds: fc.constantFrom(120, 7_200, 86_400),
    }),
    weight: 5,
  },
  { arbitrary: fc.record({ type: fc.constant("replay" as const), pick: fc.nat(), changeAmount: fc.boolean() }), weight: 1 },
  { arbitrary: fc.record({ type: fc.constant("capture" as const), pick: fc.nat(), permille: fc.integer({ min: 0, max: 1000 }) }), weight: 4 },
  { arbitrary: fc.record({ type: fc.constant("release" as const), pick: fc.nat() }), weight: 2 },
  { arbitrary: fc.record({ type: fc.constant("sweep" as const) }), weight: 1 },
  { arbitrary: fc.record({ type: fc.constant("changePlan" as const), account: fc.nat(1), plan: fc.constantFrom("free", "starter", "pro", "business") }), weight: 1 },
  { arbitrary: fc.record({ type: fc.constant("setOnExhausted" as const), account: fc.nat(1), choice: fc.constantFrom<OnExhausted | null>("stop", "overage", null) }), weight: 1 },
  // A refunded payment: the refunded share of one bucket, from its unspent credits, the held ones as their holds end.
  {
    arbitrary: fc.record({ type: fc.constant("refund" as const), account: fc.nat(1), pick: fc.nat(), permille: fc.oneof(fc.constant(1000), fc.integer({ min: 0, max: 1000 })), replay: fc.boolean() }),
    weight: 2,
  },
  // A new price book version mid-run: holds already made keep the amount they were quoted.
  { arbitrary: fc.record({ type: fc.constant("reprice" as const), permille: fc.constantFrom(500, 1500, 3000) }), weight: 1 },
  {
    arbitrary: fc.record({
      type: fc.constant("quotedReserve" as const),
      account: fc.nat(1),
      pixels: fc.constantFrom(200_000, 3_000_000, 20_000_000),
      hd: fc.boolean(),
      ttlSeconds: fc.constantFrom(120, 7_200),
      // 1: quoted before the last price change, reserved after it (a hold keeps its quote's version).
      versionsAgo: fc.constantFrom(0, 0, 1),
    }),
    weight: 2,
  },
);

/** `book` as a new version whose every price is `permille`/1000 of its own. */
function repriced(book: PriceBook, version: string, permille: number): PriceBook {
  const operations = Object.fromEntries(
    Object.entries(book.operations).map(([name, price]) => [
      name,
      { ...price, tiers: price.tiers.map((tier) => ({ ...tier, costMillicredits: Math.max(1, Math.floor((tier.costMillicredits * permille) / 1000)) })) },
    ]),
  ) as unknown as PriceBook["operations"];
  return { ...book, version, operations };
}

class Model {
  readonly accounts: ModelAccount[] = [];
  readonly holds: ModelHold[] = [];
  readonly holdsByKey = new Map<string, ModelHold>();
  /** Every price book version seen, by version; the active one. */
  readonly books = new Map<string, PriceBook>([[DEFAULT_PRICE_BOOK.version, DEFAULT_PRICE_BOOK]]);
  book: PriceBook = DEFAULT_PRICE_BOOK;

  constructor(private readonly now: () => Date) {}

  addBucket(account: ModelAccount, bucket: Omit<ModelBucket, "remaining" | "held" | "captured" | "expired" | "voided" | "owed" | "refundRequested" | "createdAt">): boolean {
    if (account.buckets.some((existing) => existing.key === bucket.key && existing.pool === bucket.pool)) return false;
    account.buckets.push({ ...bucket, remaining: bucket.granted, held: 0, captured: 0, expired: 0, voided: 0, owed: 0, refundRequested: 0, createdAt: this.now() });
    return true;
  }

  grantSubscription(account: ModelAccount, index: number): void {
    const grant = subscriptionGrant(account.plan, account.anchor, index);
    if (!grant) return;
    this.addBucket(account, {
      key: `subscription:${account.plan.code}:${account.anchor.toISOString()}:${index}`,
      pool: "api",
      kind: "subscription",
      granted: grant.amountMillicredits,
      effectiveAt: grant.effectiveAt,
      expiresAt: grant.expiresAt,
      priority: DEFAULT_PRIORITY.subscription,
    });
  }

  createAccount(id: string, planCode: string): void {
    const now = this.now();
    const account: ModelAccount = {
      id,
      plan: plan(planCode),
      anchor: now,
      cyclesSinceAnchor: 0,
      nextRenewalAt: cycleStart(now, 1),
      buckets: [],
      cycleOverage: { api: 0, web: 0 },
      overageHeld: { api: 0, web: 0 },
      onExhausted: null,
    };
    this.addBucket(account, {
      key: "sign-up-trial",
      pool: "api",
      kind: "trial",
      granted: plan("free").trialMillicredits,
      effectiveAt: now,
      expiresAt: new Date(now.getTime() + plan("free").trialDays * DAY_MS),
      priority: DEFAULT_PRIORITY.trial,
    });
    this.grantSubscription(account, 0);
    this.accounts.push(account);
  }

  renew(account: ModelAccount): void {
    while (account.nextRenewalAt.getTime() <= this.now().getTime()) {
      account.cycleOverage = { api: 0, web: 0 };
      account.cyclesSinceAnchor += 1;
      account.nextRenewalAt = cycleStart(account.anchor, account.cyclesSinceAnchor + 1);
      this.grantSubscription(account, account.cyclesSinceAnchor);
    }
  }

  available(account: ModelAccount, pool: PoolName): number {
    const now = this.now().getTime();
    return account.buckets
      .filter((bucket) => bucket.pool === pool && bucket.remaining > 0 && bucket.effectiveAt.getTime() <= now && (bucket.expiresAt === null || bucket.expiresAt.getTime() > now))
      .reduce((sum, bucket) => sum + bucket.remaining, 0);
  }

  reserve(account: ModelAccount, pool: PoolName, amount: number, key: string, ttlSeconds: number, holdId: () => string): { outcome: string; hold?: ModelHold } {
    const existing = this.holdsByKey.get(`${account.id}/${pool}/${key}`);
    if (existing) {
      return existing.amount === amount && existing.ttlSeconds === ttlSeconds ? { outcome: "ok", hold: existing } : { outcome: "idempotency_conflict" };
    }
    const available = this.available(account, pool);
    let overage = 0;
    if (available < amount) {
      const wanted = amount - available;
      if (effectiveOnExhausted(account.plan, account.onExhausted) === "overage" && account.cycleOverage[pool] + account.overageHeld[pool] + wanted <= account.plan.overageCapMillicredits) overage = wanted;
      else return { outcome: "insufficient_credits" };
    }
    const now = this.now();
    const poolBuckets = account.buckets.filter((bucket) => bucket.pool === pool);
    const { allocations, unfundedMillicredits } = poolBuckets.length && amount - overage > 0
      ? allocate(poolBuckets.map((bucket) => ({ ...bucket, id: bucket.id!, remainingMillicredits: bucket.remaining })), amount - overage, now)
      : { allocations: [], unfundedMillicredits: amount - overage };
    assert.equal(unfundedMillicredits, 0, "model: available said yes but allocation fell short");
    const hold: ModelHold = {
      id: holdId(),
      account: this.accounts.indexOf(account),
      pool,
      key,
      amount,
      overage,
      allocations: allocations.map((allocation) => ({ bucket: poolBuckets.find((bucket) => bucket.id === allocation.bucketId)!, amount: allocation.amountMillicredits })),
      status: "open",
      captured: 0,
      expiresAt: new Date(now.getTime() + ttlSeconds * 1000),
      ttlSeconds,
      priceBookVersion: "",
    };
    for (const { bucket, amount: part } of hold.allocations) {
      bucket.remaining -= part;
      bucket.held += part;
    }
    account.overageHeld[pool] += overage;
    this.holds.push(hold);
    this.holdsByKey.set(`${account.id}/${pool}/${key}`, hold);
    return { outcome: "ok", hold };
  }

  settle(hold: ModelHold, action: "capture" | "release" | "expire", amount: number): string {
    const account = this.accounts[hold.account]!;
    if (hold.status !== "open") {
      if ((action === "capture" && hold.status === "captured" && hold.captured === amount) || (action === "release" && hold.status === "released")) return "ok";
      return hold.status === "expired" ? "hold_expired" : "hold_already_settled";
    }
    const now = this.now().getTime();
    if (action !== "expire" && hold.expiresAt.getTime() <= now) {
      this.settle(hold, "expire", 0);
      return "hold_expired";
    }
    if (action === "capture" && amount > hold.amount) return "capture_exceeds_hold";
    let left = action === "capture" ? amount : 0;
    for (const { bucket, amount: part } of hold.allocations) {
      const take = Math.min(left, part);
      left -= take;
      bucket.held -= part;
      bucket.captured += take;
      if (bucket.expiresAt !== null && bucket.expiresAt.getTime() <= now) bucket.expired += part - take;
      else {
        // A refund that found these credits held takes them as they come back.
        const taken = Math.min(part - take, bucket.owed);
        bucket.remaining += part - take - taken;
        bucket.voided += taken;
        bucket.owed -= taken;
      }
      bucket.owed = Math.min(bucket.owed, bucket.held);
    }
    assert.ok(left <= hold.overage, "model: overage capture beyond overage held");
    account.cycleOverage[hold.pool] += left;
    account.overageHeld[hold.pool] -= hold.overage;
    hold.status = action === "capture" ? "captured" : action === "release" ? "released" : "expired";
    hold.captured = action === "capture" ? amount : 0;
    return "ok";
  }

  sweep(): void {
    const now = this.now().getTime();
    for (const account of this.accounts) this.renew(account);
    for (const hold of this.holds) if (hold.status === "open" && hold.expiresAt.getTime() <= now) this.settle(hold, "expire", 0);
    for (const account of this.accounts) {
      for (const bucket of account.buckets) {
        if (bucket.remaining > 0 && bucket.expiresAt !== null && bucket.expiresAt.getTime() <= now) {
          bucket.expired += bucket.remaining;
          bucket.remaining = 0;
        }
      }
    }
  }

  changePlan(account: ModelAccount, planCode: string): void {
    this.renew(account);
    const now = this.now();
    const next = plan(planCode);
    const cycleEndsAt = account.nextRenewalAt;
    account.cycleOverage = { api: 0, web: 0 };
    account.plan = next;
    account.anchor = now;
    account.cyclesSinceAnchor = 0;
    account.nextRenewalAt = cycleStart(now, 1);
    const carryUntil = cycleStart(now, 1 + next.rolloverCycles);
    for (const bucket of account.buckets) {
      // A downgrade to a plan without an allocation (free) ends the paid credits with the old cycle.
      if (next.creditsPerCycleMillicredits === 0 && bucket.kind === "subscription" && (bucket.remaining > 0 || bucket.held > 0)
          && (bucket.expiresAt === null || (bucket.expiresAt.getTime() > now.getTime() && bucket.expiresAt.getTime() > cycleEndsAt.getTime()))) {
        bucket.expiresAt = cycleEndsAt;
      }
      if (next.creditsPerCycleMillicredits > 0 && bucket.kind === "subscription" && (bucket.remaining > 0 || bucket.held > 0) && bucket.expiresAt !== null
          && bucket.expiresAt.getTime() > now.getTime() && bucket.expiresAt.getTime() < carryUntil.getTime()) {
        bucket.expiresAt = carryUntil;
      }
    }
    this.grantSubscription(account, 0);
  }
}

describe("ledger against an in-memory model", () => {
  let billing: BillingFixture;
  before(async () => {
    billing = await createBillingFixture();
  });
  after(async () => {
    await billing?.dispose();
  });

  it("agrees with the model on every step and keeps every invariant", async () => {
    let run = 0;
    await fc.assert(
      fc.asyncProperty(fc.array(commandArbitrary, { minLength: 5, maxLength: 40 }), async (commands) => {
        run += 1;
        const { ledger, clock, db } = billing;
        const model = new Model(() => clock.now());
        // The database outlives a run: an earlier run's price book version may be the active one.
        model.book = await ledger.priceBook();
        model.books.set(model.book.version, model.book);
        const accountIds = [`r${run}-a`, `r${run}-b`];
        for (const [index, planCode] of ["pro", "starter"].entries()) {
          const created = await ledger.createAccount({ accountId: accountIds[index]!, planCode });
          assert.ok(created.ok);
          model.createAccount(accountIds[index]!, planCode);
        }
        // Buckets the ledger grants by itself (trial, subscriptions) are matched by grant key.
        const syncBucketIds = async () => {
          for (const account of model.accounts) {
            for (const bucket of account.buckets) {
              if (bucket.id !== undefined) continue;
              const row = await db
                .selectFrom("billing_buckets as b")
                .innerJoin("billing_credit_accounts as c", "c.id", "b.credit_account_id")
                .select(["b.id", "b.created_at"])
                .where("c.account_id", "=", account.id)
                .where("c.pool", "=", bucket.pool)
                .where("b.grant_key", "=", bucket.key)
                .executeTakeFirstOrThrow();
              bucket.id = row.id;
            }
          }
        };
        await syncBucketIds();
        let serial = 0;
        const refundKeys: { key: string; bucket: ModelBucket; permille: number }[] = [];
        for (const command of commands) {
          serial += 1;
          const step = `step ${serial} ${JSON.stringify(command)}`;
          switch (command.type) {
            case "advance": {
              clock.advanceMs(command.ms);
              for (const account of model.accounts) {
                await ledger.renewAccount(account.id);
                model.renew(account);
              }
              break;
            }
            case "grant": {
              const account = model.accounts[command.account]!;
              const now = clock.now();
              const effectiveAt = new Date(now.getTime() + command.effectiveInMs);
              const expiresAt = command.expiresInMs === null ? null : new Date(effectiveAt.getTime() + command.expiresInMs);
              const key = `g${serial}`;
              const outcome = await ledger.grant({ accountId: account.id, pool: command.pool, kind: command.kind, amountMillicredits: command.amount, effectiveAt, expiresAt, idempotencyKey: key, priority: command.priority });
              assert.ok(outcome.ok, step);
              model.addBucket(account, { key: `admin:${key}`, pool: command.pool, kind: command.kind, granted: command.amount, effectiveAt, expiresAt, priority: command.priority });
              account.buckets[account.buckets.length - 1]!.id = outcome.bucket.id;
              break;
            }
            case "reserve":
            case "replay": {
              let account: ModelAccount, pool: PoolName, amount: number, key: string, ttlSeconds: number;
              // A replay repeats the request, the price book version its quote named included.
              let priceBookVersion: string | undefined;
              if (command.type === "reserve") {
                account = model.accounts[command.account]!;
                ({ pool, amount, ttlSeconds } = command);
                key = `k${serial}`;
              } else {
                if (model.holds.length === 0) continue;
                const original = model.holds[command.pick % model.holds.length]!;
                account = model.accounts[original.account]!;
                pool = original.pool;
                amount = original.amount + (command.changeAmount ? 1 : 0);
                key = original.key;
                ttlSeconds = original.ttlSeconds;
                priceBookVersion = original.priceBookVersion || undefined;
              }
              const before = model.holds.length;
              const actual = await ledger.reserve({ accountId: account.id, pool, amountMillicredits: amount, idempotencyKey: key, holdTtlSeconds: ttlSeconds, priceBookVersion });
              let dbHoldId = actual.ok ? actual.holdId : "";
              const expected = model.reserve(account, pool, amount, key, ttlSeconds, () => dbHoldId);
              assert.equal(actual.ok ? "ok" : actual.reason, expected.outcome, step);
              if (actual.ok && expected.hold) {
                assert.equal(actual.holdId, expected.hold.id, `${step}: a replayed key returns the first hold`);
                if (model.holds.length > before) {
                  const allocations = await db.selectFrom("billing_hold_allocations").select(["bucket_id", "amount_mc"]).where("hold_id", "=", actual.holdId).orderBy("position").execute();
                  assert.deepEqual(
                    allocations.map((row) => [row.bucket_id, row.amount_mc]),
                    expected.hold.allocations.map((allocation) => [allocation.bucket.id, allocation.amount]),
                    `${step}: spend order`,
                  );
                  assert.equal(actual.overageMillicredits, expected.hold.overage, step);
                } else {
                  assert.equal(actual.replayed, true, step);
                }
              }
              dbHoldId = "";
              break;
            }
            case "capture":
            case "release": {
              if (model.holds.length === 0) continue;
              const hold = model.holds[command.pick % model.holds.length]!;
              const amount = command.type === "capture" ? Math.floor((hold.amount * command.permille) / 1000) : 0;
              const actual = command.type === "capture" ? await ledger.capture(hold.id, amount) : await ledger.release(hold.id, "test");
              const expected = model.settle(hold, command.type, amount);
              assert.equal(actual.ok ? "ok" : actual.reason, expected, step);
              break;
            }
            case "refund": {
              await syncBucketIds();
              const account = model.accounts[command.account]!;
              if (account.buckets.length === 0) continue;
              // Mostly a bucket a job holds credits of: the refund then owes what the hold gives back.
              const holding = account.buckets.filter((candidate) => candidate.held > 0);
              const candidates = holding.length > 0 && command.pick % 4 !== 0 ? holding : account.buckets;
              const bucket = candidates[command.pick % candidates.length]!;
              const key = command.replay && refundKeys.length > 0 ? refundKeys[command.pick % refundKeys.length]! : { key: `r${serial}`, bucket, permille: command.permille };
              const actual = await ledger.refundGrant({ accountId: account.id, bucketId: String(key.bucket.id), refundedMinor: key.permille, paidMinor: 1000, refundKey: key.key });
              if (!refundKeys.includes(key)) {
                refundKeys.push(key);
                const target = Math.floor((key.bucket.granted * key.permille) / 1000);
                const requested = Math.max(0, target - key.bucket.refundRequested);
                const taken = Math.min(requested, key.bucket.remaining);
                key.bucket.refundRequested += requested;
                key.bucket.remaining -= taken;
                key.bucket.voided += taken;
                key.bucket.owed += Math.min(requested - taken, key.bucket.held - key.bucket.owed);
                if (actual.ok) assert.equal(actual.refundedMillicredits, taken, step);
              }
              // A bucket of another account, or a replayed key: one refund, never another bucket's credits.
              if (!model.accounts.some((owner) => owner.id === account.id && owner.buckets.includes(key.bucket))) assert.equal(actual.ok ? "ok" : actual.reason, "bucket_not_found", step);
              else assert.ok(actual.ok, `${step}: ${actual.ok ? "" : actual.message}`);
              break;
            }
            case "sweep": {
              await billing.sweeper.sweepOnce();
              model.sweep();
              break;
            }
            case "changePlan": {
              const account = model.accounts[command.account]!;
              const actual = await ledger.changePlan(account.id, command.plan);
              assert.ok(actual.ok, step);
              model.changePlan(account, command.plan);
              break;
            }
            case "setOnExhausted": {
              const account = model.accounts[command.account]!;
              const actual = await ledger.setAccountSettings({ accountId: account.id, onExhausted: command.choice });
              const refused = onExhaustedProblem(account.plan, command.choice) !== undefined;
              assert.equal(actual.ok ? "ok" : actual.reason, refused ? "invalid_argument" : "ok", step);
              if (!refused) account.onExhausted = command.choice;
              if (actual.ok) assert.equal(actual.account.settings.onExhausted, effectiveOnExhausted(account.plan, account.onExhausted), step);
              break;
            }
            case "reprice": {
              const book = repriced(model.book, `property-${run}-${serial}`, command.permille);
              assert.ok((await ledger.setPriceBook(book)).ok, step);
              model.books.set(book.version, book);
              model.book = book;
              break;
            }
            case "quotedReserve": {
              const account = model.accounts[command.account]!;
              const active = await ledger.priceBook();
              assert.equal(active.version, model.book.version, `${step}: the active price book version`);
              const request = { operation: "remove_background" as const, pixels: command.pixels, hd: command.hd, extras: [], videoMilliseconds: 0 };
              assert.deepEqual(priceOf(active, request), priceOf(model.book, request), step);
              // The quote's version: the active one, or the one before the last price change.
              const versions = [...model.books.keys()];
              const quotedUnder = model.books.get(versions[Math.max(0, versions.length - 1 - command.versionsAgo)]!)!;
              const quote = priceOf(quotedUnder, request);
              if (!quote.ok) break;
              const key = `q${serial}`;
              const actual = await ledger.reserve({
                accountId: account.id,
                pool: "api",
                amountMillicredits: quote.costMillicredits,
                idempotencyKey: key,
                holdTtlSeconds: command.ttlSeconds,
                priceBookVersion: quotedUnder.version,
              });
              const holdId = actual.ok ? actual.holdId : "";
              const expected = model.reserve(account, "api", quote.costMillicredits, key, command.ttlSeconds, () => holdId);
              assert.equal(actual.ok ? "ok" : actual.reason, expected.outcome, step);
              if (actual.ok) assert.equal(actual.priceBookVersion, quotedUnder.version, `${step}: the hold answers its quote's version`);
              if (expected.hold) Object.assign(expected.hold, { priceBookVersion: quotedUnder.version, quotedPixels: command.pixels, quotedHd: command.hd });
              break;
            }
          }
          await syncBucketIds();
          for (const account of model.accounts) {
            for (const pool of ["api", "web"] as const) {
              const balance = await ledger.balance(account.id, pool);
              assert.ok(balance.ok);
              assert.equal(balance.availableMillicredits, model.available(account, pool), `${step}: available ${account.id}/${pool}`);
            }
          }
        }
        for (const account of model.accounts) {
          const rows = await db
            .selectFrom("billing_buckets as b")
            .innerJoin("billing_credit_accounts as c", "c.id", "b.credit_account_id")
            .select(["b.id", "b.remaining_mc", "b.held_mc", "b.captured_mc", "b.expired_mc", "b.voided_mc", "b.owed_mc", "b.expires_at"])
            .where("c.account_id", "=", account.id)
            .orderBy("b.id")
            .execute();
          assert.deepEqual(
            rows.map((row) => [row.id, row.remaining_mc, row.held_mc, row.captured_mc, row.expired_mc, row.voided_mc, row.owed_mc, row.expires_at === null ? null : new Date(row.expires_at).getTime()]),
            [...account.buckets].sort((a, b) => a.id! - b.id!).map((bucket) => [bucket.id, bucket.remaining, bucket.held, bucket.captured, bucket.expired, bucket.voided, bucket.owed, bucket.expiresAt?.getTime() ?? null]),
            `buckets of ${account.id}`,
          );
        }
        for (const hold of model.holds) {
          const row = await db.selectFrom("billing_holds").select(["status", "captured_mc", "amount_mc", "price_book_version"]).where("id", "=", hold.id).executeTakeFirstOrThrow();
          assert.deepEqual([row.status, row.captured_mc, row.amount_mc], [hold.status, hold.captured, hold.amount], `hold ${hold.id}`);
          assert.equal(row.price_book_version ?? "", hold.priceBookVersion, `hold ${hold.id} records the version it was quoted under`);
          if (hold.priceBookVersion !== "") {
            // Made under an older version, it keeps that version's price whatever came since.
            const madeUnder = model.books.get(hold.priceBookVersion)!;
            const original = priceOf(madeUnder, { operation: "remove_background", pixels: hold.quotedPixels!, hd: hold.quotedHd!, extras: [], videoMilliseconds: 0 });
            assert.ok(original.ok);
            assert.equal(row.amount_mc, original.costMillicredits, `hold ${hold.id} keeps its version's amount`);
            assert.ok(row.captured_mc <= original.costMillicredits, `hold ${hold.id} never captures more than it was quoted`);
          }
        }
        await billing.assertHealthy();
      }),
      { numRuns: RUNS },
    );
  });
});
