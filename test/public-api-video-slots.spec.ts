// Videos beside images on a real single node (the real model and ffmpeg): video tasks come from
// their own queue under VIDEO_CONCURRENCY, so a running video holds no image slot, a second video
// waits its turn, and an image sent meanwhile is answered before either video ends. Its own file
// (and node): the suite runner gives each file five minutes, and the CPU model takes seconds a
// frame on a shared machine.
import assert from "node:assert/strict";
import { mkdtempSync, readFileSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { after, describe, it } from "node:test";
import { Pool } from "../services/common/gen/cutline/billing/v1/billing_service_pb.ts";
import { makeClip } from "../services/common/video/video-clips.testing.ts";
import { publicApiNode, type JobJson } from "./public-api.testing.ts";

interface VideoJobJson extends JobJson {
  frames_done: number;
  frames_total: number;
}

describe("videos beside images on a single node", () => {
  const api = publicApiNode("vslots", { VIDEO_CONCURRENCY: "1", LOG_LEVEL: "warn" });
  const { balance } = api;
  const clips = mkdtempSync(join(tmpdir(), "cutline-video-slots-clips-"));
  after(() => rmSync(clips, { recursive: true, force: true }));
  const account = async () => {
    const made = await api.account();
    await api.node.billing.grant({ accountId: made.accountId, pool: Pool.API, kind: "top_up", amountMillicredits: 100_000n, idempotencyKey: `fund-${made.accountId}` });
    return made;
  };
  const videoForm = (path: string) => {
    const form = new FormData();
    form.append("video_file", new Blob([readFileSync(path)], { type: "video/mp4" }), "clip.mp4");
    return form;
  };
  const submit = (key: string, body: FormData, headers: Record<string, string> = {}) =>
    fetch(`${api.node.url}/v1/video/matting`, { method: "POST", headers: { "x-api-key": key, ...headers }, body });
  const jobOf = async (key: string, id: string): Promise<VideoJobJson> => (await api.getJob(key, id)) as VideoJobJson;

  it("videos have their own slots (VIDEO_CONCURRENCY, 1 here): with a video running and a second one waiting, an image submitted after both finishes before either", async () => {
    const { accountId, key } = await account();
    const before = await balance(accountId);
    // 8 s at 5 fps: forty frames, minutes of CPU model, so neither video can end before the image.
    const cancelClip = makeClip(clips, "long-enough", { width: 160, height: 120, seconds: 8, rate: 5, audio: true });
    const ids: string[] = [];
    for (const name of ["first", "second"]) {
      const submitted = await submit(key, videoForm(cancelClip), { "idempotency-key": `own-slots-${name}` });
      assert.equal(submitted.status, 202, await submitted.clone().text());
      ids.push(((await submitted.json()) as VideoJobJson).id);
    }
    const deadline = Date.now() + 120_000;
    for (;;) {
      const first = await jobOf(key, ids[0]!);
      assert.equal(first.status === "succeeded" || first.status === "failed", false, `the first video ended before the image was sent: ${JSON.stringify(first)}`);
      // Running: its worker took it and its ffmpeg is at work (frames would cost a CPU model run each to wait for).
      if (first.status === "running") break;
      assert.ok(Date.now() < deadline, "the first video never started");
      await new Promise((resolve) => setTimeout(resolve, 100));
    }
    // Before the image: the second video waits in its queue, not in an image's slot.
    assert.equal((await jobOf(key, ids[1]!)).status, "queued", "one video at a time on this worker");
    const image = await fetch(`${api.node.url}/v1/matting`, { method: "POST", headers: { "x-api-key": key }, body: api.imageForm(api.photo) });
    assert.equal(image.status, 200, await image.clone().text());
    assert.equal(image.headers.get("content-type"), "image/png");
    const [first, second] = await Promise.all(ids.map((id) => jobOf(key, id)));
    assert.deepEqual([first!.status, second!.status], ["running", "queued"], "the image finished while the first video ran and the second waited");
    // frames_total is 0 until the worker's first report: on a fast CPU the image can be done before it.
    assert.ok(first!.frames_total === 0 || first!.frames_done < first!.frames_total, JSON.stringify(first));
    // Both cancelled to spare the CPU: the image alone is charged.
    for (const id of ids) assert.equal((await fetch(`${api.node.url}/v1/jobs/${id}`, { method: "DELETE", headers: { "x-api-key": key } })).status, 200);
    const charged = BigInt(Math.round(Number(image.headers.get("x-credits-charged")) * 1000));
    assert.deepEqual(await balance(accountId), { available: before.available - charged, held: 0n });
  });

});
