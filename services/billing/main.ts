// Billing as its own process (mesh mode). Wiring only.
import { BillingService } from "../common/gen/cutline/billing/v1/billing_service_pb.ts";
import { HealthRegistry } from "../common/health.ts";
import { startTracing } from "../common/tracing.ts";
import { createLogger } from "../common/logging.ts";
import { runMain } from "../common/runtime.ts";
import { requireServiceToken, serviceAuthInterceptor, serviceTokenAdmission } from "../common/service-auth.ts";
import { serverOptionsOf, startServiceServer } from "../common/server.ts";
import { loadBillingConfig } from "./billing.config.ts";
import { createBilling } from "./index.ts";
import { openPorts, openServiceDatabase } from "../common/wiring.ts";

await runMain("billing", async () => {
  const config = loadBillingConfig();
  const serviceToken = requireServiceToken(config.CUTLINE_SERVICE_TOKEN);
  const tracing = await startTracing(config, "billing");
  const log = createLogger("billing", config.LOG_LEVEL);
  const health = new HealthRegistry();
  const database = openServiceDatabase(config);
  const ports = await openPorts(config, log);
  const billing = await createBilling({
    migrateOnStart: config.MIGRATE_ON_START,
    db: database.db,
    eventBus: ports.eventBus,
    log,
    sweepIntervalMs: config.BILLING_SWEEP_INTERVAL_MS,
    topUpHint: config.BILLING_TOP_UP_HINT,
    plansFile: config.BILLING_PLANS_FILE,
    upgradeHint: config.BILLING_UPGRADE_HINT,
  });
  await billing.migrate();
  const server = await startServiceServer({
    name: "billing",
    host: config.HOST,
    port: config.PORT,
    log,
    health,
    routes: (router) => router.service(BillingService, billing.handlers),
    admit: serviceTokenAdmission(serviceToken),
    interceptors: [serviceAuthInterceptor(serviceToken)],
    shutdownTimeoutMs: config.SHUTDOWN_TIMEOUT_MS,
    ...serverOptionsOf(config),
  });
  billing.sweeper.start();
  health.setAllServing();
  return {
    shutdownTimeoutMs: config.SHUTDOWN_TIMEOUT_MS,
    async stop() {
      await server.close();
      await billing.sweeper.stop();
      await ports.close();
      await database.close();
      await tracing.shutdown();
    },
  };
});
