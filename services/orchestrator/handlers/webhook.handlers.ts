import { create } from "@bufbuild/protobuf";
import { timestampFromDate } from "@bufbuild/protobuf/wkt";
import { Code, ConnectError, type Client, type ServiceImpl } from "@connectrpc/connect";
import type { BillingService } from "../../common/gen/cutline/billing/v1/billing_service_pb.ts";
import {
  WebhookAttemptSchema,
  WebhookDeliverySchema,
  WebhookDeliveryStatus,
  type OrchestratorService,
  type WebhookDelivery,
} from "../../common/gen/cutline/orchestrator/v1/orchestrator_service_pb.ts";
import type { WebhookAttemptRow, WebhookDeliveryRow, WebhookDeliveryStatus as StoredStatus } from "../store/webhook.store.ts";
import type { Webhooks } from "../webhooks.ts";

const STATUS: Record<StoredStatus, WebhookDeliveryStatus> = {
  pending: WebhookDeliveryStatus.PENDING,
  delivered: WebhookDeliveryStatus.DELIVERED,
  failed: WebhookDeliveryStatus.FAILED,
};

export function deliveryMessage(entry: { delivery: WebhookDeliveryRow; attempts: WebhookAttemptRow[] }): WebhookDelivery {
  const { delivery, attempts } = entry;
  return create(WebhookDeliverySchema, {
    id: delivery.id,
    jobId: delivery.job_id,
    accountId: delivery.account_id,
    url: delivery.url,
    type: delivery.type,
    status: STATUS[delivery.status],
    attempts: delivery.attempts,
    nextAttemptAt: delivery.status === "pending" ? timestampFromDate(delivery.next_attempt_at) : undefined,
    lastStatusCode: delivery.last_status_code ?? 0,
    lastError: delivery.last_error ?? "",
    createdAt: timestampFromDate(delivery.created_at),
    deliveredAt: delivery.delivered_at ? timestampFromDate(delivery.delivered_at) : undefined,
    body: delivery.body,
    attemptLog: attempts.map((attempt) =>
      create(WebhookAttemptSchema, {
        attempt: attempt.attempt,
        attemptedAt: timestampFromDate(attempt.attempted_at),
        statusCode: attempt.status_code ?? 0,
        error: attempt.error ?? "",
        durationMs: attempt.duration_ms,
      }),
    ),
  });
}

type WebhookMethods = "getWebhookSecret" | "rotateWebhookSecret" | "setAccountWebhook" | "getAccountWebhook" | "listWebhookDeliveries" | "redeliverWebhook";

export function createWebhookHandlers(webhooks: Webhooks, billing: Client<typeof BillingService>): Pick<ServiceImpl<typeof OrchestratorService>, WebhookMethods> {
  // Secrets and URLs are kept only for accounts billing knows: an unknown id is account_not_found.
  async function knownAccount(accountId: string): Promise<string> {
    if (accountId === "") throw new ConnectError("account_id is required", Code.InvalidArgument);
    await billing.getAccount({ accountId });
    return accountId;
  }
  return {
    async getWebhookSecret(request) {
      return { secret: await webhooks.secretOf(await knownAccount(request.accountId)) };
    },
    async rotateWebhookSecret(request) {
      return { secret: await webhooks.rotateSecret(await knownAccount(request.accountId)) };
    },
    async setAccountWebhook(request) {
      return { webhookUrl: await webhooks.setAccountUrl(await knownAccount(request.accountId), request.webhookUrl) };
    },
    async getAccountWebhook(request) {
      return { webhookUrl: await webhooks.accountUrl(await knownAccount(request.accountId)) };
    },
    async listWebhookDeliveries(request) {
      if (request.jobId === "") throw new ConnectError("job_id is required", Code.InvalidArgument);
      return { deliveries: (await webhooks.deliveriesOf(request.jobId, request.accountId)).map(deliveryMessage) };
    },
    async redeliverWebhook(request) {
      if (request.deliveryId === "") throw new ConnectError("delivery_id is required", Code.InvalidArgument);
      return { delivery: deliveryMessage(await webhooks.redeliver(request.deliveryId, request.accountId)) };
    },
  };
}
