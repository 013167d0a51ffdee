// The email outbox: notices (credits.low, credits.exhausted) an operator relays by email. One
// row per billing event, keyed by the event's id, so a redelivered event writes nothing.
import type { ColumnType, Kysely, Selectable } from "kysely";
import type { CreditNotice } from "../domain/credit-notice.ts";
import type { OrchestratorSchema } from "./job.store.ts";

export interface EmailOutboxTable {
  /** The billing event's id. */
  id: string;
  account_id: string;
  kind: string;
  /** The account owner's email when billing knows it. */
  recipient: string | null;
  subject: string;
  body: string;
  created_at: ColumnType<Date, Date, never>;
  sent_at: ColumnType<Date | null, Date | null | undefined, Date | null>;
}

export type EmailOutboxRow = Selectable<EmailOutboxTable>;

/** Rows listed at once at most. @default 500 */
export const EMAIL_OUTBOX_PAGE_MAX = 500;

export class EmailOutboxStore {
  constructor(private readonly db: Kysely<OrchestratorSchema>) {}

  /** Writes the notice unless its event already wrote one; true when this call wrote it. */
  async add(notice: CreditNotice, recipient: string | null, now: Date): Promise<boolean> {
    const inserted = await this.db
      .insertInto("email_outbox")
      .values({ id: notice.id, account_id: notice.accountId, kind: notice.kind, recipient, subject: notice.subject, body: notice.body, created_at: now })
      .onConflict((conflict) => conflict.column("id").doNothing())
      .returning("id")
      .executeTakeFirst();
    return inserted !== undefined;
  }

  /** Oldest first; only the unsent unless `includeSent`. */
  async list(options: { includeSent: boolean; limit: number }): Promise<EmailOutboxRow[]> {
    let query = this.db.selectFrom("email_outbox").selectAll();
    if (!options.includeSent) query = query.where("sent_at", "is", null);
    return query.orderBy("created_at").orderBy("id").limit(options.limit).execute();
  }

  /** Marks the row sent (the first time wins); undefined when there is no such row. */
  async markSent(id: string, now: Date): Promise<EmailOutboxRow | undefined> {
    await this.db.updateTable("email_outbox").set({ sent_at: now }).where("id", "=", id).where("sent_at", "is", null).execute();
    return this.db.selectFrom("email_outbox").selectAll().where("id", "=", id).executeTakeFirst();
  }
}
