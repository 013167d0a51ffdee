// The gateway on a real server (port 0) in front of real billing and orchestrator (test
// database, in-process queue, bus and blob store) and the real upload inspector. No inference
// worker runs: jobs stay queued, which is what refusals, admissions, background blobs and read
// limits need. Each test uses its own account (free plan: 10 requests/minute, 1 at a time).
import { fromBinary } from "@bufbuild/protobuf";
import { Code, ConnectError, createClient, createRouterTransport, type Client } from "@connectrpc/connect";
import { createConnectTransport } from "@connectrpc/connect-node";
import assert from "node:assert/strict";
import { mkdtempSync, rmSync } from "node:fs";
import http from "node:http";
import http2 from "node:http2";
import net from "node:net";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { Writable } from "node:stream";
import { after, before, describe, it } from "node:test";
import type { Kysely } from "kysely";
import pino from "pino";
import sharp from "sharp";
import { createBillingFixture, type BillingFixture } from "../services/billing/billing.testing.ts";
import { InProcessBlobStore, InProcessEventBus, InProcessWorkQueue } from "../services/common/adapters/index.ts";
import { BillingService, Pool } from "../services/common/gen/cutline/billing/v1/billing_service_pb.ts";
import { ImageService } from "../services/common/gen/cutline/gateway/v1/image_service_pb.ts";
import { JobService } from "../services/common/gen/cutline/gateway/v1/job_service_pb.ts";
import { SegmentTaskSchema } from "../services/common/gen/cutline/inference/v1/task_pb.ts";
import { OrchestratorService } from "../services/common/gen/cutline/orchestrator/v1/orchestrator_service_pb.ts";
import { HealthRegistry } from "../services/common/health.ts";
import { eventually } from "../services/common/ports/contract-support.ts";
import { startServiceServer, type ServiceServer } from "../services/common/server.ts";
import { imageLimitsOf } from "../services/common/images/image-limits.ts";
import { createUploadInspector } from "../services/common/images/upload.inspector.ts";
import { createOrchestrator, type Orchestrator } from "../services/orchestrator/index.ts";
import { loadGatewayConfig } from "../services/gateway/gateway.config.ts";
import { createGateway, type Gateway } from "../services/gateway/index.ts";
import { postHeadersOnly } from "./harness.ts";

const UPLOAD_BYTES_MAX = 200_000;
const FORM_LIMIT = UPLOAD_BYTES_MAX + 64 * 1024;
const PIXELS_MAX = 10_000;

describe("gateway", () => {
  let billing: BillingFixture;
  let orchestrator: Orchestrator;
  let gateway: Gateway;
  let server: ServiceServer;
  let blobs: InProcessBlobStore;
  let workQueue: InProcessWorkQueue;
  let eventBus: InProcessEventBus;
  let orchestratorClient: Client<typeof OrchestratorService>;
  const dataDir = mkdtempSync(join(tmpdir(), "cutline-gateway-"));
  // Every log line the gateway writes, to assert that no client mistake is logged as a fault.
  const logLines: { level: number; msg: string }[] = [];
  const log = pino(
    { level: "debug" },
    new Writable({
      write(chunk, _encoding, done) {
        for (const line of String(chunk).trim().split("\n")) logLines.push(JSON.parse(line));
        done();
      },
    }),
  );
  const errorsLogged = () => logLines.filter((line) => line.level >= 50);
  let serial = 0;
  let photo: Uint8Array;
  let bigBackground: Uint8Array;

  async function account(): Promise<{ accountId: string; key: string }> {
    serial += 1;
    const accountId = `gateway-${serial}`;
    return { accountId, key: await gateway.provisionAccount(accountId) };
  }

  async function available(accountId: string): Promise<bigint> {
    const billingClient = createClient(BillingService, createRouterTransport((router) => router.service(BillingService, billing.handlers)));
    const balance = await billingClient.getBalance({ accountId, pool: Pool.API });
    assert.equal(balance.heldMillicredits, 0n, "no credit is held");
    return balance.availableMillicredits;
  }

  function transport() {
    return createConnectTransport({ baseUrl: server.url, httpVersion: "1.1" });
  }

  const headersOnly = (path: string, headers: Record<string, string>, contentLength: number) => postHeadersOnly(`${server.url}${path}`, headers, contentLength);

  /** Writes `raw` bytes on a fresh TCP connection and returns everything the server sends back. */
  function rawExchange(raw: Buffer, options: { reset?: boolean; later?: Buffer } = {}): Promise<string> {
    return new Promise((resolve, reject) => {
      const socket = net.connect(server.port, "127.0.0.1");
      let answer = "";
      socket.on("data", (chunk) => (answer += chunk.toString("latin1")));
      socket.on("error", (error) => (options.reset || options.later ? resolve(answer) : reject(error)));
      socket.on("close", () => resolve(answer));
      socket.write(raw, () => {
        if (options.reset) setTimeout(() => socket.resetAndDestroy(), 50);
        // Bytes past the declared length, once the server has had time to answer the declared ones.
        const later = options.later;
        if (later) setTimeout(() => socket.destroyed || socket.write(later, () => {}), 300);
      });
    });
  }

  function multipart(boundary: string, parts: { name: string; data: Uint8Array; filename?: string }[]): Buffer {
    const chunks: Buffer[] = [];
    for (const part of parts) {
      const filename = part.filename ? `; filename="${part.filename}"` : "";
      chunks.push(Buffer.from(`--${boundary}\r\ncontent-disposition: form-data; name="${part.name}"${filename}\r\n\r\n`), Buffer.from(part.data), Buffer.from("\r\n"));
    }
    chunks.push(Buffer.from(`--${boundary}--\r\n`));
    return Buffer.concat(chunks);
  }

  function restErrorOf(body: string): { code: string; title: string } {
    return (JSON.parse(body) as { errors: { code: string; title: string }[] }).errors[0]!;
  }

  before(async () => {
    billing = await createBillingFixture();
    blobs = new InProcessBlobStore({ dataDir, log });
    workQueue = new InProcessWorkQueue({ log });
    eventBus = new InProcessEventBus({ dataDir, log });
    const billingClient = createClient(BillingService, createRouterTransport((router) => router.service(BillingService, billing.handlers)));
    orchestrator = createOrchestrator({ db: billing.db as Kysely<any>, workQueue, eventBus, blobStore: blobs, billing: billingClient, log });
    await orchestrator.start();
    orchestratorClient = createClient(OrchestratorService, createRouterTransport(orchestrator.routes));
    gateway = createGateway({
      db: billing.db as Kysely<any>,
      blobStore: blobs,
      billing: billingClient,
      orchestrator: orchestratorClient,
      inspect: createUploadInspector(imageLimitsOf(loadGatewayConfig({ IMAGE_BYTES_MAX: String(UPLOAD_BYTES_MAX), IMAGE_PIXELS_MAX: String(PIXELS_MAX) }))),
      log,
      limits: {
        uploadBytesMax: UPLOAD_BYTES_MAX,
        syncTimeoutMs: 60_000,
        holdTtlSeconds: 900,
        longestSide: { standard: 2048, pro: 4096 },
        readRequestsPerMinute: 5,
        watchStreamsMax: 2,
      },
    });
    await gateway.start();
    server = await startServiceServer({
      name: "gateway",
      host: "127.0.0.1",
      port: 0,
      log,
      health: new HealthRegistry(),
      routes: gateway.routes,
      httpRoutes: gateway.httpRoutes,
      admit: gateway.admit,
      readBytesMax: UPLOAD_BYTES_MAX + 1024 * 1024,
    });
    photo = new Uint8Array(await sharp({ create: { width: 64, height: 48, channels: 3, background: "#3366cc" } }).png().toBuffer());
    bigBackground = new Uint8Array(await sharp({ create: { width: 200, height: 200, channels: 3, background: "#cc6633" } }).png().toBuffer());
  });

  after(async () => {
    await server?.close();
    await orchestrator?.stop();
    await Promise.all([workQueue?.close(), blobs?.close(), eventBus?.close()]);
    await billing?.dispose();
    rmSync(dataDir, { recursive: true, force: true });
  });

  describe("REST uploads that are not well-formed get a 400 (413 past a byte limit) naming the problem, never a 500", () => {
    it("a multipart body that does not parse answers malformed_multipart", async () => {
      const { key } = await account();
      const body = multipart("right-boundary", [{ name: "image_file", data: photo, filename: "a.png" }]);
      const response = await fetch(`${server.url}/v1/matting`, {
        method: "POST",
        headers: { "x-api-key": key, "content-type": "multipart/form-data; boundary=wrong-boundary" },
        body,
      });
      assert.equal(response.status, 400);
      const error = restErrorOf(await response.text());
      assert.equal(error.code, "malformed_multipart");
      assert.match(error.title, /does not parse as multipart\/form-data/);
      assert.deepEqual(errorsLogged(), []);
    });

    it("multipart/form-data without a boundary answers malformed_multipart", async () => {
      const { key } = await account();
      const response = await fetch(`${server.url}/v1/matting`, { method: "POST", headers: { "x-api-key": key, "content-type": "multipart/form-data" }, body: "x" });
      assert.equal(response.status, 400);
      const error = restErrorOf(await response.text());
      assert.equal(error.code, "malformed_multipart");
      assert.match(error.title, /no boundary/);
    });

    it("a body of another type answers invalid_request; a form or JSON body without the image, missing_image", async () => {
      const { key } = await account();
      const text = await fetch(`${server.url}/v1/matting`, { method: "POST", headers: { "x-api-key": key, "content-type": "text/plain" }, body: "{}" });
      assert.equal(text.status, 400);
      assert.equal(restErrorOf(await text.text()).code, "invalid_request");
      const json = await fetch(`${server.url}/v1/matting`, { method: "POST", headers: { "x-api-key": key, "content-type": "application/json" }, body: "{}" });
      assert.equal(json.status, 400);
      assert.equal(restErrorOf(await json.text()).code, "missing_image");
      const form = new FormData();
      form.append("size", "full");
      const missing = await fetch(`${server.url}/v1/matting`, { method: "POST", headers: { "x-api-key": key }, body: form });
      assert.equal(missing.status, 400);
      assert.equal(restErrorOf(await missing.text()).code, "missing_image");
    });

    it("a declared Content-Length past the limit is refused from the header, naming the limit", async () => {
      const { key } = await account();
      const answer = await headersOnly("/v1/matting", { "x-api-key": key, "content-type": "multipart/form-data; boundary=b" }, 20 * 1024 * 1024);
      assert.equal(answer.status, 413);
      assert.equal(answer.headers.connection, "close");
      const error = restErrorOf(answer.body);
      assert.equal(error.code, "too_many_bytes");
      assert.match(error.title, new RegExp(`declares 20971520 bytes; the limit is ${FORM_LIMIT} bytes \\(UPLOAD_BYTES_MAX`));
    });

    it("a body past the limit without a declared length is refused once it passes the limit", async () => {
      const { key } = await account();
      const answer = await new Promise<{ status: number; body: string }>((resolve, reject) => {
        const request = http.request(
          `${server.url}/v1/matting`,
          { method: "POST", headers: { "x-api-key": key, "content-type": "multipart/form-data; boundary=b", "transfer-encoding": "chunked" } },
          (response) => {
            let body = "";
            response.on("data", (chunk: Buffer) => (body += chunk.toString()));
            response.on("end", () => resolve({ status: response.statusCode ?? 0, body }));
          },
        );
        request.on("error", reject);
        request.write(Buffer.alloc(FORM_LIMIT + 1, 0x61));
      });
      assert.equal(answer.status, 413);
      assert.equal(restErrorOf(answer.body).code, "too_many_bytes");
      assert.match(restErrorOf(answer.body).title, new RegExp(`exceeds ${FORM_LIMIT} bytes`));
    });

    it("a Content-Length shorter than the body cuts the form: malformed_multipart", async () => {
      const { key } = await account();
      const body = multipart("b", [{ name: "image_file", data: photo, filename: "a.png" }]);
      const head = `POST /v1/matting HTTP/1.1\r\nhost: x\r\nx-api-key: ${key}\r\ncontent-type: multipart/form-data; boundary=b\r\ncontent-length: 100\r\nconnection: close\r\n\r\n`;
      const answer = await rawExchange(Buffer.concat([Buffer.from(head), body.subarray(0, 100)]), { later: body.subarray(100) });
      assert.match(answer, /^HTTP\/1.1 400/);
      assert.match(answer, /"code":"malformed_multipart"/);
    });

    it("a client that resets mid-upload logs no error and leaves nothing held: its slot is free again", async () => {
      const { accountId, key } = await account(); // free plan: one request at a time
      const errorsBefore = errorsLogged().length;
      const head = `POST /v1/matting HTTP/1.1\r\nhost: x\r\nx-api-key: ${key}\r\ncontent-type: multipart/form-data; boundary=b\r\ncontent-length: 150000\r\n\r\n`;
      for (let index = 0; index < 3; index++) {
        await rawExchange(Buffer.concat([Buffer.from(head), Buffer.alloc(5000, 0x61)]), { reset: true });
      }
      // The server learns of a reset asynchronously: wait for it (a slow machine may take a while).
      await eventually("the reset to be logged as the client's doing", () => logLines.some((line) => /went away/.test(line.msg)));
      assert.equal(errorsLogged().length, errorsBefore, JSON.stringify(errorsLogged().slice(errorsBefore)));
      // A held concurrency slot would answer 429 concurrency_limited here, and never stop doing so.
      // A few tries, far apart: each one spends one of the free plan's 10 requests a minute.
      let next: Response | undefined;
      for (let attempt = 0; attempt < 5; attempt++) {
        const form = new FormData();
        form.append("size", "full");
        next = await fetch(`${server.url}/v1/matting`, { method: "POST", headers: { "x-api-key": key }, body: form });
        if (next.status !== 429) break;
        await new Promise((resolve) => setTimeout(resolve, 300));
      }
      assert.equal(next?.status, 400);
      assert.equal(await available(accountId), 10_000n);
    });
  });

  describe("uploads are refused on their headers: authentication and limits come before the body", () => {
    it("an unauthenticated 20 MB REST POST is refused with 401 before its body is sent", async () => {
      const answer = await headersOnly("/v1/matting", { "content-type": "multipart/form-data; boundary=b" }, 20 * 1024 * 1024);
      assert.equal(answer.status, 401);
      assert.equal(restErrorOf(answer.body).code, "missing_api_key");
    });

    it("unauthenticated Connect RemoveBackground and Submit are refused before their payload is sent", async () => {
      for (const path of ["/cutline.gateway.v1.ImageService/RemoveBackground", "/cutline.gateway.v1.JobService/Submit"]) {
        const answer = await headersOnly(path, { "content-type": "application/proto", "x-api-key": "not-a-key" }, 20 * 1024 * 1024);
        assert.equal(answer.status, 401, path);
        assert.equal((JSON.parse(answer.body) as { code: string }).code, "unauthenticated");
      }
    });

    it("an authenticated Connect call declaring more than the message limit is refused from the header; its slot is freed", async () => {
      const { key } = await account();
      const path = "/cutline.gateway.v1.ImageService/RemoveBackground";
      const answer = await headersOnly(path, { "content-type": "application/proto", "x-api-key": key }, 20 * 1024 * 1024);
      assert.equal(answer.status, 429);
      assert.equal((JSON.parse(answer.body) as { code: string }).code, "resource_exhausted");
      await new Promise((resolve) => setTimeout(resolve, 100));
      const images = createClient(ImageService, transport());
      await assert.rejects(images.removeBackground({ image: new Uint8Array([1]) }, { headers: { "x-api-key": key } }), (error: unknown) => {
        assert.ok(error instanceof ConnectError);
        assert.equal(error.code, Code.InvalidArgument, "admitted again: the refused call's slot was freed");
        return true;
      });
    });

    it("an unauthenticated gRPC call is refused (UNAUTHENTICATED) before its payload is sent", async () => {
      const session = http2.connect(server.url);
      try {
        const stream = session.request({
          ":method": "POST",
          ":path": "/cutline.gateway.v1.ImageService/RemoveBackground",
          "content-type": "application/grpc",
          te: "trailers",
        });
        stream.write(Buffer.from([0, 0x01, 0x40, 0x00, 0x00])); // a frame header announcing 20 MiB, and nothing after it
        const headers = await new Promise<http2.IncomingHttpHeaders>((resolve) => stream.once("response", resolve));
        assert.equal(headers["grpc-status"], String(Code.Unauthenticated));
        stream.close();
      } finally {
        session.close();
      }
    });

    it("a call past the plan's concurrency is refused on its headers; the slot frees when the call ends", async () => {
      const { key } = await account();
      const images = createClient(ImageService, transport());
      const first = new AbortController();
      // No worker runs, so this call holds its slot until the client gives up.
      const waiting = images.removeBackground({ image: photo, idempotencyKey: "waits" }, { headers: { "x-api-key": key }, signal: first.signal });
      waiting.catch(() => {});
      await new Promise((resolve) => setTimeout(resolve, 300));
      const answer = await headersOnly("/cutline.gateway.v1.ImageService/RemoveBackground", { "content-type": "application/proto", "x-api-key": key }, 20 * 1024 * 1024);
      assert.equal(answer.status, 429);
      assert.equal(answer.headers["cutline-reason"], "concurrency_limited");
      assert.ok(Number(answer.headers["retry-after"]) >= 1);
      first.abort();
      await new Promise((resolve) => setTimeout(resolve, 200));
      const jobs = createClient(JobService, transport());
      // Submit takes no slot; the aborted call's slot is free, so a sync call is admitted again (and refused only for its bad input).
      await assert.rejects(images.removeBackground({ image: new Uint8Array([1, 2, 3]) }, { headers: { "x-api-key": key } }), (error: unknown) => {
        assert.ok(error instanceof ConnectError);
        assert.equal(error.code, Code.InvalidArgument);
        return true;
      });
      const { job } = await jobs.submit({ image: photo, idempotencyKey: "async" }, { headers: { "x-api-key": key } });
      assert.ok(job?.id);
    });

    it("a user error costs no credit and holds nothing", async () => {
      const { accountId, key } = await account();
      const jobs = createClient(JobService, transport());
      await assert.rejects(jobs.submit({ image: new TextEncoder().encode("%PDF-1.7") }, { headers: { "x-api-key": key } }), (error: unknown) => {
        assert.ok(error instanceof ConnectError);
        assert.equal(error.code, Code.InvalidArgument);
        assert.equal(error.metadata.get("cutline-reason"), "unsupported_format");
        return true;
      });
      assert.equal(await available(accountId), 10_000n);
    });
  });

  describe("background_image is checked like the image and travels as a blob", () => {
    it("a background that is not an image, or has too many pixels, is refused before any hold, naming it", async () => {
      const { accountId, key } = await account();
      const jobs = createClient(JobService, transport());
      const cases: [Uint8Array, string][] = [
        [new TextEncoder().encode("not an image at all"), "unsupported_format"],
        [bigBackground, "too_many_pixels"],
        [new Uint8Array(UPLOAD_BYTES_MAX + 1), "too_many_bytes"],
      ];
      for (const [backgroundImage, reason] of cases) {
        await assert.rejects(jobs.submit({ image: photo, options: { backgroundImage } }, { headers: { "x-api-key": key } }), (error: unknown) => {
          assert.ok(error instanceof ConnectError);
          assert.equal(error.code, Code.InvalidArgument);
          assert.equal(error.metadata.get("cutline-reason"), reason);
          assert.match(error.rawMessage, /background_image/);
          return true;
        });
      }
      assert.equal(await available(accountId), 10_000n);
    });

    it("a valid background is stored as inputs/<hold>/background; the job row and the queue message carry only its key", async () => {
      const { key } = await account();
      const background = new Uint8Array(await sharp({ create: { width: 40, height: 40, channels: 3, background: "#00ff00" } }).jpeg().toBuffer());
      const jobs = createClient(JobService, transport());
      const tasks: Uint8Array[] = [];
      const consumer = workQueue.consume(async (message) => {
        tasks.push(message.payload);
        await message.ack();
      });
      const { job } = await jobs.submit({ image: photo, options: { backgroundImage: background } }, { headers: { "x-api-key": key } });
      await new Promise((resolve) => setTimeout(resolve, 200));
      await consumer.drain();
      const internal = (await orchestratorClient.getJob({ jobId: job!.id })).job!;
      assert.equal(internal.backgroundImageBlobKey, `inputs/${internal.holdId}/background`);
      assert.equal(internal.options?.backgroundImage.length, 0);
      assert.deepEqual((await blobs.get(internal.backgroundImageBlobKey))?.data, background);
      const row = await (billing.db as Kysely<any>).selectFrom("jobs").select(["options"]).where("id", "=", job!.id).executeTakeFirstOrThrow();
      assert.ok((row.options as Uint8Array).byteLength < 64, "the options row holds no image bytes");
      const task = tasks.map((payload) => fromBinary(SegmentTaskSchema, payload)).find((candidate) => candidate.jobId === job!.id);
      assert.ok(task, "the job's task was queued");
      assert.equal(task.backgroundImageBlobKey, internal.backgroundImageBlobKey);
      assert.equal(task.options?.backgroundImage.length, 0);
      assert.ok(tasks.every((payload) => payload.byteLength < 1024), "no queue message carries image bytes");
    });

    it("REST takes the background from bg_image_file and checks it the same way", async () => {
      const { accountId, key } = await account();
      const form = new FormData();
      form.append("image_file", new Blob([photo]), "photo.png");
      form.append("bg_image_file", new Blob([bigBackground]), "background.png");
      const response = await fetch(`${server.url}/v1/matting`, { method: "POST", headers: { "x-api-key": key }, body: form });
      assert.equal(response.status, 400);
      const error = restErrorOf(await response.text());
      assert.equal(error.code, "too_many_pixels");
      assert.match(error.title, /^background_image: /);
      assert.equal(await available(accountId), 10_000n);
    });

    it("the orchestrator refuses background bytes inside options", async () => {
      await assert.rejects(
        orchestratorClient.submitJob({ accountId: "a", idempotencyKey: "k", inputBlobKey: "i", holdId: "h", options: { backgroundImage: new Uint8Array([1]) } }),
        (error: unknown) => error instanceof ConnectError && error.code === Code.InvalidArgument && /background_image_blob_key/.test(error.rawMessage),
      );
    });
  });

  describe("job reads are limited per account", () => {
    it("GetJob, WatchJob and CancelJob share a per-minute budget named READ_REQUESTS_PER_MINUTE", async () => {
      const { key } = await account();
      const jobs = createClient(JobService, transport());
      const headers = { headers: { "x-api-key": key } };
      const { job } = await jobs.submit({ image: photo }, headers);
      for (let index = 0; index < 5; index++) await jobs.getJob({ jobId: job!.id }, headers);
      await assert.rejects(jobs.getJob({ jobId: job!.id }, headers), (error: unknown) => {
        assert.ok(error instanceof ConnectError);
        assert.equal(error.code, Code.ResourceExhausted);
        assert.equal(error.metadata.get("cutline-reason"), "read_rate_limited");
        assert.match(error.rawMessage, /5 per minute per account \(READ_REQUESTS_PER_MINUTE\)/);
        assert.ok(Number(error.metadata.get("retry-after")) >= 1);
        return true;
      });
      await assert.rejects(jobs.cancelJob({ jobId: job!.id }, headers), (error: unknown) => error instanceof ConnectError && error.code === Code.ResourceExhausted);
    });

    it("open WatchJob streams are capped per account (WATCH_STREAMS_MAX); closing one frees its place", async () => {
      const { key } = await account();
      const jobs = createClient(JobService, transport());
      const headers = { "x-api-key": key };
      const { job } = await jobs.submit({ image: photo }, { headers });
      const watchers = [new AbortController(), new AbortController()];
      const firstUpdates = await Promise.all(
        watchers.map(async (controller) => {
          const stream = jobs.watchJob({ jobId: job!.id }, { headers, signal: controller.signal })[Symbol.asyncIterator]();
          return (await stream.next()).value;
        }),
      );
      assert.ok(firstUpdates.every((update) => update?.job?.id === job!.id));
      await assert.rejects(
        (async () => {
          for await (const _ of jobs.watchJob({ jobId: job!.id }, { headers })) break;
        })(),
        (error: unknown) => {
          assert.ok(error instanceof ConnectError);
          assert.equal(error.code, Code.ResourceExhausted);
          assert.equal(error.metadata.get("cutline-reason"), "watch_streams_limited");
          assert.match(error.rawMessage, /at most 2 WatchJob streams .* \(WATCH_STREAMS_MAX\)/);
          assert.ok(Number(error.metadata.get("retry-after")) >= 1);
          return true;
        },
      );
      watchers[0]!.abort();
      await new Promise((resolve) => setTimeout(resolve, 300));
      for await (const update of jobs.watchJob({ jobId: job!.id }, { headers })) {
        assert.equal(update.job?.id, job!.id);
        break;
      }
      watchers[1]!.abort();
    });

    it("watching another account's job, or a missing one, answers job_not_found alike", async () => {
      const owner = await account();
      const stranger = await account();
      const jobs = createClient(JobService, transport());
      const { job } = await jobs.submit({ image: photo }, { headers: { "x-api-key": owner.key } });
      for (const jobId of [job!.id, "00000000-0000-0000-0000-000000000000"]) {
        await assert.rejects(
          (async () => {
            for await (const _ of jobs.watchJob({ jobId }, { headers: { "x-api-key": stranger.key } })) break;
          })(),
          (error: unknown) => error instanceof ConnectError && error.code === Code.NotFound && error.metadata.get("cutline-reason") === "job_not_found",
        );
      }
    });
  });

  describe("REST jobs without a worker: queued jobs, cancels, and refusals before any hold", () => {
    it("DELETE /v1/jobs/{id} cancels a queued job and releases its hold; a second DELETE deletes its files", async () => {
      const { accountId, key } = await account();
      const form = new FormData();
      form.append("image_file", new Blob([photo]), "photo.png");
      const submitted = await fetch(`${server.url}/v1/matting?async=true`, { method: "POST", headers: { "x-api-key": key }, body: form });
      assert.equal(submitted.status, 202);
      const job = (await submitted.json()) as { id: string; status: string; credits_charged: number; result_url: null; error: null };
      assert.deepEqual([job.status, job.credits_charged, job.result_url, job.error], ["queued", 0, null, null]);
      const internal = (await orchestratorClient.getJob({ jobId: job.id })).job!;
      assert.ok(await blobs.get(internal.inputBlobKey), "the input is stored");
      const cancelled = await fetch(`${server.url}/v1/jobs/${job.id}`, { method: "DELETE", headers: { "x-api-key": key } });
      assert.equal(cancelled.status, 200);
      const body = (await cancelled.json()) as { status: string; error: { code: string } };
      assert.deepEqual([body.status, body.error.code], ["cancelled", "cancelled"]);
      assert.equal(await available(accountId), 10_000n, "the hold was released: nothing charged, nothing held");
      const deleted = await fetch(`${server.url}/v1/jobs/${job.id}`, { method: "DELETE", headers: { "x-api-key": key } });
      assert.equal(deleted.status, 200);
      assert.equal(await blobs.get(internal.inputBlobKey), undefined, "the input blob was deleted");
      assert.equal((await orchestratorClient.getJob({ jobId: job.id })).job?.filesDeleted, true);
    });

    it("a bad option, a too long Idempotency-Key or a batch past BATCH_ITEMS_MAX is refused with 400 before any hold", async () => {
      const { accountId, key } = await account();
      const post = (path: string, body: FormData, headers: Record<string, string> = {}) =>
        fetch(`${server.url}${path}`, { method: "POST", headers: { "x-api-key": key, ...headers }, body });
      const withImage = (fields: Record<string, string>) => {
        const form = new FormData();
        form.append("image_file", new Blob([photo]), "photo.png");
        for (const [name, value] of Object.entries(fields)) form.append(name, value);
        return form;
      };
      const cases: [Response, string, RegExp][] = [
        [await post("/v1/matting", withImage({ bg_color: "bluish" })), "invalid_option", /bg_color "bluish" is not a hex colour/],
        [await post("/v1/matting", withImage({ output_format: "tiff" })), "invalid_option", /output_format must be one of png, webp, jpg, jpeg, mask; got "tiff"/],
        [await post("/v1/matting?async=maybe", withImage({})), "invalid_option", /async must be one of/],
        [await post("/v1/matting", withImage({}), { "idempotency-key": "k".repeat(256) }), "invalid_request", /256 characters; at most 255 \(IDEMPOTENCY_KEY_LENGTH_MAX\)/],
      ];
      const batch = new FormData();
      for (let index = 0; index < 51; index++) batch.append("image_file", new Blob([photo]), `${index}.png`);
      cases.push([await post("/v1/matting/batch", batch), "too_many_items", /51 images; at most 50 per call \(BATCH_ITEMS_MAX\)/]);
      for (const [response, code, title] of cases) {
        assert.equal(response.status, 400);
        const error = restErrorOf(await response.text());
        assert.equal(error.code, code);
        assert.match(error.title, title);
      }
      assert.equal(await available(accountId), 10_000n);
    });

    it("a raw image body is taken as the image; any other Content-Type is refused naming every way to send one", async () => {
      const { key } = await account();
      const raw = await fetch(`${server.url}/v1/matting?async=true&output_format=jpg&bg_color=ffffff`, {
        method: "POST",
        headers: { "x-api-key": key, "content-type": "image/png" },
        body: photo,
      });
      assert.equal(raw.status, 202);
      const { id } = (await raw.json()) as { id: string };
      const internal = (await orchestratorClient.getJob({ jobId: id })).job!;
      assert.deepEqual((await blobs.get(internal.inputBlobKey))?.data, photo);
      assert.equal(internal.options?.backgroundColor, "#ffffff");
      const text = await fetch(`${server.url}/v1/matting`, { method: "POST", headers: { "x-api-key": key, "content-type": "text/plain" }, body: "hello" });
      assert.equal(text.status, 400);
      assert.match(restErrorOf(await text.text()).title, /multipart\/form-data .*, as the raw body with Content-Type image\/\* .*, or its URL in image_url/);
    });
  });

  it("no request in this suite was logged as a server fault", () => {
    assert.deepEqual(errorsLogged(), []);
  });
});
