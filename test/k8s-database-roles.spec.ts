// k8s/migrate/grants.sql against a real Postgres: the three services' migrations run as a plain
// owner role (as the pre-deploy Job does), then the grants, twice; each service's role can then
// read and write its own tables, touch no other service's, create nothing, and billing cannot
// rewrite its ledger. Needs DATABASE_URL (a superuser, to create the roles); skipped without it.
import { after, before, describe, test } from "node:test";
import assert from "node:assert/strict";
import { randomBytes } from "node:crypto";
import { readFileSync } from "node:fs";
import { join } from "node:path";
import { Kysely, PostgresDialect } from "kysely";
import pg from "pg";
import { migrateBilling } from "../services/billing/store/migrations.ts";
import { gatewayMigrations } from "../services/gateway/store/migrations.ts";
import { orchestratorMigrations } from "../services/orchestrator/store/migrations.ts";
import { migrateToLatest } from "../services/common/migrate.ts";
import { createTestDatabase, type TestDatabase } from "./harness.ts";

const SERVICE_ROLES = ["cutline_gateway", "cutline_billing", "cutline_orchestrator"] as const;
const grantsSql = readFileSync(join(import.meta.dirname, "..", "k8s/migrate/grants.sql"), "utf8");
const skip = process.env.DATABASE_URL?.startsWith("postgres") ? false : "needs DATABASE_URL (a Postgres superuser) to create roles";

function urlAs(base: string, role: string): string {
  const url = new URL(base);
  url.username = role;
  url.password = "";
  return url.toString();
}
async function asRole<T>(base: string, role: string, work: (client: pg.Client) => Promise<T>): Promise<T> {
  const client = new pg.Client({ connectionString: urlAs(base, role) });
  await client.connect();
  try {
    return await work(client);
  } finally {
    await client.end();
  }
}
async function tablesOf(client: pg.Client, prefix: (name: string) => boolean): Promise<string[]> {
  const { rows } = await client.query<{ name: string }>("select tablename as name from pg_tables where schemaname = 'public' order by 1");
  return rows.map((row) => row.name).filter(prefix);
}

describe("k8s/migrate/grants.sql on a real Postgres", { skip }, () => {
  let database: TestDatabase;
  let url = "";
  const owner = `cutline_owner_${randomBytes(4).toString("hex")}`;

  before(async () => {
    database = await createTestDatabase();
    assert.equal(database.location.kind, "postgres");
    url = (database.location as { url: string }).url;
    await asRole(url, new URL(url).username, async (admin) => {
      await admin.query(`CREATE ROLE ${owner} LOGIN`);
      for (const role of SERVICE_ROLES) {
        await admin.query(`DO $$ BEGIN IF NOT EXISTS (SELECT FROM pg_roles WHERE rolname = '${role}') THEN CREATE ROLE ${role} LOGIN; END IF; END $$`);
      }
      // As CloudNativePG's initdb does: the owner owns the database, and with it (Postgres 15+) the public schema.
      await admin.query(`ALTER DATABASE ${new URL(url).pathname.slice(1)} OWNER TO ${owner}`);
      await admin.query(`ALTER SCHEMA public OWNER TO ${owner}`);
    });
    const db = new Kysely<unknown>({ dialect: new PostgresDialect({ pool: new pg.Pool({ connectionString: urlAs(url, owner), max: 2 }) }) });
    try {
      await migrateToLatest(db, "gateway", gatewayMigrations);
      await migrateBilling(db);
      await migrateToLatest(db, "orchestrator", orchestratorMigrations);
    } finally {
      await db.destroy();
    }
    // Twice: the Job runs on every release, and a second run must change nothing and fail nothing.
    for (let run = 0; run < 2; run += 1) await asRole(url, owner, (client) => client.query(grantsSql));
  });

  after(async () => {
    await database?.dispose();
    const server = process.env.DATABASE_URL!;
    await asRole(server, new URL(server).username, async (admin) => {
      await admin.query(`DROP ROLE IF EXISTS ${owner}`);
      // Shared with other databases' runs of this test: dropped only when nothing else holds them.
      for (const role of SERVICE_ROLES) await admin.query(`DROP ROLE IF EXISTS ${role}`).catch(() => undefined);
    });
  });

  test("each role reads and writes its own tables and no other's", async () => {
    const all = await asRole(url, owner, (client) => tablesOf(client, () => true));
    const ownership: Record<(typeof SERVICE_ROLES)[number], string[]> = { cutline_gateway: [], cutline_billing: [], cutline_orchestrator: [] };
    await asRole(url, owner, async (client) => {
      for (const role of SERVICE_ROLES) {
        for (const table of all) {
          const { rows } = await client.query<{ select: boolean; insert: boolean }>("select has_table_privilege($1, $2, 'SELECT') as select, has_table_privilege($1, $2, 'INSERT') as insert", [role, `public.${table}`]);
          if (rows[0]!.select) ownership[role].push(table);
        }
      }
    });
    const seen = new Set<string>();
    for (const [role, tables] of Object.entries(ownership)) {
      assert.ok(tables.length > 0, `${role} has tables`);
      for (const table of tables) {
        assert.ok(!seen.has(table), `${table} is readable by one role only`);
        seen.add(table);
      }
    }
    const lockTables = all.filter((table) => table.endsWith("_migrations_lock"));
    assert.deepEqual(all.filter((table) => !seen.has(table)).sort(), lockTables.sort(), "every table but the migration locks belongs to a service");
    assert.ok(ownership.cutline_billing.includes("billing_holds") && ownership.cutline_gateway.includes("api_keys") && ownership.cutline_orchestrator.includes("jobs"));

    // Serial and identity columns: the role that inserts into a table may draw from its sequence.
    await asRole(url, owner, async (client) => {
      const { rows } = await client.query<{ sequence: string; table: string }>(
        `select s.relname as sequence, t.relname as table from pg_class s
         join pg_depend d on d.objid = s.oid and d.deptype in ('a', 'i') join pg_class t on t.oid = d.refobjid
         where s.relkind = 'S'`,
      );
      assert.ok(rows.length > 0, "the migrations create sequences");
      for (const { sequence, table } of rows) {
        const role = SERVICE_ROLES.find((candidate) => ownership[candidate].includes(table));
        if (!role) continue;
        const { rows: usage } = await client.query<{ allowed: boolean }>("select has_sequence_privilege($1, $2, 'USAGE') as allowed", [role, `public.${sequence}`]);
        assert.equal(usage[0]!.allowed, true, `${role} draws from ${sequence} (${table})`);
      }
    });

    // Really, on connections of each role: its own table answers, another's is refused.
    await asRole(url, "cutline_orchestrator", async (client) => {
      await client.query("select count(*) from jobs");
      await assert.rejects(client.query("select count(*) from billing_holds"), /permission denied/);
      await assert.rejects(client.query("select count(*) from api_keys"), /permission denied/);
    });
    await asRole(url, "cutline_gateway", async (client) => {
      await client.query("select count(*) from api_keys");
      await assert.rejects(client.query("select count(*) from jobs"), /permission denied/);
    });
  });

  test("no role creates objects, billing cannot rewrite its ledger, and only billing runs its functions", async () => {
    for (const role of SERVICE_ROLES) {
      await asRole(url, role, async (client) => {
        await assert.rejects(client.query("create table intruder (id int)"), /permission denied/, `${role} creates no table`);
      });
    }
    await asRole(url, "cutline_billing", async (client) => {
      await client.query("select count(*) from billing_ledger_entries");
      await assert.rejects(client.query("update billing_ledger_entries set id = id where false"), /permission denied/, "no UPDATE on the ledger");
      await assert.rejects(client.query("delete from billing_ledger_entries where false"), /permission denied/, "no DELETE on the ledger");
    });
    await asRole(url, owner, async (client) => {
      const { rows } = await client.query<{ role: string; allowed: boolean }>(
        `select r.rolname as role, bool_and(has_function_privilege(r.rolname, p.oid, 'EXECUTE')) as allowed
         from pg_proc p join pg_namespace n on n.oid = p.pronamespace, pg_roles r
         where n.nspname = 'public' and p.proname like 'billing\\_%' and r.rolname = any($1) group by r.rolname`,
        [SERVICE_ROLES],
      );
      assert.deepEqual(Object.fromEntries(rows.map((row) => [row.role, row.allowed])), { cutline_billing: true, cutline_gateway: false, cutline_orchestrator: false });
    });
  });
});
