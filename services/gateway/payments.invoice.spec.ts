// Which line of a paid invoice pays for the plan, and what share of its credits a refund takes.
import assert from "node:assert/strict";
import { describe, it } from "node:test";
import type { InvoiceLine } from "../common/ports/payment-provider.ts";
import { creditsPaidShare, pickPlanLine } from "./payments.ts";

const line = (overrides: Partial<InvoiceLine>): InvoiceLine => ({ priceId: undefined, periodStart: new Date(0), amountMinor: 0, proration: false, metered: undefined, ...overrides });

describe("the plan line of a paid invoice", () => {
  const closed = new Date("2026-10-01T00:00:00Z");
  const coming = new Date("2026-11-01T00:00:00Z");

  it("takes the line priced at a plan's provider price, wherever it is", () => {
    const plan = line({ priceId: "price_pro", periodStart: closed, amountMinor: 4_999 });
    const picked = pickPlanLine([line({ priceId: "price_other", periodStart: coming }), plan], new Set(["price_pro"]));
    assert.deepEqual(picked, { ok: true, line: plan });
  });

  it("without a plan price, skips prorations and metered lines and takes the latest period (overage is billed in arrears)", () => {
    const plan = line({ priceId: "price_inline", periodStart: coming, amountMinor: 4_999 });
    const lines = [line({ periodStart: closed, amountMinor: 3_000 }), line({ periodStart: new Date(coming.getTime() + 1), proration: true }), line({ periodStart: new Date(coming.getTime() + 2), metered: true }), plan];
    assert.deepEqual(pickPlanLine(lines, new Set()), { ok: true, line: plan });
  });

  it("refuses an invoice of prorations and metered usage only, and leaves an invoice without lines to its metadata", () => {
    assert.deepEqual(pickPlanLine([line({ proration: true }), line({ metered: true })], new Set()), { ok: false });
    assert.deepEqual(pickPlanLine([], new Set(["price_pro"])), { ok: true, line: undefined });
  });
});

describe("a refund's share of the credits", () => {
  it("gives back what granted no credits first, then takes the credits' price, never more than the whole", () => {
    // A $50 invoice: $20 plan, $30 overage and tax.
    assert.deepEqual(creditsPaidShare(2_000, 5_000, 3_000), { refundedMinor: 0, paidMinor: 2_000 });
    assert.deepEqual(creditsPaidShare(2_000, 5_000, 4_000), { refundedMinor: 1_000, paidMinor: 2_000 });
    assert.deepEqual(creditsPaidShare(2_000, 5_000, 5_000), { refundedMinor: 2_000, paidMinor: 2_000 });
    // A pack: the payment is the credits' price.
    assert.deepEqual(creditsPaidShare(1_000, 1_000, 250), { refundedMinor: 250, paidMinor: 1_000 });
    // A charge Stripe reports as more than the invoice paid for the credits never takes more than all.
    assert.deepEqual(creditsPaidShare(2_000, 2_000, 9_000), { refundedMinor: 2_000, paidMinor: 2_000 });
  });
});
