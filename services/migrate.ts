// The pre-deploy step: every service's migrations against DATABASE_URL, then exit. Run it
// (`npm run migrate`, a Kubernetes Job) before rolling out services started with
// MIGRATE_ON_START=false, which only check that their schema is current.
import { resolve } from "node:path";
import { pathToFileURL } from "node:url";
import { billingMigrationSet } from "./billing/store/migrations.ts";
import { commonConfigSpec } from "./common/common.config.ts";
import { ConfigError, loadConfig } from "./common/config.loader.ts";
import { databaseLocation, openDatabase } from "./common/database.ts";
import { createLogger } from "./common/logging.ts";
import { migrateToLatest } from "./common/migrate.ts";
import { sql, type Kysely } from "kysely";
import { gatewayMigrationSet } from "./gateway/store/migrations.ts";
import { orchestratorMigrationSet } from "./orchestrator/store/migrations.ts";

/** Every service that keeps a database, in the order their migrations run. */
export const SERVICE_MIGRATIONS = [billingMigrationSet, orchestratorMigrationSet, gatewayMigrationSet];

const { DATABASE_URL, CUTLINE_DATA_DIR, LOG_LEVEL } = commonConfigSpec;

/** Runs every service's pending migrations; answers how many ran per service. */
export async function migrateAll(environment: NodeJS.ProcessEnv = process.env): Promise<Record<string, number>> {
  const config = loadConfig({ DATABASE_URL, CUTLINE_DATA_DIR, LOG_LEVEL }, environment);
  const log = createLogger("migrate", config.LOG_LEVEL);
  const database = openDatabase<any>(databaseLocation(config.DATABASE_URL, config.CUTLINE_DATA_DIR));
  const ran: Record<string, number> = {};
  try {
    for (const set of SERVICE_MIGRATIONS) {
      const before = await appliedCount(database.db, set.service);
      await migrateToLatest(database.db, set.service, set.migrations, set.options);
      ran[set.service] = (await appliedCount(database.db, set.service)) - before;
      log.info({ service: set.service, applied: ran[set.service], total: Object.keys(set.migrations).length }, "migrations up to date");
    }
  } finally {
    await database.close();
  }
  return ran;
}

async function appliedCount(db: Kysely<any>, service: string): Promise<number> {
  const table = `${service}_migrations`;
  const { rows } = await sql<{ present: boolean }>`select to_regclass(${table}) is not null as present`.execute(db);
  if (!rows[0]?.present) return 0;
  const [row] = await db.selectFrom(table).select((eb) => eb.fn.countAll<string>().as("count")).execute();
  return Number(row?.count ?? 0);
}

// Run as a script (`npm run migrate`), not when imported by a test.
if (process.argv[1] !== undefined && import.meta.url === pathToFileURL(resolve(process.argv[1])).href) {
  try {
    await migrateAll();
    process.exit(0);
  } catch (error) {
    if (error instanceof ConfigError) console.error(`migrate: ${error.message}`);
    else console.error("migrate: failed:", error);
    process.exit(1);
  }
}
