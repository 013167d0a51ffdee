import assert from "node:assert/strict";
import { describe, it } from "node:test";
import { captureAmountProblem, checkReserve, extendedDeadline, reserveRequestHash, settleProblem, type HoldDeadline } from "./holds.ts";
import { DEFAULT_LEDGER_LIMITS } from "./limits.ts";

const request = { accountId: "acme", amountMillicredits: 1_100, idempotencyKey: "job-1" };
const reasonOf = (outcome: { ok: boolean; reason?: string; message?: string }) => (outcome.ok ? "ok" : `${outcome.reason}: ${outcome.message}`);

describe("checkReserve", () => {
  it("uses the default lifetime for 0 or none, and the asked one within the limit", () => {
    assert.deepEqual(checkReserve(DEFAULT_LEDGER_LIMITS, request), { ok: true, ttlSeconds: 900 });
    assert.deepEqual(checkReserve(DEFAULT_LEDGER_LIMITS, { ...request, holdTtlSeconds: 0 }), { ok: true, ttlSeconds: 900 });
    assert.deepEqual(checkReserve(DEFAULT_LEDGER_LIMITS, { ...request, holdTtlSeconds: 86_400 }), { ok: true, ttlSeconds: 86_400 });
  });

  it("refuses lifetimes outside 1 s to the maximum", () => {
    for (const holdTtlSeconds of [-1, 86_401, 1.5]) {
      assert.equal(reasonOf(checkReserve(DEFAULT_LEDGER_LIMITS, { ...request, holdTtlSeconds })), "invalid_argument: hold_ttl_seconds must be between 1 and 86400");
    }
  });

  it("checks fields in a fixed order: account, key, API key, member, description, amount", () => {
    const long = "x".repeat(201);
    const everythingWrong = { accountId: "", idempotencyKey: "", apiKeyId: long, memberId: long, description: long, amountMillicredits: 0 };
    const expected = [
      "account_id is required",
      "idempotency_key is required",
      "api_key_id is longer than 200 characters",
      "member_id is longer than 200 characters",
      "description is longer than 200 characters",
      "amount must be a positive integer of millicredits",
    ];
    const fixes = [{ accountId: "a" }, { idempotencyKey: "k" }, { apiKeyId: "key" }, { memberId: "m" }, { description: "d" }, { amountMillicredits: 1 }];
    let current: typeof everythingWrong = everythingWrong;
    for (const [index, message] of expected.entries()) {
      assert.equal(reasonOf(checkReserve(DEFAULT_LEDGER_LIMITS, current)), `invalid_argument: ${message}`);
      current = { ...current, ...fixes[index] };
    }
    assert.equal(reasonOf(checkReserve(DEFAULT_LEDGER_LIMITS, current)), "ok");
    assert.equal(reasonOf(checkReserve(DEFAULT_LEDGER_LIMITS, { ...request, amountMillicredits: 100_000_001 })), "invalid_argument: amount exceeds the limit of 100000000 millicredits");
  });
});

describe("reserveRequestHash", () => {
  const base = { ...request, pool: "api" };

  it("is the same for a retry and ignores the idempotency key and account", () => {
    assert.equal(reserveRequestHash(base, 900), reserveRequestHash({ ...base, idempotencyKey: "other", accountId: "other" }, 900));
    assert.equal(reserveRequestHash(base, 900), reserveRequestHash({ ...base, apiKeyId: "", memberId: "", description: "" }, 900));
  });

  it("changes with everything that changes the charge", () => {
    const hash = reserveRequestHash(base, 900);
    for (const changed of [{ pool: "web" }, { amountMillicredits: 1_101 }, { apiKeyId: "k" }, { memberId: "m" }, { description: "d" }]) {
      assert.notEqual(reserveRequestHash({ ...base, ...changed }, 900), hash, JSON.stringify(changed));
    }
    assert.notEqual(reserveRequestHash(base, 901), hash);
  });
});

describe("settlement checks", () => {
  it("needs a hold id, bounds the reason, and captures only non-negative integers", () => {
    assert.equal(settleProblem(DEFAULT_LEDGER_LIMITS, "h", ""), undefined);
    assert.equal(settleProblem(DEFAULT_LEDGER_LIMITS, "", ""), "hold_id is required");
    assert.equal(settleProblem(DEFAULT_LEDGER_LIMITS, "h", "r".repeat(201)), "reason is longer than 200 characters");
    assert.equal(captureAmountProblem(0), undefined);
    assert.equal(captureAmountProblem(5), undefined);
    assert.equal(captureAmountProblem(-1), "capture amount must be a non-negative integer");
    assert.equal(captureAmountProblem(0.5), "capture amount must be a non-negative integer");
  });
});

describe("extendedDeadline", () => {
  const createdAt = new Date("2025-01-01T00:00:00.000Z");
  const hold = (status: HoldDeadline["status"], expiresInMs: number): HoldDeadline => ({ id: "h1", status, createdAt, expiresAt: new Date(createdAt.getTime() + expiresInMs) });
  const minutes = (count: number) => count * 60_000;
  const at = (ms: number) => new Date(createdAt.getTime() + ms);

  it("moves an open hold's deadline to now plus its lifetime", () => {
    assert.deepEqual(extendedDeadline(hold("open", minutes(15)), at(minutes(10))), { ok: true, expiresAt: at(minutes(25)) });
  });

  it("never moves a deadline earlier (an extended hold keeps its later deadline)", () => {
    // Lifetime counts from creation: 30 min; at minute 1, now + 30 min is before minute 40.
    assert.deepEqual(extendedDeadline({ ...hold("open", minutes(40)), createdAt: at(minutes(10)) }, at(minutes(1))), { ok: true, expiresAt: at(minutes(40)) });
  });

  it("refuses a hold past its deadline, even one the sweeper has not expired yet", () => {
    assert.equal(reasonOf(extendedDeadline(hold("open", minutes(15)), at(minutes(15)))), "hold_expired: hold h1 passed its deadline and was released");
    assert.equal(reasonOf(extendedDeadline(hold("expired", minutes(15)), at(minutes(1)))), "hold_expired: hold h1 passed its deadline and was released");
  });

  it("refuses a settled hold", () => {
    assert.equal(reasonOf(extendedDeadline(hold("captured", minutes(15)), at(minutes(1)))), "hold_already_settled: hold h1 is already captured");
    assert.equal(reasonOf(extendedDeadline(hold("released", minutes(15)), at(minutes(1)))), "hold_already_settled: hold h1 is already released");
  });
});
