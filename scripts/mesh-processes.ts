import { spawn, type ChildProcess } from "node:child_process";
import { randomBytes } from "node:crypto";
import { createServer } from "node:net";
import { createInterface } from "node:readline";
import { join } from "node:path";

export const SERVICES = ["billing", "orchestrator", "inference", "gateway"] as const;
export type ServiceName = (typeof SERVICES)[number];

export interface MeshProcesses {
  readonly urls: Record<ServiceName, string>;
  readonly children: Record<ServiceName, ChildProcess>;
  /** The CUTLINE_SERVICE_TOKEN the four share: the one in `env`, else one generated for this mesh. */
  readonly serviceToken: string;
  /** SIGTERM to all; resolves with each exit code once they have exited. */
  stop(): Promise<Record<ServiceName, number | null>>;
}

const root = join(import.meta.dirname, "..");

/** A port free on 127.0.0.1 now (the OS picks it), for a process about to listen on it. */
export async function freePort(): Promise<number> {
  const server = createServer();
  await new Promise<void>((resolve) => server.listen(0, "127.0.0.1", resolve));
  const { port } = server.address() as { port: number };
  await new Promise((resolve) => server.close(resolve));
  return port;
}

/**
 * Starts the four services as separate processes, each with its own port, talking gRPC to each
 * other and sharing DATABASE_URL and NATS_URL, exactly as the mesh runs in production. Each
 * main refuses to start without CUTLINE_SERVICE_TOKEN; without one in `env`, a random token is
 * generated for this mesh (a local mesh has no secret to keep across runs).
 */
export function startMeshProcesses(options: {
  env: NodeJS.ProcessEnv;
  ports: Record<ServiceName, number>;
  output?: (service: ServiceName, line: string) => void;
}): MeshProcesses {
  const urls = Object.fromEntries(SERVICES.map((name) => [name, `http://127.0.0.1:${options.ports[name]}`])) as Record<ServiceName, string>;
  const serviceToken = options.env.CUTLINE_SERVICE_TOKEN || randomBytes(32).toString("hex");
  // The orchestrator signs result URLs in webhooks with it and the gateway verifies them: one per mesh.
  const resultUrlKey = options.env.CUTLINE_RESULT_URL_KEY || randomBytes(32).toString("hex");
  const children = {} as Record<ServiceName, ChildProcess>;
  const exits = {} as Record<ServiceName, Promise<number | null>>;
  for (const name of SERVICES) {
    const child = spawn(process.execPath, ["--import", "tsx", join(root, "services", name, "main.ts")], {
      cwd: root,
      env: {
        ...options.env,
        PORT: String(options.ports[name]),
        BILLING_URL: urls.billing,
        ORCHESTRATOR_URL: urls.orchestrator,
        INFERENCE_URL: urls.inference,
        CUTLINE_SERVICE_TOKEN: serviceToken,
        CUTLINE_RESULT_URL_KEY: resultUrlKey,
        CUTLINE_PUBLIC_URL: options.env.CUTLINE_PUBLIC_URL || urls.gateway,
        // Four processes on one host cannot share the metrics port's default: each picks a free one.
        METRICS_PORT: "0",
      },
      stdio: ["ignore", "pipe", "pipe"],
    });
    children[name] = child;
    exits[name] = new Promise((resolve) => child.once("exit", (code) => resolve(code)));
    for (const stream of [child.stdout, child.stderr]) {
      createInterface({ input: stream! }).on("line", (line) => options.output?.(name, line));
    }
  }
  return {
    urls,
    children,
    serviceToken,
    async stop() {
      for (const name of SERVICES) children[name].kill("SIGTERM");
      const codes = await Promise.all(SERVICES.map((name) => exits[name]));
      return Object.fromEntries(SERVICES.map((name, index) => [name, codes[index] ?? null])) as Record<ServiceName, number | null>;
    },
  };
}
