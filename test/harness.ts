// Test backends, picked once per process and printed: DATABASE_URL / NATS_URL when set; else
// testcontainers where a Docker engine answers; else the embedded defaults (PGlite, in-process
// adapters) so `npm test` passes on a fresh machine too.
import { randomBytes } from "node:crypto";
import { mkdtempSync, rmSync } from "node:fs";
import http from "node:http";
import { tmpdir } from "node:os";
import { join } from "node:path";
import pg from "pg";
import type { DatabaseLocation } from "../services/common/database.ts";

type Backend<T> = { label: string; value: T; stop?: () => Promise<void> };

let postgresServer: Promise<Backend<string | undefined>> | undefined;
let natsServer: Promise<Backend<string | undefined>> | undefined;

async function dockerAvailable(): Promise<boolean> {
  try {
    const { getContainerRuntimeClient } = await import("testcontainers");
    await getContainerRuntimeClient();
    return true;
  } catch {
    return false;
  }
}

function pickPostgres(): Promise<Backend<string | undefined>> {
  postgresServer ??= (async () => {
    const url = process.env.DATABASE_URL;
    let backend: Backend<string | undefined>;
    if (url) {
      backend = { label: `DATABASE_URL (${new URL(url).host})`, value: url };
    } else if (await dockerAvailable()) {
      const { GenericContainer, Wait } = await import("testcontainers");
      const container = await new GenericContainer("postgres:16-alpine")
        .withEnvironment({ POSTGRES_HOST_AUTH_METHOD: "trust" })
        .withExposedPorts(5432)
        .withWaitStrategy(Wait.forLogMessage(/database system is ready to accept connections/, 2))
        .start();
      backend = {
        label: "testcontainers postgres:16-alpine",
        value: `postgres://postgres@${container.getHost()}:${container.getMappedPort(5432)}/postgres`,
        stop: async () => void (await container.stop()),
      };
    } else {
      backend = { label: "embedded PGlite (set DATABASE_URL to test against a real Postgres)", value: undefined };
    }
    console.log(`# test harness: postgres = ${backend.label}`);
    return backend;
  })();
  return postgresServer;
}

function pickNats(): Promise<Backend<string | undefined>> {
  natsServer ??= (async () => {
    const url = process.env.NATS_URL;
    let backend: Backend<string | undefined>;
    if (url) {
      backend = { label: `NATS_URL (${url})`, value: url };
    } else if (await dockerAvailable()) {
      const { GenericContainer } = await import("testcontainers");
      const container = await new GenericContainer("nats:2.10-alpine").withCommand(["-js"]).withExposedPorts(4222).start();
      backend = {
        label: "testcontainers nats:2.10-alpine",
        value: `nats://${container.getHost()}:${container.getMappedPort(4222)}`,
        stop: async () => void (await container.stop()),
      };
    } else {
      backend = { label: "in-process adapters (set NATS_URL to test against a real NATS JetStream)", value: undefined };
    }
    console.log(`# test harness: nats = ${backend.label}`);
    return backend;
  })();
  return natsServer;
}

export interface TestDatabase {
  readonly location: DatabaseLocation;
  /** Drops the database (or deletes the PGlite directory). */
  dispose(): Promise<void>;
}

/** A fresh, empty database of its own, so test files can run in parallel. */
export async function createTestDatabase(): Promise<TestDatabase> {
  const server = await pickPostgres();
  if (server.value === undefined) {
    const directory = mkdtempSync(join(tmpdir(), "cutline-pglite-"));
    return {
      location: { kind: "pglite", directory },
      async dispose() {
        rmSync(directory, { recursive: true, force: true });
      },
    };
  }
  const name = `cutline_test_${randomBytes(6).toString("hex")}`;
  const admin = new pg.Client({ connectionString: server.value });
  await admin.connect();
  await admin.query(`CREATE DATABASE ${name}`);
  await admin.end();
  const url = new URL(server.value);
  url.pathname = `/${name}`;
  return {
    location: { kind: "postgres", url: url.toString() },
    async dispose() {
      const client = new pg.Client({ connectionString: server.value });
      await client.connect();
      await client.query(`DROP DATABASE IF EXISTS ${name} WITH (FORCE)`);
      await client.end();
    },
  };
}

/** The NATS server URL for tests, or undefined when tests run on the in-process adapters. */
export async function testNatsUrl(): Promise<string | undefined> {
  return (await pickNats()).value;
}

/** A unique prefix for stream, bucket and consumer names so parallel tests never share one. */
export function uniqueName(prefix: string): string {
  return `${prefix}_${randomBytes(5).toString("hex")}`;
}

/** The shared evaluation data beside the checkout, or undefined (tests then skip, saying why). */
export const SHARED_DIRECTORY = join(import.meta.dirname, "..", "..", "shared");

/** POSTs only the request head, declaring `contentLength`, and waits for the answer without sending a body byte. */
export function postHeadersOnly(url: string, headers: Record<string, string>, contentLength: number): Promise<{ status: number; headers: http.IncomingHttpHeaders; body: string }> {
  return new Promise((resolve, reject) => {
    const request = http.request(url, { method: "POST", headers: { ...headers, "content-length": String(contentLength) } }, (response) => {
      let body = "";
      response.setEncoding("utf8");
      response.on("data", (chunk: string) => (body += chunk));
      response.on("end", () => resolve({ status: response.statusCode ?? 0, headers: response.headers, body }));
    });
    request.on("error", reject);
    request.flushHeaders();
  });
}
