import { randomBytes } from "node:crypto";
import type { Generated, Kysely, Selectable } from "kysely";
import type { WebhookEventType } from "../domain/webhook-event.ts";
import type { OrchestratorSchema } from "./job.store.ts";

export type WebhookDeliveryStatus = "pending" | "delivered" | "failed";

export interface AccountWebhookTable {
  account_id: string;
  webhook_url: Generated<string>;
  secret: string;
  created_at: Generated<Date>;
  updated_at: Generated<Date>;
}

export interface WebhookDeliveryTable {
  id: string;
  job_id: string;
  account_id: string;
  url: string;
  type: WebhookEventType;
  body: string;
  status: Generated<WebhookDeliveryStatus>;
  attempts: Generated<number>;
  next_attempt_at: Date;
  last_status_code: number | null;
  last_error: string | null;
  created_at: Date;
  delivered_at: Date | null;
}

export interface WebhookAttemptTable {
  delivery_id: string;
  attempt: number;
  attempted_at: Date;
  status_code: number | null;
  error: string | null;
  duration_ms: number;
}

export interface WebhookTables {
  account_webhooks: AccountWebhookTable;
  webhook_deliveries: WebhookDeliveryTable;
  webhook_attempts: WebhookAttemptTable;
}

export type WebhookDeliveryRow = Selectable<WebhookDeliveryTable>;
export type WebhookAttemptRow = Selectable<WebhookAttemptTable>;

/** A new signing secret: `whsec_` and 32 random bytes in hex. */
export function newWebhookSecret(): string {
  return `whsec_${randomBytes(32).toString("hex")}`;
}

export interface AttemptRecord {
  attemptedAt: Date;
  statusCode: number | null;
  error: string | null;
  durationMs: number;
  /** The delivery's status after this attempt, and its next attempt when still pending. */
  status: WebhookDeliveryStatus;
  nextAttemptAt: Date;
}

/** Account webhook settings, deliveries and their attempts. */
export class WebhookStore {
  constructor(private readonly db: Kysely<OrchestratorSchema>) {}

  async accountWebhook(accountId: string): Promise<Selectable<AccountWebhookTable> | undefined> {
    return this.db.selectFrom("account_webhooks").selectAll().where("account_id", "=", accountId).executeTakeFirst();
  }

  /** The account's secret, created on first need; concurrent first calls agree on one. */
  async secretOf(accountId: string): Promise<string> {
    await this.db.insertInto("account_webhooks").values({ account_id: accountId, secret: newWebhookSecret() }).onConflict((conflict) => conflict.column("account_id").doNothing()).execute();
    const row = await this.db.selectFrom("account_webhooks").select("secret").where("account_id", "=", accountId).executeTakeFirstOrThrow();
    return row.secret;
  }

  async rotateSecret(accountId: string): Promise<string> {
    const secret = newWebhookSecret();
    await this.db
      .insertInto("account_webhooks")
      .values({ account_id: accountId, secret })
      .onConflict((conflict) => conflict.column("account_id").doUpdateSet({ secret, updated_at: new Date() }))
      .execute();
    return secret;
  }

  async setUrl(accountId: string, webhookUrl: string): Promise<void> {
    await this.db
      .insertInto("account_webhooks")
      .values({ account_id: accountId, webhook_url: webhookUrl, secret: newWebhookSecret() })
      .onConflict((conflict) => conflict.column("account_id").doUpdateSet({ webhook_url: webhookUrl, updated_at: new Date() }))
      .execute();
  }

  /** Records the delivery, once per (job, type): a repeated job end adds nothing. */
  async enqueue(delivery: Pick<WebhookDeliveryTable, "id" | "job_id" | "account_id" | "url" | "type" | "body" | "next_attempt_at" | "created_at">): Promise<void> {
    await this.db
      .insertInto("webhook_deliveries")
      .values(delivery)
      .onConflict((conflict) => conflict.columns(["job_id", "type"]).doNothing())
      .execute();
  }

  async get(id: string): Promise<WebhookDeliveryRow | undefined> {
    return this.db.selectFrom("webhook_deliveries").selectAll().where("id", "=", id).executeTakeFirst();
  }

  async listForJob(jobId: string): Promise<{ delivery: WebhookDeliveryRow; attempts: WebhookAttemptRow[] }[]> {
    const deliveries = await this.db.selectFrom("webhook_deliveries").selectAll().where("job_id", "=", jobId).orderBy("created_at").execute();
    if (deliveries.length === 0) return [];
    const attempts = await this.db
      .selectFrom("webhook_attempts")
      .selectAll()
      .where(
        "delivery_id",
        "in",
        deliveries.map((delivery) => delivery.id),
      )
      .orderBy("attempt")
      .execute();
    return deliveries.map((delivery) => ({ delivery, attempts: attempts.filter((attempt) => attempt.delivery_id === delivery.id) }));
  }

  /**
   * Takes up to `limit` pending deliveries that are due, pushing their next attempt to
   * `leaseUntil` so another orchestrator replica (or the next pass) leaves them alone while they
   * are being sent; a crash mid-send leaves them due again once the lease passes.
   */
  async claimDue(now: Date, leaseUntil: Date, limit: number): Promise<WebhookDeliveryRow[]> {
    return this.db
      .updateTable("webhook_deliveries")
      .set({ next_attempt_at: leaseUntil })
      .where("id", "in", (query) =>
        query
          .selectFrom("webhook_deliveries")
          .select("id")
          .where("status", "=", "pending")
          .where("next_attempt_at", "<=", now)
          .orderBy("next_attempt_at")
          .limit(limit)
          .forUpdate()
          .skipLocked(),
      )
      .returningAll()
      .execute();
  }

  /** Adds the attempt to the log and the delivery's counters in one transaction; answers the delivery after it. */
  async recordAttempt(deliveryId: string, record: AttemptRecord): Promise<WebhookDeliveryRow> {
    return this.db.transaction().execute(async (trx) => {
      const updated = await trx
        .updateTable("webhook_deliveries")
        .set((eb) => ({
          attempts: eb("attempts", "+", 1),
          status: record.status,
          next_attempt_at: record.nextAttemptAt,
          last_status_code: record.statusCode,
          last_error: record.error,
          ...(record.status === "delivered" ? { delivered_at: record.attemptedAt } : {}),
        }))
        .where("id", "=", deliveryId)
        .returningAll()
        .executeTakeFirstOrThrow();
      await trx
        .insertInto("webhook_attempts")
        .values({
          delivery_id: deliveryId,
          attempt: updated.attempts,
          attempted_at: record.attemptedAt,
          status_code: record.statusCode,
          error: record.error,
          duration_ms: record.durationMs,
        })
        .execute();
      return updated;
    });
  }
}
