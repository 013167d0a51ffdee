// The payment port on Stripe (the official `stripe` package): Checkout Sessions (mode `payment`
// for packs, `subscription` for plans), the billing portal, customers, billing meter events for
// overage, and webhook events verified with stripe.webhooks.constructEvent over the raw body.
//
// Events are read defensively (`field` below): Stripe moved invoice.subscription under
// invoice.parent.subscription_details in 2025 API versions, and an endpoint's events carry the
// version it was created with, not the library's.
import Stripe from "stripe";
import {
  PaymentSignatureInvalid,
  type CheckoutInput,
  type InvoiceLine,
  type PaymentEvent,
  type PaymentProvider,
  type PortalInput,
  type UsageReport,
} from "../ports/payment-provider.ts";

export interface StripePaymentProviderOptions {
  /** Secret API key (`sk_live_...` / `sk_test_...`). */
  secretKey: string;
  /** Signing secret of the webhook endpoint (`whsec_...`). */
  webhookSecret: string;
  /** `event_name` of the billing meter that receives overage, in millicredits. */
  overageMeterEventName: string;
  /** Oldest webhook signature accepted, in seconds (Stripe's default tolerance). @default 300 */
  webhookToleranceSeconds?: number;
  /** Where the API is (tests point it at a local server). @default api.stripe.com over https */
  api?: { host: string; port: number; protocol: "http" | "https" };
  /** Per-request timeout, in milliseconds. @default 20_000 */
  timeoutMs?: number;
  /** Retries of a failed request (Stripe's client retries with idempotency keys). @default 2 */
  networkRetriesMax?: number;
}

type Fields = Record<string, unknown>;

/** `object.a.b.c`, or undefined when any step is missing: event shapes differ by API version. */
function field(object: unknown, ...path: string[]): unknown {
  let value: unknown = object;
  for (const key of path) {
    if (value === null || typeof value !== "object") return undefined;
    value = (value as Fields)[key];
  }
  return value;
}

function textField(object: unknown, ...path: string[]): string | undefined {
  const value = field(object, ...path);
  if (typeof value === "string" && value.length > 0) return value;
  // An expanded object in place of its id.
  const id = field(value, "id");
  return typeof id === "string" ? id : undefined;
}

function numberField(object: unknown, ...path: string[]): number {
  const value = field(object, ...path);
  return typeof value === "number" ? value : 0;
}

export class StripePaymentProvider implements PaymentProvider {
  readonly name = "stripe";
  readonly checkoutAvailable = true;
  readonly #stripe: Stripe;
  readonly #options: StripePaymentProviderOptions;

  constructor(options: StripePaymentProviderOptions) {
    this.#options = options;
    this.#stripe = new Stripe(options.secretKey, {
      ...(options.api ?? {}),
      timeout: options.timeoutMs ?? 20_000,
      maxNetworkRetries: options.networkRetriesMax ?? 2,
      appInfo: { name: "Cutline" },
    });
  }

  async createCustomer(accountId: string): Promise<string> {
    // The idempotency key makes two racing first checkouts of one account share one customer (Stripe keeps keys 24 h).
    const customer = await this.#stripe.customers.create({ description: `Cutline account ${accountId}`, metadata: { account_id: accountId } }, { idempotencyKey: `cutline-customer-${accountId}` });
    return customer.id;
  }

  async createCheckout(input: CheckoutInput): Promise<{ url: string; sessionId: string }> {
    const { product } = input;
    const metadata = { account_id: input.accountId, product_code: product.code, product_kind: product.kind };
    const recurring = product.kind === "plan" ? { recurring: { interval: product.interval === "year" ? ("year" as const) : ("month" as const) } } : {};
    const lineItem = product.providerPriceId
      ? { price: product.providerPriceId, quantity: 1 }
      : {
          quantity: 1,
          price_data: {
            currency: product.currency,
            unit_amount: product.priceMinor,
            product_data: { name: product.name, metadata: { product_code: product.code } },
            ...recurring,
          },
        };
    const session = await this.#stripe.checkout.sessions.create({
      mode: product.kind === "plan" ? "subscription" : "payment",
      customer: input.customerId,
      client_reference_id: input.accountId,
      line_items: [lineItem],
      metadata,
      success_url: input.successUrl,
      cancel_url: input.cancelUrl,
      ...(product.kind === "plan"
        ? { subscription_data: { metadata: { account_id: input.accountId, plan_code: product.code } } }
        : { payment_intent_data: { metadata } }),
    });
    if (!session.url) throw new Error(`Stripe answered checkout session ${session.id} without a url`);
    return { url: session.url, sessionId: session.id };
  }

  async createPortalSession(input: PortalInput): Promise<{ url: string }> {
    const session = await this.#stripe.billingPortal.sessions.create({ customer: input.customerId, return_url: input.returnUrl });
    return { url: session.url };
  }

  async reportUsage(report: UsageReport): Promise<void> {
    await this.#stripe.billing.meterEvents.create({
      event_name: this.#options.overageMeterEventName,
      payload: { stripe_customer_id: report.customerId, value: String(report.millicredits) },
      identifier: report.identifier,
      timestamp: Math.floor(report.occurredAt.getTime() / 1000),
    });
  }

  async paymentOfInvoice(invoiceId: string): Promise<string | undefined> {
    // Since the 2025 API versions an invoice names its payments only in this list (not expanded in webhooks).
    const payments = await this.#stripe.invoicePayments.list({ invoice: invoiceId, status: "paid", limit: 1 });
    return textField(payments.data[0], "payment", "payment_intent");
  }

  parseWebhook(rawBody: Buffer, signatureHeader: string | undefined): PaymentEvent {
    if (!signatureHeader) throw new PaymentSignatureInvalid("the Stripe-Signature header is missing");
    let event: Stripe.Event;
    try {
      event = this.#stripe.webhooks.constructEvent(rawBody, signatureHeader, this.#options.webhookSecret, this.#options.webhookToleranceSeconds ?? 300);
    } catch (error) {
      throw new PaymentSignatureInvalid(`the Stripe-Signature does not verify: ${error instanceof Error ? error.message : String(error)}`, { cause: error });
    }
    return eventOf(event.id, event.type, event.data.object);
  }
}

/** A verified Stripe event as a payment fact; anything else is `ignored`. */
export function eventOf(eventId: string, type: string, object: unknown): PaymentEvent {
  switch (type) {
    case "checkout.session.completed":
    case "checkout.session.async_payment_succeeded":
      return checkoutEventOf(eventId, type, object);
    case "invoice.paid":
      return invoicePaidOf(eventId, type, object);
    case "customer.subscription.updated":
      return {
        kind: "subscription_changed",
        eventId,
        subscriptionId: textField(object, "id") ?? "",
        accountId: textField(object, "metadata", "account_id"),
        planCode: textField(object, "metadata", "plan_code"),
        priceId: textField(object, "items", "data", "0", "price"),
        status: textField(object, "status") ?? "",
      };
    case "customer.subscription.deleted":
      return { kind: "subscription_ended", eventId, subscriptionId: textField(object, "id") ?? "", accountId: textField(object, "metadata", "account_id") };
    case "charge.refunded":
      return {
        kind: "payment_refunded",
        eventId,
        chargeId: textField(object, "id") ?? "",
        paymentId: textField(object, "payment_intent") ?? "",
        amountRefundedMinor: numberField(object, "amount_refunded"),
        amountMinor: numberField(object, "amount"),
        currency: textField(object, "currency") ?? "",
      };
    default:
      return { kind: "ignored", eventId, type };
  }
}

function checkoutEventOf(eventId: string, type: string, session: unknown): PaymentEvent {
  const accountId = textField(session, "metadata", "account_id") ?? textField(session, "client_reference_id");
  const code = textField(session, "metadata", "product_code");
  const sessionId = textField(session, "id") ?? "";
  // Not ours (another integration on the same Stripe account), or not paid yet: delayed methods
  // complete the session `unpaid` and pay later in checkout.session.async_payment_succeeded.
  const paid = ["paid", "no_payment_required"].includes(textField(session, "payment_status") ?? "");
  if (!accountId || !code || !paid) return { kind: "ignored", eventId, type };
  if (textField(session, "mode") === "subscription") {
    const subscriptionId = textField(session, "subscription");
    if (!subscriptionId) return { kind: "ignored", eventId, type };
    return { kind: "subscription_started", eventId, sessionId, accountId, planCode: code, subscriptionId, customerId: textField(session, "customer") ?? "" };
  }
  return {
    kind: "pack_paid",
    eventId,
    sessionId,
    accountId,
    packCode: code,
    paymentId: textField(session, "payment_intent") ?? sessionId,
    amountMinor: numberField(session, "amount_total"),
    currency: textField(session, "currency") ?? "",
  };
}

function invoicePaidOf(eventId: string, type: string, invoice: unknown): PaymentEvent {
  // The first invoice (subscription_create) pays for the cycle its checkout started, and it may come
  // before the checkout's event; renewals (subscription_cycle) pay for the next. Plan changes
  // arrive as customer.subscription.updated.
  if (!["subscription_cycle", "subscription_create"].includes(textField(invoice, "billing_reason") ?? "")) return { kind: "ignored", eventId, type };
  const details = field(invoice, "parent", "subscription_details") ?? field(invoice, "subscription_details");
  const subscriptionId = textField(details, "subscription") ?? textField(invoice, "subscription");
  if (!subscriptionId) return { kind: "ignored", eventId, type };
  const lineData = field(invoice, "lines", "data");
  return {
    kind: "subscription_renewed",
    eventId,
    invoiceId: textField(invoice, "id") ?? "",
    subscriptionId,
    accountId: textField(details, "metadata", "account_id"),
    planCode: textField(details, "metadata", "plan_code"),
    lines: Array.isArray(lineData) ? lineData.map(invoiceLineOf) : [],
    // Before the 2025 API versions the invoice named its PaymentIntent; since, its payments list does.
    paymentId: textField(invoice, "payment_intent") ?? textField(invoice, "payments", "data", "0", "payment", "payment_intent"),
    amountMinor: numberField(invoice, "amount_paid"),
    currency: textField(invoice, "currency") ?? "",
  };
}

function invoiceLineOf(line: unknown): InvoiceLine {
  const periodStartSeconds = field(line, "period", "start");
  // 2025 API versions: pricing.price_details and parent.subscription_item_details; before, price and proration on the line.
  const proration = field(line, "parent", "subscription_item_details", "proration") ?? field(line, "proration");
  const usageType = field(line, "price", "recurring", "usage_type") ?? field(line, "plan", "usage_type");
  return {
    priceId: textField(line, "pricing", "price_details", "price") ?? textField(line, "price"),
    periodStart: typeof periodStartSeconds === "number" && Number.isSafeInteger(periodStartSeconds) ? new Date(periodStartSeconds * 1000) : undefined,
    amountMinor: numberField(line, "amount"),
    proration: proration === true,
    metered: typeof usageType === "string" ? usageType === "metered" : undefined,
  };
}
