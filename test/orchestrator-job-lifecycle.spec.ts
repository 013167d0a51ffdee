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
import { createBillingFixture, type BillingFixture } from "../services/billing/billing.testing.ts";
import { InProcessBlobStore, InProcessEventBus, InProcessWorkQueue } from "../services/common/adapters/index.ts";
import { reasonOf } from "../services/common/errors.ts";
import { BillingService, HoldStatus, Pool } from "../services/common/gen/cutline/billing/v1/billing_service_pb.ts";
import { TaskEventSchema, type TaskEvent } from "../services/common/gen/cutline/inference/v1/task_pb.ts";
import { VideoFormat, VideoOptionsSchema } from "../services/common/gen/cutline/inference/v1/video_options_pb.ts";
import { JobLifecycle } from "../services/orchestrator/job-lifecycle.ts";
import { orchestratorMigrations } from "../services/orchestrator/store/migrations.ts";
import { JobStore, type OrchestratorSchema } from "../services/orchestrator/store/job.store.ts";
import { AccountSettingsStore } from "../services/orchestrator/store/account-settings.store.ts";
import { migrateToLatest } from "../services/common/migrate.ts";
import type { Kysely } from "kysely";

const log = pino({ level: "silent" });
const COST = 250;
const QUEUE_LENGTH = 16;

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
  let jobs: JobStore;
  const dataDir = mkdtempSync(join(tmpdir(), "cutline-orchestrator-"));
  const billingClient = () => createClient(BillingService, createRouterTransport((router) => router.service(BillingService, billing.handlers)));
  let serial = 0;

  async function available(accountId: string): Promise<bigint> {
    return (await billingClient().getBalance({ accountId, pool: Pool.API })).availableMillicredits;
  }

  /** A fresh account with the 10-credit trial, a hold of COST on it, and a submitted job. */
  async function submitted(options: { holdTtlSeconds?: number; apiKeyId?: string; memberId?: string } = {}) {
    serial += 1;
    const accountId = `account-${serial}`;
    await billingClient().createAccount({ accountId });
    const hold = await billingClient().reserve({
      accountId,
      pool: Pool.API,
      amountMillicredits: BigInt(COST),
      idempotencyKey: `hold-${serial}`,
      holdTtlSeconds: options.holdTtlSeconds ?? 900,
      apiKeyId: options.apiKeyId,
      memberId: options.memberId,
    });
    const job = await lifecycle.submit({
      apiKeyId: options.apiKeyId,
      memberId: options.memberId,
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
    workQueue = new InProcessWorkQueue({ log, queueLengthMax: QUEUE_LENGTH });
    blobs = new InProcessBlobStore({ dataDir, log });
    eventBus = new InProcessEventBus({ dataDir, log });
    jobs = new JobStore(billing.db as unknown as Kysely<OrchestratorSchema>);
    lifecycle = new JobLifecycle(jobs, workQueue, blobs, billingClient(), log);
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

  it("a replay of a job made before its account chose zero retention is that job; a new asynchronous one is refused", async () => {
    const settings = new AccountSettingsStore(billing.db as unknown as Kysely<OrchestratorSchema>);
    const withSettings = new JobLifecycle(jobs, workQueue, blobs, billingClient(), log, { settings });
    const { accountId, job } = await submitted();
    await settings.setRetentionHours(accountId, 0);
    const request = { accountId, inputBlobKey: `inputs/${serial}`, options: undefined, holdId: job.hold_id, heldMillicredits: COST, highPriority: false, longestSideMax: 0 };
    const replay = await withSettings.submit({ ...request, idempotencyKey: `job-${serial}` });
    assert.equal(replay.id, job.id, "the replay gets the running job, so the gateway keeps its hold");
    await assert.rejects(withSettings.submit({ ...request, idempotencyKey: `job-${serial}-new` }), (error: unknown) => error instanceof ConnectError && reasonOf(error) === "zero_retention_async");
    assert.equal(await available(accountId), BigInt(10_000 - COST), "the first job's hold stands");
  });

  it("started -> running; succeeded captures the hold exactly once, however often the event comes", async () => {
    const { accountId, job } = await submitted();
    await lifecycle.onTaskEvent(event({ jobId: job.id, outcome: { case: "started", value: { deliveryCount: 1 } } }));
    assert.equal((await lifecycle.get(job.id)).status, "running");
    const succeeded = event({ jobId: job.id, outcome: { case: "succeeded", value: { resultBlobKey: job.result_blob_key, contentType: "image/png", processingTimeMs: 40, queueWaitMs: 7, inferenceMs: 31 } } });
    await lifecycle.onTaskEvent(succeeded);
    await lifecycle.onTaskEvent(succeeded);
    const done = await lifecycle.get(job.id);
    assert.deepEqual([done.status, done.charged_millicredits, done.result_content_type, done.processing_time_ms], ["succeeded", COST, "image/png", 40]);
    assert.deepEqual([done.queue_wait_ms, done.inference_ms], [7, 31], "the worker's split is kept for the gateway's X-Queue-Time-Ms and X-Inference-Time-Ms");
    assert.equal(await available(accountId), BigInt(10_000 - COST));
    assert.equal(done.available_millicredits, 10_000 - COST);
  });

  it("a failure releases the hold: the job costs nothing", async () => {
    const { accountId, job } = await submitted();
    assert.equal(await available(accountId), BigInt(10_000 - COST));
    await lifecycle.onTaskEvent(event({ jobId: job.id, outcome: { case: "failed", value: { userError: false, reason: "internal", message: "boom" } } }));
    const failed = await lifecycle.get(job.id);
    assert.deepEqual([failed.status, failed.error_reason, failed.user_error, failed.charged_millicredits], ["failed", "internal", false, 0]);
    assert.equal(await available(accountId), 10_000n);
  });

  it("a failure inference blames on the input is recorded as the caller's error, and costs nothing", async () => {
    const { accountId, job } = await submitted();
    const message = "the image could not be decoded";
    await lifecycle.onTaskEvent(event({ jobId: job.id, outcome: { case: "failed", value: { userError: true, reason: "corrupt_image", message } } }));
    const failed = await lifecycle.get(job.id);
    assert.deepEqual([failed.status, failed.error_reason, failed.error_message, failed.user_error, failed.charged_millicredits], ["failed", "corrupt_image", message, true, 0]);
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

  const succeededEvent = (job: { id: string; result_blob_key: string }) =>
    event({ jobId: job.id, outcome: { case: "succeeded", value: { resultBlobKey: job.result_blob_key, contentType: "image/png" } } });

  it("a hold that expired in the queue is replaced when the result comes: the result is charged, never free", async () => {
    const { accountId, job } = await submitted({ holdTtlSeconds: 60, apiKeyId: "key-1", memberId: "ada" });
    billing.clock.advanceMs(61_000);
    await billing.sweeper.sweepOnce();
    await lifecycle.onTaskEvent(succeededEvent(job));
    await lifecycle.onTaskEvent(succeededEvent(job)); // redelivered: the replacement hold is found, not taken twice
    const done = await lifecycle.get(job.id);
    assert.deepEqual([done.status, done.charged_millicredits], ["succeeded", COST]);
    assert.notEqual(done.hold_id, job.hold_id);
    const replacement = await billing.db.selectFrom("billing_holds").select(["api_key_id", "member_id"]).where("id", "=", done.hold_id).executeTakeFirstOrThrow();
    assert.deepEqual([replacement.api_key_id, replacement.member_id], ["key-1", "ada"], "the replacement hold's usage stays with the caller's key and member");
    assert.equal(await available(accountId), BigInt(10_000 - COST));
  });

  it("a hold that expired and cannot be replaced (no credits left) fails the job, deletes its result and charges nothing", async () => {
    const { accountId, job } = await submitted({ holdTtlSeconds: 60 });
    billing.clock.advanceMs(61_000);
    await billing.sweeper.sweepOnce();
    // The account spends the rest of its credits meanwhile.
    const spend = await billingClient().reserve({ accountId, pool: Pool.API, amountMillicredits: 10_000n - BigInt(COST) + 1n, idempotencyKey: `spend-${serial}` });
    await billingClient().capture({ holdId: spend.holdId, amountMillicredits: spend.amountMillicredits });
    await blobs.put(job.result_blob_key, new Uint8Array([1, 2, 3]));
    await lifecycle.onTaskEvent(succeededEvent(job));
    const done = await lifecycle.get(job.id);
    assert.deepEqual([done.status, done.error_reason, done.charged_millicredits], ["failed", "insufficient_credits", 0]);
    assert.equal(await blobs.get(job.result_blob_key), undefined);
    assert.equal(await available(accountId), BigInt(COST) - 1n);
  });

  it("a hold released by the caller (a submit that looked failed, then replayed) is replaced, not served free", async () => {
    const { accountId, job } = await submitted();
    await billingClient().release({ holdId: job.hold_id, reason: "submit_failed" });
    const replay = await billingClient().reserve({ accountId, pool: Pool.API, amountMillicredits: BigInt(COST), idempotencyKey: `hold-${serial}`, holdTtlSeconds: 900 });
    assert.deepEqual([replay.replayed, replay.status], [true, HoldStatus.RELEASED]); // a replay reports the hold's real state
    await lifecycle.onTaskEvent(succeededEvent(job));
    const done = await lifecycle.get(job.id);
    assert.deepEqual([done.status, done.charged_millicredits], ["succeeded", COST]);
    assert.equal(await available(accountId), BigInt(10_000 - COST));
  });

  it("a cancel that races a result: whichever claims the job first wins, and the hold ends once", async () => {
    // The result claims first: the cancel reports the job and the result is charged.
    const first = await submitted();
    assert.ok(await jobs.claim(first.job.id, "succeeded", { result_content_type: "image/png" }));
    const notCancelled = await lifecycle.cancel(first.job.id);
    assert.notEqual(notCancelled.status, "cancelled");
    await lifecycle.onTaskEvent(succeededEvent(first.job));
    assert.deepEqual([(await lifecycle.get(first.job.id)).status, await available(first.accountId)], ["succeeded", BigInt(10_000 - COST)]);
    // The cancel is recorded first: the result is dropped and a late failure releases nothing twice.
    const second = await submitted();
    await lifecycle.cancel(second.job.id);
    await lifecycle.onTaskEvent(succeededEvent(second.job));
    await lifecycle.onTaskEvent(event({ jobId: second.job.id, outcome: { case: "failed", value: { reason: "internal", message: "late" } } }));
    assert.deepEqual([(await lifecycle.get(second.job.id)).status, await available(second.accountId)], ["cancelled", 10_000n]);
  });

  it("a start that lands after a result claimed the job does not keep the result from being recorded", async () => {
    const { job } = await submitted();
    const claimed = await jobs.claim(job.id, "succeeded", { result_content_type: "image/png" });
    assert.ok(claimed);
    // The start lands between the claim and the status write (the claimed row still says queued).
    await lifecycle.onTaskEvent(event({ jobId: job.id, outcome: { case: "started", value: { deliveryCount: 1 } } }));
    assert.equal((await lifecycle.get(job.id)).status, "running");
    await lifecycle.onTaskEvent(succeededEvent(job));
    assert.equal((await lifecycle.get(job.id)).status, "succeeded");
  });

  it("started and progress extend the hold: a job running past the hold's first deadline keeps it", async () => {
    const { accountId, job } = await submitted({ holdTtlSeconds: 60 });
    billing.clock.advanceMs(50_000);
    await lifecycle.onTaskEvent(event({ jobId: job.id, outcome: { case: "started", value: { deliveryCount: 1 } } }));
    billing.clock.advanceMs(50_000);
    await lifecycle.onTaskEvent(event({ jobId: job.id, outcome: { case: "progress", value: { elapsedMs: 50_000 } } }));
    billing.clock.advanceMs(50_000);
    await billing.sweeper.sweepOnce();
    await lifecycle.onTaskEvent(succeededEvent(job));
    const done = await lifecycle.get(job.id);
    assert.deepEqual([done.status, done.charged_millicredits, done.hold_id], ["succeeded", COST, job.hold_id]);
    assert.equal(await available(accountId), BigInt(10_000 - COST));
  });

  it("a worker's stage reports raise the job's progress and never lower it; a heartbeat keeps it; success sets 1", async () => {
    const { job } = await submitted();
    const progressOf = async () => (await lifecycle.get(job.id)).progress;
    const stage = (stage: string, fraction: number) => event({ jobId: job.id, outcome: { case: "progress", value: { elapsedMs: 10, fraction, stage } } });
    assert.equal(await progressOf(), 0);
    await lifecycle.onTaskEvent(stage("decoded", 0.1));
    const decoded = await lifecycle.get(job.id);
    // A stage report may arrive before job.started (events are not ordered across subjects): it starts the job.
    assert.equal(decoded.status, "running");
    assert.ok(Math.abs(decoded.progress - 0.1) < 1e-6, String(decoded.progress));
    await lifecycle.onTaskEvent(stage("segmented", 0.8));
    const segmented = await lifecycle.get(job.id);
    assert.ok(Math.abs(segmented.progress - 0.8) < 1e-6, String(segmented.progress));
    // Late or repeated reports (a redelivered event, a retried delivery starting over) change nothing.
    await lifecycle.onTaskEvent(stage("decoded", 0.1));
    const late = await lifecycle.get(job.id);
    assert.deepEqual([late.progress, late.updated_at], [segmented.progress, segmented.updated_at], "a report that would not raise it is not written");
    await lifecycle.onTaskEvent(event({ jobId: job.id, outcome: { case: "progress", value: { elapsedMs: 60_000 } } }));
    assert.equal(await progressOf(), segmented.progress, "a heartbeat without a fraction keeps it");
    await lifecycle.onTaskEvent(succeededEvent(job));
    const done = await lifecycle.get(job.id);
    assert.deepEqual([done.status, done.progress], ["succeeded", 1]);
  });

  it("a watch that has waited out poll intervals still wakes at once on a change made in this process", async () => {
    const { job } = await submitted();
    // A long poll interval, so only the in-process wake-up can deliver the change in time.
    const watchPollMs = 3000;
    const watching = new JobLifecycle(jobs, workQueue, blobs, billingClient(), log, { watchPollMs });
    const stop = new AbortController();
    const updates = watching.watch(job.id, stop.signal);
    try {
      assert.equal((await updates.next()).value?.status, "queued");
      const next = updates.next();
      // One poll interval passes with no change: its wake-up must not be lost to the timeout.
      await new Promise((resolve) => setTimeout(resolve, watchPollMs + 500));
      const changedAt = Date.now();
      await watching.onTaskEvent(event({ jobId: job.id, outcome: { case: "started", value: { deliveryCount: 1 } } }));
      assert.equal((await next).value?.status, "running");
      const delayMs = Date.now() - changedAt;
      assert.ok(delayMs < watchPollMs / 2, `the change was seen ${delayMs} ms after it was made`);
    } finally {
      stop.abort();
      await updates.return(undefined);
    }
  });

  it("a full queue fails the submission with queue_full and returns the credits", async () => {
    while ((await workQueue.depth()) < QUEUE_LENGTH) await submitted();
    await assert.rejects(submitted(), (error: unknown) => {
      assert.ok(error instanceof ConnectError);
      assert.equal(error.code, Code.ResourceExhausted);
      assert.equal(reasonOf(error), "queue_full");
      assert.match(error.rawMessage, new RegExp(`queueLengthMax = ${QUEUE_LENGTH}`));
      return true;
    });
    assert.equal(await available(`account-${serial}`), 10_000n);
  });

  it("a queued video waiting its turn is not quiet: the reconciler leaves it to its time limit, re-queuing it only when the queue forgot its tasks", async () => {
    // A queue of its own: the shared one is full after the queue_full test.
    const videoQueue = new InProcessWorkQueue({ log, queueLengthMax: QUEUE_LENGTH });
    const quietMsMax = 60_000;
    const videoLifecycle = new JobLifecycle(jobs, videoQueue, blobs, billingClient(), log, { quietMsMax, requeuesMax: 1 });
    try {
      serial += 1;
      const accountId = `account-${serial}`;
      await billingClient().createAccount({ accountId });
      const hold = await billingClient().reserve({ accountId, pool: Pool.API, amountMillicredits: BigInt(COST), idempotencyKey: `hold-${serial}`, holdTtlSeconds: 900 });
      const job = await videoLifecycle.submit({
        accountId,
        idempotencyKey: `job-${serial}`,
        inputBlobKey: `inputs/${serial}`,
        options: undefined,
        video: { options: create(VideoOptionsSchema, { format: VideoFormat.WEBM }), durationMs: 300_000 },
        holdId: hold.holdId,
        heldMillicredits: COST,
        highPriority: false,
        longestSideMax: 0,
      });
      // Behind long videos: past the quiet window, well within its own time limit.
      await videoLifecycle.reconcile(new Date(Date.now() + 2 * (quietMsMax + 1000)));
      const waiting = await videoLifecycle.get(job.id);
      assert.deepEqual([waiting.status, waiting.requeues, waiting.error_reason], ["queued", 0, null], "not re-run, not failed as job_stuck");
      // A process that starts with a queue that forgot its tasks re-queues it.
      await videoLifecycle.reconcile(new Date(), { everyUnfinishedQuiet: true });
      assert.equal((await videoLifecycle.get(job.id)).requeues, 1);
      await videoLifecycle.cancel(job.id);
      assert.equal(await available(accountId), 10_000n);
    } finally {
      await videoQueue.close();
    }
  });

  it("an unknown job is NotFound with a reason", async () => {
    await assert.rejects(lifecycle.get("00000000-0000-0000-0000-000000000000"), (error: unknown) => error instanceof ConnectError && error.code === Code.NotFound);
  });
});
