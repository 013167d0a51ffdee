// Migrations as a pre-deploy step, on real Postgres: a service started with MIGRATE_ON_START=false
// on a database that lacks migrations refuses to start and names them; `npm run migrate` applies
// every service's migrations and exits; then the check passes, and a second run applies nothing.
import assert from "node:assert/strict";
import { spawn } from "node:child_process";
import { join } from "node:path";
import { after, before, describe, test } from "node:test";
import { pino } from "pino";
import { createTestDatabase, testNatsUrl, type TestDatabase } from "../test/harness.ts";
import { createBilling } from "./billing/index.ts";
import { openDatabase, type Database } from "./common/database.ts";
import { assertMigrated, SchemaBehindError } from "./common/migrate.ts";
import { migrateAll, SERVICE_MIGRATIONS } from "./migrate.ts";

const ROOT = join(import.meta.dirname, "..");

function run(args: string[], env: Record<string, string>): Promise<{ code: number | null; output: string }> {
  return new Promise((resolve) => {
    let output = "";
    const child = spawn(process.execPath, ["--import", "tsx", ...args], { cwd: ROOT, env: { ...process.env, ...env }, stdio: ["ignore", "pipe", "pipe"] });
    child.stdout.on("data", (chunk: Buffer) => (output += chunk.toString()));
    child.stderr.on("data", (chunk: Buffer) => (output += chunk.toString()));
    const timer = setTimeout(() => child.kill("SIGKILL"), 120_000);
    child.once("exit", (code) => {
      clearTimeout(timer);
      resolve({ code, output });
    });
  });
}

const natsUrl = await testNatsUrl();
const probe = await createTestDatabase();
const onPostgres = probe.location.kind === "postgres";
await probe.dispose();

describe("migrate: a pre-deploy step, and services that only check", { skip: onPostgres ? false : "needs DATABASE_URL (real Postgres)" }, () => {
  let testDatabase: TestDatabase;
  let database: Database<any>;
  let url: string;
  before(async () => {
    testDatabase = await createTestDatabase();
    assert.equal(testDatabase.location.kind, "postgres");
    url = (testDatabase.location as { url: string }).url;
    database = openDatabase<any>(testDatabase.location);
  });
  after(async () => {
    await database.close();
    await testDatabase.dispose();
  });

  test("with MIGRATE_ON_START=false on an empty database, billing refuses to start and names the missing migrations", { skip: natsUrl ? false : "needs NATS_URL" }, async () => {
    const { code, output } = await run(["services/billing/main.ts"], {
      DATABASE_URL: url,
      NATS_URL: natsUrl!,
      MIGRATE_ON_START: "false",
      CUTLINE_SERVICE_TOKEN: "migrate-spec-token-0123456789abcdef0123",
      PORT: "0",
      METRICS_PORT: "off",
    });
    assert.equal(code, 1, output);
    assert.match(output, /billing database schema is behind: migrations 202501010000_ledger, .* not applied, and MIGRATE_ON_START=false; run `npm run migrate`/);
    await assert.rejects(assertMigrated(database.db, SERVICE_MIGRATIONS[0]!), SchemaBehindError);
  });

  test("`npm run migrate` migrates every service and exits; the check then passes, and a rerun applies nothing", async () => {
    const { code, output } = await run(["services/migrate.ts"], { DATABASE_URL: url, LOG_LEVEL: "info" });
    assert.equal(code, 0, output);
    for (const set of SERVICE_MIGRATIONS) {
      assert.match(output, new RegExp(`"service":"${set.service}","applied":${Object.keys(set.migrations).length}`), output);
      await assertMigrated(database.db, set);
    }
    assert.deepEqual(await migrateAll({ DATABASE_URL: url, LOG_LEVEL: "silent" }), { billing: 0, orchestrator: 0, gateway: 0 });
    // Billing with migrateOnStart false starts on the migrated database (the plans file still syncs).
    const billing = await createBilling({ db: database.db, migrateOnStart: false, log: pino({ level: "silent" }) });
    await billing.migrate();
  });

  test("a database one migration behind: the check names exactly that migration", async () => {
    const orchestrator = SERVICE_MIGRATIONS.find((set) => set.service === "orchestrator")!;
    const last = Object.keys(orchestrator.migrations).sort().at(-1)!;
    await database.db.deleteFrom("orchestrator_migrations").where("name", "=", last).execute();
    await assert.rejects(assertMigrated(database.db, orchestrator), (error: SchemaBehindError) => {
      assert.deepEqual(error.missing, [last]);
      assert.match(error.message, new RegExp(`orchestrator database schema is behind: migration ${last} not applied`));
      return true;
    });
  });
});
