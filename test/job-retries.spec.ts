// Server faults are retried with a doubling delay up to JOB_RETRY_MAX, then the job fails with the
// fault's reason and its hold is released, never captured. The fault is real: the worker's blob
// store is NATS (a real server) and its connection is gone, as in a NATS outage, so every read of
// the input fails. The rest is real too: the inference consumer with the real model, the
// orchestrator and billing on the test database, the in-process queue and bus between them.
import { fromBinary } from "@bufbuild/protobuf";
import { createClient, createRouterTransport } from "@connectrpc/connect";
import { connect } from "@nats-io/transport-node";
import assert from "node:assert/strict";
import { randomBytes } from "node:crypto";
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { after, before, describe, it } from "node:test";
import type { Kysely } from "kysely";
import pino from "pino";
import sharp from "sharp";
import { createBillingFixture, type BillingFixture } from "../services/billing/billing.testing.ts";
import { InProcessBlobStore, InProcessEventBus, InProcessWorkQueue, NatsBlobStore } from "../services/common/adapters/index.ts";
import { BillingService, Pool } from "../services/common/gen/cutline/billing/v1/billing_service_pb.ts";
import { TaskEventSchema } from "../services/common/gen/cutline/inference/v1/task_pb.ts";
import type { EventBus } from "../services/common/ports/event-bus.ts";
import { consumerRetryOptionsOf, loadInferenceConfig } from "../services/inference/inference.config.ts";
import { createSegmentationEngine, type SegmentationEngine } from "../services/inference/runtime/segmentation.engine.ts";
import { startSegmentConsumer } from "../services/inference/store/segment.consumer.ts";
import { createOrchestrator, type Orchestrator } from "../services/orchestrator/index.ts";

const log = pino({ level: "silent" });
const NATS_URL = process.env.NATS_URL ?? "nats://127.0.0.1:4222";
const RETRIES = 2;
const DELAY_MS_MIN = 150;

describe("retries of server faults", { skip: process.env.NATS_URL ? false : "needs NATS_URL (a real NATS server)" }, () => {
  const dataDir = mkdtempSync(join(tmpdir(), "cutline-retries-"));
  const namePrefix = `retries_${randomBytes(4).toString("hex")}`;
  let billing: BillingFixture;
  let engine: SegmentationEngine;
  let orchestrator: Orchestrator;
  let workQueue: InProcessWorkQueue;
  let eventBus: InProcessEventBus;
  let blobs: InProcessBlobStore;

  before(async () => {
    billing = await createBillingFixture();
    engine = await createSegmentationEngine(loadInferenceConfig({ INFERENCE_WARMUP_RUNS: "0" }), log);
    // The queue's delivery limit and the consumer's agree, as openPorts and consumerRetryOptionsOf make them.
    workQueue = new InProcessWorkQueue({ log, deliveryCountMax: RETRIES + 1 });
    eventBus = new InProcessEventBus({ dataDir, log });
    blobs = new InProcessBlobStore({ dataDir, log });
    orchestrator = createOrchestrator({
      db: billing.db as Kysely<any>,
      workQueue,
      eventBus,
      blobStore: blobs,
      billing: createClient(BillingService, createRouterTransport((router) => router.service(BillingService, billing.handlers))),
      log,
    });
    await orchestrator.start();
  });

  after(async () => {
    await orchestrator?.stop();
    await engine?.close();
    await Promise.all([workQueue?.close(), eventBus?.close(), blobs?.close()]);
    const connection = await connect({ servers: NATS_URL });
    await (await NatsBlobStore.open({ connection, namePrefix, log })).destroy();
    await connection.close();
    await billing?.assertHealthy();
    await billing?.dispose();
    rmSync(dataDir, { recursive: true, force: true });
  });

  it("a task whose input cannot be read (NATS gone) is retried JOB_RETRY_MAX times with doubling delays, then fails with its reason; the hold is released, nothing charged", async () => {
    const billingClient = createClient(BillingService, createRouterTransport((router) => router.service(BillingService, billing.handlers)));
    // The worker's blob store: the input is stored, then the worker's connection to NATS is lost.
    const connection = await connect({ servers: NATS_URL });
    const workerBlobs = await NatsBlobStore.open({ connection, namePrefix, log });
    const photo = await sharp({ create: { width: 64, height: 64, channels: 3, background: "#c0501a" } }).png().toBuffer();
    await workerBlobs.put("inputs/retried", new Uint8Array(photo), { contentType: "image/png" });
    await connection.close();

    // Each delivery's start, timed where the worker publishes it: timed where a subscriber receives
    // it instead, a late delivery of the first event (the bus's first write to disk, a busy CI
    // machine) shortened the measured gap below the delay that was kept.
    const starts: { deliveryCount: number; at: number }[] = [];
    const workerBus: EventBus = {
      publish: async (subject, data, options) => {
        const message = fromBinary(TaskEventSchema, data);
        if (message.outcome.case === "started") starts.push({ deliveryCount: message.outcome.value.deliveryCount, at: performance.now() });
        await eventBus.publish(subject, data, options);
      },
      subscribe: (handler, options) => eventBus.subscribe(handler, options),
      deadLetters: (options) => eventBus.deadLetters(options),
      close: () => eventBus.close(),
    };
    const retryOptions = consumerRetryOptionsOf({ JOB_RETRY_MAX: RETRIES, JOB_RETRY_DELAY_MS_MIN: DELAY_MS_MIN, JOB_RETRY_DELAY_MS_MAX: 10_000 });
    const consumer = await startSegmentConsumer({ engine, workQueue, eventBus: workerBus, blobStore: workerBlobs, log, ...retryOptions });
    try {
      const accountId = "retried";
      await billingClient.createAccount({ accountId });
      const hold = await billingClient.reserve({ accountId, pool: Pool.API, amountMillicredits: 250n, idempotencyKey: "retried-hold", holdTtlSeconds: 900 });
      const job = await orchestrator.lifecycle.submit({ accountId, idempotencyKey: "retried-job", inputBlobKey: "inputs/retried", options: undefined, holdId: hold.holdId, heldMillicredits: 250, highPriority: false, longestSideMax: 0 });
      const deadline = Date.now() + 30_000;
      let ended = await orchestrator.lifecycle.get(job.id);
      while (!["succeeded", "failed", "cancelled"].includes(ended.status) && Date.now() < deadline) {
        await new Promise((resolve) => setTimeout(resolve, 50));
        ended = await orchestrator.lifecycle.get(job.id);
      }
      assert.deepEqual([ended.status, ended.error_reason, ended.user_error], ["failed", "internal", false], JSON.stringify(ended));
      assert.match(ended.error_message ?? "", /failed 3 times, the last retry JOB_RETRY_MAX allows/);
      // One delivery and RETRIES retries, each after a longer wait than the one before.
      assert.deepEqual(starts.map((start) => start.deliveryCount), [1, 2, 3]);
      const gaps = starts.slice(1).map((start, index) => start.at - starts[index]!.at);
      assert.ok(gaps[0]! >= DELAY_MS_MIN - 5, `first retry after ${gaps[0]} ms, at least ${DELAY_MS_MIN}`);
      assert.ok(gaps[1]! >= 2 * DELAY_MS_MIN - 5, `second retry after ${gaps[1]} ms, at least ${2 * DELAY_MS_MIN}`);
      const stored = await billing.db.selectFrom("billing_holds").select("status").where("id", "=", hold.holdId).executeTakeFirstOrThrow();
      assert.equal(stored.status, "released", "released, never captured");
      const balance = await billingClient.getBalance({ accountId, pool: Pool.API });
      assert.deepEqual([balance.availableMillicredits, balance.heldMillicredits], [10_000n, 0n]);
    } finally {
      await consumer.drain();
    }
  });
});
