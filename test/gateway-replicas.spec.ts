// Two gateway replicas, each with its own database pool and NATS connection, in front of one
// billing and one orchestrator on real Postgres and NATS: a plan's requests per minute are
// admitted once between them, not once per replica, and X-RateLimit-* stays right on both.
import { createClient, createRouterTransport } from "@connectrpc/connect";
import assert from "node:assert/strict";
import { after, before, describe, test } from "node:test";
import type { Kysely } from "kysely";
import { pino } from "pino";
import sharp from "sharp";
import { createBilling, type Billing } from "../services/billing/index.ts";
import { createPorts, type Ports } from "../services/common/adapters/index.ts";
import { openDatabase, type Database } from "../services/common/database.ts";
import { BillingService } from "../services/common/gen/cutline/billing/v1/billing_service_pb.ts";
import { OrchestratorService } from "../services/common/gen/cutline/orchestrator/v1/orchestrator_service_pb.ts";
import { HealthRegistry } from "../services/common/health.ts";
import { imageLimitsOf } from "../services/common/images/image-limits.ts";
import { createUploadInspector } from "../services/common/images/upload.inspector.ts";
import { startServiceServer, type ServiceServer } from "../services/common/server.ts";
import { loadGatewayConfig } from "../services/gateway/gateway.config.ts";
import { createGateway, type Gateway } from "../services/gateway/index.ts";
import { openSharedRequestRates } from "../services/gateway/store/request-rate.store.ts";
import { createOrchestrator, type Orchestrator } from "../services/orchestrator/index.ts";
import { meshBackends, type MeshBackends } from "./mesh.testing.ts";
import { uniqueName } from "./harness.ts";

const log = pino({ level: "silent" });
const backends: MeshBackends = await meshBackends();

describe("gateway replicas share each plan's requests per minute", { skip: backends.skip || undefined }, () => {
  const databases: Database<any>[] = [];
  const ports: Ports[] = [];
  const servers: ServiceServer[] = [];
  const gateways: Gateway[] = [];
  const sharedRates: { close(): Promise<void> }[] = [];
  let billing: Billing;
  let orchestrator: Orchestrator;

  const database = () => {
    const opened = openDatabase<any>({ kind: "postgres", url: backends.skip === false ? backends.databaseUrl : "" });
    databases.push(opened);
    return opened.db as Kysely<any>;
  };
  const openPorts = async (namePrefix: string) => {
    const opened = await createPorts({ natsUrl: backends.skip === false ? backends.natsUrl : undefined, namePrefix, log });
    ports.push(opened);
    return opened;
  };

  before(async () => {
    const namePrefix = uniqueName("replicas");
    const shared = await openPorts(namePrefix);
    billing = await createBilling({ db: database(), eventBus: shared.eventBus, log });
    await billing.migrate();
    const billingClient = createClient(BillingService, createRouterTransport((router) => router.service(BillingService, billing.handlers)));
    orchestrator = createOrchestrator({ db: database(), ...shared, billing: billingClient, log });
    await orchestrator.start();
    const orchestratorClient = createClient(OrchestratorService, createRouterTransport(orchestrator.routes));
    const config = loadGatewayConfig({});
    for (let replica = 0; replica < 2; replica++) {
      const own = await openPorts(namePrefix);
      // Each replica's own limiter pool, as main.ts opens it.
      const rates = openSharedRequestRates({ kind: "postgres", url: backends.skip === false ? backends.databaseUrl : "" }, { timeoutMs: config.RATE_LIMIT_STORE_TIMEOUT_MS, log });
      sharedRates.push(rates);
      const gateway = createGateway({
        db: database(),
        blobStore: own.blobStore,
        billing: billingClient,
        orchestrator: orchestratorClient,
        inspect: createUploadInspector(imageLimitsOf(config)),
        log,
        limits: { uploadBytesMax: 1_000_000, syncTimeoutMs: 60_000, holdTtlSeconds: 900, longestSide: { standard: 2048, pro: 4096 }, requestRates: rates.rates },
      });
      await gateway.start();
      gateways.push(gateway);
      servers.push(
        await startServiceServer({ name: "gateway", host: "127.0.0.1", port: 0, log, health: new HealthRegistry(), routes: gateway.routes, httpRoutes: gateway.httpRoutes, admit: gateway.admit }),
      );
    }
  });

  after(async () => {
    for (const server of servers) await server.close();
    await orchestrator?.stop();
    await billing?.sweeper.stop();
    for (const opened of ports) await opened.close();
    for (const opened of sharedRates) await opened.close();
    for (const opened of databases) await opened.close();
    if (backends.skip === false) await backends.dispose();
  });

  test("the free plan's 10 a minute, sent alternately to both replicas: 10 admitted in all, each remaining count once", async () => {
    const apiKey = await gateways[0]!.provisionAccount(uniqueName("account")); // free plan: 10 requests per minute, a 10-credit trial
    const photo = new Uint8Array(await sharp({ create: { width: 64, height: 48, channels: 3, background: "#3366cc" } }).png().toBuffer());
    const answers: { status: number; limit: string | null; remaining: string | null; reset: string | null; retryAfter: string | null }[] = [];
    for (let index = 0; index < 20; index++) {
      const form = new FormData();
      form.append("image_file", new Blob([photo], { type: "image/png" }), "photo.png");
      // Asynchronous: the job is queued and answered at once (no worker runs here).
      const response = await fetch(`${servers[index % 2]!.url}/v1/matting?async=true`, { method: "POST", headers: { "x-api-key": apiKey }, body: form });
      await response.arrayBuffer();
      const header = (name: string) => response.headers.get(name);
      answers.push({ status: response.status, limit: header("x-ratelimit-limit"), remaining: header("x-ratelimit-remaining"), reset: header("x-ratelimit-reset"), retryAfter: header("retry-after") });
    }
    const admitted = answers.filter((answer) => answer.status === 202);
    const limited = answers.filter((answer) => answer.status === 429);
    assert.equal(admitted.length, 10, JSON.stringify(answers));
    assert.equal(limited.length, 10);
    assert.deepEqual(answers.slice(0, 10).map((answer) => answer.status), Array(10).fill(202), "the first ten, on both replicas, are the admitted ones");
    assert.deepEqual(
      admitted.map((answer) => answer.remaining),
      ["9", "8", "7", "6", "5", "4", "3", "2", "1", "0"],
    );
    const nowSeconds = Date.now() / 1000;
    for (const answer of [...admitted, ...limited]) {
      assert.equal(answer.limit, "10");
      assert.ok(Number(answer.reset) > nowSeconds && Number(answer.reset) <= nowSeconds + 61, `X-RateLimit-Reset ${answer.reset}`);
    }
    for (const answer of limited) {
      assert.equal(answer.remaining, "0");
      assert.ok(Number(answer.retryAfter) >= 1 && Number(answer.retryAfter) <= 6, `Retry-After ${answer.retryAfter}`);
    }
  });
});
