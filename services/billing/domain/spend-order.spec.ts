import assert from "node:assert/strict";
import { describe, it } from "node:test";
import { allocate, compareBucketsForSpend, DEFAULT_PRIORITY, type SpendableBucket } from "./spend-order.ts";

describe("spend order by expiry", () => {
  const at = (iso: string) => new Date(iso);
  const now = at("2026-11-15T00:00:00Z");
  const bucket = (id: number, priority: number, expiresAt: string | null, createdAt = "2026-11-01T00:00:00Z"): SpendableBucket => ({
    id,
    remainingMillicredits: 1000,
    priority,
    effectiveAt: at("2026-11-01T00:00:00Z"),
    expiresAt: expiresAt ? at(expiresAt) : null,
    createdAt: at(createdAt),
  });

  it("spends subscription credits expiring this month before never-expiring promo and refund credits", () => {
    const promo = bucket(1, DEFAULT_PRIORITY.promo, null);
    const refund = bucket(2, DEFAULT_PRIORITY.refund, null);
    const subscription = bucket(3, DEFAULT_PRIORITY.subscription, "2026-12-01T00:00:00Z");
    const { allocations } = allocate([promo, refund, subscription], 1500, now);
    assert.deepEqual(allocations.map((allocation) => [allocation.bucketId, allocation.amountMillicredits]), [[3, 1000], [1, 500]]);
  });

  it("puts the soonest expiry first whatever the kind's priority, never-expiring last", () => {
    const ordered = [
      bucket(1, DEFAULT_PRIORITY.top_up, null),
      bucket(2, DEFAULT_PRIORITY.trial, "2026-11-22T00:00:00Z"),
      bucket(3, DEFAULT_PRIORITY.pack, "2026-11-16T00:00:00Z"),
      bucket(4, DEFAULT_PRIORITY.promo, null),
      bucket(5, DEFAULT_PRIORITY.subscription, "2026-11-20T00:00:00Z"),
    ].sort(compareBucketsForSpend);
    assert.deepEqual(ordered.map((candidate) => candidate.id), [3, 5, 2, 4, 1]);
  });

  it("breaks ties on equal expiry by priority, then oldest, then id", () => {
    const ordered = [
      bucket(9, 40, "2026-12-01T00:00:00Z", "2026-11-02T00:00:00Z"),
      bucket(8, 40, "2026-12-01T00:00:00Z", "2026-11-02T00:00:00Z"),
      bucket(7, 40, "2026-12-01T00:00:00Z", "2026-11-01T00:00:00Z"),
      bucket(6, 20, "2026-12-01T00:00:00Z", "2026-11-03T00:00:00Z"),
      bucket(5, 50, null, "2026-10-01T00:00:00Z"),
      bucket(4, 20, null, "2026-11-05T00:00:00Z"),
    ].sort(compareBucketsForSpend);
    assert.deepEqual(ordered.map((candidate) => candidate.id), [6, 7, 8, 9, 4, 5]);
  });
});
