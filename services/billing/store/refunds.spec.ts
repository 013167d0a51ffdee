// Refunds of a grant (issue 11) against the real ledger (Postgres with DATABASE_URL, else PGlite):
// what a refund could not take because a job held it is owed, and taken when the hold gives it back.
import assert from "node:assert/strict";
import { after, before, describe, it } from "node:test";
import { register } from "prom-client";
import { createBillingFixture, type BillingFixture, ok } from "../billing.testing.ts";

async function refundedCredits(): Promise<number> {
  const metric = await register.getSingleMetric("cutline_credits_refunded_total")?.get();
  return metric?.values.reduce((sum, value) => sum + value.value, 0) ?? 0;
}

describe("refunds of a grant", () => {
  let billing: BillingFixture;
  before(async () => {
    billing = await createBillingFixture();
  });
  after(async () => {
    await billing?.assertHealthy();
    await billing?.dispose();
  });

  async function bucketOf(accountId: string, bucketId: string) {
    const row = await billing.db.selectFrom("billing_buckets").selectAll().where("id", "=", Number(bucketId)).executeTakeFirstOrThrow();
    return { remaining: row.remaining_mc, held: row.held_mc, captured: row.captured_mc, voided: row.voided_mc, owed: row.owed_mc, accountId };
  }

  async function paidTopUp(accountId: string): Promise<string> {
    const { ledger } = billing;
    ok(await ledger.createAccount({ accountId, planCode: "free", grantTrial: false }));
    const granted = ok(await ledger.grant({ accountId, pool: "api", kind: "top_up", amountMillicredits: 10_000, idempotencyKey: "paid", expiresAt: new Date(billing.clock.now().getTime() + 365 * 24 * 3_600_000) }));
    return String(granted.bucket.id);
  }

  for (const settle of ["release", "expire"] as const) {
    it(`takes what a refund found held when the hold's ${settle} gives it back, never returning it as spendable`, async () => {
      const { ledger, clock } = billing;
      const accountId = `refund-then-${settle}`;
      const bucketId = await paidTopUp(accountId);
      const hold = ok(await ledger.reserve({ accountId, pool: "api", amountMillicredits: 4_000, idempotencyKey: "job", holdTtlSeconds: 120 }));
      const counted = await refundedCredits();
      const refund = ok(await ledger.refundGrant({ accountId, bucketId, refundedMinor: 1_000, paidMinor: 1_000, refundKey: "full" }));
      assert.deepEqual([refund.refundedMillicredits, refund.unrecoveredMillicredits], [6_000, 4_000]);
      if (settle === "release") ok(await ledger.release(hold.holdId, "job failed"));
      else {
        clock.advanceMs(121_000);
        await billing.sweeper.sweepOnce();
      }
      assert.deepEqual(await bucketOf(accountId, bucketId), { remaining: 0, held: 0, captured: 0, voided: 10_000, owed: 0, accountId });
      assert.equal((await refundedCredits()) - counted, 10, "cutline_credits_refunded_total counts the refund and what the hold gave back for it, in credits");
      const replay = ok(await ledger.refundGrant({ accountId, bucketId, refundedMinor: 1_000, paidMinor: 1_000, refundKey: "full" }));
      assert.equal(replay.replayed, true);
      assert.equal((await bucketOf(accountId, bucketId)).voided, 10_000, "a replayed refund moves nothing");
      assert.equal((await refundedCredits()) - counted, 10, "nor counts again");
    });
  }

  it("takes only the refunded share of what a short capture returns; what the job spent is unrecovered", async () => {
    const { ledger } = billing;
    const accountId = "refund-then-short-capture";
    const bucketId = await paidTopUp(accountId);
    const hold = ok(await ledger.reserve({ accountId, pool: "api", amountMillicredits: 8_000, idempotencyKey: "job" }));
    // Half the payment refunded: 5,000 owed, 2,000 taken now, 3,000 owed.
    const refund = ok(await ledger.refundGrant({ accountId, bucketId, refundedMinor: 500, paidMinor: 1_000, refundKey: "half" }));
    assert.deepEqual([refund.refundedMillicredits, refund.unrecoveredMillicredits], [2_000, 3_000]);
    ok(await ledger.capture(hold.holdId, 6_000));
    // 2,000 come back: all of them go to the refund; the other 1,000 the job spent is unrecovered.
    assert.deepEqual(await bucketOf(accountId, bucketId), { remaining: 0, held: 0, captured: 6_000, voided: 4_000, owed: 0, accountId });
  });

  it("gives back what a hold returns beyond what the refund still owes", async () => {
    const { ledger } = billing;
    const accountId = "refund-then-partial-owed";
    const bucketId = await paidTopUp(accountId);
    const hold = ok(await ledger.reserve({ accountId, pool: "api", amountMillicredits: 9_000, idempotencyKey: "job" }));
    // 30% refunded: 3,000 owed, 1,000 taken now, 2,000 owed; the release returns 9,000: 2,000 taken, 7,000 spendable.
    ok(await ledger.refundGrant({ accountId, bucketId, refundedMinor: 300, paidMinor: 1_000, refundKey: "part" }));
    ok(await ledger.release(hold.holdId, "job failed"));
    assert.deepEqual(await bucketOf(accountId, bucketId), { remaining: 7_000, held: 0, captured: 0, voided: 3_000, owed: 0, accountId });
    const entries = await billing.db.selectFrom("billing_ledger_entries").select(["kind", "remaining_delta_mc", "hold_id"]).where("bucket_id", "=", Number(bucketId)).where("kind", "=", "refund").orderBy("id").execute();
    assert.deepEqual(entries, [
      { kind: "refund", remaining_delta_mc: -1_000, hold_id: null },
      { kind: "refund", remaining_delta_mc: -2_000, hold_id: hold.holdId },
    ]);
  });
});
