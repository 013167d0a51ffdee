// REST for the caller's webhooks: the account's URL (GET/PUT /v1/webhook), its signing secret
// (GET reads, POST rotates /v1/webhook/secret), and a job's delivery log and redelivery. The
// REST face of AccountWebhooks (account-webhooks.ts), which WebhookService shares.
import { timestampDate, type Timestamp } from "@bufbuild/protobuf/wkt";
import { Code } from "@connectrpc/connect";
import { reasonError } from "../../common/errors.ts";
import { WebhookDeliveryStatus, type WebhookDelivery } from "../../common/gen/cutline/orchestrator/v1/orchestrator_service_pb.ts";
import { deliveryNotFound, type AccountWebhooks } from "../account-webhooks.ts";
import type { JobReads } from "../job-reads.ts";
import { headersOf } from "./upload.admission.ts";
import { readJson, writeJson, type RestRoute } from "./route-table.ts";

/** Largest PUT /v1/webhook body, in bytes: one URL (outbound URLs are shorter still). */
const WEBHOOK_BODY_BYTES_MAX = 16 * 1024;

const STATUS_NAMES: Readonly<Record<WebhookDeliveryStatus, string>> = {
  [WebhookDeliveryStatus.UNSPECIFIED]: "pending",
  [WebhookDeliveryStatus.PENDING]: "pending",
  [WebhookDeliveryStatus.DELIVERED]: "delivered",
  [WebhookDeliveryStatus.FAILED]: "failed",
};

const isoOf = (timestamp: Timestamp | undefined) => (timestamp ? timestampDate(timestamp).toISOString() : null);

/** A delivery as JSON: what was sent, where, and each attempt's answer. */
export function deliveryJson(delivery: WebhookDelivery) {
  return {
    id: delivery.id,
    job_id: delivery.jobId,
    type: delivery.type,
    url: delivery.url,
    status: STATUS_NAMES[delivery.status],
    attempts: delivery.attempts,
    next_attempt_at: isoOf(delivery.nextAttemptAt),
    last_status_code: delivery.lastStatusCode === 0 ? null : delivery.lastStatusCode,
    last_error: delivery.lastError === "" ? null : delivery.lastError,
    created_at: isoOf(delivery.createdAt),
    delivered_at: isoOf(delivery.deliveredAt),
    body: delivery.body,
    attempt_log: delivery.attemptLog.map((attempt) => ({
      attempt: attempt.attempt,
      attempted_at: isoOf(attempt.attemptedAt),
      status_code: attempt.statusCode === 0 ? null : attempt.statusCode,
      error: attempt.error === "" ? null : attempt.error,
      duration_ms: attempt.durationMs,
    })),
  };
}

/** `{"webhook_url": "https://..."}`; null or "" clears it. */
function webhookUrlOf(body: unknown): string {
  const example = 'send {"webhook_url":"https://example.com/hook"}, or {"webhook_url":null} to clear it';
  if (typeof body !== "object" || body === null || Array.isArray(body) || !("webhook_url" in body)) {
    throw reasonError(Code.InvalidArgument, "invalid_request", `the body has no webhook_url: ${example}`);
  }
  const value = (body as { webhook_url: unknown }).webhook_url;
  if (value === null) return "";
  if (typeof value !== "string") throw reasonError(Code.InvalidArgument, "invalid_webhook_url", `webhook_url must be a string URL or null; ${example}`);
  return value.trim();
}

export function webhookRoutes(webhooks: AccountWebhooks, jobReads: JobReads): RestRoute[] {
  const caller = (request: Parameters<RestRoute["handle"]>[0]) => webhooks.caller(headersOf(request));
  const urlJson = (webhookUrl: string) => ({ webhook_url: webhookUrl === "" ? null : webhookUrl });
  return [
    {
      method: "GET",
      path: "/v1/webhook",
      async handle(request, response) {
        writeJson(response, 200, urlJson(await webhooks.url(await caller(request))));
      },
    },
    {
      method: "PUT",
      path: "/v1/webhook",
      async handle(request, response) {
        const owner = await caller(request);
        const webhookUrl = webhookUrlOf(await readJson(request, WEBHOOK_BODY_BYTES_MAX));
        writeJson(response, 200, urlJson(await webhooks.setUrl(owner, webhookUrl)));
      },
    },
    {
      method: "GET",
      path: "/v1/webhook/secret",
      async handle(request, response) {
        writeJson(response, 200, { secret: await webhooks.secret(await caller(request)) });
      },
    },
    {
      method: "POST",
      path: "/v1/webhook/secret",
      async handle(request, response) {
        writeJson(response, 200, { secret: await webhooks.rotateSecret(await caller(request)) });
      },
    },
    {
      method: "GET",
      path: "/v1/jobs/{id}/webhook-deliveries",
      async handle(request, response, params) {
        const owner = await caller(request);
        // The path names a job: one that is not the caller's is not found, rather than an empty log.
        await jobReads.ownJob(owner, params.id!);
        writeJson(response, 200, { deliveries: (await webhooks.deliveries(owner, params.id!)).map(deliveryJson) });
      },
    },
    {
      method: "POST",
      path: "/v1/jobs/{id}/webhook-deliveries/{delivery_id}/redeliver",
      async handle(request, response, params) {
        const owner = await caller(request);
        const jobId = params.id!;
        const deliveryId = params.delivery_id!;
        await jobReads.ownJob(owner, jobId);
        // Checked before the attempt: a delivery of another job must not be sent by this path.
        const deliveries = await webhooks.deliveries(owner, jobId);
        if (!deliveries.some((delivery) => delivery.id === deliveryId)) throw deliveryNotFound(deliveryId);
        writeJson(response, 200, { delivery: deliveryJson(await webhooks.redeliver(owner, deliveryId)) });
      },
    },
  ];
}
