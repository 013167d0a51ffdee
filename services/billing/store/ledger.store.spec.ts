import assert from "node:assert/strict";
import { after, before, describe, it } from "node:test";
import { createBillingFixture, DAY_MS, type BillingFixture, ok } from "../billing.testing.ts";

describe("LedgerStore scenarios", () => {
  let billing: BillingFixture;
  before(async () => {
    billing = await createBillingFixture();
  });
  after(async () => {
    await billing?.assertHealthy();
    await billing?.dispose();
  });

  it("grants the sign-up trial, reserves, captures partially and returns the rest", async () => {
    const { ledger } = billing;
    const created = ok(await ledger.createAccount({ accountId: "acme", planCode: "free", ownerMemberId: "alice" }));
    assert.equal(created.created, true);
    assert.equal(created.account.plan.code, "free");
    const balance = ok(await ledger.balance("acme", "api"));
    assert.equal(balance.availableMillicredits, 10_000);
    assert.equal(balance.buckets[0]!.kind, "trial");
    assert.equal(balance.buckets[0]!.expiresAt!.getTime() - billing.clock.now().getTime(), 7 * DAY_MS);
    const hold = ok(await ledger.reserve({ accountId: "acme", pool: "api", amountMillicredits: 1100, idempotencyKey: "job-1" }));
    assert.equal(hold.availableMillicredits, 8_900);
    const captured = ok(await ledger.capture(hold.holdId, 500));
    assert.deepEqual([captured.capturedMillicredits, captured.returnedMillicredits, captured.availableMillicredits], [500, 600, 9_500]);
    assert.equal((await ledger.capture(hold.holdId, 500)).ok, true, "a retried capture answers the first result");
    const again = await ledger.capture(hold.holdId, 400);
    assert.equal(again.ok ? "ok" : again.reason, "hold_already_settled");
    const release = await ledger.release(hold.holdId, "late");
    assert.equal(release.ok ? "ok" : release.reason, "hold_already_settled");
    const web = ok(await ledger.balance("acme", "web"));
    assert.equal(web.availableMillicredits, 0, "the web pool is never funded by API credits");
  });

  it("replays a reserve by key, rejects a different request with the same key", async () => {
    const { ledger } = billing;
    ok(await ledger.createAccount({ accountId: "replays", planCode: "free" }));
    const first = ok(await ledger.reserve({ accountId: "replays", pool: "api", amountMillicredits: 500, idempotencyKey: "job-2" }));
    const replay = ok(await ledger.reserve({ accountId: "replays", pool: "api", amountMillicredits: 500, idempotencyKey: "job-2" }));
    assert.equal(replay.holdId, first.holdId);
    assert.equal(replay.replayed, true);
    assert.equal(replay.status, "open");
    assert.equal(replay.availableMillicredits, first.availableMillicredits);
    assert.equal(ok(await ledger.balance("replays", "api")).heldMillicredits, 500, "the replay held nothing more");
    const conflict = await ledger.reserve({ accountId: "replays", pool: "api", amountMillicredits: 600, idempotencyKey: "job-2" });
    assert.equal(conflict.ok ? "ok" : conflict.reason, "idempotency_conflict");
    ok(await ledger.release(first.holdId, "server failure"));
    assert.equal(ok(await ledger.balance("replays", "api")).availableMillicredits, 10_000);
    const afterRelease = ok(await ledger.reserve({ accountId: "replays", pool: "api", amountMillicredits: 500, idempotencyKey: "job-2" }));
    assert.deepEqual([afterRelease.holdId, afterRelease.replayed, afterRelease.status], [first.holdId, true, "released"], "a replay never passes off an ended hold as open");
  });

  it("stops with insufficient_credits carrying balance and cost", async () => {
    ok(await billing.ledger.createAccount({ accountId: "short", planCode: "free" }));
    const outcome = await billing.ledger.reserve({ accountId: "short", pool: "api", amountMillicredits: 20_000, idempotencyKey: "too-big" });
    assert.equal(outcome.ok, false);
    if (outcome.ok) return;
    assert.equal(outcome.reason, "insufficient_credits");
    assert.equal(outcome.availableMillicredits, 10_000);
    assert.equal(outcome.costMillicredits, 20_000);
    assert.equal(ok(await billing.ledger.balance("short", "api")).heldMillicredits, 0);
  });

  it("expires holds past their deadline and books a bucket that expired while held as expired", async () => {
    const { ledger, clock } = billing;
    ok(await ledger.createAccount({ accountId: "late", planCode: "free" }));
    const hold = ok(await ledger.reserve({ accountId: "late", pool: "api", amountMillicredits: 4_000, idempotencyKey: "h", holdTtlSeconds: 60 }));
    clock.advanceMs(61_000);
    const capture = await ledger.capture(hold.holdId, 1_000);
    assert.equal(capture.ok ? "ok" : capture.reason, "hold_expired");
    assert.equal(ok(await ledger.balance("late", "api")).availableMillicredits, 10_000);
    // Held across the trial's expiry: on release the credits are expired, not resurrected.
    const long = ok(await ledger.reserve({ accountId: "late", pool: "api", amountMillicredits: 3_000, idempotencyKey: "h2", holdTtlSeconds: 86_400 }));
    clock.advanceMs(7 * DAY_MS);
    await billing.sweeper.sweepOnce();
    assert.equal(ok(await ledger.balance("late", "api")).availableMillicredits, 0);
    const released = await ledger.release(long.holdId, "done");
    assert.equal(released.ok ? "ok" : released.reason, "hold_expired");
    const bucket = await billing.db.selectFrom("billing_buckets").selectAll().where("grant_key", "=", "sign-up-trial").where("credit_account_id", "=", (eb) => eb.selectFrom("billing_credit_accounts").select("id").where("account_id", "=", "late").where("pool", "=", "api")).executeTakeFirstOrThrow();
    assert.equal(bucket.expired_mc, 10_000);
    assert.equal(bucket.remaining_mc, 0);
  });

  it("renews on the anniversary, expires the unrolled allocation and keeps packs", async () => {
    const { ledger, clock } = billing;
    ok(await ledger.createAccount({ accountId: "sub", planCode: "starter", grantTrial: false }));
    ok(await ledger.grant({ accountId: "sub", pool: "api", kind: "pack", packCode: "pack_100", idempotencyKey: "order-1" }));
    assert.equal(ok(await ledger.balance("sub", "api")).availableMillicredits, 50_000 + 555_000);
    const hold = ok(await ledger.reserve({ accountId: "sub", pool: "api", amountMillicredits: 10_000, idempotencyKey: "a" }));
    ok(await ledger.capture(hold.holdId, 10_000));
    clock.advanceMs(32 * DAY_MS);
    assert.ok((await ledger.renewDue()) >= 1);
    await ledger.expireDueBuckets();
    const balance = ok(await ledger.balance("sub", "api"));
    assert.equal(balance.availableMillicredits, 50_000 + 555_000, "old allocation expired, new one granted, pack untouched");
    clock.advanceMs(95 * DAY_MS);
    // A reserve after a clock jump renews first instead of refusing.
    ok(await ledger.reserve({ accountId: "sub", pool: "api", amountMillicredits: 1_000, idempotencyKey: "b" }));
    const account = ok(await ledger.getAccount("sub")).account;
    assert.equal(account.cycleIndex, 4);
  });

  it("changes plan at once, carrying remaining credits and restarting the cycle", async () => {
    const { ledger, clock } = billing;
    ok(await ledger.createAccount({ accountId: "up", planCode: "starter", grantTrial: false }));
    clock.advanceMs(10 * DAY_MS);
    const changed = ok(await ledger.changePlan("up", "pro")).account;
    assert.equal(changed.plan.code, "pro");
    assert.equal(changed.cycleStartedAt.getTime(), clock.now().getTime());
    assert.equal(ok(await ledger.balance("up", "api")).availableMillicredits, 50_000 + 250_000);
    clock.advanceMs(25 * DAY_MS);
    await billing.sweeper.sweepOnce();
    assert.equal(ok(await ledger.balance("up", "api")).availableMillicredits, 300_000, "carried credits outlive the old renewal date");
  });

  it("continues in overage up to the plan's cap and reports it", async () => {
    const { ledger } = billing;
    ok(await ledger.createAccount({ accountId: "big", planCode: "pro", grantTrial: false }));
    const hold = ok(await ledger.reserve({ accountId: "big", pool: "api", amountMillicredits: 300_000, idempotencyKey: "o" }));
    assert.equal(hold.overageMillicredits, 50_000);
    ok(await ledger.capture(hold.holdId, 280_000));
    const account = ok(await ledger.getAccount("big")).account;
    assert.equal(account.cycleOverageMillicredits, 30_000);
    assert.equal(account.cycleOverageCents, 30 * 16);
    const capped = await ledger.reserve({ accountId: "big", pool: "api", amountMillicredits: 230_000, idempotencyKey: "o2" });
    assert.equal(capped.ok ? "ok" : capped.reason, "insufficient_credits");
  });

  it("records usage per member and API key and enforces a member's monthly cap", async () => {
    const { ledger } = billing;
    ok(await ledger.createAccount({ accountId: "team", planCode: "pro", ownerMemberId: "owner" }));
    ok(await ledger.setMember({ accountId: "team", memberId: "bob", role: "member", monthlyCapMillicredits: 2_000 }));
    const first = ok(await ledger.reserve({ accountId: "team", pool: "api", amountMillicredits: 1_500, idempotencyKey: "t1", memberId: "bob", apiKeyId: "key-1" }));
    ok(await ledger.capture(first.holdId, 1_500));
    const capped = await ledger.reserve({ accountId: "team", pool: "api", amountMillicredits: 1_000, idempotencyKey: "t2", memberId: "bob" });
    assert.equal(capped.ok ? "ok" : capped.reason, "member_cap_reached");
    const usage = ok(await ledger.listUsage({ accountId: "team", pool: "api", pageSize: 10, pageToken: "" }));
    assert.deepEqual(usage.totals.map((total) => [total.dimension, total.key, total.capturedMillicredits]), [["member", "bob", 1_500], ["api_key", "key-1", 1_500]]);
    const seats = await ledger.setMember({ accountId: "team", memberId: "carol", role: "admin", monthlyCapMillicredits: null });
    ok(seats);
    const full = await ledger.setMember({ accountId: "team", memberId: "dave", role: "member", monthlyCapMillicredits: null });
    assert.equal(full.ok ? "ok" : full.reason, "seat_limit_reached");
  });

  it("pages through the ledger newest first, each entry once", async () => {
    const { ledger } = billing;
    ok(await ledger.createAccount({ accountId: "pages", planCode: "free" }));
    for (const key of ["p1", "p2"]) {
      const hold = ok(await ledger.reserve({ accountId: "pages", pool: "api", amountMillicredits: 1_000, idempotencyKey: key }));
      ok(await ledger.capture(hold.holdId, 400));
    }
    const seen: { id: number; kind: string }[] = [];
    let token = "";
    do {
      const page = ok(await ledger.listLedger({ accountId: "pages", pool: "api", pageSize: 2, pageToken: token }));
      assert.ok(page.items.length <= 2);
      seen.push(...page.items.map((entry) => ({ id: entry.id, kind: entry.kind })));
      token = page.nextPageToken;
    } while (token);
    // grant, then per job: reserve, release of the unused part, capture.
    assert.deepEqual(seen.map((entry) => entry.kind), ["capture", "release", "reserve", "capture", "release", "reserve", "grant"]);
    assert.deepEqual(seen.map((entry) => entry.id), [...seen.map((entry) => entry.id)].sort((a, b) => b - a));
    assert.equal(new Set(seen.map((entry) => entry.id)).size, seen.length);
  });
});
