// Billing's credits.low and credits.exhausted events as emails in the outbox, addressed to the
// account's owner (billing keeps members and their emails); an operator relays them
// (`npm run -s admin -- outbox`). Idempotent on the event's id: a redelivery writes nothing.
import type { Client } from "@connectrpc/connect";
import type { Kysely } from "kysely";
import type { BillingService } from "../common/gen/cutline/billing/v1/billing_service_pb.ts";
import type { BusEvent } from "../common/ports/event-bus.ts";
import { creditNoticeOf } from "./domain/credit-notice.ts";
import { EmailOutboxStore } from "./store/email-outbox.store.ts";
import type { OrchestratorSchema } from "./store/job.store.ts";
import { creditsEventOf } from "./webhooks.ts";

export class CreditNotices {
  readonly outbox: EmailOutboxStore;

  constructor(
    db: Kysely<OrchestratorSchema>,
    private readonly billing: Client<typeof BillingService>,
  ) {
    this.outbox = new EmailOutboxStore(db);
  }

  /** Writes the event's notice once; an event of another subject or pool is none of its business. */
  async onCreditsEvent(busEvent: BusEvent): Promise<void> {
    const event = creditsEventOf(busEvent);
    if (!event) return;
    const { account } = await this.billing.getAccount({ accountId: event.accountId });
    const owner = account?.members.find((member) => member.role === "owner");
    await this.outbox.add(creditNoticeOf(event), owner?.email || null, new Date());
  }
}
