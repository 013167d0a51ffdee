import type { Client } from "@connectrpc/connect";
import type { ConnectRouter } from "@connectrpc/connect";
import type { Kysely } from "kysely";
import type { BillingService } from "../common/gen/cutline/billing/v1/billing_service_pb.ts";
import { OrchestratorService } from "../common/gen/cutline/orchestrator/v1/orchestrator_service_pb.ts";
import type { Logger } from "../common/logging.ts";
import { migrateOrCheck } from "../common/migrate.ts";
import { pollWorkQueuePending } from "./orchestrator.metrics.ts";
import { startPeriodicTask, type PeriodicTask } from "../common/periodic-task.ts";
import type { BlobStore } from "../common/ports/blob-store.ts";
import type { EventBus } from "../common/ports/event-bus.ts";
import type { Subscription, WorkQueue } from "../common/ports/work-queue.ts";
import { createOutboundFetcher, type OutboundFetcher } from "../common/outbound.ts";
import { createOrchestratorHandlers } from "./handlers/orchestrator.handlers.ts";
import { CreditNotices } from "./credit-notices.ts";
import { WEBHOOK_DEFAULTS, Webhooks, type WebhookOptions } from "./webhooks.ts";
import { JobLifecycle, type JobLifecycleOptions } from "./job-lifecycle.ts";
import { JobStore, type OrchestratorSchema } from "./store/job.store.ts";
import { orchestratorMigrationSet } from "./store/migrations.ts";
import { AccountSettingsStore } from "./store/account-settings.store.ts";

export interface OrchestratorDependencies {
  /** Period of the work queues' backlog poll behind cutline_work_queue_pending. @default 15000 ms */
  workQueuePendingPollMs?: number;
  /** Run pending migrations at start (MIGRATE_ON_START); false only checks that none is missing. @default true */
  migrateOnStart?: boolean;
  db: Kysely<OrchestratorSchema>;
  workQueue: WorkQueue;
  /** Video jobs' tasks (the ports' videoQueue). @default workQueue */
  videoQueue?: WorkQueue;
  eventBus: EventBus;
  blobStore: BlobStore;
  billing: Client<typeof BillingService>;
  log: Logger;
  /** Quiet-job reconciliation (see JobLifecycleOptions) and how often it runs, in ms. @default 60000 */
  reconcile?: Pick<JobLifecycleOptions, "quietMsMax" | "requeuesMax" | "timeoutMs" | "videoTimeoutMsPerSecond"> & { intervalMs?: number };
  /** How often the retention sweeper deletes the files of ended jobs past their retention, in ms. @default 60000 */
  retentionSweepIntervalMs?: number;
  /**
   * The work queue forgets its tasks when the process stops (the single node's in-memory queue):
   * jobs left unfinished by an earlier run are re-queued at start instead of after going quiet.
   * @default false
   */
  requeueUnfinishedAtStart?: boolean;
  /**
   * How often WatchJob re-reads a job for changes applied by another orchestrator replica (those
   * of this one wake it at once). The single node on in-process ports is the only replica there
   * can be and passes a long one: each open watch's re-read is a query, and a busy node has one
   * watch per synchronous call in flight. @default 500 ms
   */
  watchPollMs?: number;
  /**
   * Webhooks of job ends. Unset: no deliveries are recorded (suites that do not exercise them);
   * the secret and URL calls still work.
   */
  webhooks?: WebhookWiring;
}

export interface WebhookWiring {
  fetcher: OutboundFetcher;
  /** The signed result URL of a job, for job.succeeded events. */
  resultUrlFor: (jobId: string) => string;
  options: WebhookOptions;
  /** How often due deliveries are looked for, in milliseconds. @default 1000 */
  sendIntervalMs?: number;
}

export interface Orchestrator {
  routes(router: ConnectRouter): void;
  readonly lifecycle: JobLifecycle;
  readonly webhooks: Webhooks;
  /** Credit notices in the email outbox. */
  readonly notices: CreditNotices;
  /** Migrates, then starts applying task events. */
  start(): Promise<void>;
  /** Stops taking events and waits for the one being applied. */
  stop(): Promise<void>;
}

export function createOrchestrator(deps: OrchestratorDependencies): Orchestrator {
  const wiring = deps.webhooks;
  const ownFetcher = wiring ? undefined : createOutboundFetcher({ allowLoopback: false, timeoutMs: 10_000, bytesMax: 1024 });
  const webhooks = new Webhooks({
    db: deps.db,
    fetcher: wiring?.fetcher ?? ownFetcher!,
    resultUrlFor: wiring?.resultUrlFor ?? (() => { throw new Error("webhooks are not wired: no result URL signer"); }),
    log: deps.log,
    options: wiring?.options ?? { ...WEBHOOK_DEFAULTS, allowLoopback: false },
  });
  const settings = new AccountSettingsStore(deps.db);
  const notices = new CreditNotices(deps.db, deps.billing);
  const lifecycle = new JobLifecycle(new JobStore(deps.db), deps.workQueue, deps.blobStore, deps.billing, deps.log, {
    ...deps.reconcile,
    videoQueue: deps.videoQueue,
    watchPollMs: deps.watchPollMs,
    settings,
    onEnd: wiring ? (db, job) => webhooks.enqueueJobEnd(db, job) : undefined,
  });
  let subscription: Subscription | undefined;
  let creditsSubscription: Subscription | undefined;
  let reconciler: PeriodicTask | undefined;
  let sender: PeriodicTask | undefined;
  let retentionSweeper: PeriodicTask | undefined;
  let pendingPoller: PeriodicTask | undefined;
  return {
    lifecycle,
    webhooks,
    notices,
    routes(router) {
      router.service(OrchestratorService, createOrchestratorHandlers(lifecycle, webhooks, deps.billing, settings, notices.outbox));
    },
    async start() {
      await migrateOrCheck(deps.db, orchestratorMigrationSet, deps.migrateOnStart ?? true);
      subscription = deps.eventBus.subscribe((event) => lifecycle.onTaskEvent(event), {
        durableName: "orchestrator",
        subjectFilter: "job.*",
      });
      // Billing's low-balance events go to the account's webhook, in the job events' envelope, and
      // to the email outbox an operator relays. Both are idempotent, so a redelivery after either
      // failed writes nothing twice.
      creditsSubscription = deps.eventBus.subscribe(
        async (event) => {
          if (wiring) await webhooks.onCreditsEvent(event);
          await notices.onCreditsEvent(event);
        },
        { durableName: "orchestrator-credits", subjectFilter: "credits.*" },
      );
      // Every job changed before this start counts as quiet at once: nothing of its task survived.
      if (deps.requeueUnfinishedAtStart) await lifecycle.reconcile(new Date(), { everyUnfinishedQuiet: true });
      reconciler = startPeriodicTask({ name: "job reconciler", intervalMs: deps.reconcile?.intervalMs ?? 60_000, log: deps.log, run: () => lifecycle.reconcile() });
      retentionSweeper = startPeriodicTask({ name: "retention sweeper", intervalMs: deps.retentionSweepIntervalMs ?? 60_000, log: deps.log, run: () => lifecycle.expireFiles() });
      // The backlog gauge is read on a timer, never per request: each read is two JetStream API calls per queue.
      // Both queues: KEDA scales inference on the video queue's lag too.
      const polledQueues = { image: deps.workQueue, video: deps.videoQueue === deps.workQueue ? undefined : deps.videoQueue };
      await pollWorkQueuePending(polledQueues).catch((error: unknown) => deps.log.warn({ err: error }, "work queue backlog could not be read"));
      pendingPoller = startPeriodicTask({ name: "work queue backlog poll", intervalMs: deps.workQueuePendingPollMs ?? 15_000, log: deps.log, run: () => pollWorkQueuePending(polledQueues) });
      if (wiring) sender = startPeriodicTask({ name: "webhook sender", intervalMs: wiring.sendIntervalMs ?? 1000, log: deps.log, run: () => webhooks.sendDue() });
    },
    async stop() {
      await reconciler?.stop();
      await retentionSweeper?.stop();
      await pendingPoller?.stop();
      await sender?.stop();
      await subscription?.drain();
      await creditsSubscription?.drain();
      await ownFetcher?.close();
    },
  };
}
