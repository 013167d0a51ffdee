import assert from "node:assert/strict";
import { after, before, test } from "node:test";
import { Code } from "@connectrpc/connect";
import pino from "pino";
import { reasonError } from "../../common/errors.ts";
import { HealthRegistry } from "../../common/health.ts";
import { startServiceServer, type ServiceServer } from "../../common/server.ts";
import { creditsNumber } from "../../common/credits.ts";
import { createRouteTable, routeKeys, writeJson, type RestRoute } from "./route-table.ts";

const routes: RestRoute[] = [
  { method: "GET", path: "/v1/things/{id}", handle: async (_request, response, params) => writeJson(response, 200, params) },
  { method: "DELETE", path: "/v1/things/{id}", handle: async (_request, response) => writeJson(response, 200, {}) },
  {
    method: "GET",
    path: "/v1/explode",
    handle: async () => {
      throw new Error("database password is hunter2");
    },
  },
  {
    method: "GET",
    path: "/v1/limited",
    handle: async () => {
      throw reasonError(Code.ResourceExhausted, "rate_limited", "slow down", { metadata: { "retry-after": "7" } });
    },
  },
  {
    method: "GET",
    path: "/vendor/thing",
    handle: async () => {
      throw new Error("boom");
    },
    writeError: (_request, response) => writeJson(response, 500, { error: "vendor shape" }),
  },
];

let server: ServiceServer;
const log = pino({ level: "silent" });

before(async () => {
  server = await startServiceServer({ name: "routes", host: "127.0.0.1", port: 0, log, health: new HealthRegistry(), routes: () => {}, httpRoutes: createRouteTable(routes, log) });
});

after(async () => {
  await server.close();
});

test("a path template's parameters reach the handler, decoded", async () => {
  const response = await fetch(`${server.url}/v1/things/a%20b?x=1`);
  assert.deepEqual(await response.json(), { id: "a b" });
});

test("a route that throws answers 500 internal in the native shape; the cause stays in the log", async () => {
  const response = await fetch(`${server.url}/v1/explode`);
  assert.equal(response.status, 500);
  const body = await response.text();
  assert.deepEqual(JSON.parse(body), { errors: [{ title: "internal error", code: "internal", detail: "the server failed to answer this request; it was logged, retry later" }] });
  assert.doesNotMatch(body, /hunter2/);
});

test("a refusal keeps its reason, status and Retry-After", async () => {
  const response = await fetch(`${server.url}/v1/limited`);
  assert.equal(response.status, 429);
  assert.equal(response.headers.get("retry-after"), "7");
  assert.deepEqual(await response.json(), { errors: [{ title: "slow down", code: "rate_limited", detail: "slow down" }] });
});

test("another method on a known path answers 405 with Allow; an unknown path is left to the server's 404", async () => {
  const wrong = await fetch(`${server.url}/v1/things/1`, { method: "POST" });
  assert.equal(wrong.status, 405);
  assert.equal(wrong.headers.get("allow"), "GET, DELETE");
  assert.equal(((await wrong.json()) as { errors: { code: string }[] }).errors[0]?.code, "method_not_allowed");
  const unknown = await fetch(`${server.url}/v1/things`);
  assert.equal(unknown.status, 404);
  assert.equal(((await unknown.json()) as { errors: { code: string }[] }).errors[0]?.code, "not_found");
});

test("a route family with its own error shape answers in it", async () => {
  const response = await fetch(`${server.url}/vendor/thing`);
  assert.equal(response.status, 500);
  assert.deepEqual(await response.json(), { error: "vendor shape" });
});

test("the table lists every method and path, and refuses a route registered twice", () => {
  assert.deepEqual(routeKeys(routes).map((route) => `${route.method} ${route.path}`), ["GET /v1/things/{id}", "DELETE /v1/things/{id}", "GET /v1/explode", "GET /v1/limited", "GET /vendor/thing"]);
  assert.throws(() => createRouteTable([routes[0]!, routes[0]!], log), /GET \/v1\/things\/\{id\} is registered twice/);
});

test("credits are exact decimal numbers of the integer millicredits", () => {
  assert.deepEqual([1300n, 250n, 0n, 10_000n, 8700n, 1n, -1550n].map(creditsNumber), [1.3, 0.25, 0, 10, 8.7, 0.001, -1.55]);
  assert.equal(JSON.stringify({ credits: creditsNumber(123_456_789_012_345n) }), '{"credits":123456789012.345}');
  assert.throws(() => creditsNumber(2n ** 60n), /exceed what JSON numbers hold exactly/);
});
