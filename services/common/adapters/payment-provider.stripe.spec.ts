// The Stripe adapter against a local server answering Stripe's documented shapes, and webhook
// events signed by Stripe's own library. No network. (What every adapter does is payment-provider.contract.ts.)
import assert from "node:assert/strict";
import { after, before, describe, it } from "node:test";
import { PaymentSignatureInvalid, type PaymentProduct } from "../ports/payment-provider.ts";
import { StripePaymentProvider } from "./payment-provider.stripe.ts";
import { signedStripeEvent, startStripeApiServer, type StripeApiServer } from "./stripe-api.testing.ts";

const WEBHOOK_SECRET = "whsec_test_adapter";
const pack: PaymentProduct = { code: "pack_100", kind: "pack", name: "555 credits", priceMinor: 10_000, currency: "usd", creditsMillicredits: 555_000, interval: "", validDays: 0 };
const plan: PaymentProduct = { code: "pro", kind: "plan", name: "Pro", priceMinor: 4_999, currency: "usd", creditsMillicredits: 1_000_000, interval: "month", validDays: 30 };

describe("Stripe payment provider", () => {
  let api: StripeApiServer;
  let stripe: StripePaymentProvider;

  before(async () => {
    api = await startStripeApiServer();
    stripe = new StripePaymentProvider({ secretKey: "sk_test_adapter", webhookSecret: WEBHOOK_SECRET, overageMeterEventName: "cutline_overage_millicredits", api: api.api, networkRetriesMax: 0 });
  });
  after(() => api.close());

  it("creates one customer per account, with an idempotency key naming the account", async () => {
    const customerId = await stripe.createCustomer("acct-1");
    assert.match(customerId, /^cus_/);
    const [request] = api.requestsTo("/v1/customers");
    assert.equal(request!.form["metadata[account_id]"], "acct-1");
    assert.equal(request!.idempotencyKey, "cutline-customer-acct-1");
    assert.equal(request!.authorization, "Bearer sk_test_adapter");
  });

  it("sells a pack as a one-off payment with its price inline, and the account in the metadata", async () => {
    const { url, sessionId } = await stripe.createCheckout({ accountId: "acct-1", customerId: "cus_1", product: pack, successUrl: "https://example.com/ok", cancelUrl: "https://example.com/no" });
    assert.equal(url, `https://checkout.stripe.com/c/pay/${sessionId}`);
    const form = api.requestsTo("/v1/checkout/sessions").at(-1)!.form;
    assert.equal(form.mode, "payment");
    assert.equal(form.customer, "cus_1");
    assert.equal(form["line_items[0][price_data][unit_amount]"], "10000");
    assert.equal(form["line_items[0][price_data][currency]"], "usd");
    assert.equal(form["line_items[0][price_data][recurring][interval]"], undefined);
    assert.equal(form["metadata[account_id]"], "acct-1");
    assert.equal(form["metadata[product_code]"], "pack_100");
    assert.equal(form["payment_intent_data[metadata][product_code]"], "pack_100");
  });

  it("sells a plan as a subscription, by the operator's Stripe price when the plan names one", async () => {
    await stripe.createCheckout({ accountId: "acct-1", customerId: "cus_1", product: plan, successUrl: "https://example.com/ok", cancelUrl: "https://example.com/no" });
    let form = api.requestsTo("/v1/checkout/sessions").at(-1)!.form;
    assert.equal(form.mode, "subscription");
    assert.equal(form["line_items[0][price_data][recurring][interval]"], "month");
    assert.equal(form["subscription_data[metadata][plan_code]"], "pro");
    await stripe.createCheckout({ accountId: "acct-1", customerId: "cus_1", product: { ...plan, providerPriceId: "price_pro_monthly" }, successUrl: "https://example.com/ok", cancelUrl: "https://example.com/no" });
    form = api.requestsTo("/v1/checkout/sessions").at(-1)!.form;
    assert.equal(form["line_items[0][price]"], "price_pro_monthly");
    assert.equal(form["line_items[0][price_data][unit_amount]"], undefined);
  });

  it("sells an annual plan as a yearly subscription: its price recurs every year, not every month", async () => {
    const annual: PaymentProduct = { ...plan, code: "annual_lite", name: "Annual Lite", priceMinor: 10_800, interval: "year", validDays: 365 };
    await stripe.createCheckout({ accountId: "acct-1", customerId: "cus_1", product: annual, successUrl: "https://example.com/ok", cancelUrl: "https://example.com/no" });
    const form = api.requestsTo("/v1/checkout/sessions").at(-1)!.form;
    assert.deepEqual(
      [form.mode, form["line_items[0][price_data][recurring][interval]"], form["line_items[0][price_data][unit_amount]"], form["subscription_data[metadata][plan_code]"]],
      ["subscription", "year", "10800", "annual_lite"],
    );
  });

  it("opens the customer portal and reports overage as a meter event", async () => {
    const { url } = await stripe.createPortalSession({ customerId: "cus_1", returnUrl: "https://example.com/account" });
    assert.match(url, /^https:\/\/billing\.stripe\.com\/p\/session\//);
    await stripe.reportUsage({ customerId: "cus_1", millicredits: 2_500, identifier: "cutline-overage-acct-1-0-2500", occurredAt: new Date(1_800_000_000_000) });
    const form = api.requestsTo("/v1/billing/meter_events").at(-1)!.form;
    assert.deepEqual(
      [form.event_name, form["payload[stripe_customer_id]"], form["payload[value]"], form.identifier, form.timestamp],
      ["cutline_overage_millicredits", "cus_1", "2500", "cutline-overage-acct-1-0-2500", "1800000000"],
    );
  });

  it("verifies webhook signatures and translates the events it acts on", async () => {
    const session = { id: "cs_1", object: "checkout.session", mode: "payment", payment_status: "paid", metadata: { account_id: "acct-1", product_code: "pack_100" }, payment_intent: "pi_1", amount_total: 10_000, currency: "usd" };
    const signed = await signedStripeEvent(WEBHOOK_SECRET, { id: "evt_1", type: "checkout.session.completed", object: session });
    assert.deepEqual(stripe.parseWebhook(Buffer.from(signed.body), signed.signature), {
      kind: "pack_paid",
      eventId: "evt_1",
      sessionId: "cs_1",
      accountId: "acct-1",
      packCode: "pack_100",
      paymentId: "pi_1",
      amountMinor: 10_000,
      currency: "usd",
    });
    // A delayed payment method completes the session unpaid: nothing is granted until it pays.
    const unpaid = await signedStripeEvent(WEBHOOK_SECRET, { id: "evt_2", type: "checkout.session.completed", object: { ...session, payment_status: "unpaid" } });
    assert.equal(stripe.parseWebhook(Buffer.from(unpaid.body), unpaid.signature).kind, "ignored");
    const renewal = {
      id: "in_1",
      object: "invoice",
      billing_reason: "subscription_cycle",
      parent: { type: "subscription_details", subscription_details: { subscription: "sub_1", metadata: { account_id: "acct-1", plan_code: "pro" } } },
      amount_paid: 4_999,
      currency: "usd",
      payments: { object: "list", data: [{ object: "invoice_payment", payment: { type: "payment_intent", payment_intent: "pi_renewal_1" } }] },
      lines: { object: "list", data: [{ id: "il_1", period: { start: 1_800_000_000, end: 1_802_592_000 }, pricing: { type: "price_details", price_details: { price: "price_pro_monthly", product: "prod_1" } } }] },
    };
    const renewed = await signedStripeEvent(WEBHOOK_SECRET, { id: "evt_3", type: "invoice.paid", object: renewal });
    assert.deepEqual(stripe.parseWebhook(Buffer.from(renewed.body), renewed.signature), {
      kind: "subscription_renewed",
      eventId: "evt_3",
      invoiceId: "in_1",
      subscriptionId: "sub_1",
      accountId: "acct-1",
      planCode: "pro",
      lines: [{ priceId: "price_pro_monthly", periodStart: new Date(1_800_000_000_000), amountMinor: 0, proration: false, metered: undefined }],
      paymentId: "pi_renewal_1",
      amountMinor: 4_999,
      currency: "usd",
    });
    const first = await signedStripeEvent(WEBHOOK_SECRET, { id: "evt_4", type: "invoice.paid", object: { ...renewal, billing_reason: "subscription_create" } });
    assert.equal(stripe.parseWebhook(Buffer.from(first.body), first.signature).kind, "subscription_renewed", "the first invoice pays for the checkout's cycle, and may come before it");
    const unknown = await signedStripeEvent(WEBHOOK_SECRET, { id: "evt_5", type: "customer.created", object: { id: "cus_1" } });
    assert.deepEqual(stripe.parseWebhook(Buffer.from(unknown.body), unknown.signature), { kind: "ignored", eventId: "evt_5", type: "customer.created" });
  });

  it("refuses a body whose signature does not verify: another secret, a changed body, no header", async () => {
    const signed = await signedStripeEvent("whsec_someone_else", { id: "evt_9", type: "charge.refunded", object: { id: "ch_1" } });
    assert.throws(() => stripe.parseWebhook(Buffer.from(signed.body), signed.signature), PaymentSignatureInvalid);
    const ours = await signedStripeEvent(WEBHOOK_SECRET, { id: "evt_9", type: "charge.refunded", object: { id: "ch_1" } });
    assert.throws(() => stripe.parseWebhook(Buffer.from(ours.body.replace("ch_1", "ch_2")), ours.signature), PaymentSignatureInvalid);
    assert.throws(() => stripe.parseWebhook(Buffer.from(ours.body), undefined), PaymentSignatureInvalid);
  });
});

