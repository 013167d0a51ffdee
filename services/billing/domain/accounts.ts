// Account rules that need no database: what a sign-up gets, how cycles renew and restart, what
// a plan change carries over, and who may take a seat.
import type { BucketKind } from "./spend-order.ts";
import { textProblem, type LedgerLimits } from "./limits.ts";
import { fail, type Failure, type Outcome } from "./outcomes.ts";
import { cycleStart, hasFreeSeat, subscriptionGrant, type Plan } from "./plans.ts";

const DAY_MS = 24 * 60 * 60 * 1000;

/** An account created without a plan starts here. */
export const DEFAULT_PLAN_CODE = "free";

/** The sign-up trial's grant key: one per account, so a repeated sign-up never grants twice. */
export const SIGN_UP_TRIAL_KEY = "sign-up-trial";

/** A grant the ledger makes on its own (trial, subscription), in the ledger's key space. */
export interface LedgerGrant {
  kind: BucketKind;
  amountMillicredits: number;
  effectiveAt?: Date;
  expiresAt: Date | null;
  idempotencyKey: string;
  description: string;
}

/**
 * The sign-up trial the free plan sets in the plans file (trialCredits for trialDays from
 * sign-up; the seeds: 10 credits, 7 days), unless the caller opted out; granted by default.
 */
export function signUpTrial(now: Date, grantTrial: boolean | undefined, freePlan: Pick<Plan, "trialMillicredits" | "trialDays"> | undefined): LedgerGrant | undefined {
  if (!(grantTrial ?? true) || !freePlan || freePlan.trialMillicredits === 0) return undefined;
  return {
    kind: "trial",
    amountMillicredits: freePlan.trialMillicredits,
    expiresAt: new Date(now.getTime() + freePlan.trialDays * DAY_MS),
    idempotencyKey: SIGN_UP_TRIAL_KEY,
    description: "sign-up trial",
  };
}

/**
 * A sign-up for an account that exists: the same plan is a repeat (answered, nothing granted
 * twice); another plan is a conflict, never a silent plan change.
 */
export function repeatedSignUp(accountId: string, existingPlanCode: string, requestedPlanCode: string): Outcome<{ created: false }> {
  if (existingPlanCode !== requestedPlanCode) return fail("account_exists", `account ${accountId} exists on plan ${existingPlanCode}`);
  return { ok: true, created: false };
}

/** The subscription allocation of cycle `cyclesSinceAnchor`, keyed so a renewal that runs twice grants once. */
export function subscriptionAllocation(plan: Plan, anchor: Date, cyclesSinceAnchor: number): LedgerGrant | undefined {
  const grant = subscriptionGrant(plan, anchor, cyclesSinceAnchor);
  if (!grant) return undefined;
  return {
    kind: "subscription",
    amountMillicredits: grant.amountMillicredits,
    effectiveAt: grant.effectiveAt,
    expiresAt: grant.expiresAt,
    idempotencyKey: `subscription:${plan.code}:${anchor.toISOString()}:${cyclesSinceAnchor}`,
    description: `${plan.name} cycle ${cyclesSinceAnchor + 1}`,
  };
}

/** Where an account is in its anniversary billing. */
export interface Cycle {
  anchorAt: Date;
  cyclesSinceAnchor: number;
  /** Counts every cycle of the account across plan changes (holds and reports refer to it). */
  cycleIndex: number;
  startedAt: Date;
  nextRenewalAt: Date;
}

/** A cycle anchored now: at sign-up (index 0) and after a plan change (the next index). */
export function cycleAnchoredAt(now: Date, cycleIndex: number): Cycle {
  return { anchorAt: now, cyclesSinceAnchor: 0, cycleIndex, startedAt: now, nextRenewalAt: cycleStart(now, 1) };
}

export interface Renewal {
  /** The cycle that ended, for its report. */
  ended: { cycleIndex: number; startedAt: Date; endedAt: Date };
  /** The cycle that began where it ended. */
  next: Cycle;
}

/**
 * Every renewal due by `now`, oldest first: an account the sweeper missed for three months
 * renews three times, each cycle reported and allocated as if renewed on time. The next
 * renewal date always comes from the anchor, so short months never drag later ones earlier.
 */
export function renewalsDue(cycle: Cycle, now: Date): Renewal[] {
  const renewals: Renewal[] = [];
  let current = cycle;
  while (current.nextRenewalAt.getTime() <= now.getTime()) {
    const cyclesSinceAnchor = current.cyclesSinceAnchor + 1;
    const next: Cycle = {
      anchorAt: current.anchorAt,
      cyclesSinceAnchor,
      cycleIndex: current.cycleIndex + 1,
      startedAt: current.nextRenewalAt,
      nextRenewalAt: cycleStart(current.anchorAt, cyclesSinceAnchor + 1),
    };
    renewals.push({ ended: { cycleIndex: current.cycleIndex, startedAt: current.startedAt, endedAt: current.nextRenewalAt }, next });
    current = next;
  }
  return renewals;
}

/**
 * On a plan change, which credits carry over and until when: subscription credits still alive
 * (remaining or held, not yet expired) that would die before the new plan's first cycle and its
 * rollover end are extended to that date, instead of dying at the old plan's renewal date.
 * Credits already living longer keep their expiry.
 */
export interface CarryOver {
  kind: BucketKind;
  aliveAt: Date;
  extendTo: Date;
}

/**
 * The carry-over onto `newPlan`, or undefined when nothing is extended: a downgrade to a plan
 * that allocates nothing (free) keeps the paid credits only until the end of the cycle they
 * were paid for (see paidCreditsEnd), not a month from the switch.
 */
export function carryOver(newPlan: Plan, now: Date): CarryOver | undefined {
  if (newPlan.creditsPerCycleMillicredits === 0) return undefined;
  return { kind: "subscription", aliveAt: now, extendTo: cycleStart(now, 1 + newPlan.rolloverCycles) };
}

/** Subscription credits still alive at `aliveAt` that expire after `endAt` are cut back to it. */
export interface CutBack {
  kind: BucketKind;
  aliveAt: Date;
  endAt: Date;
}

/**
 * On a move to a plan that allocates nothing (free), the paid subscription credits end with the
 * old plan's current cycle (`cycleEndsAt`, its next renewal): not one rollover cycle later, and
 * for an annual plan not at the end of its term. Undefined when the new plan allocates credits.
 */
export function paidCreditsEnd(newPlan: Plan, cycleEndsAt: Date, now: Date): CutBack | undefined {
  if (newPlan.creditsPerCycleMillicredits !== 0) return undefined;
  return { kind: "subscription", aliveAt: now, endAt: cycleEndsAt };
}

export type MemberRole = "owner" | "admin" | "member";

export const MEMBER_ROLES: readonly MemberRole[] = ["owner", "admin", "member"];

/** A member's monthly cap is a positive amount, or null for none. */
export function memberProblem(limits: LedgerLimits, member: { memberId: string; role: string; monthlyCapMillicredits: number | null }): string | undefined {
  const problem = textProblem(limits, "member_id", member.memberId, true);
  if (problem) return problem;
  if (!(MEMBER_ROLES as readonly string[]).includes(member.role)) return "role must be owner, admin or member";
  if (member.monthlyCapMillicredits !== null && (!Number.isSafeInteger(member.monthlyCapMillicredits) || member.monthlyCapMillicredits <= 0)) {
    return "monthly cap must be a positive integer of millicredits, or none";
  }
  return undefined;
}

/** A new member needs a free seat on the plan; changing an existing member's role or cap never does. */
export function seatRefusal(plan: Plan, memberIds: readonly string[], memberId: string): Failure | undefined {
  const isNew = !memberIds.includes(memberId);
  if (isNew && !hasFreeSeat(plan, memberIds.length)) return fail("seat_limit_reached", `plan ${plan.code} has ${plan.seats} seats, all taken`);
  return undefined;
}

/**
 * The cycle (counted from the anchor) a provider's paid invoice is for: the one starting nearest
 * the invoice's period start, no later than the next one (an invoice paid just before billing's
 * own renewal pays for the cycle about to begin). Without a period start, the current cycle.
 * Billing's anchor and the provider's differ by the seconds between payment and checkout event,
 * so nearest, not equal.
 */
export function invoicedCycle(cycle: Pick<Cycle, "anchorAt" | "cyclesSinceAnchor">, periodStart: Date | undefined): number {
  if (!periodStart) return cycle.cyclesSinceAnchor;
  let best = cycle.cyclesSinceAnchor + 1;
  let bestDistance = Math.abs(cycleStart(cycle.anchorAt, best).getTime() - periodStart.getTime());
  for (let index = cycle.cyclesSinceAnchor; index >= 0; index -= 1) {
    const distance = Math.abs(cycleStart(cycle.anchorAt, index).getTime() - periodStart.getTime());
    if (distance >= bestDistance) break;
    best = index;
    bestDistance = distance;
  }
  return best;
}
