// Gateway as its own process (mesh mode). Wiring only.
import { createClient } from "@connectrpc/connect";
import { BillingService } from "../common/gen/cutline/billing/v1/billing_service_pb.ts";
import { OrchestratorService } from "../common/gen/cutline/orchestrator/v1/orchestrator_service_pb.ts";
import { HealthRegistry } from "../common/health.ts";
import { startTracing } from "../common/tracing.ts";
import { createLogger } from "../common/logging.ts";
import { runMain, serviceTransport, whenAvailable } from "../common/runtime.ts";
import { requireServiceToken } from "../common/service-auth.ts";
import { serverOptionsOf, startServiceServer } from "../common/server.ts";
import { imageLimitsOf } from "../common/images/image-limits.ts";
import { createUploadInspector } from "../common/images/upload.inspector.ts";
import { adminTokenOf, imageJobsOptionsOf, loadGatewayConfig, paymentProviderOf, resultLinksOptionsOf } from "./gateway.config.ts";
import { startPeriodicTask } from "../common/periodic-task.ts";
import { createGateway } from "./index.ts";
import { AccountChanges } from "./account-changes.ts";
import type { GatewaySchema } from "./store/api-key.store.ts";
import { openSharedRequestRates } from "./store/request-rate.store.ts";
import { openPorts, openServiceDatabase } from "../common/wiring.ts";
import { createOutboundFetcher, outboundPolicyOf } from "../common/outbound.ts";

await runMain("gateway", async () => {
  const config = loadGatewayConfig();
  // The gateway checks no token (its services are public) but sends it to billing and orchestrator.
  const peerOptions = { token: requireServiceToken(config.CUTLINE_SERVICE_TOKEN), timeoutMs: config.SERVICE_CALL_TIMEOUT_MS, streamTimeoutMs: config.SERVICE_STREAM_TIMEOUT_MS };
  const tracing = await startTracing(config, "gateway");
  const log = createLogger("gateway", config.LOG_LEVEL);
  const health = new HealthRegistry();
  const database = openServiceDatabase<GatewaySchema>(config);
  const ports = await openPorts(config, log);
  const admin = adminTokenOf(config);
  if (admin.file) {
    // Each gateway replica would keep its own: fine for one, confusing for several.
    log.warn({ file: admin.file }, "CUTLINE_ADMIN_TOKEN is unset: the admin API's token is the one kept in this file; set CUTLINE_ADMIN_TOKEN when more than one gateway runs");
  }
  const paymentProvider = paymentProviderOf(config);
  const outboundPolicy = outboundPolicyOf(config);
  const outboundFetcher = createOutboundFetcher(outboundPolicy);
  // Replicas share the per-minute count in Postgres. PGlite belongs to one process, so there it is counted in memory.
  const sharedRates =
    config.RATE_LIMIT_SHARED && database.location.kind === "postgres"
      ? openSharedRequestRates(database.location, { timeoutMs: config.RATE_LIMIT_STORE_TIMEOUT_MS, log })
      : undefined;
  const accountChanges = new AccountChanges();
  const gateway = createGateway({
    migrateOnStart: config.MIGRATE_ON_START,
    db: database.db,
    blobStore: ports.blobStore,
    billing: createClient(BillingService, serviceTransport(config.BILLING_URL, { ...peerOptions, interceptors: [accountChanges.interceptor] })),
    accountChanges,
    orchestrator: createClient(OrchestratorService, serviceTransport(config.ORCHESTRATOR_URL, peerOptions)),
    inspect: createUploadInspector(imageLimitsOf(config)),
    log,
    limits: { ...imageJobsOptionsOf(config), requestRates: sharedRates?.rates },
    adminToken: admin.token,
    resultUrls: resultLinksOptionsOf(config, { required: true }),
    outbound: { fetcher: outboundFetcher, policy: outboundPolicy },
    payments: { provider: paymentProvider, currency: config.PAYMENT_CURRENCY },
  });
  const server = await startServiceServer({
    name: "gateway",
    host: config.HOST,
    port: config.PORT,
    log,
    health,
    routes: gateway.routes,
    httpRoutes: gateway.httpRoutes,
    admit: gateway.admit,
    corsAllowedOrigins: config.CORS_ALLOWED_ORIGINS,
    readBytesMax: config.UPLOAD_BYTES_MAX + 1024 * 1024,
    shutdownTimeoutMs: config.SHUTDOWN_TIMEOUT_MS,
    ...serverOptionsOf(config),
  });
  gateway.listeningAt(server.url);
  await gateway.start();
  const apiKey = config.CUTLINE_API_KEY;
  if (apiKey) await whenAvailable(() => gateway.provisionAccount(config.CUTLINE_ACCOUNT_ID, { key: apiKey }));
  // Only a provider that bills metered usage has overage to report; every replica may run it (each total is claimed before it is sent).
  const overageReports = paymentProvider.checkoutAvailable
    ? startPeriodicTask({ name: "overage report", intervalMs: config.PAYMENT_OVERAGE_REPORT_INTERVAL_MS, log, run: () => gateway.reportOverage() })
    : undefined;
  health.setAllServing();
  return {
    shutdownTimeoutMs: config.SHUTDOWN_TIMEOUT_MS,
    async stop() {
      await overageReports?.stop();
      await server.close();
      await outboundFetcher.close();
      await sharedRates?.close();
      await ports.close();
      await database.close();
      await tracing.shutdown();
    },
  };
});
