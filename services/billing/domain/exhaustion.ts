// What happens when an account's credits run out: the account's own choice between stopping
// and continuing in overage (the plan's choice by default), and what the refused caller is
// told. billing_reserve (store/functions.sql.ts) applies the same rule under the pool's lock.
import type { OnExhausted, Plan } from "./plans.ts";

export const ON_EXHAUSTED_CHOICES: readonly OnExhausted[] = ["stop", "overage"];

const MILLICREDITS_PER_CREDIT = 1000;

/** The choice in force: the account's setting, or the plan's default when it has none (null). */
export function effectiveOnExhausted(plan: Plan, setting: OnExhausted | null): OnExhausted {
  return setting ?? plan.onExhausted;
}

/** A plan offers overage when it has a rate and a cap above zero. */
export function offersOverage(plan: Plan): boolean {
  return plan.overageRateCentsPerCredit > 0 && plan.overageCapMillicredits > 0;
}

/** Why an account may not choose `setting` on `plan`; null (back to the plan's default) is always fine. */
export function onExhaustedProblem(plan: Plan, setting: OnExhausted | null): string | undefined {
  if (setting === null) return undefined;
  if (!ON_EXHAUSTED_CHOICES.includes(setting)) return `on_exhausted must be stop or overage (or unset for the plan's default ${plan.onExhausted})`;
  if (setting === "overage" && !offersOverage(plan)) return `plan ${plan.code} offers no overage; upgrade to a plan that does, or keep on_exhausted stop`;
  return undefined;
}

/** What a refused reserve knows about the caller's options. */
export interface ExhaustedChoices {
  /** The choice in force when the credits ran out. */
  onExhausted: OnExhausted;
  /** The plan lets the account continue in overage (setting on_exhausted to overage). */
  overageOffered: boolean;
  /** The account continues in overage, but the plan's overage cap for this cycle is reached. */
  overageCapReached: boolean;
  /** The plan's standard per-credit rate that overage is billed at. */
  overageRateCentsPerCredit: number;
}

/** insufficient_credits in words: the balance, the cost and the caller's options. */
export function exhaustedMessage(refusal: { availableMillicredits: number; costMillicredits: number; exhausted: ExhaustedChoices }): string {
  const { exhausted } = refusal;
  const amounts = `${refusal.availableMillicredits} millicredits available, ${refusal.costMillicredits} needed`;
  if (exhausted.overageCapReached) return `the plan's overage cap is reached: ${amounts}; upgrade the plan or buy a top-up pack`;
  if (exhausted.onExhausted === "stop" && exhausted.overageOffered) {
    return `${amounts}; upgrade the plan, or continue in overage at ${exhausted.overageRateCentsPerCredit} cents a credit (set on_exhausted to overage)`;
  }
  return `${amounts}; upgrade the plan or buy a top-up pack`;
}

/**
 * Overage is billed at the plan's standard per-credit rate, above the discounted rate the
 * subscription works out to (Pixelcut: $250 for 4,570 credits = 5.47 cents, overage 10 cents).
 */
export function overageRateProblem(plan: Plan): string | undefined {
  if (!offersOverage(plan) || plan.creditsPerCycleMillicredits === 0) return undefined;
  const planRateCentsPerCredit = (plan.monthlyPriceCents * MILLICREDITS_PER_CREDIT) / plan.creditsPerCycleMillicredits;
  if (plan.overageRateCentsPerCredit > planRateCentsPerCredit) return undefined;
  return `${plan.code}: overage rate ${plan.overageRateCentsPerCredit} cents a credit is not above the plan's ${planRateCentsPerCredit.toFixed(2)} cents a credit`;
}
