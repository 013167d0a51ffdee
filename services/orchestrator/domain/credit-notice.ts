// The email an operator relays when an account's credits run low or out: one per billing event.
import { creditsEventKeyOf, type CreditsEvent } from "./webhook-event.ts";

export interface CreditNotice {
  /** The event's id: billing's, else (an older publisher) the account, the time and the kind. */
  id: string;
  accountId: string;
  kind: CreditsEvent["type"];
  subject: string;
  body: string;
}

const MILLICREDITS_PER_CREDIT = 1000;
const credits = (millicredits: number) => String(millicredits / MILLICREDITS_PER_CREDIT);

/** The notice of a credits event: what happened, what is left, and what the account can do. */
export function creditNoticeOf(event: CreditsEvent): CreditNotice {
  const id = event.eventId || `${creditsEventKeyOf(event)}:${event.type}`;
  if (event.type === "credits.low") {
    return {
      id,
      accountId: event.accountId,
      kind: event.type,
      subject: `Cutline: ${credits(event.availableMillicredits)} credits left on account ${event.accountId}`,
      body:
        `Account ${event.accountId} has ${credits(event.availableMillicredits)} API credits left, below its ` +
        `low-balance threshold of ${credits(event.thresholdMillicredits)} credits (at ${event.occurredAt.toISOString()}).\n` +
        "Buy a top-up pack or upgrade the plan to keep calls going.\n",
    };
  }
  return {
    id,
    accountId: event.accountId,
    kind: event.type,
    subject: `Cutline: account ${event.accountId} is out of credits`,
    body:
      `Account ${event.accountId} has used all its API credits (at ${event.occurredAt.toISOString()}).\n` +
      "Calls are refused with 402 insufficient_credits unless the account continues in overage " +
      '(PUT /v1/account/settings {"on_exhausted": "overage"}, on plans that offer it). ' +
      "Buy a top-up pack or upgrade the plan.\n",
  };
}
