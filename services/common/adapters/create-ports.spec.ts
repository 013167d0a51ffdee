import assert from "node:assert/strict";
import { mkdtemp, rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { describe, test } from "node:test";
import { jetstreamManager } from "@nats-io/jetstream";
import { connect } from "@nats-io/transport-node";
import { pino } from "pino";
import { testNatsUrl, uniqueName } from "../../../test/harness.ts";
import { eventually } from "../ports/contract-support.ts";
import { QueueFullError } from "../ports/work-queue.ts";
import { deleteStream } from "./jetstream-setup.ts";
import { createPorts, NatsBlobStore, NatsEventBus, NatsWorkQueue, type Ports } from "./index.ts";

const log = pino({ level: process.env.TEST_LOG_LEVEL ?? "silent" });
const natsUrl = await testNatsUrl();

// What every service does with its ports: a job through the queue, an event, a blob.
async function exercise(ports: Ports): Promise<void> {
  const received: string[] = [];
  const consumer = ports.workQueue.consume(async (message) => {
    received.push(message.id);
    await message.ack();
  });
  await ports.workQueue.enqueue(new Uint8Array([1]), { id: "job-1" });
  await eventually("the job", () => received.length === 1);
  await consumer.drain();
  const events: string[] = [];
  const subscription = ports.eventBus.subscribe(async (event) => void events.push(event.subject), { durableName: "t", subjectFilter: "job.*" });
  await ports.eventBus.publish("job.succeeded", new Uint8Array());
  await eventually("the event", () => events.length === 1);
  await subscription.drain();
  await ports.blobStore.put("k", new Uint8Array([7]), { contentType: "image/png" });
  assert.deepEqual(await ports.blobStore.get("k"), { data: new Uint8Array([7]), contentType: "image/png" });
}

test("createPorts without natsUrl opens working in-process ports under the data directory; close shuts them", async () => {
  const dataDir = await mkdtemp(join(tmpdir(), "cutline-ports-"));
  const ports = await createPorts({ dataDir, queueLengthMax: 1, log });
  assert.equal(ports.kind, "in-process");
  await exercise(ports);
  await ports.workQueue.enqueue(new Uint8Array([2]), { id: "job-2" });
  await assert.rejects(ports.workQueue.enqueue(new Uint8Array([3]), { id: "job-3" }), QueueFullError, "the limits given are applied");
  await ports.close();
  await ports.close(); // a second close is harmless

  // Blobs are files under the data directory; the queue lived in the closed ports' memory.
  const reopened = await createPorts({ dataDir, log });
  assert.deepEqual(await reopened.blobStore.get("k"), { data: new Uint8Array([7]), contentType: "image/png" });
  assert.equal(await reopened.workQueue.depth(), 0);
  await reopened.close();
  await rm(dataDir, { recursive: true, force: true });
});

describe("createPorts with NATS", { skip: natsUrl === undefined ? "no NATS server: set NATS_URL (or run Docker)" : undefined }, () => {
  test("services starting together create the streams and bucket once, whoever comes first", async () => {
    const namePrefix = uniqueName("test");
    const connections = await Promise.all([1, 2, 3].map(() => connect({ servers: natsUrl! })));
    const opened = await Promise.all(
      connections.map(async (connection) => ({
        workQueue: await NatsWorkQueue.open({ connection, namePrefix, queueLengthMax: 5, log }),
        eventBus: await NatsEventBus.open({ connection, namePrefix, log }),
        blobStore: await NatsBlobStore.open({ connection, namePrefix, ttlMs: 60_000, log }),
      })),
    );
    await opened[0]!.workQueue.enqueue(new Uint8Array([1]), { id: "a" });
    assert.equal(await opened[2]!.workQueue.depth(), 1);
    // A later start with other limits updates the stream in place.
    const resized = await NatsWorkQueue.open({ connection: connections[0]!, namePrefix, queueLengthMax: 1, log });
    await assert.rejects(resized.enqueue(new Uint8Array([2]), { id: "b" }), QueueFullError);
    for (const ports of opened) await Promise.all([ports.workQueue.close(), ports.eventBus.close(), ports.blobStore.close()]);
    await resized.close();
    const jsm = await jetstreamManager(connections[0]!);
    for (const stream of [`${namePrefix}_work`, `${namePrefix}_events`, `OBJ_${namePrefix}_blobs`]) await deleteStream(jsm, stream);
    await Promise.all(connections.map((connection) => connection.close()));
  });

  test("createPorts with natsUrl opens working NATS ports; close shuts them and the connection", async () => {
    const namePrefix = uniqueName("test");
    const ports = await createPorts({ natsUrl, namePrefix, dataDir: "/nonexistent", blobTtlMs: 60_000, log });
    assert.equal(ports.kind, "nats");
    await exercise(ports);
    await ports.close();
    await ports.close(); // a second close is harmless
    await assert.rejects(ports.workQueue.enqueue(new Uint8Array([2]), { id: "job-2" }), "the connection is closed with the ports");
    const connection = await connect({ servers: natsUrl! });
    const jsm = await jetstreamManager(connection);
    for (const stream of [`${namePrefix}_work`, `${namePrefix}_events`, `OBJ_${namePrefix}_blobs`]) await deleteStream(jsm, stream);
    await connection.close();
  });

  test("every stream, consumer and bucket is created with the configured replica count; a single server refuses 3 by name", async () => {
    const namePrefix = uniqueName("test");
    const ports = await createPorts({ natsUrl, namePrefix, dataDir: "/nonexistent", replicas: 1, log });
    const connection = await connect({ servers: natsUrl! });
    const jsm = await jetstreamManager(connection);
    const streams = [`${namePrefix}_work`, `${namePrefix}_events`, `${namePrefix}_dead_letters`, `OBJ_${namePrefix}_blobs`];
    try {
      for (const stream of streams) assert.equal((await jsm.streams.info(stream)).config.num_replicas, 1, stream);
      for (const lane of ["high", "normal"]) assert.equal((await jsm.consumers.info(`${namePrefix}_work`, lane)).config.num_replicas, 1, lane);
      await ports.close();
      // The test server is one node: 3 replicas cannot be placed, and the error says which stream and what to set.
      const three = uniqueName("test");
      await assert.rejects(createPorts({ natsUrl, namePrefix: three, dataDir: "/nonexistent", replicas: 3, log }), (error: Error) => {
        assert.match(error.message, /cannot have 3 replicas/);
        assert.match(error.message, /NATS_REPLICAS/);
        return true;
      });
      await assert.rejects(createPorts({ natsUrl, namePrefix: three, dataDir: "/nonexistent", replicas: 2, log }), /replicas must be 1, 3 or 5/);
      for (const stream of [`${three}_work`, `${three}_events`, `${three}_dead_letters`, `OBJ_${three}_blobs`]) await deleteStream(jsm, stream);
    } finally {
      for (const stream of streams) await deleteStream(jsm, stream);
      await connection.close();
    }
  });
});
