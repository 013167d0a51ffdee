// What the gateway keeps of an account to admit its calls (plan, members, cycle) must not outlive
// a change this process makes or sees: every billing call that may change an account passes
// through this interceptor on the billing client, which tells the listeners (the admission cache
// forgets the account). Wired into the billing client by main.ts and single-node mode, so the
// admin API, payments, account routes and (single node) tests' own billing calls are all seen.
import type { Interceptor } from "@connectrpc/connect";
import { BillingService } from "../common/gen/cutline/billing/v1/billing_service_pb.ts";

/** Billing methods that change no account's plan, members or cycle: the request path's and the reads. */
const LEAVES_ACCOUNTS_AS_THEY_ARE = new Set(["Quote", "Reserve", "Capture", "Release", "ExtendHold", "GetBalance", "GetAccount", "ListLedger", "ListUsage", "ListPlans", "ListPacks", "ListAccounts", "ListCycleReports"]);

export class AccountChanges {
  readonly #listeners = new Set<(accountId: string) => void>();

  /** Tells the listeners of the account a call names once it has ended (answered or failed: it may have taken effect). */
  readonly interceptor: Interceptor = (next) => async (request) => {
    try {
      return await next(request);
    } finally {
      if (!request.stream && request.service.typeName === BillingService.typeName && !LEAVES_ACCOUNTS_AS_THEY_ARE.has(request.method.name)) {
        const accountId = (request.message as { accountId?: unknown }).accountId;
        if (typeof accountId === "string" && accountId !== "") for (const listener of this.#listeners) listener(accountId);
      }
    }
  };

  onChange(listener: (accountId: string) => void): void {
    this.#listeners.add(listener);
  }
}
