// The common server, spoken to by independent clients: a stock @grpc/grpc-js client whose
// protos are loaded from proto/ by @grpc/proto-loader (not our generated code) over h2c, and
// plain HTTP/1.1 Connect JSON as curl or a browser sends it.
import { create } from "@bufbuild/protobuf";
import { Code, ConnectError, createClient, type Interceptor } from "@connectrpc/connect";
import { createMethodSerializationLookup } from "@connectrpc/connect/protocol";
import { createConnectTransport, createGrpcTransport, createGrpcWebTransport } from "@connectrpc/connect-node";
import * as grpc from "@grpc/grpc-js";
import * as protoLoader from "@grpc/proto-loader";
import assert from "node:assert/strict";
import http from "node:http";
import { join } from "node:path";
import { after, before, describe, test } from "node:test";
import { reasonError } from "./errors.ts";
import { GetJobResponseSchema, JobService, WatchJobResponseSchema } from "./gen/cutline/gateway/v1/job_service_pb.ts";
import { HealthRegistry, ServingStatus } from "./health.ts";
import { createLogger } from "./logging.ts";
import { startServiceServer, type ServiceServer } from "./server.ts";
import { isLibraryParseFailure, LIBRARY_PARSE_FAILURE_PREFIX } from "./request-parse.ts";

const PROTO_ROOT = join(import.meta.dirname, "..", "..", "proto");

function loadGrpc(file: string): grpc.GrpcObject {
  const definition = protoLoader.loadSync(file, { includeDirs: [PROTO_ROOT], keepCase: true, enums: String, defaults: true });
  return grpc.loadPackageDefinition(definition);
}

type Unary = (request: object, callback: (error: grpc.ServiceError | null, response: any) => void) => void;

let server: ServiceServer;
const health = new HealthRegistry();

before(async () => {
  server = await startServiceServer({
    name: "test",
    host: "127.0.0.1",
    port: 0,
    log: createLogger("test", "silent"),
    health,
    routes: () => {},
    corsAllowedOrigins: ["https://app.example"],
    metricsPort: 0,
    httpRoutes: async (request) => {
      if (request.url !== "/explode") return false;
      throw new Error("route bug: secret detail");
    },
  });
});

after(async () => {
  await server.close();
});

test("health is NOT_SERVING until set, over HTTP/1.1 Connect JSON", async () => {
  const check = () =>
    fetch(`${server.url}/grpc.health.v1.Health/Check`, { method: "POST", headers: { "content-type": "application/json" }, body: "{}" });
  assert.deepEqual(await (await check()).json(), { status: "NOT_SERVING" });
  health.setAllServing();
  assert.deepEqual(await (await check()).json(), { status: "SERVING" });
});

test("a stock grpc-js client checks health over h2c", async () => {
  health.setAllServing();
  const { grpc: grpcPackage } = loadGrpc("grpc/health/v1/health.proto") as any;
  const client = new grpcPackage.health.v1.Health(new URL(server.url).host, grpc.credentials.createInsecure());
  const response = await new Promise<any>((resolve, reject) =>
    (client.Check as Unary).call(client, { service: "" }, (error, value) => (error ? reject(error) : resolve(value))),
  );
  assert.equal(response.status, "SERVING");
  client.close();
});

test("reflection lists the services, as grpcurl asks for them", async () => {
  const { grpc: grpcPackage } = loadGrpc("grpc/reflection/v1/reflection.proto") as any;
  const client = new grpcPackage.reflection.v1.ServerReflection(new URL(server.url).host, grpc.credentials.createInsecure());
  const call = client.ServerReflectionInfo();
  const response = await new Promise<any>((resolve, reject) => {
    call.once("data", resolve);
    call.once("error", reject);
    call.write({ list_services: "" });
  });
  call.end();
  const names = response.list_services_response.service.map((service: { name: string }) => service.name);
  assert.ok(names.includes("grpc.health.v1.Health"), names.join(","));
  assert.ok(names.includes("grpc.reflection.v1.ServerReflection"), names.join(","));
  const files = await new Promise<any>((resolve, reject) => {
    const symbolCall = client.ServerReflectionInfo();
    symbolCall.once("data", resolve);
    symbolCall.once("error", reject);
    symbolCall.write({ file_containing_symbol: "grpc.health.v1.Health" });
    symbolCall.end();
  });
  assert.equal(files.file_descriptor_response.file_descriptor_proto.length, 1);
  client.close();
});

test("metrics are served for Prometheus on their own port, and not on the public one", async () => {
  assert.ok(server.metricsUrl, "a metrics URL when metricsPort is given");
  assert.notEqual(new URL(server.metricsUrl).port, String(server.port));
  const response = await fetch(server.metricsUrl);
  assert.equal(response.status, 200);
  assert.match(await response.text(), /cutline_rpc_requests_total\{service="grpc.health.v1.Health",method="Check",code="ok"\}/);
  assert.equal((await fetch(`${server.url}/metrics`)).status, 404);
  assert.equal((await fetch(new URL("/other", server.metricsUrl))).status, 404);
});

test("unknown paths answer 404 in the native error shape, naming the path", async () => {
  const response = await fetch(`${server.url}/nope?x=1`);
  assert.equal(response.status, 404);
  assert.equal(response.headers.get("content-type"), "application/json");
  assert.deepEqual(await response.json(), {
    errors: [{ title: "not found", code: "not_found", detail: "no route for GET /nope; the routes are listed at /openapi.json" }],
  });
});

test("an http route that throws answers 500 internal in the native shape, its cause kept out of the answer", async () => {
  const response = await fetch(`${server.url}/explode`);
  assert.equal(response.status, 500);
  const body = await response.text();
  assert.deepEqual(JSON.parse(body), {
    errors: [{ title: "internal error", code: "internal", detail: "the server failed to answer this request; it was logged, retry later" }],
  });
  assert.doesNotMatch(body, /secret/);
});

test("health Watch streams the change to NOT_SERVING on shutdown", async () => {
  health.setAllServing();
  const { grpc: grpcPackage } = loadGrpc("grpc/health/v1/health.proto") as any;
  const client = new grpcPackage.health.v1.Health(new URL(server.url).host, grpc.credentials.createInsecure());
  const call = client.Watch({ service: "" });
  const statuses: string[] = [];
  const secondUpdate = new Promise<void>((resolve) =>
    call.on("data", (message: { status: string }) => {
      statuses.push(message.status);
      if (statuses.length === 2) resolve();
    }),
  );
  call.on("error", () => {});
  await new Promise((resolve) => setTimeout(resolve, 100));
  health.set("", ServingStatus.NOT_SERVING);
  await secondUpdate;
  assert.deepEqual(statuses, ["SERVING", "NOT_SERVING"]);
  call.cancel();
  client.close();
});

test("browsers from an allowed origin get CORS preflight answers; others get none", async () => {
  const preflight = await fetch(`${server.url}/grpc.health.v1.Health/Check`, {
    method: "OPTIONS",
    headers: { origin: "https://app.example", "access-control-request-method": "POST", "access-control-request-headers": "x-api-key" },
  });
  assert.equal(preflight.status, 204);
  assert.equal(preflight.headers.get("access-control-allow-origin"), "https://app.example");
  assert.match(preflight.headers.get("access-control-allow-headers") ?? "", /X-Api-Key/);
  const call = await fetch(`${server.url}/grpc.health.v1.Health/Check`, {
    method: "POST",
    headers: { origin: "https://app.example", "content-type": "application/json" },
    body: "{}",
  });
  assert.match(call.headers.get("access-control-expose-headers") ?? "", /Cutline-Reason/);
  // remove.bg's result and rate-limit headers, for its browser clients.
  const exposed = new Set((call.headers.get("access-control-expose-headers") ?? "").split(/,\s*/).map((name) => name.toLowerCase()));
  for (const header of ["X-Credits-Charged", "X-Width", "X-Height", "X-Type", "X-Foreground-Top", "X-Foreground-Left", "X-Foreground-Width", "X-Foreground-Height", "X-RateLimit-Limit", "X-RateLimit-Remaining", "X-RateLimit-Reset", "Retry-After"]) {
    assert.ok(exposed.has(header.toLowerCase()), `${header} is exposed to browsers`);
  }
  const stranger = await fetch(`${server.url}/grpc.health.v1.Health/Check`, {
    method: "POST",
    headers: { origin: "https://evil.example", "content-type": "application/json" },
    body: "{}",
  });
  assert.equal(stranger.headers.get("access-control-allow-origin"), null);
});

describe("an admission hook refuses before the body, in the caller's protocol", () => {
  let guarded: ServiceServer;
  const guardedHealth = new HealthRegistry();
  const seen: { bodyRead: boolean[]; handled: number } = { bodyRead: [], handled: 0 };
  const refusal = () => reasonError(Code.Unauthenticated, "api_key_missing", "send your API key in X-Api-Key");

  before(async () => {
    guarded = await startServiceServer({
      name: "guarded",
      host: "127.0.0.1",
      port: 0,
      log: createLogger("test", "silent"),
      health: guardedHealth,
      routes: (router) =>
        router.service(JobService, {
          getJob(request) {
            seen.handled += 1;
            return create(GetJobResponseSchema, { job: { id: request.jobId } });
          },
          async *watchJob(request) {
            seen.handled += 1;
            yield create(WatchJobResponseSchema, { job: { id: request.jobId } });
          },
        }),
      httpRoutes: async (request, response) => {
        if (!request.url?.startsWith("/v1/echo")) return false;
        seen.handled += 1;
        let bytes = 0;
        for await (const chunk of request) bytes += (chunk as Buffer).length;
        response.writeHead(200, { "content-type": "application/json" });
        response.end(JSON.stringify({ bytes }));
        return true;
      },
      async admit(request) {
        // Nothing of the body has been consumed when the hook runs.
        seen.bodyRead.push(request.readableDidRead);
        if (request.headers["x-explode"]) throw new Error("hook bug: secret detail");
        return request.headers["x-api-key"] === "good" ? undefined : refusal();
      },
    });
    guardedHealth.setAllServing();
  });

  after(async () => {
    await guarded.close();
  });

  const connectClient = (transport: "connect" | "grpc-web" | "grpc", apiKey?: string) => {
    const interceptors: Interceptor[] = apiKey ? [(next) => (request) => (request.header.set("x-api-key", apiKey), next(request))] : [];
    const options = { baseUrl: guarded.url, interceptors };
    if (transport === "connect") return createClient(JobService, createConnectTransport({ ...options, httpVersion: "1.1" }));
    if (transport === "grpc-web") return createClient(JobService, createGrpcWebTransport({ ...options, httpVersion: "1.1" }));
    return createClient(JobService, createGrpcTransport(options));
  };

  for (const transport of ["connect", "grpc-web", "grpc"] as const) {
    test(`${transport}: unary and server-streaming calls without a key get Unauthenticated with the reason; with one they pass`, async () => {
      const client = connectClient(transport);
      const handledBefore = seen.handled;
      const unary = await client.getJob({ jobId: "j1" }).then(() => undefined, (error: unknown) => ConnectError.from(error));
      assert.equal(unary?.code, Code.Unauthenticated, String(unary));
      assert.equal(unary?.rawMessage, "send your API key in X-Api-Key");
      assert.equal(unary?.metadata.get("cutline-reason"), "api_key_missing");
      const streamed = await (async () => {
        for await (const _ of client.watchJob({ jobId: "j1" })) return undefined;
      })().then(() => undefined, (error: unknown) => ConnectError.from(error));
      assert.equal(streamed?.code, Code.Unauthenticated, String(streamed));
      assert.equal(seen.handled, handledBefore, "no handler ran for a refused call");

      const admitted = connectClient(transport, "good");
      assert.equal((await admitted.getJob({ jobId: "j2" })).job?.id, "j2");
      for await (const message of admitted.watchJob({ jobId: "j3" })) assert.equal(message.job?.id, "j3");
    });
  }

  test("a stock grpc-js client gets UNAUTHENTICATED as a trailers-only response", async () => {
    const { cutline } = loadGrpc("cutline/gateway/v1/job_service.proto") as any;
    const client = new cutline.gateway.v1.JobService(new URL(guarded.url).host, grpc.credentials.createInsecure());
    const error = await new Promise<grpc.ServiceError>((resolve, reject) =>
      (client.GetJob as Unary).call(client, { job_id: "j" }, (failure, value) => (failure ? resolve(failure) : reject(new Error(`admitted: ${JSON.stringify(value)}`)))),
    );
    assert.equal(error.code, grpc.status.UNAUTHENTICATED);
    assert.equal(error.details, "send your API key in X-Api-Key");
    assert.deepEqual(error.metadata.get("cutline-reason"), ["api_key_missing"]);
    client.close();
  });

  test("REST paths get the JSON errors body, the status errors.ts gives, and the reason header", async () => {
    const response = await fetch(`${guarded.url}/v1/echo`, { method: "POST", body: "x".repeat(1000) });
    assert.equal(response.status, 401);
    assert.equal(response.headers.get("cutline-reason"), "api_key_missing");
    assert.deepEqual(await response.json(), { errors: [{ title: "send your API key in X-Api-Key", code: "api_key_missing", detail: "send your API key in X-Api-Key" }] });
    const admitted = await fetch(`${guarded.url}/v1/echo`, { method: "POST", body: "x".repeat(1000), headers: { "x-api-key": "good" } });
    assert.deepEqual(await admitted.json(), { bytes: 1000 });
    assert.ok(seen.bodyRead.length > 0 && seen.bodyRead.every((read) => read === false), "the hook always ran before any body byte was read");
  });

  test("an upload that waits for 100-continue is refused without its body ever being sent", async () => {
    const request = http.request(`${guarded.url}/v1/echo`, { method: "POST", headers: { expect: "100-continue", "content-length": String(8 * 1024 * 1024) } });
    let continued = false;
    request.on("continue", () => {
      continued = true;
      request.end(Buffer.alloc(8 * 1024 * 1024));
    });
    const response = await new Promise<http.IncomingMessage>((resolve, reject) => {
      request.once("response", resolve);
      request.once("error", reject);
      request.flushHeaders();
    });
    assert.equal(response.statusCode, 401);
    assert.equal(continued, false, "the server never asked for the body");
    request.destroy();
  });

  test("a hook that throws refuses the call as an internal error, its cause kept out of the answer", async () => {
    const response = await fetch(`${guarded.url}/cutline.gateway.v1.JobService/GetJob`, {
      method: "POST",
      headers: { "content-type": "application/json", "x-explode": "1" },
      body: "{}",
    });
    assert.equal(response.status, 500);
    assert.deepEqual(await response.json(), { code: "internal", message: "internal error" });
  });

  test("health and reflection are never subject to the hook", async () => {
    const response = await fetch(`${guarded.url}/grpc.health.v1.Health/Check`, { method: "POST", headers: { "content-type": "application/json" }, body: "{}" });
    assert.deepEqual(await response.json(), { status: "SERVING" });
    const { grpc: grpcPackage } = loadGrpc("grpc/reflection/v1/reflection.proto") as any;
    const client = new grpcPackage.reflection.v1.ServerReflection(new URL(guarded.url).host, grpc.credentials.createInsecure());
    const call = client.ServerReflectionInfo();
    const answer = await new Promise<any>((resolve, reject) => {
      call.once("data", resolve);
      call.once("error", reject);
      call.write({ list_services: "" });
    });
    call.end();
    client.close();
    assert.ok(answer.list_services_response.service.some((service: { name: string }) => service.name === "cutline.gateway.v1.JobService"));
  });
});

test("a server stream outlives the request timeout, which ends with the request's last byte (HTTP/1.1 and h2c)", async () => {
  const streaming = await startServiceServer({
    name: "streaming",
    host: "127.0.0.1",
    port: 0,
    log: createLogger("test", "silent"),
    health: new HealthRegistry(),
    headersTimeoutMs: 200,
    requestTimeoutMs: 400,
    routes: (router) =>
      router.service(JobService, {
        async *watchJob(request) {
          for (let update = 0; update < 4; update += 1) {
            await new Promise((resolve) => setTimeout(resolve, 300));
            yield create(WatchJobResponseSchema, { job: { id: `${request.jobId}-${update}` } });
          }
        },
      }),
  });
  try {
    for (const transport of [createConnectTransport({ baseUrl: streaming.url, httpVersion: "1.1" }), createGrpcTransport({ baseUrl: streaming.url })]) {
      const started = Date.now();
      const ids: string[] = [];
      for await (const message of createClient(JobService, transport).watchJob({ jobId: "w" })) ids.push(message.job!.id);
      assert.deepEqual(ids, ["w-0", "w-1", "w-2", "w-3"]);
      assert.ok(Date.now() - started > 1_000, "the stream ran past the 400 ms request timeout");
    }
  } finally {
    await streaming.close();
  }
});

describe("a request message that does not parse is the caller's error (request-parse.ts)", () => {
  let target: ServiceServer;
  // Errors an implementation throws itself, worded as the library words a parse failure: a
  // downstream client that could not read its response is this server's fault and stays Internal.
  const downstreamFault = () => new ConnectError(`${LIBRARY_PARSE_FAILURE_PREFIX}premature EOF (from billing's answer)`, Code.Internal);

  before(async () => {
    target = await startServiceServer({
      name: "parse",
      host: "127.0.0.1",
      port: 0,
      log: createLogger("test", "silent"),
      health: new HealthRegistry(),
      metricsPort: 0,
      routes: (router) =>
        router.service(JobService, {
          getJob(request) {
            if (request.jobId === "downstream") throw downstreamFault();
            return create(GetJobResponseSchema, { job: { id: request.jobId } });
          },
          async *watchJob(request) {
            if (request.jobId === "downstream") throw downstreamFault();
            yield create(WatchJobResponseSchema, { job: { id: request.jobId } });
          },
        }),
    });
  });

  after(async () => {
    await target.close();
  });

  test("@connectrpc/connect still answers a binary parse failure with Internal; when this fails, delete request-parse.ts", () => {
    const lookup = createMethodSerializationLookup(JobService.method.getJob, undefined, undefined, { readMaxBytes: 1024, writeMaxBytes: 1024 });
    assert.throws(
      () => lookup.getI(true).parse(new Uint8Array([10, 16, 65])),
      (error: unknown) => error instanceof ConnectError && isLibraryParseFailure(error),
      "the library no longer throws Internal 'parse binary: ...': request-parse.ts's translation (and this test) can go",
    );
  });

  test("garbage over Connect unary is 400 invalid_argument, counted as code 3 and never as 13", async () => {
    const metricLine = async (code: number) =>
      (await (await fetch(target.metricsUrl!)).text()).match(new RegExp(`cutline_rpc_requests_total\\{service="cutline.gateway.v1.JobService",method="GetJob",code="${code}"\\} (\\d+)`))?.[1];
    const before = Number((await metricLine(3)) ?? 0);
    const response = await fetch(`${target.url}/cutline.gateway.v1.JobService/GetJob`, { method: "POST", headers: { "content-type": "application/proto" }, body: new Uint8Array([7]) });
    assert.equal(response.status, 400);
    assert.equal(((await response.json()) as { code: string }).code, "invalid_argument");
    assert.equal(Number(await metricLine(3)), before + 1);
    assert.equal(await metricLine(13), undefined);
  });

  for (const transport of ["connect", "grpc-web", "grpc"] as const) {
    test(`${transport}: an implementation's own Internal error stays Internal, whatever its wording`, async () => {
      const options = { baseUrl: target.url };
      const client = createClient(
        JobService,
        transport === "connect"
          ? createConnectTransport({ ...options, httpVersion: "1.1" })
          : transport === "grpc-web"
            ? createGrpcWebTransport({ ...options, httpVersion: "1.1" })
            : createGrpcTransport(options),
      );
      const unary = await client.getJob({ jobId: "downstream" }).then(() => undefined, (error: unknown) => ConnectError.from(error));
      assert.equal(unary?.code, Code.Internal, String(unary));
      const streamed = await (async () => {
        for await (const _ of client.watchJob({ jobId: "downstream" })) return undefined;
      })().then(() => undefined, (error: unknown) => ConnectError.from(error));
      assert.equal(streamed?.code, Code.Internal, String(streamed));
      assert.equal((await client.getJob({ jobId: "fine" })).job?.id, "fine");
    });
  }
});
