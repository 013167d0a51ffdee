// The plans file written into the catalogue tables at start, against a real database (Postgres
// with DATABASE_URL, PGlite without): versions, retired plans and packs, the migration of accounts
// on the 2025 plans, seats, the web pool, and the video limits a quote applies from the plan.
import assert from "node:assert/strict";
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { after, before, describe, it } from "node:test";
import { Code, ConnectError, createClient, createRouterTransport } from "@connectrpc/connect";
import { Migrator, type Kysely } from "kysely";
import pino from "pino";
import { createTestDatabase, type TestDatabase } from "../../../test/harness.ts";
import { openDatabase, type Database } from "../../common/database.ts";
import { BillingService, Operation } from "../../common/gen/cutline/billing/v1/billing_service_pb.ts";
import { CatalogueError, parseCatalogue } from "../domain/catalogue.ts";
import { ManualClock } from "../domain/clock.ts";
import { ok } from "../billing.testing.ts";
import { createBilling, type Billing } from "../index.ts";
import { readCatalogueFile, SHIPPED_PLANS_FILE, syncCatalogue } from "./catalogue.store.ts";
import { checkLedgerInvariants } from "./invariants.ts";
import { LedgerStore } from "./ledger.store.ts";
import { billingMigrations } from "./migrations.ts";
import type { BillingSchema } from "./schema.ts";

const SHIPPED_VERSION = "2026-11-27-seeds";
const shippedDocument = () => JSON.parse(readFileSync(SHIPPED_PLANS_FILE, "utf8")) as Record<string, unknown> & { plans: Record<string, unknown>[]; priceBook: { operations: Record<string, { tiers: { costMillicredits: number }[] }> } };

describe("the plans file in the catalogue tables", () => {
  const clock = new ManualClock();
  const opened: { test: TestDatabase; database: Database<BillingSchema> }[] = [];
  const directory = mkdtempSync(join(tmpdir(), "cutline-plans-"));
  let files = 0;
  async function freshDatabase(): Promise<Database<BillingSchema>> {
    const test = await createTestDatabase();
    const database = openDatabase<BillingSchema>(test.location);
    opened.push({ test, database });
    return database;
  }
  function plansFile(document: unknown): string {
    files += 1;
    const path = join(directory, `plans-${files}.json`);
    writeFileSync(path, JSON.stringify(document));
    return path;
  }
  const start = async (database: Database<BillingSchema>, plansFile?: string): Promise<Billing> => {
    const billing = await createBilling({ db: database.db as Kysely<unknown>, clock, log: pino({ level: "silent" }), plansFile });
    await billing.migrate();
    return billing;
  };
  after(async () => {
    for (const { test, database } of opened) {
      await database.close();
      await test.dispose();
    }
    rmSync(directory, { recursive: true, force: true });
  });

  it("writes the shipped file at start: its price book version active, its plans and packs listed, the 2025 ones retired", async () => {
    const database = await freshDatabase();
    const billing = await start(database);
    assert.equal((await billing.ledger.priceBook()).version, SHIPPED_VERSION);
    assert.equal((await billing.ledger.listPlans()).length, 11);
    const retired = await database.db.selectFrom("billing_plans").select(["code", "listed"]).where("code", "in", ["starter", "pro", "unlimited"]).orderBy("code").execute();
    assert.deepEqual(retired, [
      { code: "pro", listed: false },
      { code: "starter", listed: false },
      { code: "unlimited", listed: false },
    ]);
    ok(await billing.ledger.createAccount({ accountId: "buyer", grantTrial: false }));
    assert.equal((await billing.ledger.grant({ accountId: "buyer", pool: "api", kind: "pack", packCode: "pack_10", idempotencyKey: "old-pack" })).ok, false, "a retired pack is not sold");
    ok(await billing.ledger.grant({ accountId: "buyer", pool: "api", kind: "pack", packCode: "pack_250", idempotencyKey: "new-pack" }));
    assert.equal(ok(await billing.ledger.balance("buyer", "api")).availableMillicredits, 1_388_000);
    await start(database);
    assert.deepEqual(
      await database.db.selectFrom("billing_price_books").select("version").where("active", "=", true).execute(),
      [{ version: SHIPPED_VERSION }],
      "a second start with the same file changes nothing",
    );
  });

  it("refuses a price change under the same version, and keeps every version; a hold keeps the price it was made with", async () => {
    const database = await freshDatabase();
    const billing = await start(database);
    ok(await billing.ledger.createAccount({ accountId: "early", planCode: "developer", grantTrial: false }));
    const transport = createRouterTransport(({ service }) => service(BillingService, billing.handlers));
    const client = createClient(BillingService, transport);
    const quoted = await client.quote({ accountId: "early", operation: Operation.REMOVE_BACKGROUND, pixels: 12_000_000n });
    assert.deepEqual([quoted.costMillicredits, quoted.priceBookVersion], [1000n, SHIPPED_VERSION]);
    const hold = ok(await billing.ledger.reserve({ accountId: "early", pool: "api", amountMillicredits: Number(quoted.costMillicredits), idempotencyKey: "before-change" }));

    const raised = shippedDocument();
    raised.priceBook.operations.remove_background!.tiers[2]!.costMillicredits = 1200;
    await assert.rejects(start(database, plansFile(raised)), (error: unknown) => {
      assert.ok(error instanceof CatalogueError);
      assert.deepEqual(error.problems, [`version "${SHIPPED_VERSION}" is already stored with other prices; a price change needs a new version`]);
      return true;
    });
    const after = await start(database, plansFile({ ...raised, version: "2026-12-raised" }));
    const requoted = await createClient(BillingService, createRouterTransport(({ service }) => service(BillingService, after.handlers))).quote({
      accountId: "early",
      operation: Operation.REMOVE_BACKGROUND,
      pixels: 12_000_000n,
    });
    assert.deepEqual([requoted.costMillicredits, requoted.priceBookVersion], [1200n, "2026-12-raised"]);
    const captured = ok(await after.ledger.capture(hold.holdId, Number(quoted.costMillicredits)));
    assert.equal(captured.capturedMillicredits, 1000, "the hold made under the first version is captured at its price");
    const versions = await database.db.selectFrom("billing_price_books").select(["version", "active"]).where("version", "in", [SHIPPED_VERSION, "2026-12-raised"]).orderBy("version").execute();
    assert.deepEqual(versions, [
      { version: SHIPPED_VERSION, active: false },
      { version: "2026-12-raised", active: true },
    ]);
    assert.deepEqual(await checkLedgerInvariants(database.db), []);
  });

  it("two replicas syncing a new version at once both start, one activating it; an old pod's file never re-activates its older version", async () => {
    const database = await freshDatabase();
    await start(database);
    const document = shippedDocument();
    document.plans[1]!.name = "Developer (December)";
    const parsed = parseCatalogue({ ...document, version: "2026-12-renamed" });
    assert.ok(parsed.ok);
    // Two transactions at once on two connections (real Postgres): without the lock both insert the version.
    const outcomes = await Promise.all([syncCatalogue(database.db, parsed.catalogue, "a", clock.now()), syncCatalogue(database.db, parsed.catalogue, "b", clock.now())]);
    assert.deepEqual(outcomes.sort(), ["activated", "current"]);
    const activeVersions = () => database.db.selectFrom("billing_price_books").select("version").where("active", "=", true).execute();
    assert.deepEqual(await activeVersions(), [{ version: "2026-12-renamed" }]);
    // An old pod restarts with the shipped file: its version is stored but was replaced, so nothing is written.
    assert.equal(await syncCatalogue(database.db, readCatalogueFile(), "old pod", clock.now()), "stale");
    assert.deepEqual(await activeVersions(), [{ version: "2026-12-renamed" }]);
    const developer = await database.db.selectFrom("billing_plans").select("name").where("code", "=", "developer").executeTakeFirstOrThrow();
    assert.equal(developer.name, "Developer (December)", "the old file's plans do not overwrite the newer ones");
    assert.equal(await syncCatalogue(database.db, parsed.catalogue, "restart", clock.now()), "current");
  });

  it("stops billing at start on a bad file, naming the field", async () => {
    const database = await freshDatabase();
    const broken = shippedDocument();
    broken.plans[3]!.longestSidePixels = 0;
    await assert.rejects(createBilling({ db: database.db as Kysely<unknown>, clock, log: pino({ level: "silent" }), plansFile: plansFile(broken) }), (error: unknown) => {
      assert.ok(error instanceof CatalogueError);
      assert.match(error.message, /plans\[3\]\.longestSidePixels must be an integer from 64 to 65535 \(pixels\)/);
      return true;
    });
    await assert.rejects(createBilling({ db: database.db as Kysely<unknown>, clock, log: pino({ level: "silent" }), plansFile: join(directory, "missing.json") }), CatalogueError);
  });

  it("moves accounts on the 2025 plans to the nearest preset, their money and cycle intact", async () => {
    const database = await freshDatabase();
    const before2026Catalogue = Object.fromEntries(Object.entries(billingMigrations).filter(([name]) => name < "202611272100"));
    const migrator = new Migrator({
      db: database.db as Kysely<unknown>,
      provider: { getMigrations: async () => before2026Catalogue },
      migrationTableName: "billing_migrations",
      migrationLockTableName: "billing_migrations_lock",
    });
    assert.equal((await migrator.migrateToLatest()).error, undefined);
    const ledger = new LedgerStore({ db: database.db, clock });
    const expected: Record<string, string> = { free: "free", starter: "developer", pro: "growth", business: "business" };
    for (const code of Object.keys(expected)) {
      ok(await ledger.createAccount({ accountId: `on-${code}`, planCode: code }));
      const hold = ok(await ledger.reserve({ accountId: `on-${code}`, pool: "api", amountMillicredits: 2_000, idempotencyKey: `spend-${code}` }));
      ok(await ledger.capture(hold.holdId, 1_500));
    }
    const balances = Object.fromEntries(await Promise.all(Object.keys(expected).map(async (code) => [code, ok(await ledger.balance(`on-${code}`, "api")).availableMillicredits] as const)));
    const cycles = await database.db.selectFrom("billing_accounts").select(["account_id", "next_renewal_at"]).orderBy("account_id").execute();

    await start(database);
    for (const [code, preset] of Object.entries(expected)) {
      const account = ok(await ledger.getAccount(`on-${code}`)).account;
      assert.equal(account.plan.code, preset, `${code} -> ${preset}`);
      assert.equal(ok(await ledger.balance(`on-${code}`, "api")).availableMillicredits, balances[code], `${code}'s credits are intact`);
    }
    assert.deepEqual(await database.db.selectFrom("billing_accounts").select(["account_id", "next_renewal_at"]).orderBy("account_id").execute(), cycles, "every cycle is kept");
    const growth = await database.db.selectFrom("billing_credit_accounts").select("low_balance_threshold_mc").where("account_id", "=", "on-pro").where("pool", "=", "api").executeTakeFirstOrThrow();
    assert.equal(growth.low_balance_threshold_mc, 60_000, "credits.low follows the preset's allocation (10%)");
    const business = ok(await ledger.getAccount("on-business")).account.plan;
    assert.deepEqual([business.planClass, business.seats, business.longestSidePixels], ["pro", 3, 8192], "business now has the preset's rules");
    assert.deepEqual(await checkLedgerInvariants(database.db), []);
  });

  it("seats: business admits 3 members, enterprise any number, developer 1", async () => {
    const database = await freshDatabase();
    const { ledger } = await start(database);
    for (const code of ["business", "enterprise", "developer"]) ok(await ledger.createAccount({ accountId: `team-${code}`, planCode: code, ownerMemberId: "owner", grantTrial: false }));
    const add = (code: string, member: string) => ledger.setMember({ accountId: `team-${code}`, memberId: member, role: "member", monthlyCapMillicredits: null });
    ok(await add("business", "bob"));
    ok(await add("business", "carol"));
    assert.equal((await add("business", "dave")).ok ? "" : "seat_limit_reached", "seat_limit_reached");
    for (let member = 0; member < 25; member += 1) ok(await add("enterprise", `member-${member}`));
    const refused = await add("developer", "bob");
    assert.equal(refused.ok ? "" : refused.reason, "seat_limit_reached");
  });

  it("web_basic's credits go to the web pool, valid 90 days; the trial stays in the API pool", async () => {
    const database = await freshDatabase();
    const { ledger } = await start(database);
    ok(await ledger.createAccount({ accountId: "web", planCode: "web_basic" }));
    const web = ok(await ledger.balance("web", "web"));
    assert.equal(web.availableMillicredits, 1_000_000);
    assert.equal(web.buckets[0]!.expiresAt!.getTime() - clock.now().getTime(), 90 * 24 * 60 * 60 * 1000);
    assert.equal(ok(await ledger.balance("web", "api")).availableMillicredits, 10_000, "only the sign-up trial");
  });

  describe("video quotes held to the plan", () => {
    let billing: Billing;
    before(async () => {
      billing = await start(await freshDatabase());
      for (const code of ["scale", "business"]) ok(await billing.ledger.createAccount({ accountId: `video-${code}`, planCode: code, grantTrial: false }));
    });

    it("60 s on standard-class plans, 5 minutes on pro-class, 1080p on both; refusals name the plan's limit", async () => {
      const client = createClient(BillingService, createRouterTransport(({ service }) => service(BillingService, billing.handlers)));
      const quote = (accountId: string, seconds: number, pixels = 1920 * 1080, quality = "") =>
        client.quote({ accountId, operation: Operation.VIDEO_REMOVE_BACKGROUND, pixels: BigInt(pixels), videoMilliseconds: seconds * 1000, quality });
      assert.equal((await quote("video-scale", 60)).costMillicredits, 240_000n);
      assert.equal((await quote("video-scale", 60, 1280 * 720)).costMillicredits, 180_000n);
      assert.equal((await quote("video-scale", 60, 1280 * 720, "best")).costMillicredits, 300_000n);
      const tooLong = await quote("video-scale", 61).then(() => undefined, (error: unknown) => ConnectError.from(error));
      assert.equal(tooLong?.code, Code.InvalidArgument);
      assert.match(tooLong?.rawMessage ?? "", /^video_too_long: .*Scale plan's limit of 60 s/);
      assert.equal((await quote("video-business", 300)).costMillicredits, 1_200_000n);
      const tooLarge = await quote("video-business", 10, 2560 * 1440).then(() => undefined, (error: unknown) => ConnectError.from(error));
      assert.match(tooLarge?.rawMessage ?? "", /^resolution_too_large: /);
    });

    it("GetAccount carries the plan's class and video limits for the video service", async () => {
      const client = createClient(BillingService, createRouterTransport(({ service }) => service(BillingService, billing.handlers)));
      const plan = (await client.getAccount({ accountId: "video-scale" })).account?.plan;
      assert.deepEqual([plan?.planClass, plan?.videoSecondsMax, plan?.videoBytesMax, plan?.videoLongestSidePixels, plan?.longestSidePixels, plan?.maxUploadBytes], [
        "standard",
        60,
        200n * 1024n * 1024n,
        1920,
        4096,
        25n * 1024n * 1024n,
      ]);
    });

    it("the balance answers how many more upscales, smart crops and video seconds", async () => {
      const client = createClient(BillingService, createRouterTransport(({ service }) => service(BillingService, billing.handlers)));
      const balance = await client.getBalance({ accountId: "video-scale" });
      const count = (operation: Operation, description: string) => balance.affordable.find((row) => row.operation === operation && row.description === description)?.count;
      assert.equal(balance.availableMillicredits, 2_000_000n);
      assert.equal(count(Operation.UPSCALE, "upscaling, image, up to 67.11 MP"), 1000n);
      assert.equal(count(Operation.SMART_CROP, "smart crop, image, up to 67.11 MP"), 1538n);
      assert.equal(count(Operation.VIDEO_REMOVE_BACKGROUND, "background removal, video per started second, quality best, 1 s"), 400n);
    });
  });
});
