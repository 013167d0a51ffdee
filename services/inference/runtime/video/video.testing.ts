// Shared by the video specs: one engine per spec file, a scratch folder, and readers of what
// ffmpeg wrote (streams, raw frames) and of which ffmpeg children are still alive.
import { execFileSync } from "node:child_process";
import { mkdtempSync, readdirSync, readFileSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { create } from "@bufbuild/protobuf";
import { pino } from "pino";
import { VideoFormat, VideoOptionsSchema, type VideoOptions } from "../../../common/gen/cutline/inference/v1/video_options_pb.ts";
import { mediaBinaries } from "../../../common/video/ffmpeg-binaries.ts";
import { makeClip, type ClipOptions } from "../../../common/video/video-clips.testing.ts";
import { loadInferenceConfig } from "../../inference.config.ts";
import { createSegmentationEngine, type SegmentationEngine } from "../segmentation.engine.ts";
import { runVideoMatting, type VideoMattingInput, type VideoProgress } from "./video.pipeline.ts";

export const binaries = mediaBinaries();

/** The engine and scratch folder of one spec file: call `open` in before() and `close` in after(). */
export class VideoBench {
  engine!: SegmentationEngine;
  readonly directory = mkdtempSync(join(tmpdir(), "cutline-video-pipeline-"));

  async open(): Promise<void> {
    this.engine = await createSegmentationEngine(loadInferenceConfig({ INFERENCE_EXECUTION_PROVIDERS: "cuda,cpu" }), pino({ level: "silent" }));
    await this.engine.ready;
  }

  async close(): Promise<void> {
    await this.engine.close();
    rmSync(this.directory, { recursive: true, force: true });
  }

  /** The model costs seconds a frame on a shared CPU: 1 s at 3 frames a second unless told otherwise. */
  clip(name: string, options: ClipOptions = {}): string {
    return makeClip(this.directory, name, { rate: 3, ...options });
  }

  async matte(inputPath: string, options: VideoOptions, extra: Partial<VideoMattingInput> = {}) {
    const outputPath = join(this.directory, `out-${Math.random().toString(36).slice(2)}`);
    const progress: VideoProgress[] = [];
    const result = await runVideoMatting(
      { inputPath, outputPath, options, longestSideMax: 0, signal: new AbortController().signal, onProgress: (step) => progress.push(step), ...extra },
      this.engine,
    );
    return { result, outputPath, progress };
  }
}

export const videoOptions = (format: VideoFormat, extra: { backgroundColor?: string; keepAudio?: boolean } = {}) => create(VideoOptionsSchema, { format, ...extra });

/** Every frame of a video as raw RGBA (VP9 through libvpx, the decoder that reads its alpha). */
export function decodeFrames(path: string, width: number, height: number, vp9Alpha = false): Uint8Array[] {
  const raw = execFileSync(binaries.ffmpeg.path, [
    "-hide_banner", "-loglevel", "error", ...(vp9Alpha ? ["-c:v", "libvpx-vp9"] : []), "-i", path, "-f", "rawvideo", "-pix_fmt", "rgba", "pipe:1",
  ], { maxBuffer: 1 << 28 });
  const frameBytes = width * height * 4;
  return Array.from({ length: raw.length / frameBytes }, (_, index) => new Uint8Array(raw.subarray(index * frameBytes, (index + 1) * frameBytes)));
}

export function streamsOf(path: string): { codec_name: string; codec_type: string; pix_fmt?: string; tags?: Record<string, string> }[] {
  const report = execFileSync(binaries.ffprobe!.path, ["-v", "error", "-print_format", "json", "-show_streams", path], { encoding: "utf8" });
  return (JSON.parse(report) as { streams: never[] }).streams;
}

export function alphaRange(frame: Uint8Array): { low: number; high: number } {
  let low = 255;
  let high = 0;
  for (let offset = 3; offset < frame.length; offset += 4) {
    low = Math.min(low, frame[offset]!);
    high = Math.max(high, frame[offset]!);
  }
  return { low, high };
}

/** ffmpeg processes whose parent is this process. */
export function ffmpegChildren(): number[] {
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
