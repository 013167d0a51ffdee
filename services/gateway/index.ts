import type { Client, ConnectRouter } from "@connectrpc/connect";
import type { Kysely } from "kysely";
import type { BillingService } from "../common/gen/cutline/billing/v1/billing_service_pb.ts";
import { ImageService } from "../common/gen/cutline/gateway/v1/image_service_pb.ts";
import { JobService } from "../common/gen/cutline/gateway/v1/job_service_pb.ts";
import { WebhookService } from "../common/gen/cutline/gateway/v1/webhook_service_pb.ts";
import { KeyService } from "../common/gen/cutline/gateway/v1/key_service_pb.ts";
import type { OrchestratorService } from "../common/gen/cutline/orchestrator/v1/orchestrator_service_pb.ts";
import type { Logger } from "../common/logging.ts";
import { migrateToLatest } from "../common/migrate.ts";
import type { BlobStore } from "../common/ports/blob-store.ts";
import type { HttpRequest, HttpResponse, HttpRoutes } from "../common/server.ts";
import type { ConnectError } from "@connectrpc/connect";
import { AccountService } from "../common/gen/cutline/gateway/v1/account_service_pb.ts";
import { AccountReads } from "./account-reads.ts";
import { createAccountHandlers } from "./handlers/account.handlers.ts";
import { accountRoutes } from "./handlers/account.routes.ts";
import { docsRoutes } from "./handlers/docs.routes.ts";
import { createRouteTable, routeKeys, type RestRoute, type RouteKey } from "./handlers/route-table.ts";
import { createAdminRoutes } from "./handlers/admin.routes.ts";
import { createImageHandlers } from "./handlers/image.handlers.ts";
import { createKeyHandlers } from "./handlers/key.handlers.ts";
import { createJobHandlers } from "./handlers/job.handlers.ts";
import { createRestRoutes } from "./handlers/rest.routes.ts";
import { createWebhookHandlers } from "./handlers/webhook.handlers.ts";
import { UploadAdmissions } from "./handlers/upload.admission.ts";
import { ImageJobs, type ImageJobsOptions, type UploadInspector } from "./image-jobs.ts";
import { ApiKeyStore, type GatewaySchema } from "./store/api-key.store.ts";
import { gatewayMigrations } from "./store/migrations.ts";
import { MonthlyCallStore, type MonthlyCallSchema } from "./store/monthly-call.store.ts";

export interface GatewayDependencies {
  db: Kysely<GatewaySchema>;
  blobStore: BlobStore;
  billing: Client<typeof BillingService>;
  orchestrator: Client<typeof OrchestratorService>;
  inspect: UploadInspector;
  log: Logger;
  limits: ImageJobsOptions;
  /** Bearer token of the admin API under /admin/v1; unset, the admin API is not served. */
  adminToken?: string;
}

export interface Gateway {
  routes(router: ConnectRouter): void;
  readonly httpRoutes: HttpRoutes;
  /** Method and path of every REST route (the OpenAPI document is checked against them). */
  readonly restRoutes: readonly RouteKey[];
  /**
   * The server's `admit` hook: upload RPCs are authenticated and admitted (rate token, concurrency
   * slot) on their headers, before their payload is read; undefined lets a call in.
   */
  readonly admit: (request: HttpRequest, response: HttpResponse) => Promise<ConnectError | undefined>;
  readonly apiKeys: ApiKeyStore;
  start(): Promise<void>;
  /**
   * Makes sure `accountId` exists in billing (with its sign-up trial) and owns `key`; with no
   * key, creates a random one. Returns the key: it is shown once and stored only as a hash.
   */
  provisionAccount(accountId: string, options?: { key?: string; planCode?: string; grantTrial?: boolean }): Promise<string>;
}

export function createGateway(deps: GatewayDependencies): Gateway {
  const apiKeys = new ApiKeyStore(deps.db, { onLastUsedWriteFailed: (error) => deps.log.warn({ err: error }, "could not record when an API key was last used") });
  // The gateway's tables share its one database; each store sees its own.
  const monthlyCalls = new MonthlyCallStore(deps.db as unknown as Kysely<MonthlyCallSchema>);
  const imageJobs = new ImageJobs(deps.billing, deps.orchestrator, deps.blobStore, deps.inspect, deps.log, deps.limits, monthlyCalls);
  const admissions = new UploadAdmissions(apiKeys, imageJobs);
  const accountReads = new AccountReads(deps.billing, monthlyCalls, { longestSide: deps.limits.longestSide, readRequestsPerMinute: deps.limits.readRequestsPerMinute });
  const matting = createRestRoutes(apiKeys, imageJobs, deps.limits.uploadBytesMax, deps.log);
  const restRoutes: RestRoute[] = [
    { method: "POST", path: "/v1/matting", handle: async (request, response) => void (await matting(request, response)) },
    ...accountRoutes(apiKeys, accountReads),
    ...docsRoutes(),
  ];
  return {
    apiKeys,
    httpRoutes: withAdminRoutes(deps, apiKeys, createRouteTable(restRoutes, deps.log)),
    restRoutes: routeKeys(restRoutes),
    admit: admissions.admit,
    routes(router) {
      router.service(AccountService, createAccountHandlers(apiKeys, accountReads));
      router.service(ImageService, createImageHandlers(admissions, imageJobs));
      router.service(JobService, createJobHandlers(apiKeys, admissions, imageJobs, deps.orchestrator));
      router.service(WebhookService, createWebhookHandlers(apiKeys, imageJobs, deps.orchestrator));
      router.service(KeyService, createKeyHandlers(apiKeys, deps.billing));
    },
    async start() {
      await migrateToLatest(deps.db, "gateway", gatewayMigrations);
    },
    async provisionAccount(accountId, options = {}) {
      await deps.billing.createAccount({ accountId, planCode: options.planCode ?? "", grantTrial: options.grantTrial });
      const { key } = await apiKeys.create(accountId, { key: options.key, label: "provisioned" });
      return key;
    },
  };
}

/** /admin/v1 before the other plain-HTTP routes, when the gateway has an admin token. */
function withAdminRoutes(deps: GatewayDependencies, apiKeys: ApiKeyStore, next: HttpRoutes): HttpRoutes {
  if (!deps.adminToken) return next;
  const admin = createAdminRoutes({ token: deps.adminToken, apiKeys, billing: deps.billing, orchestrator: deps.orchestrator, log: deps.log });
  return async (request, response) => (await admin(request, response)) || next(request, response);
}
