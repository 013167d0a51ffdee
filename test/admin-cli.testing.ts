// The operator's CLI run as an operator runs it: its own process (`node --import tsx
// scripts/admin.ts ...`, what `npm run -s admin --` runs), talking HTTP to a running gateway.
import assert from "node:assert/strict";
import { execFile } from "node:child_process";
import { join } from "node:path";

const root = join(import.meta.dirname, "..");
/** How long one CLI run may take, in milliseconds (tsx compiles it on every start). */
const CLI_TIMEOUT_MS = 60_000;

export interface CliRun {
  code: number;
  stdout: string;
  stderr: string;
}

/**
 * The CLI against the gateway `environment()` names (CUTLINE_URL, and CUTLINE_DATA_DIR or
 * CUTLINE_ADMIN_TOKEN), read at each run: the gateway starts in a `before`. This process's own
 * CUTLINE_ADMIN_TOKEN is never passed on.
 */
export function adminCli(environment: () => Record<string, string>) {
  /** Runs the CLI as its own process (never spawnSync: the gateway answering it may run in this one). */
  function cli(args: string[], overrides: Record<string, string> = {}): Promise<CliRun> {
    const { CUTLINE_ADMIN_TOKEN: _ignored, ...inherited } = process.env;
    const env = { ...inherited, ...environment(), ...overrides };
    return new Promise((resolve) => {
      execFile(process.execPath, ["--import", "tsx", "scripts/admin.ts", ...args], { cwd: root, env, timeout: CLI_TIMEOUT_MS }, (error, stdout, stderr) => {
        resolve({ code: error ? (typeof error.code === "number" ? error.code : 1) : 0, stdout, stderr });
      });
    });
  }

  /** The last line of a --json run, parsed; the run must have succeeded. */
  async function cliJson(args: string[]): Promise<Record<string, any>> {
    const run = await cli([...args, "--json"]);
    assert.equal(run.code, 0, `admin ${args.join(" ")} failed: ${run.stderr}`);
    const lines = run.stdout.trim().split("\n");
    return JSON.parse(lines[lines.length - 1]!);
  }

  return { cli, cliJson };
}
