// Frozen in time. The plans file (deploy/plans/plans.json) describes more of a plan than the 2025
// columns held: its class, the pool its credits go to, how long they live (a term, or days), its
// video limits and its Stripe price; unlimited seats (0) for enterprise; packs can be retired
// (unlisted) without deleting the row a grant's history names. The 2025 plans get the values
// their rules already had: pro class where they had the high lane.
import { sql, type Kysely } from "kysely";

const MEBIBYTE = 1024 * 1024;

export async function up(db: Kysely<unknown>): Promise<void> {
  await sql`alter table billing_plans
    add column plan_class text not null default 'standard' check (plan_class in ('standard', 'pro')),
    add column pool text not null default 'api' check (pool in ('api', 'web')),
    add column term_months integer not null default 0 check (term_months >= 0),
    add column credits_valid_days integer not null default 0 check (credits_valid_days >= 0),
    add column video_seconds_max integer not null default 60 check (video_seconds_max > 0),
    add column video_bytes_max bigint not null default ${sql.lit(200 * MEBIBYTE)} check (video_bytes_max > 0),
    add column video_longest_side_pixels integer not null default 1920 check (video_longest_side_pixels > 0),
    add column stripe_price_id text`.execute(db);
  await sql`alter table billing_plans drop constraint billing_plans_seats_check`.execute(db);
  await sql`alter table billing_plans add constraint billing_plans_seats_check check (seats >= 0)`.execute(db);
  await sql`update billing_plans set plan_class = 'pro' where priority_lane = 'high'`.execute(db);
  await sql`alter table billing_packs add column listed boolean not null default true, add column stripe_price_id text`.execute(db);
}

export async function down(db: Kysely<unknown>): Promise<void> {
  await sql`alter table billing_packs drop column listed, drop column stripe_price_id`.execute(db);
  await sql`alter table billing_plans drop constraint billing_plans_seats_check`.execute(db);
  await sql`alter table billing_plans add constraint billing_plans_seats_check check (seats > 0)`.execute(db);
  await sql`alter table billing_plans drop column plan_class, drop column pool, drop column term_months, drop column credits_valid_days,
    drop column video_seconds_max, drop column video_bytes_max, drop column video_longest_side_pixels, drop column stripe_price_id`.execute(db);
}
