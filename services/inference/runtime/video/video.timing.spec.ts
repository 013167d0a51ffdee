// Frame timing and orientation through the video engine: a variable-rate clip, a rotated phone
// clip, and a real clip with ground truth (../shared/eval/video, skipped when absent).
import assert from "node:assert/strict";
import { execFileSync } from "node:child_process";
import { existsSync } from "node:fs";
import { join } from "node:path";
import { after, before, describe, test } from "node:test";
import sharp from "sharp";
import { SHARED_DIRECTORY } from "../../../../test/harness.ts";
import { VideoFormat } from "../../../common/gen/cutline/inference/v1/video_options_pb.ts";
import { probeVideo } from "../../../common/video/video-probe.ts";
import { binaries, VideoBench, videoOptions } from "./video.testing.ts";

const bench = new VideoBench();
before(() => bench.open());
after(() => bench.close());

describe("runVideoMatting: timing and orientation", () => {
  test("a variable-rate clip is decoded at its average rate: duration and frame count kept", async () => {
    // 2 frames in the first second, then 2 more three times as far apart.
    const input = bench.clip("variable", { variableRate: true, seconds: 2, rate: 2 });
    const probe = await probeVideo(input);
    assert.equal(probe.variableFrameRate, true);
    const { result } = await bench.matte(input, videoOptions(VideoFormat.MASK));
    assert.ok(Math.abs(result.durationMs - probe.durationMs) <= 1000 / (probe.frameRate.numerator / probe.frameRate.denominator) + 10, `${result.durationMs} against ${probe.durationMs} ms`);
    assert.ok(Math.abs(result.frameCount - 4) <= 1, `${result.frameCount} frames`);
  });

  test("a rotated phone clip comes out upright, at its displayed size", async () => {
    const input = bench.clip("phone", { rotateDegrees: 90, seconds: 0.3 });
    const { result, outputPath } = await bench.matte(input, videoOptions(VideoFormat.MASK));
    assert.deepEqual([result.width, result.height], [120, 160]);
    const probe = await probeVideo(outputPath);
    assert.deepEqual([probe.width, probe.height, probe.rotationDegrees], [120, 160, 0]);
  });

  const blackswan = join(SHARED_DIRECTORY, "eval", "video", "blackswan.mp4");
  test("a real clip (../shared/eval/video/blackswan.mp4, first 2 frames) against its ground truth", { skip: existsSync(blackswan) ? false : `${blackswan} is absent: the real-clip check needs ../shared/eval/video` }, async () => {
    const head = join(bench.directory, "blackswan-head.mp4");
    execFileSync(binaries.ffmpeg.path, ["-hide_banner", "-loglevel", "error", "-y", "-i", blackswan, "-frames:v", "2", "-c:v", "libx264", "-preset", "ultrafast", "-qp", "0", head]);
    const alphas: Uint8Array[] = [];
    const { result } = await bench.matte(head, videoOptions(VideoFormat.MASK), { onAlpha: (index, alpha) => (alphas[index] = alpha.slice()) });
    assert.deepEqual([result.width, result.height, result.frameCount], [854, 480, 2]);
    for (const [index, alpha] of alphas.entries()) {
      const truth = await sharp(join(SHARED_DIRECTORY, "eval", "video", "blackswan.masks", `${String(index).padStart(5, "0")}.png`)).greyscale().raw().toBuffer();
      let intersection = 0;
      let union = 0;
      for (let pixel = 0; pixel < alpha.length; pixel++) {
        const predicted = alpha[pixel]! >= 128;
        const actual = truth[pixel]! >= 128;
        if (predicted && actual) intersection++;
        if (predicted || actual) union++;
      }
      assert.ok(intersection / union > 0.8, `frame ${index}: IoU ${(intersection / union).toFixed(3)}`);
    }
  });
});
