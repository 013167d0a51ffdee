// Mesh mode for tests: the four services as separate processes (scripts/mesh-processes.ts) on
// free ports, against a fresh database of their own on the real Postgres and a unique NATS name
// prefix on the real NATS. Shared by test/mesh.spec.ts and test/public-api.mesh.spec.ts.
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { after, before } from "node:test";
import { freePort, SERVICES, startMeshProcesses, type MeshProcesses, type ServiceName } from "../scripts/mesh-processes.ts";
import { createTestDatabase, testNatsUrl, uniqueName } from "./harness.ts";

/** How long each process may take to answer SERVING, in milliseconds (tsx, migrations, the model). */
const MESH_START_TIMEOUT_MS = 90_000;

/** Polls grpc.health.v1.Health/Check (Connect JSON) until the server at `url` answers SERVING. */
async function waitServing(url: string, timeoutMs: number): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    try {
      const response = await fetch(`${url}/grpc.health.v1.Health/Check`, { method: "POST", headers: { "content-type": "application/json" }, body: "{}" });
      if (((await response.json()) as { status?: string }).status === "SERVING") return;
    } catch {
      // not listening yet
    }
    if (Date.now() > deadline) throw new Error(`${url} not SERVING within ${timeoutMs} ms`);
    await new Promise((resolve) => setTimeout(resolve, 250));
  }
}

export type MeshBackends = { skip: false; databaseUrl: string; natsUrl: string; dispose(): Promise<void> } | { skip: string };

/**
 * A fresh Postgres database and the NATS URL for one mesh, or why mesh tests skip: four processes
 * can share neither PGlite nor the in-process adapters, so they need DATABASE_URL and NATS_URL.
 */
export async function meshBackends(): Promise<MeshBackends> {
  const natsUrl = await testNatsUrl();
  const database = natsUrl ? await createTestDatabase() : undefined;
  if (!natsUrl || database?.location.kind !== "postgres") {
    await database?.dispose();
    return { skip: "mesh mode needs a real Postgres and NATS shared by four processes: set DATABASE_URL and NATS_URL (CI does)" };
  }
  return { skip: false, databaseUrl: database.location.url, natsUrl, dispose: () => database.dispose() };
}

/**
 * Starts a mesh before the suite's tests and stops it after (call inside a describe that skips
 * when `backends.skip` says so). `env` adds to the process environment; `output` keeps every line
 * the four wrote, printed when they fail to start.
 */
export function meshFixture(backends: MeshBackends, options: { prefix: string; env?: NodeJS.ProcessEnv }) {
  const context = {
    mesh: undefined as unknown as MeshProcesses,
    output: [] as string[],
    dataDir: "",
    /** The mesh's own database, for what no API does (adding a plan). */
    databaseUrl: backends.skip === false ? backends.databaseUrl : "",
  };

  before(async () => {
    if (backends.skip !== false) throw new Error(`the mesh cannot start: ${backends.skip}`);
    context.dataDir = mkdtempSync(join(tmpdir(), `cutline-${options.prefix}-`));
    const ports = Object.fromEntries(await Promise.all(SERVICES.map(async (name) => [name, await freePort()]))) as Record<ServiceName, number>;
    context.mesh = startMeshProcesses({
      env: {
        ...process.env,
        DATABASE_URL: backends.databaseUrl,
        NATS_URL: backends.natsUrl,
        NATS_NAME_PREFIX: uniqueName(options.prefix),
        CUTLINE_DATA_DIR: context.dataDir,
        LOG_LEVEL: "warn",
        ...options.env,
      },
      ports,
      output: (service, line) => context.output.push(`${service}: ${line}`),
    });
    try {
      await Promise.all(SERVICES.map((name) => waitServing(context.mesh.urls[name], MESH_START_TIMEOUT_MS)));
    } catch (error) {
      console.error(context.output.join("\n"));
      throw error;
    }
  });

  after(async () => {
    await context.mesh?.stop();
    if (context.dataDir) rmSync(context.dataDir, { recursive: true, force: true });
    if (backends.skip === false) await backends.dispose();
  });

  return context;
}
