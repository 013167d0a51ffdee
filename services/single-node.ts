// Single-node mode: the four services in one process, wired by in-memory Connect transports,
// on embedded defaults (PGlite, in-process adapters) unless DATABASE_URL / NATS_URL are set.
// Wiring only: every piece is the same code the separate processes run.
import { createClient, createRouterTransport, type Client } from "@connectrpc/connect";
import { existsSync, mkdirSync, readFileSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { createBilling } from "./billing/index.ts";
import { loadBillingConfig } from "./billing/billing.config.ts";
import { ConfigError } from "./common/config.loader.ts";
import { BillingService } from "./common/gen/cutline/billing/v1/billing_service_pb.ts";
import { OrchestratorService } from "./common/gen/cutline/orchestrator/v1/orchestrator_service_pb.ts";
import { HealthRegistry } from "./common/health.ts";
import { createLogger } from "./common/logging.ts";
import { clientTracingInterceptor, serverTracingInterceptor, startTracing } from "./common/tracing.ts";
import type { Running } from "./common/runtime.ts";
import { serverOptionsOf, startServiceServer } from "./common/server.ts";
import { imageLimitsOf } from "./common/images/image-limits.ts";
import { createUploadInspector } from "./common/images/upload.inspector.ts";
import { adminTokenOf, imageJobsOptionsOf, loadGatewayConfig, paymentProviderOf, resultLinksOptionsOf } from "./gateway/gateway.config.ts";
import { createGateway } from "./gateway/index.ts";
import { AccountChanges } from "./gateway/account-changes.ts";
import { startPeriodicTask } from "./common/periodic-task.ts";
import { createSegmentationEngine, startSegmentConsumer, videoMattingRunnerOf, type SegmentationEngine } from "./inference/index.ts";
import { mediaBinaries } from "./common/video/ffmpeg-binaries.ts";
import { consumerRetryOptionsOf, loadInferenceServiceConfig, tasksInFlightMaxOf } from "./inference/inference.config.ts";
import { createOutboundFetcher, outboundPolicyOf } from "./common/outbound.ts";
import { resultUrlKeyOf } from "./common/result-urls.ts";
import { loadOrchestratorConfig, reconcileOptions, webhookWiringOf } from "./orchestrator/orchestrator.config.ts";
import { createOrchestrator } from "./orchestrator/index.ts";
import { openPorts, openServiceDatabase } from "./common/wiring.ts";
import type { BlobStore } from "./common/ports/blob-store.ts";

/** In-memory calls between services are traced as the mesh's are: a client span, its context in the headers, a server span. */
const IN_MEMORY_TRACING = { transport: { interceptors: [clientTracingInterceptor()] }, router: { interceptors: [serverTracingInterceptor()] } };

/** WatchJob's re-read on in-process ports, where every job change is this process's own (milliseconds). */
const SINGLE_REPLICA_WATCH_POLL_MS = 10_000;

export interface SingleNode extends Running {
  /** The gateway's URL, e.g. http://127.0.0.1:8080. */
  readonly url: string;
  readonly apiKey: string;
  /** Where the admin API's token is kept ($CUTLINE_DATA_DIR/admin-token); undefined when CUTLINE_ADMIN_TOKEN sets it. */
  readonly adminTokenFile: string | undefined;
  readonly health: HealthRegistry;
  /** Resolves once the model is loaded and health reports SERVING (its warm-up runs follow). */
  readonly ready: Promise<void>;
  /** Creates an account (with its sign-up trial unless told otherwise) and returns a new API key for it. */
  provisionAccount(accountId: string, options?: { planCode?: string; grantTrial?: boolean }): Promise<string>;
  /** The in-process billing client, for scripts that fund their own test accounts (fuzz, load). */
  readonly billing: Client<typeof BillingService>;
  /** The blob store every service of this node shares, for tests and scripts that check what is kept. */
  readonly blobStore: BlobStore;
  /** Runs the orchestrator's retention sweeper once, as of `now` (it also runs every RETENTION_SWEEP_INTERVAL_MS); answers the jobs whose files it deleted. */
  sweepRetention(now?: Date): Promise<number>;
  /** `GET /metrics` on METRICS_PORT; unset when METRICS_PORT=off. */
  readonly metricsUrl: string | undefined;
}

function loadAll(environment: NodeJS.ProcessEnv) {
  const problems = new Set<string>();
  const attempt = <T>(load: () => T): T | undefined => {
    try {
      return load();
    } catch (error) {
      if (!(error instanceof ConfigError)) throw error;
      for (const problem of error.problems) problems.add(problem);
      return undefined;
    }
  };
  const gateway = attempt(() => loadGatewayConfig(environment));
  const billing = attempt(() => loadBillingConfig(environment));
  const orchestrator = attempt(() => loadOrchestratorConfig(environment));
  const inference = attempt(() => loadInferenceServiceConfig(environment));
  // A queued job's hold is extended each time the reconciler looks at it: it must look before the hold lapses.
  if (gateway && orchestrator && orchestrator.JOB_QUIET_MS_MAX >= gateway.HOLD_TTL_SECONDS * 1000) {
    problems.add(`JOB_QUIET_MS_MAX=${orchestrator.JOB_QUIET_MS_MAX} must be below HOLD_TTL_SECONDS=${gateway.HOLD_TTL_SECONDS} (in ms: ${gateway.HOLD_TTL_SECONDS * 1000}), or queued jobs outlive their holds`);
  }
  if (!gateway || !billing || !orchestrator || !inference || problems.size > 0) throw new ConfigError([...problems]);
  return { gateway, billing, orchestrator, inference };
}

/** The configured key, else the one kept in the data directory, else a new one kept there. */
function singleNodeApiKey(configured: string | undefined, dataDir: string): string | undefined {
  if (configured) return configured;
  const file = join(dataDir, "api-key");
  if (existsSync(file)) return readFileSync(file, "utf8").trim();
  return undefined;
}

export interface SingleNodeOptions {
  /** The engine, already starting (`npm start` starts it before loading this module); else one is started here. */
  engine?: Promise<SegmentationEngine>;
}

export async function startSingleNode(environment: NodeJS.ProcessEnv = process.env, options: SingleNodeOptions = {}): Promise<SingleNode> {
  const config = loadAll(environment);
  const common = config.gateway;
  const tracing = await startTracing(common, "cutline");
  const log = createLogger("cutline", common.LOG_LEVEL);
  const health = new HealthRegistry();
  mkdirSync(common.CUTLINE_DATA_DIR, { recursive: true });
  // The model loads and hashes on its own threads while the database opens and
  // migrates: the two longest steps of a start overlap instead of adding up.
  const engineStarting = options.engine ?? createSegmentationEngine(config.inference, log.child({ service: "inference" }));
  engineStarting.catch(() => {}); // awaited below; a start that fails before then reports its own error
  try {
    const database = openServiceDatabase<any>(common);
    const ports = await openPorts(common, log);
    const admin = adminTokenOf(config.gateway);

    const billing = await createBilling({
      migrateOnStart: config.billing.MIGRATE_ON_START,
      db: database.db,
      eventBus: ports.eventBus,
      log: log.child({ service: "billing" }),
      sweepIntervalMs: config.billing.BILLING_SWEEP_INTERVAL_MS,
      topUpHint: config.billing.BILLING_TOP_UP_HINT,
      plansFile: config.billing.BILLING_PLANS_FILE,
      upgradeHint: config.billing.BILLING_UPGRADE_HINT,
    });
    await billing.migrate();
    billing.sweeper.start();
    // Every billing call of this node (gateway, orchestrator, scripts) passes here: the gateway's kept accounts see every change.
    const accountChanges = new AccountChanges();
    const billingClient = createClient(
      BillingService,
      createRouterTransport((router) => router.service(BillingService, billing.handlers), {
        ...IN_MEMORY_TRACING,
        transport: { interceptors: [...IN_MEMORY_TRACING.transport.interceptors, accountChanges.interceptor] },
      }),
    );

    // Result URLs in webhooks name the gateway: CUTLINE_PUBLIC_URL, else the URL it listens on (known once it does).
    let gatewayUrl = `http://${common.HOST}:${config.gateway.PORT}`;
    const webhooks = webhookWiringOf(config.orchestrator, { key: resultUrlKeyOf(config.orchestrator, { required: false }), publicUrl: "" });
    const webhookFetcher = createOutboundFetcher(webhooks.policy);
    const orchestrator = createOrchestrator({
      migrateOnStart: config.orchestrator.MIGRATE_ON_START,
      db: database.db,
      ...ports,
      billing: billingClient,
      log: log.child({ service: "orchestrator" }),
      reconcile: reconcileOptions(config.orchestrator),
      retentionSweepIntervalMs: config.orchestrator.RETENTION_SWEEP_INTERVAL_MS,
      webhooks: {
        ...webhooks,
        fetcher: webhookFetcher,
        resultUrlFor: (jobId) => webhooks.resultUrlFor(jobId, config.orchestrator.CUTLINE_PUBLIC_URL ?? gatewayUrl),
      },
      // The in-process queue lives in this process's memory: what it held before a restart is gone.
      requeueUnfinishedAtStart: common.NATS_URL === undefined,
      // On in-process ports no other replica applies task events: every change wakes a watch at
      // once, and the re-read stays only as a safety net (at 500 ms, 64 calls in flight cost 128
      // job reads a second on the one event loop).
      watchPollMs: common.NATS_URL === undefined ? SINGLE_REPLICA_WATCH_POLL_MS : undefined,
    });
    await orchestrator.start();
    const orchestratorClient = createClient(OrchestratorService, createRouterTransport(orchestrator.routes, IN_MEMORY_TRACING));

    const engine = await engineStarting;
    const worker = startSegmentConsumer({
      engine,
      ...ports,
      log: log.child({ service: "inference" }),
      ...consumerRetryOptionsOf(config.inference),
      stageProgressMsMin: config.inference.INFERENCE_STAGE_PROGRESS_MS_MIN,
      inFlightMax: tasksInFlightMaxOf(config.inference),
      videoConcurrency: config.inference.VIDEO_CONCURRENCY,
      video: { run: videoMattingRunnerOf(engine, () => mediaBinaries({ FFMPEG_PATH: config.inference.FFMPEG_PATH, FFPROBE_PATH: config.inference.FFPROBE_PATH }, log)) },
    });

    // image_url and bg_image_url: the gateway's own fetcher, under the gateway's reading of the outbound variables.
    const imageFetchPolicy = outboundPolicyOf(config.gateway);
    const imageFetcher = createOutboundFetcher(imageFetchPolicy);
    const paymentProvider = paymentProviderOf(config.gateway);
    const gateway = createGateway({
      migrateOnStart: config.gateway.MIGRATE_ON_START,
      db: database.db,
      blobStore: ports.blobStore,
      billing: billingClient,
      accountChanges,
      orchestrator: orchestratorClient,
      inspect: createUploadInspector(imageLimitsOf(config.gateway)),
      log: log.child({ service: "gateway" }),
      limits: imageJobsOptionsOf(config.gateway),
      adminToken: admin.token,
      resultUrls: resultLinksOptionsOf(config.gateway, { required: false }),
      outbound: { fetcher: imageFetcher, policy: imageFetchPolicy },
      payments: { provider: paymentProvider, currency: config.gateway.PAYMENT_CURRENCY },
    });
    await gateway.start();
    const overageReports = paymentProvider.checkoutAvailable
      ? startPeriodicTask({ name: "overage report", intervalMs: config.gateway.PAYMENT_OVERAGE_REPORT_INTERVAL_MS, log, run: () => gateway.reportOverage() })
      : undefined;
    const apiKey = await gateway.provisionAccount(config.gateway.CUTLINE_ACCOUNT_ID, {
      key: singleNodeApiKey(config.gateway.CUTLINE_API_KEY, common.CUTLINE_DATA_DIR),
    });
    writeFileSync(join(common.CUTLINE_DATA_DIR, "api-key"), `${apiKey}\n`, { mode: 0o600 });

    const server = await startServiceServer({
      name: "gateway",
      host: common.HOST,
      port: config.gateway.PORT,
      log: log.child({ service: "gateway" }),
      health,
      routes: gateway.routes,
      httpRoutes: gateway.httpRoutes,
      admit: gateway.admit,
      corsAllowedOrigins: config.gateway.CORS_ALLOWED_ORIGINS,
      readBytesMax: config.gateway.UPLOAD_BYTES_MAX + 1024 * 1024,
      shutdownTimeoutMs: common.SHUTDOWN_TIMEOUT_MS,
      ...serverOptionsOf(common),
    });
    gatewayUrl = server.url;
    gateway.listeningAt(server.url);

    const ready = Promise.all([engine.ready, worker]).then(() => health.setAllServing());
    ready.catch((error: unknown) => log.error({ err: error }, "the model could not be made ready; health stays NOT_SERVING"));

    return {
      url: server.url,
      apiKey,
      adminTokenFile: admin.file,
      health,
      ready,
      provisionAccount: (accountId, options) => gateway.provisionAccount(accountId, options),
      billing: billingClient,
      blobStore: ports.blobStore,
      sweepRetention: (now) => orchestrator.lifecycle.expireFiles(now),
      metricsUrl: server.metricsUrl,
      shutdownTimeoutMs: common.SHUTDOWN_TIMEOUT_MS,
      async stop() {
        // Intake first; sync requests in flight still need the worker and orchestrator to finish.
        await server.close();
        await overageReports?.stop();
        await (await worker.catch(() => undefined))?.drain();
        await orchestrator.stop();
        await billing.sweeper.stop();
        await engine.close();
        await ports.close();
        await webhookFetcher.close();
        await imageFetcher.close();
        await database.close();
        await tracing.shutdown();
      },
    };
  } catch (error) {
    // The model threads would keep the process alive after a start that failed.
    void engineStarting.then((engine) => engine.close(), () => {});
    throw error;
  }
}
