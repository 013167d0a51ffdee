// Jobs that went quiet: the reconciler re-queues, fails and refunds, or finishes them; and a single
// node that restarts with jobs unfinished (its in-memory queue lost their tasks) puts them back
// at start instead of after they go quiet. Real billing (test database) and in-process ports; the
// "restart" is a new orchestrator on a new, empty queue. The tests run in order on one database.
import { createClient, createRouterTransport } from "@connectrpc/connect";
import assert from "node:assert/strict";
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { after, before, describe, it } from "node:test";
import type { Kysely } from "kysely";
import pino from "pino";
import { createBillingFixture, type BillingFixture } from "../services/billing/billing.testing.ts";
import { InProcessBlobStore, InProcessEventBus, InProcessWorkQueue } from "../services/common/adapters/index.ts";
import { create, toBinary, type MessageInitShape } from "@bufbuild/protobuf";
import { BillingService, Pool } from "../services/common/gen/cutline/billing/v1/billing_service_pb.ts";
import { SegmentTaskSchema, TaskEventSchema, TaskKind } from "../services/common/gen/cutline/inference/v1/task_pb.ts";
import { VideoFormat, VideoOptionsSchema as VideoFormatOptions } from "../services/common/gen/cutline/inference/v1/video_options_pb.ts";
import { cancelMarkerKeyOf } from "../services/common/job-cancel-marker.ts";
import { fromBinary } from "@bufbuild/protobuf";
import { createOrchestrator } from "../services/orchestrator/index.ts";
import { JobLifecycle } from "../services/orchestrator/job-lifecycle.ts";
import { migrateToLatest } from "../services/common/migrate.ts";
import { JobStore } from "../services/orchestrator/store/job.store.ts";
import { AccountSettingsStore } from "../services/orchestrator/store/account-settings.store.ts";
import { orchestratorMigrations } from "../services/orchestrator/store/migrations.ts";

const log = pino({ level: "silent" });

describe("orchestrator restart", () => {
  let billing: BillingFixture;
  let blobs: InProcessBlobStore;
  let eventBus: InProcessEventBus;
  const dataDir = mkdtempSync(join(tmpdir(), "cutline-orchestrator-restart-"));
  const billingClient = () => createClient(BillingService, createRouterTransport((router) => router.service(BillingService, billing.handlers)));

  before(async () => {
    billing = await createBillingFixture();
    await migrateToLatest(billing.db as Kysely<any>, "orchestrator", orchestratorMigrations);
    blobs = new InProcessBlobStore({ dataDir, log });
    eventBus = new InProcessEventBus({ dataDir, log });
  });

  after(async () => {
    await Promise.all([blobs?.close(), eventBus?.close()]);
    await billing?.assertHealthy();
    await billing?.dispose();
    rmSync(dataDir, { recursive: true, force: true });
  });

  it("the reconciler re-queues a quiet job, then fails it and returns its credits; a claimed outcome it finishes", async () => {
    const workQueue = new InProcessWorkQueue({ log });
    const quietMsMax = 60_000;
    const lifecycle = new JobLifecycle(new JobStore(billing.db as Kysely<any>), workQueue, blobs, billingClient(), log, { quietMsMax, requeuesMax: 1 });
    const submit = async (name: string) => {
      await billingClient().createAccount({ accountId: name });
      const hold = await billingClient().reserve({ accountId: name, pool: Pool.API, amountMillicredits: 250n, idempotencyKey: `${name}-hold` });
      const job = await lifecycle.submit({
        accountId: name,
        idempotencyKey: `${name}-job`,
        inputBlobKey: `inputs/${name}`,
        options: undefined,
        holdId: hold.holdId,
        heldMillicredits: 250,
        highPriority: false,
        longestSideMax: 0,
      });
      return job;
    };
    const available = async (accountId: string) => (await billingClient().getBalance({ accountId, pool: Pool.API })).availableMillicredits;
    // Times given to the reconciler, so the test does not depend on how fast this machine is.
    const quietAfter = (passes: number) => new Date(Date.now() + passes * (quietMsMax + 1000));
    try {
      const job = await submit("quiet-1");
      assert.equal(await lifecycle.reconcile(new Date()), 0); // not quiet yet
      await lifecycle.reconcile(quietAfter(1));
      assert.equal((await lifecycle.get(job.id)).requeues, 1);
      assert.equal(await workQueue.depth(), 1); // the job id dedups a task still queued
      await lifecycle.reconcile(quietAfter(2));
      const failed = await lifecycle.get(job.id);
      assert.deepEqual([failed.status, failed.error_reason], ["failed", "job_stuck"]);
      assert.equal(await available("quiet-1"), 10_000n);
      // A result claimed just before a crash: the reconciler charges it and records the success.
      const crashed = await submit("quiet-2");
      await new JobStore(billing.db as Kysely<any>).claim(crashed.id, "succeeded", { result_content_type: "image/png" });
      await lifecycle.reconcile(quietAfter(3));
      assert.deepEqual([(await lifecycle.get(crashed.id)).status, await available("quiet-2")], ["succeeded", 10_000n - 250n]);
    } finally {
      await workQueue.close();
    }
  });

  it("a job running past JOB_TIMEOUT_MS fails job_timeout and returns its credits, however alive its worker says it is; its late result is deleted, not charged", async () => {
    const workQueue = new InProcessWorkQueue({ log });
    const timeoutMs = 60_000;
    // Quiet detection far away: only the timeout can end this job.
    const lifecycle = new JobLifecycle(new JobStore(billing.db as Kysely<any>), workQueue, blobs, billingClient(), log, { timeoutMs, quietMsMax: 3_600_000 });
    const accountId = "timeout-1";
    try {
      await billingClient().createAccount({ accountId });
      const hold = await billingClient().reserve({ accountId, pool: Pool.API, amountMillicredits: 250n, idempotencyKey: "timeout-hold" });
      const job = await lifecycle.submit({ accountId, idempotencyKey: "timeout-job", inputBlobKey: "inputs/timeout", options: undefined, holdId: hold.holdId, heldMillicredits: 250, highPriority: false, longestSideMax: 0 });
      const taskEvent = (outcome: MessageInitShape<typeof TaskEventSchema>["outcome"]) => {
        const message = create(TaskEventSchema, { jobId: job.id, outcome });
        return { subject: `job.${message.outcome.case}`, data: toBinary(TaskEventSchema, message), deliveryCount: 1 };
      };
      await lifecycle.onTaskEvent(taskEvent({ case: "started", value: { deliveryCount: 1 } }));
      await lifecycle.onTaskEvent(taskEvent({ case: "progress", value: { elapsedMs: 1000 } }));
      assert.equal((await lifecycle.get(job.id)).status, "running");
      assert.equal(await lifecycle.reconcile(new Date(Date.now() + timeoutMs - 5000)), 0, "not past the timeout yet");
      assert.equal(await lifecycle.reconcile(new Date(Date.now() + timeoutMs + 1000)), 1);
      const failed = await lifecycle.get(job.id);
      assert.deepEqual([failed.status, failed.error_reason, failed.user_error], ["failed", "job_timeout", false]);
      assert.match(failed.error_message ?? "", /within 60000 ms .*JOB_TIMEOUT_MS/);
      const stored = await billing.db.selectFrom("billing_holds").select("status").where("id", "=", hold.holdId).executeTakeFirstOrThrow();
      assert.equal(stored.status, "released", "released, never captured");
      assert.equal((await billingClient().getBalance({ accountId, pool: Pool.API })).availableMillicredits, 10_000n);
      // The worker finishes after all: its result is nobody's.
      await blobs.put(job.result_blob_key, new Uint8Array([1, 2, 3]), { contentType: "image/png" });
      await lifecycle.onTaskEvent(taskEvent({ case: "succeeded", value: { resultBlobKey: job.result_blob_key, contentType: "image/png", processingTimeMs: 70_000 } }));
      assert.equal(await blobs.get(job.result_blob_key), undefined, "the late result is deleted");
      assert.equal((await lifecycle.get(job.id)).status, "failed");
      assert.equal((await billingClient().getBalance({ accountId, pool: Pool.API })).availableMillicredits, 10_000n, "nothing charged");
    } finally {
      await workQueue.close();
    }
  });

  it("a video job: its task carries the kind and options, frame progress reaches the job, its timeout grows with its duration (VIDEO_JOB_TIMEOUT_MS_PER_SECOND), and ending it leaves the worker's stop marker", async () => {
    const workQueue = new InProcessWorkQueue({ log });
    const timeoutMs = 60_000;
    const videoTimeoutMsPerSecond = 10_000;
    const lifecycle = new JobLifecycle(new JobStore(billing.db as Kysely<any>), workQueue, blobs, billingClient(), log, { timeoutMs, videoTimeoutMsPerSecond, quietMsMax: 3_600_000 });
    const taken: Uint8Array[] = [];
    const subscription = workQueue.consume(async (message) => {
      taken.push(message.payload);
      await message.ack();
    });
    const accountId = "video-timeout-1";
    try {
      await billingClient().createAccount({ accountId });
      const hold = await billingClient().reserve({ accountId, pool: Pool.API, amountMillicredits: 3000n, idempotencyKey: "video-timeout-hold" });
      // 2.5 s of video: three started seconds, so 30 s more than an image's limit.
      const job = await lifecycle.submit({
        accountId,
        idempotencyKey: "video-timeout-job",
        inputBlobKey: "inputs/video-timeout",
        options: undefined,
        holdId: hold.holdId,
        heldMillicredits: 3000,
        highPriority: false,
        longestSideMax: 160,
        video: { options: create(VideoFormatOptions, { format: VideoFormat.MOV }), durationMs: 2500 },
      });
      assert.deepEqual([job.kind, job.video_duration_ms, job.timeout_ms], ["video", 2500, timeoutMs + 3 * videoTimeoutMsPerSecond]);
      for (let waited = 0; taken.length === 0 && waited < 2000; waited += 20) await new Promise((resolve) => setTimeout(resolve, 20));
      const task = fromBinary(SegmentTaskSchema, taken[0]!);
      assert.deepEqual([task.kind, task.videoOptions?.format, task.videoDurationMs, task.longestSideMax], [TaskKind.VIDEO, VideoFormat.MOV, 2500, 160]);

      const taskEvent = (outcome: MessageInitShape<typeof TaskEventSchema>["outcome"]) => {
        const message = create(TaskEventSchema, { jobId: job.id, outcome });
        return { subject: `job.${message.outcome.case}`, data: toBinary(TaskEventSchema, message), deliveryCount: 1 };
      };
      await lifecycle.onTaskEvent(taskEvent({ case: "started", value: { deliveryCount: 1 } }));
      await lifecycle.onTaskEvent(taskEvent({ case: "progress", value: { stage: "frames", fraction: 0.2, framesDone: 12, framesTotal: 60, etaSeconds: 40 } }));
      // Frames advance even where the fraction does not (a report's fraction rounded to the same value).
      await lifecycle.onTaskEvent(taskEvent({ case: "progress", value: { stage: "frames", fraction: 0.2, framesDone: 13, framesTotal: 60, etaSeconds: 39 } }));
      const running = await lifecycle.get(job.id);
      assert.deepEqual([running.status, running.frames_done, running.frames_total, running.eta_seconds], ["running", 13, 60, 39]);

      assert.equal(await lifecycle.reconcile(new Date(Date.now() + timeoutMs + 1000)), 0, "past an image's limit, not a 2.5 s video's");
      assert.equal(await blobs.get(cancelMarkerKeyOf(job.id)), undefined);
      assert.equal(await lifecycle.reconcile(new Date(Date.now() + timeoutMs + 3 * videoTimeoutMsPerSecond + 1000)), 1);
      const failed = await lifecycle.get(job.id);
      assert.deepEqual([failed.status, failed.error_reason], ["failed", "job_timeout"]);
      assert.match(failed.error_message ?? "", /within 90000 ms .*VIDEO_JOB_TIMEOUT_MS_PER_SECOND/);
      assert.ok(await blobs.get(cancelMarkerKeyOf(job.id)), "the worker is told to stop its ffmpeg");
      assert.equal((await billingClient().getBalance({ accountId, pool: Pool.API })).availableMillicredits, 10_000n, "released, nothing charged");
    } finally {
      await subscription.drain();
      await workQueue.close();
    }
  });

  it("a failure claimed before a crash and found past JOB_TIMEOUT_MS is finished with its own reason, not job_timeout", async () => {
    const workQueue = new InProcessWorkQueue({ log });
    const timeoutMs = 60_000;
    const store = new JobStore(billing.db as Kysely<any>);
    const lifecycle = new JobLifecycle(store, workQueue, blobs, billingClient(), log, { timeoutMs, quietMsMax: 3_600_000 });
    const accountId = "timeout-claimed-1";
    try {
      await billingClient().createAccount({ accountId });
      const hold = await billingClient().reserve({ accountId, pool: Pool.API, amountMillicredits: 250n, idempotencyKey: "timeout-claimed-hold" });
      const job = await lifecycle.submit({ accountId, idempotencyKey: "timeout-claimed-job", inputBlobKey: "inputs/timeout-claimed", options: undefined, holdId: hold.holdId, heldMillicredits: 250, highPriority: false, longestSideMax: 0 });
      // The worker's failure was claimed, then the orchestrator died before releasing and marking it.
      await store.claim(job.id, "failed", { error_reason: "corrupt_image", error_message: "the image is truncated", user_error: true });
      assert.equal(await lifecycle.reconcile(new Date(Date.now() + timeoutMs + 1000)), 1);
      const failed = await lifecycle.get(job.id);
      assert.deepEqual([failed.status, failed.error_reason, failed.user_error], ["failed", "corrupt_image", true]);
      assert.equal((await billingClient().getBalance({ accountId, pool: Pool.API })).availableMillicredits, 10_000n, "released once, nothing charged");
    } finally {
      await workQueue.close();
    }
  });

  it("the retention sweeper deletes an ended job's files once the account's retention has run out, marks them expired, and leaves the rest", async () => {
    const workQueue = new InProcessWorkQueue({ log });
    const jobs = new JobStore(billing.db as Kysely<any>);
    const settings = new AccountSettingsStore(billing.db as Kysely<any>);
    const lifecycle = new JobLifecycle(jobs, workQueue, blobs, billingClient(), log, { settings });
    try {
      const ended = async (accountId: string, retentionHours: number | undefined) => {
        await billingClient().createAccount({ accountId });
        if (retentionHours !== undefined) await settings.setRetentionHours(accountId, retentionHours);
        const hold = await billingClient().reserve({ accountId, pool: Pool.API, amountMillicredits: 250n, idempotencyKey: `${accountId}-hold` });
        const job = await lifecycle.submit({ accountId, idempotencyKey: `${accountId}-job`, inputBlobKey: `inputs/${accountId}`, options: undefined, holdId: hold.holdId, heldMillicredits: 250, highPriority: false, longestSideMax: 0 });
        await blobs.put(job.input_blob_key, new Uint8Array([1]), {});
        await blobs.put(job.result_blob_key, new Uint8Array([2]), {});
        const message = create(TaskEventSchema, { jobId: job.id, outcome: { case: "succeeded", value: { resultBlobKey: job.result_blob_key, contentType: "image/png", processingTimeMs: 5 } } });
        await lifecycle.onTaskEvent({ subject: "job.succeeded", data: toBinary(TaskEventSchema, message), deliveryCount: 1 });
        return lifecycle.get(job.id);
      };
      const hourly = await ended("retention-1h", 1);
      const daily = await ended("retention-default", undefined);
      assert.deepEqual([hourly.retention_seconds, daily.retention_seconds], [3600, 86_400]);
      const inHours = (hours: number) => new Date(Date.now() + hours * 3_600_000);
      const expiredAt = async (at: Date) => {
        await lifecycle.expireFiles(at);
        return Promise.all([hourly, daily].map(async (job) => (await lifecycle.get(job.id)).files_expired));
      };
      assert.deepEqual(await expiredAt(inHours(0.9)), [false, false]);
      assert.deepEqual(await expiredAt(inHours(1.1)), [true, false]);
      assert.equal(await blobs.get(hourly.input_blob_key), undefined);
      assert.equal(await blobs.get(hourly.result_blob_key), undefined);
      assert.ok(await blobs.get(daily.result_blob_key), "the 24 h job's result is kept");
      assert.notEqual((await lifecycle.get(hourly.id)).files_deleted_at, null);
      assert.deepEqual(await expiredAt(inHours(24.1)), [true, true]);
      assert.equal(await lifecycle.expireFiles(inHours(48)), 0, "each job once");
    } finally {
      await workQueue.close();
    }
  });

  it("with an in-memory queue, jobs left queued by the last run are queued again at start", async () => {
    const deps = { db: billing.db as Kysely<any>, eventBus, blobStore: blobs, billing: billingClient(), log, requeueUnfinishedAtStart: true };
    const firstQueue = new InProcessWorkQueue({ log });
    const first = createOrchestrator({ ...deps, workQueue: firstQueue });
    await first.start();
    await billingClient().createAccount({ accountId: "restart-1" });
    const hold = await billingClient().reserve({ accountId: "restart-1", pool: Pool.API, amountMillicredits: 250n, idempotencyKey: "restart-hold" });
    const job = await first.lifecycle.submit({
      accountId: "restart-1",
      idempotencyKey: "restart-job",
      inputBlobKey: "inputs/restart",
      options: undefined,
      holdId: hold.holdId,
      heldMillicredits: 250,
      highPriority: false,
      longestSideMax: 0,
    });
    await first.stop();
    await firstQueue.close(); // the process ends: its queue is gone

    const secondQueue = new InProcessWorkQueue({ log });
    const second = createOrchestrator({ ...deps, workQueue: secondQueue });
    await second.start();
    try {
      assert.equal(await secondQueue.depth(), 1);
      const requeued = await second.lifecycle.get(job.id);
      assert.deepEqual([requeued.status, requeued.requeues], ["queued", 1]);
      await second.lifecycle.cancel(job.id); // ends the hold for the ledger check
    } finally {
      await second.stop();
      await secondQueue.close();
    }
  });
});
