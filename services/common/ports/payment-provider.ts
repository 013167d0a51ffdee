// The payment provider port: hosted checkout, the customer portal, signed webhook events and
// metered usage. Two adapters, chosen by PAYMENT_PROVIDER: `manual` (self-hosters without a
// provider; an operator grants credits through the admin API) and `stripe`. Provider events are
// translated here into a few provider-neutral facts; what they do to the ledger is the gateway's.

/** A plan or pack as the provider is asked to sell it. */
export interface PaymentProduct {
  /** The plan's or pack's code ("growth", "pack_100"). */
  code: string;
  kind: "plan" | "pack";
  name: string;
  /** Price in the currency's smallest unit (cents). */
  priceMinor: number;
  /** ISO 4217, lower case ("usd"). */
  currency: string;
  creditsMillicredits: number;
  /** Plans: "month", or "year" for a 12-month term billed once (annual plans); packs: "". */
  interval: "month" | "year" | "";
  /** Days the credits stay valid; 0: never expire. */
  validDays: number;
  /** The provider's own price id when the operator made one (Stripe `price_...`); unset: sent inline. */
  providerPriceId?: string;
}

export interface CheckoutInput {
  accountId: string;
  /** The provider's customer for this account (see `createCustomer`). */
  customerId: string;
  product: PaymentProduct;
  successUrl: string;
  cancelUrl: string;
}

export interface PortalInput {
  customerId: string;
  returnUrl: string;
}

export interface UsageReport {
  customerId: string;
  /** Overage in millicredits to add to the customer's metered usage (a positive integer). */
  millicredits: number;
  /** Unique per report: the provider drops a second report with the same identifier. */
  identifier: string;
  occurredAt: Date;
}

/** One line of a paid invoice; the gateway picks the plan's (pickPlanLine in gateway/payments.ts). */
export interface InvoiceLine {
  priceId: string | undefined;
  /** Start of the period the line charges for: the coming cycle for a plan, the closed one for overage in arrears. */
  periodStart: Date | undefined;
  amountMinor: number;
  /** A proration of a plan change, never the cycle's own charge. */
  proration: boolean;
  /** True when the event says the price is metered (older API versions embed the price); undefined when it does not say. */
  metered: boolean | undefined;
}

/**
 * A verified provider event, as a fact about Cutline's products. `eventId` is the provider's event
 * id; each kind names the provider object it is about (session, invoice, subscription, charge), so
 * two events about one object can share one idempotency key.
 */
export type PaymentEvent =
  | { kind: "pack_paid"; eventId: string; sessionId: string; accountId: string; packCode: string; paymentId: string; amountMinor: number; currency: string }
  | { kind: "subscription_started"; eventId: string; sessionId: string; accountId: string; planCode: string; subscriptionId: string; customerId: string }
  | {
      kind: "subscription_renewed";
      eventId: string;
      invoiceId: string;
      subscriptionId: string;
      accountId: string | undefined;
      planCode: string | undefined;
      /** The invoice's lines in its order: the plan's, and any overage billed in arrears, prorations, others. */
      lines: InvoiceLine[];
      /** The payment that paid it (Stripe PaymentIntent), which a refund names; undefined when the event does not say. */
      paymentId: string | undefined;
      /** What the invoice took in all (plan, overage, prorations, tax). */
      amountMinor: number;
      currency: string;
    }
  | { kind: "subscription_changed"; eventId: string; subscriptionId: string; accountId: string | undefined; planCode: string | undefined; priceId: string | undefined; status: string }
  | { kind: "subscription_ended"; eventId: string; subscriptionId: string; accountId: string | undefined }
  | { kind: "payment_refunded"; eventId: string; chargeId: string; paymentId: string; amountRefundedMinor: number; amountMinor: number; currency: string }
  | { kind: "ignored"; eventId: string; type: string };

export interface PaymentProvider {
  /** "stripe" or "manual". */
  readonly name: string;
  /** False where buying is the operator's job (`manual`): checkout and portal calls throw PaymentsNotConfigured. */
  readonly checkoutAvailable: boolean;
  /** A new provider customer for the account (the caller stores the mapping). */
  createCustomer(accountId: string): Promise<string>;
  /** A hosted checkout page; the URL the buyer is sent to. */
  createCheckout(input: CheckoutInput): Promise<{ url: string; sessionId: string }>;
  createPortalSession(input: PortalInput): Promise<{ url: string }>;
  /** Verifies the signature over the raw body; throws PaymentSignatureInvalid when it does not hold. */
  parseWebhook(rawBody: Buffer, signatureHeader: string | undefined): PaymentEvent;
  /** Adds metered overage to the customer's usage (idempotent per `identifier`). */
  reportUsage(report: UsageReport): Promise<void>;
  /** The payment that paid an invoice, asked of the provider when its event does not name it; undefined when none did. */
  paymentOfInvoice(invoiceId: string): Promise<string | undefined>;
}

/** The provider is `manual`: there is nothing to check out with. */
export class PaymentsNotConfigured extends Error {
  override readonly name = "PaymentsNotConfigured";
}

/** A webhook whose signature is missing, malformed, stale or made with another secret. */
export class PaymentSignatureInvalid extends Error {
  override readonly name = "PaymentSignatureInvalid";
}
