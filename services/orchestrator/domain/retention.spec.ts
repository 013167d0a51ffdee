import assert from "node:assert/strict";
import { describe, it } from "node:test";
import { checkRetentionHours, keptForSeconds, RETENTION_HOURS_DEFAULT, retentionOf, ZERO_RETENTION_GRACE_SECONDS } from "./retention.ts";

describe("retention", () => {
  it("the account's hours, the 24 h default, or zero when the request asks for it", () => {
    assert.deepEqual(retentionOf({ zeroRetention: false, synchronous: false, accountRetentionHours: undefined }), { ok: true, retentionSeconds: RETENTION_HOURS_DEFAULT * 3600 });
    assert.deepEqual(retentionOf({ zeroRetention: false, synchronous: false, accountRetentionHours: 2 }), { ok: true, retentionSeconds: 7200 });
    assert.deepEqual(retentionOf({ zeroRetention: true, synchronous: true, accountRetentionHours: 12 }), { ok: true, retentionSeconds: 0 });
    assert.deepEqual(retentionOf({ zeroRetention: false, synchronous: true, accountRetentionHours: 0 }), { ok: true, retentionSeconds: 0 });
  });

  it("zero retention is refused for asynchronous jobs, naming what asked for it", () => {
    const byRequest = retentionOf({ zeroRetention: true, synchronous: false, accountRetentionHours: undefined });
    assert.ok(!byRequest.ok && byRequest.reason === "zero_retention_async" && /retention=none/.test(byRequest.message));
    const byAccount = retentionOf({ zeroRetention: false, synchronous: false, accountRetentionHours: 0 });
    assert.ok(!byAccount.ok && /account's retention is 0 hours/.test(byAccount.message));
  });

  it("accepts 0 to 24 whole hours; anything else names the limit", () => {
    for (const hours of [0, 1, 24]) assert.equal(checkRetentionHours(hours), undefined);
    for (const hours of [-1, 25, 1.5]) assert.match(checkRetentionHours(hours) ?? "", /0 \(zero retention\) to 24 \(RETENTION_HOURS_MAX\)/);
  });

  it("keeps files for the retention; zero retention for a short grace; older jobs for the default", () => {
    assert.equal(keptForSeconds(3600), 3600);
    assert.equal(keptForSeconds(0), ZERO_RETENTION_GRACE_SECONDS);
    assert.equal(keptForSeconds(null), 86_400);
  });
});
