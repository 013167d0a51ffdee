// One ffmpeg child with its pipes: killed at once (SIGKILL) on abort or failure, and known to be
// gone (its 'close' seen) before the caller's promise settles, so no run leaves a process behind.
import { spawn, type ChildProcessByStdio } from "node:child_process";
import type { Readable, Writable } from "node:stream";

/** The last bytes of ffmpeg's stderr kept for the log (bytes). */
const stderrTailBytes = 4096;

export class FfmpegProcess {
  readonly child: ChildProcessByStdio<Writable, Readable, Readable>;
  /** Resolves with the exit code (null when killed by a signal) once the process and its pipes are closed. */
  readonly closed: Promise<number | null>;
  private stderr = "";

  constructor(path: string, args: string[]) {
    this.child = spawn(path, ["-hide_banner", "-nostdin", "-loglevel", "error", ...args], { stdio: ["pipe", "pipe", "pipe"] });
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

  /** What ffmpeg said on stderr (its last few kilobytes). */
  get errorOutput(): string {
    return this.stderr.trim();
  }

  kill(): void {
    if (this.child.exitCode === null && this.child.signalCode === null) this.child.kill("SIGKILL");
  }
}
