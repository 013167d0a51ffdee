// The video engine end to end with the real model and the real ffmpeg, on tiny clips made here
// (the model costs seconds a frame on a shared CPU, so each clip has a handful of frames):
// formats, alpha, audio, progress, abort and refusals. Timing and rotation: video.timing.spec.ts.
import assert from "node:assert/strict";
import { execFileSync } from "node:child_process";
import { existsSync, readFileSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { after, before, describe, test } from "node:test";
import sharp from "sharp";
import { VideoFormat } from "../../../common/gen/cutline/inference/v1/video_options_pb.ts";
import { probeVideo } from "../../../common/video/video-probe.ts";
import { InferenceError } from "../../domain/inference.errors.ts";
import { processedVideoSize } from "../../../common/video/video-size.ts";
import { runVideoMatting } from "./video.pipeline.ts";
import { alphaRange, binaries, decodeFrames, ffmpegChildren, streamsOf, VideoBench, videoOptions } from "./video.testing.ts";

const bench = new VideoBench();
before(() => bench.open());
after(() => bench.close());

describe("runVideoMatting", () => {
  test("WebM (default): VP9 with alpha that varies, Opus audio kept, frame count and duration kept, progress to the end", async () => {
    const input = bench.clip("webm", { audio: true });
    const inputProbe = await probeVideo(input);
    const { result, outputPath, progress } = await bench.matte(input, videoOptions(VideoFormat.UNSPECIFIED));
    assert.deepEqual([result.contentType, result.width, result.height], ["video/webm", 160, 120]);
    assert.equal(result.frameCount, inputProbe.frameCountEstimate);
    assert.ok(Math.abs(result.durationMs - inputProbe.durationMs) <= 60, `${result.durationMs} ms against ${inputProbe.durationMs} ms`);
    const streams = streamsOf(outputPath);
    assert.deepEqual(streams.map((stream) => [stream.codec_type, stream.codec_name]), [["video", "vp9"], ["audio", "opus"]]);
    assert.equal(streams[0]!.tags?.alpha_mode ?? streams[0]!.tags?.ALPHA_MODE, "1", "VP9 alpha in the WebM");
    const frames = decodeFrames(outputPath, 160, 120, true);
    assert.equal(frames.length, inputProbe.frameCountEstimate);
    const { low, high } = alphaRange(frames[1]!);
    assert.ok(low < 30 && high > 225, `alpha from ${low} to ${high}: background cut out, subject kept`);
    assert.deepEqual(progress.at(-1), { framesDone: result.frameCount, framesTotal: result.frameCount, etaSeconds: 0 });
    assert.deepEqual(progress.map((step) => step.framesDone), Array.from({ length: result.frameCount }, (_, index) => index + 1));
  });

  test("MOV: ProRes 4444 with alpha, AAC audio; MP4: H.264 on the colour asked for; mask: grey, no audio", async () => {
    const input = bench.clip("formats", { audio: true, seconds: 0.3 });
    const mov = await bench.matte(input, videoOptions(VideoFormat.MOV));
    assert.equal(mov.result.contentType, "video/quicktime");
    const movStreams = streamsOf(mov.outputPath);
    assert.deepEqual(movStreams.map((stream) => stream.codec_name), ["prores", "aac"]);
    assert.match(movStreams[0]!.pix_fmt ?? "", /^yuva444p/, "ProRes 4444 with its alpha plane");
    const mp4 = await bench.matte(input, videoOptions(VideoFormat.MP4, { backgroundColor: "#00ff00" }));
    assert.deepEqual(streamsOf(mp4.outputPath).map((stream) => [stream.codec_name, stream.pix_fmt ?? ""]), [["h264", "yuv420p"], ["aac", ""]]);
    const corner = decodeFrames(mp4.outputPath, 160, 120)[0]!;
    assert.ok(corner[0]! < 40 && corner[1]! > 200 && corner[2]! < 40, `top-left pixel ${corner.subarray(0, 3).join()} is the green background`);
    const mask = await bench.matte(input, videoOptions(VideoFormat.MASK));
    assert.deepEqual(streamsOf(mask.outputPath).map((stream) => stream.codec_type), ["video"]);
    assert.equal(mask.result.frameCount, mov.result.frameCount);
  });

  test("MP4 on a background image; keep_audio=false drops the audio", async () => {
    const background = await sharp({ create: { width: 64, height: 64, channels: 3, background: "#ff0000" } }).png().toBuffer();
    const { outputPath } = await bench.matte(bench.clip("background", { audio: true, seconds: 0.3 }), videoOptions(VideoFormat.MP4, { keepAudio: false }), { backgroundImage: background });
    assert.deepEqual(streamsOf(outputPath).map((stream) => stream.codec_type), ["video"]);
    const pixel = decodeFrames(outputPath, 160, 120)[0]!;
    assert.ok(pixel[0]! > 200 && pixel[1]! < 50, `top-left pixel ${pixel.subarray(0, 3).join()} is the red image`);
    await assert.rejects(bench.matte(bench.clip("background"), videoOptions(VideoFormat.WEBM, { backgroundColor: "#fff" })), (error: unknown) => error instanceof InferenceError && error.reason === "invalid_option");
  });

  test("larger than the cap: downscaled to the longest side asked for, even sides", () => {
    assert.deepEqual(processedVideoSize({ width: 3840, height: 2160 }, 0), { width: 1920, height: 1080 });
    assert.deepEqual(processedVideoSize({ width: 1080, height: 1920 }, 1280), { width: 720, height: 1280 });
    assert.deepEqual(processedVideoSize({ width: 161, height: 121 }, 0), { width: 160, height: 120 });
  });

  test("abort: ffmpeg killed at once, no process or output file left, rejected as cancelled", async () => {
    const input = bench.clip("abort", { seconds: 4 });
    const controller = new AbortController();
    const outputPath = join(bench.directory, "aborted.webm");
    let sawProcesses = 0;
    const running = runVideoMatting(
      {
        inputPath: input,
        outputPath,
        options: videoOptions(VideoFormat.WEBM),
        longestSideMax: 0,
        signal: controller.signal,
        onProgress: () => {
          sawProcesses = ffmpegChildren().length;
          controller.abort();
        },
      },
      bench.engine,
    );
    await assert.rejects(running, (error: unknown) => error instanceof InferenceError && error.reason === "cancelled");
    assert.equal(sawProcesses, 2, "decoder and encoder were running");
    assert.deepEqual(ffmpegChildren(), [], "no ffmpeg left");
    assert.equal(existsSync(outputPath), false, "no partial output left");
  });

  test("refusals before any frame: corrupt input, no video stream", async () => {
    const corrupt = join(bench.directory, "corrupt.mp4");
    const whole = readFileSync(bench.clip("whole"));
    // Its index (the moov box) is at the end: the first half has frames no reader can find.
    writeFileSync(corrupt, whole.subarray(0, whole.length >> 1));
    await assert.rejects(bench.matte(corrupt, videoOptions(VideoFormat.WEBM)), (error: unknown) => error instanceof InferenceError && error.reason === "video_corrupt" && error.userError);
    const audioOnly = join(bench.directory, "audio-only.mp4");
    execFileSync(binaries.ffmpeg.path, ["-hide_banner", "-loglevel", "error", "-y", "-f", "lavfi", "-i", "sine=duration=0.5", "-c:a", "aac", audioOnly]);
    await assert.rejects(bench.matte(audioOnly, videoOptions(VideoFormat.WEBM)), (error: unknown) => error instanceof InferenceError && error.reason === "video_no_stream");
    assert.deepEqual(ffmpegChildren(), []);
  });
});
