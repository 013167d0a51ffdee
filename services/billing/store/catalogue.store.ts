// The plans file on disk, and its sync into the tables the ledger's SQL reads (billing_plans,
// billing_packs, billing_price_books stay the store of record). Plans and packs are keyed by code
// (accounts and grants name them): the file's rows are upserted, rows it dropped are unlisted,
// never deleted. The price book is versioned: the file's version is inserted once and activated;
// older versions stay, so a quote or hold made under one keeps its price.
import { readFileSync } from "node:fs";
import { join } from "node:path";
import { sql, type Kysely } from "kysely";
import { CatalogueError, parseCatalogue, type Catalogue } from "../domain/catalogue.ts";
import type { BillingSchema } from "./schema.ts";

/** The advisory lock (hashed) that serialises catalogue syncs across replicas. */
const CATALOGUE_LOCK = "billing_catalogue_sync";

/** The plans file shipped with Cutline, used when BILLING_PLANS_FILE is unset. */
export const SHIPPED_PLANS_FILE = join(import.meta.dirname, "..", "..", "..", "deploy", "plans", "plans.json");

/** Reads and checks a plans file; throws a CatalogueError naming every bad field (or the JSON error). */
export function readCatalogueFile(path: string = SHIPPED_PLANS_FILE): Catalogue {
  let document: unknown;
  try {
    document = JSON.parse(readFileSync(path, "utf8"));
  } catch (error) {
    throw new CatalogueError(path, [error instanceof Error ? error.message : String(error)]);
  }
  const parsed = parseCatalogue(document);
  if (!parsed.ok) throw new CatalogueError(path, parsed.problems);
  return parsed.catalogue;
}

/** Stored rules compare by content, not by jsonb's key order. */
function canonical(value: unknown): string {
  if (Array.isArray(value)) return `[${value.map(canonical).join(",")}]`;
  if (typeof value === "object" && value !== null) {
    return `{${Object.keys(value)
      .sort()
      .filter((key) => (value as Record<string, unknown>)[key] !== undefined)
      .map((key) => `${JSON.stringify(key)}:${canonical((value as Record<string, unknown>)[key])}`)
      .join(",")}}`;
  }
  return JSON.stringify(value);
}

/** What a sync did: wrote the file's version as the active one, found it active already, or left a newer active version alone. */
export type CatalogueSync = "activated" | "current" | "stale";

/**
 * Writes the catalogue into the tables in one transaction, under an advisory lock so replicas
 * starting together take turns. Refuses (CatalogueError) a version already stored with other
 * prices: a price change is a new version, or quotes made under the old prices would silently
 * change meaning. Never activates a version older than the active one: a stored version that is
 * not active was replaced by a later activation (an old pod restarting with its old file), so the
 * sync writes nothing and answers "stale"; going back to old prices takes a new version.
 */
export async function syncCatalogue(db: Kysely<BillingSchema>, catalogue: Catalogue, source: string, now: Date): Promise<CatalogueSync> {
  return db.transaction().execute(async (trx) => {
    await sql`select pg_advisory_xact_lock(hashtext(${CATALOGUE_LOCK}))`.execute(trx);
    const stored = await trx.selectFrom("billing_price_books").select(["rules", "active"]).where("version", "=", catalogue.version).executeTakeFirst();
    if (stored) {
      const rules = typeof stored.rules === "string" ? JSON.parse(stored.rules) : stored.rules;
      if (canonical(rules) !== canonical(catalogue.priceBook)) {
        throw new CatalogueError(source, [`version "${catalogue.version}" is already stored with other prices; a price change needs a new version`]);
      }
    }
    let outcome: CatalogueSync = "current";
    if (!stored?.active) {
      const active = await trx.selectFrom("billing_price_books").select("version").where("active", "=", true).executeTakeFirst();
      // Every version is active when stored and only deactivated by a later activation.
      if (stored && active) return "stale";
      await trx.updateTable("billing_price_books").set({ active: false }).where("active", "=", true).execute();
      if (stored) await trx.updateTable("billing_price_books").set({ active: true }).where("version", "=", catalogue.version).execute();
      else {
        await trx
          .insertInto("billing_price_books")
          .values({ version: catalogue.version, rules: JSON.stringify(catalogue.priceBook), active: true, created_at: now })
          .onConflict((conflict) => conflict.column("version").doNothing())
          .execute();
      }
      outcome = "activated";
    }
    for (const plan of catalogue.plans) {
      const row = {
        name: plan.name,
        monthly_price_cents: plan.monthlyPriceCents,
        credits_per_cycle_mc: plan.creditsPerCycleMillicredits,
        rollover_cycles: plan.rolloverCycles,
        on_exhausted: plan.onExhausted,
        overage_rate_cents_per_credit: plan.overageRateCentsPerCredit,
        overage_cap_mc: plan.overageCapMillicredits,
        requests_per_minute: plan.requestsPerMinute,
        concurrency: plan.concurrency,
        monthly_calls: plan.monthlyCalls,
        max_upload_bytes: plan.maxUploadBytes,
        longest_side_pixels: plan.longestSidePixels,
        priority_lane: plan.priorityLane,
        seats: plan.seats,
        listed: true,
        plan_class: plan.planClass,
        pool: plan.pool,
        term_months: plan.termMonths,
        credits_valid_days: plan.creditsValidDays,
        video_seconds_max: plan.videoSecondsMax,
        video_bytes_max: plan.videoBytesMax,
        video_longest_side_pixels: plan.videoLongestSidePixels,
        stripe_price_id: plan.stripePriceId,
        trial_mc: plan.trialMillicredits,
        trial_days: plan.trialDays,
      };
      await trx.insertInto("billing_plans").values({ code: plan.code, ...row }).onConflict((conflict) => conflict.column("code").doUpdateSet(row)).execute();
    }
    await trx.updateTable("billing_plans").set({ listed: false }).where("code", "not in", catalogue.plans.map((plan) => plan.code)).execute();
    for (const pack of catalogue.packs) {
      const row = { price_cents: pack.priceCents, credits_mc: pack.creditsMillicredits, listed: true, stripe_price_id: pack.stripePriceId ?? null };
      await trx.insertInto("billing_packs").values({ code: pack.code, ...row }).onConflict((conflict) => conflict.column("code").doUpdateSet(row)).execute();
    }
    await trx.updateTable("billing_packs").set({ listed: false }).where("code", "not in", catalogue.packs.map((pack) => pack.code)).execute();
    return outcome;
  });
}
