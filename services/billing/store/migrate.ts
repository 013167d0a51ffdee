import { Migrator, type Kysely, type Migration, type MigrationProvider } from "kysely";
import * as ledger from "./migrations/202501010000_ledger.ts";
import * as seed from "./migrations/202501010001_seed.ts";
import * as unlimitedPlan from "./migrations/202611270000_unlimited_plan.ts";

// Static so the bundle needs no file-system scan; names are timestamps, applied in order.
const MIGRATIONS: Record<string, Migration> = {
  "2025-01-01T00-00-ledger": ledger,
  "2025-01-01T00-01-seed": seed,
  "2026-11-27T00-00-unlimited-plan": unlimitedPlan,
};

class StaticMigrationProvider implements MigrationProvider {
  async getMigrations(): Promise<Record<string, Migration>> {
    return MIGRATIONS;
  }
}

/** Migrates the billing schema to latest; own table names so services can share one database. */
export async function migrateBilling(db: Kysely<unknown>): Promise<void> {
  const migrator = new Migrator({
    db,
    provider: new StaticMigrationProvider(),
    migrationTableName: "billing_migrations",
    migrationLockTableName: "billing_migrations_lock",
  });
  const { error, results } = await migrator.migrateToLatest();
  const failed = results?.find((result) => result.status === "Error");
  if (error || failed) {
    const detail = error instanceof Error ? error.message : String(error);
    throw new Error(`billing migration ${failed?.migrationName ?? ""} failed: ${detail}`, { cause: error });
  }
}
