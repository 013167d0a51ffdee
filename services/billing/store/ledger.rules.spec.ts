// The ledger rules of issue 11 that the product pages promise, each checked against the real
// ledger (Postgres with DATABASE_URL, else PGlite).
import assert from "node:assert/strict";
import { after, before, describe, it } from "node:test";
import { createBillingFixture, DAY_MS, type BillingFixture, ok } from "../billing.testing.ts";

describe("ledger rules from the product pages", () => {
  let billing: BillingFixture;
  before(async () => {
    billing = await createBillingFixture();
  });
  after(async () => {
    await billing?.assertHealthy();
    await billing?.dispose();
  });

  async function allocationKinds(holdId: string): Promise<[string, number][]> {
    const rows = await billing.db
      .selectFrom("billing_hold_allocations as a")
      .innerJoin("billing_buckets as b", "b.id", "a.bucket_id")
      .select(["b.kind", "a.amount_mc"])
      .where("a.hold_id", "=", holdId)
      .orderBy("a.position")
      .execute();
    return rows.map((row) => [row.kind, row.amount_mc]);
  }

  it("spends the credits that expire soonest first, whatever their kind", async () => {
    const { ledger } = billing;
    ok(await ledger.createAccount({ accountId: "expiry-first", planCode: "starter" }));
    // Never-expiring promo and refund credits, then the trial (7 days) and this month's subscription.
    ok(await ledger.grant({ accountId: "expiry-first", pool: "api", kind: "promo", amountMillicredits: 5_000, idempotencyKey: "promo" }));
    ok(await ledger.grant({ accountId: "expiry-first", pool: "api", kind: "refund", amountMillicredits: 5_000, idempotencyKey: "refund" }));
    const hold = ok(await ledger.reserve({ accountId: "expiry-first", pool: "api", amountMillicredits: 62_000, idempotencyKey: "spend" }));
    assert.deepEqual(await allocationKinds(hold.holdId), [["trial", 10_000], ["subscription", 50_000], ["promo", 2_000]]);
  });

  it("breaks a tie on expiry by the kind's priority, then the oldest grant", async () => {
    const { ledger, clock } = billing;
    ok(await ledger.createAccount({ accountId: "expiry-ties", planCode: "free", grantTrial: false }));
    const expiresAt = new Date(clock.now().getTime() + 3 * DAY_MS);
    ok(await ledger.grant({ accountId: "expiry-ties", pool: "api", kind: "top_up", amountMillicredits: 1_000, idempotencyKey: "top-up", expiresAt }));
    ok(await ledger.grant({ accountId: "expiry-ties", pool: "api", kind: "refund", amountMillicredits: 1_000, idempotencyKey: "refund", expiresAt }));
    ok(await ledger.grant({ accountId: "expiry-ties", pool: "api", kind: "promo", amountMillicredits: 1_000, idempotencyKey: "promo", expiresAt }));
    ok(await ledger.grant({ accountId: "expiry-ties", pool: "api", kind: "promo", amountMillicredits: 1_000, idempotencyKey: "promo-later", expiresAt: new Date(expiresAt.getTime() + 1) }));
    const hold = ok(await ledger.reserve({ accountId: "expiry-ties", pool: "api", amountMillicredits: 4_000, idempotencyKey: "spend" }));
    assert.deepEqual((await allocationKinds(hold.holdId)).map(([kind]) => kind), ["promo", "refund", "top_up", "promo"]);
  });

  it("keeps paid credits until the end of the current cycle on a downgrade to free, not a month from the switch", async () => {
    const { ledger, clock } = billing;
    ok(await ledger.createAccount({ accountId: "downgrade", planCode: "starter", grantTrial: false }));
    const cycleEndsAt = ok(await ledger.getAccount("downgrade")).account.nextRenewalAt;
    clock.advanceMs(10 * DAY_MS);
    ok(await ledger.changePlan("downgrade", "free"));
    const [paid] = ok(await ledger.balance("downgrade", "api")).buckets;
    assert.equal(paid?.expiresAt?.getTime(), cycleEndsAt.getTime(), "the paid allocation keeps its cycle's end");
    clock.set(new Date(cycleEndsAt.getTime() - 1));
    await billing.sweeper.sweepOnce();
    assert.equal(ok(await ledger.balance("downgrade", "api")).availableMillicredits, 50_000, "usable up to the last instant of the paid cycle");
    clock.set(cycleEndsAt);
    await billing.sweeper.sweepOnce();
    assert.equal(ok(await ledger.balance("downgrade", "api")).availableMillicredits, 0, "gone when the paid cycle ends");
  });

  for (const planCode of ["developer", "annual_lite"]) {
    it(`ends ${planCode}'s paid credits at the end of the current cycle on a downgrade to free, despite rollover or an annual term`, async () => {
      const { ledger, clock, db } = billing;
      const accountId = `downgrade-${planCode}`;
      ok(await ledger.createAccount({ accountId, planCode, grantTrial: false }));
      const cycleEndsAt = ok(await ledger.getAccount(accountId)).account.nextRenewalAt;
      const [before] = ok(await ledger.balance(accountId, "api")).buckets;
      assert.ok(before?.expiresAt && before.expiresAt.getTime() > cycleEndsAt.getTime(), `${planCode}'s credits would outlive the cycle`);
      clock.advanceMs(10 * DAY_MS);
      ok(await ledger.changePlan(accountId, "free"));
      const [paid] = ok(await ledger.balance(accountId, "api")).buckets;
      assert.equal(paid?.expiresAt?.getTime(), cycleEndsAt.getTime(), "the paid credits end with the cycle they were paid in");
      const entries = await db
        .selectFrom("billing_ledger_entries as e")
        .innerJoin("billing_buckets as b", "b.id", "e.bucket_id")
        .select(["e.kind", "e.remaining_delta_mc", "e.held_delta_mc"])
        .where("b.kind", "=", "subscription")
        .where("e.kind", "=", "extend")
        .where("b.credit_account_id", "in", db.selectFrom("billing_credit_accounts").select("id").where("account_id", "=", accountId))
        .execute();
      assert.deepEqual(entries, [{ kind: "extend", remaining_delta_mc: 0, held_delta_mc: 0 }], "the expiry change is in the ledger");
      clock.set(new Date(cycleEndsAt.getTime() - 1));
      await billing.sweeper.sweepOnce();
      assert.equal(ok(await ledger.balance(accountId, "api")).availableMillicredits, before.remainingMillicredits, "usable up to the last instant of the paid cycle");
      clock.set(cycleEndsAt);
      await billing.sweeper.sweepOnce();
      assert.equal(ok(await ledger.balance(accountId, "api")).availableMillicredits, 0, "gone when the paid cycle ends");
    });
  }

  it("lets the account choose between stopping and continuing in overage, the plan's choice by default, enforced at reserve", async () => {
    const { ledger } = billing;
    ok(await ledger.createAccount({ accountId: "chooser", planCode: "pro", grantTrial: false }));
    assert.deepEqual(ok(await ledger.getAccount("chooser")).account.settings, { onExhausted: "overage", onExhaustedIsPlanDefault: true, renewals: "ledger" });
    const stop = ok(await ledger.setAccountSettings({ accountId: "chooser", onExhausted: "stop" }));
    assert.deepEqual(stop.account.settings, { onExhausted: "stop", onExhaustedIsPlanDefault: false, renewals: "ledger" });
    const refused = await ledger.reserve({ accountId: "chooser", pool: "api", amountMillicredits: 251_000, idempotencyKey: "past-credits" });
    assert.equal(refused.ok ? "ok" : refused.reason, "insufficient_credits");
    assert.ok(!refused.ok);
    assert.deepEqual(refused.exhausted, { onExhausted: "stop", overageOffered: true, overageCapReached: false, overageRateCentsPerCredit: 16 });
    assert.match(refused.message, /upgrade the plan, or continue in overage at 16 cents a credit/);
    ok(await ledger.setAccountSettings({ accountId: "chooser", onExhausted: "overage" }));
    const continued = ok(await ledger.reserve({ accountId: "chooser", pool: "api", amountMillicredits: 251_000, idempotencyKey: "past-credits-2" }));
    assert.equal(continued.overageMillicredits, 1_000);
    ok(await ledger.capture(continued.holdId, 251_000));
    const account = ok(await ledger.getAccount("chooser")).account;
    assert.deepEqual([account.cycleOverageMillicredits, account.cycleOverageCents], [1_000, 16], "overage billed at the plan's standard rate");
    const reset = ok(await ledger.setAccountSettings({ accountId: "chooser", onExhausted: null }));
    assert.deepEqual(reset.account.settings, { onExhausted: "overage", onExhaustedIsPlanDefault: true, renewals: "ledger" }, "null goes back to the plan's default");
  });

  it("refuses a renewals setting decided for another plan, and a plan change to a term plan hands renewals back to billing", async () => {
    const { ledger } = billing;
    ok(await ledger.createAccount({ accountId: "renewals-race", planCode: "starter", grantTrial: false }));
    ok(await ledger.setAccountSettings({ accountId: "renewals-race", renewals: "provider", expectedPlanCode: "starter" }));
    // A cancellation moved the account to free; a late invoice's write, decided on starter, is refused.
    ok(await ledger.changePlan("renewals-race", "free"));
    ok(await ledger.setAccountSettings({ accountId: "renewals-race", renewals: "ledger", expectedPlanCode: "free" }));
    const stale = await ledger.setAccountSettings({ accountId: "renewals-race", renewals: "provider", expectedPlanCode: "starter" });
    assert.equal(stale.ok ? "ok" : stale.reason, "plan_changed");
    assert.equal(ok(await ledger.getAccount("renewals-race")).account.settings.renewals, "ledger");
    // A switch to an annual plan: billing grants its monthly cycles whatever was set before.
    ok(await ledger.setAccountSettings({ accountId: "renewals-race", renewals: "provider", expectedPlanCode: "free" }));
    ok(await ledger.changePlan("renewals-race", "annual_lite"));
    assert.equal(ok(await ledger.getAccount("renewals-race")).account.settings.renewals, "ledger");
  });

  it("refuses a replayed reserve that names another price book version, instead of answering the first hold", async () => {
    const { ledger } = billing;
    ok(await ledger.createAccount({ accountId: "versioned-replay", planCode: "starter", grantTrial: false }));
    const first = (await ledger.priceBook()).version;
    ok(await ledger.setPriceBook({ ...(await ledger.priceBook()), version: "rules-replay-v2" }));
    const request = { accountId: "versioned-replay", pool: "api" as const, amountMillicredits: 1_000, idempotencyKey: "quoted" };
    const hold = ok(await ledger.reserve({ ...request, priceBookVersion: first }));
    assert.equal(ok(await ledger.reserve({ ...request, priceBookVersion: first })).holdId, hold.holdId, "the same request replays");
    const other = await ledger.reserve({ ...request, priceBookVersion: "rules-replay-v2" });
    assert.equal(other.ok ? "ok" : other.reason, "idempotency_conflict");
  });

  it("never continues in overage at a rate of 0 (free credits), even on a plan row that says overage with a cap", async () => {
    const { ledger, db } = billing;
    const pro = await db.selectFrom("billing_plans").selectAll().where("code", "=", "pro").executeTakeFirstOrThrow();
    // A row the plans file would refuse (an old row or a hand edit): overage by default, a cap, no rate.
    await db.insertInto("billing_plans").values({ ...pro, code: "free_overage", listed: false, overage_rate_cents_per_credit: 0 }).execute();
    ok(await ledger.createAccount({ accountId: "free-overage", planCode: "free_overage", grantTrial: false }));
    const refused = await ledger.reserve({ accountId: "free-overage", pool: "api", amountMillicredits: 251_000, idempotencyKey: "past-credits" });
    assert.equal(refused.ok ? "ok" : refused.reason, "insufficient_credits");
    assert.ok(!refused.ok);
    assert.deepEqual(refused.exhausted, { onExhausted: "overage", overageOffered: false, overageCapReached: false, overageRateCentsPerCredit: 0 });
  });

  it("refuses overage on a plan that offers none, and tells a stopped caller only to upgrade", async () => {
    const { ledger } = billing;
    ok(await ledger.createAccount({ accountId: "no-overage", planCode: "free", grantTrial: false }));
    const refused = await ledger.setAccountSettings({ accountId: "no-overage", onExhausted: "overage" });
    assert.equal(refused.ok ? "ok" : refused.reason, "invalid_argument");
    assert.match(refused.ok ? "" : refused.message, /plan free offers no overage/);
    const broke = await ledger.reserve({ accountId: "no-overage", pool: "api", amountMillicredits: 1_000, idempotencyKey: "broke" });
    assert.ok(!broke.ok);
    assert.deepEqual(broke.exhausted, { onExhausted: "stop", overageOffered: false, overageCapReached: false, overageRateCentsPerCredit: 0 });
    assert.equal((await ledger.setAccountSettings({ accountId: "missing", onExhausted: "stop" })).ok, false);
  });
});
