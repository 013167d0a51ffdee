// A video through the image model, frame by frame: ffmpeg decodes to raw RGBA frames on a pipe,
// each frame goes through the engine's own resize, dynamic batcher and edge refinement (the same
// path as an image), masks are smoothed over time, and a second ffmpeg encodes the frames it
// reads from a pipe, with the input's audio. Decoding, the model, refinement and encoding
// overlap: a bounded window of frames is in flight, and each pipe applies backpressure.
//
// Frame timing: frames are decoded at a constant rate, the probed one (a variable-rate input at
// its average rate, frames over duration), and encoded at that same rate. A constant-rate input
// keeps every frame and timestamp; a variable-rate one keeps its duration and its frame count
// (within a frame) while ffmpeg's fps filter repeats or drops frames where the spacing varied, so
// audio stays in sync. Raw frames on a pipe carry no timestamps, and passing the originals
// through would need a timestamp side channel no ffmpeg of 2018 reads (video.pipeline.spec.ts
// checks this on a clip whose rate drops to a third halfway).
import { qualityPassOf } from "../../domain/quality.plan.ts";
import { once } from "node:events";
import { rm } from "node:fs/promises";
import type { Readable, Writable } from "node:stream";
import sharp from "sharp";
import { VideoFormat, type VideoOptions } from "../../../common/gen/cutline/inference/v1/video_options_pb.ts";
import { mediaBinaries, type MediaBinaries } from "../../../common/video/ffmpeg-binaries.ts";
import { VideoError } from "../../../common/video/video.errors.ts";
import { FfmpegProcess } from "../../../common/video/ffmpeg.process.ts";
import { frameRateValue, probeVideo, VIDEO_FRAME_RATE_MAX, type FrameRate, type VideoProbe } from "../../../common/video/video-probe.ts";
import { processedVideoSize } from "../../../common/video/video-size.ts";
import { InferenceError, inferenceErrorOf } from "../../domain/inference.errors.ts";
import { defaultTemporalSmoothing, lumaOf, TemporalMaskSmoother, type TemporalSmoothingOptions } from "../../domain/mask.smoother.ts";
import { parseHexColour } from "../image.encoder.ts";
import type { MaskRefineResponse } from "../mask-refine.thread.ts";
import type { SegmentationEngine } from "../segmentation.engine.ts";
import { encoderArgs, videoEncodingOf, type VideoOutputFormat } from "./video.encoder.ts";
/** Frames in flight at least, whatever the engine's batch size (frames). */
const framesInFlightMin = 4;
/**
 * The decoder's and encoder's CPU priority (niceness, 0 is ours). The model bounds a video's
 * throughput: ffmpeg decodes 720p at hundreds of frames a second and encodes VP9 at tens, the CPU
 * model at a few. At our priority, the encoder's four threads took the model's cores whenever the
 * machine was busy (bench:video 0.77 × model alone under load); lowered, they run in the time the
 * model leaves, and the frames in flight absorb the wait. It also leaves images (one model run
 * each) their share while a video encodes. INFERENCE_MODEL_NICENESS (0 by default) must stay
 * under this for the model to keep its precedence.
 */
const FFMPEG_NICENESS = 10;

export interface VideoProgress {
  framesDone: number;
  framesTotal: number;
  /** Seconds left at the rate so far (rounded). */
  etaSeconds: number;
}

export interface VideoMattingInput {
  inputPath: string;
  /** Written by the encoder; removed again when the run fails or is aborted. */
  outputPath: string;
  options: VideoOptions;
  /** An image behind the subject (format MP4 only), any format sharp reads; cover-resized to the frame. */
  backgroundImage?: Uint8Array;
  /** The plan's longest side (pixels), capped at VIDEO_LONGEST_SIDE_MAX; 0: that cap alone. Larger videos are downscaled. */
  longestSideMax: number;
  /** Aborting kills both ffmpeg processes at once and rejects with `cancelled`. */
  signal: AbortSignal;
  /** Told after each frame is encoded; must not throw. */
  onProgress?: (progress: VideoProgress) => void;
  /**
   * The duration the job was billed for (the gateway's probe, the task's video_duration_ms; ms):
   * decoding stops there and at the frames it holds, whatever the container declares now or
   * its streams really carry (a header can claim 1 s over 20 s of frames). 0 or absent: this
   * run's own probe of the file.
   */
  durationMsMax?: number;
  /** The probe of `inputPath` where the caller has it already; else probed here. */
  probe?: VideoProbe;
  /** Default: defaultTemporalSmoothing; false: each frame's mask as the model gives it (evaluation). */
  temporalSmoothing?: TemporalSmoothingOptions | false;
  /** Each frame's final alpha, in order (evaluation); must not throw. */
  onAlpha?: (frameIndex: number, alpha: Uint8Array) => void;
  /** Default: mediaBinaries(). */
  binaries?: MediaBinaries;
}

export interface VideoMattingResult {
  contentType: string;
  frameCount: number;
  durationMs: number;
  width: number;
  height: number;
}

function validateVideoOptions(options: VideoOptions, backgroundImage: Uint8Array | undefined): VideoOutputFormat {
  if (!(options.format in VideoFormat)) throw new InferenceError("invalid_option", `video format ${options.format} is unknown`);
  const background = parseHexColour(options.backgroundColor) !== undefined || (backgroundImage?.length ?? 0) > 0;
  if (background && options.format !== VideoFormat.MP4) {
    throw new InferenceError("invalid_option", "bg_color and bg_image_file are only for format mp4: webm and mov keep the alpha, mask has no colours");
  }
  return videoEncodingOf(options);
}

/** The MP4 background, one RGB frame: the image cover-resized, else the colour (white by default). */
async function backgroundOf(options: VideoOptions, image: Uint8Array | undefined, width: number, height: number): Promise<Uint8Array> {
  if (image !== undefined && image.length > 0) {
    try {
      const raw = await sharp(image).rotate().resize({ width, height, fit: "cover" }).removeAlpha().raw().toBuffer();
      return new Uint8Array(raw);
    } catch (error) {
      throw new InferenceError("invalid_option", "the background image could not be decoded", { cause: error });
    }
  }
  const colour = parseHexColour(options.backgroundColor) ?? { r: 255, g: 255, b: 255 };
  const rgb = new Uint8Array(width * height * 3);
  for (let offset = 0; offset < rgb.length; offset += 3) {
    rgb[offset] = colour.r;
    rgb[offset + 1] = colour.g;
    rgb[offset + 2] = colour.b;
  }
  return rgb;
}

/** The bytes the encoder reads for one refined frame. */
function encoderFrameOf(refined: MaskRefineResponse, format: VideoOutputFormat, background: Uint8Array | undefined): Uint8Array {
  if (format.pixelFormat === "rgba") return refined.subject;
  if (format.pixelFormat === "gray") return refined.alpha;
  const { subject, alpha } = refined;
  const rgb = new Uint8Array(alpha.length * 3);
  for (let pixel = 0; pixel < alpha.length; pixel++) {
    const a = alpha[pixel]!;
    for (let channel = 0; channel < 3; channel++) {
      rgb[pixel * 3 + channel] = (subject[pixel * 4 + channel]! * a + background![pixel * 3 + channel]! * (255 - a) + 127) / 255;
    }
  }
  return rgb;
}

/** Whole frames of `frameBytes` from a raw stream, each in its own buffer (they move to worker threads). */
export async function* framesOf(stream: Readable, frameBytes: number): AsyncGenerator<Uint8Array> {
  let frame = new Uint8Array(frameBytes);
  let filled = 0;
  for await (const chunk of stream as AsyncIterable<Buffer>) {
    let offset = 0;
    while (offset < chunk.length) {
      const taken = Math.min(frameBytes - filled, chunk.length - offset);
      frame.set(chunk.subarray(offset, offset + taken), filled);
      filled += taken;
      offset += taken;
      if (filled === frameBytes) {
        yield frame;
        frame = new Uint8Array(frameBytes);
        filled = 0;
      }
    }
  }
}

async function writeFrame(stdin: Writable, bytes: Uint8Array, signal: AbortSignal): Promise<void> {
  if (!stdin.write(bytes)) await once(stdin, "drain", { signal });
}

/** Where decoding stops: the billed seconds, and the frames they hold at the decode rate (one more for rounding). */
export interface DecodeCap {
  seconds: number;
  frames: number;
}

/** The cap for `durationMs` at `rate` ("30000/1001"): `-t` seconds and ceil(seconds × rate) + 1 frames. */
export function decodeCapOf(durationMs: number, rate: FrameRate): DecodeCap {
  const seconds = durationMs / 1000;
  return { seconds, frames: Math.ceil(seconds * frameRateValue(rate)) + 1 };
}

/** ffmpeg's arguments: the input's first video stream as raw RGBA frames on stdout; `cap` undefined only in scripts on known clips. */
export function decoderArgs(input: { inputPath: string; rate: string; width: number; height: number; cap: DecodeCap | undefined }): string[] {
  const { inputPath, rate, width, height, cap } = input;
  // ffmpeg turns a rotated stream upright (its display matrix) before these filters run.
  return [
    ...(cap === undefined ? [] : ["-t", String(cap.seconds)]), "-i", inputPath, "-map", "0:v:0", "-an", "-sn", "-dn",
    "-vf", `fps=${rate},scale=${width}:${height}:flags=bicubic,format=rgba`, ...(cap === undefined ? [] : ["-frames:v", String(cap.frames)]),
    "-f", "rawvideo", "-pix_fmt", "rgba", "pipe:1",
  ];
}

/**
 * Mattes a video file into `outputPath`. Errors are InferenceErrors: the probe's refusals
 * (`video_corrupt`, `video_no_stream`, `video_codec_unsupported`, `unsupported_format`),
 * `invalid_option`, `cancelled` on abort, `internal` when an encoder fails. When it settles no
 * ffmpeg it started is running, and on failure `outputPath` is gone.
 */
export async function runVideoMatting(input: VideoMattingInput, engine: SegmentationEngine): Promise<VideoMattingResult> {
  const internal = new AbortController();
  const abortFromCaller = () => internal.abort(new InferenceError("cancelled", "the video job was cancelled"));
  if (input.signal.aborted) abortFromCaller();
  input.signal.addEventListener("abort", abortFromCaller, { once: true });
  const processes: FfmpegProcess[] = [];
  const frames: Promise<unknown>[] = [];
  try {
    internal.signal.throwIfAborted();
    return await matte(input, engine, internal, { processes, frames });
  } catch (error) {
    await rm(input.outputPath, { force: true });
    throw inferenceErrorOf(internal.signal.aborted && internal.signal.reason instanceof Error ? internal.signal.reason : error);
  } finally {
    input.signal.removeEventListener("abort", abortFromCaller);
    for (const process of processes) process.kill();
    await Promise.all(processes.map((process) => process.closed));
    // Frames already in a model batch finish there (a running batch cannot be stopped): settling
    // after them means a cancelled job leaves no work behind in the engine (one batch, at most).
    await Promise.allSettled(frames);
  }
}

/** What a run started, for runVideoMatting to end: ffmpeg processes, and each frame's last promise. */
interface Started {
  processes: FfmpegProcess[];
  frames: Promise<unknown>[];
}

async function matte(input: VideoMattingInput, engine: SegmentationEngine, internal: AbortController, started: Started): Promise<VideoMattingResult> {
  const { processes } = started;
  const format = validateVideoOptions(input.options, input.backgroundImage);
  const binaries = input.binaries ?? mediaBinaries();
  const probe = input.probe ?? (await probeVideo(input.inputPath, { signal: internal.signal, binaries }));
  // The gateway refused these before the hold; a task from elsewhere is refused the same way.
  if (frameRateValue(probe.frameRate) > VIDEO_FRAME_RATE_MAX) {
    throw new VideoError("video_frame_rate_too_high", `the video runs at ${frameRateValue(probe.frameRate).toFixed(2)} fps; the limit is ${VIDEO_FRAME_RATE_MAX} fps (VIDEO_FRAME_RATE_MAX)`);
  }
  const { width, height } = processedVideoSize(probe, input.longestSideMax);
  const background = format.pixelFormat === "rgb24" ? await backgroundOf(input.options, input.backgroundImage, width, height) : undefined;
  // A model that failed to load answers model_unavailable (retried elsewhere) from segmentTensor.
  await engine.ready.catch(() => undefined);
  internal.signal.throwIfAborted();
  const rate = `${probe.frameRate.numerator}/${probe.frameRate.denominator}`;
  const keepAudio = input.options.keepAudio !== false && probe.hasAudio;
  const cap = decodeCapOf(input.durationMsMax !== undefined && input.durationMsMax > 0 ? input.durationMsMax : probe.durationMs, probe.frameRate);
  const decoder = new FfmpegProcess(binaries.ffmpeg.path, decoderArgs({ inputPath: input.inputPath, rate, width, height, cap }), { niceness: FFMPEG_NICENESS });
  processes.push(decoder);
  const encoder = new FfmpegProcess(
    binaries.ffmpeg.path,
    encoderArgs({ format, width, height, rate, audioFrom: keepAudio ? input.inputPath : undefined, audioSecondsMax: cap.seconds, outputPath: input.outputPath }),
    { niceness: FFMPEG_NICENESS },
  );
  processes.push(encoder);
  const kill = () => processes.forEach((process) => process.kill());
  internal.signal.addEventListener("abort", kill, { once: true });
  let encoderInputEnded = false;
  void encoder.closed.then((code) => {
    if (!encoderInputEnded) internal.abort(new InferenceError("internal", "the video encoder stopped early", { cause: `ffmpeg exited ${code}: ${encoder.errorOutput}` }));
  });

  // The same model pass per setting as images (VideoOptions.quality).
  const pass = qualityPassOf(input.options.quality);
  const smoother = input.temporalSmoothing === false ? undefined : new TemporalMaskSmoother(pass.side, input.temporalSmoothing ?? defaultTemporalSmoothing);
  const window = Math.max(framesInFlightMin, Math.min(engine.capacity, 2 * engine.runningCapacity + 2));
  const framesTotal = Math.min(probe.frameCountEstimate, cap.frames);
  const startedAt = performance.now();
  const inFlight: Promise<void>[] = [];
  let previousSmoothed: Promise<Float32Array> = Promise.resolve(new Float32Array());
  let previousWritten: Promise<void> = Promise.resolve();
  let framesRead = 0;
  let framesDone = 0;
  let failure: unknown;
  // Frames queue in the normal lane: an image (one request) waits behind the few frames in flight,
  // not behind the whole video, and a paid plan's image goes ahead of them.
  const call = { highPriority: false, signal: internal.signal };

  for await (const rgba of framesOf(decoder.child.stdout, width * height * 4)) {
    if (inFlight.length >= window) await inFlight.shift();
    internal.signal.throwIfAborted();
    const index = framesRead++;
    const frame = { rgba, width, height };
    const segmented = engine.modelInputOfFrame(frame, pass.side).then(async (modelInput) => {
      const luma = smoother === undefined ? undefined : lumaOf(modelInput);
      return { mask: await engine.segmentTensor(modelInput, call, pass), luma };
    });
    // The smoother needs the frames in order; the model and refinement of later frames need not wait.
    const smoothed = Promise.all([segmented, previousSmoothed]).then(([{ mask, luma }]) => (smoother === undefined ? mask : smoother.smooth(mask, luma!)));
    previousSmoothed = smoothed;
    const refined = smoothed.then((mask) => engine.refineFrame(frame, mask, pass.side));
    const written = Promise.all([refined, previousWritten]).then(async ([result]) => {
      internal.signal.throwIfAborted();
      input.onAlpha?.(index, result.alpha);
      await writeFrame(encoder.child.stdin, encoderFrameOf(result, format, background), internal.signal);
      framesDone++;
      const elapsedSeconds = (performance.now() - startedAt) / 1000;
      const total = Math.max(framesTotal, framesDone);
      input.onProgress?.({ framesDone, framesTotal: total, etaSeconds: Math.round((elapsedSeconds / framesDone) * (total - framesDone)) });
    });
    written.catch((error: unknown) => {
      failure ??= error;
      if (!internal.signal.aborted) internal.abort(error);
    });
    previousWritten = written;
    inFlight.push(written);
    started.frames.push(segmented, refined);
    if (started.frames.length > 4 * window) started.frames.splice(0, started.frames.length - 2 * window);
  }
  await Promise.all(inFlight);
  internal.signal.throwIfAborted();
  if (failure !== undefined) throw failure;
  const decoderExit = await decoder.closed;
  if (decoderExit !== 0 || framesRead === 0) {
    throw new VideoError("video_corrupt", "the video's frames could not be decoded", { cause: `ffmpeg exited ${decoderExit}: ${decoder.errorOutput}` });
  }
  encoderInputEnded = true;
  encoder.child.stdin.end();
  const encoderExit = await encoder.closed;
  if (encoderExit !== 0) throw new InferenceError("internal", "the video could not be encoded", { cause: `ffmpeg exited ${encoderExit}: ${encoder.errorOutput}` });
  const output = await probeVideo(input.outputPath, { binaries, signal: internal.signal });
  return { contentType: format.contentType, frameCount: framesDone, durationMs: output.durationMs, width, height };
}

