import { mkdirSync } from "node:fs";
import { join } from "node:path";
import { PGlite } from "@electric-sql/pglite";
import { Kysely, PostgresDialect, type Dialect } from "kysely";
import { PGliteDialect } from "kysely-pglite-dialect";
import pg from "pg";

/** Where a service's Postgres lives: a real server, or an embedded PGlite under a directory. */
export type DatabaseLocation =
  | { kind: "postgres"; url: string; poolSizeMax?: number }
  | { kind: "pglite"; directory: string };

export interface Database<Schema> {
  readonly db: Kysely<Schema>;
  readonly location: DatabaseLocation;
  close(): Promise<void>;
}

// One PGlite instance per directory per process: PGlite is single-connection and two
// instances on one directory would corrupt it, so services sharing a directory share it.
const pgliteByDirectory = new Map<string, { instance: PGlite; users: number }>();

function openPglite(directory: string): PGlite {
  const existing = pgliteByDirectory.get(directory);
  if (existing) {
    existing.users += 1;
    return existing.instance;
  }
  mkdirSync(directory, { recursive: true });
  const instance = new PGlite(directory);
  pgliteByDirectory.set(directory, { instance, users: 1 });
  return instance;
}

async function closePglite(directory: string): Promise<void> {
  const entry = pgliteByDirectory.get(directory);
  if (!entry) return;
  entry.users -= 1;
  if (entry.users > 0) return;
  pgliteByDirectory.delete(directory);
  await entry.instance.close();
}

const INT8_OID = 20;

// pg returns int8 as a string while PGlite returns a number; both modes must see the same
// type. Millicredits stay far below 2^53 (9 billion credits), so a number is exact; past
// that we refuse rather than round.
function parseInt8(text: string): number {
  const value = Number(text);
  if (!Number.isSafeInteger(value)) throw new RangeError(`int8 value ${text} exceeds Number.MAX_SAFE_INTEGER`);
  return value;
}

const getTypeParser = ((oid: number, format?: "text" | "binary") =>
  oid === INT8_OID && format !== "binary" ? parseInt8 : pg.types.getTypeParser(oid, format as "text")) as typeof pg.types.getTypeParser;

/** Resolves the location from config: `DATABASE_URL` when set, else PGlite under `<dataDir>/pglite`. */
export function databaseLocation(databaseUrl: string | undefined, dataDir: string): DatabaseLocation {
  return databaseUrl ? { kind: "postgres", url: databaseUrl } : { kind: "pglite", directory: join(dataDir, "pglite") };
}

/** Limits of a pool of its own, for a caller that must not wait on (or hold up) the service's main pool. Ignored by PGlite. */
export interface PoolLimits {
  /** Seen in pg_stat_activity. @default none */
  applicationName?: string;
  /** The server cancels (and rolls back) a statement running longer than this. @default none */
  statementTimeoutMs?: number;
  /** A connection not had from the pool (or the server) within this fails the query. @default none: waits */
  connectionTimeoutMs?: number;
}

export function openDatabase<Schema>(location: DatabaseLocation, limits: PoolLimits = {}): Database<Schema> {
  let dialect: Dialect;
  let closeExtra: () => Promise<void> = async () => {};
  if (location.kind === "postgres") {
    const pool = new pg.Pool({
      connectionString: location.url,
      max: location.poolSizeMax ?? 10,
      types: { getTypeParser },
      application_name: limits.applicationName,
      statement_timeout: limits.statementTimeoutMs,
      connectionTimeoutMillis: limits.connectionTimeoutMs,
    });
    // An idle client the server drops (restart, failover, DROP DATABASE ... FORCE) emits 'error'
    // on the pool; unhandled, that would crash the process. The pool replaces the client anyway.
    pool.on("error", (error) => console.error(`postgres: idle connection lost: ${error.message}`));
    // A client checked out (inside a transaction, say) has no pool listener: the server ending its
    // backend (pg_terminate_backend, failover, idle_in_transaction_session_timeout) would be an
    // unhandled 'error' event and end the process. The statement in flight rejects on its own and
    // the pool discards the broken client on release; this only keeps the event handled.
    pool.on("connect", (client) => {
      client.on("error", (error) => console.error(`postgres: connection lost while in use: ${error.message}`));
    });
    dialect = new PostgresDialect({ pool });
  } else {
    const instance = openPglite(location.directory);
    dialect = new PGliteDialect(instance);
    closeExtra = () => closePglite(location.directory);
  }
  const db = new Kysely<Schema>({ dialect });
  return {
    db,
    location,
    async close() {
      // Kysely's destroy would close the shared PGlite instance under another service's feet.
      if (location.kind === "postgres") await db.destroy();
      await closeExtra();
    },
  };
}
