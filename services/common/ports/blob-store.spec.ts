import assert from "node:assert/strict";
import { mkdir, mkdtemp, readdir, rm, writeFile } from "node:fs/promises";
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

// Beyond the contract: small blobs just written are read from memory, as copies, within their limits.
test("in-process blob store: a blob just written is read from memory, a copy each time, until deleted", async () => {
  const dataDir = await mkdtemp(join(tmpdir(), "cutline-blobs-"));
  const store = new InProcessBlobStore({ dataDir, log, memoryBytesMax: 1000, memoryBlobBytesMax: 100 });
  await store.put("small", new Uint8Array([1, 2, 3]), { contentType: "image/png" });
  await store.put("large", new Uint8Array(101).fill(7));
  // The files gone behind the store's back: only what it keeps in memory can still be read.
  await rm(join(dataDir, "blobs"), { recursive: true });
  await mkdir(join(dataDir, "blobs"));
  const first = await store.get("small");
  assert.deepEqual(first, { data: new Uint8Array([1, 2, 3]), contentType: "image/png" });
  first!.data.fill(0);
  assert.deepEqual((await store.get("small"))?.data, new Uint8Array([1, 2, 3]));
  assert.equal(await store.get("large"), undefined, "a blob over memoryBlobBytesMax is read from its file only");
  await store.delete("small");
  assert.equal(await store.get("small"), undefined);
  await store.close();
  await rm(dataDir, { recursive: true, force: true });
});

test("in-process blob store: memory keeps the most recently used blobs within memoryBytesMax, and nothing past the TTL", async () => {
  const dataDir = await mkdtemp(join(tmpdir(), "cutline-blobs-"));
  const store = new InProcessBlobStore({ dataDir, log, ttlMs: 300, memoryBytesMax: 250, memoryBlobBytesMax: 100 });
  for (const key of ["a", "b", "c"]) await store.put(key, new Uint8Array(100).fill(key.charCodeAt(0)));
  await rm(join(dataDir, "blobs"), { recursive: true });
  await mkdir(join(dataDir, "blobs"));
  assert.equal(await store.get("a"), undefined, "the least recently used blob left memory");
  assert.equal((await store.get("c"))?.data[0], "c".charCodeAt(0));
  await sleep(350);
  assert.equal(await store.get("c"), undefined, "past its TTL a blob in memory is gone too");
  await store.close();
  await rm(dataDir, { recursive: true, force: true });
});

test("in-process blob store: after a put and a delete of one key overlap, memory and file agree", async () => {
  const dataDir = await mkdtemp(join(tmpdir(), "cutline-blobs-"));
  const store = new InProcessBlobStore({ dataDir, log });
  for (let round = 0; round < 20; round++) {
    await Promise.all([store.put("k", new Uint8Array([round])), store.delete("k")]);
    const fromFile = new InProcessBlobStore({ dataDir, log, memoryBytesMax: 0 });
    assert.deepEqual(await store.get("k"), await fromFile.get("k"), `round ${round}`);
    await fromFile.close();
  }
  await store.close();
  await rm(dataDir, { recursive: true, force: true });
});

test("in-process blob store: after a putFile and a put of one key overlap, memory and file agree", async () => {
  const dataDir = await mkdtemp(join(tmpdir(), "cutline-blobs-"));
  const store = new InProcessBlobStore({ dataDir, log });
  // Large enough that its copy lands after the small put that starts during it.
  const source = join(dataDir, "source.bin");
  await writeFile(source, new Uint8Array(8 * 1024 * 1024).fill(9));
  for (let round = 0; round < 3; round++) {
    await Promise.all([store.putFile("k", source), store.put("k", new Uint8Array([round]))]);
    const fromFile = new InProcessBlobStore({ dataDir, log, memoryBytesMax: 0 });
    const [inMemory, onDisk] = [await store.get("k"), await fromFile.get("k")];
    assert.deepEqual(inMemory?.data.byteLength, onDisk?.data.byteLength, `round ${round}`);
    assert.deepEqual(inMemory?.data.subarray(0, 4), onDisk?.data.subarray(0, 4), `round ${round}`);
    await fromFile.close();
  }
  await store.close();
  await rm(dataDir, { recursive: true, force: true });
});

test("in-process blob store: after two puts of one key overlap, memory and file agree", async () => {
  const dataDir = await mkdtemp(join(tmpdir(), "cutline-blobs-"));
  const store = new InProcessBlobStore({ dataDir, log });
  for (let round = 0; round < 3; round++) {
    // The first, larger put lands after the second, which started later and so is the latest.
    await Promise.all([store.put("k", new Uint8Array(3 * 1024 * 1024).fill(round)), store.put("k", new Uint8Array([round]))]);
    const fromFile = new InProcessBlobStore({ dataDir, log, memoryBytesMax: 0 });
    const [inMemory, onDisk] = [await store.get("k"), await fromFile.get("k")];
    assert.equal(inMemory?.data.byteLength, onDisk?.data.byteLength, `round ${round}`);
    await fromFile.close();
  }
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
