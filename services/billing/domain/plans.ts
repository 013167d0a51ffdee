import { assertInvariant, fail, type Failure } from "./outcomes.ts";

export type OnExhausted = "stop" | "overage";

/** Standard-class plans process images up to 4096 px and video up to 60 s; pro-class up to 8192 px and 5 minutes. */
export const PLAN_CLASSES = ["standard", "pro"] as const;
export type PlanClass = (typeof PLAN_CLASSES)[number];

/** Seats of 0: the plan admits any number of members (enterprise). */
export const UNLIMITED_SEATS = 0;

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
  /** Members the team may have; UNLIMITED_SEATS (0) for no limit. */
  readonly seats: number;
  readonly planClass: PlanClass;
  /** The pool the plan's subscription credits go to: web (dashboard) credits never fund API calls. */
  readonly pool: "api" | "web";
  /** 0: credits live 1 + rolloverCycles cycles; N: they live until the end of the N-month term they were granted in (annual plans). */
  readonly termMonths: number;
  /** 0: credits live by cycles (above); N: each cycle's credits expire N days after they take effect. */
  readonly creditsValidDays: number;
  /** Longest video accepted (seconds), largest video upload (bytes) and longest side processed (pixels; 1920 is 1080p). */
  readonly videoSecondsMax: number;
  readonly videoBytesMax: number;
  readonly videoLongestSidePixels: number;
  /** The Stripe Price that sells the plan, when payments go through Stripe. */
  readonly stripePriceId: string | null;
  /** The sign-up trial: credits for `trialDays` days from sign-up; only the free plan's is granted (every sign-up's). 0: none. */
  readonly trialMillicredits: number;
  readonly trialDays: number;
}

const CREDIT = 1000;
const MEBIBYTE = 1024 * 1024;
const DAY_MS = 24 * 60 * 60 * 1000;

/** What the 2025 plans are, in the columns 202611272100_catalogue_columns added (their values there). */
const SEED_PLAN_EXTRAS = {
  pool: "api",
  termMonths: 0,
  creditsValidDays: 0,
  videoSecondsMax: 60,
  videoBytesMax: 200 * MEBIBYTE,
  videoLongestSidePixels: 1920,
  stripePriceId: null,
  trialMillicredits: 0,
  trialDays: 0,
} as const;

/**
 * The catalogue as it shipped in 2025: the frozen seed migration inserts these rows, and
 * 202611272101_plan_presets moves their accounts to the nearest preset of the plans file
 * (deploy/plans/plans.json, the live catalogue). Never edit: the migration must insert the same rows.
 */
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
    planClass: "standard",
    ...SEED_PLAN_EXTRAS,
    // The trial every sign-up got in 2025, then a code constant.
    trialMillicredits: 10 * CREDIT,
    trialDays: 7,
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
    planClass: "standard",
    ...SEED_PLAN_EXTRAS,
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
    planClass: "pro",
    ...SEED_PLAN_EXTRAS,
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
    planClass: "pro",
    ...SEED_PLAN_EXTRAS,
  },
];

export interface Pack {
  readonly code: string;
  readonly priceCents: number;
  readonly creditsMillicredits: number;
  /** The Stripe Price that sells the pack, when payments go through Stripe. */
  readonly stripePriceId?: string | null;
}

/** Top-up packs as they shipped in 2025 (the seed migration's); the live ones are the plans file's. */
export const DEFAULT_PACKS: readonly Pack[] = [
  { code: "pack_10", priceCents: 1_000, creditsMillicredits: 40 * CREDIT },
  { code: "pack_25", priceCents: 2_500, creditsMillicredits: 110 * CREDIT },
  { code: "pack_50", priceCents: 5_000, creditsMillicredits: 250 * CREDIT },
  { code: "pack_100", priceCents: 10_000, creditsMillicredits: 555 * CREDIT },
  { code: "pack_500", priceCents: 50_000, creditsMillicredits: 2_777 * CREDIT },
  { code: "pack_2000", priceCents: 200_000, creditsMillicredits: 11_111 * CREDIT },
];


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

/**
 * The subscription grant for cycle `index`: effective at the cycle start, expiring after
 * 1 + rollover cycles, or `creditsValidDays` after it takes effect (web credits: 90 days), or at
 * the end of its `termMonths` term (annual plans: every month's credits last to the term's end).
 */
export function subscriptionGrant(
  plan: Pick<Plan, "creditsPerCycleMillicredits" | "rolloverCycles" | "termMonths" | "creditsValidDays">,
  anchor: Date,
  index: number,
): { effectiveAt: Date; expiresAt: Date; amountMillicredits: number } | undefined {
  if (plan.creditsPerCycleMillicredits === 0) return undefined;
  const effectiveAt = cycleStart(anchor, index);
  let expiresAt = cycleStart(anchor, index + 1 + plan.rolloverCycles);
  if (plan.creditsValidDays > 0) expiresAt = new Date(effectiveAt.getTime() + plan.creditsValidDays * DAY_MS);
  else if (plan.termMonths > 0) expiresAt = cycleStart(anchor, (Math.floor(index / plan.termMonths) + 1) * plan.termMonths);
  return { effectiveAt, expiresAt, amountMillicredits: plan.creditsPerCycleMillicredits };
}

/** A new member needs a seat: true while the plan has one free (UNLIMITED_SEATS always does). */
export function hasFreeSeat(plan: Pick<Plan, "seats">, members: number): boolean {
  return plan.seats === UNLIMITED_SEATS || members < plan.seats;
}

/** Overage is money: integer cents, rounded up per cycle. */
export function overageCents(plan: Plan, overageMillicredits: number): number {
  return Math.ceil((overageMillicredits * plan.overageRateCentsPerCredit) / CREDIT);
}

/** `credits.low` fires when available drops below 10% of the cycle allocation, or 2 credits on plans without one. */
export function lowBalanceThresholdMillicredits(plan: Plan): number {
  return plan.creditsPerCycleMillicredits > 0 ? Math.floor(plan.creditsPerCycleMillicredits / 10) : 2 * CREDIT;
}

/**
 * Why the plan refuses a video of this length and frame size (pixels of one processed frame), or
 * undefined: longer than its videoSecondsMax, or frames beyond videoLongestSidePixels squared by
 * 16:9 (1920 × 1080 for 1080p). The refusal names the plan's limit.
 */
export function videoPlanRefusal(plan: Pick<Plan, "name" | "videoSecondsMax" | "videoLongestSidePixels">, videoMilliseconds: number, framePixels: number): Failure | undefined {
  if (videoMilliseconds > plan.videoSecondsMax * 1000) {
    return fail("video_too_long", `video of ${videoMilliseconds} ms exceeds the ${plan.name} plan's limit of ${plan.videoSecondsMax} s (videoSecondsMax)`);
  }
  const framePixelsMax = Math.floor((plan.videoLongestSidePixels * plan.videoLongestSidePixels * 9) / 16);
  if (framePixels > framePixelsMax) {
    return fail("resolution_too_large", `video frames of ${framePixels} pixels exceed the ${plan.name} plan's ${plan.videoLongestSidePixels} px longest side (videoLongestSidePixels; ${framePixelsMax} pixels at 16:9)`);
  }
  return undefined;
}
