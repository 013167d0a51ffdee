// OpenTelemetry across the services: one image call in single-node mode (in-memory Connect
// transports, the in-process queue and bus) is one trace with spans from all four services,
// through the work queue and back on the event bus; a log line inside a span names its trace.
import { context, ProxyTracerProvider, SpanKind, trace } from "@opentelemetry/api";
import { InMemorySpanExporter, NodeTracerProvider, type ReadableSpan } from "@opentelemetry/sdk-trace-node";
import assert from "node:assert/strict";
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { spawnSync } from "node:child_process";
import { Writable } from "node:stream";
import { after, before, test } from "node:test";
import { createLogger } from "../services/common/logging.ts";
import { SERVICE_ATTRIBUTE, startTracing, tracingEnabled, type Tracing } from "../services/common/tracing.ts";
import { traceLogFields } from "../services/common/trace-log-fields.ts";
import { startSingleNode, type SingleNode } from "../services/single-node.ts";
import { testPhoto } from "./end-to-end.scenario.ts";
import { eventually } from "../services/common/ports/contract-support.ts";
import { createPorts } from "../services/common/adapters/index.ts";
import { tracedEventBus, tracedWorkQueue } from "../services/common/tracing.ts";
import { testNatsUrl, uniqueName } from "./harness.ts";
import { createServer } from "node:http";
import { pino } from "pino";

const exporter = new InMemorySpanExporter();
let tracing: Tracing;
let node: SingleNode;
const dataDir = mkdtempSync(join(tmpdir(), "cutline-tracing-"));

before(async () => {
  // CUTLINE_TRACING stays off for the node: the test's provider (with its in-memory exporter) is the one registered.
  tracing = await startTracing({ CUTLINE_TRACING: "off" }, "cutline", exporter);
  node = await startSingleNode({ CUTLINE_DATA_DIR: dataDir, PORT: "0", METRICS_PORT: "off", LOG_LEVEL: "warn", INFERENCE_WARMUP_RUNS: "1" });
  await node.ready;
});

after(async () => {
  await node?.stop();
  await tracing?.shutdown();
  rmSync(dataDir, { recursive: true, force: true });
});

async function removeBackground(headers: Record<string, string> = {}): Promise<Response> {
  const form = new FormData();
  form.append("image_file", new Blob([await testPhoto()], { type: "image/jpeg" }), "photo.jpg");
  return fetch(`${node.url}/v1/matting`, { method: "POST", headers: { "x-api-key": node.apiKey, ...headers }, body: form });
}

const servicesOf = (spans: ReadableSpan[]) => new Set(spans.map((span) => span.attributes[SERVICE_ATTRIBUTE]).filter((name) => name !== undefined));

test("one image call is one trace: gateway, billing, orchestrator and inference, through the queue and back", async () => {
  // The caller's own trace is continued (W3C traceparent).
  const traceId = "4bf92f3577b34da6a3ce929d0e0e4736";
  const response = await removeBackground({ traceparent: `00-${traceId}-00f067aa0ba902b7-01` });
  assert.equal(response.status, 200, await response.clone().text());
  await response.arrayBuffer();
  const spansOfCall = () => exporter.getFinishedSpans().filter((span) => span.spanContext().traceId === traceId);
  // The capture after job.succeeded may end a moment after the response.
  await eventually("spans of every service", () => ["gateway", "billing", "orchestrator", "inference"].every((name) => servicesOf(spansOfCall()).has(name)));
  const spans = spansOfCall();
  // One tree: every span but the gateway's first hangs from another span of this call.
  const ids = new Set(spans.map((span) => span.spanContext().spanId));
  const detached = spans.filter((span) => span.name !== "POST /v1/matting" && !ids.has(span.parentSpanContext?.spanId ?? ""));
  assert.deepEqual(detached.map((span) => span.name), []);
  const byName = (name: string) => spans.filter((span) => span.name === name);

  const [root] = byName("POST /v1/matting");
  assert.ok(root, "the REST request is spanned");
  assert.equal(root.parentSpanContext?.spanId, "00f067aa0ba902b7");

  const [published] = spans.filter((span) => /^work\.\w+ publish$/.test(span.name));
  const [processed] = spans.filter((span) => /^work\.\w+ process$/.test(span.name));
  assert.ok(published && processed, `the queue hop is spanned: ${spans.map((span) => span.name).join(", ")}`);
  assert.equal(processed.parentSpanContext?.spanId, published.spanContext().spanId, "the worker's span is the publish's child");
  assert.equal(processed.attributes[SERVICE_ATTRIBUTE], "inference");

  // Back: the worker's job.succeeded reaches the orchestrator, which captures the hold at billing.
  const [succeeded] = byName("job.succeeded publish");
  assert.ok(succeeded);
  const succeededProcessed = spans.find((span) => span.name === "job.succeeded process" && span.parentSpanContext?.spanId === succeeded.spanContext().spanId);
  assert.equal(succeededProcessed?.attributes[SERVICE_ATTRIBUTE], "orchestrator");
  const capture = spans.find((span) => span.name === "cutline.billing.v1.BillingService/Capture" && span.attributes[SERVICE_ATTRIBUTE] === "billing");
  assert.ok(capture, "the capture is in the same trace");
});

test("an HTTP span is named by its route, never by the raw path; the path stays in url.path", async () => {
  exporter.reset();
  const traceId = "5bf92f3577b34da6a3ce929d0e0e4737";
  const jobId = "0b8f6c1e-4d2a-4f6b-9a4e-7c1d2e3f4a5b";
  const response = await fetch(`${node.url}/v1/jobs/${jobId}`, { headers: { "x-api-key": node.apiKey, traceparent: `00-${traceId}-00f067aa0ba902b7-01` } });
  await response.arrayBuffer();
  const unmatched = await fetch(`${node.url}/nowhere/${jobId}`, { headers: { traceparent: `00-${traceId}-00f067aa0ba902b7-01` } });
  await unmatched.arrayBuffer();
  const byPath = (path: string) => exporter.getFinishedSpans().find((span) => span.spanContext().traceId === traceId && span.attributes["url.path"] === path);
  await eventually("both requests spanned", () => byPath(`/v1/jobs/${jobId}`) !== undefined && byPath(`/nowhere/${jobId}`) !== undefined);
  const job = byPath(`/v1/jobs/${jobId}`)!;
  assert.equal(job.name, "GET /v1/jobs/{id}");
  assert.equal(job.attributes["http.route"], "/v1/jobs/{id}");
  assert.equal(job.kind, SpanKind.SERVER);
  // No route matched: the method alone (OpenTelemetry's HTTP conventions), no id in any span name.
  assert.equal(byPath(`/nowhere/${jobId}`)!.name, "GET");
  assert.ok(!exporter.getFinishedSpans().some((span) => span.name.includes(jobId)), "no span name carries the id");
});

test("an RPC over the network has one SERVER span; the exchange around it (admission) is INTERNAL", async () => {
  exporter.reset();
  const traceId = "6bf92f3577b34da6a3ce929d0e0e4738";
  const rpc = "cutline.gateway.v1.AccountService/GetBalance";
  const response = await fetch(`${node.url}/${rpc}`, {
    method: "POST",
    headers: { "content-type": "application/json", "x-api-key": node.apiKey, traceparent: `00-${traceId}-00f067aa0ba902b7-01` },
    body: "{}",
  });
  assert.equal(response.status, 200, await response.clone().text());
  await response.arrayBuffer();
  const spans = () => exporter.getFinishedSpans().filter((span) => span.spanContext().traceId === traceId && span.attributes[SERVICE_ATTRIBUTE] === "gateway");
  await eventually("the exchange ended", () => spans().some((span) => span.attributes["url.path"] === `/${rpc}`));
  const servers = spans().filter((span) => span.kind === SpanKind.SERVER);
  assert.deepEqual(servers.map((span) => span.name), [rpc], "one SERVER span, the RPC's");
  const exchange = spans().find((span) => span.attributes["url.path"] === `/${rpc}`)!;
  assert.equal(exchange.kind, SpanKind.INTERNAL);
  assert.equal(servers[0]!.parentSpanContext?.spanId, exchange.spanContext().spanId, "the RPC span inside the exchange");
  assert.equal(exchange.parentSpanContext?.spanId, "00f067aa0ba902b7", "the exchange continues the caller's trace");
});

test("through JetStream: a task and its event carry the context in NATS headers, each processed in a child span", async (context_) => {
  const natsUrl = await testNatsUrl();
  if (!natsUrl) return context_.skip("set NATS_URL to run over JetStream");
  const ports = await createPorts({ natsUrl, namePrefix: uniqueName("tracing"), log: pino({ level: "silent" }) });
  const queue = tracedWorkQueue(ports.workQueue);
  const bus = tracedEventBus(ports.eventBus);
  try {
    exporter.reset();
    const root = trace.getTracer("test").startSpan("call");
    await context.with(trace.setSpan(context.active(), root), () => queue.enqueue(new Uint8Array([1]), { id: uniqueName("task") }));
    root.end();
    let headers: Readonly<Record<string, string>> | undefined;
    const worker = queue.consume(async (message) => {
      headers = message.headers;
      await bus.publish("job.succeeded", new Uint8Array([2]), { id: message.id });
      await message.ack();
    });
    const events = bus.subscribe(async () => {}, { durableName: "orchestrator", subjectFilter: "job.*" });
    const spans = () => exporter.getFinishedSpans().filter((span) => span.spanContext().traceId === root.spanContext().traceId);
    await eventually("the event processed", () => spans().some((span) => span.name === "job.succeeded process"), 10_000);
    await worker.drain();
    await events.drain();
    assert.match(headers?.traceparent ?? "", new RegExp(`^00-${root.spanContext().traceId}-`));
    const named = (name: string) => spans().find((span) => span.name === name)!;
    assert.equal(named("work.normal process").parentSpanContext?.spanId, named("work.normal publish").spanContext().spanId);
    assert.equal(named("job.succeeded publish").parentSpanContext?.spanId, named("work.normal process").spanContext().spanId);
    assert.equal(named("job.succeeded process").parentSpanContext?.spanId, named("job.succeeded publish").spanContext().spanId);
    assert.equal(named("job.succeeded process").attributes[SERVICE_ATTRIBUTE], "orchestrator");
  } finally {
    await ports.close();
  }
});

test("a log line written inside a span carries its trace and span ids", async () => {
  const lines: string[] = [];
  const destination = new Writable({
    write(chunk: Buffer, _encoding, done) {
      lines.push(chunk.toString());
      done();
    },
  });
  const log = createLogger("gateway", "info", destination);
  const span = trace.getTracer("test").startSpan("work");
  context.with(trace.setSpan(context.active(), span), () => log.info("inside"));
  log.info("outside");
  span.end();
  const [inside, outside] = lines.map((line) => JSON.parse(line) as Record<string, unknown>);
  assert.equal(inside?.trace_id, span.spanContext().traceId);
  assert.equal(inside?.span_id, span.spanContext().spanId);
  assert.equal(outside?.trace_id, undefined);
});

test("tracing off registers no provider: calls make no spans and logs carry no ids", async () => {
  await tracing.shutdown();
  assert.equal(tracingEnabled(), false);
  const delegate = (trace.getTracerProvider() as ProxyTracerProvider).getDelegate();
  assert.ok(!(delegate instanceof NodeTracerProvider), "no SDK provider behind the API");
  exporter.reset();
  const response = await removeBackground();
  assert.equal(response.status, 200);
  await response.arrayBuffer();
  assert.equal(exporter.getFinishedSpans().length, 0);
  assert.deepEqual(traceLogFields(), {});
});

test("CUTLINE_TRACING=otlp sends the spans to OTEL_EXPORTER_OTLP_ENDPOINT/v1/traces under OTEL_SERVICE_NAME", async () => {
  const received: { path: string; body: string }[] = [];
  const collector = createServer((request, response) => {
    let body = "";
    request.on("data", (chunk: Buffer) => (body += chunk.toString()));
    request.on("end", () => {
      received.push({ path: request.url ?? "", body });
      response.writeHead(200, { "content-type": "application/json" }).end("{}");
    });
  });
  await new Promise<void>((resolve) => collector.listen(0, "127.0.0.1", resolve));
  const { port } = collector.address() as { port: number };
  const otlp = await startTracing({ CUTLINE_TRACING: "otlp", OTEL_EXPORTER_OTLP_ENDPOINT: `http://127.0.0.1:${port}/`, OTEL_SERVICE_NAME: "gateway-eu" }, "gateway");
  try {
    const span = trace.getTracer("test").startSpan("exported");
    span.end();
    await otlp.shutdown(); // flushes the batch
    assert.equal(received[0]?.path, "/v1/traces");
    assert.ok(received[0]?.body.includes("gateway-eu"), "service.name on the resource");
    assert.ok(received[0]?.body.includes(span.spanContext().traceId), "the span's trace id");
  } finally {
    await otlp.shutdown();
    collector.close();
  }
});

test("tracing on twice in one process is refused, naming the problem, even while the first loads the SDK", async () => {
  const loading = startTracing({ CUTLINE_TRACING: "otlp", OTEL_EXPORTER_OTLP_ENDPOINT: "http://127.0.0.1:9" }, "gateway");
  await assert.rejects(startTracing({ CUTLINE_TRACING: "otlp" }, "gateway"), /tracing is already started in this process/);
  const first = await loading;
  try {
    await assert.rejects(startTracing({ CUTLINE_TRACING: "otlp" }, "gateway"), /tracing is already started in this process/);
  } finally {
    void first.shutdown();
  }
});

test("the logger loads no OpenTelemetry SDK: tracing off costs a service nothing", () => {
  const script = 'await import("./services/common/logging.ts"); await import("./services/common/tracing.ts"); const loaded = Object.keys((await import("node:module")).createRequire(import.meta.url).cache); console.log(JSON.stringify(loaded.filter((path) => /@opentelemetry[\\/](sdk-|exporter-|resources)/.test(path))));';
  const child = spawnSync(process.execPath, ["--import", "tsx", "--input-type=module", "-e", script], { cwd: join(import.meta.dirname, ".."), encoding: "utf8" });
  assert.equal(child.status, 0, child.stderr);
  assert.deepEqual(JSON.parse(child.stdout.trim().split("\n").at(-1)!), [], "SDK modules loaded by the logger or tracing.ts");
});
