// Clips made by ffmpeg for the video specs: a dark square moving across a light, plain
// background (a subject the model finds), small and short so the suites stay fast.
import { execFileSync } from "node:child_process";
import { join } from "node:path";
import { mediaBinaries } from "./ffmpeg-binaries.ts";

export interface ClipOptions {
  width?: number;
  height?: number;
  seconds?: number;
  /** Frames per second (default 25). */
  rate?: number;
  audio?: boolean;
  /** The first half at `rate`, the second at a third of it, timestamps kept (no duplicated frames). */
  variableRate?: boolean;
  /** A phone clip: stored as is, with this clockwise display rotation in its metadata. */
  rotateDegrees?: number;
  container?: "mp4" | "mov" | "webm";
  /** Frames of the plain testsrc pattern instead of the moving square. */
  pattern?: boolean;
}

/** Writes the clip into `directory` and returns its path. */
export function makeClip(directory: string, name: string, options: ClipOptions = {}): string {
  const { width = 160, height = 120, seconds = 1, rate = 25, audio = false, container = "mp4" } = options;
  const ffmpeg = mediaBinaries().ffmpeg.path;
  const path = join(directory, `${name}.${container}`);
  const square = Math.round(Math.min(width, height) / 2.5);
  const inputs = options.pattern
    ? ["-f", "lavfi", "-i", `testsrc=size=${width}x${height}:rate=${rate}:duration=${seconds}`]
    : [
        "-f", "lavfi", "-i", `color=c=0xe8e4dc:size=${width}x${height}:rate=${rate}:duration=${seconds}`,
        "-f", "lavfi", "-i", `color=c=0x2a3f8f:size=${square}x${square}:rate=${rate}:duration=${seconds}`,
      ];
  const audioInput = audio ? ["-f", "lavfi", "-i", `sine=frequency=440:sample_rate=48000:duration=${seconds}`] : [];
  const slowFrom = Math.round((rate * seconds) / 2);
  const timing = options.variableRate ? `,setpts='if(lt(N,${slowFrom}),N/${rate}/TB,(${slowFrom}/${rate}+(N-${slowFrom})*3/${rate})/TB)'` : "";
  const graph = options.pattern
    ? `[0:v]format=yuv420p${timing}[v]`
    : `[0:v][1:v]overlay=x='(W-w)*t/${seconds}':y='(H-h)/2+(H-h)/4*sin(t*6)':shortest=1,format=yuv420p${timing}[v]`;
  const audioIndex = options.pattern ? 1 : 2;
  const codecs =
    container === "webm" ? ["-c:v", "libvpx-vp9", "-deadline", "realtime", "-cpu-used", "8", "-c:a", "libopus"] : ["-c:v", "libx264", "-preset", "ultrafast", "-c:a", "aac"];
  const args = [
    "-hide_banner", "-loglevel", "error", "-y", ...inputs, ...audioInput,
    "-filter_complex", graph, "-map", "[v]", ...(audio ? ["-map", `${audioIndex}:a`] : []),
    ...(options.variableRate ? ["-vsync", "vfr"] : []), ...codecs,
    // With a variable rate the stream's own duration is where the last frame's timestamp puts it.
    ...(options.variableRate ? [] : ["-t", String(seconds)]),
    path,
  ];
  execFileSync(ffmpeg, args, { stdio: ["ignore", "ignore", "pipe"] });
  if (options.rotateDegrees === undefined) return path;
  const rotated = join(directory, `${name}-rotated.${container}`);
  execFileSync(ffmpeg, ["-hide_banner", "-loglevel", "error", "-y", "-i", path, "-map", "0", "-c", "copy", "-metadata:s:v:0", `rotate=${options.rotateDegrees}`, rotated], {
    stdio: ["ignore", "ignore", "pipe"],
  });
  return rotated;
}
