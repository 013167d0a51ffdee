// Service-to-service authentication and deadlines, against real servers over h2c: the common
// server with the token interceptor, and peers that accept a connection and then never answer.
import { Code, ConnectError, createClient } from "@connectrpc/connect";
import { createGrpcTransport } from "@connectrpc/connect-node";
import assert from "node:assert/strict";
import { spawnSync } from "node:child_process";
import { randomBytes } from "node:crypto";
import http2 from "node:http2";
import net from "node:net";
import { join } from "node:path";
import { after, before, describe, test } from "node:test";
import { commonConfigSpec } from "./common.config.ts";
import { ConfigError, loadConfig } from "./config.loader.ts";
import { reasonOf } from "./errors.ts";
import { BillingService } from "./gen/cutline/billing/v1/billing_service_pb.ts";
import * as reflection from "./gen/grpc/reflection/v1/reflection_pb.ts";
import { OrchestratorService } from "./gen/cutline/orchestrator/v1/orchestrator_service_pb.ts";
import { Health, HealthRegistry, ServingStatus } from "./health.ts";
import { createLogger } from "./logging.ts";
import { serviceTransport } from "./runtime.ts";
import { startServiceServer, type ServiceServer, type ServiceServerOptions } from "./server.ts";
import { requireServiceToken, SERVICE_TOKEN_HEADER, serviceAuthInterceptor, serviceTokenAdmission } from "./service-auth.ts";

const root = join(import.meta.dirname, "..", "..");
const TOKEN = randomBytes(32).toString("hex");

async function codeAndReason(call: Promise<unknown>): Promise<[string, string | undefined]> {
  try {
    await call;
  } catch (error) {
    const connectError = ConnectError.from(error);
    return [Code[connectError.code], reasonOf(connectError)];
  }
  return ["OK", undefined];
}

/** A billing server whose Quote answers 250 mc, SERVING, with the token checked as `options` say. */
async function startBillingUnderTest(options: Pick<ServiceServerOptions, "interceptors" | "admit" | "readBytesMax">): Promise<ServiceServer> {
  const health = new HealthRegistry();
  const server = await startServiceServer({
    name: "billing-under-test",
    host: "127.0.0.1",
    port: 0,
    log: createLogger("test", "silent"),
    health,
    routes: (router) => router.service(BillingService, { quote: async () => ({ costMillicredits: 250n }) }),
    ...options,
  });
  health.setAllServing();
  return server;
}

describe("service token on internal RPCs", () => {
  let server: ServiceServer;
  before(async () => {
    server = await startBillingUnderTest({ interceptors: [serviceAuthInterceptor(TOKEN)] });
  });
  after(() => server.close());

  test("a call with the token is served", async () => {
    const billing = createClient(BillingService, serviceTransport(server.url, { token: TOKEN }));
    assert.equal((await billing.quote({ accountId: "a" })).costMillicredits, 250n);
  });

  test("a call without the token, or with a wrong one, is UNAUTHENTICATED with a stable reason", async () => {
    const bare = createClient(BillingService, serviceTransport(server.url));
    assert.deepEqual(await codeAndReason(bare.quote({ accountId: "a" })), ["Unauthenticated", "service_token_missing"]);
    // Same length as the real one: only the content differs.
    const wrong = createClient(BillingService, serviceTransport(server.url, { token: randomBytes(32).toString("hex") }));
    assert.deepEqual(await codeAndReason(wrong.quote({ accountId: "a" })), ["Unauthenticated", "service_token_invalid"]);
    const short = createClient(BillingService, serviceTransport(server.url, { token: "x" }));
    assert.deepEqual(await codeAndReason(short.quote({ accountId: "a" })), ["Unauthenticated", "service_token_invalid"]);
    // Connect JSON over HTTP/1.1, as curl would send it.
    const response = await fetch(`${server.url}/cutline.billing.v1.BillingService/Quote`, {
      method: "POST",
      headers: { "content-type": "application/json", [SERVICE_TOKEN_HEADER]: `${TOKEN}x` },
      body: "{}",
    });
    assert.equal(response.status, 401);
  });

  test("Health and reflection answer without the token (Kubernetes gRPC probes send no metadata)", async () => {
    const transport = createGrpcTransport({ baseUrl: server.url });
    const health = createClient(Health, transport);
    assert.equal((await health.check({ service: "" })).status, ServingStatus.SERVING);
    const reflectionClient = createClient(reflection.ServerReflection, transport);
    const names: string[] = [];
    for await (const answer of reflectionClient.serverReflectionInfo(
      (async function* () {
        yield { messageRequest: { case: "listServices" as const, value: "" } };
      })(),
    )) {
      if (answer.messageResponse.case === "listServicesResponse") names.push(...answer.messageResponse.value.service.map((service) => service.name));
    }
    assert.ok(names.includes("cutline.billing.v1.BillingService"), names.join(","));
  });
});

describe("service token checked at admission, before the body", () => {
  let server: ServiceServer;
  before(async () => {
    // Smaller than the request below: only a refusal before the body can answer UNAUTHENTICATED.
    server = await startBillingUnderTest({ readBytesMax: 1024, admit: serviceTokenAdmission(TOKEN) });
  });
  after(() => server.close());

  test("a large request without the token is refused UNAUTHENTICATED, not read (over its size limit)", async () => {
    const large = { accountId: "a".repeat(64 * 1024) };
    const bare = createClient(BillingService, serviceTransport(server.url));
    assert.deepEqual(await codeAndReason(bare.quote(large)), ["Unauthenticated", "service_token_missing"]);
    const wrong = createClient(BillingService, serviceTransport(server.url, { token: randomBytes(32).toString("hex") }));
    assert.deepEqual(await codeAndReason(wrong.quote(large)), ["Unauthenticated", "service_token_invalid"]);
    const good = createClient(BillingService, serviceTransport(server.url, { token: TOKEN }));
    assert.deepEqual(await codeAndReason(good.quote(large)), ["ResourceExhausted", undefined], "with the token, the body is read and its size limit applies");
    assert.equal((await good.quote({ accountId: "a" })).costMillicredits, 250n);
    const health = createClient(Health, createGrpcTransport({ baseUrl: server.url }));
    assert.equal((await health.check({ service: "" })).status, ServingStatus.SERVING);
  });
});

describe("CUTLINE_SERVICE_TOKEN in the configuration", () => {
  test("a token shorter than 32 characters is a config error naming the limit", () => {
    const loadCommonConfig = (environment: NodeJS.ProcessEnv) => loadConfig(commonConfigSpec, environment);
    assert.throws(
      () => loadCommonConfig({ CUTLINE_SERVICE_TOKEN: "short-secret" }),
      (error: unknown) =>
        error instanceof ConfigError && /CUTLINE_SERVICE_TOKEN=.*at least 32 characters/.test(error.message) && !error.message.includes("short-secret"),
    );
    assert.equal(loadCommonConfig({ CUTLINE_SERVICE_TOKEN: TOKEN }).CUTLINE_SERVICE_TOKEN, TOKEN);
    assert.equal(loadCommonConfig({}).CUTLINE_SERVICE_TOKEN, undefined, "single-node mode reads the same spec and needs none");
  });

  test("requireServiceToken names the variable", () => {
    assert.throws(() => requireServiceToken(undefined), (error: unknown) => error instanceof ConfigError && /CUTLINE_SERVICE_TOKEN is not set/.test(error.message));
    assert.equal(requireServiceToken(TOKEN), TOKEN);
  });

  test("every service's main.ts refuses to start without it, naming the variable", () => {
    const environment = { PATH: process.env.PATH, HOME: process.env.HOME, LOG_LEVEL: "silent" };
    for (const service of ["billing", "orchestrator", "inference", "gateway"]) {
      const result = spawnSync(process.execPath, ["--import", "tsx", join(root, "services", service, "main.ts")], {
        cwd: root,
        env: environment,
        encoding: "utf8",
        timeout: 60_000,
      });
      assert.equal(result.status, 1, `${service}: exit status (stderr: ${result.stderr})`);
      assert.match(result.stderr, /CUTLINE_SERVICE_TOKEN is not set/, service);
    }
  });
});

describe("deadlines on calls to a hung peer", () => {
  // Accepts TCP connections and never writes a byte: not even the HTTP/2 settings.
  let silent: net.Server;
  // Speaks HTTP/2, accepts each request, and never answers it.
  let hung: http2.Http2Server;
  const open = new Set<net.Socket | http2.Http2Session>();
  const urlOf = (server: net.Server) => `http://127.0.0.1:${(server.address() as net.AddressInfo).port}`;
  before(async () => {
    silent = net.createServer((socket) => void open.add(socket));
    hung = http2.createServer();
    hung.on("session", (session) => void open.add(session));
    // Destroying a session at the end errors the requests it still holds: expected here.
    hung.on("stream", (stream) => void stream.on("error", () => undefined));
    await Promise.all([silent, hung].map((server) => new Promise<void>((resolve) => server.listen(0, "127.0.0.1", resolve))));
  });
  after(async () => {
    for (const each of open) each.destroy();
    await Promise.all([silent, hung].map((server) => new Promise((resolve) => server.close(resolve))));
  });

  test("a unary call ends with DEADLINE_EXCEEDED within its limit, whether the peer is silent or hung", async () => {
    for (const server of [silent, hung]) {
      const billing = createClient(BillingService, serviceTransport(urlOf(server), { token: TOKEN, timeoutMs: 300 }));
      const started = performance.now();
      assert.deepEqual(await codeAndReason(billing.quote({ accountId: "a" })), ["DeadlineExceeded", undefined]);
      const elapsedMs = performance.now() - started;
      assert.ok(elapsedMs >= 290 && elapsedMs < 1300, `ended after ${Math.round(elapsedMs)} ms, limit 300 ms`);
    }
  });

  test("a server stream is not cut by the unary deadline, and ends at its own", async () => {
    const orchestrator = createClient(OrchestratorService, serviceTransport(urlOf(hung), { token: TOKEN, timeoutMs: 200, streamTimeoutMs: 1200 }));
    const started = performance.now();
    let endedAtMs: number | undefined;
    const watching = codeAndReason(
      (async () => {
        for await (const _update of orchestrator.watchJob({ jobId: "j" }));
      })(),
    ).finally(() => (endedAtMs = performance.now() - started));
    await new Promise((resolve) => setTimeout(resolve, 700));
    assert.equal(endedAtMs, undefined, "still open past the unary deadline");
    assert.deepEqual(await watching, ["DeadlineExceeded", undefined]);
    assert.ok(endedAtMs! >= 1190 && endedAtMs! < 2500, `stream ended after ${Math.round(endedAtMs!)} ms, limit 1200 ms`);
  });

  test("a caller's own timeout still wins over the default", async () => {
    const billing = createClient(BillingService, serviceTransport(urlOf(hung), { timeoutMs: 60_000 }));
    assert.deepEqual(await codeAndReason(billing.quote({ accountId: "a" }, { timeoutMs: 200 })), ["DeadlineExceeded", undefined]);
  });
});
