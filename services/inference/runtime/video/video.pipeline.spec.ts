// The video engine end to end with the real model and the real ffmpeg, on tiny clips made here
// (the model costs seconds per frame on a shared CPU, so each clip has a handful of frames).
import assert from "node:assert/strict";
import { execFileSync } from "node:child_process";
import { existsSync, mkdtempSync, readdirSync, readFileSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { after, before, describe, test } from "node:test";
import { create } from "@bufbuild/protobuf";
import { pino } from "pino";
import sharp from "sharp";
import { SHARED_DIRECTORY } from "../../../../test/harness.ts";
import { VideoFormat, VideoOptionsSchema, type VideoOptions } from "../../../common/gen/cutline/inference/v1/video_options_pb.ts";
import { mediaBinaries } from "../../../common/video/ffmpeg-binaries.ts";
import { makeClip, type ClipOptions } from "../../../common/video/video-clips.testing.ts";
import { probeVideo } from "../../../common/video/video-probe.ts";
import { InferenceError } from "../../domain/inference.errors.ts";
import { loadInferenceConfig } from "../../inference.config.ts";
import { createSegmentationEngine, type SegmentationEngine } from "../segmentation.engine.ts";
import { runVideoMatting, videoOutputSize, type VideoMattingInput, type VideoProgress } from "./video.pipeline.ts";

const binaries = mediaBinaries();
const directory = mkdtempSync(join(tmpdir(), "cutline-video-pipeline-"));
let engine: SegmentationEngine;

before(async () => {
  engine = await createSegmentationEngine(loadInferenceConfig({ INFERENCE_EXECUTION_PROVIDERS: "cuda,cpu" }), pino({ level: "silent" }));
  await engine.ready;
});
after(async () => {
  await engine.close();
  rmSync(directory, { recursive: true, force: true });
});

/** Few frames: 1 s at 4 frames a second unless the test says otherwise. */
const clip = (name: string, options: ClipOptions = {}) => makeClip(directory, name, { rate: 4, ...options });
const videoOptions = (format: VideoFormat, extra: { backgroundColor?: string; keepAudio?: boolean } = {}) => create(VideoOptionsSchema, { format, ...extra });

async function matte(inputPath: string, options: VideoOptions, extra: Partial<VideoMattingInput> = {}) {
  const outputPath = join(directory, `out-${Math.random().toString(36).slice(2)}`);
  const progress: VideoProgress[] = [];
  const result = await runVideoMatting(
    { inputPath, outputPath, options, longestSideMax: 0, signal: new AbortController().signal, onProgress: (step) => progress.push(step), ...extra },
    engine,
  );
  return { result, outputPath, progress };
}

/** Every frame of a video as raw RGBA (VP9 through libvpx, the decoder that reads its alpha). */
function decodeFrames(path: string, width: number, height: number, vp9Alpha = false): Uint8Array[] {
  const raw = execFileSync(binaries.ffmpeg.path, [
    "-hide_banner", "-loglevel", "error", ...(vp9Alpha ? ["-c:v", "libvpx-vp9"] : []), "-i", path, "-f", "rawvideo", "-pix_fmt", "rgba", "pipe:1",
  ], { maxBuffer: 1 << 28 });
  const frameBytes = width * height * 4;
  return Array.from({ length: raw.length / frameBytes }, (_, index) => new Uint8Array(raw.subarray(index * frameBytes, (index + 1) * frameBytes)));
}

function streamsOf(path: string): { codec_name: string; codec_type: string; pix_fmt?: string; tags?: Record<string, string> }[] {
  const report = execFileSync(binaries.ffprobe!.path, ["-v", "error", "-print_format", "json", "-show_streams", path], { encoding: "utf8" });
  return (JSON.parse(report) as { streams: never[] }).streams;
}

const alphaRange = (frame: Uint8Array) => {
  let low = 255;
  let high = 0;
  for (let offset = 3; offset < frame.length; offset += 4) {
    low = Math.min(low, frame[offset]!);
    high = Math.max(high, frame[offset]!);
  }
  return { low, high };
};

/** ffmpeg processes whose parent is this process. */
function ffmpegChildren(): number[] {
  return readdirSync("/proc")
    .filter((entry) => /^\d+$/.test(entry))
    .filter((pid) => {
      try {
        const stat = readFileSync(`/proc/${pid}/stat`, "utf8");
        return Number(stat.slice(stat.lastIndexOf(")") + 2).split(" ")[1]) === process.pid && stat.includes("(ffmpeg)");
      } catch {
        return false;
      }
    })
    .map(Number);
}

describe("runVideoMatting", () => {
  test("WebM (default): VP9 with alpha that varies, Opus audio kept, frame count and duration kept, progress to the end", async () => {
    const input = clip("webm", { audio: true });
    const inputProbe = await probeVideo(input);
    const { result, outputPath, progress } = await matte(input, videoOptions(VideoFormat.UNSPECIFIED));
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
    const input = clip("formats", { audio: true, seconds: 0.5 });
    const mov = await matte(input, videoOptions(VideoFormat.MOV));
    assert.equal(mov.result.contentType, "video/quicktime");
    const movStreams = streamsOf(mov.outputPath);
    assert.deepEqual(movStreams.map((stream) => stream.codec_name), ["prores", "aac"]);
    assert.match(movStreams[0]!.pix_fmt ?? "", /^yuva444p/, "ProRes 4444 with its alpha plane");
    const mp4 = await matte(input, videoOptions(VideoFormat.MP4, { backgroundColor: "#00ff00" }));
    assert.deepEqual(streamsOf(mp4.outputPath).map((stream) => [stream.codec_name, stream.pix_fmt ?? ""]), [["h264", "yuv420p"], ["aac", ""]]);
    const corner = decodeFrames(mp4.outputPath, 160, 120)[0]!;
    assert.ok(corner[0]! < 40 && corner[1]! > 200 && corner[2]! < 40, `top-left pixel ${corner.subarray(0, 3).join()} is the green background`);
    const mask = await matte(input, videoOptions(VideoFormat.MASK));
    assert.deepEqual(streamsOf(mask.outputPath).map((stream) => stream.codec_type), ["video"]);
    assert.equal(mask.result.frameCount, mov.result.frameCount);
  });

  test("MP4 on a background image; keep_audio=false drops the audio", async () => {
    const background = await sharp({ create: { width: 64, height: 64, channels: 3, background: "#ff0000" } }).png().toBuffer();
    const { outputPath } = await matte(clip("background", { audio: true, seconds: 0.5 }), videoOptions(VideoFormat.MP4, { keepAudio: false }), { backgroundImage: background });
    assert.deepEqual(streamsOf(outputPath).map((stream) => stream.codec_type), ["video"]);
    const pixel = decodeFrames(outputPath, 160, 120)[0]!;
    assert.ok(pixel[0]! > 200 && pixel[1]! < 50, `top-left pixel ${pixel.subarray(0, 3).join()} is the red image`);
    await assert.rejects(matte(clip("background"), videoOptions(VideoFormat.WEBM, { backgroundColor: "#fff" })), (error: unknown) => error instanceof InferenceError && error.reason === "invalid_option");
  });

  test("a variable-rate clip is decoded at its average rate: duration and frame count kept", async () => {
    // 4 frames in the first second, then 4 more three times as far apart: about 4 s.
    const input = clip("variable", { variableRate: true, seconds: 2 });
    const probe = await probeVideo(input);
    assert.equal(probe.variableFrameRate, true);
    const { result } = await matte(input, videoOptions(VideoFormat.MASK));
    assert.ok(Math.abs(result.durationMs - probe.durationMs) <= 1000 / (probe.frameRate.numerator / probe.frameRate.denominator) + 10, `${result.durationMs} against ${probe.durationMs} ms`);
    assert.ok(Math.abs(result.frameCount - 8) <= 1, `${result.frameCount} frames`);
  });

  test("a rotated phone clip comes out upright, at its displayed size", async () => {
    const input = clip("phone", { rotateDegrees: 90, seconds: 0.5 });
    const { result, outputPath } = await matte(input, videoOptions(VideoFormat.MASK));
    assert.deepEqual([result.width, result.height], [120, 160]);
    const probe = await probeVideo(outputPath);
    assert.deepEqual([probe.width, probe.height, probe.rotationDegrees], [120, 160, 0]);
  });

  test("larger than the cap: downscaled to the longest side asked for, even sides", () => {
    assert.deepEqual(videoOutputSize({ width: 3840, height: 2160 }, 0), { width: 1920, height: 1080 });
    assert.deepEqual(videoOutputSize({ width: 1080, height: 1920 }, 1280), { width: 720, height: 1280 });
    assert.deepEqual(videoOutputSize({ width: 161, height: 121 }, 0), { width: 160, height: 120 });
  });

  test("abort: ffmpeg killed at once, no process or output file left, rejected as cancelled", async () => {
    const input = clip("abort", { seconds: 3 });
    const controller = new AbortController();
    const outputPath = join(directory, "aborted.webm");
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
      engine,
    );
    await assert.rejects(running, (error: unknown) => error instanceof InferenceError && error.reason === "cancelled");
    assert.equal(sawProcesses, 2, "decoder and encoder were running");
    assert.deepEqual(ffmpegChildren(), [], "no ffmpeg left");
    assert.equal(existsSync(outputPath), false, "no partial output left");
  });

  test("refusals before any frame: corrupt input, no video stream", async () => {
    const corrupt = join(directory, "corrupt.mp4");
    execFileSync("sh", ["-c", `head -c 3000 ${JSON.stringify(clip("whole"))} > ${JSON.stringify(corrupt)}`]);
    await assert.rejects(matte(corrupt, videoOptions(VideoFormat.WEBM)), (error: unknown) => error instanceof InferenceError && error.reason === "video_corrupt" && error.userError);
    const audioOnly = join(directory, "audio-only.mp4");
    execFileSync(binaries.ffmpeg.path, ["-hide_banner", "-loglevel", "error", "-y", "-f", "lavfi", "-i", "sine=duration=0.5", "-c:a", "aac", audioOnly]);
    await assert.rejects(matte(audioOnly, videoOptions(VideoFormat.WEBM)), (error: unknown) => error instanceof InferenceError && error.reason === "video_no_stream");
    assert.deepEqual(ffmpegChildren(), []);
  });

  const blackswan = join(SHARED_DIRECTORY, "eval", "video", "blackswan.mp4");
  test("a real clip (../shared/eval/video/blackswan.mp4, first 3 frames) against its ground truth", { skip: existsSync(blackswan) ? false : `${blackswan} is absent: the real-clip check needs ../shared/eval/video` }, async () => {
    const head = join(directory, "blackswan-head.mp4");
    execFileSync(binaries.ffmpeg.path, ["-hide_banner", "-loglevel", "error", "-y", "-i", blackswan, "-frames:v", "3", "-c:v", "libx264", "-preset", "ultrafast", "-qp", "0", head]);
    const alphas: Uint8Array[] = [];
    const { result } = await matte(head, videoOptions(VideoFormat.MASK), { onAlpha: (index, alpha) => (alphas[index] = alpha.slice()) });
    assert.deepEqual([result.width, result.height, result.frameCount], [854, 480, 3]);
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
