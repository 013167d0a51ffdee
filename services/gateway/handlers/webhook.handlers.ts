import { create } from "@bufbuild/protobuf";
import type { ServiceImpl } from "@connectrpc/connect";
import {
  WebhookAttemptSchema,
  WebhookDeliverySchema,
  type WebhookDelivery,
  type WebhookDeliveryStatus,
  type WebhookService,
} from "../../common/gen/cutline/gateway/v1/webhook_service_pb.ts";
import type { WebhookDelivery as InternalDelivery } from "../../common/gen/cutline/orchestrator/v1/orchestrator_service_pb.ts";
import type { AccountWebhooks } from "../account-webhooks.ts";

/** The public view of a delivery: no account id. The status enums share their numbers. */
export function publicDelivery(delivery: InternalDelivery): WebhookDelivery {
  return create(WebhookDeliverySchema, {
    id: delivery.id,
    jobId: delivery.jobId,
    url: delivery.url,
    type: delivery.type,
    status: delivery.status as number as WebhookDeliveryStatus,
    attempts: delivery.attempts,
    nextAttemptAt: delivery.nextAttemptAt,
    lastStatusCode: delivery.lastStatusCode,
    lastError: delivery.lastError,
    createdAt: delivery.createdAt,
    deliveredAt: delivery.deliveredAt,
    body: delivery.body,
    attemptLog: delivery.attemptLog.map((attempt) =>
      create(WebhookAttemptSchema, {
        attempt: attempt.attempt,
        attemptedAt: attempt.attemptedAt,
        statusCode: attempt.statusCode,
        error: attempt.error,
        durationMs: attempt.durationMs,
      }),
    ),
  });
}

/** WebhookService: the caller's own account only, every call authenticated by its API key. */
export function createWebhookHandlers(webhooks: AccountWebhooks): ServiceImpl<typeof WebhookService> {
  return {
    async getWebhookSecret(_request, context) {
      return { secret: await webhooks.secret(await webhooks.caller(context.requestHeader)) };
    },
    async rotateWebhookSecret(_request, context) {
      return { secret: await webhooks.rotateSecret(await webhooks.caller(context.requestHeader)) };
    },
    async getWebhookUrl(_request, context) {
      return { webhookUrl: await webhooks.url(await webhooks.caller(context.requestHeader)) };
    },
    async setWebhookUrl(request, context) {
      return { webhookUrl: await webhooks.setUrl(await webhooks.caller(context.requestHeader), request.webhookUrl) };
    },
    async listWebhookDeliveries(request, context) {
      const owner = await webhooks.caller(context.requestHeader);
      return { deliveries: (await webhooks.deliveries(owner, request.jobId)).map(publicDelivery) };
    },
    async redeliverWebhook(request, context) {
      const owner = await webhooks.caller(context.requestHeader);
      return { delivery: publicDelivery(await webhooks.redeliver(owner, request.deliveryId)) };
    },
  };
}
