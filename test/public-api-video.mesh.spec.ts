// A video job in mesh mode: the four services as separate processes on real Postgres and NATS
// JetStream (the task through the JetStream work queue, the input and result through the object
// store, progress through the event stream), driven through the gateway's public port. One clip
// (160×120, 2 s, with audio): 202, the signed webhook with a result URL that serves a WebM with
// alpha and the input's frame count, charged exactly billing's quote.
import assert from "node:assert/strict";
import { execFileSync } from "node:child_process";
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { after, describe, it } from "node:test";
import { createClient } from "@connectrpc/connect";
import { BillingService, Operation } from "../services/common/gen/cutline/billing/v1/billing_service_pb.ts";
import { serviceTransport } from "../services/common/runtime.ts";
import { mediaBinaries } from "../services/common/video/ffmpeg-binaries.ts";
import { makeClip } from "../services/common/video/video-clips.testing.ts";
import { probeVideo } from "../services/common/video/video-probe.ts";
import { adminCli } from "./admin-cli.testing.ts";
import { startWebhookReceiver } from "./loopback.testing.ts";
import { meshBackends, meshFixture } from "./mesh.testing.ts";
import { publicApiClient, type JobJson } from "./public-api.testing.ts";

const ADMIN_TOKEN = "video-mesh-admin-token-0123456789abcdef0123456789";
/** The model on every frame of the clip in one CPU inference process, and the webhook after it. */
const VIDEO_TIMEOUT_MS = 240_000;

/** Frames of the first video stream, decoded; with `alpha`, VP9's alpha plane decoded and extracted (ffmpeg fails without one). */
function decodedFrames(path: string, directory: string, options: { alpha?: boolean } = {}): number {
  const out = join(directory, `frames-${process.hrtime.bigint()}.md5`);
  const decoder = options.alpha ? ["-c:v", "libvpx-vp9"] : [];
  execFileSync(mediaBinaries().ffmpeg.path, ["-hide_banner", "-loglevel", "error", ...decoder, "-i", path, "-map", "0:v:0", ...(options.alpha ? ["-vf", "alphaextract"] : []), "-f", "framemd5", "-y", out], {
    stdio: ["ignore", "ignore", "pipe"],
  });
  return readFileSync(out, "utf8").split("\n").filter((line) => /^\s*0,/.test(line)).length;
}

const backends = await meshBackends();

describe("video jobs in mesh mode: JetStream work queue and object store, four processes", { skip: backends.skip }, () => {
  const fixture = meshFixture(backends, {
    prefix: "video_mesh",
    env: { CUTLINE_ADMIN_TOKEN: ADMIN_TOKEN, CUTLINE_OUTBOUND_ALLOW_LOOPBACK: "true", WEBHOOK_SEND_INTERVAL_MS: "100" },
  });
  const gatewayUrl = () => fixture.mesh.urls.gateway;
  const { getJob } = publicApiClient(gatewayUrl);
  const { cliJson } = adminCli(() => ({ CUTLINE_URL: gatewayUrl(), CUTLINE_ADMIN_TOKEN: ADMIN_TOKEN }));
  const directory = mkdtempSync(join(tmpdir(), "cutline-video-mesh-clips-"));
  after(() => rmSync(directory, { recursive: true, force: true }));

  it("202; the signed webhook's result URL serves a WebM with alpha and the input's frame count; charged the quote, nothing held after", async () => {
    const receiver = await startWebhookReceiver();
    try {
      const clip = makeClip(directory, "clip", { width: 160, height: 120, seconds: 2, rate: 10, audio: true });
      const created = await cliJson(["create-account", "--plan", "unlimited", "--account", "video-mesh-1", "--credits", "50"]);
      const key = created.apiKey as string;
      const billing = createClient(BillingService, serviceTransport(fixture.mesh.urls.billing, { token: fixture.mesh.serviceToken }));
      const probe = await probeVideo(clip);
      const quote = await billing.quote({ accountId: "video-mesh-1", operation: Operation.VIDEO_REMOVE_BACKGROUND, pixels: BigInt(probe.width * probe.height), videoMilliseconds: probe.durationMs, quality: "balanced" });

      const form = new FormData();
      form.append("webhook_url", receiver.url);
      form.append("video_file", new Blob([readFileSync(clip)], { type: "video/mp4" }), "clip.mp4");
      const submitted = await fetch(`${gatewayUrl()}/v1/video/matting`, { method: "POST", headers: { "x-api-key": key, "idempotency-key": "mesh-video" }, body: form });
      assert.equal(submitted.status, 202, await submitted.clone().text());
      const queued = (await submitted.json()) as JobJson;

      const deadline = Date.now() + VIDEO_TIMEOUT_MS;
      while (!receiver.deliveries.some((delivery) => delivery.status === 200)) {
        assert.ok(Date.now() < deadline, `no webhook within ${VIDEO_TIMEOUT_MS} ms; the job: ${JSON.stringify(await getJob(key, queued.id))}`);
        await new Promise((resolve) => setTimeout(resolve, 250));
      }
      const event = JSON.parse(receiver.deliveries.find((delivery) => delivery.status === 200)!.body) as Record<string, unknown>;
      assert.deepEqual([event.type, event.job_id], ["job.succeeded", queued.id]);
      assert.equal(event.credits_used, Number(quote.costMillicredits) / 1000, "charged exactly the quote");

      const result = await fetch(String(event.result_url));
      assert.equal(result.status, 200);
      assert.equal(result.headers.get("content-type"), "video/webm");
      assert.match(result.headers.get("content-disposition") ?? "", /\.webm"$/);
      const resultPath = join(directory, "result.webm");
      writeFileSync(resultPath, Buffer.from(await result.arrayBuffer()));
      assert.equal(decodedFrames(resultPath, directory, { alpha: true }), decodedFrames(clip, directory));

      const balance = (await (await fetch(`${gatewayUrl()}/v1/credit/balance`, { headers: { "x-api-key": key } })).json()) as { available_credits: number; held_credits: number };
      assert.deepEqual(balance, { ...balance, available_credits: 50 - Number(quote.costMillicredits) / 1000, held_credits: 0 });
      const job = (await getJob(key, queued.id)) as JobJson & { frames_done: number; frames_total: number };
      assert.ok(job.frames_total > 0 && job.frames_done === job.frames_total, JSON.stringify(job));
    } finally {
      await receiver.close();
    }
  });
});
