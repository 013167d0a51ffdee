// One ffmpeg (or ffprobe) child with its pipes: killed at once (SIGKILL) on abort, timeout or
// failure, and known to be gone (its 'close' seen) before the caller's promise settles, so no run
// leaves a process behind. The video pipeline streams frames through it; the probe runs it to
// its end with a deadline and capped output (`runToEnd`).
import { spawn, type ChildProcessByStdio } from "node:child_process";
import { setPriority } from "node:os";
import type { Readable, Writable } from "node:stream";

/** The last bytes of stderr kept for the log (bytes). */
const stderrTailBytes = 4096;

/** Arguments every ffmpeg the pipeline runs starts with: no banner, no keyboard, errors only. */
export const FFMPEG_QUIET_ARGS = ["-hide_banner", "-nostdin", "-loglevel", "error"] as const;

export class FfmpegProcess {
  readonly child: ChildProcessByStdio<Writable, Readable, Readable>;
  /** Resolves with the exit code (null when killed by a signal) once the process and its pipes are closed. */
  readonly closed: Promise<number | null>;
  private stderr = "";

  /**
   * Runs `path` with FFMPEG_QUIET_ARGS then `args`; `raw` runs `args` alone (ffprobe, or a report
   * on stderr). `niceness` (1–19) lowers the process's CPU priority: where it is not the stage
   * that bounds the throughput, it takes the CPU the bounding stage leaves.
   */
  constructor(path: string, args: string[], options: { raw?: boolean; niceness?: number } = {}) {
    this.child = spawn(path, options.raw ? args : [...FFMPEG_QUIET_ARGS, ...args], { stdio: ["pipe", "pipe", "pipe"] });
    if (options.niceness !== undefined && this.child.pid !== undefined) {
      try {
        setPriority(this.child.pid, options.niceness);
      } catch {
        // Gone already (it failed at once: 'close' says so), or not allowed here: it runs at our priority.
      }
    }
    this.child.stderr.setEncoding("utf8");
    this.child.stderr.on("data", (chunk: string) => {
      this.stderr = (this.stderr + chunk).slice(-stderrTailBytes);
    });
    // A write to a pipe the process closed (it failed, or was killed) is reported by 'close' instead.
    this.child.stdin.on("error", () => {});
    this.closed = new Promise((resolve) => {
      this.child.on("error", (error) => {
        this.stderr += `\n${error.message}`;
      });
      this.child.on("close", (code) => resolve(code));
    });
  }

  get pid(): number | undefined {
    return this.child.pid;
  }

  /** What the process said on stderr (its last few kilobytes). */
  get errorOutput(): string {
    return this.stderr.trim();
  }

  kill(): void {
    if (this.child.exitCode === null && this.child.signalCode === null) this.child.kill("SIGKILL");
  }
}

export interface RunToEndOptions {
  /** Killed past this (milliseconds); the run then rejects with `onTimeout()`. */
  timeoutMs: number;
  /** Killed on abort; the run rejects with the signal's reason. */
  signal: AbortSignal | undefined;
  /** Most bytes of stdout and stderr together (bytes); past it the process is killed and the run rejects with `onTooLarge()`. */
  outputBytesMax: number;
  onTimeout(): Error;
  onTooLarge(): Error;
}

export interface RunOutput {
  stdout: string;
  stderr: string;
  exitCode: number | null;
}

/** Runs `path args` as is (no FFMPEG_QUIET_ARGS) to its end and collects its output, within a deadline and an output cap. */
export async function runToEnd(path: string, args: string[], options: RunToEndOptions): Promise<RunOutput> {
  options.signal?.throwIfAborted();
  const process = new FfmpegProcess(path, args, { raw: true });
  process.child.stdin.end();
  process.child.stderr.removeAllListeners("data");
  const out: Buffer[] = [];
  const err: Buffer[] = [];
  let bytes = 0;
  let failure: Error | undefined;
  let spawnError: Error | undefined;
  const stop = (error: Error) => {
    failure ??= error;
    process.kill();
  };
  const collect = (chunks: Buffer[]) => (chunk: Buffer | string) => {
    const buffer = typeof chunk === "string" ? Buffer.from(chunk) : chunk;
    bytes += buffer.length;
    if (bytes > options.outputBytesMax) stop(options.onTooLarge());
    else chunks.push(buffer);
  };
  process.child.stdout.on("data", collect(out));
  process.child.stderr.on("data", collect(err));
  process.child.once("error", (error) => (spawnError = error));
  const timer = setTimeout(() => stop(options.onTimeout()), options.timeoutMs);
  const onAbort = () => stop(options.signal!.reason instanceof Error ? options.signal!.reason : new Error("aborted"));
  options.signal?.addEventListener("abort", onAbort, { once: true });
  try {
    const exitCode = await process.closed;
    if (failure !== undefined) throw failure;
    if (spawnError !== undefined) throw spawnError;
    return { stdout: Buffer.concat(out).toString("utf8"), stderr: Buffer.concat(err).toString("utf8"), exitCode };
  } finally {
    clearTimeout(timer);
    options.signal?.removeEventListener("abort", onAbort);
  }
}
