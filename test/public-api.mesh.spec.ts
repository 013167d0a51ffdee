// The public REST API end to end in mesh mode: the four services as separate processes against
// real Postgres and NATS JetStream, driven only through the gateway's public port and the admin
// CLI, as a customer and an operator would. Async jobs with a signed webhook to a real receiver,
// a batch of 20 with one bad item, the monthly quota, running out of credits, Idempotency-Key
// replays, quote = capture, and signed result URLs. The admin CLI against `npm start` is in
// public-api.npm-start.spec.ts: its own file, so each stays within the runner's time per file.
import assert from "node:assert/strict";
import { randomBytes } from "node:crypto";
import { describe, it } from "node:test";
import type { Kysely } from "kysely";
import { connect } from "@nats-io/transport-node";
import { Objm } from "@nats-io/obj";
import sharp from "sharp";
import { openDatabase } from "../services/common/database.ts";
import { adminCli } from "./admin-cli.testing.ts";
import { startWebhookReceiver, webhookSignatureV1, type WebhookDelivery, type WebhookReceiver } from "./loopback.testing.ts";
import { testPhoto } from "./end-to-end.scenario.ts";
import { meshBackends, meshFixture } from "./mesh.testing.ts";
import {
  addTinyQuotaPlan,
  IMAGE_MILLICREDITS,
  publicApiClient,
  TESTDATA_PHOTO as PHOTO,
  tamperedSignature,
  TINY_QUOTA_CALLS,
  TINY_QUOTA_PLAN,
  type BatchJson,
  type JobJson,
} from "./public-api.testing.ts";

const PHOTO_CREDITS = Number(IMAGE_MILLICREDITS) / 1000;
/** Nineteen model runs in one inference process: about 20 s on an idle 2-core machine, many times that on a busy one. */
const BATCH_TIMEOUT_MS = 180_000;
/** How long a webhook may take to arrive, its retry included, in milliseconds. */
const WEBHOOK_TIMEOUT_MS = 60_000;
/** How far a webhook's signed timestamp may be from this clock, in seconds (a receiver's replay window). */
const SIGNATURE_TOLERANCE_SECONDS = 300;
const ADMIN_TOKEN = randomBytes(32).toString("hex");

interface Balance {
  available: number;
  held: number;
}

/** A webhook receiver that refuses each event's first attempt with 503, so the retry is exercised too. */
const startReceiver = () => startWebhookReceiver((eventId, earlier) => (earlier.some((delivery) => delivery.eventId === eventId) ? 200 : 503));

/** Checks `Cutline-Signature: t=<unix>,v1=<hex HMAC-SHA256(secret, "<t>.<raw body>")>` as a receiver must. */
function assertSigned(delivery: WebhookDelivery, secret: string): void {
  const match = /^t=(\d+),v1=([0-9a-f]{64})$/.exec(delivery.signature);
  assert.ok(match, `Cutline-Signature: ${delivery.signature}`);
  const [, t, v1] = match;
  assert.ok(Math.abs(Number(t) - Date.now() / 1000) < SIGNATURE_TOLERANCE_SECONDS, `t=${t} is now`);
  assert.equal(v1, webhookSignatureV1(secret, t!, delivery.body), "v1 is the HMAC of <t>.<raw body>");
}

const backends = await meshBackends();

describe("public REST API in mesh mode: four processes, real Postgres and NATS, through the gateway's port", { skip: backends.skip }, () => {
  const fixture = meshFixture(backends, {
    prefix: "public_api_mesh",
    env: {
      CUTLINE_ADMIN_TOKEN: ADMIN_TOKEN,
      // The receiver below listens on loopback; every service that fetches reads this.
      CUTLINE_OUTBOUND_ALLOW_LOOPBACK: "true",
      WEBHOOK_SEND_INTERVAL_MS: "100",
      WEBHOOK_RETRY_DELAY_MS_MIN: "200",
    },
  });
  const gatewayUrl = () => fixture.mesh.urls.gateway;
  const { imageForm, errorOf, getJob, pollBatchUntilDone } = publicApiClient(gatewayUrl);
  const { cliJson } = adminCli(() => ({ CUTLINE_URL: gatewayUrl(), CUTLINE_ADMIN_TOKEN: ADMIN_TOKEN }));
  let serial = 0;

  /** A new account made by the operator's CLI (no sign-up trial): its id and first API key. */
  async function account(options: { plan?: string; credits?: string } = {}): Promise<{ accountId: string; key: string }> {
    serial += 1;
    const accountId = `mesh-${serial}`;
    const credits = options.credits ? ["--credits", options.credits] : [];
    const created = await cliJson(["create-account", "--plan", options.plan ?? "unlimited", "--account", accountId, ...credits]);
    assert.equal(created.accountId, accountId);
    return { accountId, key: created.apiKey };
  }

  async function balance(key: string): Promise<Balance> {
    const response = await fetch(`${gatewayUrl()}/v1/credit/balance`, { headers: { "x-api-key": key } });
    assert.equal(response.status, 200);
    const body = (await response.json()) as { available_credits: number; held_credits: number };
    return { available: body.available_credits, held: body.held_credits };
  }

  const matting = (key: string, body: FormData, options: { query?: string; headers?: Record<string, string> } = {}) =>
    fetch(`${gatewayUrl()}/v1/matting${options.query ?? ""}`, { method: "POST", headers: { "x-api-key": key, ...options.headers }, body });

  it("async=true with webhook_url: 202, the webhook is retried after a 503 and signed with the secret the CLI reads; its result URL serves the PNG and refuses tampering with 403", async () => {
    const receiver = await startReceiver();
    try {
      const { accountId, key } = await account({ credits: "5" });
      const { secret } = await cliJson(["webhook-secret", "--account", accountId]);
      assert.match(secret, /^whsec_[0-9a-f]{64}$/);

      const refused = await matting(key, imageForm(PHOTO, { webhook_url: "javascript:alert(1)" }), { query: "?async=true" });
      assert.equal(refused.status, 400);
      assert.equal((await errorOf(refused)).code, "invalid_webhook_url");
      assert.deepEqual(await balance(key), { available: 5, held: 0 }, "refused before any hold");

      const submitted = await matting(key, imageForm(PHOTO, { webhook_url: receiver.url }), { query: "?async=true" });
      assert.equal(submitted.status, 202, await submitted.clone().text());
      const queued = (await submitted.json()) as JobJson;
      assert.ok(["queued", "running"].includes(queued.status), queued.status);

      const deadline = Date.now() + WEBHOOK_TIMEOUT_MS;
      while (!receiver.deliveries.some((delivery) => delivery.status === 200)) {
        assert.ok(Date.now() < deadline, `no webhook delivered within ${WEBHOOK_TIMEOUT_MS} ms: ${JSON.stringify(receiver.deliveries)}`);
        await new Promise((resolve) => setTimeout(resolve, 100));
      }
      const [first, retry] = receiver.deliveries;
      assert.deepEqual([first!.status, retry!.status], [503, 200]);
      assert.equal(retry!.eventId, first!.eventId, "a retry carries the same event id");
      for (const delivery of [first!, retry!]) assertSigned(delivery, secret);
      const event = JSON.parse(retry!.body) as Record<string, unknown>;
      assert.deepEqual(
        [event.type, event.status, event.job_id, event.image_id, event.credits_used],
        ["job.succeeded", "succeeded", queued.id, queued.id, PHOTO_CREDITS],
      );
      assert.equal(typeof event.processing_time_ms, "number");
      const resultUrl = String(event.result_url);
      assert.ok(resultUrl.startsWith(`${gatewayUrl()}/v1/results/${queued.id}?expires=`), resultUrl);

      const job = await getJob(key, queued.id);
      assert.deepEqual([job.status, job.credits_charged, job.error], ["succeeded", PHOTO_CREDITS, null]);
      assert.deepEqual(await balance(key), { available: 5 - PHOTO_CREDITS, held: 0 });

      // The URL is the credential: no API key.
      const result = await fetch(resultUrl);
      assert.equal(result.status, 200);
      assert.equal(result.headers.get("content-type"), "image/png");
      const image = await sharp(Buffer.from(await result.arrayBuffer())).metadata();
      assert.deepEqual([image.format, image.width, image.height, image.hasAlpha], ["png", 64, 48, true]);

      const expires = Number(new URL(resultUrl).searchParams.get("expires"));
      for (const tampered of [tamperedSignature(resultUrl), resultUrl.replace(`expires=${expires}`, `expires=${expires + 1}`)]) {
        const answer = await fetch(tampered);
        assert.equal(answer.status, 403, tampered);
        assert.equal((await errorOf(answer)).code, "result_url_invalid");
      }
    } finally {
      await receiver.close();
    }
  });

  it("a batch of 20 with one truncated image: 19 succeed, the bad one has its error, only 19 are charged, and its webhook_url hears of each job", async () => {
    const receiver = await startReceiver();
    try {
      await batchOfTwenty(receiver);
    } finally {
      await receiver.close();
    }
  });

  async function batchOfTwenty(receiver: WebhookReceiver): Promise<void> {
    const { accountId, key } = await account({ credits: "10" });
    const { secret } = await cliJson(["webhook-secret", "--account", accountId]);
    const BAD_INDEX = 13;
    const form = new FormData();
    form.append("webhook_url", receiver.url);
    for (let index = 0; index < 20; index++) {
      const data = index === BAD_INDEX ? PHOTO.slice(0, PHOTO.byteLength / 2) : PHOTO;
      form.append("image_file", new Blob([data]), `item-${index}.heic`);
    }
    const response = await fetch(`${gatewayUrl()}/v1/matting/batch`, { method: "POST", headers: { "x-api-key": key }, body: form });
    assert.equal(response.status, 202, await response.clone().text());
    const submitted = (await response.json()) as BatchJson;
    assert.deepEqual(submitted.items.map((item) => item.index), [...Array(20).keys()]);

    const batch = await pollBatchUntilDone(key, submitted.batch_id, BATCH_TIMEOUT_MS);
    const bad = batch.items[BAD_INDEX]!;
    assert.equal(bad.job, null, JSON.stringify(bad));
    assert.equal(bad.error?.code, "corrupt_image");
    assert.match(bad.error?.title ?? "", /heif/i);
    const good = batch.items.filter((item) => item.index !== BAD_INDEX);
    for (const item of good) {
      assert.equal(item.error, null);
      assert.deepEqual([item.job?.status, item.job?.credits_charged], ["succeeded", PHOTO_CREDITS], JSON.stringify(item));
      assert.ok(item.job?.result_url);
    }
    assert.equal(new Set(good.map((item) => item.job!.id)).size, 19, "one job per good item");
    const result = await fetch(good[0]!.job!.result_url!);
    assert.equal(result.status, 200, "the result URL the gateway puts in job JSON works too");
    assert.equal(result.headers.get("x-job-id"), good[0]!.job!.id);
    assert.deepEqual(await balance(key), { available: 10 - 19 * PHOTO_CREDITS, held: 0 });
    const deadline = Date.now() + WEBHOOK_TIMEOUT_MS;
    const heard = () => new Set(receiver.deliveries.filter((delivery) => delivery.status === 200).map((delivery) => (JSON.parse(delivery.body) as { job_id: string }).job_id));
    while (heard().size < 19) {
      assert.ok(Date.now() < deadline, `webhooks for ${heard().size} of 19 jobs within ${WEBHOOK_TIMEOUT_MS} ms`);
      await new Promise((resolve) => setTimeout(resolve, 100));
    }
    assert.deepEqual([...heard()].sort(), good.map((item) => item.job!.id).sort(), "one job.succeeded per good item, none for the bad one");
    for (const delivery of receiver.deliveries) assertSigned(delivery, secret);
  }

  it("a plan's monthly call quota: past it, 429 monthly_quota_exceeded with Retry-After to the renewal, and nothing charged", async () => {
    const database = openDatabase<unknown>({ kind: "postgres", url: fixture.databaseUrl });
    try {
      await addTinyQuotaPlan(database.db as Kysely<any>);
    } finally {
      await database.close();
    }
    const { key } = await account({ plan: TINY_QUOTA_PLAN, credits: "5" });
    const first = await matting(key, imageForm(PHOTO));
    assert.equal(first.status, 200, await first.clone().text());
    await first.arrayBuffer();
    for (let call = 1; call < TINY_QUOTA_CALLS; call++) {
      const refusedForItsBody = await matting(key, imageForm(new TextEncoder().encode("%PDF-1.7 not an image")));
      assert.equal(refusedForItsBody.status, 400, "admitted, so counted, then refused for its body");
    }
    const limited = await matting(key, imageForm(PHOTO));
    assert.equal(limited.status, 429);
    const error = await errorOf(limited);
    assert.equal(error.code, "monthly_quota_exceeded");
    assert.match(error.title, new RegExp(`allows ${TINY_QUOTA_CALLS} calls per billing cycle`));
    const usage = (await (await fetch(`${gatewayUrl()}/v1/usage`, { headers: { "x-api-key": key } })).json()) as { cycle: { ends_at: string; calls: number } };
    const secondsToRenewal = (Date.parse(usage.cycle.ends_at) - Date.now()) / 1000;
    const retryAfter = Number(limited.headers.get("retry-after"));
    assert.ok(Math.abs(retryAfter - secondsToRenewal) < 30, `Retry-After ${retryAfter} s, renewal in ${secondsToRenewal} s`);
    assert.equal(usage.cycle.calls, TINY_QUOTA_CALLS);
    assert.deepEqual(await balance(key), { available: 5 - PHOTO_CREDITS, held: 0 }, "only the first call was charged");
  });

  it("out of credits: 402 insufficient_credits, sync or async, and nothing held or charged", async () => {
    const { key } = await account({ credits: "0.1" });
    for (const query of ["", "?async=true"]) {
      const response = await matting(key, imageForm(PHOTO), { query });
      assert.equal(response.status, 402, query);
      assert.equal((await errorOf(response)).code, "insufficient_credits");
    }
    assert.deepEqual(await balance(key), { available: 0.1, held: 0 });
    const jobs = (await (await fetch(`${gatewayUrl()}/v1/jobs`, { headers: { "x-api-key": key } })).json()) as { jobs: JobJson[] };
    assert.ok(jobs.jobs.every((job) => job.credits_charged === 0), JSON.stringify(jobs.jobs));
  });

  it("the same Idempotency-Key again returns the first result and charges once; with another body it is 422 idempotency_key_reused", async () => {
    const { key } = await account({ credits: "5" });
    const headers = { "idempotency-key": "mesh-order-1" };
    const first = await matting(key, imageForm(PHOTO), { headers });
    assert.equal(first.status, 200, await first.clone().text());
    const firstBytes = Buffer.from(await first.arrayBuffer());
    const retry = await matting(key, imageForm(PHOTO), { headers });
    assert.equal(retry.status, 200);
    assert.equal(retry.headers.get("x-job-id"), first.headers.get("x-job-id"));
    assert.deepEqual(Buffer.from(await retry.arrayBuffer()), firstBytes);
    const reused = await matting(key, imageForm(await testPhoto()), { headers });
    assert.equal(reused.status, 422);
    assert.equal((await errorOf(reused)).code, "idempotency_key_reused");
    assert.deepEqual(await balance(key), { available: 5 - PHOTO_CREDITS, held: 0 }, "charged once");
  });

  it("POST /v1/quote is exactly what the call then captures, for a 1200×900 photo", async () => {
    const { key } = await account({ credits: "5" });
    const photo = new Uint8Array(await sharp(await testPhoto()).resize(1200, 900).jpeg().toBuffer());
    const quote = await fetch(`${gatewayUrl()}/v1/quote`, {
      method: "POST",
      headers: { "x-api-key": key, "content-type": "application/json" },
      body: JSON.stringify({ operation: "matting", width: 1200, height: 900, size: "full" }),
    });
    assert.equal(quote.status, 200);
    const { credits } = (await quote.json()) as { credits: number };
    assert.ok(credits > PHOTO_CREDITS, `a 1.08 MP photo costs more than the smallest tier: ${credits}`);
    const response = await matting(key, imageForm(photo));
    assert.equal(response.status, 200, await response.clone().text());
    await response.arrayBuffer();
    assert.equal(Number(response.headers.get("x-credits-charged")), credits, "captured = quoted");
    const after = await balance(key);
    assert.equal(Math.round((5 - after.available) * 1000), Math.round(credits * 1000), "the balance fell by the quote");
    assert.equal(Number(response.headers.get("x-credits-remaining")), after.available);
    assert.equal((await getJob(key, response.headers.get("x-job-id")!)).credits_charged, credits);
  });
  it("retention=none keeps nothing: the response carries the cut-out, then the job's input and result are gone from the NATS object store", async () => {
    const { key } = await account({ credits: "5" });
    const response = await matting(key, imageForm(PHOTO), { query: "?retention=none" });
    assert.equal(response.status, 200, await response.clone().text());
    assert.ok((await response.arrayBuffer()).byteLength > 0);
    const jobId = response.headers.get("x-job-id")!;
    const job = await getJob(key, jobId);
    assert.deepEqual([job.status, job.result_url, job.credits_charged], ["succeeded", null, PHOTO_CREDITS]);
    const database = openDatabase<unknown>({ kind: "postgres", url: fixture.databaseUrl });
    let keys: string[];
    try {
      const row = await (database.db as Kysely<any>).selectFrom("jobs").select(["input_blob_key", "result_blob_key"]).where("id", "=", jobId).executeTakeFirstOrThrow();
      keys = [row.input_blob_key, row.result_blob_key];
    } finally {
      await database.close();
    }
    const connection = await connect({ servers: backends.skip === false ? backends.natsUrl : "" });
    try {
      const blobs = await new Objm(connection).open(`${fixture.natsNamePrefix}_blobs`);
      for (const blobKey of keys) assert.equal(await blobs.get(blobKey), null, `${blobKey} was deleted after the response`);
    } finally {
      await connection.close();
    }
  });
});
