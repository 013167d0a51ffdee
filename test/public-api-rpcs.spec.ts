// The typed JobService RPCs against a real single node over HTTP (Connect): WatchJob's progress
// from the inference worker's stages, ListJobs and SubmitBatch/GetBatch answering what the REST
// routes answer (they share JobReads and JobBatches).
import { Code, ConnectError, createClient, type Client } from "@connectrpc/connect";
import { createConnectTransport } from "@connectrpc/connect-node";
import assert from "node:assert/strict";
import { before, describe, it } from "node:test";
import { reasonOf } from "../services/common/errors.ts";
import { JobService, JobStatus, type Batch } from "../services/common/gen/cutline/gateway/v1/job_service_pb.ts";
import { IMAGE_MILLICREDITS, POLL_TIMEOUT_MS, publicApiNode, TRIAL_MILLICREDITS, type BatchJson, type JobJson } from "./public-api.testing.ts";

const BATCH_ITEMS_MAX = 3;
// Small, so a batch message past the server's per-upload read limit (this plus 1 MiB) is quick to build.
const UPLOAD_BYTES_MAX = 256 * 1024;

function refusedWith(code: Code, reason: string) {
  return (error: unknown) => {
    assert.ok(error instanceof ConnectError, String(error));
    assert.deepEqual([Code[error.code], reasonOf(error)], [Code[code], reason], error.rawMessage);
    return true;
  };
}

describe("JobService RPCs on a single node", () => {
  // Every stage reported (the default skips stages under 100 ms apart), and a small batch limit to refuse.
  const api = publicApiNode("public-api-rpcs", {
    INFERENCE_STAGE_PROGRESS_MS_MIN: "0",
    BATCH_ITEMS_MAX: String(BATCH_ITEMS_MAX),
    UPLOAD_BYTES_MAX: String(UPLOAD_BYTES_MAX),
  });
  const { account, balance, getJob } = api;
  let jobs: Client<typeof JobService>;
  const as = (key: string, headers: Record<string, string> = {}) => ({ headers: { "x-api-key": key, ...headers } });

  before(() => {
    jobs = createClient(JobService, createConnectTransport({ baseUrl: api.node.url, httpVersion: "1.1" }));
  });

  it("WatchJob streams the job's progress as the worker's stages end: never falling, ending at 1 with SUCCEEDED; GetJob and REST say the same", async () => {
    const { key } = await account();
    const { job } = await jobs.submit({ image: api.photo }, as(key));
    assert.ok(job);
    const seen: { status: string; progress: number }[] = [];
    for await (const update of jobs.watchJob({ jobId: job.id }, { ...as(key), timeoutMs: POLL_TIMEOUT_MS })) {
      seen.push({ status: JobStatus[update.job!.status], progress: update.job!.progress });
    }
    const trace = JSON.stringify(seen);
    assert.ok(seen.length >= 2, trace);
    assert.equal(seen[0]!.progress, 0, `a queued job has done nothing: ${trace}`);
    for (let index = 1; index < seen.length; index++) assert.ok(seen[index]!.progress >= seen[index - 1]!.progress, `progress fell: ${trace}`);
    assert.deepEqual(seen.at(-1), { status: "SUCCEEDED", progress: 1 }, trace);
    assert.ok(
      seen.some((update) => update.status === "RUNNING" && update.progress > 0 && update.progress < 1),
      `a running job reports the fraction its worker has done: ${trace}`,
    );

    const read = await jobs.getJob({ jobId: job.id }, as(key));
    assert.equal(read.job?.progress, 1);
    assert.equal((await getJob(key, job.id)).progress, 1);
  });

  it("ListJobs pages the caller's jobs newest first, as GET /v1/jobs does; page_size past JOBS_PAGE_LIMIT_MAX is refused; another account sees none", async () => {
    const { key } = await account();
    const ids: string[] = [];
    for (const image of [api.photo, api.otherPhoto, api.photo]) {
      const { job } = await jobs.submit({ image }, as(key));
      ids.push(job!.id);
      // Cancelled while queued: listed like any other job, without spending model time here.
      await jobs.cancelJob({ jobId: job!.id }, as(key)).catch(() => undefined);
    }
    const newestFirst = [...ids].reverse();
    const first = await jobs.listJobs({ pageSize: 2 }, as(key));
    assert.deepEqual(first.jobs.map((job) => job.id), newestFirst.slice(0, 2));
    assert.notEqual(first.nextPageToken, "");
    const second = await jobs.listJobs({ pageSize: 2, pageToken: first.nextPageToken }, as(key));
    assert.deepEqual(second.jobs.map((job) => job.id), newestFirst.slice(2));
    assert.equal(second.nextPageToken, "");

    const rest = await fetch(`${api.node.url}/v1/jobs?limit=2`, { headers: { "x-api-key": key } });
    const restPage = (await rest.json()) as { jobs: JobJson[]; next_cursor: string | null };
    assert.deepEqual(restPage.jobs.map((job) => job.id), newestFirst.slice(0, 2));
    assert.equal(restPage.next_cursor, first.nextPageToken, "one cursor for both faces");

    await assert.rejects(jobs.listJobs({ pageSize: 101 }, as(key)), (error: unknown) => {
      refusedWith(Code.InvalidArgument, "invalid_request")(error);
      assert.match((error as ConnectError).rawMessage, /page_size must be a whole number from 1 to 100 \(JOBS_PAGE_LIMIT_MAX\); got 101/);
      return true;
    });
    const stranger = await account();
    assert.deepEqual((await jobs.listJobs({}, as(stranger.key))).jobs, []);
  });

  it("SubmitBatch: each item its own job or refusal; a replay answers the same batch and charges once; a reused key with other images, or past BATCH_ITEMS_MAX, is refused; GetBatch answers what GET /v1/batches/{id} does", async () => {
    const { accountId, key } = await account();
    const images = [api.photo, new TextEncoder().encode("%PDF-1.7 not an image"), api.otherPhoto];
    const submitted = await jobs.submitBatch({ images }, as(key, { "idempotency-key": "rpc-batch-one" }));
    const batch = submitted.batch!;
    assert.deepEqual(batch.items.map((item) => item.index), [0, 1, 2]);
    assert.equal(batch.items[1]!.job, undefined);
    assert.equal(batch.items[1]!.errorReason, "unsupported_format");
    for (const index of [0, 2]) {
      assert.ok(batch.items[index]!.job?.id, `item ${index} became a job`);
      assert.equal(batch.items[index]!.errorReason, "");
    }

    let current: Batch = batch;
    const deadline = Date.now() + POLL_TIMEOUT_MS;
    const finished = (status: JobStatus | undefined) => status === JobStatus.SUCCEEDED || status === JobStatus.FAILED;
    while (!current.items.every((item) => item.job === undefined || finished(item.job.status))) {
      assert.ok(Date.now() < deadline, `the batch did not finish within ${POLL_TIMEOUT_MS} ms`);
      await new Promise((resolve) => setTimeout(resolve, 300));
      current = (await jobs.getBatch({ batchId: batch.id }, as(key))).batch!;
    }
    for (const index of [0, 2]) {
      assert.equal(current.items[index]!.job?.status, JobStatus.SUCCEEDED);
      assert.equal(current.items[index]!.job?.creditsChargedMillicredits, IMAGE_MILLICREDITS);
      assert.equal(current.items[index]!.job?.progress, 1);
    }
    const charged = TRIAL_MILLICREDITS - 2n * IMAGE_MILLICREDITS;
    assert.deepEqual(await balance(accountId), { available: charged, held: 0n });

    const rest = await fetch(`${api.node.url}/v1/batches/${batch.id}`, { headers: { "x-api-key": key } });
    const restBatch = (await rest.json()) as BatchJson;
    assert.equal(restBatch.batch_id, batch.id);
    assert.deepEqual(
      restBatch.items.map((item) => [item.index, item.job?.id ?? null, item.job?.status ?? null, item.error?.code ?? null]),
      current.items.map((item) => [item.index, item.job?.id ?? null, item.job ? "succeeded" : null, item.errorReason || null]),
    );

    const replay = await jobs.submitBatch({ images }, as(key, { "idempotency-key": "rpc-batch-one" }));
    assert.equal(replay.batch?.id, batch.id);
    assert.deepEqual(replay.batch?.items.map((item) => item.job?.id ?? null), batch.items.map((item) => item.job?.id ?? null));
    assert.deepEqual(await balance(accountId), { available: charged, held: 0n }, "the replay charged nothing");

    await assert.rejects(jobs.submitBatch({ images: [api.photo] }, as(key, { "idempotency-key": "rpc-batch-one" })), refusedWith(Code.InvalidArgument, "idempotency_key_reused"));
    const tooMany = Array.from({ length: BATCH_ITEMS_MAX + 1 }, () => api.photo);
    await assert.rejects(jobs.submitBatch({ images: tooMany }, as(key)), (error: unknown) => {
      refusedWith(Code.InvalidArgument, "too_many_items")(error);
      assert.match((error as ConnectError).rawMessage, /4 images; at most 3 per call \(BATCH_ITEMS_MAX\)/);
      return true;
    });
    await assert.rejects(jobs.submitBatch({ images: [] }, as(key)), refusedWith(Code.InvalidArgument, "missing_image"));
    assert.deepEqual(await balance(accountId), { available: charged, held: 0n }, "refused batches hold nothing");

    // One message larger than any single upload may be (it holds the whole batch); each image is still held to UPLOAD_BYTES_MAX.
    const large = Array.from({ length: BATCH_ITEMS_MAX }, () => new Uint8Array(UPLOAD_BYTES_MAX * 2).fill(7));
    const oversized = (await jobs.submitBatch({ images: large }, as(key))).batch!;
    assert.deepEqual(oversized.items.map((item) => [item.job, item.errorReason]), large.map(() => [undefined, "too_many_bytes"]));
    assert.match(oversized.items[0]!.errorMessage, /524288 bytes; the upload limit is 262144 bytes \(UPLOAD_BYTES_MAX\)/);
    assert.deepEqual(await balance(accountId), { available: charged, held: 0n }, "refused items hold nothing");

    const stranger = await account();
    await assert.rejects(jobs.getBatch({ batchId: batch.id }, as(stranger.key)), refusedWith(Code.NotFound, "batch_not_found"));
  });
});
