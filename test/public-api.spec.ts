// The REST job API against a real single node (PGlite, in-process adapters, the real model):
// async submits and polling, signed result URLs, job listing, deleting a job's files, batches
// with a bad item, Idempotency-Key replays charged once, and the headers of image responses.
// Images are 64×64 (the ≤ 0.25 MP tier: 0.25 credit each) so the CPU model stays quick.
import assert from "node:assert/strict";
import { mkdtempSync, readFileSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { after, before, describe, it } from "node:test";
import sharp from "sharp";
import { Pool } from "../services/common/gen/cutline/billing/v1/billing_service_pb.ts";
import { createResultUrlSigner } from "../services/common/result-urls.ts";
import { startSingleNode, type SingleNode } from "../services/single-node.ts";

interface JobJson {
  id: string;
  status: string;
  progress: number;
  credits_charged: number;
  result_url: string | null;
  error: { code: string; title: string } | null;
}

interface BatchJson {
  batch_id: string;
  items: { index: number; job: JobJson | null; error: { code: string; title: string } | null }[];
}

const TRIAL_MILLICREDITS = 10_000n;
const IMAGE_MILLICREDITS = 250n;
const POLL_TIMEOUT_MS = 120_000;
// Nineteen model runs: about 20 s on an idle CPU, many times that on one shared with other work.
const BATCH_TIMEOUT_MS = 540_000;

describe("the REST job API on a single node", () => {
  let node: SingleNode;
  const dataDir = mkdtempSync(join(tmpdir(), "cutline-public-api-"));
  let photo: Uint8Array;
  let otherPhoto: Uint8Array;
  let serial = 0;

  async function account(): Promise<{ accountId: string; key: string }> {
    serial += 1;
    const accountId = `public-api-${serial}`;
    return { accountId, key: await node.provisionAccount(accountId) };
  }

  async function balance(accountId: string): Promise<{ available: bigint; held: bigint }> {
    const answer = await node.billing.getBalance({ accountId, pool: Pool.API });
    return { available: answer.availableMillicredits, held: answer.heldMillicredits };
  }

  function imageForm(image: Uint8Array, fields: Record<string, string> = {}): FormData {
    const form = new FormData();
    form.append("image_file", new Blob([image], { type: "image/png" }), "photo.png");
    for (const [name, value] of Object.entries(fields)) form.append(name, value);
    return form;
  }

  async function errorOf(response: Response): Promise<{ code: string; title: string }> {
    return ((await response.json()) as { errors: { code: string; title: string }[] }).errors[0]!;
  }

  async function getJob(key: string, id: string): Promise<JobJson> {
    const response = await fetch(`${node.url}/v1/jobs/${id}`, { headers: { "x-api-key": key } });
    assert.equal(response.status, 200);
    return (await response.json()) as JobJson;
  }

  async function pollUntilDone(key: string, id: string): Promise<JobJson> {
    const deadline = Date.now() + POLL_TIMEOUT_MS;
    for (;;) {
      const job = await getJob(key, id);
      if (!["queued", "running"].includes(job.status)) return job;
      assert.ok(Date.now() < deadline, `job ${id} still ${job.status} after ${POLL_TIMEOUT_MS} ms`);
      await new Promise((resolve) => setTimeout(resolve, 200));
    }
  }

  before(async () => {
    node = await startSingleNode({ CUTLINE_DATA_DIR: dataDir, PORT: "0", METRICS_PORT: "off", LOG_LEVEL: "warn", INFERENCE_WARMUP_RUNS: "1" });
    await node.ready;
    const disc = (colour: string) =>
      Buffer.from(`<svg xmlns="http://www.w3.org/2000/svg" width="64" height="64"><rect width="64" height="64" fill="#d8e4f0"/><circle cx="32" cy="34" r="18" fill="${colour}"/></svg>`);
    photo = new Uint8Array(await sharp(disc("#c0501a")).png().toBuffer());
    otherPhoto = new Uint8Array(await sharp(disc("#1a50c0")).png().toBuffer());
  });

  after(async () => {
    await node?.stop();
    rmSync(dataDir, { recursive: true, force: true });
  });

  it("async=true answers 202 with the job; polled to succeeded, its result_url serves the image; tampered or expired URLs are refused; DELETE removes the files", async () => {
    const { accountId, key } = await account();
    const submitted = await fetch(`${node.url}/v1/matting?async=true`, { method: "POST", headers: { "x-api-key": key }, body: imageForm(photo) });
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
    assert.equal(done.credits_charged, 0.25);
    assert.ok(done.result_url?.startsWith(`${node.url}/v1/results/${queued.id}?expires=`), done.result_url ?? "no result_url");
    assert.deepEqual(await balance(accountId), { available: TRIAL_MILLICREDITS - IMAGE_MILLICREDITS, held: 0n });

    // The URL is the credential: no API key.
    const result = await fetch(done.result_url!);
    assert.equal(result.status, 200);
    assert.equal(result.headers.get("content-type"), "image/png");
    assert.equal(result.headers.get("x-job-id"), queued.id);
    assert.equal(result.headers.get("x-credits-charged"), "0.25");
    assert.equal(result.headers.get("x-credits-remaining"), "9.75");
    const image = await sharp(Buffer.from(await result.arrayBuffer())).metadata();
    assert.deepEqual([image.width, image.height, image.hasAlpha], [64, 64, true]);

    const tampered = done.result_url!.replace(/signature=([0-9a-f]+)/, (_, hex: string) => `signature=${hex.slice(0, -1)}${hex.endsWith("0") ? "1" : "0"}`);
    const refused = await fetch(tampered);
    assert.equal(refused.status, 403);
    assert.equal((await errorOf(refused)).code, "result_url_invalid");
    const otherJob = await fetch(done.result_url!.replace(queued.id, "00000000-0000-0000-0000-000000000000"));
    assert.equal(otherJob.status, 403, "a signature is for one job only");

    // Signed with the node's own key (kept in its data directory) but a day and more in the past.
    const key24h = readFileSync(join(dataDir, "result-url-key"), "utf8").trim();
    const signer = createResultUrlSigner({ key: key24h, publicUrl: node.url, ttlSeconds: 86_400 });
    const expired = await fetch(signer.urlFor(queued.id, new Date(Date.now() - 2 * 86_400_000)));
    assert.equal(expired.status, 403);
    assert.equal((await errorOf(expired)).code, "result_url_expired");

    const deleted = await fetch(`${node.url}/v1/jobs/${queued.id}`, { method: "DELETE", headers: { "x-api-key": key } });
    assert.equal(deleted.status, 200);
    const afterDelete = (await deleted.json()) as JobJson;
    assert.deepEqual([afterDelete.status, afterDelete.result_url, afterDelete.credits_charged], ["succeeded", null, 0.25]);
    const gone = await fetch(done.result_url!);
    assert.equal(gone.status, 404);
    assert.equal((await errorOf(gone)).code, "result_expired");
    assert.equal((await getJob(key, queued.id)).result_url, null);
    // Deleting twice answers the same; another account cannot see or delete the job.
    assert.equal((await fetch(`${node.url}/v1/jobs/${queued.id}`, { method: "DELETE", headers: { "x-api-key": key } })).status, 200);
    const stranger = await account();
    const strangers = await fetch(`${node.url}/v1/jobs/${queued.id}`, { method: "DELETE", headers: { "x-api-key": stranger.key } });
    assert.equal(strangers.status, 404);
    assert.equal((await errorOf(strangers)).code, "job_not_found");
  });

  it("a raw image body with output_format and bg_color=transparent in the query; image responses carry the job, credit and rate-limit headers", async () => {
    const { accountId, key } = await account(); // free plan: 10 requests per minute
    const before = Math.floor(Date.now() / 1000);
    const response = await fetch(`${node.url}/v1/matting?output_format=webp&bg_color=transparent&size=full`, {
      method: "POST",
      headers: { "x-api-key": key, "content-type": "image/png" },
      body: photo,
    });
    assert.equal(response.status, 200, await response.clone().text());
    assert.equal(response.headers.get("content-type"), "image/webp");
    const image = await sharp(Buffer.from(await response.arrayBuffer())).metadata();
    assert.deepEqual([image.format, image.hasAlpha], ["webp", true]);
    assert.match(response.headers.get("x-job-id") ?? "", /^[0-9a-f-]{36}$/);
    assert.equal(response.headers.get("x-credits-charged"), "0.25");
    assert.equal(response.headers.get("x-credits-remaining"), "9.75");
    assert.equal((await balance(accountId)).available, TRIAL_MILLICREDITS - IMAGE_MILLICREDITS);
    assert.ok(Number(response.headers.get("x-processing-time-ms")) > 0);
    assert.equal(response.headers.get("x-ratelimit-limit"), "10");
    assert.equal(response.headers.get("x-ratelimit-remaining"), "9");
    const reset = Number(response.headers.get("x-ratelimit-reset"));
    assert.ok(reset >= before && reset <= before + 61, `reset ${reset} is a Unix time within the minute`);
  });

  it("GET /v1/jobs pages the caller's jobs newest first; another account sees none of them", async () => {
    const { key } = await account();
    const ids: string[] = [];
    for (const image of [photo, otherPhoto, photo]) {
      const response = await fetch(`${node.url}/v1/matting?async=true`, { method: "POST", headers: { "x-api-key": key }, body: imageForm(image) });
      assert.equal(response.status, 202);
      ids.push(((await response.json()) as JobJson).id);
    }
    const list = async (query: string, apiKey = key) => {
      const response = await fetch(`${node.url}/v1/jobs${query}`, { headers: { "x-api-key": apiKey } });
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
    const tooMany = await fetch(`${node.url}/v1/jobs?limit=1000`, { headers: { "x-api-key": key } });
    assert.equal(tooMany.status, 400);
    assert.match((await errorOf(tooMany)).title, /from 1 to 100/);
    const badCursor = await fetch(`${node.url}/v1/jobs?cursor=nonsense`, { headers: { "x-api-key": key } });
    assert.equal(badCursor.status, 400);
    for (const id of ids) await pollUntilDone(key, id);
  });

  it("a batch of 20 with one bad item: the bad one has an error and costs nothing, the others succeed, each charged once; a replay charges nothing more", { timeout: BATCH_TIMEOUT_MS + 60_000 }, async () => {
    const { accountId, key } = await account();
    const form = new FormData();
    const BAD_INDEX = 7;
    for (let index = 0; index < 20; index++) {
      const data = index === BAD_INDEX ? new TextEncoder().encode("%PDF-1.7 not an image") : index % 2 ? photo : otherPhoto;
      form.append("image_file", new Blob([data]), `item-${index}.png`);
    }
    const post = (body: FormData) => fetch(`${node.url}/v1/matting/batch`, { method: "POST", headers: { "x-api-key": key, "idempotency-key": "batch-one" }, body });
    const response = await post(form);
    assert.equal(response.status, 202, await response.clone().text());
    const batch = (await response.json()) as BatchJson;
    assert.equal(batch.items.length, 20);
    assert.deepEqual(batch.items.map((item) => item.index), [...Array(20).keys()]);
    const bad = batch.items[BAD_INDEX]!;
    assert.equal(bad.job, null);
    assert.equal(bad.error?.code, "unsupported_format");
    for (const item of batch.items.filter((candidate) => candidate.index !== BAD_INDEX)) {
      assert.equal(item.error, null);
      assert.ok(item.job?.id);
    }

    const deadline = Date.now() + BATCH_TIMEOUT_MS;
    let current: BatchJson;
    for (;;) {
      const read = await fetch(`${node.url}/v1/batches/${batch.batch_id}`, { headers: { "x-api-key": key } });
      assert.equal(read.status, 200);
      current = (await read.json()) as BatchJson;
      if (current.items.every((item) => item.job === null || item.job.status === "succeeded" || item.job.status === "failed")) break;
      const statuses = current.items.map((item) => item.job?.status ?? item.error?.code);
      assert.ok(Date.now() < deadline, `the batch did not finish within ${BATCH_TIMEOUT_MS} ms: ${statuses.join(", ")}`);
      await new Promise((resolve) => setTimeout(resolve, 500));
    }
    for (const item of current.items.filter((candidate) => candidate.index !== BAD_INDEX)) {
      assert.equal(item.job?.status, "succeeded", JSON.stringify(item));
      assert.equal(item.job?.credits_charged, 0.25);
      assert.ok(item.job?.result_url);
    }
    const charged = TRIAL_MILLICREDITS - 19n * IMAGE_MILLICREDITS;
    assert.deepEqual(await balance(accountId), { available: charged, held: 0n });

    const replay = await post(form);
    assert.equal(replay.status, 202);
    const replayed = (await replay.json()) as BatchJson;
    assert.equal(replayed.batch_id, batch.batch_id);
    assert.deepEqual(replayed.items.map((item) => item.job?.id ?? null), batch.items.map((item) => item.job?.id ?? null));
    assert.deepEqual(await balance(accountId), { available: charged, held: 0n }, "the replay charged nothing");

    const different = new FormData();
    different.append("image_file", new Blob([photo]), "one.png");
    const reused = await post(different);
    assert.equal(reused.status, 422);
    assert.equal((await errorOf(reused)).code, "idempotency_key_reused");

    const stranger = await account();
    const hidden = await fetch(`${node.url}/v1/batches/${batch.batch_id}`, { headers: { "x-api-key": stranger.key } });
    assert.equal(hidden.status, 404);
    assert.equal((await errorOf(hidden)).code, "batch_not_found");
  });

  it("an Idempotency-Key retry returns the first result and charges once, sync or async; the same key with another body is 422", async () => {
    const { accountId, key } = await account();
    const post = (image: Uint8Array, fields: Record<string, string> = {}, query = "") =>
      fetch(`${node.url}/v1/matting${query}`, { method: "POST", headers: { "x-api-key": key, "idempotency-key": "order-17" }, body: imageForm(image, fields) });
    const first = await post(photo, { format: "png" });
    assert.equal(first.status, 200);
    const firstBytes = Buffer.from(await first.arrayBuffer());
    const jobId = first.headers.get("x-job-id");
    const retry = await post(photo, { format: "png" });
    assert.equal(retry.status, 200);
    assert.equal(retry.headers.get("x-job-id"), jobId);
    assert.deepEqual(Buffer.from(await retry.arrayBuffer()), firstBytes);
    const asyncRetry = await post(photo, { format: "png" }, "?async=true");
    assert.equal(asyncRetry.status, 202);
    const job = (await asyncRetry.json()) as JobJson;
    assert.deepEqual([job.id, job.status, job.credits_charged], [jobId, "succeeded", 0.25]);
    assert.deepEqual(await balance(accountId), { available: TRIAL_MILLICREDITS - IMAGE_MILLICREDITS, held: 0n }, "charged once");

    for (const [image, fields] of [
      [otherPhoto, { format: "png" }],
      [photo, { format: "webp" }],
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
