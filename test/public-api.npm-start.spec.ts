// The operator's first steps on a fresh install: `npm start` (services/main.ts as its own process,
// embedded PGlite and in-process adapters in a temporary CUTLINE_DATA_DIR), then the admin CLI,
// reading the admin token from that data directory, creates an account and grants it credits;
// the account's key then buys a cutout. test/admin-cli.spec.ts covers every command against an
// in-process node; this proves the same path against the process a user actually starts.
import assert from "node:assert/strict";
import { spawn, type ChildProcess } from "node:child_process";
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { createInterface } from "node:readline";
import { after, before, describe, it } from "node:test";
import { freePort } from "../scripts/mesh-processes.ts";
import { adminCli } from "./admin-cli.testing.ts";
import { TESTDATA_PHOTO } from "./public-api.testing.ts";

const root = join(import.meta.dirname, "..");
/** How long `npm start` may take to print its URL, in milliseconds (tsx, PGlite migrations, loading and warming the model). */
const NODE_START_TIMEOUT_MS = 150_000;

/**
 * Starts `services/main.ts` (what `npm start` runs) on embedded defaults, whatever DATABASE_URL and
 * NATS_URL this process has; resolves once it prints its URL, and kills it if it never does.
 */
async function startNodeProcess(dataDir: string, output: string[]): Promise<{ child: ChildProcess; url: string }> {
  const { DATABASE_URL: _database, NATS_URL: _nats, CUTLINE_ADMIN_TOKEN: _token, CUTLINE_API_KEY: _key, ...inherited } = process.env;
  const child = spawn(process.execPath, ["--import", "tsx", join(root, "services", "main.ts")], {
    cwd: root,
    env: { ...inherited, CUTLINE_DATA_DIR: dataDir, PORT: String(await freePort()), METRICS_PORT: "0", LOG_LEVEL: "warn" },
    stdio: ["ignore", "pipe", "pipe"],
  });
  createInterface({ input: child.stderr! }).on("line", (line) => output.push(line));
  try {
    const url = await new Promise<string>((resolve, reject) => {
      setTimeout(() => reject(new Error(`npm start printed no URL within ${NODE_START_TIMEOUT_MS} ms:\n${output.join("\n")}`)), NODE_START_TIMEOUT_MS).unref();
      child.once("exit", (code) => reject(new Error(`npm start exited with ${code}:\n${output.join("\n")}`)));
      createInterface({ input: child.stdout! }).on("line", (line) => {
        output.push(line);
        const listening = /^gateway listening at (\S+)$/.exec(line);
        if (listening) resolve(listening[1]!);
      });
    });
    return { child, url };
  } catch (error) {
    child.kill("SIGKILL");
    throw error;
  }
}

describe("admin CLI against a single node running as its own process (npm start)", () => {
  const dataDir = mkdtempSync(join(tmpdir(), "cutline-npm-start-"));
  const output: string[] = [];
  let node: { child: ChildProcess; url: string } | undefined;
  // No CUTLINE_ADMIN_TOKEN: the CLI reads the one the gateway generated in the data directory.
  const { cliJson } = adminCli(() => ({ CUTLINE_URL: node!.url, CUTLINE_DATA_DIR: dataDir }));

  before(async () => {
    node = await startNodeProcess(dataDir, output);
  });

  after(async () => {
    if (node) {
      const exited = new Promise<number | null>((resolve) => node!.child.once("exit", resolve));
      node.child.kill("SIGTERM");
      assert.equal(await exited, 0, `npm start drains to a clean exit on SIGTERM:\n${output.slice(-20).join("\n")}`);
    }
    rmSync(dataDir, { recursive: true, force: true });
  });

  it("create-account and grant through the CLI; that account's key then works and is charged", async () => {
    const created = await cliJson(["create-account", "--plan", "free", "--account", "walk-in", "--credits", "2"]);
    assert.equal(created.accountId, "walk-in");
    assert.match(created.apiKey, /^cl_/);
    assert.deepEqual(await cliJson(["grant", "--account", "walk-in", "--credits", "1.5"]), { accountId: "walk-in", availableCredits: 3.5 });
    const form = new FormData();
    form.append("image_file", new Blob([TESTDATA_PHOTO]), "photo.heic");
    const response = await fetch(`${node!.url}/v1/matting`, { method: "POST", headers: { "x-api-key": created.apiKey }, body: form });
    assert.equal(response.status, 200, await response.clone().text());
    assert.equal(response.headers.get("content-type"), "image/png");
    await response.arrayBuffer();
    assert.deepEqual([response.headers.get("x-credits-charged"), response.headers.get("x-credits-remaining")], ["0.5", "3"]);
    assert.deepEqual(await cliJson(["balance", "--account", "walk-in"]), { accountId: "walk-in", availableCredits: 3, heldCredits: 0 });
  });
});
