// The payment provider contract: every adapter runs this suite (see payment-provider.spec.ts).
// An adapter either sells (checkout, portal, customers, usage all answer) or says plainly that it
// does not (each refuses with PaymentsNotConfigured); either way, an unverifiable webhook moves
// nothing.
import assert from "node:assert/strict";
import { after, describe, test } from "node:test";
import type { ContractRun } from "./contract-support.ts";
import { PaymentSignatureInvalid, PaymentsNotConfigured, type PaymentProduct, type PaymentProvider } from "./payment-provider.ts";

export interface PaymentProviderFixture {
  readonly provider: PaymentProvider;
  /** Signs an event the way the provider does; undefined for an adapter that accepts no webhook. */
  sign?(event: { id: string; type: string; object: unknown }): Promise<{ body: string; signature: string }>;
  cleanUp(): Promise<void>;
}

export type PaymentProviderFactory = () => Promise<PaymentProviderFixture>;

const PACK: PaymentProduct = { code: "pack_100", kind: "pack", name: "555 credits", priceMinor: 10_000, currency: "usd", creditsMillicredits: 555_000, interval: "", validDays: 0 };
const PLAN: PaymentProduct = { code: "pro", kind: "plan", name: "Pro", priceMinor: 4_999, currency: "usd", creditsMillicredits: 1_000_000, interval: "month", validDays: 30 };
const URLS = { successUrl: "https://example.com/paid", cancelUrl: "https://example.com/cancelled" };

export function describePaymentProviderContract(name: string, factory: PaymentProviderFactory, run: ContractRun = {}): void {
  describe(`PaymentProvider contract: ${name}`, { skip: run.skip }, () => {
    const fixtures: PaymentProviderFixture[] = [];
    const open = async () => {
      const fixture = await factory();
      fixtures.push(fixture);
      return fixture;
    };
    after(async () => {
      await Promise.all(fixtures.map((fixture) => fixture.cleanUp()));
    });

    test("refuses a webhook it cannot verify: no signature, a made-up one", async () => {
      const { provider } = await open();
      const body = Buffer.from(JSON.stringify({ id: "evt_x", object: "event", type: "checkout.session.completed", data: { object: {} } }));
      assert.throws(() => provider.parseWebhook(body, undefined), PaymentSignatureInvalid);
      assert.throws(() => provider.parseWebhook(body, `t=${Math.floor(Date.now() / 1000)},v1=${"0".repeat(64)}`), PaymentSignatureInvalid);
    });

    test("sells through every call, or refuses every call as not configured", async () => {
      const { provider } = await open();
      if (provider.checkoutAvailable) {
        const customerId = await provider.createCustomer("contract-account");
        assert.ok(customerId.length > 0);
        for (const product of [PACK, PLAN]) {
          const session = await provider.createCheckout({ accountId: "contract-account", customerId, product, ...URLS });
          assert.match(session.url, /^https?:\/\//);
          assert.ok(session.sessionId.length > 0);
        }
        assert.match((await provider.createPortalSession({ customerId, returnUrl: "https://example.com/account" })).url, /^https?:\/\//);
        await provider.reportUsage({ customerId, millicredits: 1_000, identifier: "contract-usage-1", occurredAt: new Date() });
        assert.equal(typeof (await provider.paymentOfInvoice("in_contract")), "string");
      } else {
        await assert.rejects(provider.createCustomer("contract-account"), PaymentsNotConfigured);
        await assert.rejects(provider.createCheckout({ accountId: "contract-account", customerId: "none", product: PACK, ...URLS }), PaymentsNotConfigured);
        await assert.rejects(provider.createPortalSession({ customerId: "none", returnUrl: "https://example.com/account" }), PaymentsNotConfigured);
        await assert.rejects(provider.reportUsage({ customerId: "none", millicredits: 1_000, identifier: "contract-usage-1", occurredAt: new Date() }), PaymentsNotConfigured);
        await assert.rejects(provider.paymentOfInvoice("in_contract"), PaymentsNotConfigured);
      }
    });

    test("a verified event it does not act on is `ignored`, named by its id", async (context) => {
      const fixture = await open();
      if (!fixture.sign) return context.skip("this adapter accepts no webhook");
      const signed = await fixture.sign({ id: "evt_contract_unknown", type: "customer.created", object: { id: "cus_contract" } });
      assert.deepEqual(fixture.provider.parseWebhook(Buffer.from(signed.body), signed.signature), { kind: "ignored", eventId: "evt_contract_unknown", type: "customer.created" });
    });

    test("a paid pack checkout is `pack_paid` for the account and pack its checkout named", async (context) => {
      const fixture = await open();
      if (!fixture.sign) return context.skip("this adapter accepts no webhook");
      const session = { id: "cs_contract", object: "checkout.session", mode: "payment", payment_status: "paid", metadata: { account_id: "contract-account", product_code: "pack_100" }, payment_intent: "pi_contract", amount_total: 10_000, currency: "usd" };
      const signed = await fixture.sign({ id: "evt_contract_pack", type: "checkout.session.completed", object: session });
      const event = fixture.provider.parseWebhook(Buffer.from(signed.body), signed.signature);
      assert.equal(event.kind, "pack_paid");
      assert.deepEqual(event.kind === "pack_paid" && [event.eventId, event.accountId, event.packCode], ["evt_contract_pack", "contract-account", "pack_100"]);
    });
  });
}
