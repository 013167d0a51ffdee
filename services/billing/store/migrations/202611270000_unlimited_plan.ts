// Frozen in time. A plan for operators' own load, fuzz and chaos runs: limits so high that no
// plan limit answers before the part under test, priced at zero and never listed for sale.
// The ledger still applies (holds, captures, credits), so such runs check the money path too.
import { sql, type Kysely } from "kysely";

export async function up(db: Kysely<unknown>): Promise<void> {
  await sql`alter table billing_plans add column listed boolean not null default true`.execute(db);
  await sql`insert into billing_plans (code, name, monthly_price_cents, credits_per_cycle_mc, rollover_cycles, on_exhausted,
      overage_rate_cents_per_credit, overage_cap_mc, requests_per_minute, concurrency, monthly_calls, max_upload_bytes,
      longest_side_pixels, priority_lane, seats, listed)
    values ('unlimited', 'Unlimited (operators'' tests; not for sale)', 0, 0, 0, 'stop', 0, 0, 1000000000, 1000000,
      1000000000000, 1099511627776, 1000000, 'normal', 1000000, false)
    on conflict (code) do nothing`.execute(db);
}

export async function down(db: Kysely<unknown>): Promise<void> {
  await sql`delete from billing_plans where code = 'unlimited'`.execute(db);
  await sql`alter table billing_plans drop column listed`.execute(db);
}
