// Orchestrator as its own process (mesh mode). Wiring only.
import { createClient } from "@connectrpc/connect";
import { BillingService } from "../common/gen/cutline/billing/v1/billing_service_pb.ts";
import { HealthRegistry } from "../common/health.ts";
import { startTracing } from "../common/tracing.ts";
import { createLogger } from "../common/logging.ts";
import { runMain, serviceTransport } from "../common/runtime.ts";
import { requireServiceToken, serviceAuthInterceptor, serviceTokenAdmission } from "../common/service-auth.ts";
import { serverOptionsOf, startServiceServer } from "../common/server.ts";
import { createOutboundFetcher } from "../common/outbound.ts";
import { resultUrlKeyOf } from "../common/result-urls.ts";
import { loadOrchestratorConfig, reconcileOptions, webhookWiringOf } from "./orchestrator.config.ts";
import { createOrchestrator } from "./index.ts";
import type { OrchestratorSchema } from "./store/job.store.ts";
import { openPorts, openServiceDatabase } from "../common/wiring.ts";

// The gateway's own default listen address (its PORT default), for result URLs when CUTLINE_PUBLIC_URL is unset.
const DEFAULT_GATEWAY_URL = "http://127.0.0.1:8080";

await runMain("orchestrator", async () => {
  const config = loadOrchestratorConfig();
  const serviceToken = requireServiceToken(config.CUTLINE_SERVICE_TOKEN);
  // Result URLs in webhooks must verify at the gateway: both processes share the key and the public URL.
  const resultUrlKey = resultUrlKeyOf(config, { required: true });
  const tracing = await startTracing(config, "orchestrator");
  const log = createLogger("orchestrator", config.LOG_LEVEL);
  if (!config.CUTLINE_PUBLIC_URL) log.warn({ assumed: DEFAULT_GATEWAY_URL }, "CUTLINE_PUBLIC_URL is not set: result URLs in webhooks point at the gateway's default address; set it to where clients reach the gateway");
  const webhooks = webhookWiringOf(config, { key: resultUrlKey, publicUrl: config.CUTLINE_PUBLIC_URL ?? DEFAULT_GATEWAY_URL });
  const fetcher = createOutboundFetcher(webhooks.policy);
  const health = new HealthRegistry();
  const database = openServiceDatabase<OrchestratorSchema>(config);
  const ports = await openPorts(config, log);
  const orchestrator = createOrchestrator({
    migrateOnStart: config.MIGRATE_ON_START,
    db: database.db,
    ...ports,
    billing: createClient(BillingService, serviceTransport(config.BILLING_URL, { token: serviceToken, timeoutMs: config.SERVICE_CALL_TIMEOUT_MS })),
    log,
    reconcile: reconcileOptions(config),
    retentionSweepIntervalMs: config.RETENTION_SWEEP_INTERVAL_MS,
    webhooks: { ...webhooks, fetcher },
  });
  const server = await startServiceServer({
    name: "orchestrator",
    host: config.HOST,
    port: config.PORT,
    log,
    health,
    routes: orchestrator.routes,
    admit: serviceTokenAdmission(serviceToken),
    interceptors: [serviceAuthInterceptor(serviceToken)],
    shutdownTimeoutMs: config.SHUTDOWN_TIMEOUT_MS,
    ...serverOptionsOf(config),
  });
  await orchestrator.start();
  health.setAllServing();
  return {
    shutdownTimeoutMs: config.SHUTDOWN_TIMEOUT_MS,
    async stop() {
      await Promise.all([server.close(), orchestrator.stop()]);
      await ports.close();
      await fetcher.close();
      await database.close();
      await tracing.shutdown();
    },
  };
});
