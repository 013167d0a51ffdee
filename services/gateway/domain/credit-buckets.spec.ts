import assert from "node:assert/strict";
import { describe, it } from "node:test";
import { splitCreditBuckets } from "./credit-buckets.ts";

describe("splitCreditBuckets", () => {
  it("splits what can be spent: the plan's credits first, the rest pay-as-you-go", () => {
    const buckets = [
      { kind: "trial", remainingMillicredits: 2_000n },
      { kind: "subscription", remainingMillicredits: 3_000n },
      { kind: "top_up", remainingMillicredits: 4_000n },
      { kind: "promo", remainingMillicredits: 1_000n },
    ];
    assert.deepEqual(splitCreditBuckets(buckets, 10_000n), { subscriptionMillicredits: 5_000n, paygMillicredits: 5_000n });
  });

  it("never shows more than is available: held credits and grants not yet effective are left out", () => {
    const buckets = [
      { kind: "subscription", remainingMillicredits: 3_000n },
      { kind: "top_up", remainingMillicredits: 4_000n },
    ];
    assert.deepEqual(splitCreditBuckets(buckets, 5_000n), { subscriptionMillicredits: 3_000n, paygMillicredits: 2_000n });
    assert.deepEqual(splitCreditBuckets(buckets, 2_500n), { subscriptionMillicredits: 2_500n, paygMillicredits: 0n });
    assert.deepEqual(splitCreditBuckets(buckets, 0n), { subscriptionMillicredits: 0n, paygMillicredits: 0n });
  });
});
