import assert from "node:assert/strict";
import { after, before, describe, it } from "node:test";
import { startStripeApiServer, type StripeApiServer } from "../common/adapters/stripe-api.testing.ts";
import { ConfigError } from "../common/config.loader.ts";
import { loadGatewayConfig, paymentProviderOf } from "./gateway.config.ts";

describe("PAYMENT_PROVIDER", () => {
  let api: StripeApiServer;
  before(async () => {
    api = await startStripeApiServer();
  });
  after(() => api.close());

  it("defaults to manual: nothing to check out with", () => {
    const provider = paymentProviderOf(loadGatewayConfig({}));
    assert.deepEqual([provider.name, provider.checkoutAvailable], ["manual", false]);
  });

  it("stripe without its secrets refuses to start, naming each missing variable", () => {
    assert.throws(
      () => paymentProviderOf(loadGatewayConfig({ PAYMENT_PROVIDER: "stripe" })),
      (error: unknown) => error instanceof ConfigError && error.problems.some((problem) => problem.startsWith("STRIPE_SECRET_KEY")) && error.problems.some((problem) => problem.startsWith("STRIPE_WEBHOOK_SECRET")),
    );
    assert.throws(() => loadGatewayConfig({ PAYMENT_PROVIDER: "paypal" }), /PAYMENT_PROVIDER="paypal": expected one of manual, stripe/);
  });

  it("stripe talks to STRIPE_API_URL with STRIPE_SECRET_KEY", async () => {
    const provider = paymentProviderOf(
      loadGatewayConfig({ PAYMENT_PROVIDER: "stripe", STRIPE_SECRET_KEY: "sk_test_config", STRIPE_WEBHOOK_SECRET: "whsec_config", STRIPE_API_URL: `http://${api.api.host}:${api.api.port}` }),
    );
    assert.equal(provider.checkoutAvailable, true);
    assert.match(await provider.createCustomer("acct-config"), /^cus_/);
    assert.equal(api.requestsTo("/v1/customers").at(-1)!.authorization, "Bearer sk_test_config");
  });
});
