// Billing as its own process (mesh mode). Wiring only.
import { BillingService } from "../common/gen/cutline/billing/v1/billing_service_pb.ts";
import { createPorts } from "../common/adapters/index.ts";
import { databaseLocation, openDatabase } from "../common/database.ts";
import { HealthRegistry } from "../common/health.ts";
import { createLogger } from "../common/logging.ts";
import { runMain } from "../common/runtime.ts";
import { startServiceServer } from "../common/server.ts";
import { loadBillingConfig } from "./config.ts";
import { createBilling } from "./index.ts";

await runMain("billing", async () => {
  const config = loadBillingConfig();
  const log = createLogger("billing", config.LOG_LEVEL);
  const health = new HealthRegistry();
  const database = openDatabase(databaseLocation(config.DATABASE_URL, config.CUTLINE_DATA_DIR));
  const ports = await createPorts({ natsUrl: config.NATS_URL, dataDir: config.CUTLINE_DATA_DIR, namePrefix: config.NATS_NAME_PREFIX, blobTtlMs: config.BLOB_TTL_MS, log });
  const billing = await createBilling({
    db: database.db,
    eventBus: ports.eventBus,
    log,
    sweepIntervalMs: config.BILLING_SWEEP_INTERVAL_MS,
    topUpHint: config.BILLING_TOP_UP_HINT,
  });
  await billing.migrate();
  const server = await startServiceServer({
    name: "billing",
    host: config.HOST,
    port: config.PORT,
    log,
    health,
    routes: (router) => router.service(BillingService, billing.handlers),
    shutdownTimeoutMs: config.SHUTDOWN_TIMEOUT_MS,
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
    },
  };
});
