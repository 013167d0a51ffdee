// The public API's reads, limits, error bodies and reference: the gateway on a real server
// (port 0) in front of real billing and orchestrator (test database, in-process queue, bus and
// blob store). No inference worker runs: the monthly quota is spent by calls the gateway admits
// and then refuses, and usage comes from holds captured through billing itself. Quote equals
// the captured amount of a real job in test/public-api.single-node.spec.ts.
import { Code, ConnectError, createClient, createRouterTransport, type Client } from "@connectrpc/connect";
import { createConnectTransport } from "@connectrpc/connect-node";
import assert from "node:assert/strict";
import http from "node:http";
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { after, before, describe, it } from "node:test";
import type { Kysely } from "kysely";
import pino from "pino";
import sharp from "sharp";
import { createBillingFixture, type BillingFixture } from "../services/billing/billing.testing.ts";
import { InProcessBlobStore, InProcessEventBus, InProcessWorkQueue } from "../services/common/adapters/index.ts";
import { BillingService, Pool } from "../services/common/gen/cutline/billing/v1/billing_service_pb.ts";
import { AccountService, QuoteOperation, QuoteSize } from "../services/common/gen/cutline/gateway/v1/account_service_pb.ts";
import { JobService } from "../services/common/gen/cutline/gateway/v1/job_service_pb.ts";
import { OrchestratorService } from "../services/common/gen/cutline/orchestrator/v1/orchestrator_service_pb.ts";
import { HealthRegistry } from "../services/common/health.ts";
import { imageLimitsOf } from "../services/common/images/image-limits.ts";
import { createUploadInspector } from "../services/common/images/upload.inspector.ts";
import { startServiceServer, type ServiceServer } from "../services/common/server.ts";
import { createOrchestrator, type Orchestrator } from "../services/orchestrator/index.ts";
import { loadGatewayConfig } from "../services/gateway/gateway.config.ts";
import { createGateway, type Gateway, type GatewayDependencies } from "../services/gateway/index.ts";
import { documentedRoutes, OPENAPI_DOCUMENT } from "../services/gateway/openapi.ts";
import { createOutboundFetcher, outboundPolicyOf, type OutboundFetcher } from "../services/common/outbound.ts";
import { postHeadersOnly } from "./harness.ts";
import { addTinyQuotaPlan, TINY_QUOTA_CALLS, TINY_QUOTA_PLAN } from "./public-api.testing.ts";

/**
 * Routes the document describes that other branches of issue 9 add (async jobs, batches, smart
 * crop, result URLs). Each must be absent from the route table: once one lands, this test fails
 * until it is taken off the list, so the list only ever shrinks to empty.
 */
const DOCUMENTED_BEFORE_SERVED = new Set<string>([]);

interface RestError {
  title: string;
  code: string;
  detail: string;
}

describe("public API: quote, balance, usage, monthly quota, error bodies, OpenAPI and /docs", () => {
  let billing: BillingFixture;
  let billingClient: Client<typeof BillingService>;
  let orchestrator: Orchestrator;
  let gateway: Gateway;
  let server: ServiceServer;
  let blobs: InProcessBlobStore;
  let workQueue: InProcessWorkQueue;
  let eventBus: InProcessEventBus;
  let dependencies: GatewayDependencies;
  let outbound: OutboundFetcher;
  const dataDir = mkdtempSync(join(tmpdir(), "cutline-public-api-"));
  const log = pino({ level: "silent" });
  let serial = 0;

  async function account(planCode = ""): Promise<{ accountId: string; key: string; keyId: string }> {
    serial += 1;
    const accountId = `public-api-${serial}`;
    const key = await gateway.provisionAccount(accountId, { planCode });
    const owner = await gateway.apiKeys.find(key);
    return { accountId, key, keyId: owner!.keyId };
  }

  async function getJson(path: string, key: string, headers: Record<string, string> = {}) {
    const response = await fetch(`${server.url}${path}`, { headers: { "x-api-key": key, ...headers } });
    return { status: response.status, headers: response.headers, body: (await response.json()) as Record<string, any> };
  }

  async function quote(key: string | undefined, body: unknown) {
    const response = await fetch(`${server.url}/v1/quote`, {
      method: "POST",
      headers: { "content-type": "application/json", ...(key ? { "x-api-key": key } : {}) },
      body: typeof body === "string" ? body : JSON.stringify(body),
    });
    return { status: response.status, body: (await response.json()) as Record<string, any> };
  }

  function onlyError(body: unknown): RestError {
    const errors = (body as { errors?: RestError[] }).errors;
    assert.equal(errors?.length, 1, JSON.stringify(body));
    const [error] = errors!;
    for (const field of ["title", "code", "detail"] as const) assert.equal(typeof error![field], "string", `${field} in ${JSON.stringify(error)}`);
    return error!;
  }

  before(async () => {
    billing = await createBillingFixture();
    // The gateway reads the cycle against the wall clock: billing's clock starts there too.
    billing.clock.set(new Date());
    await addTinyQuotaPlan(billing.db as Kysely<any>);
    blobs = new InProcessBlobStore({ dataDir, log });
    workQueue = new InProcessWorkQueue({ log });
    eventBus = new InProcessEventBus({ dataDir, log });
    billingClient = createClient(BillingService, createRouterTransport((router) => router.service(BillingService, billing.handlers)));
    orchestrator = createOrchestrator({ db: billing.db as Kysely<any>, workQueue, eventBus, blobStore: blobs, billing: billingClient, log });
    await orchestrator.start();
    // The outbound variables at their defaults: CUTLINE_OUTBOUND_ALLOW_LOOPBACK is false.
    const outboundPolicy = outboundPolicyOf(loadGatewayConfig({}));
    outbound = createOutboundFetcher(outboundPolicy);
    dependencies = {
      db: billing.db as Kysely<any>,
      blobStore: blobs,
      billing: billingClient,
      orchestrator: createClient(OrchestratorService, createRouterTransport(orchestrator.routes)),
      inspect: createUploadInspector(imageLimitsOf(loadGatewayConfig({}))),
      log,
      limits: { uploadBytesMax: 1_000_000, syncTimeoutMs: 60_000, holdTtlSeconds: 900, longestSide: { standard: 2048, pro: 4096 }, readRequestsPerMinute: 1000 },
      outbound: { fetcher: outbound, policy: outboundPolicy },
    };
    gateway = createGateway(dependencies);
    await gateway.start();
    server = await startServiceServer({ name: "gateway", host: "127.0.0.1", port: 0, log, health: new HealthRegistry(), routes: gateway.routes, httpRoutes: gateway.httpRoutes, admit: gateway.admit });
  });

  after(async () => {
    await server?.close();
    await outbound?.close();
    await orchestrator?.stop();
    await Promise.all([workQueue?.close(), blobs?.close(), eventBus?.close()]);
    await billing?.dispose();
    rmSync(dataDir, { recursive: true, force: true });
  });

  describe("POST /v1/quote", () => {
    it("prices each operation exactly, in decimal credits, at the size the call would process", async () => {
      const { key } = await account();
      assert.deepEqual(await quote(key, { operation: "matting", width: 64, height: 64 }), { status: 200, body: { credits: 0.5, price_book_version: "2026-11-27-seeds" } });
      assert.equal((await quote(key, { operation: "matting", width: 64, height: 64, size: "hd" })).body.credits, 1, "HD is twice the standard price");
      assert.equal((await quote(key, { operation: "matting", width: 64, height: 64, size: "preview", quality: 80 })).body.credits, 0.5);
      // A typical photo: 1 credit.
      assert.equal((await quote(key, { operation: "matting", width: 4000, height: 3000 })).body.credits, 1);
      // Video: 3 credits per started second up to 720p (2.5 s -> 3 s); HD does not change a video's price.
      assert.equal((await quote(key, { operation: "video_matting", width: 640, height: 360, seconds: 2.5, size: "hd" })).body.credits, 9);
    });

    it("refuses unknown operations, sizes and bad fields with 400 naming the field", async () => {
      const { key } = await account();
      const cases: [unknown, RegExp][] = [
        [{ operation: "teleport", width: 64, height: 64 }, /^operation: must be one of matting, smart_crop, video_matting, got "teleport"/],
        [{ width: 64, height: 64 }, /^operation: must be one of/],
        [{ operation: "matting", width: 64, height: 64, size: "huge" }, /^size: must be one of preview, full, hd, got "huge"/],
        [{ operation: "matting", height: 64 }, /^width: must be a non-negative integer and is required/],
        [{ operation: "matting", width: 64, height: 0 }, /^height: must be an integer from 1 to 100000 pixels/],
        [{ operation: "matting", width: 64.5, height: 64 }, /^width: /],
        [{ operation: "matting", width: 64, height: 64, quality: 101 }, /^quality: must be an integer from 1 to 100/],
        [{ operation: "video_matting", width: 64, height: 64 }, /^seconds: must be a number of seconds above 0/],
      ];
      for (const [body, message] of cases) {
        const answer = await quote(key, body);
        assert.equal(answer.status, 400, JSON.stringify(body));
        const error = onlyError(answer.body);
        assert.equal(error.code, "invalid_option");
        assert.match(error.title, message);
      }
      const tooLong = await quote(key, { operation: "matting", width: 64, height: 64, padding: "x".repeat(20_000) });
      assert.equal(tooLong.status, 413);
      assert.match(onlyError(tooLong.body).title, /a JSON body is limited to 16384 bytes/);
      const notJson = await quote(key, "{not json");
      assert.equal(notJson.status, 400);
      assert.equal(onlyError(notJson.body).code, "invalid_request");
      const unauthenticated = await quote(undefined, { operation: "matting", width: 64, height: 64 });
      assert.equal(unauthenticated.status, 401);
      assert.equal(onlyError(unauthenticated.body).code, "missing_api_key");
    });

    it("smart_crop is priced flat: 1.3 credits an image, 2.6 in HD, whatever its size", async () => {
      const { key } = await account();
      assert.deepEqual(await quote(key, { operation: "smart_crop", width: 64, height: 64 }), { status: 200, body: { credits: 1.3, price_book_version: "2026-11-27-seeds" } });
      assert.equal((await quote(key, { operation: "smart_crop", width: 4000, height: 3000 })).body.credits, 1.3);
      assert.equal((await quote(key, { operation: "smart_crop", width: 64, height: 64, size: "hd" })).body.credits, 2.6);
    });

    it("with the operation's own body (a form or a raw image) it prices that call exactly, holding nothing", async () => {
      const { accountId, key } = await account();
      const photo = new Uint8Array(await sharp({ create: { width: 4000, height: 3000, channels: 3, background: "#808080" } }).jpeg().toBuffer());
      const before = await billingClient.getBalance({ accountId, pool: Pool.API });
      const post = async (body: FormData | Uint8Array, query = "", headers: Record<string, string> = {}) => {
        const response = await fetch(`${server.url}/v1/quote${query}`, { method: "POST", headers: { "x-api-key": key, ...headers }, body });
        return { status: response.status, body: (await response.json()) as Record<string, any> };
      };
      const form = (fields: Record<string, string>) => {
        const data = new FormData();
        data.append("image_file", new Blob([photo], { type: "image/jpeg" }), "photo.jpg");
        for (const [name, value] of Object.entries(fields)) data.append(name, value);
        return data;
      };
      // The same amounts as the sizes named in JSON: 4000x3000 is processed at 2048x1536.
      assert.deepEqual(await post(form({})), { status: 200, body: { credits: 1, price_book_version: "2026-11-27-seeds" } });
      assert.equal((await post(form({ size: "hd" }))).body.credits, (await quote(key, { operation: "matting", width: 4000, height: 3000, size: "hd" })).body.credits);
      assert.equal((await post(form({ operation: "smart_crop", aspect_ratio: "1:1" }))).body.credits, 1.3);
      assert.equal((await post(photo, "?operation=smart_crop", { "content-type": "image/jpeg" })).body.credits, 1.3);
      const badOption = await post(form({ bg_color: "blue-ish" }));
      assert.equal(badOption.status, 400);
      assert.equal(onlyError(badOption.body).code, "invalid_option");
      const badOperation = await post(form({ operation: "teleport" }));
      assert.equal(badOperation.status, 400);
      assert.match(onlyError(badOperation.body).title, /^operation must be one of matting, smart_crop/);
      const notAnImage = await post(new Uint8Array(64).fill(7), "", { "content-type": "image/png" });
      assert.equal(notAnImage.status, 400);
      const after = await billingClient.getBalance({ accountId, pool: Pool.API });
      assert.deepEqual([after.availableMillicredits, after.heldMillicredits], [before.availableMillicredits, before.heldMillicredits], "a quote holds and charges nothing");
    });

    it("AccountService.Quote answers the same amount in millicredits, for the caller's key only", async () => {
      const { key } = await account();
      const accounts = createClient(AccountService, createConnectTransport({ baseUrl: server.url, httpVersion: "1.1" }));
      const answer = await accounts.quote({ operation: QuoteOperation.MATTING, width: 4000, height: 3000, size: QuoteSize.FULL }, { headers: { "x-api-key": key } });
      assert.equal(answer.costMillicredits, 1000n, "a typical photo: 1 credit");
      await assert.rejects(accounts.quote({ operation: QuoteOperation.MATTING, width: 1, height: 1 }), (error: unknown) => error instanceof ConnectError && error.code === Code.Unauthenticated);
    });
  });

  describe("GET /v1/credit/balance and GET /v1/usage", () => {
    it("the balance: available and held in decimal credits, buckets with expiry, and what it buys", async () => {
      const { accountId, key } = await account();
      const fresh = await getJson("/v1/credit/balance", key);
      assert.equal(fresh.status, 200);
      assert.equal(fresh.body.available_credits, 10);
      assert.equal(fresh.body.held_credits, 0);
      assert.equal(fresh.body.buckets.length, 1);
      const [trial] = fresh.body.buckets;
      assert.deepEqual([trial.kind, trial.granted_credits, trial.remaining_credits, trial.held_credits], ["trial", 10, 10, 0]);
      assert.ok(Date.parse(trial.expires_at) > Date.now(), `the trial expires in the future: ${trial.expires_at}`);
      const matting = fresh.body.affordable.find((row: { operation: string; description: string }) => row.operation === "matting" && /0\.25 MP/.test(row.description));
      assert.equal(matting?.count, 20, JSON.stringify(fresh.body.affordable));
      const counts = Object.fromEntries(fresh.body.affordable.map((row: { description: string; count: number }) => [row.description, row.count]));
      assert.equal(counts["upscaling, image, up to 67.11 MP"], 5, "10 credits buy 5 upscales at 2 credits");
      assert.equal(counts["smart crop, image, up to 67.11 MP"], 7);
      assert.equal(counts["background removal, video per started second, quality best, 1 s"], 2, "2 seconds of video at best (5 credits each)");
      // A call in progress holds 1.3 credits: shown exactly, never as 1.2999999.
      await billingClient.reserve({ accountId, pool: Pool.API, amountMillicredits: 1300n, idempotencyKey: `held-${accountId}`, holdTtlSeconds: 900 });
      const holding = await getJson("/v1/credit/balance", key);
      assert.deepEqual([holding.body.available_credits, holding.body.held_credits, holding.body.buckets[0].held_credits], [8.7, 1.3, 1.3]);
      const raw = await (await fetch(`${server.url}/v1/credit/balance`, { headers: { "x-api-key": key } })).text();
      assert.match(raw, /"available_credits":8\.7,"held_credits":1\.3,/);
      const typed = await createClient(AccountService, createConnectTransport({ baseUrl: server.url, httpVersion: "1.1" })).getBalance({}, { headers: { "x-api-key": key } });
      assert.deepEqual([typed.availableMillicredits, typed.heldMillicredits], [8700n, 1300n]);
    });

    it("usage per day, API key and member, as JSON and as CSV", async () => {
      const { accountId, key, keyId } = await account();
      const capture = async (index: number, millicredits: bigint) => {
        const hold = await billingClient.reserve({ accountId, pool: Pool.API, amountMillicredits: millicredits, idempotencyKey: `usage-${accountId}-${index}`, apiKeyId: keyId });
        await billingClient.capture({ holdId: hold.holdId, amountMillicredits: millicredits });
      };
      await capture(1, 250n);
      await capture(2, 1300n);
      const today = new Date().toISOString().slice(0, 10);
      const usage = await getJson("/v1/usage", key);
      assert.equal(usage.status, 200);
      assert.deepEqual(usage.body.rows, [{ date: today, api_key_id: keyId, member_id: "", calls: 2, credits: 1.55 }]);
      assert.deepEqual(usage.body.days, [{ date: today, calls: 2, credits: 1.55 }]);
      assert.deepEqual(usage.body.api_keys, [{ api_key_id: keyId, calls: 2, credits: 1.55 }]);
      assert.deepEqual(usage.body.members, [{ member_id: "", calls: 2, credits: 1.55 }]);
      assert.equal(usage.body.cycle.monthly_calls_max, 500, "the free plan's quota");
      assert.ok(Date.parse(usage.body.cycle.ends_at) > Date.parse(usage.body.cycle.started_at));
      const csv = await fetch(`${server.url}/v1/usage`, { headers: { "x-api-key": key, accept: "text/csv" } });
      assert.equal(csv.status, 200);
      assert.match(csv.headers.get("content-type") ?? "", /^text\/csv/);
      assert.equal(await csv.text(), `date,api_key_id,member_id,calls,credits\r\n${today},${keyId},,2,1.55\r\n`);
      const typed = await createClient(AccountService, createConnectTransport({ baseUrl: server.url, httpVersion: "1.1" })).listUsage({}, { headers: { "x-api-key": key } });
      assert.deepEqual(typed.rows.map((row) => [row.date, row.apiKeyId, row.calls, row.capturedMillicredits]), [[today, keyId, 2n, 1550n]]);
    });

    it("another account's usage is never shown: each key reads only its own account", async () => {
      const { key } = await account();
      const usage = await getJson("/v1/usage", key);
      assert.deepEqual(usage.body.rows, []);
    });
  });

  describe("the monthly call quota", () => {
    const notAnImage = () => {
      const form = new FormData();
      form.append("image_file", new Blob([new TextEncoder().encode("%PDF-1.7 not an image")]), "page.pdf");
      return form;
    };

    it("counts every admitted call; past the quota: 429 monthly_quota_exceeded with Retry-After to the cycle's renewal, kept across a gateway restart", async () => {
      const { key } = await account(TINY_QUOTA_PLAN);
      for (let index = 0; index < TINY_QUOTA_CALLS; index++) {
        const response = await fetch(`${server.url}/v1/matting`, { method: "POST", headers: { "x-api-key": key }, body: notAnImage() });
        assert.equal(response.status, 400, "a refused call still counts");
      }
      const limited = await fetch(`${server.url}/v1/matting`, { method: "POST", headers: { "x-api-key": key }, body: notAnImage() });
      assert.equal(limited.status, 429);
      const error = onlyError(await limited.json());
      assert.equal(error.code, "monthly_quota_exceeded");
      assert.match(error.title, new RegExp(`allows ${TINY_QUOTA_CALLS} calls per billing cycle and they are used up; the quota resets at \\d{4}-`));
      const usage = await getJson("/v1/usage", key);
      const secondsToRenewal = (Date.parse(usage.body.cycle.ends_at) - Date.now()) / 1000;
      const retryAfter = Number(limited.headers.get("retry-after"));
      assert.ok(Math.abs(retryAfter - secondsToRenewal) < 30, `Retry-After ${retryAfter} s, renewal in ${secondsToRenewal} s`);
      assert.ok(retryAfter > 27 * 24 * 3600, "a fresh cycle renews in about a month");
      assert.deepEqual([usage.body.cycle.calls, usage.body.cycle.monthly_calls_max], [TINY_QUOTA_CALLS, TINY_QUOTA_CALLS]);

      // Typed RPCs count against the same quota.
      const jobs = createClient(JobService, createConnectTransport({ baseUrl: server.url, httpVersion: "1.1" }));
      await assert.rejects(jobs.submit({ image: new Uint8Array([1, 2, 3]) }, { headers: { "x-api-key": key } }), (rejection: unknown) => {
        assert.ok(rejection instanceof ConnectError);
        assert.equal(rejection.code, Code.ResourceExhausted);
        assert.equal(rejection.metadata.get("cutline-reason"), "monthly_quota_exceeded");
        return true;
      });

      // A new gateway on the same database (a restart, or another replica) knows the count.
      const restarted = createGateway(dependencies);
      await restarted.start();
      const second = await startServiceServer({ name: "gateway-2", host: "127.0.0.1", port: 0, log, health: new HealthRegistry(), routes: restarted.routes, httpRoutes: restarted.httpRoutes, admit: restarted.admit });
      try {
        const again = await fetch(`${second.url}/v1/matting`, { method: "POST", headers: { "x-api-key": key }, body: notAnImage() });
        assert.equal(again.status, 429);
        assert.equal(onlyError(await again.json()).code, "monthly_quota_exceeded");
      } finally {
        await second.close();
      }
    });

    it("a new cycle starts the count again", async () => {
      const { accountId, key } = await account(TINY_QUOTA_PLAN);
      for (let index = 0; index <= TINY_QUOTA_CALLS; index++) await fetch(`${server.url}/v1/matting`, { method: "POST", headers: { "x-api-key": key }, body: notAnImage() });
      // A plan change restarts the cycle now (billing's rule), as a renewal does.
      billing.clock.advanceMs(1000);
      await billingClient.changePlan({ accountId, planCode: TINY_QUOTA_PLAN });
      const response = await fetch(`${server.url}/v1/matting`, { method: "POST", headers: { "x-api-key": key }, body: notAnImage() });
      assert.equal(response.status, 400, "admitted again, refused only for its body");
      assert.equal((await getJson("/v1/usage", key)).body.cycle.calls, 1);
    });
  });

  describe("one error shape on every native route", () => {
    it("an unknown path answers 404 not_found; a wrong method 405 method_not_allowed with Allow", async () => {
      const missing = await fetch(`${server.url}/v1/nothing-here`, { headers: { "x-api-key": "whatever" } });
      assert.equal(missing.status, 404);
      assert.deepEqual(onlyError(await missing.json()), { title: "not found", code: "not_found", detail: "no route for GET /v1/nothing-here; the routes are listed at /openapi.json" });
      const wrongMethod = await fetch(`${server.url}/v1/quote`);
      assert.equal(wrongMethod.status, 405);
      assert.equal(wrongMethod.headers.get("allow"), "POST");
      assert.deepEqual(onlyError(await wrongMethod.json()), { title: "GET is not allowed on /v1/quote; use POST", code: "method_not_allowed", detail: "GET is not allowed on /v1/quote; use POST" });
      const deleteMatting = await fetch(`${server.url}/v1/matting`, { method: "DELETE" });
      assert.equal(deleteMatting.status, 405);
      assert.equal(onlyError(await deleteMatting.json()).code, "method_not_allowed");
    });

    it("a byte limit answers 413 naming it, before the body is sent", async () => {
      const { key } = await account();
      const answer = await postHeadersOnly(`${server.url}/v1/matting`, { "x-api-key": key, "content-type": "multipart/form-data; boundary=b" }, 5_000_000);
      assert.equal(answer.status, 413);
      const error = onlyError(JSON.parse(answer.body));
      assert.equal(error.code, "too_many_bytes");
      assert.match(error.title, /declares 5000000 bytes; the limit is \d+ bytes \(UPLOAD_BYTES_MAX 1000000/);
    });
  });

  describe("image_url with the outbound variables at their defaults", () => {
    let images: http.Server;
    let origin = "";
    const seen: string[] = [];

    before(async () => {
      images = http.createServer((request, response) => {
        seen.push(request.url ?? "");
        response.writeHead(200, { "content-type": "image/png" }).end("not reached");
      });
      await new Promise<void>((resolve) => images.listen(0, "127.0.0.1", resolve));
      origin = `http://127.0.0.1:${(images.address() as import("node:net").AddressInfo).port}`;
    });

    after(async () => {
      images?.closeAllConnections();
      await new Promise((resolve) => images?.close(resolve));
    });

    const post = (key: string, init: { body: RequestInit["body"]; headers?: Record<string, string> }, query = "") =>
      fetch(`${server.url}/v1/matting${query}`, { method: "POST", headers: { "x-api-key": key, ...init.headers }, body: init.body });
    const asJson = (body: unknown) => ({ body: JSON.stringify(body), headers: { "content-type": "application/json" } });

    it("a loopback image_url is refused (image_url_refused) when CUTLINE_OUTBOUND_ALLOW_LOOPBACK is off: no request leaves, nothing is held or charged", async () => {
      const { accountId, key } = await account();
      const port = new URL(origin).port;
      for (const url of [`${origin}/photo.png`, `http://localhost:${port}/photo.png`, `http://[::1]:${port}/photo.png`]) {
        const response = await post(key, asJson({ image_url: url }));
        assert.equal(response.status, 400, url);
        const error = onlyError(await response.json());
        assert.equal(error.code, "image_url_refused");
        assert.match(error.title, /^image_url: .* a loopback address; outbound fetches may reach public addresses only \(CUTLINE_OUTBOUND_ALLOW_LOOPBACK=true allows loopback\)$/);
      }
      const batch = await fetch(`${server.url}/v1/matting/batch`, { method: "POST", headers: { "x-api-key": key, "content-type": "application/json" }, body: JSON.stringify({ image_urls: [`${origin}/a.png`] }) });
      assert.equal(batch.status, 202);
      const item = ((await batch.json()) as { items: { job: unknown; error: { code: string } | null }[] }).items[0]!;
      assert.deepEqual([item.job, item.error?.code], [null, "image_url_refused"]);
      assert.deepEqual(seen, [], "no request reached the server");
      const balance = await billingClient.getBalance({ accountId, pool: Pool.API });
      assert.deepEqual([balance.availableMillicredits, balance.heldMillicredits], [10_000n, 0n]);
    });

    it("image_url must be an absolute http(s) URL; a file and a URL together, or neither, is refused naming both fields", async () => {
      let { key } = await account();
      const cases: [Parameters<typeof post>[1], string, number, RegExp, string?][] = [
        [asJson({ image_url: "ftp://example.com/a.png" }), "image_url_invalid", 400, /^image_url: the URL must be http or https, not ftp$/],
        [asJson({ image_url: "photo.png" }), "image_url_invalid", 400, /^image_url: the URL is not an absolute URL$/],
        [asJson({ image_url: `https://example.com/${"a".repeat(2100)}` }), "image_url_invalid", 400, /limit is 2048/],
        [asJson({ image_url: "http://10.0.0.1/a.png" }), "image_url_refused", 400, /10\.0\.0\.1, a private address/],
        [asJson({ size: "full" }), "missing_image", 400, /neither image_file nor image_url/],
        [asJson({ image_url: { nested: true } }), "invalid_option", 400, /image_url must be a string, number or boolean/],
        [asJson({ image_url: "https://example.com/a.png", size: "huge" }), "invalid_option", 400, /size must be one of/],
        [{ body: "[1]", headers: { "content-type": "application/json" } }, "invalid_request", 400, /not a JSON object/],
        [{ body: "x".repeat(20_000), headers: { "content-type": "application/json" } }, "too_many_bytes", 413, /limited to 16384 bytes/],
        [{ body: new Uint8Array([1, 2, 3]), headers: { "content-type": "image/png" } }, "conflicting_image_inputs", 400, /^send either the raw image body or image_url, not both$/, "?image_url=https%3A%2F%2Fexample.com%2Fa.png"],
        [{ body: "" }, "invalid_request", 400, /or its URL in image_url/],
      ];
      const both = new FormData();
      both.append("image_file", new Blob([new Uint8Array([1, 2, 3])]), "a.png");
      both.append("image_url", "https://example.com/a.png");
      cases.push([{ body: both }, "conflicting_image_inputs", 400, /^send either image_file or image_url, not both$/]);
      const backgrounds = new FormData();
      backgrounds.append("image_url", "https://example.com/a.png");
      backgrounds.append("bg_image_file", new Blob([new Uint8Array([1, 2, 3])]), "b.png");
      backgrounds.append("bg_image_url", "https://example.com/b.png");
      cases.push([{ body: backgrounds }, "conflicting_image_inputs", 400, /^send either bg_image_file or bg_image_url, not both$/]);
      cases.push([{ body: new URLSearchParams({ image_url: "gopher://example.com/" }) }, "image_url_invalid", 400, /not gopher/]);
      for (const [index, [init, code, status, title, query]] of cases.entries()) {
        // The free plan's requests per minute: a fresh account every few calls.
        if (index % 5 === 4) key = (await account()).key;
        const response = await post(key, init, query);
        const error = onlyError(await response.json());
        assert.deepEqual([response.status, error.code], [status, code], `${String(init.body).slice(0, 80)}: ${error.title}`);
        assert.match(error.title, title);
      }
    });
  });

  describe("GET /openapi.json and GET /docs", () => {
    it("the document is OpenAPI 3.1, served as JSON, and well-formed: refs resolve, path parameters are declared, ids are unique", async () => {
      const response = await fetch(`${server.url}/openapi.json`);
      assert.equal(response.status, 200);
      assert.equal(response.headers.get("content-type"), "application/json");
      const document = (await response.json()) as typeof OPENAPI_DOCUMENT;
      assert.deepEqual(document, JSON.parse(JSON.stringify(OPENAPI_DOCUMENT)));
      assert.equal(document.openapi, "3.1.0");
      assert.ok(document.info.title && document.info.version);
      const problems: string[] = [];
      const resolve = (pointer: string) => pointer.slice(2).split("/").reduce<any>((node, part) => node?.[part], document);
      JSON.stringify(document, (key, value) => {
        if (key === "$ref" && (typeof value !== "string" || !value.startsWith("#/") || resolve(value) === undefined)) problems.push(`unresolved $ref ${value}`);
        return value;
      });
      const operationIds = new Set<string>();
      for (const [path, item] of Object.entries(document.paths)) {
        const templated = [...path.matchAll(/\{(\w+)\}/g)].map((match) => match[1]);
        for (const [method, operation] of Object.entries(item)) {
          if (!operation) continue;
          if (operationIds.has(operation.operationId)) problems.push(`operationId ${operation.operationId} twice`);
          operationIds.add(operation.operationId);
          if (Object.keys(operation.responses).length === 0) problems.push(`${method} ${path} has no responses`);
          for (const status of Object.keys(operation.responses)) if (!/^[1-5]\d\d$/.test(status)) problems.push(`${method} ${path}: status ${status}`);
          const declared = (operation.parameters ?? []).map((parameter) => ("$ref" in parameter ? resolve(parameter.$ref) : parameter)).filter((parameter) => parameter.in === "path").map((parameter) => parameter.name);
          if (templated.join() !== declared.join()) problems.push(`${method} ${path}: path parameters ${declared} for ${templated}`);
        }
      }
      assert.deepEqual(problems, []);
    });

    it("documents every route the gateway serves, and serves every route it documents", () => {
      const served = new Set(gateway.restRoutes.map((route) => `${route.method} ${route.path}`));
      const documented = new Set(documentedRoutes().map((route) => `${route.method} ${route.path}`));
      assert.deepEqual([...served].filter((route) => !documented.has(route)), [], "served but not in services/gateway/openapi.ts");
      assert.deepEqual([...documented].filter((route) => !served.has(route) && !DOCUMENTED_BEFORE_SERVED.has(route)), [], "documented but not served");
      assert.deepEqual([...DOCUMENTED_BEFORE_SERVED].filter((route) => served.has(route)), [], "now served: take it off DOCUMENTED_BEFORE_SERVED");
      assert.deepEqual([...DOCUMENTED_BEFORE_SERVED].filter((route) => !documented.has(route)), [], "on DOCUMENTED_BEFORE_SERVED but not documented");
    });

    it("/docs is Swagger UI from the installed package, under a Content-Security-Policy, pointed at /openapi.json", async () => {
      const page = await fetch(`${server.url}/docs`);
      assert.equal(page.status, 200);
      assert.match(page.headers.get("content-type") ?? "", /^text\/html/);
      const policy = page.headers.get("content-security-policy") ?? "";
      assert.match(policy, /default-src 'none'/);
      assert.match(policy, /script-src 'self'(;|$)/);
      const html = await page.text();
      const assets = [...html.matchAll(/(?:src|href)="(\/docs\/[^"]+)"/g)].map((match) => match[1]!);
      assert.deepEqual(assets.sort(), ["/docs/favicon-32x32.png", "/docs/initializer.js", "/docs/swagger-ui-bundle.js", "/docs/swagger-ui-standalone-preset.js", "/docs/swagger-ui.css"]);
      assert.doesNotMatch(html, /<script>(?!<\/script>)/, "no inline script");
      for (const asset of assets) {
        const response = await fetch(`${server.url}${asset}`);
        assert.equal(response.status, 200, asset);
        assert.ok((await response.arrayBuffer()).byteLength > 0, asset);
      }
      const bundle = await fetch(`${server.url}/docs/swagger-ui-bundle.js`);
      assert.match(bundle.headers.get("content-type") ?? "", /^text\/javascript/);
      assert.match(await bundle.text(), /SwaggerUIBundle/);
      assert.match(await (await fetch(`${server.url}/docs/initializer.js`)).text(), /url: "\/openapi\.json"/);
      for (const outside of ["/docs/package.json", "/docs/..%2Fpackage.json", "/docs/index.html"]) {
        const response = await fetch(`${server.url}${outside}`);
        assert.equal(response.status, 404, outside);
        assert.equal(onlyError(await response.json()).code, "not_found");
      }
    });
  });
});
