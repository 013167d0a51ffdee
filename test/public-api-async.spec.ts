// The REST job API on a real single node: async submits and polling, signed result URLs, job
// listing and cancelling, deleting a job's files, Idempotency-Key replays charged once, and the
// headers of image responses. Batches are in public-api-batch.spec.ts (their own node and time).
import assert from "node:assert/strict";
import { readFileSync } from "node:fs";
import { join } from "node:path";
import { describe, it } from "node:test";
import sharp from "sharp";
import { createResultUrlSigner } from "../services/common/result-urls.ts";
import { IMAGE_MILLICREDITS, publicApiNode, tamperedSignature, TRIAL_MILLICREDITS, type JobJson } from "./public-api.testing.ts";

describe("the REST job API on a single node", () => {
  const api = publicApiNode("public-api");
  const { account, balance, imageForm, errorOf, getJob, pollUntilDone } = api;
  it("async=true answers 202 with the job; polled to succeeded, its result_url serves the image; tampered or expired URLs are refused; DELETE removes the files", async () => {
    const { accountId, key } = await account();
    const submitted = await fetch(`${api.node.url}/v1/matting?async=true`, { method: "POST", headers: { "x-api-key": key }, body: imageForm(api.photo) });
    assert.equal(submitted.status, 202);
    const queued = (await submitted.json()) as JobJson;
    assert.equal(submitted.headers.get("x-job-id"), queued.id);
    assert.ok(["queued", "running"].includes(queued.status), queued.status);
    assert.equal(queued.credits_charged, 0);
    assert.equal(queued.result_url, null);
    assert.equal(queued.error, null);
    assert.ok(queued.progress >= 0 && queued.progress < 1);

    const done = await pollUntilDone(key, queued.id);
    assert.equal(done.status, "succeeded", JSON.stringify(done));
    assert.equal(done.progress, 1);
    assert.equal(done.credits_charged, 0.5);
    assert.equal(queued.queue_time_ms, null, "no figures before the job ends");
    assert.ok(done.inference_time_ms! > 0 && done.queue_time_ms! >= 0, JSON.stringify(done));
    assert.ok(done.processing_time_ms! >= done.inference_time_ms!, "the worker's time includes the engine's work");
    assert.ok(done.result_url?.startsWith(`${api.node.url}/v1/results/${queued.id}?expires=`), done.result_url ?? "no result_url");
    assert.deepEqual(await balance(accountId), { available: TRIAL_MILLICREDITS - IMAGE_MILLICREDITS, held: 0n });

    // The URL is the credential: no API key.
    const result = await fetch(done.result_url!);
    assert.equal(result.status, 200);
    assert.equal(result.headers.get("content-type"), "image/png");
    assert.equal(result.headers.get("x-job-id"), queued.id);
    assert.equal(result.headers.get("x-credits-charged"), "0.5");
    assert.equal(result.headers.get("x-credits-remaining"), "9.5");
    assert.equal(result.headers.get("x-inference-time-ms"), String(done.inference_time_ms));
    assert.equal(result.headers.get("x-queue-time-ms"), String(done.queue_time_ms));
    const image = await sharp(Buffer.from(await result.arrayBuffer())).metadata();
    assert.deepEqual([image.width, image.height, image.hasAlpha], [64, 64, true]);

    const refused = await fetch(tamperedSignature(done.result_url!));
    assert.equal(refused.status, 403);
    assert.equal((await errorOf(refused)).code, "result_url_invalid");
    const otherJob = await fetch(done.result_url!.replace(queued.id, "00000000-0000-0000-0000-000000000000"));
    assert.equal(otherJob.status, 403, "a signature is for one job only");

    // Signed with the node's own key (kept in its data directory) but a day and more in the past.
    const key24h = readFileSync(join(api.dataDir, "result-url-key"), "utf8").trim();
    const signer = createResultUrlSigner({ key: key24h, publicUrl: api.node.url, ttlSeconds: 86_400 });
    const expired = await fetch(signer.urlFor(queued.id, new Date(Date.now() - 2 * 86_400_000)));
    assert.equal(expired.status, 403);
    assert.equal((await errorOf(expired)).code, "result_url_expired");

    const deleted = await fetch(`${api.node.url}/v1/jobs/${queued.id}`, { method: "DELETE", headers: { "x-api-key": key } });
    assert.equal(deleted.status, 200);
    const afterDelete = (await deleted.json()) as JobJson;
    assert.deepEqual([afterDelete.status, afterDelete.result_url, afterDelete.credits_charged], ["succeeded", null, 0.5]);
    const gone = await fetch(done.result_url!);
    assert.equal(gone.status, 404);
    assert.equal((await errorOf(gone)).code, "result_expired");
    assert.equal((await getJob(key, queued.id)).result_url, null);
    // Deleting twice answers the same; another account cannot see or delete the job.
    assert.equal((await fetch(`${api.node.url}/v1/jobs/${queued.id}`, { method: "DELETE", headers: { "x-api-key": key } })).status, 200);
    const stranger = await account();
    const strangers = await fetch(`${api.node.url}/v1/jobs/${queued.id}`, { method: "DELETE", headers: { "x-api-key": stranger.key } });
    assert.equal(strangers.status, 404);
    assert.equal((await errorOf(strangers)).code, "job_not_found");
  });

  it("a raw image body with output_format and bg_color=transparent in the query; image responses carry the job, credit and rate-limit headers", async () => {
    const { accountId, key } = await account(); // free plan: 10 requests per minute
    const before = Math.floor(Date.now() / 1000);
    const sent = performance.now();
    const response = await fetch(`${api.node.url}/v1/matting?output_format=webp&bg_color=transparent&size=full`, {
      method: "POST",
      headers: { "x-api-key": key, "content-type": "image/png" },
      body: api.photo,
    });
    assert.equal(response.status, 200, await response.clone().text());
    assert.equal(response.headers.get("content-type"), "image/webp");
    const image = await sharp(Buffer.from(await response.arrayBuffer())).metadata();
    assert.deepEqual([image.format, image.hasAlpha], ["webp", true]);
    assert.match(response.headers.get("x-job-id") ?? "", /^[0-9a-f-]{36}$/);
    assert.equal(response.headers.get("x-credits-charged"), "0.5");
    assert.equal(response.headers.get("x-credits-remaining"), "9.5");
    assert.equal((await balance(accountId)).available, TRIAL_MILLICREDITS - IMAGE_MILLICREDITS);
    const latencyMs = performance.now() - sent;
    // The worker's split of the call's time: what the client waited beyond it is the service's overhead.
    const [processingMs, queueMs, inferenceMs] = ["processing", "queue", "inference"].map((name) => response.headers.get(`x-${name}-time-ms`) ?? "");
    for (const figure of [processingMs, queueMs, inferenceMs]) assert.match(figure!, /^\d+$/);
    assert.ok(Number(inferenceMs) > 0 && Number(processingMs) >= Number(inferenceMs), `processing ${processingMs} ms, inference ${inferenceMs} ms`);
    assert.ok(Number(queueMs) + Number(inferenceMs) <= latencyMs, `queue ${queueMs} + inference ${inferenceMs} ms fit in the ${latencyMs.toFixed(0)} ms the call took`);
    assert.equal(response.headers.get("x-ratelimit-limit"), "10");
    assert.equal(response.headers.get("x-ratelimit-remaining"), "9");
    const reset = Number(response.headers.get("x-ratelimit-reset"));
    assert.ok(reset >= before && reset <= before + 61, `reset ${reset} is a Unix time within the minute`);
  });

  it("GET /v1/jobs pages the caller's jobs newest first; another account sees none of them", async () => {
    const { key } = await account();
    const ids: string[] = [];
    for (const image of [api.photo, api.otherPhoto, api.photo]) {
      const response = await fetch(`${api.node.url}/v1/matting?async=true`, { method: "POST", headers: { "x-api-key": key }, body: imageForm(image) });
      assert.equal(response.status, 202);
      ids.push(((await response.json()) as JobJson).id);
    }
    const list = async (query: string, apiKey = key) => {
      const response = await fetch(`${api.node.url}/v1/jobs${query}`, { headers: { "x-api-key": apiKey } });
      assert.equal(response.status, 200);
      return (await response.json()) as { jobs: JobJson[]; next_cursor: string | null };
    };
    const first = await list("?limit=2");
    assert.deepEqual(first.jobs.map((job) => job.id), [ids[2], ids[1]]);
    assert.ok(first.next_cursor);
    const second = await list(`?limit=2&cursor=${encodeURIComponent(first.next_cursor!)}`);
    assert.deepEqual(second.jobs.map((job) => job.id), [ids[0]]);
    assert.equal(second.next_cursor, null);
    assert.deepEqual((await list("")).jobs.map((job) => job.id), [...ids].reverse());
    const stranger = await account();
    assert.deepEqual((await list("", stranger.key)).jobs, []);
    const tooMany = await fetch(`${api.node.url}/v1/jobs?limit=1000`, { headers: { "x-api-key": key } });
    assert.equal(tooMany.status, 400);
    assert.match((await errorOf(tooMany)).title, /from 1 to 100/);
    const badCursor = await fetch(`${api.node.url}/v1/jobs?cursor=nonsense`, { headers: { "x-api-key": key } });
    assert.equal(badCursor.status, 400);
    for (const id of ids) await pollUntilDone(key, id);
  });

  it("an Idempotency-Key retry returns the first result and charges once, sync or async; the same key with another body is 422", async () => {
    const { accountId, key } = await account();
    const post = (image: Uint8Array, fields: Record<string, string> = {}, query = "") =>
      fetch(`${api.node.url}/v1/matting${query}`, { method: "POST", headers: { "x-api-key": key, "idempotency-key": "order-17" }, body: imageForm(image, fields) });
    const first = await post(api.photo, { format: "png" });
    assert.equal(first.status, 200);
    const firstBytes = Buffer.from(await first.arrayBuffer());
    const jobId = first.headers.get("x-job-id");
    const retry = await post(api.photo, { format: "png" });
    assert.equal(retry.status, 200);
    assert.equal(retry.headers.get("x-job-id"), jobId);
    assert.deepEqual(Buffer.from(await retry.arrayBuffer()), firstBytes);
    const asyncRetry = await post(api.photo, { format: "png" }, "?async=true");
    assert.equal(asyncRetry.status, 202);
    const job = (await asyncRetry.json()) as JobJson;
    assert.deepEqual([job.id, job.status, job.credits_charged], [jobId, "succeeded", 0.5]);
    assert.deepEqual(await balance(accountId), { available: TRIAL_MILLICREDITS - IMAGE_MILLICREDITS, held: 0n }, "charged once");

    for (const [image, fields] of [
      [api.otherPhoto, { format: "png" }],
      [api.photo, { format: "webp" }],
    ] as const) {
      const reused = await post(image, fields);
      assert.equal(reused.status, 422);
      const error = await errorOf(reused);
      assert.equal(error.code, "idempotency_key_reused");
      assert.match(error.title, /order-17 was first used for job .* with a different image or options; use a new key/);
    }
    assert.deepEqual(await balance(accountId), { available: TRIAL_MILLICREDITS - IMAGE_MILLICREDITS, held: 0n }, "refused replays hold and charge nothing");
  });
});
