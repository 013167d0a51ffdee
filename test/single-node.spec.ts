// Single-node mode (`npm start`): the whole mesh in one process on the embedded defaults —
// PGlite and the in-process adapters — even where DATABASE_URL / NATS_URL are set for other suites.
import { Code, ConnectError, createClient } from "@connectrpc/connect";
import { createConnectTransport } from "@connectrpc/connect-node";
import { ImageService } from "../services/common/gen/cutline/gateway/v1/image_service_pb.ts";
import assert from "node:assert/strict";
import { mkdtempSync, readFileSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { after, before, test } from "node:test";
import { startSingleNode, type SingleNode } from "../services/single-node.ts";
import { runEndToEndScenario, testPhoto } from "./end-to-end.scenario.ts";

let node: SingleNode;
const dataDir = mkdtempSync(join(tmpdir(), "cutline-single-node-"));

before(async () => {
  node = await startSingleNode({
    CUTLINE_DATA_DIR: dataDir,
    PORT: "0",
    METRICS_PORT: "0",
    LOG_LEVEL: "warn",
    INFERENCE_WARMUP_RUNS: "1",
    // The drain test needs its call to end inside the drain window, on a CPU shared with the rest of the suite.
    SHUTDOWN_TIMEOUT_MS: "120000",
  });
  await node.ready;
});

let stopped = false;
after(async () => {
  if (!stopped) await node?.stop();
  rmSync(dataDir, { recursive: true, force: true });
});

test("health answers SERVING over Connect JSON once the model is warm", async () => {
  const response = await fetch(`${node.url}/grpc.health.v1.Health/Check`, {
    method: "POST",
    headers: { "content-type": "application/json" },
    body: "{}",
  });
  assert.deepEqual(await response.json(), { status: "SERVING" });
});

test("a reconciler slower than the hold lifetime is a configuration error, named before anything starts", async () => {
  await assert.rejects(
    startSingleNode({ CUTLINE_DATA_DIR: dataDir, PORT: "0", METRICS_PORT: "0", HOLD_TTL_SECONDS: "60", JOB_QUIET_MS_MAX: "60000" }),
    (error: unknown) => error instanceof Error && /JOB_QUIET_MS_MAX=60000 must be below HOLD_TTL_SECONDS=60/.test(error.message),
  );
});

test("the provisioned API key is kept in the data directory", () => {
  assert.equal(readFileSync(join(dataDir, "api-key"), "utf8").trim(), node.apiKey);
});

test("end to end through all four services (Connect over HTTP/1.1, REST)", async () => {
  await runEndToEndScenario(node.url, node.apiKey, createConnectTransport({ baseUrl: node.url, httpVersion: "1.1" }));
});

test("an account without credits gets 402 with its balance, the cost and how to top up; nothing is queued", async () => {
  const apiKey = await node.provisionAccount("broke", { grantTrial: false });
  const form = new FormData();
  form.append("image_file", new Blob([await testPhoto()], { type: "image/jpeg" }), "photo.jpg");
  const response = await fetch(`${node.url}/v1/matting`, { method: "POST", headers: { "x-api-key": apiKey }, body: form });
  assert.equal(response.status, 402);
  const [error] = ((await response.json()) as { errors: Record<string, string>[] }).errors;
  assert.equal(error?.code, "insufficient_credits");
  assert.equal(error?.available_credits, "0");
  assert.equal(error?.cost_credits, "0.5");
  assert.ok(error?.top_up);
});

test("each plan's request rate is enforced with 429 and Retry-After, counting rejected calls too", async () => {
  const apiKey = await node.provisionAccount("rate-limited"); // free plan: 10 requests per minute
  const notAnImage = new TextEncoder().encode("%PDF-1.7 not an image");
  const post = () => {
    const form = new FormData();
    form.append("image_file", new Blob([notAnImage]), "page.pdf");
    return fetch(`${node.url}/v1/matting`, { method: "POST", headers: { "x-api-key": apiKey }, body: form });
  };
  for (let index = 0; index < 10; index++) assert.equal((await post()).status, 400);
  const limited = await post();
  assert.equal(limited.status, 429);
  assert.ok(Number(limited.headers.get("retry-after")) >= 1);
  const [error] = ((await limited.json()) as { errors: { code: string; title: string }[] }).errors;
  assert.equal(error?.code, "rate_limited");
  assert.match(error?.title ?? "", /10 requests per minute/);
});

test("each plan's concurrent requests are enforced; the slot frees when the call ends", async () => {
  const apiKey = await node.provisionAccount("one-at-a-time"); // free plan: 1 concurrent request
  const images = createClient(ImageService, createConnectTransport({ baseUrl: node.url, httpVersion: "1.1" }));
  const headers = { headers: { "x-api-key": apiKey } };
  const photo = await testPhoto();
  const first = images.removeBackground({ image: photo, idempotencyKey: "slot-1" }, headers);
  await new Promise((resolve) => setTimeout(resolve, 100));
  await assert.rejects(images.removeBackground({ image: photo, idempotencyKey: "slot-2" }, headers), (error: unknown) => {
    assert.ok(error instanceof ConnectError);
    assert.equal(error.code, Code.ResourceExhausted);
    assert.equal(error.metadata.get("cutline-reason"), "concurrency_limited");
    return true;
  });
  assert.equal((await first).contentType, "image/png");
  assert.equal((await images.removeBackground({ image: photo, idempotencyKey: "slot-3" }, headers)).contentType, "image/png");
});

test("an upload past the plan's limit is refused naming the limit, before any credit is held", async () => {
  // The free plan's 25 MiB equals UPLOAD_BYTES_MAX's default: the refusal names the plan's limit, not the ceiling.
  const apiKey = await node.provisionAccount("big-upload");
  const images = createClient(ImageService, createConnectTransport({ baseUrl: node.url, httpVersion: "1.1" }));
  const tooBig = new Uint8Array(25 * 1024 * 1024 + 1);
  await assert.rejects(images.removeBackground({ image: tooBig }, { headers: { "x-api-key": apiKey } }), (error: unknown) => {
    assert.ok(error instanceof ConnectError);
    assert.equal(error.code, Code.InvalidArgument);
    assert.equal(error.metadata.get("cutline-reason"), "too_many_bytes");
    assert.match(error.rawMessage, /26214401 bytes; the Free trial plan's upload limit is 26214400 bytes/);
    return true;
  });
});

test("stopping drains: a call in flight when shutdown starts still gets its image, new calls are refused", async () => {
  const images = createClient(ImageService, createConnectTransport({ baseUrl: node.url, httpVersion: "1.1" }));
  const inFlight = images.removeBackground({ image: await testPhoto(), idempotencyKey: "drain" }, { headers: { "x-api-key": node.apiKey } });
  await new Promise((resolve) => setTimeout(resolve, 200));
  stopped = true;
  const stopping = node.stop();
  const response = await inFlight;
  assert.equal(response.contentType, "image/png");
  await stopping;
  await assert.rejects(fetch(`${node.url}/grpc.health.v1.Health/Check`, { method: "POST", headers: { "content-type": "application/json" }, body: "{}" }));
});
