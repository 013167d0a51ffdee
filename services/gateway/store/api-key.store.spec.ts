// API keys on a real database (Postgres when DATABASE_URL is set, else PGlite), migrated from
// the first gateway migration: a key made before members existed keeps working and gets a name.
import assert from "node:assert/strict";
import { after, before, describe, it } from "node:test";
import { sql, type KyselyPlugin } from "kysely";
import { createTestDatabase, type TestDatabase } from "../../../test/harness.ts";
import { openDatabase, type Database } from "../../common/database.ts";
import { migrateToLatest } from "../../common/migrate.ts";
import { ApiKeyStore, LAST_USED_WRITE_INTERVAL_MS, type GatewaySchema } from "./api-key.store.ts";
import { gatewayMigrations } from "./migrations.ts";

describe("ApiKeyStore", () => {
  let testDatabase: TestDatabase;
  let database: Database<GatewaySchema>;
  let now = Date.parse("2026-11-27T12:00:00Z");
  let store: ApiKeyStore;

  before(async () => {
    testDatabase = await createTestDatabase();
    database = openDatabase<GatewaySchema>(testDatabase.location);
    const [first, ...later] = Object.entries(gatewayMigrations);
    await migrateToLatest(database.db, "gateway", Object.fromEntries([first!]));
    // A key from before members: stored under the first schema, with only a label.
    await sql`insert into api_keys (id, key_sha256, account_id, label) values ('key_old', 'old-hash', 'old-account', 'provisioned')`.execute(database.db);
    await migrateToLatest(database.db, "gateway", Object.fromEntries([first!, ...later]));
    store = new ApiKeyStore(database.db, { now: () => now });
  });

  after(async () => {
    await database?.close();
    await testDatabase?.dispose();
  });

  it("keeps keys made before members, named by their label and acting for the whole account", async () => {
    assert.deepEqual(await store.get("key_old").then((key) => key && [key.name, key.memberId, key.keyPrefix, key.lastUsedAt]), ["provisioned", null, "", null]);
  });

  it("stores only a hash and a short prefix; the key is the member's, and revoking stops it", async () => {
    const { key, keyId } = await store.create("acme", { name: "ci", memberId: "bob" });
    assert.match(key, /^cl_[A-Za-z0-9_-]{32}$/);
    const row = await database.db.selectFrom("api_keys").selectAll().where("id", "=", keyId).executeTakeFirstOrThrow();
    assert.ok(!JSON.stringify(row).includes(key), "the key itself is not stored");
    assert.equal(row.key_prefix, key.slice(0, 7));
    assert.deepEqual(await store.find(key, { recordUse: false }), { keyId, accountId: "acme", memberId: "bob" });
    assert.deepEqual((await store.listActive("acme", { memberId: "bob", limit: 10 })).map((view) => view.keyId), [keyId]);
    assert.equal(await store.countActive("acme"), 1);
    const revoked = await store.revoke(keyId);
    assert.equal(revoked?.revokedAt?.getTime(), now);
    assert.equal(await store.find(key), undefined);
    assert.equal(await store.countActive("acme"), 0);
    assert.equal(await store.revoke("key_missing"), undefined);
    const short = await store.create("acme", { key: "short-demo-key" });
    assert.equal((await store.get(short.keyId))?.keyPrefix, "", "a short configured key keeps nothing in clear");
  });

  it("with ownerCacheMs, keeps a found key's owner (not a miss), and a revoke stops the key at once", async () => {
    // Counts the selects this store runs.
    let selects = 0;
    const counting: KyselyPlugin = {
      transformQuery: ({ node }) => {
        if (node.kind === "SelectQueryNode") selects += 1;
        return node;
      },
      transformResult: async ({ result }) => result,
    };
    const kept = new ApiKeyStore(database.db.withPlugin(counting), { now: () => now, ownerCacheMs: 60_000 });
    const { key, keyId } = await kept.create("kept", { name: "kept" });
    const lookups = async (run: () => Promise<unknown>) => {
      const before = selects;
      await run();
      return selects - before;
    };
    assert.deepEqual(await kept.find(key, { recordUse: false }), { keyId, accountId: "kept", memberId: undefined });
    assert.equal(await lookups(() => kept.find(key, { recordUse: false })), 0, "the second lookup is answered from memory");
    // A miss is not kept: a key made right after it was tried works at once.
    const later = "cl_made-after-a-miss-0000000000000000000";
    assert.equal(await kept.find(later, { recordUse: false }), undefined);
    await kept.create("kept", { key: later });
    assert.equal((await kept.find(later, { recordUse: false }))?.accountId, "kept");
    await kept.revoke(keyId);
    assert.equal(await kept.find(key, { recordUse: false }), undefined, "revoked through this store: refused at once");
  });

  it("records the last use at most once a minute per key, without the lookup waiting for it", async () => {
    const { key, keyId } = await store.create("busy", { name: "busy" });
    const lastUsed = async () => (await store.get(keyId))?.lastUsedAt?.getTime() ?? null;
    assert.equal(await lastUsed(), null);
    const first = now;
    await store.find(key);
    await store.flushLastUsed();
    assert.equal(await lastUsed(), first);
    now += LAST_USED_WRITE_INTERVAL_MS - 1;
    for (let use = 0; use < 20; use += 1) await store.find(key);
    await store.flushLastUsed();
    assert.equal(await lastUsed(), first, "uses within the minute write nothing");
    now += 1;
    await store.find(key);
    await store.flushLastUsed();
    assert.equal(await lastUsed(), now, "the first use after a minute is written");
  });
});
