// Frozen in time. The sign-up trial (10 credits for 7 days) becomes the free plan's, set in the
// plans file (trialCredits, trialDays) instead of a code constant (issue 11). The free row gets
// the trial it had, so sign-ups between this migration and the first sync of the file keep it.
import { sql, type Kysely } from "kysely";

export async function up(db: Kysely<unknown>): Promise<void> {
  await sql`alter table billing_plans
    add column trial_mc bigint not null default 0 check (trial_mc >= 0),
    add column trial_days integer not null default 0 check (trial_days >= 0)`.execute(db);
  await sql`update billing_plans set trial_mc = 10000, trial_days = 7 where code = 'free'`.execute(db);
}

export async function down(db: Kysely<unknown>): Promise<void> {
  await sql`alter table billing_plans drop column trial_mc, drop column trial_days`.execute(db);
}
