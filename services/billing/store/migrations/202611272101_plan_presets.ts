// Frozen in time. Moves accounts off the 2025 plans onto the nearest preset of the plans file
// (issue 11), then retires those plans (unlisted: never offered again, kept for the cycle reports
// that name them). Nearest by monthly price and credits, in the same class:
//   starter ($9, 50 credits)             -> developer ($19.99, 200 credits)
//   pro     ($39, 250 credits, pro lane) -> growth    ($49.99, 600 credits)
//   free and business keep their codes; the plans file rewrites business as the preset at start.
// An account keeps its cycle, its buckets and their expiry: the catalogue changed, the customer
// did not change plan; the new allocation comes at the account's next renewal.
// The two target rows are inserted with the presets' values as they shipped, so the accounts'
// foreign key holds before billing first syncs the plans file (which then owns their values).
import { sql, type Kysely } from "kysely";

const MEBIBYTE = 1024 * 1024;
const CREDIT = 1000;

const PRESETS = [
  { code: "developer", name: "Developer", priceCents: 1999, credits: 200, requestsPerMinute: 60, concurrency: 2, monthlyCalls: 10_000 },
  { code: "growth", name: "Growth", priceCents: 4999, credits: 600, requestsPerMinute: 120, concurrency: 4, monthlyCalls: 30_000 },
];

export const PRESET_BY_RETIRED_PLAN: Readonly<Record<string, string>> = { starter: "developer", pro: "growth" };

export async function up(db: Kysely<unknown>): Promise<void> {
  for (const preset of PRESETS) {
    await sql`insert into billing_plans (code, name, monthly_price_cents, credits_per_cycle_mc, rollover_cycles, on_exhausted,
        overage_rate_cents_per_credit, overage_cap_mc, requests_per_minute, concurrency, monthly_calls, max_upload_bytes,
        longest_side_pixels, priority_lane, seats, plan_class)
      values (${preset.code}, ${preset.name}, ${preset.priceCents}, ${preset.credits * CREDIT}, 1, 'stop', 10, 0, ${preset.requestsPerMinute},
        ${preset.concurrency}, ${preset.monthlyCalls}, ${25 * MEBIBYTE}, 4096, 'normal', 1, 'standard')
      on conflict (code) do nothing`.execute(db);
  }
  for (const [retired, preset] of Object.entries(PRESET_BY_RETIRED_PLAN)) {
    await sql`update billing_accounts set plan_code = ${preset} where plan_code = ${retired}`.execute(db);
    await sql`update billing_plans set listed = false where code = ${retired}`.execute(db);
  }
  // credits.low's threshold follows the plan (10% of its allocation; lowBalanceThresholdMillicredits).
  await sql`update billing_credit_accounts c set low_balance_threshold_mc =
      case when p.credits_per_cycle_mc > 0 then p.credits_per_cycle_mc / 10 else ${2 * CREDIT} end
    from billing_accounts a join billing_plans p on p.code = a.plan_code
    where c.account_id = a.account_id and a.plan_code in (${sql.join(Object.values(PRESET_BY_RETIRED_PLAN))})`.execute(db);
}

export async function down(): Promise<void> {
  // Which account was on which retired plan is not kept: the move is one-way.
}
