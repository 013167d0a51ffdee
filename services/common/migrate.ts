import { Migrator, sql, type Kysely, type Migration } from "kysely";

export interface MigrateOptions {
  /**
   * Names a database may still record for migrations that were renamed since they ran, mapped
   * to today's names. kysely refuses to run when an applied migration's name is missing, so
   * these are renamed in `<service>_migrations` first; renaming twice changes nothing.
   * @default {} (no renamed migrations)
   */
  legacyNames?: Readonly<Record<string, string>>;
  /**
   * Runs after the last migration on every start, in one transaction with the others' starts
   * serialized: current definitions that replace what the frozen migrations created (SQL
   * functions, say). @default none
   */
  afterMigrations?: (db: Kysely<any>) => Promise<void>;
}

// One transaction-scoped advisory lock per service, so two processes starting at once never run
// the renames or the current definitions side by side (concurrent `create or replace function`
// on one function fails with "tuple concurrently updated").
async function lockService(trx: Kysely<any>, service: string): Promise<void> {
  await sql`select pg_advisory_xact_lock(hashtext(${`${service}_migrations`}))`.execute(trx);
}

async function renameLegacyMigrations(db: Kysely<any>, service: string, migrations: Record<string, Migration>, legacyNames: Readonly<Record<string, string>>): Promise<void> {
  const renames = Object.entries(legacyNames);
  if (renames.length === 0) return;
  for (const [legacyName, name] of renames) {
    if (!(name in migrations)) throw new Error(`${service} legacy migration name ${legacyName} maps to ${name}, which is not one of its migrations`);
  }
  const table = `${service}_migrations`;
  await db.transaction().execute(async (trx) => {
    await lockService(trx, service);
    const { rows } = await sql<{ present: boolean }>`select to_regclass(${table}) is not null as present`.execute(trx);
    // A fresh database has no migration table yet, so nothing to rename.
    if (!rows[0]?.present) return;
    for (const [legacyName, name] of renames) {
      await trx.updateTable(table).set({ name }).where("name", "=", legacyName).execute();
    }
  });
}

function describeError(error: unknown): string {
  if (error instanceof Error) return error.message;
  return error === undefined ? "no detail" : String(error);
}

/**
 * Runs a service's migrations (frozen in time, named `YYYYMMDDHHMM_what`) under its own
 * migration table, so services can share one database in single-node mode: first the legacy
 * renames, then every pending migration in name order, then `afterMigrations`.
 */
export async function migrateToLatest(db: Kysely<any>, service: string, migrations: Record<string, Migration>, options: MigrateOptions = {}): Promise<void> {
  await renameLegacyMigrations(db, service, migrations, options.legacyNames ?? {});
  const migrator = new Migrator({
    db,
    provider: { getMigrations: async () => migrations },
    migrationTableName: `${service}_migrations`,
    migrationLockTableName: `${service}_migrations_lock`,
  });
  const { error, results } = await migrator.migrateToLatest();
  const failed = results?.find((result) => result.status === "Error");
  if (error || failed) {
    const step = failed ? `migration ${failed.migrationName}` : "migrations";
    throw new Error(`${service} ${step} failed: ${describeError(error)}`, { cause: error });
  }
  const { afterMigrations } = options;
  if (!afterMigrations) return;
  try {
    await db.transaction().execute(async (trx) => {
      await lockService(trx, service);
      await afterMigrations(trx);
    });
  } catch (cause) {
    throw new Error(`${service} definitions after the last migration failed: ${describeError(cause)}`, { cause });
  }
}
