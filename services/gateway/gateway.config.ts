import { commonConfigSpec, clientConfigSpec } from "../common/common.config.ts";
import { ConfigError, integer, list, loadConfig, optionalText, port, text, type Variable } from "../common/config.loader.ts";
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
  ...clientConfigSpec,
  PORT: port("Gateway port (Connect, gRPC, gRPC-Web, REST).", 8080),
  UPLOAD_BYTES_MAX: integer("Largest upload accepted, in bytes.", 25 * 1024 * 1024, { min: 1 }),
  SYNC_TIMEOUT_MS: integer("How long a synchronous call waits for its job, in milliseconds.", 120_000, { min: 1000 }),
  READ_REQUESTS_PER_MINUTE: integer("Job reads (GetJob, WatchJob, CancelJob) allowed per account per minute, in requests; 0 for no limit.", 600, { min: 0 }),
  WATCH_STREAMS_MAX: integer("WatchJob streams open at once per account, in streams; 0 for no limit.", 16, { min: 0 }),
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
  // Result URLs: signed with the key the orchestrator shares (webhooks carry them too).
  ...resultUrlConfigSpec,
  // The same limits inference enforces: the gateway refuses and prices uploads by them before any hold.
  ...imageLimitsConfigSpec,
  // image_url and bg_image_url are fetched through the outbound guard, under the same variables as webhooks.
  ...outboundConfigSpec,
} as const;

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
