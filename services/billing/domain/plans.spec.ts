import assert from "node:assert/strict";
import { describe, it } from "node:test";
import { cycleStart, DEFAULT_PACKS, DEFAULT_PLANS, overageCents, subscriptionGrant } from "./plans.ts";
import { allocate } from "./spend-order.ts";

describe("anniversary cycles", () => {
  it("clamps to the month's last day without drifting", () => {
    const anchor = new Date("2025-01-31T10:00:00.000Z");
    assert.equal(cycleStart(anchor, 1).toISOString(), "2025-02-28T10:00:00.000Z");
    assert.equal(cycleStart(anchor, 2).toISOString(), "2025-03-31T10:00:00.000Z");
    assert.equal(cycleStart(anchor, 13).toISOString(), "2026-02-28T10:00:00.000Z");
    assert.equal(cycleStart(new Date("2024-01-31T00:00:00.000Z"), 1).toISOString(), "2024-02-29T00:00:00.000Z");
  });

  it("expires a subscription grant after 1 + rollover cycles", () => {
    const pro = DEFAULT_PLANS.find((plan) => plan.code === "pro")!;
    const anchor = new Date("2025-05-10T00:00:00.000Z");
    const grant = subscriptionGrant(pro, anchor, 2)!;
    assert.equal(grant.effectiveAt.toISOString(), "2025-07-10T00:00:00.000Z");
    assert.equal(grant.expiresAt.toISOString(), "2025-09-10T00:00:00.000Z");
    assert.equal(subscriptionGrant(DEFAULT_PLANS[0]!, anchor, 0), undefined);
  });

  it("prices overage in whole cents, rounded up", () => {
    const pro = DEFAULT_PLANS.find((plan) => plan.code === "pro")!;
    assert.equal(overageCents(pro, 1), 1);
    assert.equal(overageCents(pro, 30_000), 480);
  });

  it("sells packs at a falling or flat per-credit price", () => {
    const perCredit = DEFAULT_PACKS.map((pack) => (pack.priceCents * 1000) / pack.creditsMillicredits);
    for (let index = 1; index < perCredit.length; index += 1) assert.ok(perCredit[index]! <= perCredit[index - 1]! + 0.01);
  });
});

describe("spend order", () => {
  const at = (iso: string) => new Date(iso);
  const now = at("2025-03-01T00:00:00Z");
  const bucket = (id: number, remaining: number, priority: number, expiresAt: string | null, createdAt = "2025-01-01T00:00:00Z", effectiveAt = "2025-01-01T00:00:00Z") => ({
    id,
    remainingMillicredits: remaining,
    priority,
    expiresAt: expiresAt ? at(expiresAt) : null,
    createdAt: at(createdAt),
    effectiveAt: at(effectiveAt),
  });

  it("goes by priority, then soonest expiry with never-expiring last, then oldest, across several buckets", () => {
    const buckets = [
      bucket(1, 100, 50, null),
      bucket(2, 100, 40, "2025-06-01T00:00:00Z"),
      bucket(3, 100, 40, "2025-04-01T00:00:00Z"),
      bucket(4, 100, 40, null, "2024-12-01T00:00:00Z"),
      bucket(5, 100, 40, "2025-04-01T00:00:00Z", "2024-06-01T00:00:00Z"),
      bucket(6, 100, 10, "2025-02-01T00:00:00Z"),
      bucket(7, 100, 10, null, "2025-01-01T00:00:00Z", "2025-04-01T00:00:00Z"),
    ];
    const { allocations, unfundedMillicredits } = allocate(buckets, 550, now);
    assert.deepEqual(allocations.map((allocation) => allocation.bucketId), [5, 3, 2, 4, 1]);
    assert.deepEqual(allocations.map((allocation) => allocation.amountMillicredits), [100, 100, 100, 100, 100]);
    assert.equal(unfundedMillicredits, 50);
  });
});
