// Frozen in time. A hold keeps the price book version its amount was quoted under (issue 11: "a
// price change is a new version: quotes and holds keep the version they were made with"). null:
// a hold of a plain amount, or one made before this column. billing_reserve takes the version as
// a new parameter, and `create or replace` cannot change a parameter list, so the old function is
// dropped here and its current definition (functions.sql.ts) created in the same transaction.
import { sql, type Kysely } from "kysely";
import { BILLING_FUNCTIONS } from "../functions.sql.ts";

export async function up(db: Kysely<unknown>): Promise<void> {
  await sql`alter table billing_holds add column price_book_version text`.execute(db);
  await sql`drop function if exists billing_reserve(text, text, bigint, text, text, text, integer, timestamptz, text, text, text)`.execute(db);
  // Recreated in this transaction (afterMigrations applies it again in its own), so no reserve
  // running while the migration commits finds billing_reserve missing.
  const reserve = BILLING_FUNCTIONS.find((definition) => definition.name === "billing_reserve");
  if (!reserve) throw new Error("functions.sql.ts defines no billing_reserve");
  await sql.raw(reserve.statement).execute(db);
}

export async function down(db: Kysely<unknown>): Promise<void> {
  await sql`drop function if exists billing_reserve(text, text, bigint, text, text, text, integer, timestamptz, text, text, text, text)`.execute(db);
  await sql`alter table billing_holds drop column price_book_version`.execute(db);
}
