import { assertInvariant } from "./outcomes.ts";

export type OnExhausted = "stop" | "overage";

export interface Plan {
  readonly code: string;
  readonly name: string;
  readonly monthlyPriceCents: number;
  readonly creditsPerCycleMillicredits: number;
  /** 0: unused subscription credits expire at renewal; N: they survive N more cycles. */
  readonly rolloverCycles: number;
  readonly onExhausted: OnExhausted;
  /** The plan's standard per-credit rate, charged for overage. */
  readonly overageRateCentsPerCredit: number;
  /** Overage allowed per cycle. */
  readonly overageCapMillicredits: number;
  readonly requestsPerMinute: number;
  readonly concurrency: number;
  readonly monthlyCalls: number;
  readonly maxUploadBytes: number;
  readonly longestSidePixels: number;
  readonly priorityLane: "high" | "normal";
  readonly seats: number;
}

const CREDIT = 1000;
const MEBIBYTE = 1024 * 1024;

export const DEFAULT_PLANS: readonly Plan[] = [
  {
    code: "free",
    name: "Free trial",
    monthlyPriceCents: 0,
    creditsPerCycleMillicredits: 0,
    rolloverCycles: 0,
    onExhausted: "stop",
    overageRateCentsPerCredit: 0,
    overageCapMillicredits: 0,
    requestsPerMinute: 10,
    concurrency: 1,
    monthlyCalls: 500,
    maxUploadBytes: 12 * MEBIBYTE,
    longestSidePixels: 4000,
    priorityLane: "normal",
    seats: 1,
  },
  {
    code: "starter",
    name: "Starter",
    monthlyPriceCents: 900,
    creditsPerCycleMillicredits: 50 * CREDIT,
    rolloverCycles: 0,
    onExhausted: "stop",
    overageRateCentsPerCredit: 18,
    overageCapMillicredits: 0,
    requestsPerMinute: 60,
    concurrency: 2,
    monthlyCalls: 5_000,
    maxUploadBytes: 25 * MEBIBYTE,
    longestSidePixels: 6000,
    priorityLane: "normal",
    seats: 1,
  },
  {
    code: "pro",
    name: "Pro",
    monthlyPriceCents: 3900,
    creditsPerCycleMillicredits: 250 * CREDIT,
    rolloverCycles: 1,
    onExhausted: "overage",
    overageRateCentsPerCredit: 16,
    overageCapMillicredits: 250 * CREDIT,
    requestsPerMinute: 300,
    concurrency: 8,
    monthlyCalls: 50_000,
    maxUploadBytes: 50 * MEBIBYTE,
    longestSidePixels: 10_000,
    priorityLane: "high",
    seats: 3,
  },
  {
    code: "business",
    name: "Business",
    monthlyPriceCents: 19_900,
    creditsPerCycleMillicredits: 1500 * CREDIT,
    rolloverCycles: 3,
    onExhausted: "overage",
    overageRateCentsPerCredit: 13,
    overageCapMillicredits: 3000 * CREDIT,
    requestsPerMinute: 1000,
    concurrency: 32,
    monthlyCalls: 500_000,
    maxUploadBytes: 100 * MEBIBYTE,
    longestSidePixels: 12_000,
    priorityLane: "high",
    seats: 20,
  },
];

export interface Pack {
  readonly code: string;
  readonly priceCents: number;
  readonly creditsMillicredits: number;
}

/** Top-up packs: never expire, survive renewals; the per-credit price falls with volume. */
export const DEFAULT_PACKS: readonly Pack[] = [
  { code: "pack_10", priceCents: 1_000, creditsMillicredits: 40 * CREDIT },
  { code: "pack_25", priceCents: 2_500, creditsMillicredits: 110 * CREDIT },
  { code: "pack_50", priceCents: 5_000, creditsMillicredits: 250 * CREDIT },
  { code: "pack_100", priceCents: 10_000, creditsMillicredits: 555 * CREDIT },
  { code: "pack_500", priceCents: 50_000, creditsMillicredits: 2_777 * CREDIT },
  { code: "pack_2000", priceCents: 200_000, creditsMillicredits: 11_111 * CREDIT },
];

/** The sign-up trial: 10 credits for 7 days. */
export const TRIAL_MILLICREDITS = 10 * CREDIT;
export const TRIAL_DURATION_MS = 7 * 24 * 60 * 60 * 1000;

/**
 * Start of cycle `index` for an anniversary anchored at `anchor`: the same day of month, clamped
 * to the month's last day (an anchor on the 31st renews on Feb 28/29), same time of day, UTC.
 * Always computed from the anchor, never from the previous cycle, so a short month does not
 * drag every later renewal earlier.
 */
export function cycleStart(anchor: Date, index: number): Date {
  assertInvariant(Number.isSafeInteger(index) && index >= 0, `cycle index must be a non-negative integer, got ${index}`);
  const monthsFromEpoch = anchor.getUTCFullYear() * 12 + anchor.getUTCMonth() + index;
  const year = Math.floor(monthsFromEpoch / 12);
  const month = monthsFromEpoch % 12;
  const lastDay = new Date(Date.UTC(year, month + 1, 0)).getUTCDate();
  return new Date(
    Date.UTC(year, month, Math.min(anchor.getUTCDate(), lastDay), anchor.getUTCHours(), anchor.getUTCMinutes(), anchor.getUTCSeconds(), anchor.getUTCMilliseconds()),
  );
}

/** The subscription grant for cycle `index`: effective at the cycle start, expiring after 1 + rollover cycles. */
export function subscriptionGrant(plan: Plan, anchor: Date, index: number): { effectiveAt: Date; expiresAt: Date; amountMillicredits: number } | undefined {
  if (plan.creditsPerCycleMillicredits === 0) return undefined;
  return {
    effectiveAt: cycleStart(anchor, index),
    expiresAt: cycleStart(anchor, index + 1 + plan.rolloverCycles),
    amountMillicredits: plan.creditsPerCycleMillicredits,
  };
}

/** Overage is money: integer cents, rounded up per cycle. */
export function overageCents(plan: Plan, overageMillicredits: number): number {
  return Math.ceil((overageMillicredits * plan.overageRateCentsPerCredit) / CREDIT);
}

/** `credits.low` fires when available drops below 10% of the cycle allocation, or 2 credits on plans without one. */
export function lowBalanceThresholdMillicredits(plan: Plan): number {
  return plan.creditsPerCycleMillicredits > 0 ? Math.floor(plan.creditsPerCycleMillicredits / 10) : 2 * CREDIT;
}
