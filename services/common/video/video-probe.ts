// What a video is, before any credit is held on it: container from the bytes, then streams,
// duration, frame rate, size and rotation from ffprobe (or ffmpeg's own report where no ffprobe
// is installed). The gateway quotes from this; inference decodes by it.
import { mediaBinaries, type MediaBinaries } from "./ffmpeg-binaries.ts";
import { runToEnd, type RunOutput } from "./ffmpeg.process.ts";
import { headOfFile, sniffVideoContainer } from "./video-format.sniffer.ts";
import type { VideoContainer } from "./video-formats.ts";
import { VideoError } from "./video.errors.ts";

export type { VideoContainer };

export interface FrameRate {
  numerator: number;
  denominator: number;
}

export interface VideoProbe {
  container: VideoContainer;
  durationMs: number;
  /** Displayed size, after rotation (pixels). */
  width: number;
  height: number;
  /** Size as stored in the stream, before rotation (pixels). */
  codedWidth: number;
  codedHeight: number;
  /** Clockwise rotation a player applies: 0, 90, 180 or 270. */
  rotationDegrees: number;
  /** The stream's rate; for a variable-rate stream its average (frames over duration). */
  frameRate: FrameRate;
  variableFrameRate: boolean;
  /** Frames at `frameRate` over the duration (the count the engine decodes and encodes). */
  frameCountEstimate: number;
  hasAudio: boolean;
  videoCodec: string;
  audioCodec?: string;
}

export interface ProbeOptions {
  /** ffprobe (or ffmpeg) is killed past this (milliseconds); the video is then refused as corrupt. Default 15 000. */
  timeoutMs?: number;
  signal?: AbortSignal;
  /** Default: mediaBinaries() with no variables (tests, scripts); services pass their resolved binaries. */
  binaries?: MediaBinaries;
}

/**
 * VIDEO_FRAME_RATE_MAX: the highest frame rate a video may have (frames per second), 60 fps.
 * Each frame is a model run billed by the second: a 240 fps clip would cost 8 times the work
 * of a 30 fps one at the same price. The gateway refuses faster videos before the hold.
 */
export const VIDEO_FRAME_RATE_MAX = 60;

/** Default time a probe may take (milliseconds). */
export const PROBE_TIMEOUT_MS_DEFAULT = 15_000;
/** Most bytes of report read from the prober (bytes); a legitimate report is a few kilobytes. */
const probeOutputBytesMax = 4 * 1024 * 1024;
/** "30000/1001" → {30000, 1001}; undefined for "0/0" and the like. */
export function parseFrameRate(text: string | undefined): FrameRate | undefined {
  const match = /^(\d+)(?:\/(\d+))?$/.exec(text?.trim() ?? "");
  if (!match) return undefined;
  const numerator = Number(match[1]);
  const denominator = Number(match[2] ?? 1);
  return numerator > 0 && denominator > 0 ? { numerator, denominator } : undefined;
}

export const frameRateValue = (rate: FrameRate) => rate.numerator / rate.denominator;

interface ProbeStreams {
  video: { codec: string; codedWidth: number; codedHeight: number; rotationDegrees: number; realRate?: FrameRate; averageRate?: FrameRate; frames?: number; durationSeconds?: number } | undefined;
  audioCodec: string | undefined;
  durationSeconds: number | undefined;
}

const decodersByBinary = new Map<string, Promise<Set<string>>>();

/** The video decoders the ffmpeg that will decode the video has (codec names as ffprobe gives them). */
async function videoDecoders(binaries: MediaBinaries): Promise<Set<string>> {
  let known = decodersByBinary.get(binaries.ffmpeg.path);
  if (known === undefined) {
    // Shared by every caller: run with its time limit only, never one caller's signal, so that
    // the first caller's abort cannot fail the probes of the others.
    known = run(binaries.ffmpeg.path, ["-hide_banner", "-codecs"], { timeoutMs: PROBE_TIMEOUT_MS_DEFAULT, signal: undefined }).then(({ stdout }) => {
      const codecs = new Set<string>();
      for (const line of stdout.split("\n")) {
        const match = /^\s*D.(.)\S*\s+(\S+)/.exec(line);
        if (match?.[1] === "V") codecs.add(match[2]!);
      }
      return codecs;
    });
    decodersByBinary.set(binaries.ffmpeg.path, known);
    known.catch(() => decodersByBinary.delete(binaries.ffmpeg.path));
  }
  return known;
}

/** Runs a prober with a deadline: killed (SIGKILL) past `timeoutMs` or on abort, output capped. */
function run(path: string, args: string[], options: { timeoutMs: number; signal: AbortSignal | undefined }): Promise<RunOutput> {
  return runToEnd(path, args, {
    ...options,
    outputBytesMax: probeOutputBytesMax,
    onTimeout: () => new VideoError("video_corrupt", `the video could not be probed within the probe time limit (${options.timeoutMs} ms)`),
    onTooLarge: () => new VideoError("video_corrupt", `the video's stream report is larger than ${probeOutputBytesMax} bytes`),
  });
}

/** Clockwise degrees (0, 90, 180, 270) from a display matrix rotation (counter-clockwise) or a `rotate` tag (clockwise). */
function normaliseRotation(clockwise: number): number {
  const quarter = Math.round(clockwise / 90) * 90;
  return ((quarter % 360) + 360) % 360;
}

interface FfprobeStream {
  codec_type?: string;
  codec_name?: string;
  width?: number;
  height?: number;
  r_frame_rate?: string;
  avg_frame_rate?: string;
  nb_frames?: string;
  duration?: string;
  disposition?: { attached_pic?: number };
  tags?: { rotate?: string };
  side_data_list?: { side_data_type?: string; rotation?: number }[];
}

async function probeWithFfprobe(path: string, binaries: MediaBinaries, options: { timeoutMs: number; signal: AbortSignal | undefined }): Promise<ProbeStreams> {
  const args = ["-v", "error", "-print_format", "json", "-show_format", "-show_streams", path];
  const { stdout, stderr, exitCode } = await run(binaries.ffprobe!.path, args, options);
  if (exitCode !== 0) throw new VideoError("video_corrupt", "the video could not be read: its container is damaged or truncated", { cause: stderr.trim() });
  const report = JSON.parse(stdout) as { streams?: FfprobeStream[]; format?: { duration?: string } };
  const streams = report.streams ?? [];
  const video = streams.find((stream) => stream.codec_type === "video" && stream.disposition?.attached_pic !== 1);
  const audio = streams.find((stream) => stream.codec_type === "audio");
  const matrix = video?.side_data_list?.find((data) => data.side_data_type === "Display Matrix");
  const rotationDegrees =
    matrix?.rotation !== undefined ? normaliseRotation(-matrix.rotation) : video?.tags?.rotate !== undefined ? normaliseRotation(Number(video.tags.rotate)) : 0;
  const number = (text: string | undefined) => (text !== undefined && Number.isFinite(Number(text)) ? Number(text) : undefined);
  return {
    video:
      video === undefined
        ? undefined
        : {
            codec: video.codec_name ?? "unknown",
            codedWidth: video.width ?? 0,
            codedHeight: video.height ?? 0,
            rotationDegrees,
            realRate: parseFrameRate(video.r_frame_rate),
            averageRate: parseFrameRate(video.avg_frame_rate),
            frames: number(video.nb_frames),
            durationSeconds: number(video.duration),
          },
    audioCodec: audio?.codec_name,
    durationSeconds: number(report.format?.duration),
  };
}

/** The same facts from `ffmpeg -i` (its stream report on stderr), where no ffprobe is installed. */
async function probeWithFfmpeg(path: string, binaries: MediaBinaries, options: { timeoutMs: number; signal: AbortSignal | undefined }): Promise<ProbeStreams> {
  const { stderr } = await run(binaries.ffmpeg.path, ["-hide_banner", "-i", path], options);
  const duration = /Duration: (\d+):(\d+):(\d+(?:\.\d+)?)/.exec(stderr);
  if (!/Input #0/.test(stderr)) throw new VideoError("video_corrupt", "the video could not be read: its container is damaged or truncated", { cause: stderr.trim().slice(-500) });
  const videoLine = stderr.split("\n").find((line) => /Stream #0:\d+.*: Video: /.test(line) && !line.includes("attached pic"));
  const audioLine = stderr.split("\n").find((line) => /Stream #0:\d+.*: Audio: /.test(line));
  const size = videoLine === undefined ? undefined : /, (\d+)x(\d+)/.exec(videoLine);
  const fps = videoLine === undefined ? undefined : /, ([\d.]+)(k?) fps/.exec(videoLine);
  const tbr = videoLine === undefined ? undefined : /, ([\d.]+)(k?) tbr/.exec(videoLine);
  const rateOf = (match: RegExpExecArray | null | undefined): FrameRate | undefined => {
    if (!match) return undefined;
    const value = Number(match[1]) * (match[2] === "k" ? 1000 : 1);
    // ffmpeg prints 29.97 for 30000/1001: written back as a rational over 1001 where that is what it is.
    return Number.isInteger(value) ? { numerator: value, denominator: 1 } : { numerator: Math.round(value * 1001), denominator: 1001 };
  };
  const matrix = /displaymatrix: rotation of (-?[\d.]+) degrees/.exec(stderr);
  const tag = /^\s*rotate\s*:\s*(-?\d+)/m.exec(stderr);
  return {
    video:
      videoLine === undefined
        ? undefined
        : {
            codec: /Video: (\w+)/.exec(videoLine)![1]!,
            codedWidth: Number(size?.[1] ?? 0),
            codedHeight: Number(size?.[2] ?? 0),
            rotationDegrees: matrix ? normaliseRotation(-Number(matrix[1])) : tag ? normaliseRotation(Number(tag[1])) : 0,
            realRate: rateOf(tbr),
            averageRate: rateOf(fps),
          },
    audioCodec: audioLine === undefined ? undefined : /Audio: (\w+)/.exec(audioLine)?.[1],
    durationSeconds: duration ? Number(duration[1]) * 3600 + Number(duration[2]) * 60 + Number(duration[3]) : undefined,
  };
}

/** Relative difference past which the stream's base rate and its average mean a variable rate. */
const variableRateTolerance = 0.01;

/**
 * Probes a video file. Refusals are VideoErrors: `unsupported_format` (not MP4, MOV or WebM by its
 * bytes), `video_corrupt` (unreadable, no duration or size, or past the probe time limit),
 * `video_no_stream` (no video stream, e.g. audio only), `video_codec_unsupported` (a codec the
 * installed ffmpeg cannot decode). Aborting kills the prober and rejects with the signal's reason.
 */
export async function probeVideo(path: string, options: ProbeOptions = {}): Promise<VideoProbe> {
  const container = sniffVideoContainer(await headOfFile(path));
  if (container === undefined) throw new VideoError("unsupported_format", "the file is not an MP4, MOV or WebM video; upload one of those");
  const binaries = options.binaries ?? mediaBinaries();
  const runOptions = { timeoutMs: options.timeoutMs ?? PROBE_TIMEOUT_MS_DEFAULT, signal: options.signal };
  const streams = binaries.ffprobe !== undefined ? await probeWithFfprobe(path, binaries, runOptions) : await probeWithFfmpeg(path, binaries, runOptions);
  const video = streams.video;
  if (video === undefined) throw new VideoError("video_no_stream", "the file has no video stream");
  if (!(await videoDecoders(binaries)).has(video.codec)) {
    throw new VideoError("video_codec_unsupported", `the video codec ${video.codec} is not supported; use H.264, HEVC, VP8, VP9 or ProRes`);
  }
  const durationSeconds = streams.durationSeconds ?? video.durationSeconds;
  const rate = video.averageRate ?? video.realRate;
  if (durationSeconds === undefined || durationSeconds <= 0 || rate === undefined || video.codedWidth <= 0 || video.codedHeight <= 0) {
    throw new VideoError("video_corrupt", "the video has no readable duration, frame rate or size");
  }
  const real = video.realRate ?? rate;
  const variableFrameRate = Math.abs(frameRateValue(real) - frameRateValue(rate)) / frameRateValue(rate) > variableRateTolerance;
  // A constant-rate stream keeps its exact rational (30000/1001); a variable one is decoded at its average.
  const frameRate = variableFrameRate ? rate : real;
  const sideways = video.rotationDegrees % 180 !== 0;
  return {
    container,
    durationMs: Math.round(durationSeconds * 1000),
    width: sideways ? video.codedHeight : video.codedWidth,
    height: sideways ? video.codedWidth : video.codedHeight,
    codedWidth: video.codedWidth,
    codedHeight: video.codedHeight,
    rotationDegrees: video.rotationDegrees,
    frameRate,
    variableFrameRate,
    frameCountEstimate: !variableFrameRate && video.frames !== undefined && video.frames > 0 ? video.frames : Math.max(1, Math.round((video.durationSeconds ?? durationSeconds) * frameRateValue(frameRate))),
    hasAudio: streams.audioCodec !== undefined,
    videoCodec: video.codec,
    ...(streams.audioCodec !== undefined ? { audioCodec: streams.audioCodec } : {}),
  };
}
