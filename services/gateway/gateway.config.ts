import { ManualPaymentProvider } from "../common/adapters/payment-provider.manual.ts";
import { StripePaymentProvider } from "../common/adapters/payment-provider.stripe.ts";
import type { PaymentProvider } from "../common/ports/payment-provider.ts";
import { commonConfigSpec, clientConfigSpec, databaseConfigSpec } from "../common/common.config.ts";
import { boolean, ConfigError, integer, list, loadConfig, oneOf, optionalText, port, text, url, type Variable } from "../common/config.loader.ts";
import { keptSecretOf } from "../common/kept-secret.ts";
import { ADMIN_TOKEN_LENGTH_MIN } from "./domain/admin-token.ts";
import { imageLimitsConfigSpec, longestSideLimitsOf } from "../common/images/image-limits.ts";
import { outboundConfigSpec } from "../common/outbound.ts";
import { mediaBinariesConfigSpec, type MediaBinariesSettings } from "../common/video/ffmpeg-binaries.ts";
import { resultUrlConfigSpec, resultUrlKeyOf } from "../common/result-urls.ts";
import type { ImageJobsOptions } from "./image-jobs.ts";
import type { ResultLinksOptions } from "./result-links.ts";

export const gatewayConfigSpec = {
  ...commonConfigSpec,
  ...databaseConfigSpec,
  ...clientConfigSpec,
  PORT: port("Gateway port (Connect, gRPC, gRPC-Web, REST).", 8080),
  UPLOAD_BYTES_MAX: integer(
    "Ceiling on any upload, above every plan's own limit (the plans file's maxUploadBytes, 25 MiB on every shipped plan); raise it, and IMAGE_BYTES_MAX, to let a larger plan limit through (bytes).",
    25 * 1024 * 1024,
    { min: 1 },
  ),
  SYNC_TIMEOUT_MS: integer("How long a synchronous call waits for its job, in milliseconds.", 120_000, { min: 1000 }),
  READ_REQUESTS_PER_MINUTE: integer("Job reads (GetJob, WatchJob, CancelJob) allowed per account per minute, in requests; 0 for no limit.", 600, { min: 0 }),
  ADMISSION_CACHE_MS: integer(
    "How long the gateway keeps what it admits a call by, in milliseconds: the API key's owner and the account's plan, members and billing cycle, so a call costs no query for them. A change made through this gateway (a key revoked, a plan changed by the admin API or a payment, a member added) applies to the next call; one made through another gateway replica within this time. 0 reads both on every call.",
    2000,
    { min: 0, max: 60_000 },
  ),
  WATCH_STREAMS_MAX: integer("WatchJob streams open at once per account, in streams; 0 for no limit.", 16, { min: 0 }),
  RATE_LIMIT_SHARED: boolean(
    "Count each plan's requests per minute in the gateway's database, so every gateway replica on it shares one budget; false counts per replica (N replicas admit up to N times the rate). Single-node mode (one gateway), and a gateway on PGlite (no DATABASE_URL), count in memory whatever this says.",
    true,
  ),
  RATE_LIMIT_STORE_TIMEOUT_MS: integer(
    "A per-minute check the shared store has not answered within this (milliseconds) is judged by the replica's own in-memory count instead, as when the store is down (fail-open to per-replica limits); Postgres cancels the check at the same time, and the replica counts alone for the next 5 s before asking the store again.",
    250,
    { min: 10, max: 10_000 },
  ),
  HOLD_TTL_SECONDS: integer("Lifetime of a credit hold before billing's sweeper releases it, in seconds.", 900, { min: 10 }),
  CUTLINE_API_KEY: optionalText("Provisions this API key for CUTLINE_ACCOUNT_ID at start (single-node and demos)."),
  CORS_ALLOWED_ORIGINS: list("Browser origins allowed to call the gateway (Connect-Web, REST), comma-separated; * allows any, empty string none.", ["*"]),
  CUTLINE_ACCOUNT_ID: text("Account provisioned at start with its sign-up trial.", "default"),
  CUTLINE_ADMIN_TOKEN: {
    description: `Secret (at least ${ADMIN_TOKEN_LENGTH_MIN} characters) of the admin API under /admin/v1 (sent as Authorization: Bearer; the admin CLI reads it too). Unset means one generated at first start and kept in $CUTLINE_DATA_DIR/admin-token.`,
    defaultValue: undefined,
    secret: true,
    parse(raw: string) {
      if (raw.length < ADMIN_TOKEN_LENGTH_MIN) throw new Error(`must be at least ${ADMIN_TOKEN_LENGTH_MIN} characters`);
      return raw;
    },
  } satisfies Variable<string | undefined>,
  VIDEO_BYTES_MAX: integer(
    "Largest video upload accepted whatever the plan (POST /v1/video/matting, VideoService.SubmitVideo), in bytes; each plan's own video limit applies below it.",
    1024 * 1024 * 1024,
    { min: 1024 },
  ),
  // The gateway probes videos (duration, size, rotation, audio) before quoting them.
  ...mediaBinariesConfigSpec,
  BATCH_ITEMS_MAX: integer("Images per POST /v1/matting/batch call, at most, in images.", 50, { min: 1, max: 100 }),
  BATCH_BYTES_MAX: integer("Largest POST /v1/matting/batch body (all its images and fields), in bytes.", 64 * 1024 * 1024, { min: 1024 }),
  PAYMENT_PROVIDER: oneOf("Who takes payments: manual (the operator grants credits through the admin API; checkout is refused) or stripe.", ["manual", "stripe"] as const, "manual"),
  PAYMENT_CURRENCY: text("ISO 4217 currency of plan and pack prices, sent to the payment provider (lower case).", "usd"),
  STRIPE_SECRET_KEY: secretText("Stripe secret API key (sk_live_... / sk_test_...); required with PAYMENT_PROVIDER=stripe."),
  STRIPE_WEBHOOK_SECRET: secretText("Signing secret of the Stripe webhook endpoint POST /v1/payments/stripe/webhook (whsec_...); required with PAYMENT_PROVIDER=stripe."),
  STRIPE_API_URL: url("Stripe API base URL (a local stripe-mock, say); unset means https://api.stripe.com."),
  STRIPE_OVERAGE_METER_EVENT: text("event_name of the Stripe billing meter that receives each subscribed account's overage, in millicredits.", "cutline_overage_millicredits"),
  PAYMENT_OVERAGE_REPORT_INTERVAL_MS: integer("How often overage not yet reported is sent to Stripe as metered usage, in milliseconds.", 15 * 60 * 1000, { min: 1000 }),
  // Result URLs: signed with the key the orchestrator shares (webhooks carry them too).
  ...resultUrlConfigSpec,
  // The same limits inference enforces: the gateway refuses and prices uploads by them before any hold.
  ...imageLimitsConfigSpec,
  // image_url and bg_image_url are fetched through the outbound guard, under the same variables as webhooks.
  ...outboundConfigSpec,
} as const;

function secretText(description: string): Variable<string | undefined> {
  return { description, defaultValue: undefined, secret: true, parse: (raw) => raw };
}

export type GatewayConfig = ReturnType<typeof loadGatewayConfig>;

export function loadGatewayConfig(environment: NodeJS.ProcessEnv = process.env) {
  return loadConfig(gatewayConfigSpec, environment);
}

/** The gateway's limits, for its main and single-node mode alike. */
export function imageJobsOptionsOf(config: GatewayConfig): ImageJobsOptions & { batchItemsMax: number; batchBytesMax: number; videoBytesMax: number; mediaBinaries: MediaBinariesSettings } {
  return {
    videoBytesMax: config.VIDEO_BYTES_MAX,
    mediaBinaries: { FFMPEG_PATH: config.FFMPEG_PATH, FFPROBE_PATH: config.FFPROBE_PATH },
    batchItemsMax: config.BATCH_ITEMS_MAX,
    batchBytesMax: config.BATCH_BYTES_MAX,
    uploadBytesMax: config.UPLOAD_BYTES_MAX,
    imageBytesMax: config.IMAGE_BYTES_MAX,
    syncTimeoutMs: config.SYNC_TIMEOUT_MS,
    holdTtlSeconds: config.HOLD_TTL_SECONDS,
    readRequestsPerMinute: config.READ_REQUESTS_PER_MINUTE,
    watchStreamsMax: config.WATCH_STREAMS_MAX,
    admissionCacheMs: config.ADMISSION_CACHE_MS,
    longestSide: longestSideLimitsOf(config),
  };
}

/**
 * The admin API's token: CUTLINE_ADMIN_TOKEN, else the one kept in $CUTLINE_DATA_DIR/admin-token
 * (generated at first start). `file` says where a kept one is, for the operator.
 */
export function adminTokenOf(config: Pick<GatewayConfig, "CUTLINE_ADMIN_TOKEN" | "CUTLINE_DATA_DIR">): { token: string; file: string | undefined; created: boolean } {
  if (config.CUTLINE_ADMIN_TOKEN) return { token: config.CUTLINE_ADMIN_TOKEN, file: undefined, created: false };
  const kept = keptSecretOf(config.CUTLINE_DATA_DIR, "admin-token");
  if (kept.secret.length < ADMIN_TOKEN_LENGTH_MIN) {
    throw new ConfigError([`${kept.file} holds a token of ${kept.secret.length} characters; the admin token must be at least ${ADMIN_TOKEN_LENGTH_MIN} (delete the file to have one generated)`]);
  }
  return { token: kept.secret, file: kept.file, created: kept.created };
}

/**
 * Result URL signing: `required` (the mesh gateway) refuses to start without CUTLINE_RESULT_URL_KEY,
 * which the orchestrator must share; a single node keeps a generated one in its data directory.
 */
export function resultLinksOptionsOf(config: GatewayConfig, options: { required: boolean }): ResultLinksOptions {
  return { key: resultUrlKeyOf(config, options), publicUrl: config.CUTLINE_PUBLIC_URL, ttlSeconds: config.RESULT_URL_TTL_SECONDS };
}

/** The payment port PAYMENT_PROVIDER names; stripe without its secrets refuses to start, naming them. */
export function paymentProviderOf(config: GatewayConfig): PaymentProvider {
  if (config.PAYMENT_PROVIDER === "manual") return new ManualPaymentProvider();
  const missing = (["STRIPE_SECRET_KEY", "STRIPE_WEBHOOK_SECRET"] as const).filter((name) => !config[name]);
  if (missing.length > 0) throw new ConfigError(missing.map((name) => `${name}: required with PAYMENT_PROVIDER=stripe`));
  const api = config.STRIPE_API_URL ? new URL(config.STRIPE_API_URL) : undefined;
  return new StripePaymentProvider({
    secretKey: config.STRIPE_SECRET_KEY!,
    webhookSecret: config.STRIPE_WEBHOOK_SECRET!,
    overageMeterEventName: config.STRIPE_OVERAGE_METER_EVENT,
    api: api && { host: api.hostname, port: Number(api.port || (api.protocol === "http:" ? 80 : 443)), protocol: api.protocol === "http:" ? "http" : "https" },
  });
}
