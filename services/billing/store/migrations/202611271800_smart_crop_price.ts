// Frozen in time. Prices Smart Crop: a new price book version, the active one plus the
// smart_crop operation, so an operator's own edits to the other prices carry over. A book that
// already prices smart_crop is left as it is.
import { sql, type Kysely } from "kysely";

const VERSION = "2026-11-smart-crop";
// 1.3 credits an image up to 50 MP, doubled for HD (the rule matting's price follows).
const SMART_CROP = { description: "smart crop, image", baseMillicredits: 0, tiers: [{ maxPixels: 50_000_000, costMillicredits: 1300 }], hdMultiplierPermille: 2000 };

export async function up(db: Kysely<unknown>): Promise<void> {
  const { rows } = await sql<{ version: string; rules: unknown }>`select version, rules from billing_price_books where active`.execute(db);
  const active = rows[0];
  if (!active) return;
  const rules = (typeof active.rules === "string" ? JSON.parse(active.rules) : active.rules) as { operations?: Record<string, unknown> };
  if (rules.operations?.smart_crop !== undefined) return;
  const book = { ...rules, version: VERSION, operations: { ...rules.operations, smart_crop: SMART_CROP } };
  await sql`update billing_price_books set active = false where active`.execute(db);
  await sql`insert into billing_price_books (version, rules, active, created_at) values (${VERSION}, ${JSON.stringify(book)}::jsonb, true, now())
    on conflict (version) do update set rules = excluded.rules, active = true`.execute(db);
}

export async function down(db: Kysely<unknown>): Promise<void> {
  const { rows } = await sql<{ previous: string | null }>`select (select version from billing_price_books where version <> ${VERSION} order by created_at desc limit 1) as previous`.execute(db);
  await sql`delete from billing_price_books where version = ${VERSION}`.execute(db);
  if (rows[0]?.previous) await sql`update billing_price_books set active = true where version = ${rows[0].previous}`.execute(db);
}
