import { mkdtemp, rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { connect } from "@nats-io/transport-node";
import { pino } from "pino";
import { testNatsUrl, uniqueName } from "../../../test/harness.ts";
import { InProcessWorkQueue } from "../adapters/work-queue.in-process.ts";
import { NatsWorkQueue } from "../adapters/work-queue.nats.ts";
import { describeWorkQueueContract } from "./work-queue.contract.ts";

const log = pino({ level: process.env.TEST_LOG_LEVEL ?? "silent" });

describeWorkQueueContract("in-process", async (limits) => {
  const dataDir = await mkdtemp(join(tmpdir(), "cutline-work-"));
  const workQueue = new InProcessWorkQueue({ ...limits, dataDir, log });
  return {
    workQueue,
    async cleanUp() {
      await workQueue.close();
      await rm(dataDir, { recursive: true, force: true });
    },
  };
});

const natsUrl = await testNatsUrl();
describeWorkQueueContract(
  "nats",
  async (limits) => {
    const connection = await connect({ servers: natsUrl! });
    const workQueue = await NatsWorkQueue.open({ ...limits, connection, namePrefix: uniqueName("test"), log });
    return {
      workQueue,
      async cleanUp() {
        await workQueue.destroy();
        await connection.close();
      },
    };
  },
  { skip: natsUrl === undefined ? "no NATS server: set NATS_URL (or run Docker) to run the JetStream adapter" : undefined },
);
