// What the gateway does with a hold when submitting the job fails: the orchestrator's answer
// decides whether the job may exist. Real billing (test database) and a real orchestrator
// (in-process queue, bus and blobs); the faults are injected on the transport between them,
// after the orchestrator did its work (a lost answer) or before (a refusal).
import { create, toBinary } from "@bufbuild/protobuf";
import { Code, ConnectError, createClient, createRouterTransport, type Interceptor } from "@connectrpc/connect";
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
import { BillingService, Pool } from "../services/common/gen/cutline/billing/v1/billing_service_pb.ts";
import { TaskEventSchema } from "../services/common/gen/cutline/inference/v1/task_pb.ts";
import { JobStatus, OrchestratorService } from "../services/common/gen/cutline/orchestrator/v1/orchestrator_service_pb.ts";
import { imageLimitsOf } from "../services/common/images/image-limits.ts";
import { createUploadInspector } from "../services/common/images/upload.inspector.ts";
import { loadGatewayConfig } from "../services/gateway/gateway.config.ts";
import { createOrchestrator, type Orchestrator } from "../services/orchestrator/index.ts";
import type { BlobStore } from "../services/common/ports/blob-store.ts";
import { reasonOf } from "../services/common/errors.ts";
import { ImageJobs } from "../services/gateway/image-jobs.ts";

const log = pino({ level: "silent" });

describe("image jobs: the hold after a failed submit", () => {
  let billing: BillingFixture;
  let orchestrator: Orchestrator;
  let blobs: InProcessBlobStore;
  let workQueue: InProcessWorkQueue;
  let eventBus: InProcessEventBus;
  let photo: Uint8Array;
  const dataDir = mkdtempSync(join(tmpdir(), "cutline-image-jobs-"));
  const billingClient = () => createClient(BillingService, createRouterTransport((router) => router.service(BillingService, billing.handlers)));
  let serial = 0;

  /** ImageJobs whose calls to the orchestrator pass through `fault`, and to the blob store through `blobFault`. */
  function imageJobs(fault: Interceptor, blobFault: Partial<BlobStore> = {}): ImageJobs {
    const orchestratorClient = createClient(OrchestratorService, createRouterTransport(orchestrator.routes, { transport: { interceptors: [fault] } }));
    const blobStore: BlobStore = {
      put: (...args) => blobs.put(...args),
      get: (key) => blobs.get(key),
      putFile: (...args) => blobs.putFile(...args),
      getToFile: (...args) => blobs.getToFile(...args),
      delete: (key) => blobs.delete(key),
      close: async () => {},
      ...blobFault,
    } as BlobStore;
    return new ImageJobs(billingClient(), orchestratorClient, blobStore, createUploadInspector(imageLimitsOf(loadGatewayConfig({}))), log, {
      uploadBytesMax: 1_000_000,
      syncTimeoutMs: 10_000,
      holdTtlSeconds: 900,
      longestSide: { standard: 2048, pro: 4096 },
    });
  }

  async function account() {
    serial += 1;
    const accountId = `image-jobs-${serial}`;
    await billingClient().createAccount({ accountId });
    const admission = { owner: { accountId, keyId: `key-${serial}` }, plan: undefined, release: () => {} };
    return { accountId, admission };
  }

  const balance = (accountId: string) => billingClient().getBalance({ accountId, pool: Pool.API });

  before(async () => {
    billing = await createBillingFixture();
    blobs = new InProcessBlobStore({ dataDir, log });
    workQueue = new InProcessWorkQueue({ log });
    eventBus = new InProcessEventBus({ dataDir, log });
    orchestrator = createOrchestrator({ db: billing.db as Kysely<any>, workQueue, eventBus, blobStore: blobs, billing: billingClient(), log });
    await orchestrator.start();
    photo = new Uint8Array(await sharp({ create: { width: 64, height: 48, channels: 3, background: "#3366cc" } }).png().toBuffer());
  });

  after(async () => {
    await orchestrator?.stop();
    await Promise.all([workQueue?.close(), blobs?.close(), eventBus?.close()]);
    await billing?.assertHealthy();
    await billing?.dispose();
    rmSync(dataDir, { recursive: true, force: true });
  });

  it("an answer lost after the job was recorded keeps the hold: the job's result is charged on it, never served free", async () => {
    const { accountId, admission } = await account();
    const lostAnswer: Interceptor = (next) => async (request) => {
      await next(request);
      throw new ConnectError("the answer was lost", Code.DeadlineExceeded);
    };
    await assert.rejects(imageJobs(lostAnswer).submit(admission, photo, undefined, "lost-answer"), (error: unknown) => ConnectError.from(error).code === Code.DeadlineExceeded);
    const held = await balance(accountId);
    assert.ok(held.heldMillicredits > 0n, "the hold is left to the job");
    // The retry finds the same job; its result is charged on the first hold.
    const job = await imageJobs((next) => next).submit(admission, photo, undefined, "lost-answer");
    await orchestrator.lifecycle.onTaskEvent({
      subject: "job.succeeded",
      deliveryCount: 1,
      data: toBinary(TaskEventSchema, create(TaskEventSchema, { jobId: job.id, outcome: { case: "succeeded", value: { resultBlobKey: job.resultBlobKey, contentType: "image/png" } } })),
    });
    const done = await orchestrator.lifecycle.get(job.id);
    assert.deepEqual([done.status, done.hold_id, BigInt(done.charged_millicredits)], ["succeeded", job.holdId, held.heldMillicredits]);
    const after = await balance(accountId);
    assert.deepEqual([after.heldMillicredits, after.availableMillicredits], [0n, 10_000n - held.heldMillicredits]);
  });

  it("a refusal that recorded nothing returns the credits at once", async () => {
    const { accountId, admission } = await account();
    const refused: Interceptor = () => async () => {
      throw new ConnectError("no", Code.InvalidArgument);
    };
    await assert.rejects(imageJobs(refused).submit(admission, photo, undefined, "refused"), (error: unknown) => ConnectError.from(error).code === Code.InvalidArgument);
    const after = await balance(accountId);
    assert.deepEqual([after.heldMillicredits, after.availableMillicredits], [0n, 10_000n]);
  });

  it("a blob store that times out (NATS restarting) is UNAVAILABLE, retryable: never the caller's CANCELED; an input never stored returns the hold", async () => {
    const { accountId, admission } = await account();
    const timedOut = () => Promise.reject(Object.assign(new Error("TIMEOUT"), { name: "TimeoutError" }));
    const isUnavailable = (error: unknown) => error instanceof ConnectError && error.code === Code.Unavailable && reasonOf(error) === "storage_unavailable";
    await assert.rejects(imageJobs((next) => next, { put: timedOut }).submit(admission, photo, undefined, "put-timeout"), isUnavailable);
    const after = await balance(accountId);
    assert.deepEqual([after.heldMillicredits, after.availableMillicredits], [0n, 10_000n]);
    const job = await imageJobs((next) => next).submit(admission, photo, undefined, "get-timeout");
    const succeeded = await orchestrator.lifecycle.get(job.id);
    await assert.rejects(
      imageJobs((next) => next, { get: timedOut }).resultOf({ ...job, status: JobStatus.SUCCEEDED, resultBlobKey: succeeded.result_blob_key }),
      isUnavailable,
    );
    await orchestrator.lifecycle.cancel(job.id);
  });

  it("a watch that breaks under a synchronous call (the orchestrator restarting) is opened again: the paid result still reaches the caller", async () => {
    const { admission } = await account();
    let watches = 0;
    const breaksFirstWatch: Interceptor = (next) => async (request) => {
      if (request.method.name === "WatchJob" && ++watches === 1) throw new ConnectError("stream reset by the peer", Code.Canceled);
      return next(request);
    };
    const jobs = imageJobs(breaksFirstWatch);
    const job = await jobs.submit(admission, photo, undefined, "watch-breaks");
    await blobs.put(job.resultBlobKey, photo, { contentType: "image/png" });
    const waiting = jobs.waitForResult(job.id, new AbortController().signal);
    await orchestrator.lifecycle.onTaskEvent({
      subject: "job.succeeded",
      deliveryCount: 1,
      data: toBinary(TaskEventSchema, create(TaskEventSchema, { jobId: job.id, outcome: { case: "succeeded", value: { resultBlobKey: job.resultBlobKey, contentType: "image/png" } } })),
    });
    const result = await waiting;
    assert.equal(result.job.status, JobStatus.SUCCEEDED);
    assert.deepEqual(result.image, photo);
    assert.ok(watches >= 2);
  });

  it("zero retention: a synchronous job that fails keeps nothing either, its input deleted as soon as the failure is answered", async () => {
    const { accountId, admission } = await account();
    const jobs = imageJobs((next) => next);
    const listed = async () => (await orchestrator.lifecycle.list(accountId, { pageSize: 10, pageToken: "", jobIds: [] })).jobs;
    const answer = jobs.removeBackground(admission, photo, undefined, "zero-failed", new AbortController().signal, { zeroRetention: true });
    let submitted: Awaited<ReturnType<typeof listed>>[number] | undefined;
    for (const deadline = Date.now() + 5000; !submitted && Date.now() < deadline; ) {
      submitted = (await listed())[0];
      if (!submitted) await new Promise((resolve) => setTimeout(resolve, 20));
    }
    assert.ok(submitted, "the job was submitted");
    assert.equal(submitted.retention_seconds, 0);
    assert.ok(await blobs.get(submitted.input_blob_key), "the input is stored while the job runs");
    await orchestrator.lifecycle.onTaskEvent({
      subject: "job.failed",
      deliveryCount: 1,
      data: toBinary(TaskEventSchema, create(TaskEventSchema, { jobId: submitted.id, outcome: { case: "failed", value: { reason: "internal", message: "the model failed", userError: false } } })),
    });
    await assert.rejects(answer, (error: unknown) => reasonOf(ConnectError.from(error)) === "internal");
    assert.equal(await blobs.get(submitted.input_blob_key), undefined, "the input was deleted");
    assert.notEqual((await orchestrator.lifecycle.get(submitted.id)).files_deleted_at, null);
    assert.equal((await balance(accountId)).heldMillicredits, 0n);
  });

  it("the plan's priority lane reaches the job and the work queue: a pro plan's job is taken before a free plan's submitted earlier", async () => {
    const admitted = async (planCode: string) => {
      serial += 1;
      const accountId = `image-jobs-lane-${serial}`;
      await billingClient().createAccount({ accountId, planCode });
      const plan = (await billingClient().getAccount({ accountId })).account?.plan;
      return { owner: { accountId, keyId: `key-${serial}` }, plan, release: () => {} };
    };
    const free = await admitted("free");
    const pro = await admitted("pro");
    assert.deepEqual([free.plan?.priorityLane, pro.plan?.priorityLane], ["normal", "high"]);
    const jobs = imageJobs((next) => next);
    const freeJob = await jobs.submit(free, photo, undefined, "lane-free");
    const proJob = await jobs.submit(pro, photo, undefined, "lane-pro");
    assert.deepEqual([freeJob.highPriority, proJob.highPriority], [false, true]);
    // The queue has had no worker in this suite: every task submitted so far waits in it.
    const taken: { id: string; priority: string }[] = [];
    const worker = workQueue.consume(async (message) => {
      taken.push({ id: message.id, priority: message.priority });
      await message.ack();
    });
    const deadline = Date.now() + 5000;
    while (!taken.some((entry) => entry.id === freeJob.id) && Date.now() < deadline) await new Promise((resolve) => setTimeout(resolve, 20));
    await worker.drain();
    assert.deepEqual(taken[0], { id: proJob.id, priority: "high" }, "the pro job first, though submitted last");
    assert.deepEqual(taken.find((entry) => entry.id === freeJob.id), { id: freeJob.id, priority: "normal" });
  });

  it("a watch of a job that does not exist fails at once, not after the sync timeout", async () => {
    const started = Date.now();
    await assert.rejects(imageJobs((next) => next).waitForResult("00000000-0000-0000-0000-000000000000", new AbortController().signal), (error: unknown) => ConnectError.from(error).code === Code.NotFound);
    assert.ok(Date.now() - started < 5000);
  });
});
