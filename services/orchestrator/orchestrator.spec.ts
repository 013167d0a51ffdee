// A single node restarts with jobs unfinished: its in-memory queue lost their tasks, so the
// orchestrator puts them back at start instead of after they go quiet. Real billing (test
// database) and in-process ports; the "restart" is a new orchestrator on a new, empty queue.
import { createClient, createRouterTransport } from "@connectrpc/connect";
import assert from "node:assert/strict";
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { after, before, describe, it } from "node:test";
import type { Kysely } from "kysely";
import pino from "pino";
import { createBillingFixture, type BillingFixture } from "../billing/billing.testing.ts";
import { InProcessBlobStore, InProcessEventBus, InProcessWorkQueue } from "../common/adapters/index.ts";
import { BillingService, Pool } from "../common/gen/cutline/billing/v1/billing_service_pb.ts";
import { createOrchestrator } from "./index.ts";

const log = pino({ level: "silent" });

describe("orchestrator restart", () => {
  let billing: BillingFixture;
  let blobs: InProcessBlobStore;
  let eventBus: InProcessEventBus;
  const dataDir = mkdtempSync(join(tmpdir(), "cutline-orchestrator-restart-"));
  const billingClient = () => createClient(BillingService, createRouterTransport((router) => router.service(BillingService, billing.handlers)));

  before(async () => {
    billing = await createBillingFixture();
    blobs = new InProcessBlobStore({ dataDir, log });
    eventBus = new InProcessEventBus({ dataDir, log });
  });

  after(async () => {
    await Promise.all([blobs?.close(), eventBus?.close()]);
    await billing?.assertHealthy();
    await billing?.dispose();
    rmSync(dataDir, { recursive: true, force: true });
  });

  it("with an in-memory queue, jobs left queued by the last run are queued again at start", async () => {
    const deps = { db: billing.db as Kysely<any>, eventBus, blobStore: blobs, billing: billingClient(), log, requeueUnfinishedAtStart: true };
    const firstQueue = new InProcessWorkQueue({ log });
    const first = createOrchestrator({ ...deps, workQueue: firstQueue });
    await first.start();
    await billingClient().createAccount({ accountId: "restart-1" });
    const hold = await billingClient().reserve({ accountId: "restart-1", pool: Pool.API, amountMillicredits: 250n, idempotencyKey: "restart-hold" });
    const job = await first.lifecycle.submit({
      accountId: "restart-1",
      idempotencyKey: "restart-job",
      inputBlobKey: "inputs/restart",
      options: undefined,
      holdId: hold.holdId,
      heldMillicredits: 250,
      highPriority: false,
      longestSideMax: 0,
    });
    await first.stop();
    await firstQueue.close(); // the process ends: its queue is gone

    const secondQueue = new InProcessWorkQueue({ log });
    const second = createOrchestrator({ ...deps, workQueue: secondQueue });
    await second.start();
    try {
      assert.equal(await secondQueue.depth(), 1);
      const requeued = await second.lifecycle.get(job.id);
      assert.deepEqual([requeued.status, requeued.requeues], ["queued", 1]);
      await second.lifecycle.cancel(job.id); // ends the hold for the ledger check
    } finally {
      await second.stop();
      await secondQueue.close();
    }
  });
});
