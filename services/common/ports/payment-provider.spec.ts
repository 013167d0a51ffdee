import { ManualPaymentProvider } from "../adapters/payment-provider.manual.ts";
import { StripePaymentProvider } from "../adapters/payment-provider.stripe.ts";
import { signedStripeEvent, startStripeApiServer } from "../adapters/stripe-api.testing.ts";
import { describePaymentProviderContract } from "./payment-provider.contract.ts";

describePaymentProviderContract("manual", async () => ({ provider: new ManualPaymentProvider(), cleanUp: async () => undefined }));

// Stripe's API is a local server answering its documented shapes; events are signed by Stripe's own library.
describePaymentProviderContract("stripe", async () => {
  const api = await startStripeApiServer();
  const webhookSecret = "whsec_contract";
  return {
    provider: new StripePaymentProvider({ secretKey: "sk_test_contract", webhookSecret, overageMeterEventName: "cutline_overage_millicredits", api: api.api, networkRetriesMax: 0 }),
    sign: (event) => signedStripeEvent(webhookSecret, event),
    cleanUp: () => api.close(),
  };
});
