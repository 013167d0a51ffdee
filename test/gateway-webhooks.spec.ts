// The gateway's webhook surface: JobService.Submit's webhook_url checked before any hold, and
// WebhookService scoped to the caller's own account. Real billing (test database), a real
// orchestrator with webhooks wired to a real loopback receiver, in-memory Connect transports.
import { create, toBinary } from "@bufbuild/protobuf";
import { Code, ConnectError, createClient, createRouterTransport, type Client } from "@connectrpc/connect";
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
import { reasonOf } from "../services/common/errors.ts";
import { BillingService, Pool } from "../services/common/gen/cutline/billing/v1/billing_service_pb.ts";
import { JobService } from "../services/common/gen/cutline/gateway/v1/job_service_pb.ts";
import { WebhookDeliveryStatus, WebhookService } from "../services/common/gen/cutline/gateway/v1/webhook_service_pb.ts";
import { TaskEventSchema } from "../services/common/gen/cutline/inference/v1/task_pb.ts";
import { OrchestratorService } from "../services/common/gen/cutline/orchestrator/v1/orchestrator_service_pb.ts";
import { imageLimitsOf } from "../services/common/images/image-limits.ts";
import { createUploadInspector } from "../services/common/images/upload.inspector.ts";
import { createOutboundFetcher } from "../services/common/outbound.ts";
import { loadGatewayConfig } from "../services/gateway/gateway.config.ts";
import { createGateway, type Gateway } from "../services/gateway/index.ts";
import { createOrchestrator, type Orchestrator } from "../services/orchestrator/index.ts";
import { startWebhookReceiver, webhookSignatureV1, type WebhookReceiver } from "./loopback.testing.ts";

const log = pino({ level: "silent" });

describe("gateway webhooks", () => {
  let billing: BillingFixture;
  let orchestrator: Orchestrator;
  let gateway: Gateway;
  let blobs: InProcessBlobStore;
  let workQueue: InProcessWorkQueue;
  let eventBus: InProcessEventBus;
  let receiver: WebhookReceiver;
  const fetcher = createOutboundFetcher({ allowLoopback: true, timeoutMs: 2000, bytesMax: 1024 });
  const dataDir = mkdtempSync(join(tmpdir(), "cutline-gateway-webhooks-"));
  let jobs: Client<typeof JobService>;
  let webhooks: Client<typeof WebhookService>;
  let photo: Uint8Array;

  const billingClient = () => createClient(BillingService, createRouterTransport((router) => router.service(BillingService, billing.handlers)));
  const as = (apiKey: string) => ({ headers: { "x-api-key": apiKey } });

  before(async () => {
    billing = await createBillingFixture();
    blobs = new InProcessBlobStore({ dataDir, log });
    workQueue = new InProcessWorkQueue({ log });
    eventBus = new InProcessEventBus({ dataDir, log });
    receiver = await startWebhookReceiver();
    orchestrator = createOrchestrator({
      db: billing.db as Kysely<any>,
      workQueue,
      eventBus,
      blobStore: blobs,
      billing: billingClient(),
      log,
      webhooks: {
        fetcher,
        resultUrlFor: (jobId) => `https://api.cutline.test/v1/results/${jobId}`,
        options: { retryDelayMsMin: 50, retryDelayMsMax: 100, retryWindowMs: 5000, allowLoopback: true },
        sendIntervalMs: 20,
      },
    });
    await orchestrator.start();
    gateway = createGateway({
      db: billing.db as Kysely<any>,
      blobStore: blobs,
      billing: billingClient(),
      orchestrator: createClient(OrchestratorService, createRouterTransport(orchestrator.routes)),
      inspect: createUploadInspector(imageLimitsOf(loadGatewayConfig({}))),
      log,
      limits: { uploadBytesMax: 1_000_000, syncTimeoutMs: 10_000, holdTtlSeconds: 900, longestSide: { standard: 2048, pro: 4096 } },
    });
    await gateway.start();
    const transport = createRouterTransport(gateway.routes);
    jobs = createClient(JobService, transport);
    webhooks = createClient(WebhookService, transport);
    photo = new Uint8Array(await sharp({ create: { width: 32, height: 24, channels: 3, background: "#112233" } }).png().toBuffer());
  });

  after(async () => {
    await orchestrator?.stop();
    await fetcher.close();
    await Promise.all([workQueue?.close(), blobs?.close(), eventBus?.close()]);
    await receiver?.close();
    await billing?.assertHealthy();
    await billing?.dispose();
    rmSync(dataDir, { recursive: true, force: true });
  });

  it("a bad webhook_url is refused before any hold: nothing is held or charged", async () => {
    const apiKey = await gateway.provisionAccount("bad-url");
    for (const webhookUrl of ["javascript:alert(1)", `https://example.com/${"x".repeat(2100)}`]) {
      await assert.rejects(jobs.submit({ image: photo, webhookUrl }, as(apiKey)), (error: unknown) => {
        assert.ok(error instanceof ConnectError);
        assert.deepEqual([error.code, reasonOf(error)], [Code.InvalidArgument, "invalid_webhook_url"]);
        return true;
      });
    }
    const balance = await billingClient().getBalance({ accountId: "bad-url", pool: Pool.API });
    assert.deepEqual([balance.availableMillicredits, balance.heldMillicredits], [10_000n, 0n]);
  });

  it("an async job with webhook_url is delivered, signed with the secret WebhookService shows; another account sees none of it", async () => {
    const apiKey = await gateway.provisionAccount("owner");
    const stranger = await gateway.provisionAccount("stranger");
    const { job } = await jobs.submit({ image: photo, webhookUrl: receiver.url, idempotencyKey: "hooked" }, as(apiKey));
    const internal = await orchestrator.lifecycle.get(job!.id);
    await orchestrator.lifecycle.onTaskEvent({
      subject: "job.succeeded",
      deliveryCount: 1,
      data: toBinary(TaskEventSchema, create(TaskEventSchema, { jobId: job!.id, outcome: { case: "succeeded", value: { resultBlobKey: internal.result_blob_key, contentType: "image/png" } } })),
    });
    const deadline = Date.now() + 10_000;
    while (receiver.deliveries.length === 0 && Date.now() < deadline) await new Promise((resolve) => setTimeout(resolve, 20));
    const [delivery] = receiver.deliveries;
    assert.ok(delivery, "the webhook arrived");
    const { secret } = await webhooks.getWebhookSecret({}, as(apiKey));
    const t = /t=(\d+)/.exec(delivery.signature)![1];
    assert.equal(delivery.signature, `t=${t},v1=${webhookSignatureV1(secret, t!, delivery.body)}`);
    assert.equal(JSON.parse(delivery.body).job_id, job!.id);
    const { secret: strangerSecret } = await webhooks.getWebhookSecret({}, as(stranger));
    assert.notEqual(strangerSecret, secret, "each account has its own secret");

    const { deliveries } = await webhooks.listWebhookDeliveries({ jobId: job!.id }, as(apiKey));
    assert.equal(deliveries.length, 1);
    assert.ok([WebhookDeliveryStatus.PENDING, WebhookDeliveryStatus.DELIVERED].includes(deliveries[0]!.status));
    assert.deepEqual((await webhooks.listWebhookDeliveries({ jobId: job!.id }, as(stranger))).deliveries, []);
    await assert.rejects(webhooks.redeliverWebhook({ deliveryId: deliveries[0]!.id }, as(stranger)), (error: unknown) => error instanceof ConnectError && reasonOf(error) === "webhook_delivery_not_found");
    const again = await webhooks.redeliverWebhook({ deliveryId: deliveries[0]!.id }, as(apiKey));
    assert.ok((again.delivery?.attemptLog.length ?? 0) >= 2);
    assert.equal(receiver.deliveries.length, again.delivery?.attemptLog.length);
  });

  it("the account's URL and secret: set, read, rotate; calls without a key are refused", async () => {
    const apiKey = await gateway.provisionAccount("settings");
    assert.equal((await webhooks.getWebhookUrl({}, as(apiKey))).webhookUrl, "");
    assert.equal((await webhooks.setWebhookUrl({ webhookUrl: receiver.url }, as(apiKey))).webhookUrl, receiver.url);
    assert.equal((await webhooks.getWebhookUrl({}, as(apiKey))).webhookUrl, receiver.url);
    await assert.rejects(webhooks.setWebhookUrl({ webhookUrl: "http://192.168.1.10/hook" }, as(apiKey)), (error: unknown) => error instanceof ConnectError && reasonOf(error) === "invalid_webhook_url");
    const { secret } = await webhooks.getWebhookSecret({}, as(apiKey));
    const { secret: rotated } = await webhooks.rotateWebhookSecret({}, as(apiKey));
    assert.notEqual(rotated, secret);
    assert.equal((await webhooks.getWebhookSecret({}, as(apiKey))).secret, rotated);
    await assert.rejects(webhooks.getWebhookSecret({}), (error: unknown) => error instanceof ConnectError && reasonOf(error) === "missing_api_key");
  });
});
