import { mkdtemp, rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
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
