import assert from "node:assert/strict";
import { describe, it } from "node:test";
import { adminGrantKey, adminGrantProblem, grantReplayConflict, refundTargetMillicredits, resolveGrant } from "./grants.ts";
import { DEFAULT_LEDGER_LIMITS } from "./limits.ts";
import { DEFAULT_PACKS, type Pack } from "./plans.ts";
import { DEFAULT_PRIORITY } from "./spend-order.ts";

const now = new Date("2025-04-01T00:00:00.000Z");
const later = (ms: number) => new Date(now.getTime() + ms);
const pack100 = DEFAULT_PACKS.find((pack) => pack.code === "pack_100") as Pack;
const reasonOf = (outcome: { ok: boolean; reason?: string }) => (outcome.ok ? "ok" : outcome.reason);

describe("admin grants", () => {
  it("live in their own key space", () => {
    assert.equal(adminGrantKey("order-9"), "admin:order-9");
    assert.notEqual(adminGrantKey("sign-up-trial"), "sign-up-trial");
  });

  it("checks ids, key, description and kind in that order", () => {
    const request = { accountId: "acme", idempotencyKey: "k", kind: "promo" };
    assert.equal(adminGrantProblem(DEFAULT_LEDGER_LIMITS, request), undefined);
    assert.equal(adminGrantProblem(DEFAULT_LEDGER_LIMITS, { ...request, accountId: "", kind: "gift" }), "account_id is required");
    assert.equal(adminGrantProblem(DEFAULT_LEDGER_LIMITS, { ...request, idempotencyKey: "" }), "idempotency_key is required");
    assert.equal(adminGrantProblem(DEFAULT_LEDGER_LIMITS, { ...request, description: "d".repeat(201) }), "description is longer than 200 characters");
    assert.equal(adminGrantProblem(DEFAULT_LEDGER_LIMITS, { ...request, kind: "gift" }), "kind must be one of trial, subscription, pack, top_up, promo, refund");
  });
});

describe("resolveGrant", () => {
  it("fills in the start, the default priority and no expiry", () => {
    const outcome = resolveGrant(DEFAULT_LEDGER_LIMITS, { kind: "promo", amountMillicredits: 500 }, undefined, now);
    assert.deepEqual(outcome, { ok: true, grant: { kind: "promo", amountMillicredits: 500, priceCents: 0, effectiveAt: now, expiresAt: null, priority: DEFAULT_PRIORITY.promo } });
    const explicit = resolveGrant(DEFAULT_LEDGER_LIMITS, { kind: "refund", amountMillicredits: 1, effectiveAt: later(10), expiresAt: later(20), priority: 3 }, undefined, now);
    assert.deepEqual(explicit, { ok: true, grant: { kind: "refund", amountMillicredits: 1, priceCents: 0, effectiveAt: later(10), expiresAt: later(20), priority: 3 } });
  });

  it("lets a pack set its own amount and price, and never expire", () => {
    const outcome = resolveGrant(DEFAULT_LEDGER_LIMITS, { kind: "pack", packCode: "pack_100", expiresAt: later(1000) }, pack100, now);
    assert.deepEqual(outcome, { ok: true, grant: { kind: "pack", amountMillicredits: 555_000, priceCents: 10_000, effectiveAt: now, expiresAt: null, priority: DEFAULT_PRIORITY.pack } });
    assert.equal(reasonOf(resolveGrant(DEFAULT_LEDGER_LIMITS, { kind: "pack", packCode: "pack_100", amountMillicredits: 555_000 }, pack100, now)), "ok");
  });

  it("refuses a pack without a code, an unknown pack, and an amount the pack does not set", () => {
    const noCode = resolveGrant(DEFAULT_LEDGER_LIMITS, { kind: "pack" }, undefined, now);
    assert.deepEqual(noCode, { ok: false, reason: "invalid_argument", message: "a pack grant needs pack_code" });
    const unknown = resolveGrant(DEFAULT_LEDGER_LIMITS, { kind: "pack", packCode: "pack_7" }, undefined, now);
    assert.deepEqual(unknown, { ok: false, reason: "pack_not_found", message: "no pack pack_7" });
    const wrongAmount = resolveGrant(DEFAULT_LEDGER_LIMITS, { kind: "pack", packCode: "pack_100", amountMillicredits: 1 }, pack100, now);
    assert.deepEqual(wrongAmount, { ok: false, reason: "invalid_argument", message: "a pack sets its own amount; send 0" });
  });

  it("refuses amounts that are not positive integers within the limit", () => {
    for (const amountMillicredits of [undefined, 0, -1, 2.5]) {
      const outcome = resolveGrant(DEFAULT_LEDGER_LIMITS, { kind: "top_up", amountMillicredits }, undefined, now);
      assert.deepEqual(outcome, { ok: false, reason: "invalid_argument", message: "amount must be a positive integer of millicredits" });
    }
    const tooBig = resolveGrant({ ...DEFAULT_LEDGER_LIMITS, amountMillicreditsMax: 100 }, { kind: "top_up", amountMillicredits: 101 }, undefined, now);
    assert.deepEqual(tooBig, { ok: false, reason: "invalid_argument", message: "amount exceeds the limit of 100 millicredits" });
  });

  it("refuses an expiry at or before the grant takes effect", () => {
    for (const expiresAt of [now, later(-1)]) {
      const outcome = resolveGrant(DEFAULT_LEDGER_LIMITS, { kind: "promo", amountMillicredits: 5, expiresAt }, undefined, now);
      assert.deepEqual(outcome, { ok: false, reason: "invalid_argument", message: "expires_at must be after the grant takes effect" });
    }
    assert.equal(reasonOf(resolveGrant(DEFAULT_LEDGER_LIMITS, { kind: "promo", amountMillicredits: 5, effectiveAt: later(50), expiresAt: later(40) }, undefined, now)), "invalid_argument");
  });
});

describe("grantReplayConflict", () => {
  const grant = { kind: "promo" as const, amountMillicredits: 500, priceCents: 0, effectiveAt: now, expiresAt: null, priority: 20 };

  it("replays the same kind and amount, whatever else changed", () => {
    assert.equal(grantReplayConflict({ bucketId: 7, kind: "promo", grantedMillicredits: 500 }, { ...grant, expiresAt: later(5), priority: 1 }), undefined);
  });

  it("refuses another kind or amount under the same key, naming the first bucket", () => {
    const expected = { ok: false, reason: "idempotency_conflict", message: "idempotency key already used for a different grant (bucket 7)" };
    assert.deepEqual(grantReplayConflict({ bucketId: 7, kind: "promo", grantedMillicredits: 501 }, grant), expected);
    assert.deepEqual(grantReplayConflict({ bucketId: 7, kind: "refund", grantedMillicredits: 500 }, grant), expected);
  });
});

describe("a refund's share of its grant", () => {
  it("takes the refunded share of the grant, rounded down, in integers however large", () => {
    const target = (granted: number, refunded: number, paid: number) => {
      const outcome = refundTargetMillicredits(granted, refunded, paid);
      return outcome.ok ? outcome.targetMillicredits : outcome.reason;
    };
    assert.equal(target(555_000, 10_000, 10_000), 555_000, "in full: all of it");
    assert.equal(target(555_000, 5_000, 10_000), 277_500, "half the money, half the credits");
    assert.equal(target(1_000, 1, 3), 333, "never a millicredit more than its share");
    assert.equal(target(0, 0, 1), 0);
    // granted × refunded passes 2^53 here; the quotient is exact.
    assert.equal(target(9_000_000_000_000, 99_999, 100_000), 8_999_910_000_000);
  });

  it("refuses a refund above what was paid, a negative one, or nothing paid, naming the field", () => {
    for (const [refunded, paid, field] of [[10_001, 10_000, "refunded_minor"], [-1, 10_000, "refunded_minor"], [0, 0, "paid_minor"]] as const) {
      const outcome = refundTargetMillicredits(1_000, refunded, paid);
      assert.equal(outcome.ok, false);
      assert.match(outcome.ok ? "" : outcome.message, new RegExp(`^${field}`));
    }
  });
});
