import { clientConfigSpec, commonConfigSpec, databaseConfigSpec } from "../common/common.config.ts";
import { integer, loadConfig, port } from "../common/config.loader.ts";
import { outboundConfigSpec, outboundPolicyOf } from "../common/outbound.ts";
import { createResultUrlSigner, resultUrlConfigSpec } from "../common/result-urls.ts";
import type { WebhookOptions } from "./webhooks.ts";
import { JOB_TIMEOUT_MS_DEFAULT, VIDEO_JOB_TIMEOUT_MS_PER_SECOND_DEFAULT } from "./job-lifecycle.ts";

export const orchestratorConfigSpec = {
  ...commonConfigSpec,
  ...databaseConfigSpec,
  BILLING_URL: clientConfigSpec.BILLING_URL,
  SERVICE_CALL_TIMEOUT_MS: clientConfigSpec.SERVICE_CALL_TIMEOUT_MS,
  JOB_QUIET_MS_MAX: integer(
    "A queued or running job with no change for this long is reconciled (re-queued, or failed and refunded), in milliseconds; keep it below HOLD_TTL_SECONDS.",
    300_000,
    { min: 1000 },
  ),
  JOB_REQUEUES_MAX: integer("Re-queues of a quiet job before it is failed and its hold released.", 2, { min: 0, max: 100 }),
  JOB_TIMEOUT_MS: integer(
    "A job not finished this long after its submission (queue wait included) fails with job_timeout and its credits are returned; a later result is discarded, in milliseconds.",
    JOB_TIMEOUT_MS_DEFAULT,
    { min: 1000, max: 7 * 86_400_000 },
  ),
  VIDEO_JOB_TIMEOUT_MS_PER_SECOND: integer(
    "Added to JOB_TIMEOUT_MS for each started second of a video job, so a long video gets the time it needs; past it the job fails with job_timeout, its worker is stopped and its credits returned, in milliseconds per second of video.",
    VIDEO_JOB_TIMEOUT_MS_PER_SECOND_DEFAULT,
    { min: 0, max: 3_600_000 },
  ),
  RECONCILE_INTERVAL_MS: integer("How often the orchestrator looks for quiet jobs, in milliseconds.", 60_000, { min: 100 }),
  RETENTION_SWEEP_INTERVAL_MS: integer(
    "How often the orchestrator deletes the input and result files of ended jobs past their account's retention, in milliseconds.",
    60_000,
    { min: 100, max: 3_600_000 },
  ),
  PORT: port("Orchestrator port (Connect, gRPC, gRPC-Web).", 8082),
  // Webhooks: signed result URLs in job.succeeded events, sent through the outbound guard.
  ...resultUrlConfigSpec,
  ...outboundConfigSpec,
  WEBHOOK_RETRY_DELAY_MS_MIN: integer("Delay before a failed webhook's first retry, doubling after each failure, in milliseconds.", 10_000, { min: 10, max: 3_600_000 }),
  WEBHOOK_RETRY_DELAY_MS_MAX: integer("Longest delay between two attempts of a webhook, in milliseconds.", 3_600_000, { min: 10, max: 86_400_000 }),
  WEBHOOK_RETRY_WINDOW_MS: integer("How long after a job's end its webhook is retried before it is marked failed, in milliseconds.", 86_400_000, { min: 1000, max: 7 * 86_400_000 }),
  WEBHOOK_SEND_INTERVAL_MS: integer("How often the orchestrator looks for webhooks due to be sent, in milliseconds.", 1000, { min: 10, max: 600_000 }),
  WEBHOOK_SEND_BATCH_MAX: integer("Webhooks sent at once per pass, in deliveries.", 16, { min: 1, max: 1000 }),
} as const;

export type OrchestratorConfig = ReturnType<typeof loadOrchestratorConfig>;

export function loadOrchestratorConfig(environment: NodeJS.ProcessEnv = process.env) {
  return loadConfig(orchestratorConfigSpec, environment);
}

/** The reconciler's settings as the orchestrator takes them. */
export function reconcileOptions(config: Pick<OrchestratorConfig, "JOB_QUIET_MS_MAX" | "JOB_REQUEUES_MAX" | "JOB_TIMEOUT_MS" | "VIDEO_JOB_TIMEOUT_MS_PER_SECOND" | "RECONCILE_INTERVAL_MS">) {
  return {
    quietMsMax: config.JOB_QUIET_MS_MAX,
    requeuesMax: config.JOB_REQUEUES_MAX,
    timeoutMs: config.JOB_TIMEOUT_MS,
    videoTimeoutMsPerSecond: config.VIDEO_JOB_TIMEOUT_MS_PER_SECOND,
    intervalMs: config.RECONCILE_INTERVAL_MS,
  };
}

/**
 * Webhook settings as the orchestrator takes them. `publicUrl` is where clients reach the gateway
 * (CUTLINE_PUBLIC_URL, else the gateway's own URL in single-node mode, passed per call to
 * `resultUrlFor` since it is known only once the gateway listens); `key` signs result URLs.
 */
export function webhookWiringOf(config: OrchestratorConfig, signing: { key: string; publicUrl: string }) {
  const signerFor = (publicUrl: string) => createResultUrlSigner({ key: signing.key, publicUrl, ttlSeconds: config.RESULT_URL_TTL_SECONDS });
  const signer = signerFor(signing.publicUrl);
  const options: WebhookOptions = {
    retryDelayMsMin: config.WEBHOOK_RETRY_DELAY_MS_MIN,
    retryDelayMsMax: config.WEBHOOK_RETRY_DELAY_MS_MAX,
    retryWindowMs: config.WEBHOOK_RETRY_WINDOW_MS,
    sendBatchMax: config.WEBHOOK_SEND_BATCH_MAX,
    attemptTimeoutMs: config.OUTBOUND_TIMEOUT_MS,
    allowLoopback: config.CUTLINE_OUTBOUND_ALLOW_LOOPBACK,
  };
  return { policy: outboundPolicyOf(config), options, resultUrlFor: (jobId: string, publicUrl?: string) => (publicUrl === undefined ? signer : signerFor(publicUrl)).urlFor(jobId), sendIntervalMs: config.WEBHOOK_SEND_INTERVAL_MS };
}
