// Quote equals what a real call captures: a single node (PGlite, in-process adapters, the real
// model) prices a 64x64 image with POST /v1/quote, runs it through POST /v1/matting, and the
// amount captured (X-Credits-Charged, the balance, the usage) is the quoted one.
import assert from "node:assert/strict";
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { after, before, test } from "node:test";
import sharp from "sharp";
import { startSingleNode, type SingleNode } from "../services/single-node.ts";

let node: SingleNode;
const dataDir = mkdtempSync(join(tmpdir(), "cutline-public-api-node-"));

before(async () => {
  node = await startSingleNode({ CUTLINE_DATA_DIR: dataDir, PORT: "0", METRICS_PORT: "0", LOG_LEVEL: "warn", INFERENCE_WARMUP_RUNS: "1" });
  await node.ready;
});

after(async () => {
  await node?.stop();
  rmSync(dataDir, { recursive: true, force: true });
});

test("the quote for a 64x64 image is exactly what the call then captures", async () => {
  const apiKey = await node.provisionAccount("quoted");
  const headers = { "x-api-key": apiKey };
  const balance = async () => ((await (await fetch(`${node.url}/v1/credit/balance`, { headers })).json()) as { available_credits: number }).available_credits;
  const quoteResponse = await fetch(`${node.url}/v1/quote`, {
    method: "POST",
    headers: { ...headers, "content-type": "application/json" },
    body: JSON.stringify({ operation: "matting", width: 64, height: 64, size: "full" }),
  });
  assert.equal(quoteResponse.status, 200);
  const { credits } = (await quoteResponse.json()) as { credits: number };
  assert.equal(credits, 0.5);
  const before = await balance();

  const image = await sharp({ create: { width: 64, height: 64, channels: 3, background: "#3366cc" } }).composite([{ input: Buffer.from('<svg width="64" height="64"><circle cx="32" cy="32" r="20" fill="#ffaa00"/></svg>') }]).png().toBuffer();
  const form = new FormData();
  form.append("image_file", new Blob([new Uint8Array(image)], { type: "image/png" }), "dot.png");
  const response = await fetch(`${node.url}/v1/matting`, { method: "POST", headers, body: form });
  assert.equal(response.status, 200, await response.clone().text());
  assert.equal(response.headers.get("content-type"), "image/png");
  await response.arrayBuffer();
  assert.equal(Number(response.headers.get("x-credits-charged")), credits, "captured = quoted");
  assert.equal(Number(response.headers.get("x-credits-remaining")), await balance());
  assert.equal(Math.round((before - (await balance())) * 1000), credits * 1000, "the balance fell by the quote");

  const usage = (await (await fetch(`${node.url}/v1/usage`, { headers })).json()) as { rows: { calls: number; credits: number }[]; cycle: { calls: number } };
  assert.deepEqual(usage.rows.map((row) => [row.calls, row.credits]), [[1, credits]]);
  assert.equal(usage.cycle.calls, 1, "the call counted against the monthly quota");
});
