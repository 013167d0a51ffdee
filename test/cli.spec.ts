// The customer's CLI (`cutline`, bin/cutline.mjs) against a real single node (embedded PGlite,
// the real model, port 0), each command its own process as a user runs it. The API key is the one
// the node wrote to its data directory (no CUTLINE_API_KEY). A folder of three synthetic images is
// cut out with alpha; a rerun skips them all and charges nothing; a run killed after its first file
// resumes, and the account is charged once per file in all; Ctrl-C stops cleanly; usage errors
// exit 2, a missing file 1. Also balance (Connect and gRPC), usage, keys, and a real video job
// (ffmpeg clip → WebM with an alpha plane), and a server without VideoService.
import assert from "node:assert/strict";
import { execFile, execFileSync, spawn } from "node:child_process";
import { existsSync, mkdirSync, mkdtempSync, readdirSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { createServer } from "node:http";
import type { AddressInfo } from "node:net";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { setTimeout as sleep } from "node:timers/promises";
import { after, before, describe, it } from "node:test";
import sharp from "sharp";
import { parseCredits } from "../services/common/credits.ts";
import { Pool } from "../services/common/gen/cutline/billing/v1/billing_service_pb.ts";
import { mediaBinaries } from "../services/common/video/ffmpeg-binaries.ts";
import { makeClip } from "../services/common/video/video-clips.testing.ts";
import { startSingleNode, type SingleNode } from "../services/single-node.ts";

const root = join(import.meta.dirname, "..");
const bin = join(root, "bin", "cutline.mjs");
/** How long one CLI run may take, in milliseconds (tsx compiles it on start; three cut-outs on a shared CPU). */
const CLI_TIMEOUT_MS = 180_000;
/** How long the killed run is given to write its first file, in milliseconds. */
const FIRST_FILE_TIMEOUT_MS = 120_000;

const work = mkdtempSync(join(tmpdir(), "cutline-cli-"));
const dataDir = join(work, "data");
const images = join(work, "images");
let node: SingleNode;

interface Run {
  code: number;
  stdout: string;
  stderr: string;
}

function environment(): NodeJS.ProcessEnv {
  const { CUTLINE_API_KEY: _key, CUTLINE_URL: _url, ...inherited } = process.env;
  return { ...inherited, CUTLINE_URL: node.url, CUTLINE_DATA_DIR: dataDir };
}

/** The CLI as its own process (never spawnSync: the node answering it runs in this one). */
function cutline(args: string[]): Promise<Run> {
  return new Promise((resolve) => {
    execFile(process.execPath, [bin, ...args], { cwd: work, env: environment(), timeout: CLI_TIMEOUT_MS }, (error, stdout, stderr) => {
      resolve({ code: error ? (typeof error.code === "number" ? error.code : 1) : 0, stdout, stderr });
    });
  });
}

/** The last stdout line of a --json run, parsed. */
function lastJson(run: Run): Record<string, any> {
  const lines = run.stdout.trim().split("\n");
  return JSON.parse(lines[lines.length - 1]!);
}

async function availableMillicredits(): Promise<bigint> {
  const run = await cutline(["balance", "--json"]);
  assert.equal(run.code, 0, run.stderr);
  const parsed = parseCredits(String(lastJson(run).availableCredits));
  assert.ok(parsed.ok);
  return parsed.millicredits;
}

/** A photo-like picture: a shaded ball on a gradient wall, which the model separates. */
function picture(ball: string, width = 320, height = 240): ReturnType<typeof sharp> {
  const svg = `<svg xmlns="http://www.w3.org/2000/svg" width="${width}" height="${height}">
    <defs><linearGradient id="wall" x1="0" y1="0" x2="1" y2="1"><stop offset="0" stop-color="#9bb7d4"/><stop offset="1" stop-color="#e8eef5"/></linearGradient>
    <radialGradient id="ball" cx="0.35" cy="0.35" r="0.7"><stop offset="0" stop-color="${ball}"/><stop offset="1" stop-color="#402000"/></radialGradient></defs>
    <rect width="${width}" height="${height}" fill="url(#wall)"/><circle cx="${width / 2}" cy="${height / 2 + 10}" r="${height / 3.4}" fill="url(#ball)"/></svg>`;
  return sharp(Buffer.from(svg));
}

/** The output is a PNG with an alpha channel that is transparent somewhere and opaque somewhere. */
async function assertCutOut(path: string): Promise<void> {
  const metadata = await sharp(path).metadata();
  assert.deepEqual([metadata.format, metadata.hasAlpha, metadata.width, metadata.height], ["png", true, 320, 240], path);
  const alpha = (await sharp(path).stats()).channels[3]!;
  assert.ok(alpha.min < 16 && alpha.max > 240, `${path}: alpha from ${alpha.min} to ${alpha.max}, expected a cut-out`);
}

before(async () => {
  mkdirSync(images);
  await picture("#ffb347").png().toFile(join(images, "ball.png"));
  await picture("#47a3ff").jpeg({ quality: 90 }).toFile(join(images, "blue.jpg"));
  // No extension: sniffed as an image all the same.
  writeFileSync(join(images, "green"), await picture("#5cd65c").webp().toBuffer());
  writeFileSync(join(images, "notes.txt"), "not an image: left alone\n");
  node = await startSingleNode({ CUTLINE_DATA_DIR: dataDir, PORT: "0", METRICS_PORT: "0", LOG_LEVEL: "warn", INFERENCE_WARMUP_RUNS: "1" });
  await node.ready;
});

after(async () => {
  await node?.stop();
  rmSync(work, { recursive: true, force: true });
});

describe("cutline remove against a single node", () => {
  let chargedPerFile = 0n;

  it("cuts out a folder: three files with alpha, the JSON summary last, the balance lower by what it says", async () => {
    const before = await availableMillicredits();
    const run = await cutline(["remove", images, "--out", "out", "--concurrency", "2", "--json"]);
    assert.equal(run.code, 0, run.stderr);
    const summary = lastJson(run);
    assert.deepEqual(Object.keys(summary), ["processed", "skipped", "failed", "creditsCharged"]);
    assert.deepEqual([summary.processed, summary.skipped, summary.failed], [3, 0, 0]);
    assert.match(run.stderr, /left alone 1 file/);
    // The free plan runs one request at a time: the second file sent at once was refused and waited.
    assert.match(run.stderr, /waited \d+ time\(s\) for the plan's limits/);
    assert.deepEqual(readdirSync(join(work, "out")).sort(), ["ball.png", "blue.png", "green.png"]);
    for (const name of ["ball.png", "blue.png", "green.png"]) await assertCutOut(join(work, "out", name));
    const charged = parseCredits(String(summary.creditsCharged));
    assert.ok(charged.ok && charged.millicredits > 0n);
    assert.equal(before - (await availableMillicredits()), charged.millicredits, "the balance fell by the credits the summary names");
    chargedPerFile = charged.millicredits / 3n;
    assert.equal(chargedPerFile * 3n, charged.millicredits, "three images of one size cost the same");
  });

  it("a rerun skips every file and charges nothing", async () => {
    const before = await availableMillicredits();
    const run = await cutline(["remove", images, "--out", "out", "--json"]);
    assert.equal(run.code, 0, run.stderr);
    assert.deepEqual(lastJson(run), { processed: 0, skipped: 3, failed: 0, creditsCharged: 0 });
    assert.equal(await availableMillicredits(), before);
  });

  it("a run killed after its first file resumes, and the account pays once per file in all", async () => {
    const before = await availableMillicredits();
    const out = join(work, "interrupted");
    const child = spawn(process.execPath, [bin, "remove", images, "--out", out, "--concurrency", "1", "--format", "webp"], { cwd: work, env: environment(), stdio: "ignore" });
    const exited = new Promise<number | null>((resolve) => child.once("exit", resolve));
    const deadline = Date.now() + FIRST_FILE_TIMEOUT_MS;
    const written = () => (existsSync(out) ? readdirSync(out).filter((name) => name.endsWith(".webp")) : []);
    // Killed once its first file is written and the next one is on the server (its hold open, not
    // yet captured), so the rerun must meet that file's first job through its idempotency key.
    let heldAtKill = 0n;
    for (;;) {
      assert.ok(Date.now() < deadline, "the first file was never written");
      const held = (await node.billing.getBalance({ accountId: "default", pool: Pool.API })).heldMillicredits;
      if (written().length >= 2 || (written().length === 1 && held > 0n)) {
        heldAtKill = held;
        break;
      }
      await sleep(10);
    }
    child.kill("SIGKILL");
    await exited;
    const done = written().length;
    assert.ok(done >= 1 && done < 3, `killed after ${done} file(s)`);
    assert.equal(heldAtKill, chargedPerFile, "killed with one file held on the server");

    const run = await cutline(["remove", images, "--out", out, "--concurrency", "1", "--format", "webp", "--json"]);
    assert.equal(run.code, 0, run.stderr);
    const summary = lastJson(run);
    assert.deepEqual([summary.processed + summary.skipped, summary.skipped, summary.failed], [3, done, 0]);
    assert.deepEqual(readdirSync(out).sort(), ["ball.webp", "blue.webp", "green.webp"], "every output, and no temporary file left");
    for (const name of readdirSync(out)) assert.equal((await sharp(join(out, name)).metadata()).hasAlpha, true, name);
    // The file in flight when the run was killed was charged then; the rerun's call with the same
    // idempotency key replayed that job instead of charging again.
    assert.equal(before - (await availableMillicredits()), 3n * chargedPerFile, "one charge per file over both runs");
  });

  it("Ctrl-C stops after the file in flight, prints the summary and exits 130; the rest is left for a rerun", async () => {
    const out = join(work, "stopped");
    const child = spawn(process.execPath, [bin, "remove", images, "--out", out, "--concurrency", "1", "--format", "jpg", "--json"], { cwd: work, env: environment(), stdio: ["ignore", "pipe", "pipe"] });
    let stdout = "";
    child.stdout!.on("data", (chunk: Buffer) => (stdout += chunk.toString()));
    const exited = new Promise<number | null>((resolve) => child.once("exit", resolve));
    const deadline = Date.now() + FIRST_FILE_TIMEOUT_MS;
    while (!existsSync(out) || readdirSync(out).every((name) => !name.endsWith(".jpg"))) {
      assert.ok(Date.now() < deadline, "the first file was never written");
      await sleep(20);
    }
    child.kill("SIGINT");
    assert.equal(await exited, 130);
    const summary = JSON.parse(stdout.trim().split("\n").at(-1)!);
    const written = readdirSync(out);
    assert.ok(summary.processed >= 1 && summary.processed < 3, `${summary.processed} processed before stopping`);
    assert.equal(written.length, summary.processed, "each file in flight was finished and written, none started after");
    assert.equal(summary.failed, 0);
  });

  it("a usage error exits 2 and sends nothing", async () => {
    const missingOut = await cutline(["remove", images]);
    assert.equal(missingOut.code, 2);
    assert.match(missingOut.stderr, /--out is required/);
    const unknownFlag = await cutline(["remove", images, "--out", "x", "--colour", "red"]);
    assert.equal(unknownFlag.code, 2);
    assert.match(unknownFlag.stderr, /Unknown option '--colour'/);
    const badFormat = await cutline(["remove", images, "--out", "x", "--format", "gif"]);
    assert.equal(badFormat.code, 2);
    assert.match(badFormat.stderr, /--format must be one of png, webp, jpg, mask/);
    assert.equal(existsSync(join(work, "x")), false, "nothing written");
    assert.equal((await cutline(["frobnicate"])).code, 2);
  });

  it("a missing file is listed at the end and exits 1; the others are done", async () => {
    const fresh = join(work, "fresh.png");
    await picture("#d65cd6").png().toFile(fresh);
    const run = await cutline(["remove", fresh, join(work, "missing.png"), "--out", "partial", "--json"]);
    assert.equal(run.code, 1);
    assert.deepEqual(lastJson(run), { processed: 1, skipped: 0, failed: 1, creditsCharged: Number(chargedPerFile) / 1000 });
    assert.match(run.stderr, /failed: missing\.png: no such file or folder \(not_found\)/);
    await assertCutOut(join(work, "partial", "fresh.png"));
  });
});

describe("cutline balance, usage, keys and video against a single node", () => {
  it("balance over gRPC matches balance over Connect", async () => {
    const connect = await cutline(["balance", "--json"]);
    const grpc = await cutline(["balance", "--json", "--grpc"]);
    assert.equal(grpc.code, 0, grpc.stderr);
    assert.deepEqual(lastJson(grpc), lastJson(connect));
    assert.ok(lastJson(connect).buckets.some((bucket: { kind: string }) => bucket.kind === "trial"));
  });

  it("usage lists today's calls", async () => {
    const run = await cutline(["usage", "--json"]);
    assert.equal(run.code, 0, run.stderr);
    const calls = lastJson(run).rows.reduce((sum: number, row: { calls: number }) => sum + row.calls, 0);
    assert.ok(calls >= 7, `${calls} calls recorded`);
  });

  it("keys: create (shown once), list, revoke; the revoked key no longer works", async () => {
    const created = await cutline(["keys", "create", "--name", "ci", "--json"]);
    assert.equal(created.code, 0, created.stderr);
    const key = lastJson(created);
    assert.match(key.apiKey, /^cl_/);
    const listed = lastJson(await cutline(["keys", "--json"]));
    assert.ok(listed.keys.some((listedKey: { keyId: string }) => listedKey.keyId === key.keyId));
    const revoked = await cutline(["keys", "revoke", key.keyId, "--json"]);
    assert.equal(revoked.code, 0, revoked.stderr);
    assert.ok(lastJson(revoked).revokedAt);
    const refused = await new Promise<Run>((resolve) => {
      execFile(process.execPath, [bin, "balance"], { cwd: work, env: { ...environment(), CUTLINE_API_KEY: key.apiKey } }, (error, stdout, stderr) =>
        resolve({ code: error ? Number(error.code) : 0, stdout, stderr }),
      );
    });
    assert.equal(refused.code, 1);
    assert.match(refused.stderr, /^cutline balance: .+\(\w+\)\n$/);
  });

  it("video: submitted, watched to its end, the WebM with alpha written and paid as charged; a rerun sends nothing", async () => {
    makeClip(work, "clip", { width: 96, height: 72, seconds: 1, rate: 5 });
    const before = await availableMillicredits();
    const run = await cutline(["video", "clip.mp4", "--out", "clip.webm", "--json"]);
    const answer = lastJson(run);
    assert.equal(run.code, 0, run.stderr);
    assert.equal(answer.status, "succeeded");
    assert.equal(answer.frames, 5, "the watch saw the worker's frame count");
    const charged = parseCredits(String(answer.creditsCharged));
    assert.ok(charged.ok && charged.millicredits > 0n);
    assert.equal(before - (await availableMillicredits()), charged.millicredits, "the balance fell by what the CLI said");
    // The VP9 alpha plane decodes (ffmpeg fails outright when the stream has none), one per frame.
    const frames = join(work, "clip-alpha.md5");
    execFileSync(mediaBinaries().ffmpeg.path, ["-hide_banner", "-loglevel", "error", "-c:v", "libvpx-vp9", "-i", join(work, "clip.webm"), "-vf", "alphaextract", "-f", "framemd5", "-y", frames]);
    assert.equal(readFileSync(frames, "utf8").split("\n").filter((line) => /^\s*0,/.test(line)).length, 5);
    const again = await cutline(["video", "clip.mp4", "--out", "clip.webm", "--json"]);
    assert.equal(again.code, 0, again.stderr);
    assert.deepEqual(lastJson(again), { jobId: null, status: "skipped", creditsCharged: 0, out: "clip.webm" });
    assert.equal(await availableMillicredits(), before - charged.millicredits);
  });

  it("video against a server without VideoService says it has no video support and exits 1", async () => {
    // A server that serves no RPC at all answers every one 404, which Connect reads as UNIMPLEMENTED.
    const bare = createServer((_request, response) => response.writeHead(404).end());
    await new Promise<void>((resolve) => bare.listen(0, "127.0.0.1", resolve));
    try {
      const { port } = bare.address() as AddressInfo;
      const run = await new Promise<Run>((resolve) => {
        execFile(process.execPath, [bin, "video", "clip.mp4", "--out", "bare.webm"], { cwd: work, env: { ...environment(), CUTLINE_URL: `http://127.0.0.1:${port}` } }, (error, stdout, stderr) =>
          resolve({ code: error ? Number(error.code) : 0, stdout, stderr }),
        );
      });
      assert.equal(run.code, 1);
      assert.match(run.stderr, /this server has no video support/);
      assert.equal(existsSync(join(work, "bare.webm")), false);
    } finally {
      bare.close();
    }
  });
});
