// Billing's migrations, run by the runner every service shares (services/common/migrate.ts).
import type { Kysely, Migration } from "kysely";
import { migrateToLatest, type ServiceMigrations } from "../../common/migrate.ts";
import { applyBillingFunctions } from "./functions.sql.ts";
import * as ledger from "./migrations/202501010000_ledger.ts";
import * as seed from "./migrations/202501010001_seed.ts";
import * as unlimitedPlan from "./migrations/202611270000_unlimited_plan.ts";
import * as smartCropPrice from "./migrations/202611271800_smart_crop_price.ts";
import * as catalogueColumns from "./migrations/202611272100_catalogue_columns.ts";
import * as planPresets from "./migrations/202611272101_plan_presets.ts";
import * as spendOrderByExpiry from "./migrations/202611272110_spend_order_by_expiry.ts";
import * as accountOnExhausted from "./migrations/202611272111_account_on_exhausted.ts";
import * as memberEmail from "./migrations/202611272112_member_email.ts";
import * as grantRefunds from "./migrations/202611280010_grant_refunds.ts";
import * as providerRenewals from "./migrations/202611280011_provider_renewals.ts";
import * as planTrial from "./migrations/202611280012_plan_trial.ts";
import * as holdPriceBookVersion from "./migrations/202611280013_hold_price_book_version.ts";
import * as bucketRefundOwed from "./migrations/202611280014_bucket_refund_owed.ts";

/** Frozen in time, named `YYYYMMDDHHMM_what` and applied in name order; static so no file-system scan is needed. */
export const billingMigrations: Record<string, Migration> = {
  "202501010000_ledger": ledger,
  "202501010001_seed": seed,
  "202611270000_unlimited_plan": unlimitedPlan,
  "202611271800_smart_crop_price": smartCropPrice,
  "202611272100_catalogue_columns": catalogueColumns,
  "202611272101_plan_presets": planPresets,
  "202611272110_spend_order_by_expiry": spendOrderByExpiry,
  "202611272111_account_on_exhausted": accountOnExhausted,
  "202611272112_member_email": memberEmail,
  "202611280010_grant_refunds": grantRefunds,
  "202611280011_provider_renewals": providerRenewals,
  "202611280012_plan_trial": planTrial,
  "202611280013_hold_price_book_version": holdPriceBookVersion,
  "202611280014_bucket_refund_owed": bucketRefundOwed,
};

/**
 * The names these migrations shipped with, before every service took one naming scheme.
 * Databases migrated back then record them in `billing_migrations`; the runner renames them
 * before migrating. Never remove an entry: a database may skip any number of releases.
 */
export const BILLING_LEGACY_MIGRATION_NAMES: Readonly<Record<string, string>> = {
  "2025-01-01T00-00-ledger": "202501010000_ledger",
  "2025-01-01T00-01-seed": "202501010001_seed",
  "2026-11-27T00-00-unlimited-plan": "202611270000_unlimited_plan",
};

/** Billing's migrations for the shared runner, with its legacy names and current SQL function definitions (functions.sql.ts). */
export const billingMigrationSet: ServiceMigrations = {
  service: "billing",
  migrations: billingMigrations,
  options: { legacyNames: BILLING_LEGACY_MIGRATION_NAMES, afterMigrations: applyBillingFunctions },
};

/** Migrates the billing schema to latest, then applies the current SQL function definitions (functions.sql.ts). */
export function migrateBilling(db: Kysely<unknown>): Promise<void> {
  return migrateToLatest(db, billingMigrationSet.service, billingMigrationSet.migrations, billingMigrationSet.options);
}
