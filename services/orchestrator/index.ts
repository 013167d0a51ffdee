import type { Client } from "@connectrpc/connect";
import type { ConnectRouter } from "@connectrpc/connect";
import type { Kysely } from "kysely";
import type { BillingService } from "../common/gen/cutline/billing/v1/billing_service_pb.ts";
import { OrchestratorService } from "../common/gen/cutline/orchestrator/v1/orchestrator_service_pb.ts";
import type { Logger } from "../common/logging.ts";
import { migrateToLatest } from "../common/migrate.ts";
import { startPeriodicTask, type PeriodicTask } from "../common/periodic-task.ts";
import type { BlobStore } from "../common/ports/blob-store.ts";
import type { EventBus } from "../common/ports/event-bus.ts";
import type { Subscription, WorkQueue } from "../common/ports/work-queue.ts";
import { createOrchestratorHandlers } from "./handlers/orchestrator.handlers.ts";
import { JobLifecycle, type JobLifecycleOptions } from "./job-lifecycle.ts";
import { JobStore, type OrchestratorSchema } from "./store/job.store.ts";
import { orchestratorMigrations } from "./store/migrations.ts";

export interface OrchestratorDependencies {
  db: Kysely<OrchestratorSchema>;
  workQueue: WorkQueue;
  eventBus: EventBus;
  blobStore: BlobStore;
  billing: Client<typeof BillingService>;
  log: Logger;
  /** Quiet-job reconciliation (see JobLifecycleOptions) and how often it runs, in ms. @default 60000 */
  reconcile?: Pick<JobLifecycleOptions, "quietMsMax" | "requeuesMax"> & { intervalMs?: number };
  /**
   * The work queue forgets its tasks when the process stops (the single node's in-memory queue):
   * jobs left unfinished by an earlier run are re-queued at start instead of after going quiet.
   * @default false
   */
  requeueUnfinishedAtStart?: boolean;
}

export interface Orchestrator {
  routes(router: ConnectRouter): void;
  readonly lifecycle: JobLifecycle;
  /** Migrates, then starts applying task events. */
  start(): Promise<void>;
  /** Stops taking events and waits for the one being applied. */
  stop(): Promise<void>;
}

export function createOrchestrator(deps: OrchestratorDependencies): Orchestrator {
  const lifecycle = new JobLifecycle(new JobStore(deps.db), deps.workQueue, deps.blobStore, deps.billing, deps.log, deps.reconcile);
  let subscription: Subscription | undefined;
  let reconciler: PeriodicTask | undefined;
  return {
    lifecycle,
    routes(router) {
      router.service(OrchestratorService, createOrchestratorHandlers(lifecycle));
    },
    async start() {
      await migrateToLatest(deps.db, "orchestrator", orchestratorMigrations);
      subscription = deps.eventBus.subscribe((event) => lifecycle.onTaskEvent(event), {
        durableName: "orchestrator",
        subjectFilter: "job.*",
      });
      // Every job changed before this start counts as quiet at once: nothing of its task survived.
      if (deps.requeueUnfinishedAtStart) await lifecycle.reconcile(new Date(Date.now() + (deps.reconcile?.quietMsMax ?? 300_000)));
      reconciler = startPeriodicTask({ name: "job reconciler", intervalMs: deps.reconcile?.intervalMs ?? 60_000, log: deps.log, run: () => lifecycle.reconcile() });
    },
    async stop() {
      await reconciler?.stop();
      await subscription?.drain();
    },
  };
}
