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

/** A service's migrations as the runner takes them: services/migrate.ts runs them all, each service its own. */
export interface ServiceMigrations {
  service: string;
  migrations: Record<string, Migration>;
  options?: MigrateOptions;
}

/** Thrown when MIGRATE_ON_START=false and the database lacks migrations this build needs. */
export class SchemaBehindError extends Error {
  constructor(
    readonly service: string,
    readonly missing: readonly string[],
  ) {
    super(
      `${service} database schema is behind: migration${missing.length === 1 ? "" : "s"} ${missing.join(", ")} not applied, and MIGRATE_ON_START=false; run \`npm run migrate\` (services/migrate.ts) against this DATABASE_URL first`,
    );
    this.name = "SchemaBehindError";
  }
}

/**
 * Checks, without writing, that every migration is recorded in `<service>_migrations`, so a
 * service whose role may not change the schema starts only on a migrated database. Legacy names
 * count as their current ones.
 * @throws SchemaBehindError naming the migrations not applied.
 */
export async function assertMigrated(db: Kysely<any>, { service, migrations, options = {} }: ServiceMigrations): Promise<void> {
  const table = `${service}_migrations`;
  const { rows } = await sql<{ present: boolean }>`select to_regclass(${table}) is not null as present`.execute(db);
  const applied = new Set<string>();
  if (rows[0]?.present) {
    const legacy = options.legacyNames ?? {};
    for (const { name } of await db.selectFrom(table).select("name").execute()) applied.add(legacy[name as string] ?? (name as string));
  }
  const missing = Object.keys(migrations)
    .sort()
    .filter((name) => !applied.has(name));
  if (missing.length > 0) throw new SchemaBehindError(service, missing);
}

/** At a service's start: migrate (MIGRATE_ON_START=true), or only check that a pre-deploy `npm run migrate` did. */
export function migrateOrCheck(db: Kysely<any>, set: ServiceMigrations, migrateOnStart: boolean): Promise<void> {
  return migrateOnStart ? migrateToLatest(db, set.service, set.migrations, set.options) : assertMigrated(db, set);
}
