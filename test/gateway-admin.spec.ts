// The admin API's refunds and limits on a real gateway (port 0) in front of real billing and
// orchestrator. No inference worker runs: submitted jobs stay queued and uncharged, which is
// what a refusal to refund needs.
import { createClient, createRouterTransport } from "@connectrpc/connect";
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
import { JobService } from "../services/common/gen/cutline/gateway/v1/job_service_pb.ts";
import { KeyService } from "../services/common/gen/cutline/gateway/v1/key_service_pb.ts";
import { OrchestratorService } from "../services/common/gen/cutline/orchestrator/v1/orchestrator_service_pb.ts";
import { HealthRegistry } from "../services/common/health.ts";
import { imageLimitsOf } from "../services/common/images/image-limits.ts";
import { createUploadInspector } from "../services/common/images/upload.inspector.ts";
import { startServiceServer, type ServiceServer } from "../services/common/server.ts";
import { loadGatewayConfig } from "../services/gateway/gateway.config.ts";
import { ACTIVE_KEYS_PER_ACCOUNT_MAX } from "../services/gateway/handlers/key.handlers.ts";
import { createGateway } from "../services/gateway/index.ts";
import { createOrchestrator, type Orchestrator } from "../services/orchestrator/index.ts";

const ADMIN_TOKEN = "admin-token-for-tests-0123456789abcdef";

describe("admin API on the gateway", () => {
  let billing: BillingFixture;
  let orchestrator: Orchestrator;
  let server: ServiceServer;
  let blobs: InProcessBlobStore;
  let workQueue: InProcessWorkQueue;
  let eventBus: InProcessEventBus;
  const dataDir = mkdtempSync(join(tmpdir(), "cutline-gateway-admin-"));
  const log = pino({ level: "silent" });

  async function admin(method: string, path: string, body?: unknown): Promise<{ status: number; json: any }> {
    const response = await fetch(`${server.url}/admin/v1/${path}`, {
      method,
      headers: { authorization: `Bearer ${ADMIN_TOKEN}`, "content-type": "application/json" },
      body: body === undefined ? undefined : JSON.stringify(body),
    });
    return { status: response.status, json: await response.json() };
  }

  before(async () => {
    billing = await createBillingFixture();
    blobs = new InProcessBlobStore({ dataDir, log });
    workQueue = new InProcessWorkQueue({ log });
    eventBus = new InProcessEventBus({ dataDir, log });
    const billingClient = createClient(BillingService, createRouterTransport((router) => router.service(BillingService, billing.handlers)));
    orchestrator = createOrchestrator({ db: billing.db as Kysely<any>, workQueue, eventBus, blobStore: blobs, billing: billingClient, log });
    await orchestrator.start();
    const gateway = createGateway({
      db: billing.db as Kysely<any>,
      blobStore: blobs,
      billing: billingClient,
      orchestrator: createClient(OrchestratorService, createRouterTransport(orchestrator.routes)),
      inspect: createUploadInspector(imageLimitsOf(loadGatewayConfig({}))),
      log,
      limits: { uploadBytesMax: 1_000_000, syncTimeoutMs: 60_000, holdTtlSeconds: 900, longestSide: { standard: 2048, pro: 4096 }, readRequestsPerMinute: 0, watchStreamsMax: 0 },
      adminToken: ADMIN_TOKEN,
    });
    await gateway.start();
    server = await startServiceServer({ name: "gateway", host: "127.0.0.1", port: 0, log, health: new HealthRegistry(), routes: gateway.routes, httpRoutes: gateway.httpRoutes, admit: gateway.admit });
  });

  after(async () => {
    await server?.close();
    await orchestrator?.stop();
    await Promise.all([workQueue?.close(), blobs?.close(), eventBus?.close()]);
    await billing?.dispose();
    rmSync(dataDir, { recursive: true, force: true });
  });

  it("refuses to refund a job that was not charged, and one that does not exist", async () => {
    const created = await admin("POST", "accounts", { plan: "free", accountId: "queued", credits: "3" });
    assert.equal(created.status, 201);
    const jobs = createClient(JobService, createConnectTransport({ baseUrl: server.url, httpVersion: "1.1" }));
    const photo = new Uint8Array(await sharp({ create: { width: 64, height: 48, channels: 3, background: "#3366cc" } }).png().toBuffer());
    const { job } = await jobs.submit({ image: photo }, { headers: { "x-api-key": created.json.apiKey } });
    assert.ok(job && job.creditsHeldMillicredits > 0n && job.creditsChargedMillicredits === 0n, "queued: held, not charged");
    const refused = await admin("POST", `jobs/${job.id}/refund`);
    assert.equal(refused.status, 400);
    assert.equal(refused.json.errors[0].code, "job_not_charged");
    assert.match(refused.json.errors[0].title, new RegExp(`job ${job.id} was not charged`));
    const missing = await admin("POST", "jobs/no-such-job/refund");
    assert.deepEqual([missing.status, missing.json.errors[0].code], [404, "job_not_found"]);
  });

  it("grants idempotently per Idempotency-Key and checks the grant's terms", async () => {
    await admin("POST", "accounts", { plan: "free", accountId: "grants" });
    const grant = (body: unknown, key: string) =>
      fetch(`${server.url}/admin/v1/accounts/grants/grants`, {
        method: "POST",
        headers: { authorization: `Bearer ${ADMIN_TOKEN}`, "content-type": "application/json", "idempotency-key": key },
        body: JSON.stringify(body),
      }).then(async (response) => ({ status: response.status, json: (await response.json()) as any }));
    const first = await grant({ credits: 2.5 }, "order-1");
    assert.deepEqual([first.status, first.json.availableCredits, first.json.kind], [201, 2.5, "top_up"]);
    const retried = await grant({ credits: 2.5 }, "order-1");
    assert.deepEqual([retried.status, retried.json.availableCredits], [200, 2.5], "a retry grants once");
    for (const [body, pattern] of [
      [{ credits: 0 }, /credits must be more than 0/],
      [{ credits: "abc" }, /not a decimal number of credits/],
      [{ credits: 1, kind: "refund" }, /kind must be one of top_up, promo/],
      [{ credits: 1, expiresDays: 0 }, /expiresDays must be a whole number of days from 1 to 3650/],
    ] as const) {
      const refused = await grant(body, `bad-${JSON.stringify(body)}`);
      assert.equal(refused.status, 400, JSON.stringify(body));
      assert.match(refused.json.errors[0].title, pattern);
    }
    const tooMuch = await admin("POST", "accounts", { plan: "free", accountId: "too-much", credits: 1_000_000 });
    assert.equal(tooMuch.status, 400);
    assert.match(tooMuch.json.errors[0].title, /^amount exceeds the limit of \d+ millicredits; account too-much was created without credits or a key: use grant and create-key$/);
    const wrongMethod = await admin("PUT", "accounts/grants/grants", { credits: 1 });
    assert.deepEqual([wrongMethod.status, wrongMethod.json.errors[0].code], [405, "method_not_allowed"]);
    const unknown = await admin("GET", "nothing-here");
    assert.deepEqual([unknown.status, unknown.json.errors[0].code], [404, "route_not_found"]);
  });

  it(`an account has at most ${ACTIVE_KEYS_PER_ACCOUNT_MAX} keys; revoking one makes room`, async () => {
    const created = await admin("POST", "accounts", { plan: "free", accountId: "many-keys" });
    let last = "";
    for (let index = 1; index < ACTIVE_KEYS_PER_ACCOUNT_MAX; index += 1) last = (await admin("POST", "accounts/many-keys/keys", { name: `key ${index}` })).json.keyId;
    const refused = await admin("POST", "accounts/many-keys/keys", {});
    assert.deepEqual([refused.status, refused.json.errors[0].code], [400, "key_limit_reached"]);
    const keys = createClient(KeyService, createConnectTransport({ baseUrl: server.url, httpVersion: "1.1" }));
    assert.equal((await keys.listKeys({}, { headers: { "x-api-key": created.json.apiKey } })).keys.length, ACTIVE_KEYS_PER_ACCOUNT_MAX);
    assert.deepEqual((await admin("DELETE", `keys/${last}`)).json.revoked, true);
    assert.equal((await admin("POST", "accounts/many-keys/keys", { name: "room again" })).status, 201);
  });
});
