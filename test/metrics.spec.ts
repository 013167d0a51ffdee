// docs/metrics.md is the metrics contract the alerts and dashboard rely on: a running single node,
// after one image call, serves every metric it names on METRICS_PORT, with plausible values (the
// credits captured are what the call charged).
import assert from "node:assert/strict";
import { mkdtempSync, readFileSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { after, before, test } from "node:test";
import { startSingleNode, type SingleNode } from "../services/single-node.ts";
import { testPhoto } from "./end-to-end.scenario.ts";

const DOC = join(import.meta.dirname, "..", "docs", "metrics.md");

/** The metric names of docs/metrics.md's table. */
function documentedMetrics(): string[] {
  const text = readFileSync(DOC, "utf8");
  const table = text.slice(text.indexOf("<!-- metrics-table:start -->"), text.indexOf("<!-- metrics-table:end -->"));
  return [...table.matchAll(/^\| `([a-z_]+)` \|/gm)].map((match) => match[1]!);
}

/** Each metric of docs/metrics.md's table with its documented label names ("—": none). */
function documentedLabels(): Map<string, string[]> {
  const text = readFileSync(DOC, "utf8");
  const table = text.slice(text.indexOf("<!-- metrics-table:start -->"), text.indexOf("<!-- metrics-table:end -->"));
  return new Map([...table.matchAll(/^\| `([a-z_]+)` \| \w+ \| ([^|]+) \|/gm)].map((match) => [match[1]!, match[2]!.trim() === "—" ? [] : match[2]!.split(",").map((label) => label.trim()).sort()]));
}

interface Sample {
  name: string;
  labels: Record<string, string>;
  value: number;
}

function parse(text: string): { types: Map<string, string>; samples: Sample[] } {
  const types = new Map<string, string>();
  const samples: Sample[] = [];
  for (const line of text.split("\n")) {
    const type = /^# TYPE (\S+) (\S+)$/.exec(line);
    if (type) types.set(type[1]!, type[2]!);
    const sample = /^([a-zA-Z_:][\w:]*)(?:\{(.*)\})? (\S+)$/.exec(line);
    if (!sample) continue;
    const labels: Record<string, string> = {};
    for (const [, key, value] of (sample[2] ?? "").matchAll(/(\w+)="((?:[^"\\]|\\.)*)"/g)) labels[key!] = value!;
    samples.push({ name: sample[1]!, labels, value: Number(sample[3]) });
  }
  return { types, samples };
}

let node: SingleNode;
const dataDir = mkdtempSync(join(tmpdir(), "cutline-metrics-"));

before(async () => {
  // No warm-up: the other quality settings' sides warm up in the background once serving, and those
  // runs would land in the model's counters between the two scrapes.
  node = await startSingleNode({ CUTLINE_DATA_DIR: dataDir, PORT: "0", METRICS_PORT: "0", LOG_LEVEL: "warn", INFERENCE_WARMUP_RUNS: "0", BILLING_SWEEP_INTERVAL_MS: "200" });
  await node.ready;
});

after(async () => {
  await node?.stop();
  rmSync(dataDir, { recursive: true, force: true });
});

async function scrape() {
  const response = await fetch(node.metricsUrl!);
  assert.equal(response.status, 200);
  return parse(await response.text());
}

/** The sum of a metric's samples whose labels include `labels`. */
function total(samples: Sample[], name: string, labels: Record<string, string> = {}): number {
  return samples.filter((sample) => sample.name === name && Object.entries(labels).every(([key, value]) => sample.labels[key] === value)).reduce((sum, sample) => sum + sample.value, 0);
}

test("after one image call, every documented metric is served with a plausible value", async () => {
  const documented = documentedMetrics();
  assert.ok(documented.length >= 20, `docs/metrics.md lists ${documented.length} metrics`);
  const before = (await scrape()).samples;

  const form = new FormData();
  form.append("image_file", new Blob([await testPhoto()], { type: "image/jpeg" }), "photo.jpg");
  const call = await fetch(`${node.url}/v1/matting`, { method: "POST", headers: { "x-api-key": node.apiKey }, body: form });
  assert.equal(call.status, 200, await call.clone().text());
  await call.arrayBuffer();
  const charged = Number(call.headers.get("x-credits-charged"));
  assert.ok(charged > 0, `x-credits-charged: ${call.headers.get("x-credits-charged")}`);
  // One RPC too, for the RPC series.
  await fetch(`${node.url}/grpc.health.v1.Health/Check`, { method: "POST", headers: { "content-type": "application/json" }, body: "{}" });

  // The sweeper (every 200 ms here) counts open holds: wait for a sweep after the call's capture.
  const holdsOpen = (scraped: { samples: Sample[] }) => scraped.samples.find((sample) => sample.name === "cutline_holds_open")?.value;
  let after = await scrape();
  for (let attempt = 0; attempt < 50 && holdsOpen(after) !== 0; attempt++) {
    await new Promise((resolve) => setTimeout(resolve, 100));
    after = await scrape();
  }
  const { types, samples } = after;
  for (const name of documented) assert.ok(types.has(name), `${name} is documented but not served`);
  // The labels served are the labels documented (histograms add `le` to their buckets).
  for (const [name, labels] of documentedLabels()) {
    for (const sample of samples.filter((candidate) => candidate.name.replace(/_(bucket|sum|count)$/, "") === name)) {
      assert.deepEqual(Object.keys(sample.labels).filter((label) => label !== "le").sort(), labels, `${sample.name}: labels as docs/metrics.md lists them`);
    }
  }
  // code is `ok` or a gRPC code's number, as documented and as the alerts match it.
  for (const sample of samples.filter((candidate) => candidate.name === "cutline_rpc_requests_total")) assert.match(sample.labels.code!, /^(ok|\d+)$/);
  const delta = (name: string, labels: Record<string, string> = {}) => total(samples, name, labels) - total(before, name, labels);

  // Gateway HTTP: the route's pattern, not the raw path.
  assert.equal(delta("cutline_http_requests_total", { route: "/v1/matting", method: "POST", status: "200" }), 1);
  assert.equal(delta("cutline_http_request_duration_seconds_count", { route: "/v1/matting", method: "POST" }), 1);
  assert.ok(delta("cutline_rpc_requests_total", { service: "grpc.health.v1.Health", method: "Check", code: "ok" }) >= 1);
  assert.equal(total(samples, "cutline_health_status", { service: "server" }), 1);
  assert.equal(delta("cutline_dead_letters_total"), 0);
  assert.ok(total(samples, "cutline_event_loop_active_seconds") >= 0);
  assert.ok(total(samples, "cutline_event_loop_delay_max_seconds") >= 0);

  // Inference: this machine has no GPU, so the default list (cuda,cpu) runs on the CPU, and says so.
  assert.equal(total(samples, "cutline_inference_execution_provider", { provider: "cpu", requested: "cuda,cpu" }), 1);
  assert.equal(total(samples, "cutline_inference_tasks_in_flight"), 0);
  assert.equal(delta("cutline_inference_tasks_total", { kind: "image", outcome: "succeeded" }), 1);
  assert.equal(delta("cutline_inference_batch_size_count"), 1);
  assert.equal(delta("cutline_inference_queue_wait_seconds_count"), 1);
  assert.equal(delta("cutline_inference_run_seconds_count"), 1);
  assert.equal(delta("cutline_inference_pipeline_seconds_count"), 1);
  assert.equal(total(samples, "cutline_inference_queue_depth"), 0);

  // Orchestrator.
  assert.equal(delta("cutline_jobs_total", { operation: "remove_background", status: "succeeded" }), 1);
  assert.equal(delta("cutline_jobs_total"), 1);
  assert.equal(delta("cutline_job_queue_wait_seconds_count"), 1);
  assert.ok(delta("cutline_job_queue_wait_seconds_sum") < 60);
  // Polled every 15 s: the last poll may have seen the call's one task.
  const pending = samples.filter((sample) => sample.name === "cutline_work_queue_pending");
  // Both queues, images and videos (KEDA scales on both), each by lane.
  assert.deepEqual(pending.map((sample) => `${sample.labels.queue}/${sample.labels.lane}`).sort(), ["image/high", "image/normal", "video/high", "video/normal"]);
  for (const sample of pending) assert.ok(sample.value === 0 || sample.value === 1, `work queue pending ${sample.labels.queue}/${sample.labels.lane}: ${sample.value}`);

  // Billing: the call's hold was captured at what it charged; the rest of the hold went back.
  const reserved = delta("cutline_credits_reserved_total");
  const captured = delta("cutline_credits_captured_total");
  const released = delta("cutline_credits_released_total");
  assert.ok(Math.abs(captured - charged) < 1e-9, `captured ${captured} credits, the call charged ${charged}`);
  assert.ok(reserved >= captured, `reserved ${reserved} < captured ${captured}`);
  assert.ok(Math.abs(reserved - captured - released) < 1e-9, `reserved ${reserved} ≠ captured ${captured} + released ${released}`);
  assert.equal(total(samples, "cutline_holds_open"), 0);
  assert.equal(delta("cutline_holds_expired_total"), 0);
});
