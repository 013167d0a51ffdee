// Signed webhooks of job ends. A delivery is recorded in the same transaction as the job's end
// (after the capture, for a success), so a crash cannot lose it; a periodic task sends due
// deliveries with the outbound guard and retries failures with exponential backoff for a day.
import { Code } from "@connectrpc/connect";
import { randomUUID } from "node:crypto";
import type { Kysely } from "kysely";
import { reasonError } from "../common/errors.ts";
import type { Logger } from "../common/logging.ts";
import { checkedWebhookUrl, OutboundError, type OutboundFailureReason, type OutboundFetcher } from "../common/outbound.ts";
import { isTerminal } from "./domain/job-status.ts";
import { fromBinary } from "@bufbuild/protobuf";
import { timestampDate } from "@bufbuild/protobuf/wkt";
import { CreditsExhaustedSchema, CreditsLowSchema } from "../common/gen/cutline/billing/v1/events_pb.ts";
import { Pool } from "../common/gen/cutline/billing/v1/billing_service_pb.ts";
import type { BusEvent } from "../common/ports/event-bus.ts";
import { creditsEventKeyOf, creditsWebhookBodyOf, EVENT_ID_HEADER, eventTypeOf, type CreditsEvent, nextAttemptAt, SIGNATURE_HEADER, signatureOf, webhookBodyOf, type RetrySchedule } from "./domain/webhook-event.ts";
import type { JobRow, OrchestratorSchema } from "./store/job.store.ts";
import { WebhookStore, type WebhookAttemptRow, type WebhookDeliveryRow } from "./store/webhook.store.ts";

export interface WebhookOptions extends RetrySchedule {
  /** Deliveries sent at once per pass. @default 16 */
  sendBatchMax?: number;
  /** Time one attempt may take, in milliseconds (the outbound policy's timeout when unset). */
  attemptTimeoutMs?: number;
  /** Loopback receivers allowed (CUTLINE_OUTBOUND_ALLOW_LOOPBACK); URLs naming other internal addresses are refused when set. */
  allowLoopback: boolean;
}

export const WEBHOOK_DEFAULTS: RetrySchedule = { retryDelayMsMin: 10_000, retryDelayMsMax: 3_600_000, retryWindowMs: 24 * 3_600_000 };

// An attempt that got no answer within its timeout is sent again after this lease at the latest.
const LEASE_MARGIN_MS = 30_000;
// Failures that no retry can fix: the URL itself is refused.
const PERMANENT: ReadonlySet<OutboundFailureReason> = new Set(["outbound_invalid_url", "outbound_forbidden_address"]);

export interface WebhookDependencies {
  db: Kysely<OrchestratorSchema>;
  fetcher: OutboundFetcher;
  /** The signed result URL of a job (services/common/result-urls.ts). */
  resultUrlFor: (jobId: string) => string;
  log: Logger;
  options: WebhookOptions;
}

/** The API pool's credits event in a bus event; undefined for any other subject or pool. */
export function creditsEventOf(busEvent: BusEvent): CreditsEvent | undefined {
  if (busEvent.subject === "credits.low") {
    const low = fromBinary(CreditsLowSchema, busEvent.data);
    if (low.pool !== Pool.API) return undefined;
    return {
      type: "credits.low",
      accountId: low.accountId,
      availableMillicredits: Number(low.availableMillicredits),
      thresholdMillicredits: Number(low.thresholdMillicredits),
      occurredAt: low.occurredAt ? timestampDate(low.occurredAt) : new Date(0),
      eventId: low.eventId,
    };
  }
  if (busEvent.subject === "credits.exhausted") {
    const exhausted = fromBinary(CreditsExhaustedSchema, busEvent.data);
    if (exhausted.pool !== Pool.API) return undefined;
    return {
      type: "credits.exhausted",
      accountId: exhausted.accountId,
      availableMillicredits: 0,
      thresholdMillicredits: 0,
      occurredAt: exhausted.occurredAt ? timestampDate(exhausted.occurredAt) : new Date(0),
      eventId: exhausted.eventId,
    };
  }
  return undefined;
}

export class Webhooks {
  readonly #store: WebhookStore;
  readonly #sendBatchMax: number;

  constructor(private readonly deps: WebhookDependencies) {
    this.#store = new WebhookStore(deps.db);
    this.#sendBatchMax = deps.options.sendBatchMax ?? 16;
  }

  /** A client's webhook URL: http or https, bounded, and not a literal internal address; else invalid_webhook_url. */
  checkUrl(raw: string): string {
    return checkedWebhookUrl(raw, { allowLoopback: this.deps.options.allowLoopback });
  }

  /** Records the job's end event, in the transaction (`db`) that records the end itself. */
  async enqueueJobEnd(db: Kysely<OrchestratorSchema>, job: JobRow): Promise<void> {
    if (!isTerminal(job.status)) throw new Error(`job ${job.id} is ${job.status}: only an ended job has a webhook event`);
    const store = new WebhookStore(db);
    const url = job.webhook_url || (await store.accountWebhook(job.account_id))?.webhook_url || "";
    if (url === "") return;
    const now = new Date();
    await store.enqueue({
      id: randomUUID(),
      job_id: job.id,
      account_id: job.account_id,
      url,
      type: eventTypeOf(job.status),
      body: webhookBodyOf(job, job.status === "succeeded" ? this.deps.resultUrlFor(job.id) : null),
      next_attempt_at: now,
      created_at: now,
    });
  }

  /**
   * Records a billing `credits.low` / `credits.exhausted` event for the account's webhook URL
   * (account events have no per-request URL). Only the API pool's: the web pool is the
   * dashboard's, which shows its own balance. Idempotent: a redelivered event adds nothing.
   */
  async onCreditsEvent(busEvent: BusEvent): Promise<void> {
    const event = creditsEventOf(busEvent);
    if (!event) return;
    const url = (await this.#store.accountWebhook(event.accountId))?.webhook_url ?? "";
    if (url === "") return;
    const now = new Date();
    await this.#store.enqueue({
      id: randomUUID(),
      job_id: creditsEventKeyOf(event),
      account_id: event.accountId,
      url,
      type: event.type,
      body: creditsWebhookBodyOf(event),
      next_attempt_at: now,
      created_at: now,
    });
  }

  /** Sends the deliveries that are due; returns how many were attempted. */
  async sendDue(now = new Date()): Promise<number> {
    const leaseMs = (this.deps.options.attemptTimeoutMs ?? 0) + LEASE_MARGIN_MS;
    const due = await this.#store.claimDue(now, new Date(now.getTime() + leaseMs), this.#sendBatchMax);
    await Promise.all(due.map((delivery) => this.#attempt(delivery, { manual: false })));
    return due.length;
  }

  /** One more attempt now, whatever the delivery's status; a success marks it delivered. */
  async redeliver(deliveryId: string, accountId = ""): Promise<{ delivery: WebhookDeliveryRow; attempts: WebhookAttemptRow[] }> {
    const delivery = await this.#store.get(deliveryId);
    // Another account's delivery answers exactly like a missing one.
    if (!delivery || (accountId !== "" && delivery.account_id !== accountId)) throw reasonError(Code.NotFound, "webhook_delivery_not_found", `webhook delivery ${deliveryId} not found`);
    await this.#attempt(delivery, { manual: true });
    const log = await this.#store.listForJob(delivery.job_id);
    return log.find((entry) => entry.delivery.id === deliveryId)!;
  }

  async deliveriesOf(jobId: string, accountId = "") {
    const log = await this.#store.listForJob(jobId);
    return accountId === "" ? log : log.filter((entry) => entry.delivery.account_id === accountId);
  }

  secretOf(accountId: string): Promise<string> {
    return this.#store.secretOf(accountId);
  }

  rotateSecret(accountId: string): Promise<string> {
    return this.#store.rotateSecret(accountId);
  }

  async accountUrl(accountId: string): Promise<string> {
    return (await this.#store.accountWebhook(accountId))?.webhook_url ?? "";
  }

  async setAccountUrl(accountId: string, webhookUrl: string): Promise<string> {
    const url = webhookUrl === "" ? "" : this.checkUrl(webhookUrl);
    await this.#store.setUrl(accountId, url);
    return url;
  }

  async #attempt(delivery: WebhookDeliveryRow, mode: { manual: boolean }): Promise<void> {
    const secret = await this.#store.secretOf(delivery.account_id);
    const attemptedAt = new Date();
    const signature = signatureOf(secret, Math.floor(attemptedAt.getTime() / 1000), delivery.body);
    let statusCode: number | null = null;
    let error: string | null = null;
    let permanent = false;
    try {
      const response = await this.deps.fetcher.fetchOutbound(delivery.url, {
        method: "POST",
        headers: {
          "content-type": "application/json",
          "user-agent": "Cutline-Webhooks/1",
          [SIGNATURE_HEADER]: signature,
          [EVENT_ID_HEADER]: delivery.id,
        },
        body: delivery.body,
        responseBody: "discard",
        timeoutMs: this.deps.options.attemptTimeoutMs,
      });
      statusCode = response.status;
      if (statusCode < 200 || statusCode > 299) error = `http_status: the receiver answered ${statusCode}; only 2xx counts as delivered`;
    } catch (failure) {
      if (!(failure instanceof OutboundError)) throw failure;
      error = `${failure.reason}: ${failure.message}`;
      permanent = PERMANENT.has(failure.reason);
    }
    const finished = new Date();
    const next = error === null ? undefined : nextAttemptAt(this.deps.options, delivery.attempts + 1, delivery.created_at, finished);
    const status = error === null ? "delivered" : mode.manual ? (delivery.status === "delivered" ? "delivered" : delivery.status) : permanent || !next ? "failed" : "pending";
    const recorded = await this.#store.recordAttempt(delivery.id, {
      attemptedAt,
      statusCode,
      error,
      durationMs: finished.getTime() - attemptedAt.getTime(),
      status,
      nextAttemptAt: status === "pending" && !mode.manual ? next! : delivery.next_attempt_at,
    });
    const level = error === null ? "info" : recorded.status === "failed" ? "warn" : "debug";
    this.deps.log[level]({ deliveryId: delivery.id, jobId: delivery.job_id, attempt: recorded.attempts, statusCode, error, status: recorded.status }, "webhook attempt");
  }
}
