// Frozen in time. A member's email, where the account's notices (credits.low, credits.exhausted)
// go; null when unknown (issue 11).
import { sql, type Kysely } from "kysely";

export async function up(db: Kysely<unknown>): Promise<void> {
  await sql`alter table billing_members add column email text`.execute(db);
}

export async function down(db: Kysely<unknown>): Promise<void> {
  await sql`alter table billing_members drop column email`.execute(db);
}
