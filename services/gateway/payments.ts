// What payments do to an account: products from billing's plans and packs, checkout and portal
// sessions through the payment port, and the provider's verified events turned into ledger
// operations that happen once however often an event is delivered.
//
// Idempotency is two-layered. Each event is claimed by its id before anything moves and marked
// done after (payment.store.ts), so a replayed event moves nothing. Under the claim, each ledger
// operation is itself safe to repeat (a crash between the operation and `done` leads to a second
// run): grants carry an idempotency key named for the provider object they pay for (the checkout
// session), so two different events about one payment grant once too; plan changes happen only
// when the account is still on the plan the event saw (billing checks it under the account's lock),
// so two events racing about one subscription change the plan, and grant its credits, once.
// Events about a subscription other than the account's current one (an old one, ended or
// replaced) move nothing.
import { timestampDate, timestampFromDate } from "@bufbuild/protobuf/wkt";
import { Code, ConnectError, type Client } from "@connectrpc/connect";
import { reasonError, reasonOf } from "../common/errors.ts";
import type { BillingService, Pack, Plan } from "../common/gen/cutline/billing/v1/billing_service_pb.ts";
import type { Logger } from "../common/logging.ts";
import { PaymentsNotConfigured, PaymentSignatureInvalid, type InvoiceLine, type PaymentEvent, type PaymentProduct, type PaymentProvider } from "../common/ports/payment-provider.ts";
import type { PaymentStore, SubscribedAccount } from "./store/payment.store.ts";

/** The plan an ended or lapsed subscription falls back to (billing's default plan). */
export const FREE_PLAN_CODE = "free";
/** Tries of the renewals setting against concurrent plan changes; each loser reads again, so a few always suffice in practice. */
const RENEWALS_ATTEMPTS_MAX = 5;

/** A claim on an event older than this, never marked done, is taken over by the next delivery, in seconds. */
export const EVENT_CLAIM_STALE_SECONDS = 300;

/** A monthly cycle as shown to buyers, in days. */
const DAYS_PER_CYCLE = 30;

/** A plan whose term is this many months is sold as a yearly subscription (annual plans). */
const MONTHS_PER_YEAR = 12;

/** An annual plan's credits as shown to buyers: they last to the term's end, a year. */
const DAYS_PER_YEAR = 365;

/** Subscribed accounts read per page by the overage report. */
const OVERAGE_REPORT_PAGE_SIZE = 100;

/** An overage claim older than this, never finished (a reporter that crashed), is taken over, in seconds. */
const OVERAGE_CLAIM_STALE_SECONDS = 300;

/** Closed cycles read per call by the overage report. */
const CYCLE_REPORT_PAGE_SIZE = 50;

/** Oldest usage the provider takes, in milliseconds (Stripe meter events: 35 days; a day kept in hand). */
const METER_EVENT_AGE_MS_MAX = 34 * 24 * 60 * 60 * 1000;

/** Subscription states in which the plan is paid for; `canceled`, `unpaid`, `incomplete_expired` fall back to free. */
const PAID_SUBSCRIPTION_STATES = new Set(["active", "trialing"]);
const ENDED_SUBSCRIPTION_STATES = new Set(["canceled", "unpaid", "incomplete_expired"]);

/** Billing refusals that a retry of the event cannot fix: the event is logged and settled. */
const PERMANENT_REFUSALS = new Set(["account_not_found", "plan_not_found", "pack_not_found", "bucket_not_found", "invalid_argument"]);

export interface PaymentsOptions {
  /** ISO 4217 currency of the plans' and packs' prices, lower case. @default "usd" */
  currency: string;
}

export type WebhookAnswer = { applied: boolean; replayed: boolean; kind: PaymentEvent["kind"] };

export class Payments {
  constructor(
    private readonly billing: Client<typeof BillingService>,
    private readonly provider: PaymentProvider,
    private readonly store: PaymentStore,
    private readonly log: Logger,
    private readonly options: PaymentsOptions,
  ) {}

  get providerName(): string {
    return this.provider.name;
  }

  get checkoutAvailable(): boolean {
    return this.provider.checkoutAvailable;
  }

  /** Plans with a price and every pack: what can be bought. */
  async products(): Promise<PaymentProduct[]> {
    const [{ plans }, { packs }] = await Promise.all([this.billing.listPlans({}), this.billing.listPacks({})]);
    return [...plans.filter((plan) => plan.monthlyPriceCents > 0n).map((plan) => this.#planProduct(plan)), ...packs.map((pack) => this.#packProduct(pack))];
  }

  async checkout(accountId: string, input: { productCode: string; successUrl: string; cancelUrl: string }): Promise<string> {
    requireHttpUrl("success_url", input.successUrl);
    requireHttpUrl("cancel_url", input.cancelUrl);
    this.#requireConfigured();
    const product = (await this.products()).find((candidate) => candidate.code === input.productCode);
    if (!product) throw reasonError(Code.NotFound, "product_not_found", `no plan or pack ${JSON.stringify(input.productCode)} is on sale; ListProducts names them`);
    if (product.kind === "plan" && (await this.store.customerOf(accountId))?.subscriptionId) {
      // A second subscription would bill twice and fight the first over the plan.
      throw reasonError(
        Code.FailedPrecondition,
        "subscription_active",
        "this account already has a live subscription; change or cancel it in the billing portal (CreatePortalSession, POST /v1/payments/portal) instead of a new checkout",
      );
    }
    const customerId = await this.#customerOf(accountId);
    const { url } = await this.#provider(() => this.provider.createCheckout({ accountId, customerId, product, successUrl: input.successUrl, cancelUrl: input.cancelUrl }));
    return url;
  }

  async portal(accountId: string, returnUrl: string): Promise<string> {
    requireHttpUrl("return_url", returnUrl);
    this.#requireConfigured();
    const customer = await this.store.customerOf(accountId);
    if (!customer) throw reasonError(Code.NotFound, "payment_customer_not_found", "this account has not bought anything through the payment provider yet; CreateCheckout first");
    return (await this.#provider(() => this.provider.createPortalSession({ customerId: customer.customerId, returnUrl }))).url;
  }

  /**
   * A provider webhook: verified over its raw body, applied once. A bad signature throws
   * `invalid_signature` (nothing moves); a server fault throws and the claim is given back, so the
   * provider's retry applies it.
   */
  async webhook(rawBody: Buffer, signatureHeader: string | undefined, now: Date): Promise<WebhookAnswer> {
    let event: PaymentEvent;
    try {
      event = this.provider.parseWebhook(rawBody, signatureHeader);
    } catch (error) {
      if (error instanceof PaymentSignatureInvalid) throw reasonError(Code.InvalidArgument, "invalid_signature", error.message);
      throw error;
    }
    if (event.kind === "ignored") return { applied: false, replayed: false, kind: event.kind };
    const claim = await this.store.claimEvent(event.eventId, event.kind, now, EVENT_CLAIM_STALE_SECONDS);
    // In progress elsewhere: that delivery answers for it (and is retried by the provider if it fails).
    if (claim !== "claimed") return { applied: false, replayed: true, kind: event.kind };
    let applied = true;
    try {
      await this.#apply(event, now);
    } catch (error) {
      const reason = error instanceof ConnectError ? reasonOf(error) : undefined;
      if (!reason || !PERMANENT_REFUSALS.has(reason)) {
        await this.store.abandonEvent(event.eventId);
        throw error;
      }
      // A retry cannot fix it (the account, plan or pack is gone): settled, for the operator to see.
      this.log.error({ err: error, eventId: event.eventId, kind: event.kind }, "a payment event was refused by billing; settled without effect, needs the operator");
      applied = false;
    }
    await this.store.finishEvent(event.eventId, now);
    return { applied, replayed: false, kind: event.kind };
  }

  /**
   * Sends each subscribed account's overage not yet reported to the provider as metered usage:
   * first what its billing cycles closed since the last run still owe (billing's cycle reports,
   * the final figures: overage captured between the last run and a renewal lands here), then the
   * running total of the cycle in progress, so the provider has most of it before its own period
   * ends. Each report's identifier is the account, the cycle and the total it brings the cycle to,
   * so a report repeated after a crash is dropped by the provider. Returns the reports sent.
   */
  async reportOverage(now: Date = new Date()): Promise<number> {
    let reported = 0;
    let after = "";
    for (;;) {
      const page = await this.store.subscribedAccounts(after, OVERAGE_REPORT_PAGE_SIZE);
      for (const account of page) {
        // One account's failure (billing or the provider refusing it) must not starve the others; its cycles are retried next run.
        try {
          reported += await this.#reportAccountOverage(account, now);
        } catch (error) {
          this.log.error({ err: error, accountId: account.accountId }, "reporting an account's overage failed; the next run retries it");
        }
      }
      if (page.length < OVERAGE_REPORT_PAGE_SIZE) return reported;
      after = page.at(-1)!.accountId;
    }
  }

  async #reportAccountOverage(account: SubscribedAccount, now: Date): Promise<number> {
    let reported = 0;
    for (;;) {
      const { reports } = await this.billing.listCycleReports({ accountId: account.accountId, afterCycleIndex: account.overageCycleIndexDone, pageSize: CYCLE_REPORT_PAGE_SIZE });
      for (const cycle of reports) {
        const startedAt = timestampDate(cycle.startedAt!);
        // Cycles before the subscription were not the provider's to bill.
        if (startedAt >= account.subscribedAt) {
          const endedAt = timestampDate(cycle.endedAt!);
          const total = Number(cycle.overageMillicredits);
          // Inside the cycle it belongs to: the provider bills the period the timestamp falls in.
          if (await this.#reportCycle(account, startedAt, total, new Date(endedAt.getTime() - 1000), now)) reported += 1;
          // The cursor passes a closed cycle only once its whole total is reported; a claim held
          // by another reporter (which may yet fail) leaves it, and this cycle, for the next run.
          if (total > 0 && (await this.store.reportedOverage(account.accountId, startedAt)) < total) return reported;
        }
        await this.store.setOverageCycleIndexDone(account.accountId, cycle.cycleIndex);
        account = { ...account, overageCycleIndexDone: cycle.cycleIndex };
      }
      if (reports.length < CYCLE_REPORT_PAGE_SIZE) break;
    }
    const { account: current } = await this.billing.getAccount({ accountId: account.accountId });
    if (current?.cycleStartedAt && timestampDate(current.cycleStartedAt) >= account.subscribedAt) {
      if (await this.#reportCycle(account, timestampDate(current.cycleStartedAt), Number(current.cycleOverageMillicredits), now, now)) reported += 1;
    }
    return reported;
  }

  /** Reports what the cycle's overage adds to what was reported for it; false when nothing was sent. */
  async #reportCycle(account: SubscribedAccount, cycleStartedAt: Date, totalMillicredits: number, occurredAt: Date, now: Date): Promise<boolean> {
    if (totalMillicredits <= 0) return false;
    const claim = await this.store.claimOverage({ accountId: account.accountId, cycleStartedAt, totalMillicredits, now, staleAfterSeconds: OVERAGE_CLAIM_STALE_SECONDS });
    if (!claim) return false;
    const { reportedMillicredits: already, pendingMillicredits: total } = claim;
    if (now.getTime() - occurredAt.getTime() > METER_EVENT_AGE_MS_MAX) {
      // The provider refuses usage this old; settled so it is not retried forever, and logged for the operator.
      this.log.error({ accountId: account.accountId, cycleStartedAt, millicredits: total - already }, "overage too old to report to the payment provider; invoice it by hand");
    } else if (total > already) {
      const identifier = `cutline-overage-${account.accountId}-${cycleStartedAt.getTime()}-${total}`;
      try {
        await this.provider.reportUsage({ customerId: account.customerId, millicredits: total - already, identifier, occurredAt });
      } catch (error) {
        await this.store.abandonOverage(account.accountId, cycleStartedAt, total);
        throw error;
      }
    }
    await this.store.finishOverage(account.accountId, cycleStartedAt, total);
    return total > already;
  }

  async #apply(event: Exclude<PaymentEvent, { kind: "ignored" }>, now: Date): Promise<void> {
    switch (event.kind) {
      case "pack_paid": {
        const granted = await this.billing.grant({
          accountId: event.accountId,
          kind: "pack",
          packCode: event.packCode,
          idempotencyKey: `payment:${this.provider.name}:checkout:${event.sessionId}`,
          description: `${this.provider.name} payment ${event.paymentId}`,
        });
        await this.store.putPurchase({ paymentId: event.paymentId, accountId: event.accountId, productCode: event.packCode, bucketId: granted.bucket?.id ?? "", amountMinor: event.amountMinor, currency: event.currency });
        return;
      }
      case "subscription_started": {
        await this.#moveToPlan(event.accountId, event.planCode);
        // The cycle the plan change started is the first the subscription pays for.
        const { account } = await this.billing.getAccount({ accountId: event.accountId });
        const subscribedAt = account?.cycleStartedAt ? timestampDate(account.cycleStartedAt) : now;
        await this.store.setSubscription({ accountId: event.accountId, provider: this.provider.name, customerId: event.customerId || undefined, subscriptionId: event.subscriptionId, subscribedAt });
        return this.#setRenewals(event.accountId);
      }
      case "subscription_renewed":
      case "subscription_changed":
        return this.#subscriptionState(event);
      case "subscription_ended": {
        const accountId = event.accountId ?? (await this.store.accountOfSubscription(event.subscriptionId));
        if (!accountId) return this.#unknownSubscription(event);
        if (await this.#notCurrentSubscription(accountId, event)) return;
        await this.store.setSubscription({ accountId, provider: this.provider.name, customerId: undefined, subscriptionId: null });
        await this.#moveToPlan(accountId, FREE_PLAN_CODE);
        await this.#setRenewals(accountId);
        return;
      }
      case "payment_refunded":
        return this.#refund(event, now);
    }
  }

  /**
   * A renewal paid, or a subscription changed in the portal: the account is put on the plan the
   * subscription now pays for. A paid renewal of a monthly plan grants the cycle it pays for
   * (billing's GrantCycle, once per invoice and once per cycle; billing's own renewal grants
   * nothing for such an account, see #setRenewals); a plan lost to a lapse is restored by the
   * renewal that pays for it.
   */
  async #subscriptionState(event: Extract<PaymentEvent, { kind: "subscription_renewed" | "subscription_changed" }>): Promise<void> {
    const accountId = event.accountId ?? (await this.store.accountOfSubscription(event.subscriptionId));
    if (!accountId) return this.#unknownSubscription(event);
    if (await this.#notCurrentSubscription(accountId, event)) return;
    if (event.kind === "subscription_changed" && ENDED_SUBSCRIPTION_STATES.has(event.status)) {
      await this.store.setSubscription({ accountId, provider: this.provider.name, customerId: undefined, subscriptionId: null });
      await this.#moveToPlan(accountId, FREE_PLAN_CODE);
      return this.#setRenewals(accountId);
    }
    // past_due, incomplete: the provider is still collecting; the plan stays until it gives up.
    if (event.kind === "subscription_changed" && !PAID_SUBSCRIPTION_STATES.has(event.status)) return;
    const { plans } = await this.billing.listPlans({});
    let priceId = event.kind === "subscription_changed" ? event.priceId : undefined;
    let planLine: InvoiceLine | undefined;
    if (event.kind === "subscription_renewed") {
      const picked = pickPlanLine(event.lines, new Set(plans.map((plan) => plan.stripePriceId).filter((id) => id !== "")));
      if (!picked.ok) {
        this.log.error({ eventId: event.eventId, invoiceId: event.invoiceId, subscriptionId: event.subscriptionId, lines: event.lines.length }, "a paid invoice has no line that pays for a plan (only prorations or metered usage); no cycle granted");
        return;
      }
      planLine = picked.line;
      priceId = planLine?.priceId;
    }
    const planCode = plans.find((plan) => priceId !== undefined && plan.stripePriceId === priceId)?.code ?? event.planCode;
    if (!planCode) {
      this.log.error({ eventId: event.eventId, subscriptionId: event.subscriptionId, priceId }, "a subscription pays for a price no plan names; the account's plan is left as it is");
      return;
    }
    await this.#moveToPlan(accountId, planCode);
    await this.#setRenewals(accountId);
    if (event.kind === "subscription_renewed") await this.#grantPaidCycle(accountId, event, planLine);
  }

  /**
   * Who grants the account's cycles: its subscription's paid invoices where the provider bills
   * each cycle (a monthly plan on a live subscription), else billing's own renewal (no
   * subscription, a manual provider, or an annual plan: one invoice a year pays for twelve
   * monthly grants, which billing makes).
   */
  async #setRenewals(accountId: string): Promise<void> {
    // Decided from reads a concurrent event may overtake: billing refuses the write (plan_changed)
    // once the plan it was decided for is gone, and the decision is made again from fresh reads.
    for (let attempt = 1; ; attempt += 1) {
      const subscribed = (await this.store.customerOf(accountId))?.subscriptionId !== undefined;
      const { account } = await this.billing.getAccount({ accountId });
      const renewals = this.provider.checkoutAvailable && subscribed && (account?.plan?.termMonths ?? 0) === 0 ? "provider" : "ledger";
      if (account?.settings?.renewals === renewals) return;
      try {
        await this.billing.setAccountSettings({ accountId, renewals, expectedPlanCode: account?.plan?.code });
        return;
      } catch (error) {
        if (!(error instanceof ConnectError && reasonOf(error) === "plan_changed") || attempt >= RENEWALS_ATTEMPTS_MAX) throw error;
        this.log.info({ accountId, renewals, attempt }, "the plan changed while renewals were decided; deciding again");
      }
    }
  }

  /**
   * The cycle a paid invoice pays for, granted once per invoice where the provider pays for the
   * cycles; else (an annual plan, or a first invoice before its checkout) billing's own grant of
   * that cycle. Either way its payment is kept with the bucket, so a refund can take it back.
   */
  async #grantPaidCycle(accountId: string, event: Extract<PaymentEvent, { kind: "subscription_renewed" }>, planLine: InvoiceLine | undefined): Promise<void> {
    const { account } = await this.billing.getAccount({ accountId });
    const granted = await this.billing.grantCycle({
      accountId,
      idempotencyKey: `payment:${this.provider.name}:invoice:${event.invoiceId}`,
      periodStart: planLine?.periodStart ? timestampFromDate(planLine.periodStart) : undefined,
    });
    const paymentId = granted.bucket ? (event.paymentId ?? (await this.#provider(() => this.provider.paymentOfInvoice(event.invoiceId)))) : undefined;
    if (granted.bucket && paymentId) {
      // The plan line's amount is what paid for the credits; overage, prorations and tax did not.
      await this.store.putPurchase({ paymentId, accountId, productCode: account?.plan?.code ?? "", bucketId: granted.bucket.id, amountMinor: planLine?.amountMinor ?? event.amountMinor, currency: event.currency });
    }
  }

  /**
   * A refund takes back what its payment granted (billing's RefundGrant): the refunded share of
   * the bucket, from what is still unspent and not held by a running job; what was spent already
   * stays spent and is logged for the operator. Stripe sends the refunded total, so each refund
   * is keyed by the charge and that total: a replay takes nothing more, a later partial refund
   * takes its own share.
   */
  async #refund(event: Extract<PaymentEvent, { kind: "payment_refunded" }>, now: Date): Promise<void> {
    const purchase = await this.store.purchase(event.paymentId);
    if (!purchase || !purchase.bucketId) {
      this.log.warn({ eventId: event.eventId, chargeId: event.chargeId, paymentId: event.paymentId }, "a refunded payment granted nothing here (another integration, or a payment before purchases were kept); nothing taken back");
      return;
    }
    const paid = creditsPaidShare(purchase.amountMinor, event.amountMinor, event.amountRefundedMinor);
    const refund = await this.billing.refundGrant({
      accountId: purchase.accountId,
      bucketId: purchase.bucketId,
      refundedMinor: BigInt(paid.refundedMinor),
      paidMinor: BigInt(paid.paidMinor),
      idempotencyKey: `payment:${this.provider.name}:refund:${event.chargeId}:${event.amountRefundedMinor}`,
    });
    await this.store.flagRefund(event.paymentId, event.amountRefundedMinor, now);
    if (refund.unrecoveredMillicredits > 0n) {
      this.log.warn(
        { accountId: purchase.accountId, paymentId: event.paymentId, bucketId: purchase.bucketId, refundedMillicredits: refund.refundedMillicredits, unrecoveredMillicredits: refund.unrecoveredMillicredits },
        "a refunded payment's credits were partly spent or held already: the rest was taken back; review the account (admin API)",
      );
    }
  }

  #unknownSubscription(event: PaymentEvent): void {
    this.log.warn({ eventId: event.eventId, kind: event.kind }, "a subscription event names no account known here; ignored");
  }

  /**
   * True (and logged) when the account's current subscription is another one: an event of an old
   * or replaced subscription must not move the account's plan. With no current subscription the
   * event acts (its checkout may not be recorded yet, or a lapsed subscription is paid again).
   */
  async #notCurrentSubscription(accountId: string, event: Extract<PaymentEvent, { subscriptionId: string }>): Promise<boolean> {
    const current = (await this.store.customerOf(accountId))?.subscriptionId;
    if (current === undefined || current === event.subscriptionId) return false;
    this.log.warn({ eventId: event.eventId, kind: event.kind, accountId, subscriptionId: event.subscriptionId, currentSubscriptionId: current }, "a subscription event is about a subscription that is not the account's current one; ignored");
    return true;
  }

  /**
   * Puts the account on the plan unless it is there already. Billing changes it only from the
   * plan read here (under the account's lock); its `plan_changed` refusal means another event
   * changed it in between, and that change is this one's too.
   */
  async #moveToPlan(accountId: string, planCode: string): Promise<void> {
    const { account } = await this.billing.getAccount({ accountId });
    const fromPlanCode = account?.plan?.code;
    if (fromPlanCode === planCode) return;
    try {
      await this.billing.changePlan({ accountId, planCode, fromPlanCode });
    } catch (error) {
      if (error instanceof ConnectError && reasonOf(error) === "plan_changed") {
        this.log.info({ accountId, planCode, fromPlanCode }, "the plan was changed by a concurrent event; taken as done");
        return;
      }
      throw error;
    }
  }

  async #customerOf(accountId: string): Promise<string> {
    const known = await this.store.customerOf(accountId);
    if (known) return known.customerId;
    // The account must exist in billing before the provider learns of it.
    await this.billing.getAccount({ accountId });
    const created = await this.#provider(() => this.provider.createCustomer(accountId));
    return this.store.putCustomer(accountId, this.provider.name, created);
  }

  #requireConfigured(): void {
    if (!this.provider.checkoutAvailable) throw notConfigured(this.provider.name);
  }

  /** A provider call: `manual` refusing is the caller's precondition; anything else is a server fault. */
  async #provider<T>(call: () => Promise<T>): Promise<T> {
    try {
      return await call();
    } catch (error) {
      if (error instanceof PaymentsNotConfigured) throw notConfigured(this.provider.name);
      throw new ConnectError("the payment provider failed to answer; retry later", Code.Unavailable, undefined, undefined, error);
    }
  }

  #planProduct(plan: Plan): PaymentProduct {
    // An annual plan (a 12-month term) is bought once a year at twelve months' price; its monthly
    // credits live to the term's end. Any other plan is a monthly subscription.
    const annual = plan.termMonths === MONTHS_PER_YEAR;
    return {
      code: plan.code,
      kind: "plan",
      name: plan.name,
      priceMinor: Number(plan.monthlyPriceCents) * (annual ? MONTHS_PER_YEAR : 1),
      currency: this.options.currency,
      creditsMillicredits: Number(plan.creditsPerCycleMillicredits),
      interval: annual ? "year" : "month",
      // Subscription credits last their cycle and the cycles they may roll over into, or the term.
      validDays: annual ? DAYS_PER_YEAR : DAYS_PER_CYCLE * (1 + Math.max(0, plan.rolloverCycles)),
      providerPriceId: plan.stripePriceId || undefined,
    };
  }

  #packProduct(pack: Pack): PaymentProduct {
    return {
      code: pack.code,
      kind: "pack",
      name: `${Number(pack.creditsMillicredits) / 1000} credits`,
      priceMinor: Number(pack.priceCents),
      currency: this.options.currency,
      creditsMillicredits: Number(pack.creditsMillicredits),
      interval: "",
      validDays: 0,
      providerPriceId: pack.stripePriceId || undefined,
    };
  }
}

/**
 * The line of a paid renewal invoice that pays for the plan: a line priced at a plan's provider
 * price, else (plans sold at an inline price) the latest-starting line that is neither a proration
 * nor metered, since overage is billed in arrears for the cycle that just closed. No lines (an
 * event that does not list them): the invoice's metadata names the plan and its period is unknown.
 */
export function pickPlanLine(lines: readonly InvoiceLine[], planPriceIds: ReadonlySet<string>): { ok: true; line: InvoiceLine | undefined } | { ok: false } {
  if (lines.length === 0) return { ok: true, line: undefined };
  const charges = lines.filter((line) => !line.proration && line.metered !== true);
  const priced = charges.filter((line) => line.priceId !== undefined && planPriceIds.has(line.priceId));
  const latest = (candidates: InvoiceLine[]) =>
    candidates.reduce<InvoiceLine | undefined>((best, line) => (!best || (line.periodStart?.getTime() ?? 0) > (best.periodStart?.getTime() ?? 0) ? line : best), undefined);
  const line = latest(priced.length > 0 ? priced : charges);
  return line ? { ok: true, line } : { ok: false };
}

/**
 * What a refund takes credits for, as a share of what paid for them: a refund first gives back
 * what granted no credits (overage, prorations, tax: the payment's total beyond the credits'
 * price), then the credits' price; the share never passes the whole.
 */
export function creditsPaidShare(creditsPriceMinor: number, paymentMinor: number, refundedMinor: number): { refundedMinor: number; paidMinor: number } {
  if (creditsPriceMinor <= 0) return { refundedMinor: Math.min(refundedMinor, paymentMinor), paidMinor: paymentMinor };
  const beyondCredits = Math.max(0, paymentMinor - creditsPriceMinor);
  return { refundedMinor: Math.min(creditsPriceMinor, Math.max(0, refundedMinor - beyondCredits)), paidMinor: creditsPriceMinor };
}

function notConfigured(provider: string): ConnectError {
  return reasonError(
    Code.FailedPrecondition,
    "payments_not_configured",
    `payments are not configured on this server (PAYMENT_PROVIDER=${provider}): the operator grants credits and changes plans through the admin API`,
  );
}

function requireHttpUrl(name: string, value: string): void {
  let parsed: URL | undefined;
  try {
    parsed = new URL(value);
  } catch {
    parsed = undefined;
  }
  if (!parsed || (parsed.protocol !== "http:" && parsed.protocol !== "https:")) {
    throw reasonError(Code.InvalidArgument, "invalid_argument", `${name} must be an http(s) URL, got ${JSON.stringify(value)}`);
  }
}
