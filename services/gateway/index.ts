import type { Client, ConnectRouter } from "@connectrpc/connect";
import type { Kysely } from "kysely";
import type { BillingService } from "../common/gen/cutline/billing/v1/billing_service_pb.ts";
import { ImageService } from "../common/gen/cutline/gateway/v1/image_service_pb.ts";
import { JobService } from "../common/gen/cutline/gateway/v1/job_service_pb.ts";
import { WebhookService } from "../common/gen/cutline/gateway/v1/webhook_service_pb.ts";
import { KeyService } from "../common/gen/cutline/gateway/v1/key_service_pb.ts";
import type { OrchestratorService } from "../common/gen/cutline/orchestrator/v1/orchestrator_service_pb.ts";
import type { Logger } from "../common/logging.ts";
import { migrateOrCheck } from "../common/migrate.ts";
import type { BlobStore } from "../common/ports/blob-store.ts";
import type { HttpRequest, HttpResponse, HttpRoutes } from "../common/server.ts";
import { markHttpRoute, measureHttpRoutes } from "../common/metrics.ts";
import type { ConnectError } from "@connectrpc/connect";
import { AccountService } from "../common/gen/cutline/gateway/v1/account_service_pb.ts";
import { AccountReads } from "./account-reads.ts";
import { AccountWebhooks } from "./account-webhooks.ts";
import { createAccountHandlers } from "./handlers/account.handlers.ts";
import { accountRoutes } from "./handlers/account.routes.ts";
import { docsRoutes } from "./handlers/docs.routes.ts";
import { webAppRoutes } from "./handlers/web-app.routes.ts";
import { settingsRoutes } from "./handlers/settings.routes.ts";
import { createRouteTable, routeKeys, type RestRoute, type RouteKey } from "./handlers/route-table.ts";
import { createAdminRoutes, OWNER_MEMBER_ID } from "./handlers/admin.routes.ts";
import { randomBytes } from "node:crypto";
import { createImageHandlers } from "./handlers/image.handlers.ts";
import { createKeyHandlers } from "./handlers/key.handlers.ts";
import { createJobHandlers } from "./handlers/job.handlers.ts";
import { createWebhookHandlers } from "./handlers/webhook.handlers.ts";
import { webhookRoutes } from "./handlers/webhooks.routes.ts";
import { createBatchesRoutes } from "./handlers/batches.routes.ts";
import { createJobsRoutes } from "./handlers/jobs.routes.ts";
import { createMattingRoutes, createSmartCropRoutes, quoteUpload } from "./handlers/matting.routes.ts";
import type { RestDependencies } from "./handlers/rest-support.ts";
import { createResultsRoutes } from "./handlers/results.routes.ts";
import { photoroomNotFound, photoroomRoutes } from "./handlers/photoroom.routes.ts";
import { removeBgNotFound, removeBgRoutes } from "./handlers/removebg.routes.ts";
import { UploadAdmissions } from "./handlers/upload.admission.ts";
import { ImageJobs, type ImageJobsOptions, type UploadInspector } from "./image-jobs.ts";
import { VideoService } from "../common/gen/cutline/gateway/v1/video_service_pb.ts";
import { mediaBinaries, type MediaBinariesSettings } from "../common/video/ffmpeg-binaries.ts";
import { createVideoHandlers } from "./handlers/video.handlers.ts";
import { createVideoRoutes, isVideoQuote, quoteVideoUpload, VIDEO_MATTING_PATH } from "./handlers/video.routes.ts";
import { VideoJobs } from "./video-jobs.ts";
import { ImageUrls } from "./image-urls.ts";
import { JobBatches } from "./job-batches.ts";
import { JobReads } from "./job-reads.ts";
import { createOutboundFetcher, outboundConfigSpec, outboundPolicyOf, type OutboundFetcher, type OutboundPolicy } from "../common/outbound.ts";
import { loadConfig } from "../common/config.loader.ts";
import { ResultLinks, type ResultLinksOptions } from "./result-links.ts";
import { ApiKeyStore, type GatewaySchema } from "./store/api-key.store.ts";
import { BatchStore, type BatchSchema } from "./store/batch.store.ts";
import { gatewayMigrationSet } from "./store/migrations.ts";
import { MonthlyCallStore, type MonthlyCallSchema } from "./store/monthly-call.store.ts";
import { PaymentService } from "../common/gen/cutline/gateway/v1/payment_service_pb.ts";
import { ManualPaymentProvider } from "../common/adapters/payment-provider.manual.ts";
import type { PaymentProvider } from "../common/ports/payment-provider.ts";
import { createPaymentHandlers } from "./handlers/payment.handlers.ts";
import { paymentRoutes } from "./handlers/payments.routes.ts";
import type { AccountChanges } from "./account-changes.ts";
import { Payments } from "./payments.ts";
import { PaymentStore, type PaymentSchema } from "./store/payment.store.ts";

/** VIDEO_BYTES_MAX's default: 1 GiB, the pro plans' video limit. */
const DEFAULT_VIDEO_BYTES_MAX = 1024 * 1024 * 1024;

/** Room for a Connect message's other fields and framing on top of its image bytes. */
const MESSAGE_OVERHEAD_BYTES = 1024 * 1024;

export interface GatewayDependencies {
  /** Run pending migrations at start (MIGRATE_ON_START); false only checks that none is missing. @default true */
  migrateOnStart?: boolean;
  db: Kysely<GatewaySchema>;
  blobStore: BlobStore;
  billing: Client<typeof BillingService>;
  orchestrator: Client<typeof OrchestratorService>;
  inspect: UploadInspector;
  log: Logger;
  limits: ImageJobsOptions & {
    batchItemsMax?: number;
    batchBytesMax?: number;
    /** VIDEO_BYTES_MAX: the largest video upload whatever the plan. @default 1 GiB */
    videoBytesMax?: number;
    /** FFMPEG_PATH and FFPROBE_PATH, for the probe before a video is quoted. @default the packaged binaries */
    mediaBinaries?: MediaBinariesSettings;
  };
  /** Result URL signing (resultUrlKeyOf, CUTLINE_PUBLIC_URL, RESULT_URL_TTL_SECONDS). @default a random key kept in memory, 24 h */
  resultUrls?: ResultLinksOptions;
  /** Bearer token of the admin API under /admin/v1; unset, the admin API is not served. */
  adminToken?: string;
  /**
   * Fetches image_url and bg_image_url, and the policy it was made with (the caller closes it).
   * @default public addresses only, OUTBOUND_TIMEOUT_MS and OUTBOUND_BYTES_MAX at their defaults
   */
  outbound?: { fetcher: OutboundFetcher; policy: OutboundPolicy };
  /** The payment port (PAYMENT_PROVIDER) and the currency of prices (PAYMENT_CURRENCY). @default manual, "usd" */
  payments?: { provider: PaymentProvider; currency: string };
  /** The built web app served at / (`npm run build:web`). @default web/dist in the repository */
  webAppDirectory?: string;
  /**
   * Account changes seen on the billing client (its interceptor is on `billing`'s transport):
   * only with them are API keys and accounts kept between calls (limits.admissionCacheMs). @default none: both read on every call
   */
  accountChanges?: AccountChanges;
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
  /** Tells the gateway the URL its server listens on: result URLs are built from it when CUTLINE_PUBLIC_URL is unset. */
  listeningAt(url: string): void;
  start(): Promise<void>;
  /**
   * Makes sure `accountId` exists in billing (with its sign-up trial) and owns `key`; with no
   * key, creates a random one. Returns the key: it is shown once and stored only as a hash.
   */
  provisionAccount(accountId: string, options?: { key?: string; planCode?: string; grantTrial?: boolean }): Promise<string>;
  /** Sends overage not yet reported to the payment provider as metered usage; returns the accounts reported (see Payments). */
  reportOverage(now?: Date): Promise<number>;
}

export function createGateway(deps: GatewayDependencies): Gateway {
  // Keys and accounts are kept only where account changes are seen: else a plan change would wait out the cache.
  const admissionCacheMs = deps.accountChanges ? (deps.limits.admissionCacheMs ?? 0) : 0;
  const apiKeys = new ApiKeyStore(deps.db, { ownerCacheMs: admissionCacheMs, onLastUsedWriteFailed: (error) => deps.log.warn({ err: error }, "could not record when an API key was last used") });
  // The gateway's tables share its one database; each store sees its own.
  const monthlyCalls = new MonthlyCallStore(deps.db as unknown as Kysely<MonthlyCallSchema>);
  const imageJobs = new ImageJobs(deps.billing, deps.orchestrator, deps.blobStore, deps.inspect, deps.log, { ...deps.limits, admissionCacheMs }, monthlyCalls);
  deps.accountChanges?.onChange((accountId) => imageJobs.forgetAccount(accountId));
  const admissions = new UploadAdmissions(apiKeys, imageJobs);
  const accountReads = new AccountReads(deps.billing, monthlyCalls, { longestSide: deps.limits.longestSide, readRequestsPerMinute: deps.limits.readRequestsPerMinute });
  const resultLinks = new ResultLinks(deps.resultUrls ?? { key: randomBytes(32).toString("hex"), ttlSeconds: 24 * 60 * 60 });
  const outbound = deps.outbound ?? defaultOutbound();
  const imageUrls = new ImageUrls(outbound.fetcher, outbound.policy, { uploadBytesMax: deps.limits.uploadBytesMax, imageBytesMax: deps.limits.imageBytesMax });
  const batchBytesMax = deps.limits.batchBytesMax ?? 64 * 1024 * 1024;
  const jobReads = new JobReads(deps.orchestrator);
  const accountWebhooks = new AccountWebhooks(apiKeys, imageJobs, deps.orchestrator);
  // The same gateway database; its schema type lists api_keys, the batch store's the batch tables.
  const batches = new BatchStore(deps.db as unknown as Kysely<BatchSchema>);
  const jobBatches = new JobBatches(imageJobs, imageUrls, jobReads, batches, deps.log, { batchItemsMax: deps.limits.batchItemsMax ?? 50 });
  const payments = new Payments(deps.billing, deps.payments?.provider ?? new ManualPaymentProvider(), new PaymentStore(deps.db as unknown as Kysely<PaymentSchema>), deps.log, {
    currency: deps.payments?.currency ?? "usd",
  });
  const rest: RestDependencies = {
    apiKeys,
    imageJobs,
    imageUrls,
    orchestrator: deps.orchestrator,
    blobs: deps.blobStore,
    resultLinks,
    jobReads,
    jobBatches,
    log: deps.log,
    limits: {
      uploadBytesMax: deps.limits.uploadBytesMax,
      batchBytesMax,
    },
  };
  const videoJobs = new VideoJobs(deps.billing, deps.orchestrator, deps.blobStore, deps.inspect, deps.log, {
    videoBytesMax: deps.limits.videoBytesMax ?? DEFAULT_VIDEO_BYTES_MAX,
    uploadBytesMax: deps.limits.uploadBytesMax,
    holdTtlSeconds: deps.limits.holdTtlSeconds,
    // Resolved (and logged) at the first video, not at start: a gateway without ffmpeg still serves images.
    binaries: () => mediaBinaries(deps.limits.mediaBinaries ?? {}, deps.log),
  });
  const families = { video: createVideoRoutes({ ...rest, videoJobs }), matting: createMattingRoutes(rest), smartCrop: createSmartCropRoutes(rest), jobs: createJobsRoutes(rest), results: createResultsRoutes(rest), batches: createBatchesRoutes(rest) };
  // Each family matches its own paths again; the table keeps the method + path list enumerable (OpenAPI).
  const via = (family: HttpRoutes) => async (request: HttpRequest, response: HttpResponse) => void (await family(request, response));
  const restRoutes: RestRoute[] = [
    { method: "POST", path: "/v1/matting", handle: via(families.matting) },
    { method: "POST", path: "/v1/smart-crop", handle: via(families.smartCrop) },
    { method: "POST", path: "/v1/matting/batch", handle: via(families.batches) },
    { method: "POST", path: VIDEO_MATTING_PATH, handle: via(families.video) },
    { method: "GET", path: "/v1/batches/{id}", handle: via(families.batches) },
    { method: "GET", path: "/v1/jobs", handle: via(families.jobs) },
    { method: "GET", path: "/v1/jobs/{id}", handle: via(families.jobs) },
    { method: "DELETE", path: "/v1/jobs/{id}", handle: via(families.jobs) },
    { method: "GET", path: "/v1/results/{id}", handle: via(families.results) },
    // A video body is quoted by the video path's own checks and pricing; any other upload by the image path's.
    ...accountRoutes(apiKeys, accountReads, (request, response, owner) =>
      isVideoQuote(request) ? quoteVideoUpload({ ...rest, videoJobs }, request, response, owner) : quoteUpload(rest, request, response, owner),
    ),
    ...settingsRoutes(apiKeys, { orchestrator: deps.orchestrator, billing: deps.billing }),
    ...webhookRoutes(accountWebhooks, jobReads),
    ...docsRoutes(),
    ...paymentRoutes(apiKeys, deps.billing, payments),
    // Drop-in vendor routes, answering in their vendor's error shape.
    ...removeBgRoutes(rest, accountReads),
    ...photoroomRoutes(rest, accountReads),
  ];
  const routeTable = createRouteTable(restRoutes, deps.log);
  const removeBgMissing = removeBgNotFound(deps.log);
  const photoroomMissing = photoroomNotFound(deps.log);
  const vendorNotFound: HttpRoutes = async (request, response) => (await removeBgMissing(request, response)) || photoroomMissing(request, response);
  // The web app last: it answers only GET/HEAD of paths no API route claims.
  const webApp = webAppRoutes(deps.log, { directory: deps.webAppDirectory });
  // The web app's files share one route label: its paths are the app's, not the API's.
  const webAppRoute: HttpRoutes = async (request, response) => {
    const served = await webApp(request, response);
    if (served) markHttpRoute(request, "/(web app)");
    return served;
  };
  return {
    apiKeys,
    httpRoutes: measureHttpRoutes(
      withAdminRoutes(deps, apiKeys, async (request, response) => (await routeTable(request, response)) || (await vendorNotFound(request, response)) || (await webAppRoute(request, response))),
    ),
    restRoutes: routeKeys(restRoutes),
    listeningAt: (url) => resultLinks.listeningAt(url),
    admit: admissions.admit,
    routes(router) {
      router.service(AccountService, createAccountHandlers(apiKeys, accountReads, { orchestrator: deps.orchestrator, billing: deps.billing }));
      router.service(ImageService, createImageHandlers(admissions, imageJobs, imageUrls));
      // SubmitBatch is one message holding every image: JobService reads up to a whole batch
      // (BATCH_BYTES_MAX, as POST /v1/matting/batch does); the other services keep the server's limit.
      router.service(JobService, createJobHandlers({ apiKeys, admissions, imageJobs, orchestrator: deps.orchestrator, jobReads, jobBatches, imageUrls }), {
        readMaxBytes: Math.max(deps.limits.uploadBytesMax, batchBytesMax) + MESSAGE_OVERHEAD_BYTES,
      });
      // A video arrives whole in its message: up to VIDEO_BYTES_MAX (POST /v1/video/matting streams instead).
      router.service(VideoService, createVideoHandlers(admissions, videoJobs), { readMaxBytes: (deps.limits.videoBytesMax ?? DEFAULT_VIDEO_BYTES_MAX) + MESSAGE_OVERHEAD_BYTES });
      router.service(WebhookService, createWebhookHandlers(accountWebhooks));
      router.service(KeyService, createKeyHandlers(apiKeys, deps.billing));
      router.service(PaymentService, createPaymentHandlers(apiKeys, deps.billing, payments));
    },
    async start() {
      await migrateOrCheck(deps.db, gatewayMigrationSet, deps.migrateOnStart ?? true);
    },
    reportOverage: (now) => payments.reportOverage(now),
    async provisionAccount(accountId, options = {}) {
      // With its owner as a member, so the account-wide key's calls are recorded against the owner.
      await deps.billing.createAccount({ accountId, planCode: options.planCode ?? "", grantTrial: options.grantTrial, ownerMemberId: OWNER_MEMBER_ID });
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

/** The strictest fetcher (public addresses only; the variables' defaults), for a gateway wired without one. */
function defaultOutbound(): { fetcher: OutboundFetcher; policy: OutboundPolicy } {
  const policy = outboundPolicyOf(loadConfig(outboundConfigSpec, {}));
  return { fetcher: createOutboundFetcher(policy), policy };
}
