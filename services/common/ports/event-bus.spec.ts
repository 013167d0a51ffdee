import assert from "node:assert/strict";
import { mkdtemp, readFile, rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { test } from "node:test";
import { connect, type NatsConnection } from "@nats-io/transport-node";
import { pino } from "pino";
import { testNatsUrl, uniqueName } from "../../../test/harness.ts";
import { InProcessEventBus } from "../adapters/event-bus.in-process.ts";
import { NatsEventBus } from "../adapters/event-bus.nats.ts";
import { describeEventBusContract } from "./event-bus.contract.ts";

const log = pino({ level: process.env.TEST_LOG_LEVEL ?? "silent" });

describeEventBusContract("in-process", async (limits) => {
  const dataDir = await mkdtemp(join(tmpdir(), "cutline-events-"));
  const opened: InProcessEventBus[] = [];
  return {
    async open() {
      const bus = new InProcessEventBus({ ...limits, dataDir, log });
      opened.push(bus);
      return bus;
    },
    async cleanUp() {
      await Promise.all(opened.map((bus) => bus.close()));
      await rm(dataDir, { recursive: true, force: true });
    },
  };
});

// Beyond the contract: publishes that overlap share one append, and none is lost or reordered.
test("in-process event bus: overlapping publishes are all kept, in order, across a restart", async () => {
  const dataDir = await mkdtemp(join(tmpdir(), "cutline-events-"));
  const count = 200;
  const first = new InProcessEventBus({ dataDir, log });
  await Promise.all(Array.from({ length: count }, (_, index) => first.publish("job.succeeded", new TextEncoder().encode(String(index)))));
  await first.close();
  const second = new InProcessEventBus({ dataDir, log });
  const seen: string[] = [];
  const all = new Promise<void>((resolve) => {
    second.subscribe(
      async (event) => {
        seen.push(new TextDecoder().decode(event.data));
        if (seen.length === count) resolve();
      },
      { durableName: "reader", subjectFilter: "job.*" },
    );
  });
  await all;
  assert.deepEqual(seen, Array.from({ length: count }, (_, index) => String(index)));
  // The log is appended to after the restart too.
  await second.publish("job.failed", new TextEncoder().encode("late"));
  await second.close();
  const lines = (await readFile(join(dataDir, "events", "events.jsonl"), "utf8")).trim().split("\n");
  assert.equal(lines.length, count + 1);
  await rm(dataDir, { recursive: true, force: true });
});

const natsUrl = await testNatsUrl();
describeEventBusContract(
  "nats",
  async (limits) => {
    const namePrefix = uniqueName("test");
    const opened: { bus: NatsEventBus; connection: NatsConnection }[] = [];
    return {
      async open() {
        // A connection per open, as a restarted service would have.
        const connection = await connect({ servers: natsUrl! });
        const bus = await NatsEventBus.open({ ...limits, connection, namePrefix, log });
        opened.push({ bus, connection });
        return bus;
      },
      async cleanUp() {
        for (const { bus } of opened) await bus.close();
        await opened.at(-1)?.bus.destroy();
        for (const { connection } of opened) await connection.close();
      },
    };
  },
  { skip: natsUrl === undefined ? "no NATS server: set NATS_URL (or run Docker) to run the JetStream adapter" : undefined },
);
