import assert from "node:assert/strict";
import { describe, it } from "node:test";
import {
  carryOver,
  cycleAnchoredAt,
  invoicedCycle,
  memberProblem,
  renewalsDue,
  repeatedSignUp,
  seatRefusal,
  signUpTrial,
  SIGN_UP_TRIAL_KEY,
  subscriptionAllocation,
} from "./accounts.ts";
import { DEFAULT_LEDGER_LIMITS } from "./limits.ts";
import { readCatalogueFile } from "../store/catalogue.store.ts";
import { DEFAULT_PLANS, type Plan } from "./plans.ts";

const plan = (code: string): Plan => {
  const found = DEFAULT_PLANS.find((candidate) => candidate.code === code);
  assert.ok(found, `no default plan ${code}`);
  return found;
};
const at = (iso: string) => new Date(iso);

describe("sign-up trial", () => {
  const now = at("2025-03-10T08:00:00.000Z");

  // The shipped plans file's free plan: the seeds' 10 credits for 7 days, as data.
  const free = readCatalogueFile().plans.find((plan) => plan.code === "free")!;

  it("grants the free plan's trial (the plans file: 10 credits for 7 days) under one key by default", () => {
    assert.deepEqual([free.trialMillicredits, free.trialDays], [10_000, 7]);
    assert.deepEqual(signUpTrial(now, undefined, free), {
      kind: "trial",
      amountMillicredits: 10_000,
      expiresAt: at("2025-03-17T08:00:00.000Z"),
      idempotencyKey: SIGN_UP_TRIAL_KEY,
      description: "sign-up trial",
    });
    assert.equal(signUpTrial(now, true, { trialMillicredits: 25_000, trialDays: 30 })?.expiresAt?.toISOString(), "2025-04-09T08:00:00.000Z", "an operator's edit of the file");
  });

  it("grants nothing when the caller opts out, or the free plan sets no trial", () => {
    assert.equal(signUpTrial(now, false, free), undefined);
    assert.equal(signUpTrial(now, true, { trialMillicredits: 0, trialDays: 0 }), undefined);
  });
});

describe("repeated sign-up", () => {
  it("answers a repeat on the same plan and refuses another plan", () => {
    assert.deepEqual(repeatedSignUp("acme", "pro", "pro"), { ok: true, created: false });
    assert.deepEqual(repeatedSignUp("acme", "pro", "free"), { ok: false, reason: "account_exists", message: "account acme exists on plan pro" });
  });
});

describe("subscription allocation", () => {
  const anchor = at("2025-01-31T10:00:00.000Z");

  it("is keyed by plan, anchor and cycle so a repeated renewal grants once", () => {
    const allocation = subscriptionAllocation(plan("pro"), anchor, 1);
    assert.deepEqual(allocation, {
      kind: "subscription",
      amountMillicredits: 250_000,
      effectiveAt: at("2025-02-28T10:00:00.000Z"),
      // Pro rolls over one cycle: alive for this cycle and the next.
      expiresAt: at("2025-04-30T10:00:00.000Z"),
      idempotencyKey: "subscription:pro:2025-01-31T10:00:00.000Z:1",
      description: "Pro cycle 2",
    });
  });

  it("is nothing on a plan without an allocation", () => {
    assert.equal(subscriptionAllocation(plan("free"), anchor, 0), undefined);
  });
});

describe("cycles", () => {
  it("anchors a new cycle at now and renews a month later", () => {
    const now = at("2025-01-31T10:00:00.000Z");
    assert.deepEqual(cycleAnchoredAt(now, 4), { anchorAt: now, cyclesSinceAnchor: 0, cycleIndex: 4, startedAt: now, nextRenewalAt: at("2025-02-28T10:00:00.000Z") });
  });

  it("renews nothing before the renewal date and once at it", () => {
    const cycle = cycleAnchoredAt(at("2025-01-15T00:00:00.000Z"), 0);
    assert.deepEqual(renewalsDue(cycle, at("2025-02-14T23:59:59.999Z")), []);
    const [renewal, ...rest] = renewalsDue(cycle, at("2025-02-15T00:00:00.000Z"));
    assert.deepEqual(rest, []);
    assert.deepEqual(renewal, {
      ended: { cycleIndex: 0, startedAt: at("2025-01-15T00:00:00.000Z"), endedAt: at("2025-02-15T00:00:00.000Z") },
      next: { anchorAt: cycle.anchorAt, cyclesSinceAnchor: 1, cycleIndex: 1, startedAt: at("2025-02-15T00:00:00.000Z"), nextRenewalAt: at("2025-03-15T00:00:00.000Z") },
    });
  });

  it("renews every missed cycle in order, dated from the anchor without drifting", () => {
    const cycle = cycleAnchoredAt(at("2025-01-31T10:00:00.000Z"), 2);
    const renewals = renewalsDue(cycle, at("2025-05-01T00:00:00.000Z"));
    assert.deepEqual(
      renewals.map((renewal) => [renewal.ended.cycleIndex, renewal.ended.endedAt.toISOString(), renewal.next.cyclesSinceAnchor, renewal.next.nextRenewalAt.toISOString()]),
      [
        [2, "2025-02-28T10:00:00.000Z", 1, "2025-03-31T10:00:00.000Z"],
        [3, "2025-03-31T10:00:00.000Z", 2, "2025-04-30T10:00:00.000Z"],
        [4, "2025-04-30T10:00:00.000Z", 3, "2025-05-31T10:00:00.000Z"],
      ],
    );
    // Each cycle starts where the previous one ended.
    for (const renewal of renewals) assert.equal(renewal.next.startedAt.getTime(), renewal.ended.endedAt.getTime());
  });
});

describe("carry-over on plan change", () => {
  const now = at("2025-06-10T12:00:00.000Z");

  it("keeps subscription credits alive through the new plan's first cycle and its rollover", () => {
    assert.deepEqual(carryOver(plan("starter"), now), { kind: "subscription", aliveAt: now, extendTo: at("2025-07-10T12:00:00.000Z") });
    assert.deepEqual(carryOver(plan("pro"), now)?.extendTo, at("2025-08-10T12:00:00.000Z"));
    assert.deepEqual(carryOver(plan("business"), now)?.extendTo, at("2025-10-10T12:00:00.000Z"));
  });

  it("extends nothing on a downgrade to free: paid credits last to the end of the cycle they were paid for", () => {
    assert.equal(carryOver(plan("free"), now), undefined);
  });
});

describe("members and seats", () => {
  const member = { memberId: "bob", role: "member", monthlyCapMillicredits: null };

  it("accepts a valid member and refuses bad ids, roles and caps", () => {
    assert.equal(memberProblem(DEFAULT_LEDGER_LIMITS, member), undefined);
    assert.equal(memberProblem(DEFAULT_LEDGER_LIMITS, { ...member, monthlyCapMillicredits: 1 }), undefined);
    assert.equal(memberProblem(DEFAULT_LEDGER_LIMITS, { ...member, memberId: "" }), "member_id is required");
    assert.equal(memberProblem(DEFAULT_LEDGER_LIMITS, { ...member, memberId: "x".repeat(201) }), "member_id is longer than 200 characters");
    assert.equal(memberProblem(DEFAULT_LEDGER_LIMITS, { ...member, role: "root" }), "role must be owner, admin or member");
    for (const cap of [0, -5, 1.5]) {
      assert.equal(memberProblem(DEFAULT_LEDGER_LIMITS, { ...member, monthlyCapMillicredits: cap }), "monthly cap must be a positive integer of millicredits, or none");
    }
  });

  it("refuses a new member once every seat is taken, never an existing one", () => {
    const pro = plan("pro");
    assert.equal(pro.seats, 3);
    assert.equal(seatRefusal(pro, ["owner", "bob"], "carol"), undefined);
    assert.equal(seatRefusal(pro, ["owner", "bob", "carol"], "bob"), undefined);
    const refusal = seatRefusal(pro, ["owner", "bob", "carol"], "dave");
    assert.deepEqual(refusal, { ok: false, reason: "seat_limit_reached", message: "plan pro has 3 seats, all taken" });
    assert.equal(seatRefusal(plan("free"), ["owner"], "bob")?.reason, "seat_limit_reached");
  });
});

describe("the cycle a provider's paid invoice is for", () => {
  const anchor = at("2026-01-15T10:00:05.000Z");
  it("is the cycle starting nearest the invoice's period, at most the next one; without a period, the current one", () => {
    const cycle = { anchorAt: anchor, cyclesSinceAnchor: 2 };
    assert.equal(invoicedCycle(cycle, undefined), 2);
    assert.equal(invoicedCycle(cycle, at("2026-03-15T10:00:00.000Z")), 2, "Stripe's period starts seconds before billing's cycle");
    assert.equal(invoicedCycle(cycle, at("2026-04-15T09:00:00.000Z")), 3, "paid just before billing's renewal: the cycle about to begin");
    assert.equal(invoicedCycle(cycle, at("2026-02-15T10:00:00.000Z")), 1, "a late payment of the previous cycle");
    assert.equal(invoicedCycle(cycle, at("2027-01-01T00:00:00.000Z")), 3, "never further ahead than the next cycle");
    assert.equal(invoicedCycle(cycle, at("2020-01-01T00:00:00.000Z")), 0, "never before the anchor");
  });
});
