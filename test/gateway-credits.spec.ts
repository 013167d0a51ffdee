// Credits through a real gateway (port 0) in front of real billing and orchestrator (issue 11):
// every call records its API key and member, whichever route made it; the account chooses what
// happens when its credits run out (GET/PUT /v1/account/settings), and the 402 body names the
// caller's options. No inference worker runs: submitted jobs stay queued with their holds.
import { Code, ConnectError, createClient, createRouterTransport } from "@connectrpc/connect";
import { createConnectTransport } from "@connectrpc/connect-node";
import assert from "node:assert/strict";
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { after, before, describe, it } from "node:test";
import type { Kysely } from "kysely";
import pino from "pino";
import sharp from "sharp";
import { createBillingFixture, type BillingFixture } from "../services/billing/billing.testing.ts";
import { InProcessBlobStore, InProcessEventBus, InProcessWorkQueue } from "../services/common/adapters/index.ts";
import { BillingService } from "../services/common/gen/cutline/billing/v1/billing_service_pb.ts";
import { AccountService } from "../services/common/gen/cutline/gateway/v1/account_service_pb.ts";
import { JobService } from "../services/common/gen/cutline/gateway/v1/job_service_pb.ts";
import { KeyService } from "../services/common/gen/cutline/gateway/v1/key_service_pb.ts";
import { OrchestratorService } from "../services/common/gen/cutline/orchestrator/v1/orchestrator_service_pb.ts";
import { HealthRegistry } from "../services/common/health.ts";
import { imageLimitsOf } from "../services/common/images/image-limits.ts";
import { createUploadInspector } from "../services/common/images/upload.inspector.ts";
import { startServiceServer, type ServiceServer } from "../services/common/server.ts";
import { loadGatewayConfig } from "../services/gateway/gateway.config.ts";
import { OVERAGE_HOW } from "../services/gateway/handlers/rest-support.ts";
import { createGateway, type Gateway } from "../services/gateway/index.ts";
import { createOrchestrator, type Orchestrator } from "../services/orchestrator/index.ts";
import { reasonOf } from "../services/common/errors.ts";
import { adminCli } from "./admin-cli.testing.ts";

const ADMIN_TOKEN = "admin-token-for-tests-0123456789abcdef";
/** Short, so the synchronous vendor routes give up quickly on a job no worker runs. */
const SYNC_TIMEOUT_MS = 300;

describe("credits through the gateway", () => {
  let billing: BillingFixture;
  let orchestrator: Orchestrator;
  let gateway: Gateway;
  let server: ServiceServer;
  let blobs: InProcessBlobStore;
  let workQueue: InProcessWorkQueue;
  let eventBus: InProcessEventBus;
  let photo: Uint8Array;
  const dataDir = mkdtempSync(join(tmpdir(), "cutline-gateway-credits-"));
  const log = pino({ level: "silent" });

  async function newAccount(accountId: string, plan: string): Promise<string> {
    const response = await fetch(`${server.url}/admin/v1/accounts`, {
      method: "POST",
      headers: { authorization: `Bearer ${ADMIN_TOKEN}`, "content-type": "application/json" },
      body: JSON.stringify({ plan, accountId }),
    });
    assert.equal(response.status, 201, await response.clone().text());
    return ((await response.json()) as { apiKey: string }).apiKey;
  }

  const form = (field: string) => {
    const body = new FormData();
    body.append(field, new Blob([photo], { type: "image/png" }), "photo.png");
    return body;
  };
  const post = (path: string, key: string, body: FormData) => fetch(`${server.url}${path}`, { method: "POST", headers: { "x-api-key": key }, body });
  const settings = (key: string, body?: unknown) =>
    fetch(`${server.url}/v1/account/settings`, body === undefined ? { headers: { "x-api-key": key } } : { method: "PUT", headers: { "x-api-key": key, "content-type": "application/json" }, body: JSON.stringify(body) });

  const { cliJson } = adminCli(() => ({ CUTLINE_URL: server.url, CUTLINE_ADMIN_TOKEN: ADMIN_TOKEN }));

  before(async () => {
    blobs = new InProcessBlobStore({ dataDir, log });
    workQueue = new InProcessWorkQueue({ log });
    eventBus = new InProcessEventBus({ dataDir, log });
    // Billing publishes its events (credits.low, ...) on the bus the orchestrator reads.
    billing = await createBillingFixture({ eventBus });
    const billingClient = createClient(BillingService, createRouterTransport((router) => router.service(BillingService, billing.handlers)));
    orchestrator = createOrchestrator({ db: billing.db as Kysely<any>, workQueue, eventBus, blobStore: blobs, billing: billingClient, log });
    await orchestrator.start();
    gateway = createGateway({
      db: billing.db as Kysely<any>,
      blobStore: blobs,
      billing: billingClient,
      orchestrator: createClient(OrchestratorService, createRouterTransport(orchestrator.routes)),
      inspect: createUploadInspector(imageLimitsOf(loadGatewayConfig({}))),
      log,
      limits: { uploadBytesMax: 1_000_000, syncTimeoutMs: SYNC_TIMEOUT_MS, holdTtlSeconds: 900, longestSide: { standard: 2048, pro: 4096 }, readRequestsPerMinute: 0, watchStreamsMax: 0 },
      adminToken: ADMIN_TOKEN,
    });
    await gateway.start();
    server = await startServiceServer({ name: "gateway", host: "127.0.0.1", port: 0, log, health: new HealthRegistry(), routes: gateway.routes, httpRoutes: gateway.httpRoutes, admit: gateway.admit });
    photo = new Uint8Array(await sharp({ create: { width: 64, height: 48, channels: 3, background: "#3366cc" } }).png().toBuffer());
  });

  after(async () => {
    await server?.close();
    await orchestrator?.stop();
    await Promise.all([workQueue?.close(), blobs?.close(), eventBus?.close()]);
    await billing?.assertHealthy();
    await billing?.dispose();
    rmSync(dataDir, { recursive: true, force: true });
  });

  it("records every call's API key and member, whichever route made it, and ListUsage answers per member and per key", async () => {
    const accountId = "usage-team";
    const ownerKey = await newAccount(accountId, "business");
    const keys = createClient(KeyService, createConnectTransport({ baseUrl: server.url, httpVersion: "1.1" }));
    const as = (key: string) => ({ headers: { "x-api-key": key } });
    await billing.ledger.setMember({ accountId, memberId: "bob", role: "member", monthlyCapMillicredits: null });
    const bobKey = (await keys.createKey({ name: "bob's", memberId: "bob" }, as(ownerKey))).apiKey;
    // An account-wide key (no member of its own) is recorded against the account's owner.
    const { key: accountWideKey, keyId: accountWideKeyId } = await gateway.apiKeys.create(accountId, { name: "account-wide" });
    const keyIdOf = async (key: string, memberId: string) => (await keys.listKeys({ memberId }, as(key))).keys[0]!.keyId;
    const ownerKeyId = await keyIdOf(ownerKey, "owner");
    const bobKeyId = await keyIdOf(bobKey, "bob");

    const jobs = createClient(JobService, createConnectTransport({ baseUrl: server.url, httpVersion: "1.1" }));
    const calls: [string, () => Promise<unknown>, string, string][] = [
      ["matting", () => post("/v1/matting?async=true", ownerKey, form("image_file")), ownerKeyId, "owner"],
      ["smart crop", () => post("/v1/smart-crop?async=true", bobKey, form("image_file")), bobKeyId, "bob"],
      ["batch", () => post("/v1/matting/batch", bobKey, form("image_file")), bobKeyId, "bob"],
      ["remove.bg", () => post("/v1.0/removebg", accountWideKey, form("image_file")), accountWideKeyId, "owner"],
      ["Photoroom", () => post("/v1/segment", bobKey, form("image_file")), bobKeyId, "bob"],
      ["JobService.Submit", () => jobs.submit({ image: photo }, as(accountWideKey)), accountWideKeyId, "owner"],
    ];
    const expected: string[] = [];
    for (const [route, call, keyId, memberId] of calls) {
      const answer = await call();
      if (answer instanceof Response) await answer.arrayBuffer();
      expected.push(`${route}: ${keyId} ${memberId}`);
    }
    const holds = await billing.db
      .selectFrom("billing_holds as h")
      .innerJoin("billing_credit_accounts as c", "c.id", "h.credit_account_id")
      .select(["h.id", "h.api_key_id", "h.member_id"])
      .where("c.account_id", "=", accountId)
      .execute();
    // The test's billing clock stands still, so holds have no order of their own: compare them sorted.
    assert.deepEqual(
      holds.map((hold) => `${hold.api_key_id} ${hold.member_id}`).sort(),
      expected.map((line) => line.slice(line.indexOf(": ") + 2)).sort(),
      `one hold per call, each with its key and member:\n${expected.join("\n")}`,
    );
    // The orchestrator captures a job's hold when its result is ready; no worker runs here, so the test does.
    for (const hold of holds) {
      const status = await billing.db.selectFrom("billing_holds").select(["status", "amount_mc"]).where("id", "=", hold.id).executeTakeFirstOrThrow();
      if (status.status === "open") assert.ok((await billing.ledger.capture(hold.id, status.amount_mc)).ok);
    }
    const captured = await billing.db.selectFrom("billing_holds").select(["api_key_id", "member_id", "captured_mc"]).where("id", "in", holds.map((hold) => hold.id)).where("status", "=", "captured").execute();
    const sum = (pick: (row: (typeof captured)[number]) => string | null) => {
      const totals = new Map<string, { calls: number; credits: number }>();
      for (const row of captured) {
        const total = totals.get(pick(row)!) ?? { calls: 0, credits: 0 };
        totals.set(pick(row)!, { calls: total.calls + 1, credits: total.credits + row.captured_mc / 1000 });
      }
      return totals;
    };
    const usage = (await (await fetch(`${server.url}/v1/usage`, as(ownerKey))).json()) as { members: { member_id: string; calls: number; credits: number }[]; api_keys: { api_key_id: string; calls: number; credits: number }[] };
    assert.deepEqual(new Map(usage.members.map((row) => [row.member_id, { calls: row.calls, credits: row.credits }])), sum((row) => row.member_id));
    assert.deepEqual(new Map(usage.api_keys.map((row) => [row.api_key_id, { calls: row.calls, credits: row.credits }])), sum((row) => row.api_key_id));
    assert.deepEqual(new Set(usage.members.map((row) => row.member_id)), new Set(["owner", "bob"]));
    assert.equal(usage.api_keys.length, 3, "the owner's, bob's and the account-wide key");
  });

  it("lets the account choose between stopping and overage, and the 402 body names both options", async () => {
    const key = await newAccount("chooser", "pro");
    assert.deepEqual(await (await settings(key)).json(), { retention_hours: 24, zero_retention: false, on_exhausted: "overage", on_exhausted_is_plan_default: true });
    const stop = await settings(key, { on_exhausted: "stop" });
    assert.equal(stop.status, 200);
    assert.deepEqual(await stop.json(), { retention_hours: 24, zero_retention: false, on_exhausted: "stop", on_exhausted_is_plan_default: false });
    // Spend the plan's credits (the test plays a caller that used them).
    const balance = await billing.ledger.balance("chooser", "api");
    assert.ok(balance.ok);
    const spent = await billing.ledger.reserve({ accountId: "chooser", pool: "api", amountMillicredits: balance.availableMillicredits - 100, idempotencyKey: "spend" });
    assert.ok(spent.ok, spent.ok ? "" : spent.message);
    assert.ok((await billing.ledger.capture(spent.holdId, spent.amountMillicredits)).ok);

    const refused = await post("/v1/matting?async=true", key, form("image_file"));
    assert.equal(refused.status, 402);
    const [error] = ((await refused.json()) as { errors: Record<string, unknown>[] }).errors;
    assert.equal(error?.code, "insufficient_credits");
    assert.equal(error?.on_exhausted, "stop");
    assert.equal(error?.available_credits, "0.1");
    assert.deepEqual(error?.options, [
      { option: "upgrade", hint: "upgrade your plan" },
      { option: "overage", rate_cents_per_credit: 16, how: OVERAGE_HOW },
    ]);
    assert.match(String(error?.title), /upgrade the plan, or continue in overage at 16 cents a credit/);

    const typed = createClient(AccountService, createConnectTransport({ baseUrl: server.url, httpVersion: "1.1" }));
    const overage = await typed.updateAccountSettings({ onExhausted: "overage" }, { headers: { "x-api-key": key } });
    assert.deepEqual([overage.settings?.onExhausted, overage.settings?.onExhaustedIsPlanDefault, overage.settings?.retentionHours], ["overage", false, 24]);
    const continued = await post("/v1/matting?async=true", key, form("image_file"));
    assert.equal(continued.status, 202, await continued.clone().text());
    const overageHolds = await billing.db
      .selectFrom("billing_holds as h")
      .innerJoin("billing_credit_accounts as c", "c.id", "h.credit_account_id")
      .select(["h.overage_mc"])
      .where("c.account_id", "=", "chooser")
      .where("h.overage_mc", ">", 0)
      .execute();
    assert.equal(overageHolds.length, 1, "the call went on in overage");
    assert.equal((await typed.getAccountSettings({}, { headers: { "x-api-key": key } })).settings?.onExhausted, "overage");
  });

  it("refuses overage on a plan without it, and an unknown choice, naming the field", async () => {
    const key = await newAccount("free-chooser", "free");
    const noOverage = await settings(key, { on_exhausted: "overage" });
    assert.equal(noOverage.status, 400);
    assert.match(((await noOverage.json()) as { errors: { title: string }[] }).errors[0]!.title, /plan free offers no overage/);
    const typo = await settings(key, { on_exhausted: "continue" });
    assert.equal(typo.status, 400);
    const typoError = ((await typo.json()) as { errors: { code: string; title: string }[] }).errors[0]!;
    assert.deepEqual([typoError.code, /on_exhausted must be stop, overage or plan/.test(typoError.title)], ["invalid_option", true]);
    const both = await settings(key, { on_exhausted: "overage", retention_hours: 2 });
    assert.equal(both.status, 400);
    assert.equal(((await (await settings(key)).json()) as { retention_hours: number }).retention_hours, 24, "a refused setting changes nothing");
  });

  it("checks the whole settings request before writing any of it: a bad retention leaves on_exhausted as it was", async () => {
    const key = await newAccount("whole-request", "pro");
    const refused = await settings(key, { on_exhausted: "stop", retention_hours: 48 });
    assert.equal(refused.status, 400);
    assert.match(((await refused.json()) as { errors: { title: string }[] }).errors[0]!.title, /RETENTION_HOURS_MAX/);
    assert.deepEqual(await (await settings(key)).json(), { retention_hours: 24, zero_retention: false, on_exhausted: "overage", on_exhausted_is_plan_default: true }, "nothing written");
    const typed = createClient(AccountService, createConnectTransport({ baseUrl: server.url, httpVersion: "1.1" }));
    const rpcRefusal = await typed.updateAccountSettings({ onExhausted: "stop", retentionHours: 48 }, { headers: { "x-api-key": key } }).then(() => undefined, (error: unknown) => error);
    assert.ok(rpcRefusal instanceof ConnectError);
    assert.equal(rpcRefusal.code, Code.InvalidArgument);
    assert.equal((await typed.getAccountSettings({}, { headers: { "x-api-key": key } })).settings?.onExhausted, "overage");
  });

  it("lets only an owner or admin change the account's settings; a member's key is refused with role_forbidden", async () => {
    const accountId = "settings-team";
    const ownerKey = await newAccount(accountId, "pro");
    await billing.ledger.setMember({ accountId, memberId: "carol", role: "member", monthlyCapMillicredits: null });
    await billing.ledger.setMember({ accountId, memberId: "dan", role: "admin", monthlyCapMillicredits: null });
    const { key: memberKey } = await gateway.apiKeys.create(accountId, { name: "carol's", memberId: "carol" });
    const { key: adminKey } = await gateway.apiKeys.create(accountId, { name: "dan's", memberId: "dan" });
    const refused = await settings(memberKey, { on_exhausted: "stop" });
    assert.equal(refused.status, 403);
    assert.equal(((await refused.json()) as { errors: { code: string }[] }).errors[0]!.code, "role_forbidden");
    const typed = createClient(AccountService, createConnectTransport({ baseUrl: server.url, httpVersion: "1.1" }));
    const rpcRefusal = await typed.updateAccountSettings({ onExhausted: "stop" }, { headers: { "x-api-key": memberKey } }).then(() => undefined, (error: unknown) => error);
    assert.ok(rpcRefusal instanceof ConnectError);
    assert.deepEqual([rpcRefusal.code, reasonOf(rpcRefusal)], [Code.PermissionDenied, "role_forbidden"]);
    assert.equal(((await (await settings(memberKey)).json()) as { on_exhausted: string }).on_exhausted, "overage", "a member still reads them; nothing changed");
    assert.equal((await settings(ownerKey, { on_exhausted: "stop" })).status, 200);
    assert.equal((await typed.updateAccountSettings({ retentionHours: 2 }, { headers: { "x-api-key": adminKey } })).settings?.retentionHours, 2);
    assert.deepEqual(await (await settings(ownerKey)).json(), { retention_hours: 2, zero_retention: false, on_exhausted: "stop", on_exhausted_is_plan_default: false });
  });

  it("credits.low and credits.exhausted land in the email outbox once, to the owner's email; the admin CLI lists them and marks them sent", async () => {
    const created = await cliJson(["create-account", "--plan", "free", "--account", "notified", "--credits", "3", "--email", "ada@example.com"]);
    assert.equal(created.accountId, "notified");
    const account = await billing.ledger.getAccount("notified");
    assert.ok(account.ok);
    assert.deepEqual(account.account.members.map((member) => [member.memberId, member.role, member.email]), [["owner", "owner", "ada@example.com"]]);
    // 3 credits: spending 2 crosses the free plan's 2-credit threshold, the last 1 exhausts them.
    for (const [amount, key] of [[2_000, "low"], [1_000, "out"]] as const) {
      const hold = await billing.ledger.reserve({ accountId: "notified", pool: "api", amountMillicredits: amount, idempotencyKey: key });
      assert.ok(hold.ok);
      assert.ok((await billing.ledger.capture(hold.holdId, amount)).ok);
    }
    await billing.sweeper.sweepOnce(); // relays billing's outbox onto the bus
    let listed: Record<string, any> = {};
    for (let attempt = 0; attempt < 50; attempt += 1) {
      listed = await cliJson(["outbox"]);
      if (listed.emails.filter((email: { accountId: string }) => email.accountId === "notified").length >= 2) break;
      await new Promise((resolve) => setTimeout(resolve, 100));
    }
    const mine = (listed.emails as { id: string; accountId: string; kind: string; recipient: string; subject: string; sentAt: string | null }[]).filter((email) => email.accountId === "notified");
    assert.deepEqual(mine.map((email) => [email.kind, email.recipient, email.sentAt]).sort(), [["credits.exhausted", "ada@example.com", null], ["credits.low", "ada@example.com", null]]);
    const marked = await cliJson(["outbox", "--mark-sent", mine[0]!.id]);
    assert.equal(marked.id, mine[0]!.id);
    assert.ok(marked.sentAt, "marked sent");
    const left = (await cliJson(["outbox"])).emails.filter((email: { accountId: string }) => email.accountId === "notified");
    assert.deepEqual(left.map((email: { id: string }) => email.id), [mine[1]!.id], "a sent email leaves the default listing");
    assert.equal((await cliJson(["outbox", "--all"])).emails.filter((email: { accountId: string }) => email.accountId === "notified").length, 2);
  });
});
