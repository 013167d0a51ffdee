// Orchestrator as its own process (mesh mode). Wiring only.
import { createClient } from "@connectrpc/connect";
import { BillingService } from "../common/gen/cutline/billing/v1/billing_service_pb.ts";
import { HealthRegistry } from "../common/health.ts";
import { createLogger } from "../common/logging.ts";
import { runMain, serviceTransport } from "../common/runtime.ts";
import { requireServiceToken, serviceAuthInterceptor, serviceTokenAdmission } from "../common/service-auth.ts";
import { serverOptionsOf, startServiceServer } from "../common/server.ts";
import { loadOrchestratorConfig, reconcileOptions } from "./orchestrator.config.ts";
import { createOrchestrator } from "./index.ts";
import type { OrchestratorSchema } from "./store/job.store.ts";
import { openPorts, openServiceDatabase } from "../common/wiring.ts";

await runMain("orchestrator", async () => {
  const config = loadOrchestratorConfig();
  const serviceToken = requireServiceToken(config.CUTLINE_SERVICE_TOKEN);
  const log = createLogger("orchestrator", config.LOG_LEVEL);
  const health = new HealthRegistry();
  const database = openServiceDatabase<OrchestratorSchema>(config);
  const ports = await openPorts(config, log);
  const orchestrator = createOrchestrator({
    db: database.db,
    ...ports,
    billing: createClient(BillingService, serviceTransport(config.BILLING_URL, { token: serviceToken, timeoutMs: config.SERVICE_CALL_TIMEOUT_MS })),
    log,
    reconcile: reconcileOptions(config),
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
      await database.close();
    },
  };
});
