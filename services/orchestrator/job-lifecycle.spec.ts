// The job lifecycle against real billing (its ledger on the test database, called through an
// in-memory Connect transport) and the in-process queue, bus and blob store. Task outcomes are
// published here as an inference worker would, so every hold ending can be checked exactly.
import { create, toBinary } from "@bufbuild/protobuf";
import { Code, ConnectError, createClient, createRouterTransport } from "@connectrpc/connect";
import assert from "node:assert/strict";
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { after, before, describe, it } from "node:test";
import pino from "pino";
import { createBillingFixture, type BillingFixture } from "../billing/billing.testing.ts";
import { InProcessBlobStore, InProcessEventBus, InProcessWorkQueue } from "../common/adapters/index.ts";
import { reasonOf } from "../common/errors.ts";
import { BillingService, Pool } from "../common/gen/cutline/billing/v1/billing_service_pb.ts";
import { TaskEventSchema, type TaskEvent } from "../common/gen/cutline/inference/v1/task_pb.ts";
import { JobLifecycle } from "./job-lifecycle.ts";
import { orchestratorMigrations } from "./store/migrations.ts";
import { JobStore, type OrchestratorSchema } from "./store/job.store.ts";
import { migrateToLatest } from "../common/migrate.ts";
import type { Kysely } from "kysely";

const log = pino({ level: "silent" });
const COST = 250;

function event(init: Parameters<typeof create<typeof TaskEventSchema>>[1]): { subject: string; data: Uint8Array; deliveryCount: number } {
  const message: TaskEvent = create(TaskEventSchema, init);
  return { subject: `job.${message.outcome.case}`, data: toBinary(TaskEventSchema, message), deliveryCount: 1 };
}

describe("job lifecycle", () => {
  let billing: BillingFixture;
  let lifecycle: JobLifecycle;
  let workQueue: InProcessWorkQueue;
  let blobs: InProcessBlobStore;
  let eventBus: InProcessEventBus;
  const dataDir = mkdtempSync(join(tmpdir(), "cutline-orchestrator-"));
  const billingClient = () => createClient(BillingService, createRouterTransport((router) => router.service(BillingService, billing.handlers)));
  let serial = 0;

  async function available(accountId: string): Promise<bigint> {
    return (await billingClient().getBalance({ accountId, pool: Pool.API })).availableMillicredits;
  }

  /** A fresh account with the 10-credit trial, a hold of COST on it, and a submitted job. */
  async function submitted(options: { holdTtlSeconds?: number } = {}) {
    serial += 1;
    const accountId = `account-${serial}`;
    await billingClient().createAccount({ accountId });
    const hold = await billingClient().reserve({
      accountId,
      pool: Pool.API,
      amountMillicredits: BigInt(COST),
      idempotencyKey: `hold-${serial}`,
      holdTtlSeconds: options.holdTtlSeconds ?? 900,
    });
    const job = await lifecycle.submit({
      accountId,
      idempotencyKey: `job-${serial}`,
      inputBlobKey: `inputs/${serial}`,
      options: undefined,
      holdId: hold.holdId,
      heldMillicredits: COST,
      highPriority: false,
      longestSideMax: 0,
    });
    return { accountId, job };
  }

  before(async () => {
    billing = await createBillingFixture();
    await migrateToLatest(billing.db as Kysely<any>, "orchestrator", orchestratorMigrations);
    workQueue = new InProcessWorkQueue({ log, queueLengthMax: 6 });
    blobs = new InProcessBlobStore({ dataDir, log });
    eventBus = new InProcessEventBus({ dataDir, log });
    lifecycle = new JobLifecycle(new JobStore(billing.db as unknown as Kysely<OrchestratorSchema>), workQueue, blobs, billingClient(), log);
  });

  after(async () => {
    await Promise.all([workQueue.close(), blobs.close(), eventBus.close()]);
    await billing.assertHealthy();
    await billing.dispose();
    rmSync(dataDir, { recursive: true, force: true });
  });

  it("submits once per idempotency key; a replay of a still-queued job re-enqueues into the dedup, not a second task", async () => {
    const { accountId, job } = await submitted();
    assert.equal(job.status, "queued");
    const again = await lifecycle.submit({
      accountId,
      idempotencyKey: `job-${serial}`,
      inputBlobKey: "other",
      options: undefined,
      holdId: job.hold_id,
      heldMillicredits: COST,
      highPriority: false,
      longestSideMax: 0,
    });
    assert.equal(again.id, job.id);
    assert.equal(await workQueue.depth(), 1);
  });

  it("started -> running; succeeded captures the hold exactly once, however often the event comes", async () => {
    const { accountId, job } = await submitted();
    await lifecycle.onTaskEvent(event({ jobId: job.id, outcome: { case: "started", value: { deliveryCount: 1 } } }));
    assert.equal((await lifecycle.get(job.id)).status, "running");
    const succeeded = event({ jobId: job.id, outcome: { case: "succeeded", value: { resultBlobKey: job.result_blob_key, contentType: "image/png", processingTimeMs: 40 } } });
    await lifecycle.onTaskEvent(succeeded);
    await lifecycle.onTaskEvent(succeeded);
    const done = await lifecycle.get(job.id);
    assert.deepEqual([done.status, done.charged_millicredits, done.result_content_type, done.processing_time_ms], ["succeeded", COST, "image/png", 40]);
    assert.equal(await available(accountId), BigInt(10_000 - COST));
    assert.equal(done.available_millicredits, 10_000 - COST);
  });

  it("a failure releases the hold: the job costs nothing", async () => {
    const { accountId, job } = await submitted();
    assert.equal(await available(accountId), BigInt(10_000 - COST));
    await lifecycle.onTaskEvent(event({ jobId: job.id, outcome: { case: "failed", value: { userError: false, reason: "internal", message: "boom" } } }));
    const failed = await lifecycle.get(job.id);
    assert.deepEqual([failed.status, failed.error_reason, failed.charged_millicredits], ["failed", "internal", 0]);
    assert.equal(await available(accountId), 10_000n);
  });

  it("cancel releases the hold; a result arriving afterwards is dropped, not charged", async () => {
    const { accountId, job } = await submitted();
    const cancelled = await lifecycle.cancel(job.id);
    assert.equal(cancelled.status, "cancelled");
    await blobs.put(job.result_blob_key, new Uint8Array([1, 2, 3]));
    await lifecycle.onTaskEvent(event({ jobId: job.id, outcome: { case: "succeeded", value: { resultBlobKey: job.result_blob_key, contentType: "image/png" } } }));
    assert.equal((await lifecycle.get(job.id)).status, "cancelled");
    assert.equal(await blobs.get(job.result_blob_key), undefined);
    assert.equal(await available(accountId), 10_000n);
    await assert.rejects(lifecycle.cancel(job.id), (error: unknown) => error instanceof ConnectError && reasonOf(error) === "job_finished");
  });

  it("a hold that expired before the job ended is not charged; the job still succeeds", async () => {
    const { accountId, job } = await submitted({ holdTtlSeconds: 60 });
    billing.clock.advanceMs(61_000);
    await billing.sweeper.sweepOnce();
    await lifecycle.onTaskEvent(event({ jobId: job.id, outcome: { case: "succeeded", value: { resultBlobKey: job.result_blob_key, contentType: "image/png" } } }));
    const done = await lifecycle.get(job.id);
    assert.deepEqual([done.status, done.charged_millicredits], ["succeeded", 0]);
    assert.equal(await available(accountId), 10_000n);
  });

  it("a full queue fails the submission with queue_full and returns the credits", async () => {
    while ((await workQueue.depth()) < 6) await submitted();
    await assert.rejects(submitted(), (error: unknown) => {
      assert.ok(error instanceof ConnectError);
      assert.equal(error.code, Code.ResourceExhausted);
      assert.equal(reasonOf(error), "queue_full");
      assert.match(error.rawMessage, /queueLengthMax = 6/);
      return true;
    });
    assert.equal(await available(`account-${serial}`), 10_000n);
  });

  it("an unknown job is NotFound with a reason", async () => {
    await assert.rejects(lifecycle.get("00000000-0000-0000-0000-000000000000"), (error: unknown) => error instanceof ConnectError && error.code === Code.NotFound);
  });
});
