// The inference process as a pod runs it (services/inference/main.ts): a provider list without cpu
// fails the start when CUDA does not load (this machine has no GPU), and gRPC health follows the
// NATS connection through a real NATS restart.
import assert from "node:assert/strict";
import { spawn, type ChildProcess } from "node:child_process";
import { join } from "node:path";
import { describe, test } from "node:test";
import { createClient } from "@connectrpc/connect";
import { createGrpcTransport } from "@connectrpc/connect-node";
import { privateNats, sleep } from "../scripts/chaos-faults.ts";
import { freePort } from "../scripts/mesh-processes.ts";
import { Health, ServingStatus } from "../services/common/health.ts";

const MAIN = join(import.meta.dirname, "..", "services", "inference", "main.ts");
const TOKEN = "inference-main-spec-token-0123456789abcdef";

function startInference(env: Record<string, string>): { child: ChildProcess; output: () => string; exited: Promise<number | null> } {
  let output = "";
  const child = spawn(process.execPath, ["--import", "tsx", MAIN], {
    env: { ...process.env, LOG_LEVEL: "info", METRICS_PORT: "off", CUTLINE_SERVICE_TOKEN: TOKEN, INFERENCE_WARMUP_RUNS: "0", ...env },
    stdio: ["ignore", "pipe", "pipe"],
  });
  child.stdout!.on("data", (chunk: Buffer) => (output += chunk.toString()));
  child.stderr!.on("data", (chunk: Buffer) => (output += chunk.toString()));
  const exited = new Promise<number | null>((resolve) => child.once("exit", (code) => resolve(code)));
  return { child, output: () => output, exited };
}

async function statusUntil(check: () => Promise<ServingStatus>, wanted: ServingStatus, timeoutMs: number): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  let last: unknown;
  while (Date.now() < deadline) {
    try {
      last = await check();
      if (last === wanted) return;
    } catch (error) {
      last = error;
    }
    await sleep(200);
  }
  throw new Error(`health did not become ${ServingStatus[wanted]} within ${timeoutMs} ms; last: ${String(last)}`);
}

describe("inference process", () => {
  test("INFERENCE_EXECUTION_PROVIDERS=cuda without CUDA: the start fails, naming the provider and why", async () => {
    const nats = await privateNats();
    try {
      const port = await freePort();
      const run = startInference({ NATS_URL: nats.url, NATS_NAME_PREFIX: "cudaonly", PORT: String(port), INFERENCE_EXECUTION_PROVIDERS: "cuda" });
      const timer = setTimeout(() => run.child.kill("SIGKILL"), 120_000);
      const code = await run.exited;
      clearTimeout(timer);
      assert.equal(code, 1, run.output());
      assert.match(run.output(), /no execution provider of INFERENCE_EXECUTION_PROVIDERS=cuda could load: cuda: /);
      assert.match(run.output(), /cpu is not in the list, so there is no fallback/);
    } finally {
      await nats.dispose();
    }
  });

  test("the server answers while the model loads: health NOT_SERVING before the model is ready, and a SIGTERM then drains and exits 0", async () => {
    const nats = await privateNats();
    const port = await freePort();
    // Reading, hashing and editing the model and creating its session take seconds after the server listens.
    const run = startInference({ NATS_URL: nats.url, NATS_NAME_PREFIX: "loadingspec", PORT: String(port), INFERENCE_EXECUTION_PROVIDERS: "cpu", INFERENCE_WARMUP_RUNS: "1", SHUTDOWN_TIMEOUT_MS: "60000" });
    try {
      const health = createClient(Health, createGrpcTransport({ baseUrl: `http://127.0.0.1:${port}` }));
      let first: ServingStatus | undefined;
      const deadline = Date.now() + 120_000;
      while (first === undefined && Date.now() < deadline) {
        first = await health.check({ service: "" }, { timeoutMs: 2000 }).then((response) => response.status, () => undefined);
        if (first === undefined) await sleep(50);
      }
      const loadedWhenAnswered = run.output().includes("inference model loaded");
      assert.equal(first, ServingStatus.NOT_SERVING, run.output());
      assert.equal(loadedWhenAnswered, false, "health answered before the model was ready");
      run.child.kill("SIGTERM");
      assert.equal(await run.exited, 0, run.output());
      assert.match(run.output(), /SIGTERM received, draining/);
    } finally {
      run.child.kill("SIGKILL");
      await nats.dispose();
    }
  });

  test("health is SERVING with the model and NATS, NOT_SERVING while NATS is down, SERVING again when it is back", async () => {
    const nats = await privateNats();
    const port = await freePort();
    const run = startInference({ NATS_URL: nats.url, NATS_NAME_PREFIX: "healthspec", PORT: String(port), INFERENCE_EXECUTION_PROVIDERS: "cpu" });
    try {
      const health = createClient(Health, createGrpcTransport({ baseUrl: `http://127.0.0.1:${port}` }));
      const check = async () => (await health.check({ service: "" }, { timeoutMs: 2000 })).status;
      await statusUntil(check, ServingStatus.SERVING, 120_000);
      // A real fault: the NATS server stops; the process stays up and reports NOT_SERVING until it reconnects.
      const restarted = nats.restart(4000);
      await statusUntil(check, ServingStatus.NOT_SERVING, 4000);
      await restarted;
      await statusUntil(check, ServingStatus.SERVING, 30_000);
      assert.match(run.output(), /NATS connection lost/);
      assert.match(run.output(), /NATS connection restored/);
    } finally {
      run.child.kill("SIGTERM");
      await run.exited;
      await nats.dispose();
    }
  });
});
