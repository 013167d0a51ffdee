// Frozen in time. A hold keeps the price book version its amount was quoted under (issue 11: "a
// price change is a new version: quotes and holds keep the version they were made with"). null:
// a hold of a plain amount, or one made before this column. billing_reserve takes the version as
// a new parameter, and `create or replace` cannot change a parameter list, so the old function is
// dropped here and functions.sql.ts creates the current one after the migrations.
import { sql, type Kysely } from "kysely";

export async function up(db: Kysely<unknown>): Promise<void> {
  await sql`alter table billing_holds add column price_book_version text`.execute(db);
  await sql`drop function if exists billing_reserve(text, text, bigint, text, text, text, integer, timestamptz, text, text, text)`.execute(db);
}

export async function down(db: Kysely<unknown>): Promise<void> {
  await sql`drop function if exists billing_reserve(text, text, bigint, text, text, text, integer, timestamptz, text, text, text, text)`.execute(db);
  await sql`alter table billing_holds drop column price_book_version`.execute(db);
}
