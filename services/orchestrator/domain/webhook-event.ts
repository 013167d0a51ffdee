// What a webhook says and when it is tried again: pure, so the rules are tested without a receiver.
import { createHmac } from "node:crypto";
import type { JobStatus } from "./job-status.ts";

export type JobEventType = "job.succeeded" | "job.failed" | "job.cancelled";
/** Account events from billing: the API pool's available credits fell below the plan's threshold, or to nothing. */
export type CreditsEventType = "credits.low" | "credits.exhausted";
export type WebhookEventType = JobEventType | CreditsEventType;

/** The header carrying the signature: `t=<unix seconds>,v1=<hex HMAC-SHA256>`. */
export const SIGNATURE_HEADER = "Cutline-Signature";
/** The delivery's id, the same on every attempt, so a receiver can drop repeats. */
export const EVENT_ID_HEADER = "Cutline-Event-Id";

export interface EndedJob {
  id: string;
  status: JobStatus;
  charged_millicredits: number;
  processing_time_ms: number | null;
}

export function eventTypeOf(status: JobStatus): JobEventType {
  if (status === "succeeded" || status === "failed" || status === "cancelled") return `job.${status}`;
  throw new Error(`job status ${status} is not an end: no webhook event`);
}

/**
 * The JSON body, the same shape for every event. Credits are a decimal number of credits (250
 * millicredits are 0.25); the result URL is signed and only set on success.
 */
export function webhookBodyOf(job: EndedJob, resultUrl: string | null): string {
  const type = eventTypeOf(job.status);
  return JSON.stringify({
    type,
    status: job.status,
    job_id: job.id,
    image_id: job.id,
    result_url: job.status === "succeeded" ? resultUrl : null,
    credits_used: job.charged_millicredits / 1000,
    processing_time_ms: job.processing_time_ms,
  });
}

export interface CreditsEvent {
  type: CreditsEventType;
  accountId: string;
  availableMillicredits: number;
  /** The threshold crossed; 0 for credits.exhausted. */
  thresholdMillicredits: number;
  occurredAt: Date;
  /** Billing's id of the event, the same on every redelivery; "" from a publisher that sends none. */
  eventId: string;
}

/**
 * An account event in the job events' envelope (`type`, `status`, the job fields null), so one
 * receiver parses both; `status` is "low" or "exhausted", credits are decimal credits.
 */
export function creditsWebhookBodyOf(event: CreditsEvent): string {
  return JSON.stringify({
    type: event.type,
    status: event.type === "credits.low" ? "low" : "exhausted",
    job_id: null,
    image_id: null,
    result_url: null,
    credits_used: null,
    processing_time_ms: null,
    account_id: event.accountId,
    available_credits: event.availableMillicredits / 1000,
    threshold_credits: event.thresholdMillicredits / 1000,
    occurred_at: event.occurredAt.toISOString(),
  });
}

/**
 * The key that makes one billing event one delivery however often the bus delivers it (the
 * deliveries table is unique on (job_id, type); account events have no job, so this stands in).
 */
export function creditsEventKeyOf(event: CreditsEvent): string {
  return `account:${event.accountId}:${event.occurredAt.getTime()}`;
}

/** `t=<unix seconds>,v1=<lowercase hex HMAC-SHA256(key = the secret's UTF-8 bytes, message = "<t>.<body>")>`. */
export function signatureOf(secret: string, timestampSeconds: number, body: string): string {
  const digest = createHmac("sha256", Buffer.from(secret, "utf8")).update(`${timestampSeconds}.${body}`, "utf8").digest("hex");
  return `t=${timestampSeconds},v1=${digest}`;
}

export interface RetrySchedule {
  /** Delay before the first retry, doubling after each failure, in milliseconds. */
  retryDelayMsMin: number;
  /** Longest delay between two attempts, in milliseconds. */
  retryDelayMsMax: number;
  /** Time after the event past which no attempt is made, in milliseconds. */
  retryWindowMs: number;
}

/** When to try again after `attempts` failed attempts, or undefined: the window is over, give up. */
export function nextAttemptAt(schedule: RetrySchedule, attempts: number, createdAt: Date, now: Date): Date | undefined {
  const exponent = Math.min(Math.max(attempts - 1, 0), 40);
  const delayMs = Math.min(schedule.retryDelayMsMin * 2 ** exponent, schedule.retryDelayMsMax);
  const next = new Date(now.getTime() + delayMs);
  return next.getTime() <= createdAt.getTime() + schedule.retryWindowMs ? next : undefined;
}
