import { commonConfigSpec, databaseConfigSpec } from "../common/common.config.ts";
import { integer, loadConfig, optionalText, port, text } from "../common/config.loader.ts";

export const billingConfigSpec = {
  ...commonConfigSpec,
  ...databaseConfigSpec,
  PORT: port("Billing port (Connect, gRPC, gRPC-Web).", 8081),
  BILLING_SWEEP_INTERVAL_MS: integer("Period of the sweeper that expires holds and grants, renews cycles and relays events (milliseconds).", 5_000, {
    min: 100,
  }),
  BILLING_TOP_UP_HINT: text("Shown to callers who run out of credits.", "buy a top-up pack or upgrade your plan"),
  BILLING_PLANS_FILE: optionalText(
    "The plans file: plans, packs, the price book and rate limits, one versioned JSON file, checked at start (path). Unset: the shipped deploy/plans/plans.json.",
  ),
  BILLING_UPGRADE_HINT: text("Where a caller whose plan's credits ran out upgrades (a link or a sentence), shown beside the overage option in the 402 body.", "upgrade your plan"),
} as const;

export type BillingConfig = ReturnType<typeof loadBillingConfig>;

export function loadBillingConfig(environment: NodeJS.ProcessEnv = process.env) {
  return loadConfig(billingConfigSpec, environment);
}
