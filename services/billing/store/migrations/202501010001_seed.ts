// Frozen in time: the catalogue as it shipped. Later price or plan edits go through the store
// (a new price book version) or a new migration, never by editing this one.
import { sql, type Kysely } from "kysely";
import { DEFAULT_PACKS, DEFAULT_PLANS } from "../../domain/plans.ts";

// The price book as it shipped, copied here when DEFAULT_PRICE_BOOK moved on (smart crop): this
// migration inserts the same rows it always did.
const MEGAPIXEL = 1_000_000;
const SEED_PRICE_BOOK = {
  version: "2025-01-default",
  operations: {
    remove_background: {
      description: "background removal, image",
      baseMillicredits: 0,
      tiers: [
        { maxPixels: MEGAPIXEL / 4, costMillicredits: 250 },
        { maxPixels: 1 * MEGAPIXEL, costMillicredits: 500 },
        { maxPixels: 4 * MEGAPIXEL, costMillicredits: 800 },
        { maxPixels: 12 * MEGAPIXEL, costMillicredits: 1100 },
        { maxPixels: 25 * MEGAPIXEL, costMillicredits: 1500 },
        { maxPixels: 50 * MEGAPIXEL, costMillicredits: 2000 },
      ],
      hdMultiplierPermille: 2000,
    },
    video_remove_background: {
      description: "background removal, video per started second",
      baseMillicredits: 0,
      tiers: [
        { maxPixels: 1 * MEGAPIXEL, costMillicredits: 1000 },
        { maxPixels: 2_100_000, costMillicredits: 2000 },
        { maxPixels: 8_300_000, costMillicredits: 4000 },
      ],
      hdMultiplierPermille: 1500,
      perStartedSecond: true,
      videoMillisecondsMax: 10 * 60 * 1000,
    },
  },
  extras: { shadow: 200, upscale: 1000 },
};

export async function up(db: Kysely<unknown>): Promise<void> {
  for (const plan of DEFAULT_PLANS) {
    await sql`insert into billing_plans (code, name, monthly_price_cents, credits_per_cycle_mc, rollover_cycles, on_exhausted,
        overage_rate_cents_per_credit, overage_cap_mc, requests_per_minute, concurrency, monthly_calls, max_upload_bytes,
        longest_side_pixels, priority_lane, seats)
      values (${plan.code}, ${plan.name}, ${plan.monthlyPriceCents}, ${plan.creditsPerCycleMillicredits}, ${plan.rolloverCycles},
        ${plan.onExhausted}, ${plan.overageRateCentsPerCredit}, ${plan.overageCapMillicredits}, ${plan.requestsPerMinute},
        ${plan.concurrency}, ${plan.monthlyCalls}, ${plan.maxUploadBytes}, ${plan.longestSidePixels}, ${plan.priorityLane}, ${plan.seats})
      on conflict (code) do nothing`.execute(db);
  }
  for (const pack of DEFAULT_PACKS) {
    await sql`insert into billing_packs (code, price_cents, credits_mc) values (${pack.code}, ${pack.priceCents}, ${pack.creditsMillicredits})
      on conflict (code) do nothing`.execute(db);
  }
  await sql`insert into billing_price_books (version, rules, active, created_at)
    values (${SEED_PRICE_BOOK.version}, ${JSON.stringify(SEED_PRICE_BOOK)}::jsonb, true, now())
    on conflict (version) do nothing`.execute(db);
}

export async function down(db: Kysely<unknown>): Promise<void> {
  await sql`delete from billing_price_books where version = ${SEED_PRICE_BOOK.version}`.execute(db);
}
