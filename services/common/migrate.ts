import { Migrator, type Kysely, type Migration } from "kysely";

/**
 * Runs a service's migrations (frozen in time, named `YYYYMMDDHHMM_what`) under its own
 * migration table, so services can share one database in single-node mode.
 */
export async function migrateToLatest(db: Kysely<any>, service: string, migrations: Record<string, Migration>): Promise<void> {
  const migrator = new Migrator({
    db,
    provider: { getMigrations: async () => migrations },
    migrationTableName: `${service}_migrations`,
    migrationLockTableName: `${service}_migrations_lock`,
  });
  const { error, results } = await migrator.migrateToLatest();
  const failed = results?.find((result) => result.status === "Error");
  if (error || failed) {
    throw new Error(`${service} migration ${failed?.migrationName ?? ""} failed`, { cause: error });
  }
}
