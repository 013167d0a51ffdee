// Webhooks of job ends, end to end inside the orchestrator: real billing (test database), the
// in-process ports, the real periodic sender and outbound guard, and a real HTTP receiver on this
// machine. The signature is checked here with node:crypto alone, as a customer's server would.
import { create, toBinary } from "@bufbuild/protobuf";
import { Code, ConnectError, createClient, createRouterTransport, type Client } from "@connectrpc/connect";
import assert from "node:assert/strict";
import { createHmac, timingSafeEqual } from "node:crypto";
import { mkdtempSync, rmSync } from "node:fs";
import { createServer, type IncomingHttpHeaders, type Server } from "node:http";
import type { AddressInfo } from "node:net";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { after, before, describe, it } from "node:test";
import type { Kysely } from "kysely";
import pino from "pino";
import { createBillingFixture, type BillingFixture } from "../services/billing/billing.testing.ts";
import { InProcessBlobStore, InProcessEventBus, InProcessWorkQueue } from "../services/common/adapters/index.ts";
import { reasonOf } from "../services/common/errors.ts";
import { BillingService, Pool } from "../services/common/gen/cutline/billing/v1/billing_service_pb.ts";
import { timestampFromDate } from "@bufbuild/protobuf/wkt";
import { CreditsLowSchema } from "../services/common/gen/cutline/billing/v1/events_pb.ts";
import { TaskEventSchema, type TaskEvent } from "../services/common/gen/cutline/inference/v1/task_pb.ts";
import { OrchestratorService, WebhookDeliveryStatus } from "../services/common/gen/cutline/orchestrator/v1/orchestrator_service_pb.ts";
import { createOutboundFetcher, type OutboundFetcher } from "../services/common/outbound.ts";
import { createResultUrlSigner } from "../services/common/result-urls.ts";
import { createOrchestrator, type Orchestrator } from "../services/orchestrator/index.ts";

const log = pino({ level: "silent" });
const COST = 250;
const RESULT_URL_KEY = "k".repeat(40);
const PUBLIC_URL = "https://api.cutline.test";

interface Received {
  at: number;
  headers: IncomingHttpHeaders;
  body: string;
  path: string;
}

/** A webhook receiver: records each request and answers with the next status of `script` (then 200). */
async function startReceiver(): Promise<{ server: Server; url: string; received: Received[]; script: Map<string, number[]>; onRequest?: (request: Received) => Promise<void> }> {
  const state = { received: [] as Received[], script: new Map<string, number[]>(), onRequest: undefined as undefined | ((request: Received) => Promise<void>) };
  const server = createServer((request, response) => {
    let body = "";
    request.on("data", (chunk: Buffer) => (body += chunk.toString()));
    request.on("end", async () => {
      const entry = { at: Date.now(), headers: request.headers, body, path: request.url ?? "/" };
      await state.onRequest?.(entry);
      state.received.push(entry);
      const statuses = state.script.get(entry.path) ?? [];
      response.writeHead(statuses.shift() ?? 200).end("ok");
    });
  });
  await new Promise<void>((resolve) => server.listen(0, "127.0.0.1", resolve));
  const url = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
  return Object.assign(state, { server, url });
}

/** What a customer's server does: recompute HMAC-SHA256(secret, "<t>.<body>") and compare. */
function verifySignature(header: string | string[] | undefined, body: string, secret: string): number {
  assert.equal(typeof header, "string", "Cutline-Signature header present");
  const parts = Object.fromEntries((header as string).split(",").map((part) => part.split("=") as [string, string]));
  assert.match(parts.t ?? "", /^\d+$/);
  assert.match(parts.v1 ?? "", /^[0-9a-f]{64}$/, "lowercase hex");
  const expected = createHmac("sha256", Buffer.from(secret, "utf8")).update(`${parts.t}.${body}`).digest();
  assert.ok(timingSafeEqual(expected, Buffer.from(parts.v1!, "hex")), "signature matches");
  return Number(parts.t);
}

async function until<T>(what: string, check: () => T | undefined | Promise<T | undefined>, timeoutMs = 10_000): Promise<T> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const value = await check();
    if (value !== undefined && value !== false) return value;
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await new Promise((resolve) => setTimeout(resolve, 20));
  }
}

function event(init: Parameters<typeof create<typeof TaskEventSchema>>[1]) {
  const message: TaskEvent = create(TaskEventSchema, init);
  return { subject: `job.${message.outcome.case}`, data: toBinary(TaskEventSchema, message), deliveryCount: 1 };
}

/** An orchestrator on its own database with webhooks wired, and helpers to run jobs through it. */
async function startOrchestrator(options: { allowLoopback: boolean }) {
  const dataDir = mkdtempSync(join(tmpdir(), "cutline-webhooks-"));
  const workQueue = new InProcessWorkQueue({ log });
  const blobs = new InProcessBlobStore({ dataDir, log });
  const eventBus = new InProcessEventBus({ dataDir, log });
  // Billing publishes its events (credits.low, ...) on the bus the orchestrator reads.
  const billing: BillingFixture = await createBillingFixture({ eventBus });
  const billingClient = createClient(BillingService, createRouterTransport((router) => router.service(BillingService, billing.handlers)));
  const fetcher: OutboundFetcher = createOutboundFetcher({ allowLoopback: options.allowLoopback, timeoutMs: 2000, bytesMax: 1024 });
  const signer = createResultUrlSigner({ key: RESULT_URL_KEY, publicUrl: PUBLIC_URL, ttlSeconds: 86_400 });
  const orchestrator: Orchestrator = createOrchestrator({
    db: billing.db as Kysely<any>,
    workQueue,
    eventBus,
    blobStore: blobs,
    billing: billingClient,
    log,
    webhooks: {
      fetcher,
      resultUrlFor: (jobId) => signer.urlFor(jobId),
      // Small limits so the backoff is seen within a test: 100 ms, 200 ms, ... capped at 400 ms, for 5 s.
      options: { retryDelayMsMin: 100, retryDelayMsMax: 400, retryWindowMs: 5000, allowLoopback: options.allowLoopback, attemptTimeoutMs: 2000 },
      sendIntervalMs: 20,
    },
  });
  await orchestrator.start();
  const client: Client<typeof OrchestratorService> = createClient(OrchestratorService, createRouterTransport(orchestrator.routes));
  let serial = 0;
  return {
    billing,
    billingClient,
    orchestrator,
    client,
    signer,
    async submit(init: { webhookUrl?: string; accountId?: string } = {}) {
      serial += 1;
      const accountId = init.accountId ?? `account-${serial}`;
      await billingClient.createAccount({ accountId }).catch((error: unknown) => {
        if (!(error instanceof ConnectError && reasonOf(error) === "account_exists")) throw error;
      });
      const hold = await billingClient.reserve({ accountId, pool: Pool.API, amountMillicredits: BigInt(COST), idempotencyKey: `hold-${serial}`, holdTtlSeconds: 900 });
      const { job } = await client.submitJob({
        accountId,
        idempotencyKey: `job-${serial}`,
        inputBlobKey: `inputs/${serial}`,
        holdId: hold.holdId,
        heldMillicredits: BigInt(COST),
        webhookUrl: init.webhookUrl ?? "",
      });
      return { accountId, job: job! };
    },
    succeed(job: { id: string; resultBlobKey: string }) {
      return orchestrator.lifecycle.onTaskEvent(
        event({ jobId: job.id, outcome: { case: "succeeded", value: { resultBlobKey: job.resultBlobKey, contentType: "image/png", processingTimeMs: 37 } } }),
      );
    },
    async stop() {
      await orchestrator.stop();
      await fetcher.close();
      await Promise.all([workQueue.close(), blobs.close(), eventBus.close()]);
      await billing.assertHealthy();
      await billing.dispose();
      rmSync(dataDir, { recursive: true, force: true });
    },
  };
}

describe("webhooks (loopback receivers allowed)", () => {
  let system: Awaited<ReturnType<typeof startOrchestrator>>;
  let receiver: Awaited<ReturnType<typeof startReceiver>>;

  before(async () => {
    system = await startOrchestrator({ allowLoopback: true });
    receiver = await startReceiver();
  });

  after(async () => {
    await system?.stop();
    receiver?.server.closeAllConnections();
    await new Promise((resolve) => receiver?.server.close(resolve));
  });

  it("a succeeded job's webhook comes after its capture, signed with the account's secret, once however often the result is applied", async () => {
    const path = "/succeeded";
    let balanceWhenReceived: [bigint, bigint] | undefined;
    const { accountId, job } = await system.submit({ webhookUrl: `${receiver.url}${path}` });
    receiver.onRequest = async (request) => {
      if (request.path !== path) return;
      const balance = await system.billingClient.getBalance({ accountId, pool: Pool.API });
      balanceWhenReceived = [balance.availableMillicredits, balance.heldMillicredits];
    };
    await system.succeed(job);
    await system.succeed(job); // redelivered event: no second delivery
    const request = await until("the webhook", () => receiver.received.find((entry) => entry.path === path));
    // Captured, not held or released: the trial's 10 credits less the job's cost, nothing held.
    assert.deepEqual(balanceWhenReceived, [BigInt(10_000 - COST), 0n], "the hold was captured before the webhook left");
    const { secret } = await system.client.getWebhookSecret({ accountId });
    assert.match(secret, /^whsec_[0-9a-f]{64}$/);
    const timestamp = verifySignature(request.headers["cutline-signature"], request.body, secret);
    assert.ok(Math.abs(timestamp - Date.now() / 1000) < 30, "t is now, in Unix seconds");
    assert.equal(request.headers["content-type"], "application/json");
    const body = JSON.parse(request.body);
    assert.deepEqual(Object.keys(body).sort(), ["credits_used", "image_id", "job_id", "processing_time_ms", "result_url", "status", "type"]);
    assert.deepEqual([body.type, body.status, body.job_id, body.credits_used, body.processing_time_ms], ["job.succeeded", "succeeded", job.id, 0.25, 37]);
    const resultUrl = new URL(body.result_url);
    assert.equal(`${resultUrl.origin}${resultUrl.pathname}`, `${PUBLIC_URL}/v1/results/${job.id}`);
    assert.deepEqual(system.signer.verify(job.id, resultUrl.searchParams.get("expires"), resultUrl.searchParams.get("signature")), { ok: true });
    // Recorded as delivered once the receiver's answer is back.
    const deliveries = await until("delivered", async () => {
      const { deliveries } = await system.client.listWebhookDeliveries({ jobId: job.id });
      return deliveries[0]?.status === WebhookDeliveryStatus.DELIVERED ? deliveries : undefined;
    });
    assert.equal(deliveries.length, 1);
    assert.equal(request.headers["cutline-event-id"], deliveries[0]!.id);
    assert.equal(deliveries[0]!.body, request.body, "the log keeps the exact body");
  });

  it("credits.low and credits.exhausted reach the account's webhook once each, in the job events' envelope, signed the same way", async () => {
    const accountId = "credits-events";
    const path = "/credits";
    await system.billingClient.createAccount({ accountId });
    await system.client.setAccountWebhook({ accountId, webhookUrl: `${receiver.url}${path}` });
    const spend = async (amount: number, key: string) => {
      const hold = await system.billingClient.reserve({ accountId, pool: Pool.API, amountMillicredits: BigInt(amount), idempotencyKey: key, holdTtlSeconds: 900 });
      await system.billingClient.capture({ holdId: hold.holdId, amountMillicredits: BigInt(amount) });
    };
    // The 10-credit trial: 9 spent crosses the low-balance threshold, the last 1 exhausts it.
    await spend(9_000, "credits-low");
    await spend(1_000, "credits-exhausted");
    await system.billing.sweeper.sweepOnce(); // relays billing's outbox onto the bus
    const received = await until("both account events", () => {
      const found = receiver.received.filter((entry) => entry.path === path);
      return found.length >= 2 ? found : undefined;
    });
    const { secret } = await system.client.getWebhookSecret({ accountId });
    const bodies = received.map((request) => {
      verifySignature(request.headers["cutline-signature"], request.body, secret);
      return JSON.parse(request.body);
    });
    const low = bodies.find((body) => body.type === "credits.low");
    const exhausted = bodies.find((body) => body.type === "credits.exhausted");
    assert.ok(low && exhausted, `got ${bodies.map((body) => body.type).join(", ")}`);
    for (const key of ["type", "status", "job_id", "image_id", "result_url", "credits_used", "processing_time_ms"]) assert.ok(key in low && key in exhausted, `envelope field ${key}`);
    assert.deepEqual([low.status, low.account_id, low.available_credits, low.job_id], ["low", accountId, 1, null]);
    assert.ok(low.threshold_credits > low.available_credits, "the threshold crossed is above what is left");
    assert.deepEqual([exhausted.status, exhausted.account_id, exhausted.available_credits], ["exhausted", accountId, 0]);
    // The bus delivers at least once: the same event again adds no delivery.
    const again = create(CreditsLowSchema, {
      accountId,
      pool: Pool.API,
      availableMillicredits: 1000n,
      thresholdMillicredits: BigInt(Math.round(low.threshold_credits * 1000)),
      occurredAt: timestampFromDate(new Date(low.occurred_at)),
    });
    await system.orchestrator.webhooks.onCreditsEvent({ subject: "credits.low", data: toBinary(CreditsLowSchema, again), deliveryCount: 2 });
    await new Promise((resolve) => setTimeout(resolve, 200));
    assert.equal(receiver.received.filter((entry) => entry.path === path).length, 2, "one delivery per event");
  });

  it("credits.low and credits.exhausted each write one email to the outbox, to the owner's address, once per event id; an operator marks them sent", async () => {
    const accountId = "credits-emails";
    await system.billingClient.createAccount({ accountId, ownerMemberId: "ada", ownerEmail: "ada@example.com" });
    const spend = async (amount: number, key: string) => {
      const hold = await system.billingClient.reserve({ accountId, pool: Pool.API, amountMillicredits: BigInt(amount), idempotencyKey: key, holdTtlSeconds: 900 });
      await system.billingClient.capture({ holdId: hold.holdId, amountMillicredits: BigInt(amount) });
    };
    await spend(9_000, "emails-low");
    await spend(1_000, "emails-exhausted");
    await system.billing.sweeper.sweepOnce(); // relays billing's outbox onto the bus
    const mine = async (includeSent = false) => (await system.client.listEmailOutbox({ includeSent })).emails.filter((email) => email.accountId === accountId);
    const emails = await until("both emails", async () => {
      const found = await mine();
      return found.length >= 2 ? found : undefined;
    });
    assert.deepEqual(emails.map((email) => [email.kind, email.recipient]).sort(), [["credits.exhausted", "ada@example.com"], ["credits.low", "ada@example.com"]]);
    const low = emails.find((email) => email.kind === "credits.low")!;
    assert.match(low.id, /^billing-outbox-\d+$/, "keyed by billing's event id");
    assert.match(low.subject, /1 credits left on account credits-emails/);
    assert.match(emails.find((email) => email.kind === "credits.exhausted")!.body, /on_exhausted/);
    // The bus delivers at least once: the same event again (same id) writes nothing.
    const again = create(CreditsLowSchema, { accountId, pool: Pool.API, availableMillicredits: 1000n, thresholdMillicredits: 2000n, occurredAt: timestampFromDate(new Date()), eventId: low.id });
    await system.orchestrator.notices.onCreditsEvent({ subject: "credits.low", data: toBinary(CreditsLowSchema, again), deliveryCount: 2 });
    assert.equal((await mine()).length, 2, "one email per event");
    const sent = await system.client.markEmailSent({ id: low.id });
    assert.ok(sent.email?.sentAt, "marked sent");
    const firstSentAt = sent.email!.sentAt!.seconds;
    assert.equal((await system.client.markEmailSent({ id: low.id })).email?.sentAt?.seconds, firstSentAt, "a second mark keeps the first time");
    assert.deepEqual((await mine()).map((email) => email.kind), ["credits.exhausted"], "only the unsent are listed by default");
    assert.equal((await mine(true)).length, 2);
    await assert.rejects(system.client.markEmailSent({ id: "no-such-email" }), (error: unknown) => error instanceof ConnectError && reasonOf(error) === "email_not_found");
  });

  it("a failing receiver (500 twice, then 200) is retried with doubling delays; the log lists every attempt; redeliver sends again", async () => {
    const path = "/flaky";
    receiver.script.set(path, [500, 500]);
    const { accountId, job } = await system.submit();
    // No URL on the job: the account's is used.
    const set = await system.client.setAccountWebhook({ accountId, webhookUrl: `${receiver.url}${path}` });
    assert.equal(set.webhookUrl, `${receiver.url}${path}`);
    await system.succeed(job);
    const attempts = await until("three attempts", () => {
      const mine = receiver.received.filter((entry) => entry.path === path);
      return mine.length >= 3 ? mine : undefined;
    });
    assert.ok(attempts[1]!.at - attempts[0]!.at >= 100, `first retry after ≥ 100 ms (was ${attempts[1]!.at - attempts[0]!.at})`);
    assert.ok(attempts[2]!.at - attempts[1]!.at >= 200, `second retry after ≥ 200 ms (was ${attempts[2]!.at - attempts[1]!.at})`);
    assert.equal(new Set(attempts.map((entry) => entry.headers["cutline-event-id"])).size, 1, "one event id for every attempt");
    const delivered = await until("delivered", async () => {
      const [delivery] = (await system.client.listWebhookDeliveries({ jobId: job.id })).deliveries;
      return delivery?.status === WebhookDeliveryStatus.DELIVERED ? delivery : undefined;
    });
    assert.deepEqual(
      delivered.attemptLog.map((attempt) => [attempt.attempt, attempt.statusCode]),
      [
        [1, 500],
        [2, 500],
        [3, 200],
      ],
    );
    assert.match(delivered.attemptLog[0]!.error, /^http_status: the receiver answered 500/);
    assert.equal(delivered.attempts, 3);
    const { delivery } = await system.client.redeliverWebhook({ deliveryId: delivered.id });
    assert.equal(delivery?.attemptLog.length, 4);
    assert.equal(delivery?.status, WebhookDeliveryStatus.DELIVERED);
    const all = receiver.received.filter((entry) => entry.path === path);
    assert.equal(all.length, 4);
    assert.equal(all[3]!.body, all[0]!.body);
    // A rotated secret signs from now on; the old one no longer verifies.
    const { secret: old } = await system.client.getWebhookSecret({ accountId });
    const { secret: rotated } = await system.client.rotateWebhookSecret({ accountId });
    assert.notEqual(rotated, old);
    await system.client.redeliverWebhook({ deliveryId: delivered.id });
    const last = receiver.received.filter((entry) => entry.path === path).at(-1)!;
    verifySignature(last.headers["cutline-signature"], last.body, rotated);
    assert.throws(() => verifySignature(last.headers["cutline-signature"], last.body, old));
  });

  it("a receiver that never succeeds is marked failed once the retry window ends", async () => {
    const path = "/down";
    receiver.script.set(path, Array(1000).fill(503));
    const { job } = await system.submit({ webhookUrl: `${receiver.url}${path}` });
    await system.succeed(job);
    const failed = await until(
      "failed",
      async () => {
        const [delivery] = (await system.client.listWebhookDeliveries({ jobId: job.id })).deliveries;
        return delivery?.status === WebhookDeliveryStatus.FAILED ? delivery : undefined;
      },
      15_000,
    );
    assert.ok(failed.attempts >= 5 && failed.attempts <= 20, `attempts within the window: ${failed.attempts}`);
    assert.equal(failed.lastStatusCode, 503);
  });

  it("failed and cancelled jobs send their own events, without result_url or credits", async () => {
    const path = "/ends";
    const failed = await system.submit({ webhookUrl: `${receiver.url}${path}` });
    await system.orchestrator.lifecycle.onTaskEvent(event({ jobId: failed.job.id, outcome: { case: "failed", value: { reason: "internal", message: "boom" } } }));
    const cancelled = await system.submit({ webhookUrl: `${receiver.url}${path}` });
    await system.client.cancelJob({ jobId: cancelled.job.id });
    const bodies = await until("two events", () => {
      const mine = receiver.received.filter((entry) => entry.path === path).map((entry) => JSON.parse(entry.body));
      return mine.length >= 2 ? mine : undefined;
    });
    const byJob = new Map(bodies.map((body) => [body.job_id, body]));
    assert.deepEqual(
      [byJob.get(failed.job.id)?.type, byJob.get(failed.job.id)?.result_url, byJob.get(failed.job.id)?.credits_used],
      ["job.failed", null, 0],
    );
    assert.deepEqual([byJob.get(cancelled.job.id)?.type, byJob.get(cancelled.job.id)?.status], ["job.cancelled", "cancelled"]);
  });

  it("webhook URLs are checked before the job is recorded: scheme, length, and internal addresses other than loopback", async () => {
    for (const [webhookUrl, pattern] of [
      ["ftp://example.com/hook", /http or https/],
      [`https://example.com/${"a".repeat(2100)}`, /limit is 2048/],
      ["http://10.0.0.7/hook", /private address/],
      ["http://169.254.169.254/latest/meta-data", /linkLocal address/],
    ] as const) {
      await assert.rejects(system.submit({ webhookUrl }), (error: unknown) => {
        assert.ok(error instanceof ConnectError);
        assert.deepEqual([error.code, reasonOf(error)], [Code.InvalidArgument, "invalid_webhook_url"]);
        assert.match(error.rawMessage, pattern);
        return true;
      });
    }
    await assert.rejects(system.client.getWebhookSecret({ accountId: "no-such-account" }), (error: unknown) => error instanceof ConnectError && reasonOf(error) === "account_not_found");
  });
});

describe("webhooks (loopback refused: the default)", () => {
  let system: Awaited<ReturnType<typeof startOrchestrator>>;
  let receiver: Awaited<ReturnType<typeof startReceiver>>;

  before(async () => {
    system = await startOrchestrator({ allowLoopback: false });
    receiver = await startReceiver();
  });

  after(async () => {
    await system?.stop();
    receiver?.server.closeAllConnections();
    await new Promise((resolve) => receiver?.server.close(resolve));
  });

  it("a loopback address is refused at submit, and a name resolving to one is refused when it connects: nothing reaches the receiver", async () => {
    await assert.rejects(system.submit({ webhookUrl: `${receiver.url}/hook` }), (error: unknown) => error instanceof ConnectError && reasonOf(error) === "invalid_webhook_url");
    const port = new URL(receiver.url).port;
    const { job } = await system.submit({ webhookUrl: `http://localhost:${port}/hook` });
    await system.succeed(job);
    const failed = await until("refused delivery", async () => {
      const [delivery] = (await system.client.listWebhookDeliveries({ jobId: job.id })).deliveries;
      return delivery?.status === WebhookDeliveryStatus.FAILED ? delivery : undefined;
    });
    assert.equal(failed.attempts, 1, "a forbidden address is not retried");
    assert.match(failed.lastError, /^outbound_forbidden_address: localhost resolves to .*loopback/);
    assert.equal(receiver.received.length, 0);
  });
});
