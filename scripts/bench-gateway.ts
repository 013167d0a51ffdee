// Gateway overhead under load, against a real single node with the real model:
//
//   npm run bench:gateway [-- --concurrency 1,16,64] [--rounds 3] [--image <photo>] [--profile <dir>]
//
// Overhead is what a client waits beyond the work it pays for: each call's end-to-end latency
// (request sent to the last byte of the image read) less the queue wait and the inference time
// the worker reports for it (X-Queue-Time-Ms, X-Inference-Time-Ms). It is everything else the
// system does for the call: authentication, limits, quote, hold, blob writes and reads, the job's
// records, events, the capture and the HTTP exchange itself.
//
// The node runs in a child process (scripts/bench-gateway-node.ts, `startSingleNode` on this
// environment: embedded PGlite and in-process ports unless DATABASE_URL / NATS_URL are set), so
// the load generator's work is not in its event loop; it reports its own event-loop delay per
// level. The account is made through the real admin API on the unlisted "unlimited" plan (no
// rate or concurrency limit below the load: it admits the 64 calls at once) and funded there.
// With --profile, the node's main thread is CPU-profiled during the highest level and the
// profile summarised: self time by package, and by the service whose code is nearest on the stack.
//
// Per level: requests = max(--requests-min, rounds × concurrency), all POST /v1/matting with a
// small photo (the raw body). The LAST line is one JSON object: the highest level's figures
// (overheadP50Ms, overheadP99Ms, rps, …) and every level's under byConcurrency.
import { fork, type ChildProcess } from "node:child_process";
import { existsSync, mkdirSync, mkdtempSync, readFileSync, rmSync } from "node:fs";
import { Agent, request as httpRequest } from "node:http";
import { availableParallelism, loadavg, tmpdir } from "node:os";
import { join, resolve } from "node:path";
import { parseArgs } from "node:util";
import sharp from "sharp";
import type { BenchNodeMessage, BenchNodeRequest, EventLoopWindow } from "./bench-gateway-node.ts";
import { summariseProfile, type CpuProfile } from "./cpu-profile.ts";

const root = join(import.meta.dirname, "..");
/** The target this benchmark exists for: overhead p99 at the highest level (milliseconds). */
const OVERHEAD_P99_MS_TARGET = 25;
/** Credits granted to the bench account: one grant's limit is 100,000; a run spends a few hundred. */
const FUNDING_CREDITS = 10_000;
/** How long the node may take to load and warm the model (milliseconds). */
const NODE_START_MS_MAX = 300_000;
/** Photo's longest side after downscaling (pixels): a preview-sized upload, the ≤ 0.25 MP tier. */
const PHOTO_LONGEST_SIDE = 427;

/**
 * The node's settings unless the environment says otherwise. A call at the back of 64 waits for
 * 63 images before it: on a busy CPU that is minutes, past the default SYNC_TIMEOUT_MS (2 min)
 * and JOB_QUIET_MS_MAX (5 min, after which a queued job counts as lost and is re-queued).
 */
const NODE_DEFAULTS = { LOG_LEVEL: "warn", INFERENCE_WARMUP_RUNS: "1", SYNC_TIMEOUT_MS: "890000", JOB_QUIET_MS_MAX: "880000" };

const { values: args } = parseArgs({
  options: {
    concurrency: { type: "string", default: "1,16,64" },
    rounds: { type: "string", default: "3" },
    "requests-min": { type: "string", default: "30" },
    warmup: { type: "string", default: "8" },
    image: { type: "string" },
    profile: { type: "string" },
  },
});
const levels = args.concurrency.split(",").map(Number);
const rounds = Number(args.rounds);
const requestsMin = Number(args["requests-min"]);
const warmupRequests = Number(args.warmup);
for (const [name, value] of Object.entries({ rounds, requestsMin, warmupRequests, ...Object.fromEntries(levels.map((level, index) => [`concurrency[${index}]`, level])) })) {
  if (!Number.isInteger(value) || value < (name === "warmupRequests" ? 0 : 1)) throw new Error(`--${name} must be a whole number of at least 1, got ${value}`);
}

// ---------- figures ----------

function percentile(values: number[], p: number): number {
  const sorted = [...values].sort((a, b) => a - b);
  return sorted[Math.max(0, Math.ceil((p / 100) * sorted.length) - 1)] ?? Number.NaN;
}
const round1 = (value: number) => Math.round(value * 10) / 10;

interface Call {
  latencyMs: number;
  queueMs: number;
  inferenceMs: number;
  processingMs: number;
}

interface LevelFigures {
  concurrency: number;
  requests: number;
  errors: number;
  rps: number;
  latencyP50Ms: number;
  latencyP95Ms: number;
  latencyP99Ms: number;
  overheadP50Ms: number;
  overheadP95Ms: number;
  overheadP99Ms: number;
  overheadMaxMs: number;
  queueP50Ms: number;
  inferenceP50Ms: number;
  eventLoopDelayP50Ms: number;
  eventLoopDelayP99Ms: number;
  eventLoopDelayMaxMs: number;
  eventLoopUtilisation: number;
}

function figuresOf(concurrency: number, calls: Call[], errors: number, wallMs: number, loop: EventLoopWindow): LevelFigures {
  const overheads = calls.map((call) => call.latencyMs - call.queueMs - call.inferenceMs);
  const latencies = calls.map((call) => call.latencyMs);
  return {
    concurrency,
    requests: calls.length,
    errors,
    rps: Math.round(((calls.length * 1000) / wallMs) * 100) / 100,
    latencyP50Ms: round1(percentile(latencies, 50)),
    latencyP95Ms: round1(percentile(latencies, 95)),
    latencyP99Ms: round1(percentile(latencies, 99)),
    overheadP50Ms: round1(percentile(overheads, 50)),
    overheadP95Ms: round1(percentile(overheads, 95)),
    overheadP99Ms: round1(percentile(overheads, 99)),
    overheadMaxMs: round1(Math.max(...overheads)),
    queueP50Ms: percentile(calls.map((call) => call.queueMs), 50),
    inferenceP50Ms: percentile(calls.map((call) => call.inferenceMs), 50),
    eventLoopDelayP50Ms: round1(loop.eventLoopDelayP50Ms),
    eventLoopDelayP99Ms: round1(loop.eventLoopDelayP99Ms),
    eventLoopDelayMaxMs: round1(loop.eventLoopDelayMaxMs),
    eventLoopUtilisation: Math.round(loop.eventLoopUtilisation * 1000) / 1000,
  };
}

// ---------- the node ----------

class BenchNode {
  private readonly waiting: ((message: BenchNodeMessage) => void)[] = [];
  private constructor(private readonly child: ChildProcess) {
    child.on("message", (message: BenchNodeMessage) => {
      if (message.type === "error") throw new Error(`bench node: ${message.message}`);
      this.waiting.shift()?.(message);
    });
  }

  static async start(dataDir: string): Promise<{ node: BenchNode; url: string; adminToken: string }> {
    const child = fork(join(root, "scripts", "bench-gateway-node.ts"), [], {
      execArgv: ["--import", "tsx"],
      env: { ...NODE_DEFAULTS, ...process.env, CUTLINE_DATA_DIR: dataDir, PORT: "0", METRICS_PORT: "off" },
      stdio: ["ignore", "inherit", "inherit", "ipc"],
    });
    const node = new BenchNode(child);
    const exited = new Promise<never>((_, reject) => child.once("exit", (code) => reject(new Error(`the bench node exited with ${code} before it was ready`))));
    const timeout = new Promise<never>((_, reject) => setTimeout(() => reject(new Error(`the node was not ready within ${NODE_START_MS_MAX} ms`)), NODE_START_MS_MAX).unref());
    const ready = await Promise.race([node.next(), exited, timeout]);
    if (ready.type !== "ready") throw new Error(`unexpected first message ${ready.type}`);
    const tokenFile = ready.adminTokenFile ?? join(dataDir, "admin-token");
    const adminToken = process.env.CUTLINE_ADMIN_TOKEN ?? readFileSync(tokenFile, "utf8").trim();
    return { node, url: ready.url, adminToken };
  }

  private next(): Promise<BenchNodeMessage> {
    return new Promise((resolve) => this.waiting.push(resolve));
  }

  async ask(request: BenchNodeRequest): Promise<BenchNodeMessage> {
    const answer = this.next();
    this.child.send(request);
    return answer;
  }

  async stop(): Promise<void> {
    const exited = new Promise((resolve) => this.child.once("exit", resolve));
    this.child.send({ type: "stop" } satisfies BenchNodeRequest);
    await exited;
  }
}

// ---------- the load ----------

async function samplePhoto(): Promise<{ bytes: Buffer; label: string }> {
  const candidates = [args.image, join(root, "..", "shared", "eval", "dev", "davis2016", "dog_00030.jpg")];
  const path = candidates.find((candidate) => candidate !== undefined && existsSync(candidate));
  if (path) {
    const bytes = await sharp(readFileSync(path)).resize({ width: PHOTO_LONGEST_SIDE, height: PHOTO_LONGEST_SIDE, fit: "inside" }).jpeg({ quality: 85 }).toBuffer();
    return { bytes, label: `${path} at ${PHOTO_LONGEST_SIDE} px` };
  }
  // No photo at hand: a textured JPEG, so decode and encode still do real work.
  const [width, height] = [PHOTO_LONGEST_SIDE, Math.round((PHOTO_LONGEST_SIDE * 9) / 16)];
  const noise = Buffer.alloc(width * height * 3);
  for (let index = 0; index < noise.length; index++) noise[index] = (index * 2654435761) >>> 24;
  const bytes = await sharp(noise, { raw: { width, height, channels: 3 } }).blur(2).jpeg({ quality: 85 }).toBuffer();
  return { bytes, label: `synthetic ${width}×${height} JPEG` };
}

async function adminCall(url: string, token: string, path: string, body: Record<string, unknown>): Promise<Record<string, unknown>> {
  const response = await fetch(`${url}/admin/v1/${path}`, {
    method: "POST",
    headers: { authorization: `Bearer ${token}`, "content-type": "application/json" },
    body: JSON.stringify(body),
  });
  const answer = (await response.json()) as Record<string, unknown>;
  if (!response.ok) throw new Error(`admin ${path} answered ${response.status}: ${JSON.stringify(answer)}`);
  return answer;
}

type Outcome = { ok: true; call: Call } | { ok: false; status: number; body: string };

function matting(target: URL, agent: Agent, apiKey: string, photo: Buffer): Promise<Outcome> {
  return new Promise((resolve, reject) => {
    const sent = performance.now();
    const request = httpRequest(
      target,
      { method: "POST", agent, headers: { "x-api-key": apiKey, "content-type": "image/jpeg", "content-length": String(photo.byteLength) } },
      (response) => {
        const chunks: Buffer[] = [];
        response.on("data", (chunk: Buffer) => chunks.push(chunk));
        response.on("end", () => {
          const latencyMs = performance.now() - sent;
          if (response.statusCode !== 200) {
            resolve({ ok: false, status: response.statusCode ?? 0, body: Buffer.concat(chunks).toString("utf8").slice(0, 300) });
            return;
          }
          const header = (name: string) => {
            const value = Number(response.headers[name]);
            if (!Number.isFinite(value)) throw new Error(`the response has no ${name} header`);
            return value;
          };
          resolve({ ok: true, call: { latencyMs, queueMs: header("x-queue-time-ms"), inferenceMs: header("x-inference-time-ms"), processingMs: header("x-processing-time-ms") } });
        });
        response.on("error", reject);
      },
    );
    request.on("error", reject);
    request.end(photo);
  });
}

/** `requests` calls, `concurrency` at a time; progress every quarter. */
async function runLevel(send: () => Promise<Outcome>, concurrency: number, requests: number, label: string): Promise<{ calls: Call[]; errors: string[]; wallMs: number }> {
  const calls: Call[] = [];
  const errors: string[] = [];
  let started = 0;
  let done = 0;
  const begun = performance.now();
  const quarter = Math.max(1, Math.floor(requests / 4));
  await Promise.all(
    Array.from({ length: concurrency }, async () => {
      while (started < requests) {
        started += 1;
        const outcome = await send();
        if (outcome.ok) calls.push(outcome.call);
        else errors.push(`${outcome.status} ${outcome.body}`);
        done += 1;
        if (done % quarter === 0 && done < requests) {
          const overheads = calls.map((call) => call.latencyMs - call.queueMs - call.inferenceMs);
          console.log(`  ${label}: ${done}/${requests} done in ${((performance.now() - begun) / 1000).toFixed(1)} s; overhead p50 ${percentile(overheads, 50).toFixed(1)} ms so far`);
        }
      }
    }),
  );
  return { calls, errors, wallMs: performance.now() - begun };
}

// ---------- the run ----------

const dataDir = mkdtempSync(join(tmpdir(), "cutline-bench-gateway-"));
const profileDir = args.profile ? resolve(args.profile) : undefined;
if (profileDir) mkdirSync(profileDir, { recursive: true });
console.log(`machine: ${availableParallelism()} CPUs, load average ${loadavg().map((load) => load.toFixed(2)).join(" ")} at start`);
// libuv's pool (4 threads unless UV_THREADPOOL_SIZE says otherwise) carries sharp's work and every file operation.
const threadPool = process.env.UV_THREADPOOL_SIZE ? `UV_THREADPOOL_SIZE=${process.env.UV_THREADPOOL_SIZE}` : "libuv's default pool of 4 threads";
console.log(`starting a single node (${process.env.DATABASE_URL ? "Postgres" : "embedded PGlite"}, ${process.env.NATS_URL ? "NATS" : "in-process"} ports, ${threadPool}) in ${dataDir} …`);
const { node, url, adminToken } = await BenchNode.start(dataDir);
const byConcurrency: Record<string, LevelFigures> = {};
try {
  const account = await adminCall(url, adminToken, "accounts", { plan: "unlimited", credits: FUNDING_CREDITS });
  const apiKey = String(account.apiKey);
  const photo = await samplePhoto();
  console.log(`node at ${url}; account ${String(account.accountId)} on plan unlimited with ${String(account.availableCredits)} credits; photo ${photo.label} (${photo.bytes.byteLength} bytes)`);
  const target = new URL("/v1/matting", url);
  const agent = new Agent({ keepAlive: true, maxSockets: Math.max(...levels) });
  const send = () => matting(target, agent, apiKey, photo.bytes);

  if (warmupRequests > 0) {
    const warm = await runLevel(send, Math.min(4, warmupRequests), warmupRequests, "warm-up");
    if (warm.errors.length > 0) throw new Error(`warm-up calls failed: ${warm.errors.slice(0, 3).join(" | ")}`);
    console.log(`warm-up: ${warmupRequests} calls, inference p50 ${percentile(warm.calls.map((call) => call.inferenceMs), 50)} ms`);
  }
  const highest = Math.max(...levels);
  for (const concurrency of levels) {
    const requests = Math.max(requestsMin, rounds * concurrency);
    const profilePath = profileDir && concurrency === highest ? join(profileDir, `bench-gateway-c${concurrency}.cpuprofile`) : undefined;
    console.log(`concurrency ${concurrency}: ${requests} calls …`);
    await node.ask({ type: "window-start", profilePath });
    const level = await runLevel(send, concurrency, requests, `c=${concurrency}`);
    const loop = (await node.ask({ type: "window-end" })) as EventLoopWindow;
    for (const error of level.errors.slice(0, 5)) console.log(`  error: ${error}`);
    const figures = figuresOf(concurrency, level.calls, level.errors.length, level.wallMs, loop);
    byConcurrency[String(concurrency)] = figures;
    console.log(
      [
        `c=${concurrency}: ${figures.requests} ok, ${figures.errors} errors, ${figures.rps} req/s`,
        `  end-to-end p50/p95/p99 ${figures.latencyP50Ms}/${figures.latencyP95Ms}/${figures.latencyP99Ms} ms (queue p50 ${figures.queueP50Ms} ms, inference p50 ${figures.inferenceP50Ms} ms)`,
        `  overhead   p50/p95/p99 ${figures.overheadP50Ms}/${figures.overheadP95Ms}/${figures.overheadP99Ms} ms (max ${figures.overheadMaxMs})`,
        `  node event loop: delay p50/p99/max ${figures.eventLoopDelayP50Ms}/${figures.eventLoopDelayP99Ms}/${figures.eventLoopDelayMaxMs} ms, utilisation ${figures.eventLoopUtilisation}`,
      ].join("\n"),
    );
    if (loop.profilePath) {
      const summary = summariseProfile(JSON.parse(readFileSync(loop.profilePath, "utf8")) as CpuProfile);
      console.log(`  CPU profile of the node's main thread at c=${concurrency}: ${loop.profilePath}`);
      for (const line of summary) console.log(`    ${line}`);
    }
  }
  agent.destroy();
} finally {
  await node.stop();
  rmSync(dataDir, { recursive: true, force: true });
}

const top = byConcurrency[String(Math.max(...levels))]!;
console.log(
  JSON.stringify({
    concurrency: top.concurrency,
    overheadP50Ms: top.overheadP50Ms,
    overheadP95Ms: top.overheadP95Ms,
    overheadP99Ms: top.overheadP99Ms,
    rps: top.rps,
    latencyP50Ms: top.latencyP50Ms,
    latencyP99Ms: top.latencyP99Ms,
    eventLoopDelayP99Ms: top.eventLoopDelayP99Ms,
    targetOverheadP99Ms: OVERHEAD_P99_MS_TARGET,
    targetMet: top.overheadP99Ms <= OVERHEAD_P99_MS_TARGET,
    errors: Object.values(byConcurrency).reduce((sum, level) => sum + level.errors, 0),
    cpus: availableParallelism(),
    uvThreadpoolSize: Number(process.env.UV_THREADPOOL_SIZE ?? 4),
    byConcurrency,
  }),
);
