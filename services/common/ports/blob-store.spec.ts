import assert from "node:assert/strict";
import { mkdtemp, readdir, rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { test } from "node:test";
import { connect } from "@nats-io/transport-node";
import { pino } from "pino";
import { testNatsUrl, uniqueName } from "../../../test/harness.ts";
import { InProcessBlobStore } from "../adapters/blob-store.in-process.ts";
import { NatsBlobStore } from "../adapters/blob-store.nats.ts";
import { describeBlobStoreContract } from "./blob-store.contract.ts";
import { sleep } from "./contract-support.ts";

const log = pino({ level: process.env.TEST_LOG_LEVEL ?? "silent" });

describeBlobStoreContract("in-process", async (limits) => {
  const dataDir = await mkdtemp(join(tmpdir(), "cutline-blobs-"));
  const blobStore = new InProcessBlobStore({ ...limits, dataDir, log });
  return {
    blobStore,
    async cleanUp() {
      await blobStore.close();
      await rm(dataDir, { recursive: true, force: true });
    },
  };
});

// Beyond the contract: expired files must not pile up when nobody asks for them again.
test("in-process blob store: the sweep deletes expired files", async () => {
  const dataDir = await mkdtemp(join(tmpdir(), "cutline-blobs-"));
  const store = new InProcessBlobStore({ dataDir, ttlMs: 200, log });
  await store.put("a", new Uint8Array([1]));
  await store.put("b", new Uint8Array([2]));
  assert.equal(await store.sweep(), 0);
  await sleep(300);
  assert.equal(await store.sweep(), 2);
  assert.deepEqual(await readdir(join(dataDir, "blobs")), []);
  await store.close();
  await rm(dataDir, { recursive: true, force: true });
});

const natsUrl = await testNatsUrl();
describeBlobStoreContract(
  "nats",
  async (limits) => {
    const connection = await connect({ servers: natsUrl! });
    const blobStore = await NatsBlobStore.open({ ...limits, connection, namePrefix: uniqueName("test"), log });
    return {
      blobStore,
      async cleanUp() {
        await blobStore.destroy();
        await connection.close();
      },
    };
  },
  { skip: natsUrl === undefined ? "no NATS server: set NATS_URL (or run Docker) to run the JetStream adapter" : undefined },
);
