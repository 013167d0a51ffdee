// What each answer of billing_reserve and billing_settle means to the caller: one outcome, one
// reason, the amounts carried over unchanged. An answer the functions cannot give is a crash.
import assert from "node:assert/strict";
import { describe, it } from "node:test";
import { reserveFailure, settleOutcome, type ReserveAnswer, type SettleAnswer } from "./hold.store.ts";

const input = { accountId: "acme", pool: "api" as const };

describe("reserve answers", () => {
  it("maps every refusal to one reason, with balance and cost where the caller needs them", () => {
    const cases: [Exclude<ReserveAnswer, { outcome: "ok" | "renewal_due" }>, object][] = [
      [
        { outcome: "insufficient_credits", available_mc: 900, cost_mc: 1_100, on_exhausted: "stop", overage_offered: false, overage_cap_reached: false, overage_rate_cents_per_credit: 0 },
        {
          reason: "insufficient_credits",
          message: "900 millicredits available, 1100 needed; upgrade the plan or buy a top-up pack",
          availableMillicredits: 900,
          costMillicredits: 1_100,
          exhausted: { onExhausted: "stop", overageOffered: false, overageCapReached: false, overageRateCentsPerCredit: 0 },
        },
      ],
      [
        { outcome: "insufficient_credits", available_mc: 0, cost_mc: 500, on_exhausted: "overage", overage_offered: true, overage_cap_reached: true, overage_rate_cents_per_credit: 16 },
        {
          reason: "insufficient_credits",
          message: "the plan's overage cap is reached: 0 millicredits available, 500 needed; upgrade the plan or buy a top-up pack",
          availableMillicredits: 0,
          costMillicredits: 500,
          exhausted: { onExhausted: "overage", overageOffered: true, overageCapReached: true, overageRateCentsPerCredit: 16 },
        },
      ],
      [
        { outcome: "member_cap_reached", used_mc: 1_500, cap_mc: 2_000, cost_mc: 1_000 },
        { reason: "member_cap_reached", message: "member has used 1500 of a 2000 millicredit monthly cap; this costs 1000", costMillicredits: 1_000 },
      ],
      [{ outcome: "idempotency_conflict", hold_id: "h1" }, { reason: "idempotency_conflict", message: "idempotency key already used by a different request (hold h1)" }],
      [{ outcome: "account_not_found" }, { reason: "account_not_found", message: "no api credit account for acme" }],
      [{ outcome: "invalid_amount" }, { reason: "invalid_argument", message: "amount must be positive" }],
    ];
    for (const [answer, expected] of cases) assert.deepEqual(reserveFailure(answer, input), { ok: false, ...expected }, answer.outcome);
  });

  it("crashes on an outcome the function cannot give", () => {
    assert.throws(() => reserveFailure({ outcome: "surprise" } as never, input), /^Error: billing_reserve answered an unknown outcome surprise$/);
  });
});

describe("settle answers", () => {
  const amounts = { captured_mc: 800, overage_mc: 100, returned_mc: 300, available_mc: 5_000 };
  const result = { ok: true, capturedMillicredits: 800, overageMillicredits: 100, returnedMillicredits: 300, availableMillicredits: 5_000 };

  it("carries the amounts of a settlement and of its replay", () => {
    assert.deepEqual(settleOutcome({ outcome: "ok", replayed: false, status: "captured", ...amounts }, "h1"), { ...result, replayed: false });
    assert.deepEqual(settleOutcome({ outcome: "ok", replayed: true, ...amounts }, "h1"), { ...result, replayed: true });
  });

  it("maps every refusal to one reason", () => {
    const cases: [SettleAnswer, object][] = [
      [{ outcome: "hold_not_found" }, { reason: "hold_not_found", message: "no hold h1" }],
      [{ outcome: "hold_expired" }, { reason: "hold_expired", message: "hold h1 passed its deadline and was released" }],
      [{ outcome: "hold_already_settled", status: "released" }, { reason: "hold_already_settled", message: "hold h1 is already released" }],
      [{ outcome: "capture_exceeds_hold", held_mc: 1_000, cost_mc: 1_200 }, { reason: "capture_exceeds_hold", message: "capture of 1200 exceeds the 1000 millicredits held", costMillicredits: 1_200 }],
    ];
    for (const [answer, expected] of cases) assert.deepEqual(settleOutcome(answer, "h1"), { ok: false, ...expected }, answer.outcome);
  });

  it("crashes on an outcome the function cannot give", () => {
    assert.throws(() => settleOutcome({ outcome: "surprise" } as never, "h1"), /^Error: billing_settle answered an unknown outcome surprise$/);
  });
});
