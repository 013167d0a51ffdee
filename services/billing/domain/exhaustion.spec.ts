import assert from "node:assert/strict";
import { describe, it } from "node:test";
import { effectiveOnExhausted, exhaustedMessage, onExhaustedProblem, overageRateProblem } from "./exhaustion.ts";
import { DEFAULT_PLANS, type Plan } from "./plans.ts";

const pro = DEFAULT_PLANS.find((plan) => plan.code === "pro")!;
const free = DEFAULT_PLANS.find((plan) => plan.code === "free")!;

describe("when a plan's credits run out", () => {
  it("takes the account's choice, else the plan's", () => {
    assert.equal(effectiveOnExhausted(pro, null), "overage");
    assert.equal(effectiveOnExhausted(pro, "stop"), "stop");
    assert.equal(effectiveOnExhausted(free, null), "stop");
  });

  it("offers overage only on a plan with an overage rate and cap", () => {
    assert.equal(onExhaustedProblem(pro, "overage"), undefined);
    assert.equal(onExhaustedProblem(pro, null), undefined);
    assert.equal(onExhaustedProblem(free, "stop"), undefined);
    assert.match(onExhaustedProblem(free, "overage") ?? "", /plan free offers no overage/);
    assert.match(onExhaustedProblem(pro, "later" as never) ?? "", /on_exhausted must be stop or overage/);
  });

  it("names the caller's two options, or the one left", () => {
    const base = { availableMillicredits: 500, costMillicredits: 1_000, upgradeHint: "upgrade at /billing" };
    assert.equal(
      exhaustedMessage({ ...base, exhausted: { onExhausted: "stop", overageOffered: true, overageCapReached: false, overageRateCentsPerCredit: 16 } }),
      "500 millicredits available, 1000 needed; upgrade the plan, or continue in overage at 16 cents a credit (set on_exhausted to overage)",
    );
    assert.equal(
      exhaustedMessage({ ...base, exhausted: { onExhausted: "overage", overageOffered: true, overageCapReached: true, overageRateCentsPerCredit: 16 } }),
      "the plan's overage cap is reached: 500 millicredits available, 1000 needed; upgrade the plan or buy a top-up pack",
    );
    assert.equal(
      exhaustedMessage({ ...base, exhausted: { onExhausted: "stop", overageOffered: false, overageCapReached: false, overageRateCentsPerCredit: 0 } }),
      "500 millicredits available, 1000 needed; upgrade the plan or buy a top-up pack",
    );
  });

  it("bills overage at the standard rate, above the plan's discounted per-credit rate", () => {
    // Pixelcut: $250 for 4,570 credits (5.47 cents a credit), overage 10 cents.
    const pixelcut: Plan = { ...pro, code: "image_250", monthlyPriceCents: 25_000, creditsPerCycleMillicredits: 4_570_000, overageRateCentsPerCredit: 10 };
    assert.equal(overageRateProblem(pixelcut), undefined);
    assert.match(overageRateProblem({ ...pixelcut, overageRateCentsPerCredit: 5 }) ?? "", /image_250: overage rate 5 cents a credit is not above the plan's 5\.47/);
    assert.equal(overageRateProblem(free), undefined, "no overage, nothing to compare");
  });
});
