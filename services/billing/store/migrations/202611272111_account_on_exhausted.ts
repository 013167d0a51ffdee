// Frozen in time. What happens when an account's credits run out becomes the account's own
// setting (issue 11): null keeps the plan's default (billing_plans.on_exhausted), "stop" or
// "overage" overrides it. billing_reserve reads it under the pool's row lock.
import { sql, type Kysely } from "kysely";

export async function up(db: Kysely<unknown>): Promise<void> {
  await sql`alter table billing_accounts add column on_exhausted text check (on_exhausted in ('stop', 'overage'))`.execute(db);
}

export async function down(db: Kysely<unknown>): Promise<void> {
  await sql`alter table billing_accounts drop column on_exhausted`.execute(db);
}
