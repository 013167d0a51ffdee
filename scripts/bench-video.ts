// Video throughput on this machine, stage by stage and whole:
//
//   npm run bench:video [-- --seconds S]
//
// A 10 s 1280×720 25 fps clip made by ffmpeg (testsrc, with audio). Frames per second of:
// decoding alone (ffmpeg to raw RGBA on a pipe, the whole clip), encoding alone (raw RGBA
// frames to WebM VP9 with alpha, as many frames as the clip), the model alone (the engine's
// resize, batcher and model, frames kept in flight as the pipeline keeps them), and the whole
// pipeline (runVideoMatting to WebM with audio). --seconds S runs the model and the pipeline on
// the clip's first S seconds only (default 10: all of it), for machines where the model takes
// seconds a frame. realtimeFactor = pipeline fps / the clip's 25 fps (1: as fast as real time).
// The LAST line is one JSON object with the figures.
import { create } from "@bufbuild/protobuf";
import { execFileSync } from "node:child_process";
import { mkdtempSync, rmSync } from "node:fs";
import { once } from "node:events";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { parseArgs } from "node:util";
import { VideoFormat, VideoOptionsSchema } from "../services/common/gen/cutline/inference/v1/video_options_pb.ts";
import { mediaBinaries } from "../services/common/video/ffmpeg-binaries.ts";
import { makeClip } from "../services/common/video/video-clips.testing.ts";
import { createSegmentationEngine, loadInferenceConfig } from "../services/inference/index.ts";
import { FfmpegProcess } from "../services/common/video/ffmpeg.process.ts";
import { encoderArgs, videoEncodingOf } from "../services/inference/runtime/video/video.encoder.ts";
import { decoderArgs, framesOf, runVideoMatting } from "../services/inference/runtime/video/video.pipeline.ts";

const { values } = parseArgs({ options: { seconds: { type: "string", default: "10" } } });
const seconds = Math.min(10, Number(values.seconds));
const [width, height, rate, clipSeconds] = [1280, 720, 25, 10];
const round = (value: number, digits = 2) => Number(value.toFixed(digits));
const binaries = mediaBinaries();
const directory = mkdtempSync(join(tmpdir(), "cutline-bench-video-"));
process.on("exit", () => rmSync(directory, { recursive: true, force: true }));

const clip = makeClip(directory, "bench", { width, height, seconds: clipSeconds, rate, audio: true, pattern: true });
const head = join(directory, "head.mp4");
execFileSync(binaries.ffmpeg.path, ["-hide_banner", "-loglevel", "error", "-y", "-i", clip, "-t", String(seconds), "-c:v", "libx264", "-preset", "ultrafast", "-crf", "10", "-c:a", "copy", head]);
const frameBytes = width * height * 4;

// 1. Decoding alone, the whole clip.
async function decodeOnly(): Promise<{ frames: number; fps: number }> {
  const started = performance.now();
  const decoder = new FfmpegProcess(binaries.ffmpeg.path, decoderArgs({ inputPath: clip, rate: `${rate}/1`, width, height, cap: undefined }));
  let frames = 0;
  for await (const frame of framesOf(decoder.child.stdout, frameBytes)) if (frame.length === frameBytes) frames++;
  await decoder.closed;
  return { frames, fps: frames / ((performance.now() - started) / 1000) };
}

// 2. Encoding alone: as many frames as the clip, a moving gradient with a soft alpha edge.
async function encodeOnly(frames: number): Promise<number> {
  const format = videoEncodingOf(create(VideoOptionsSchema, { format: VideoFormat.WEBM }));
  const pattern = new Uint8Array(frameBytes);
  const started = performance.now();
  const encoder = new FfmpegProcess(binaries.ffmpeg.path, encoderArgs({ format, width, height, rate: `${rate}/1`, audioFrom: undefined, audioSecondsMax: 0, outputPath: join(directory, "encode-only.webm") }));
  for (let index = 0; index < frames; index++) {
    for (let pixel = 0; pixel < width * height; pixel++) {
      const x = pixel % width;
      pattern[pixel * 4] = (x + index * 8) & 255;
      pattern[pixel * 4 + 1] = (pixel / width) & 255;
      pattern[pixel * 4 + 2] = 128;
      pattern[pixel * 4 + 3] = Math.max(0, Math.min(255, (x - 400 - index * 4) * 4));
    }
    if (!encoder.child.stdin.write(pattern.slice())) await once(encoder.child.stdin, "drain");
  }
  encoder.child.stdin.end();
  if ((await encoder.closed) !== 0) throw new Error(`encoder failed: ${encoder.errorOutput}`);
  return frames / ((performance.now() - started) / 1000);
}

const decoded = await decodeOnly();
const encodeFps = await encodeOnly(decoded.frames);
console.log(`decode ${round(decoded.fps)} fps (${decoded.frames} frames); encode WebM VP9+alpha ${round(encodeFps)} fps`);

const engine = await createSegmentationEngine(loadInferenceConfig());
await engine.ready;
await engine.warm; // its warm-up runs would otherwise overlap the first timings
const window = Math.max(4, Math.min(engine.capacity, 2 * engine.runningCapacity + 2));

// 3. The model alone: the head's frames, decoded beforehand, `window` in flight.
async function modelOnly(): Promise<{ frames: number; fps: number }> {
  const decoder = new FfmpegProcess(binaries.ffmpeg.path, decoderArgs({ inputPath: head, rate: `${rate}/1`, width, height, cap: undefined }));
  const frames: Uint8Array[] = [];
  for await (const frame of framesOf(decoder.child.stdout, frameBytes)) frames.push(frame);
  await decoder.closed;
  const started = performance.now();
  let next = 0;
  await Promise.all(
    Array.from({ length: window }, async () => {
      while (next < frames.length) {
        const rgba = frames[next++]!;
        await engine.segmentTensor(await engine.modelInputOfFrame({ rgba, width, height }), { highPriority: true });
      }
    }),
  );
  return { frames: frames.length, fps: frames.length / ((performance.now() - started) / 1000) };
}

const model = await modelOnly();
console.log(`model alone ${round(model.fps, 3)} fps (${model.frames} frames, ${engine.executionProvider}, batch ≤ ${engine.batchSizeMax}, ${window} in flight)`);

// 4. The whole pipeline on the same head.
const started = performance.now();
const result = await runVideoMatting(
  { inputPath: head, outputPath: join(directory, "pipeline.webm"), options: create(VideoOptionsSchema, {}), longestSideMax: 0, signal: new AbortController().signal },
  engine,
);
const fps = result.frameCount / ((performance.now() - started) / 1000);
console.log(`pipeline ${round(fps, 3)} fps (${result.frameCount} frames) = ${round(fps / model.fps, 3)} × model alone`);
await engine.close();
console.log(
  JSON.stringify({
    clip: `${width}x${height} ${rate} fps ${clipSeconds} s testsrc + audio`,
    pipelineSeconds: seconds,
    executionProvider: engine.executionProvider,
    model: engine.modelName,
    decodeFps: round(decoded.fps),
    encodeFps: round(encodeFps),
    modelOnlyFps: round(model.fps, 3),
    fps: round(fps, 3),
    pipelineOverModel: round(fps / model.fps, 3),
    realtimeFactor: round(fps / rate, 4),
    frames: result.frameCount,
  }),
);
