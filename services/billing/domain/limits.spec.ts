import assert from "node:assert/strict";
import { describe, it } from "node:test";
import { amountProblem, DEFAULT_LEDGER_LIMITS, textProblem } from "./limits.ts";

describe("ledger limits", () => {
  it("refuses a missing required text and any text over the length limit", () => {
    assert.equal(textProblem(DEFAULT_LEDGER_LIMITS, "account_id", "a", true), undefined);
    assert.equal(textProblem(DEFAULT_LEDGER_LIMITS, "account_id", "", true), "account_id is required");
    assert.equal(textProblem(DEFAULT_LEDGER_LIMITS, "account_id", undefined, true), "account_id is required");
    assert.equal(textProblem(DEFAULT_LEDGER_LIMITS, "description", undefined, false), undefined);
    assert.equal(textProblem(DEFAULT_LEDGER_LIMITS, "description", "x".repeat(200), false), undefined);
    assert.equal(textProblem(DEFAULT_LEDGER_LIMITS, "description", "x".repeat(201), false), "description is longer than 200 characters");
  });

  it("accepts positive safe integers up to the maximum amount", () => {
    assert.equal(amountProblem(DEFAULT_LEDGER_LIMITS, 1), undefined);
    assert.equal(amountProblem(DEFAULT_LEDGER_LIMITS, DEFAULT_LEDGER_LIMITS.amountMillicreditsMax), undefined);
    assert.equal(amountProblem(DEFAULT_LEDGER_LIMITS, DEFAULT_LEDGER_LIMITS.amountMillicreditsMax + 1), "amount exceeds the limit of 100000000 millicredits");
    for (const amount of [0, -1, 0.5, Number.NaN, Number.MAX_SAFE_INTEGER + 2]) {
      assert.equal(amountProblem(DEFAULT_LEDGER_LIMITS, amount), "amount must be a positive integer of millicredits", String(amount));
    }
  });
});
