// The caller's webhook settings and delivery log, shared by WebhookService and the REST routes
// under /v1/webhook and /v1/jobs/{id}/webhook-deliveries. Each call is the caller's own account
// only, and counts against the account's job-read budget (READ_REQUESTS_PER_MINUTE).
import { Code, type Client } from "@connectrpc/connect";
import { reasonError } from "../common/errors.ts";
import type { OrchestratorService, WebhookDelivery } from "../common/gen/cutline/orchestrator/v1/orchestrator_service_pb.ts";
import { authenticate } from "./authentication.ts";
import type { ImageJobs } from "./image-jobs.ts";
import type { ApiKeyOwner, ApiKeyStore } from "./store/api-key.store.ts";

export function deliveryNotFound(deliveryId: string) {
  return reasonError(Code.NotFound, "webhook_delivery_not_found", `webhook delivery ${deliveryId} not found`);
}

export class AccountWebhooks {
  constructor(
    private readonly apiKeys: ApiKeyStore,
    private readonly imageJobs: ImageJobs,
    private readonly orchestrator: Client<typeof OrchestratorService>,
  ) {}

  /** The key's owner, with one token of the account's read budget taken. */
  async caller(headers: Headers): Promise<ApiKeyOwner> {
    const owner = await authenticate(this.apiKeys, headers);
    this.imageJobs.takeReadToken(owner);
    return owner;
  }

  async secret(owner: ApiKeyOwner): Promise<string> {
    return (await this.orchestrator.getWebhookSecret({ accountId: owner.accountId })).secret;
  }

  /** A new secret; deliveries sent from now on are signed with it. */
  async rotateSecret(owner: ApiKeyOwner): Promise<string> {
    return (await this.orchestrator.rotateWebhookSecret({ accountId: owner.accountId })).secret;
  }

  /** The account's webhook URL, "" for none. */
  async url(owner: ApiKeyOwner): Promise<string> {
    return (await this.orchestrator.getAccountWebhook({ accountId: owner.accountId })).webhookUrl;
  }

  /** Sets the account's webhook URL ("" clears it); the orchestrator refuses one it may not reach (invalid_webhook_url). */
  async setUrl(owner: ApiKeyOwner, webhookUrl: string): Promise<string> {
    return (await this.orchestrator.setAccountWebhook({ accountId: owner.accountId, webhookUrl })).webhookUrl;
  }

  /** The job's deliveries, each with its attempts; another account's job has none to show. */
  async deliveries(owner: ApiKeyOwner, jobId: string): Promise<WebhookDelivery[]> {
    if (jobId === "") throw reasonError(Code.InvalidArgument, "invalid_request", "job_id is required");
    return (await this.orchestrator.listWebhookDeliveries({ jobId, accountId: owner.accountId })).deliveries;
  }

  /** Sends the delivery again now (one attempt, added to its log); another account's answers webhook_delivery_not_found. */
  async redeliver(owner: ApiKeyOwner, deliveryId: string): Promise<WebhookDelivery> {
    if (deliveryId === "") throw reasonError(Code.InvalidArgument, "invalid_request", "delivery_id is required");
    const { delivery } = await this.orchestrator.redeliverWebhook({ deliveryId, accountId: owner.accountId });
    if (!delivery) throw reasonError(Code.Internal, "internal", "orchestrator returned no delivery");
    return delivery;
  }
}
