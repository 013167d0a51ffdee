// Which ffmpeg and ffprobe the services run. The gateway probes uploads before quoting and
// inference decodes and encodes, so both resolve the binaries the same way, once per process.
import { execFileSync } from "node:child_process";
import { existsSync } from "node:fs";
import { createRequire } from "node:module";
import type { Logger } from "pino";
import { optionalText } from "../config.loader.ts";

/** The variables naming the binaries; spread into the spec of each service that runs them. */
export const mediaBinariesConfigSpec = {
  FFMPEG_PATH: optionalText("Path of the ffmpeg binary; unset: ffmpeg-static where its binary was downloaded, else @ffmpeg-installer/ffmpeg."),
  FFPROBE_PATH: optionalText("Path of the ffprobe binary; unset: @ffprobe-installer/ffprobe, else videos are probed with ffmpeg itself."),
} as const;

export interface MediaBinariesSettings {
  FFMPEG_PATH?: string | undefined;
  FFPROBE_PATH?: string | undefined;
}

export interface MediaBinary {
  path: string;
  /** Where it came from: the variable or the npm package. */
  source: string;
  /** The first line of `-version`, e.g. "ffmpeg version N-47683-g0e8eb07980-static". */
  version: string;
}

export interface MediaBinaries {
  ffmpeg: MediaBinary;
  /** Undefined when no ffprobe is at hand: probeVideo then reads ffmpeg's own stream report. */
  ffprobe: MediaBinary | undefined;
}

const require = createRequire(import.meta.url);
/** Time `-version` may take (milliseconds); a binary that hangs there is not usable. */
const versionTimeoutMs = 10_000;

/** The binary an npm package ships, or undefined when the package or its binary is absent. */
function packagedBinary(name: string, read: (module: unknown) => string | undefined): string | undefined {
  try {
    const path = read(require(name));
    return path !== undefined && path !== "" && existsSync(path) ? path : undefined;
  } catch {
    return undefined;
  }
}

function versionOf(path: string): string {
  const output = execFileSync(path, ["-hide_banner", "-version"], { encoding: "utf8", timeout: versionTimeoutMs, stdio: ["ignore", "pipe", "pipe"] });
  return output.split("\n")[0]!.trim();
}

function describe(path: string, source: string): MediaBinary {
  return { path, source, version: versionOf(path) };
}

function resolveFfmpeg(settings: MediaBinariesSettings): MediaBinary {
  if (settings.FFMPEG_PATH) return describe(settings.FFMPEG_PATH, "FFMPEG_PATH");
  // ffmpeg-static is an optional dependency whose install downloads the binary: the package can
  // be present without it (offline builds), so its path is checked, not trusted.
  const fromStatic = packagedBinary("ffmpeg-static", (module) => (typeof module === "string" ? module : undefined));
  if (fromStatic !== undefined) return describe(fromStatic, "ffmpeg-static");
  const fromInstaller = packagedBinary("@ffmpeg-installer/ffmpeg", (module) => (module as { path?: string }).path);
  if (fromInstaller !== undefined) return describe(fromInstaller, "@ffmpeg-installer/ffmpeg");
  throw new Error("no ffmpeg: set FFMPEG_PATH, or install ffmpeg-static or @ffmpeg-installer/ffmpeg");
}

function resolveFfprobe(settings: MediaBinariesSettings): MediaBinary | undefined {
  if (settings.FFPROBE_PATH) return describe(settings.FFPROBE_PATH, "FFPROBE_PATH");
  const fromInstaller = packagedBinary("@ffprobe-installer/ffprobe", (module) => (module as { path?: string }).path);
  return fromInstaller === undefined ? undefined : describe(fromInstaller, "@ffprobe-installer/ffprobe");
}

const resolved = new Map<string, MediaBinaries>();

/**
 * ffmpeg (FFMPEG_PATH, then ffmpeg-static where its binary is present, then
 * @ffmpeg-installer/ffmpeg) and ffprobe (FFPROBE_PATH, then @ffprobe-installer/ffprobe, else
 * none). Resolved and logged once per process and settings; throws when no ffmpeg can run.
 */
export function mediaBinaries(settings: MediaBinariesSettings = {}, log?: Logger): MediaBinaries {
  const key = `${settings.FFMPEG_PATH ?? ""}\u0000${settings.FFPROBE_PATH ?? ""}`;
  const known = resolved.get(key);
  if (known !== undefined) return known;
  const binaries = { ffmpeg: resolveFfmpeg(settings), ffprobe: resolveFfprobe(settings) };
  resolved.set(key, binaries);
  log?.info(
    {
      ffmpeg: { path: binaries.ffmpeg.path, source: binaries.ffmpeg.source, version: binaries.ffmpeg.version },
      ffprobe: binaries.ffprobe === undefined ? "none: probing with ffmpeg" : { path: binaries.ffprobe.path, source: binaries.ffprobe.source, version: binaries.ffprobe.version },
    },
    "video binaries resolved",
  );
  return binaries;
}
