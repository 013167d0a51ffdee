// The REST job API against a real single node (PGlite, in-process adapters, the real model):
// the shared set-up of test/public-api*.spec.ts. Images are 64×64 (the ≤ 0.25 MP tier: 0.5
// credit each) so the CPU model stays quick.
import assert from "node:assert/strict";
import { mkdtempSync, readFileSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { after, before } from "node:test";
import { sql, type Kysely } from "kysely";
import sharp from "sharp";
import { Pool } from "../services/common/gen/cutline/billing/v1/billing_service_pb.ts";
import { startSingleNode, type SingleNode } from "../services/single-node.ts";

export interface JobJson {
  id: string;
  status: string;
  progress: number;
  credits_charged: number;
  result_url: string | null;
  error: { code: string; title: string } | null;
  processing_time_ms: number | null;
  queue_time_ms: number | null;
  inference_time_ms: number | null;
}

export interface BatchJson {
  batch_id: string;
  items: { index: number; job: JobJson | null; error: { code: string; title: string } | null }[];
}

export const TRIAL_MILLICREDITS = 10_000n;
export const IMAGE_MILLICREDITS = 500n;
export const POLL_TIMEOUT_MS = 120_000;
/** A real photo from the inference test data: HEIC, 64×48, so a call costs IMAGE_MILLICREDITS. */
export const TESTDATA_PHOTO = new Uint8Array(readFileSync(join(import.meta.dirname, "..", "services", "inference", "testdata", "orange-blue-corner.heic")));

/** A plan whose monthly quota is two calls; otherwise as generous as the unlimited plan. Not listed. */
export const TINY_QUOTA_PLAN = "tiny_quota_test";
export const TINY_QUOTA_CALLS = 2;

/** Adds TINY_QUOTA_PLAN to a migrated billing database (there is no API that makes plans). */
export async function addTinyQuotaPlan(db: Kysely<any>): Promise<void> {
  await sql`insert into billing_plans (code, name, monthly_price_cents, credits_per_cycle_mc, rollover_cycles, on_exhausted,
      overage_rate_cents_per_credit, overage_cap_mc, requests_per_minute, concurrency, monthly_calls, max_upload_bytes,
      longest_side_pixels, priority_lane, seats, listed)
    values (${TINY_QUOTA_PLAN}, 'Tiny quota (tests)', 0, 0, 0, 'stop', 0, 0, 1000, 10, ${TINY_QUOTA_CALLS}, 12582912, 4000, 'normal', 1, false)`.execute(db);
}

/** The REST helpers of these suites for the gateway at `url()`, read at each call (it starts in a `before`). */
export function publicApiClient(url: () => string) {
  const client = {
    imageForm(image: Uint8Array, fields: Record<string, string> = {}): FormData {
      const form = new FormData();
      form.append("image_file", new Blob([image], { type: "image/png" }), "photo.png");
      for (const [name, value] of Object.entries(fields)) form.append(name, value);
      return form;
    },
    async errorOf(response: Response): Promise<{ code: string; title: string }> {
      return ((await response.json()) as { errors: { code: string; title: string }[] }).errors[0]!;
    },
    async getJob(key: string, id: string): Promise<JobJson> {
      const response = await fetch(`${url()}/v1/jobs/${id}`, { headers: { "x-api-key": key } });
      assert.equal(response.status, 200);
      return (await response.json()) as JobJson;
    },
    async pollUntilDone(key: string, id: string): Promise<JobJson> {
      const deadline = Date.now() + POLL_TIMEOUT_MS;
      for (;;) {
        const job = await client.getJob(key, id);
        if (!["queued", "running"].includes(job.status)) return job;
        assert.ok(Date.now() < deadline, `job ${id} still ${job.status} after ${POLL_TIMEOUT_MS} ms`);
        await new Promise((resolve) => setTimeout(resolve, 200));
      }
    },
    /** Reads the batch until every item that has a job has ended. */
    async pollBatchUntilDone(key: string, batchId: string, timeoutMs: number): Promise<BatchJson> {
      const deadline = Date.now() + timeoutMs;
      for (;;) {
        const read = await fetch(`${url()}/v1/batches/${batchId}`, { headers: { "x-api-key": key } });
        assert.equal(read.status, 200);
        const batch = (await read.json()) as BatchJson;
        if (batch.items.every((item) => item.job === null || !["queued", "running"].includes(item.job.status))) return batch;
        const statuses = batch.items.map((item) => item.job?.status ?? item.error?.code);
        assert.ok(Date.now() < deadline, `the batch did not finish within ${timeoutMs} ms: ${statuses.join(", ")}`);
        await new Promise((resolve) => setTimeout(resolve, 500));
      }
    },
  };
  return client;
}

/** A result URL with one hex character of its signature changed. */
export function tamperedSignature(url: string): string {
  return url.replace(/signature=([0-9a-f]+)/, (_, hex: string) => `signature=${hex.slice(0, -1)}${hex.endsWith("0") ? "1" : "0"}`);
}

/** Starts a single node (with `environment` on top of the test defaults) before the suite's tests and stops it after; the helpers they use. */
export function publicApiNode(prefix: string, environment: Record<string, string> = {}) {
  const client = publicApiClient(() => context.node.url);
  const context = {
    node: undefined as unknown as SingleNode,
    dataDir: mkdtempSync(join(tmpdir(), `cutline-${prefix}-`)),
    photo: new Uint8Array(),
    otherPhoto: new Uint8Array(),
    serial: 0,
    async account(): Promise<{ accountId: string; key: string }> {
      context.serial += 1;
      const accountId = `${prefix}-${context.serial}`;
      return { accountId, key: await context.node.provisionAccount(accountId) };
    },
    async balance(accountId: string): Promise<{ available: bigint; held: bigint }> {
      const answer = await context.node.billing.getBalance({ accountId, pool: Pool.API });
      return { available: answer.availableMillicredits, held: answer.heldMillicredits };
    },
    ...client,
  };

  before(async () => {
    context.node = await startSingleNode({ CUTLINE_DATA_DIR: context.dataDir, PORT: "0", METRICS_PORT: "off", LOG_LEVEL: "warn", INFERENCE_WARMUP_RUNS: "1", ...environment });
    await context.node.ready;
    const disc = (colour: string) =>
      Buffer.from(`<svg xmlns="http://www.w3.org/2000/svg" width="64" height="64"><rect width="64" height="64" fill="#d8e4f0"/><circle cx="32" cy="34" r="18" fill="${colour}"/></svg>`);
    context.photo = new Uint8Array(await sharp(disc("#c0501a")).png().toBuffer());
    context.otherPhoto = new Uint8Array(await sharp(disc("#1a50c0")).png().toBuffer());
  });

  after(async () => {
    await context.node?.stop();
    rmSync(context.dataDir, { recursive: true, force: true });
  });

  return context;
}
