// The common server, spoken to by independent clients: a stock @grpc/grpc-js client whose
// protos are loaded from proto/ by @grpc/proto-loader (not our generated code) over h2c, and
// plain HTTP/1.1 Connect JSON as curl or a browser sends it.
import * as grpc from "@grpc/grpc-js";
import * as protoLoader from "@grpc/proto-loader";
import assert from "node:assert/strict";
import { join } from "node:path";
import { after, before, test } from "node:test";
import { HealthRegistry, ServingStatus } from "./health.ts";
import { createLogger } from "./logging.ts";
import { startServiceServer, type ServiceServer } from "./server.ts";

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

test("unknown paths answer 404 with a JSON error", async () => {
  const response = await fetch(`${server.url}/nope`);
  assert.equal(response.status, 404);
  assert.equal(((await response.json()) as { error: { code: string } }).error.code, "not_found");
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
  const stranger = await fetch(`${server.url}/grpc.health.v1.Health/Check`, {
    method: "POST",
    headers: { origin: "https://evil.example", "content-type": "application/json" },
    body: "{}",
  });
  assert.equal(stranger.headers.get("access-control-allow-origin"), null);
});
