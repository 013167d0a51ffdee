// The payment port for self-hosters without a provider: nothing is sold online. Products are still
// listed (so a dashboard can show prices), and the operator grants packs and changes plans through
// the admin API (`/admin/v1/accounts/{id}/grants`, the admin CLI) once paid by other means.
import { PaymentSignatureInvalid, PaymentsNotConfigured, type PaymentEvent, type PaymentProvider } from "../ports/payment-provider.ts";

const NOT_CONFIGURED = "payments are not configured on this server (PAYMENT_PROVIDER=manual): the operator grants credits and changes plans through the admin API";

export class ManualPaymentProvider implements PaymentProvider {
  readonly name = "manual";
  readonly checkoutAvailable = false;

  async createCustomer(): Promise<string> {
    throw new PaymentsNotConfigured(NOT_CONFIGURED);
  }

  async createCheckout(): Promise<{ url: string; sessionId: string }> {
    throw new PaymentsNotConfigured(NOT_CONFIGURED);
  }

  async createPortalSession(): Promise<{ url: string }> {
    throw new PaymentsNotConfigured(NOT_CONFIGURED);
  }

  /** No provider signs anything here: every webhook is refused, and nothing moves. */
  parseWebhook(): PaymentEvent {
    throw new PaymentSignatureInvalid("no payment provider is configured (PAYMENT_PROVIDER=manual): webhooks are not accepted");
  }

  /** Overage stays in billing's cycle reports for the operator to invoice. */
  async reportUsage(): Promise<void> {
    throw new PaymentsNotConfigured(NOT_CONFIGURED);
  }

  async paymentOfInvoice(): Promise<string | undefined> {
    throw new PaymentsNotConfigured(NOT_CONFIGURED);
  }
}
