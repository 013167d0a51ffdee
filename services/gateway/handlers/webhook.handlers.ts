import { create } from "@bufbuild/protobuf";
import { Code, ConnectError, type Client, type ServiceImpl } from "@connectrpc/connect";
import { reasonError } from "../../common/errors.ts";
import {
  WebhookAttemptSchema,
  WebhookDeliverySchema,
  type WebhookDelivery,
  type WebhookDeliveryStatus,
  type WebhookService,
} from "../../common/gen/cutline/gateway/v1/webhook_service_pb.ts";
import type { OrchestratorService, WebhookDelivery as InternalDelivery } from "../../common/gen/cutline/orchestrator/v1/orchestrator_service_pb.ts";
import { authenticate } from "../authentication.ts";
import type { ImageJobs } from "../image-jobs.ts";
import type { ApiKeyOwner, ApiKeyStore } from "../store/api-key.store.ts";

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
export function createWebhookHandlers(apiKeys: ApiKeyStore, imageJobs: ImageJobs, orchestrator: Client<typeof OrchestratorService>): ServiceImpl<typeof WebhookService> {
  // Each call is a read or a small write against the orchestrator: the job-read budget applies.
  async function caller(headers: Headers): Promise<ApiKeyOwner> {
    const owner = await authenticate(apiKeys, headers);
    imageJobs.takeReadToken(owner);
    return owner;
  }
  return {
    async getWebhookSecret(_request, context) {
      const { accountId } = await caller(context.requestHeader);
      return { secret: (await orchestrator.getWebhookSecret({ accountId })).secret };
    },
    async rotateWebhookSecret(_request, context) {
      const { accountId } = await caller(context.requestHeader);
      return { secret: (await orchestrator.rotateWebhookSecret({ accountId })).secret };
    },
    async getWebhookUrl(_request, context) {
      const { accountId } = await caller(context.requestHeader);
      return { webhookUrl: (await orchestrator.getAccountWebhook({ accountId })).webhookUrl };
    },
    async setWebhookUrl(request, context) {
      const { accountId } = await caller(context.requestHeader);
      return { webhookUrl: (await orchestrator.setAccountWebhook({ accountId, webhookUrl: request.webhookUrl })).webhookUrl };
    },
    async listWebhookDeliveries(request, context) {
      const { accountId } = await caller(context.requestHeader);
      if (request.jobId === "") throw new ConnectError("job_id is required", Code.InvalidArgument);
      const { deliveries } = await orchestrator.listWebhookDeliveries({ jobId: request.jobId, accountId });
      return { deliveries: deliveries.map(publicDelivery) };
    },
    async redeliverWebhook(request, context) {
      const { accountId } = await caller(context.requestHeader);
      if (request.deliveryId === "") throw new ConnectError("delivery_id is required", Code.InvalidArgument);
      const { delivery } = await orchestrator.redeliverWebhook({ deliveryId: request.deliveryId, accountId });
      if (!delivery) throw reasonError(Code.Internal, "internal", "orchestrator returned no delivery");
      return { delivery: publicDelivery(delivery) };
    },
  };
}
