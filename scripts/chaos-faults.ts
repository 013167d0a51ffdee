// The faults `npm run chaos` injects, and the promise that each one is undone: a NATS server
// that was stopped is running again when the run ends, whatever ended it.
import { spawn, spawnSync, type ChildProcess } from "node:child_process";
import { mkdtempSync, readdirSync, readFileSync, rmSync } from "node:fs";
import { connect as connectTcp } from "node:net";
import { tmpdir } from "node:os";
import { join } from "node:path";
import pg from "pg";
import { freePort } from "./mesh-processes.ts";

/** The system nats-server's binary and arguments, exactly as the machine's service starts it. */
export const SYSTEM_NATS_BINARY = "/usr/sbin/nats-server";
export const SYSTEM_NATS_ARGUMENTS = ["-a", "127.0.0.1", "-p", "4222", "-js", "-sd", "/var/lib/nats-server"];
const SYSTEM_NATS_PID_FILE = "/run/cutline-chaos-nats-4222.pid";

export const sleep = (ms: number) => new Promise<void>((resolve) => setTimeout(resolve, ms));

/** True once a TCP connection to host:port opens and the server greets (NATS sends INFO first). */
function answers(host: string, port: number, timeoutMs: number): Promise<boolean> {
  return new Promise((resolve) => {
    const socket = connectTcp({ host, port });
    const done = (ok: boolean) => {
      socket.destroy();
      resolve(ok);
    };
    socket.setTimeout(timeoutMs, () => done(false));
    socket.once("data", (data) => done(data.toString("latin1").startsWith("INFO")));
    socket.once("error", () => done(false));
  });
}

export async function waitForPort(host: string, port: number, timeoutMs: number): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!(await answers(host, port, 1000))) {
    if (Date.now() > deadline) throw new Error(`nothing answers on ${host}:${port} after ${timeoutMs} ms`);
    await sleep(100);
  }
}

function processAlive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch {
    return false;
  }
}

/** A NATS server the run may stop and start again; `ensureRunning` is safe to call at any time. */
export interface RestartableNats {
  readonly url: string;
  /** Stops the server (SIGTERM, SIGKILL after 5 s), waits `downMs`, starts it and waits until it answers. */
  restart(downMs: number): Promise<void>;
  /** Starts the server if it is not running and waits until it answers. */
  ensureRunning(): Promise<void>;
  /** Leaves the server running (the system one) or stops it and deletes its store (a private one). */
  dispose(): Promise<void>;
}

async function stopPid(pid: number): Promise<void> {
  try {
    process.kill(pid, "SIGTERM");
  } catch {
    return;
  }
  const deadline = Date.now() + 5000;
  while (processAlive(pid)) {
    if (Date.now() > deadline) {
      try {
        process.kill(pid, "SIGKILL");
      } catch {
        // gone meanwhile
      }
    }
    await sleep(50);
  }
}

/**
 * The machine's nats-server on 127.0.0.1:4222. It is found by its command line (the binary and
 * "-p 4222"), stopped by its pid only, and started again with exactly the service's command.
 */
export function systemNats(): RestartableNats {
  const findPid = (): number | undefined => {
    for (const entry of readdirSync("/proc")) {
      if (!/^\d+$/.test(entry)) continue;
      let commandLine: string[];
      try {
        commandLine = readFileSync(`/proc/${entry}/cmdline`, "latin1").split("\0");
      } catch {
        continue;
      }
      const port = commandLine.indexOf("-p");
      if (commandLine[0]?.endsWith("nats-server") && port > 0 && commandLine[port + 1] === "4222") return Number(entry);
    }
    return undefined;
  };
  const start = () => {
    // The service's own command is `start-stop-daemon --start --oknodo --background --exec <binary> -- <arguments>`.
    // Without a pid file, --oknodo matches ANY running nats-server (a test's private one on another port) and
    // starts nothing, leaving port 4222 dead; the pid file narrows the match to the server this run started.
    const result = spawnSync(
      "start-stop-daemon",
      ["--start", "--oknodo", "--background", "--pidfile", SYSTEM_NATS_PID_FILE, "--make-pidfile", "--exec", SYSTEM_NATS_BINARY, "--", ...SYSTEM_NATS_ARGUMENTS],
      { encoding: "utf8" },
    );
    if (result.status !== 0) throw new Error(`start-stop-daemon failed (${result.status}): ${result.stderr || result.error?.message}`);
  };
  const ensureRunning = async () => {
    if (findPid() === undefined) start();
    try {
      await waitForPort("127.0.0.1", 4222, 15_000);
    } catch {
      // Last resort, so the machine is never left without its server: the same command, detached.
      if (findPid() === undefined) spawn(SYSTEM_NATS_BINARY, SYSTEM_NATS_ARGUMENTS, { detached: true, stdio: "ignore" }).unref();
      await waitForPort("127.0.0.1", 4222, 15_000);
    }
  };
  return {
    url: "nats://127.0.0.1:4222",
    async restart(downMs) {
      const pid = findPid();
      if (pid === undefined) throw new Error("no nats-server with -p 4222 is running");
      try {
        await stopPid(pid);
        await sleep(downMs);
      } finally {
        await ensureRunning();
      }
    },
    ensureRunning,
    dispose: ensureRunning,
  };
}

/**
 * A nats-server of the run's own on a free port with a temporary store, for runs (the CI test)
 * that must not disturb other users of the machine's server.
 */
export async function privateNats(binary = SYSTEM_NATS_BINARY): Promise<RestartableNats> {
  const port = await freePort();
  const storeDirectory = mkdtempSync(join(tmpdir(), "cutline-chaos-nats-"));
  let child: ChildProcess | undefined;
  const start = () => {
    child = spawn(binary, ["-a", "127.0.0.1", "-p", String(port), "-js", "-sd", storeDirectory], { stdio: "ignore" });
    child.once("exit", () => (child = undefined));
  };
  const stop = async () => {
    if (child?.pid !== undefined) await stopPid(child.pid);
    child = undefined;
  };
  const ensureRunning = async () => {
    if (!child) start();
    await waitForPort("127.0.0.1", port, 30_000);
  };
  await ensureRunning();
  return {
    url: `nats://127.0.0.1:${port}`,
    async restart(downMs) {
      try {
        await stop();
        await sleep(downMs);
      } finally {
        await ensureRunning();
      }
    },
    ensureRunning,
    async dispose() {
      await stop();
      rmSync(storeDirectory, { recursive: true, force: true });
    },
  };
}

/** Ends every backend connected to the run's own database (never another database's). */
export async function terminatePostgresBackends(databaseUrl: string): Promise<number> {
  const client = new pg.Client({ connectionString: databaseUrl, application_name: "cutline-chaos" });
  await client.connect();
  try {
    const { rows } = await client.query<{ terminated: boolean }>(
      "select pg_terminate_backend(pid) as terminated from pg_stat_activity where datname = current_database() and pid <> pg_backend_pid()",
    );
    return rows.filter((row) => row.terminated).length;
  } finally {
    await client.end();
  }
}
