// The REST webhook settings and delivery log over HTTP against a real single node, with a real
// loopback receiver; and the rate-limit headers of image responses and of 429 refusals.
import { Code, ConnectError, createClient } from "@connectrpc/connect";
import { createConnectTransport } from "@connectrpc/connect-node";
import assert from "node:assert/strict";
import { after, before, describe, it } from "node:test";
import { reasonOf } from "../services/common/errors.ts";
import { ImageService } from "../services/common/gen/cutline/gateway/v1/image_service_pb.ts";
import { startWebhookReceiver, webhookSignatureV1, type WebhookReceiver } from "./loopback.testing.ts";
import { POLL_TIMEOUT_MS, publicApiNode, type JobJson } from "./public-api.testing.ts";

interface DeliveryJson {
  id: string;
  job_id: string;
  type: string;
  url: string;
  status: string;
  attempts: number;
  body: string;
  attempt_log: { attempt: number; status_code: number | null; error: string | null }[];
}

describe("REST webhooks and rate-limit headers on a single node", () => {
  // The receiver listens on loopback, which outbound fetches refuse unless allowed.
  const api = publicApiNode("public-api-webhooks", { CUTLINE_OUTBOUND_ALLOW_LOOPBACK: "true" });
  const { account, errorOf, imageForm, pollUntilDone } = api;
  let receiver: WebhookReceiver;

  before(async () => (receiver = await startWebhookReceiver()));
  after(() => receiver?.close());

  const call = (key: string, method: string, path: string, body?: unknown) =>
    fetch(`${api.node.url}${path}`, {
      method,
      headers: { "x-api-key": key, ...(body === undefined ? {} : { "content-type": "application/json" }) },
      body: body === undefined ? undefined : typeof body === "string" ? body : JSON.stringify(body),
    });

  async function refused(response: Response, status: number, code: string): Promise<void> {
    const error = await errorOf(response);
    assert.equal(response.status, status, JSON.stringify(error));
    assert.equal(error.code, code);
    assert.ok(error.title && (error as { detail?: string }).detail, "the native shape: title, code, detail");
  }

  it("GET/PUT /v1/webhook sets the account's URL; GET/POST /v1/webhook/secret reads and rotates the secret; a job's deliveries are signed with it, listed and redelivered", async () => {
    const { key } = await account();
    assert.deepEqual(await (await call(key, "GET", "/v1/webhook")).json(), { webhook_url: null });
    await refused(await call(key, "PUT", "/v1/webhook", { webhook_url: "http://192.168.1.10/hook" }), 400, "invalid_webhook_url");
    await refused(await call(key, "PUT", "/v1/webhook", { webhook_url: 5 }), 400, "invalid_webhook_url");
    await refused(await call(key, "PUT", "/v1/webhook", "not json"), 400, "invalid_request");
    await refused(await call(key, "PUT", "/v1/webhook", { url: receiver.url }), 400, "invalid_request");
    const set = await call(key, "PUT", "/v1/webhook", { webhook_url: receiver.url });
    assert.equal(set.status, 200);
    assert.deepEqual(await set.json(), { webhook_url: receiver.url });
    assert.deepEqual(await (await call(key, "GET", "/v1/webhook")).json(), { webhook_url: receiver.url });

    const { secret: first } = (await (await call(key, "GET", "/v1/webhook/secret")).json()) as { secret: string };
    assert.ok(first.length >= 32, first);
    assert.deepEqual(await (await call(key, "GET", "/v1/webhook/secret")).json(), { secret: first }, "reading does not rotate");
    const { secret } = (await (await call(key, "POST", "/v1/webhook/secret")).json()) as { secret: string };
    assert.notEqual(secret, first);
    assert.deepEqual(await (await call(key, "GET", "/v1/webhook/secret")).json(), { secret });

    const submitted = await fetch(`${api.node.url}/v1/matting?async=true`, { method: "POST", headers: { "x-api-key": key }, body: imageForm(api.photo) });
    assert.equal(submitted.status, 202);
    const job = await pollUntilDone(key, ((await submitted.json()) as JobJson).id);
    assert.equal(job.status, "succeeded");

    // The result URL is an image response too: every header, the rate limit being the read budget it counts against.
    const result = await fetch(job.result_url!);
    assert.equal(result.status, 200);
    assert.equal(result.headers.get("x-job-id"), job.id);
    assert.equal(result.headers.get("x-credits-charged"), "0.5");
    assert.equal(result.headers.get("x-credits-remaining"), "9.5");
    assert.ok(Number(result.headers.get("x-processing-time-ms")) > 0);
    assert.equal(result.headers.get("x-ratelimit-limit"), "600", "READ_REQUESTS_PER_MINUTE");
    assert.ok(Number(result.headers.get("x-ratelimit-remaining")) < 600);
    assert.ok(Number(result.headers.get("x-ratelimit-reset")) >= Math.floor(Date.now() / 1000));

    const deadline = Date.now() + POLL_TIMEOUT_MS;
    let deliveries: DeliveryJson[] = [];
    while (deliveries[0]?.status !== "delivered") {
      assert.ok(Date.now() < deadline, `no delivery was made: ${JSON.stringify(deliveries)}`);
      await new Promise((resolve) => setTimeout(resolve, 200));
      const listed = await call(key, "GET", `/v1/jobs/${job.id}/webhook-deliveries`);
      assert.equal(listed.status, 200);
      deliveries = ((await listed.json()) as { deliveries: DeliveryJson[] }).deliveries;
    }
    const delivery = deliveries[0]!;
    assert.deepEqual([delivery.job_id, delivery.type, delivery.url, delivery.attempts], [job.id, "job.succeeded", receiver.url, 1]);
    assert.deepEqual(delivery.attempt_log.map((attempt) => [attempt.attempt, attempt.status_code, attempt.error]), [[1, 200, null]]);
    const sent = receiver.deliveries.find((entry) => entry.body === delivery.body);
    assert.ok(sent, "the receiver got the body the log shows");
    const [, t, v1] = /^t=(\d+),v1=([0-9a-f]{64})$/.exec(sent.signature) ?? [];
    assert.equal(v1, webhookSignatureV1(secret, `${t}`, sent.body), "signed with the rotated secret");

    const redelivered = await call(key, "POST", `/v1/jobs/${job.id}/webhook-deliveries/${delivery.id}/redeliver`);
    assert.equal(redelivered.status, 200);
    const again = ((await redelivered.json()) as { delivery: DeliveryJson }).delivery;
    assert.deepEqual([again.id, again.status, again.attempts, again.attempt_log.length], [delivery.id, "delivered", 2, 2]);
    assert.equal(receiver.deliveries.filter((entry) => entry.body === delivery.body).length, 2);

    await refused(await call(key, "POST", `/v1/jobs/${job.id}/webhook-deliveries/no-such-delivery/redeliver`), 404, "webhook_delivery_not_found");
    const wrongMethod = await call(key, "GET", `/v1/jobs/${job.id}/webhook-deliveries/${delivery.id}/redeliver`);
    assert.equal(wrongMethod.headers.get("allow"), "POST");
    await refused(wrongMethod, 405, "method_not_allowed");
    const stranger = await account();
    await refused(await call(stranger.key, "GET", `/v1/jobs/${job.id}/webhook-deliveries`), 404, "job_not_found");
    await refused(await call(stranger.key, "POST", `/v1/jobs/${job.id}/webhook-deliveries/${delivery.id}/redeliver`), 404, "job_not_found");
    assert.equal(receiver.deliveries.filter((entry) => entry.body === delivery.body).length, 2, "a stranger's redeliver sent nothing");
    await refused(await fetch(`${api.node.url}/v1/webhook/secret`), 401, "missing_api_key");

    const cleared = await call(key, "PUT", "/v1/webhook", { webhook_url: null });
    assert.deepEqual(await cleared.json(), { webhook_url: null });
  });

  it("a 429 carries Retry-After and X-RateLimit-* (REST and Connect)", async () => {
    const { key } = await account();
    // The trial plan allows 10 requests per minute; a call refused after admission still took its token.
    const nowSeconds = Math.floor(Date.now() / 1000);
    for (let call = 1; call <= 10; call++) {
      const response = await fetch(`${api.node.url}/v1/matting`, { method: "POST", headers: { "x-api-key": key, "content-type": "text/plain" }, body: "not an image" });
      assert.equal(response.status, 400);
      assert.equal((await errorOf(response)).code, "invalid_request");
    }
    const limited = await fetch(`${api.node.url}/v1/matting`, { method: "POST", headers: { "x-api-key": key, "content-type": "image/png" }, body: api.photo });
    assert.equal((await errorOf(limited)).code, "rate_limited");
    assert.equal(limited.status, 429);
    assert.ok(Number(limited.headers.get("retry-after")) >= 1, `Retry-After ${limited.headers.get("retry-after")}`);
    assert.equal(limited.headers.get("x-ratelimit-limit"), "10");
    assert.equal(limited.headers.get("x-ratelimit-remaining"), "0");
    // The bucket is full again a minute after the last call at most, and the ten calls take time:
    // bounded from the start, a run that crossed a second boundary read one second over.
    const reset = Number(limited.headers.get("x-ratelimit-reset"));
    const answeredSeconds = Date.now() / 1000;
    assert.ok(reset > nowSeconds && reset <= answeredSeconds + 61, `reset ${reset} is a Unix time within the minute (answered at ${answeredSeconds})`);

    const images = createClient(ImageService, createConnectTransport({ baseUrl: api.node.url, httpVersion: "1.1" }));
    await assert.rejects(images.removeBackground({ image: api.photo }, { headers: { "x-api-key": key } }), (error: unknown) => {
      assert.ok(error instanceof ConnectError);
      assert.deepEqual([error.code, reasonOf(error)], [Code.ResourceExhausted, "rate_limited"]);
      assert.ok(Number(error.metadata.get("retry-after")) >= 1);
      assert.equal(error.metadata.get("x-ratelimit-limit"), "10");
      assert.equal(error.metadata.get("x-ratelimit-remaining"), "0");
      return true;
    });
  });
});
