import type { Client, ServiceImpl } from "@connectrpc/connect";
import type { BillingService } from "../../common/gen/cutline/billing/v1/billing_service_pb.ts";
import { ProductKind, type PaymentService } from "../../common/gen/cutline/gateway/v1/payment_service_pb.ts";
import { authenticate } from "../authentication.ts";
import { accountManagerOf } from "../caller-roles.ts";
import type { Payments } from "../payments.ts";
import type { ApiKeyStore } from "../store/api-key.store.ts";

/** PaymentService: products on sale, and checkout and portal sessions for the caller's account (an owner's or admin's key). */
export function createPaymentHandlers(apiKeys: ApiKeyStore, billing: Client<typeof BillingService>, payments: Payments): ServiceImpl<typeof PaymentService> {
  return {
    async listProducts(_request, context) {
      await authenticate(apiKeys, context.requestHeader);
      const products = await payments.products();
      return {
        provider: payments.providerName,
        checkoutAvailable: payments.checkoutAvailable,
        products: products.map((product) => ({
          code: product.code,
          kind: product.kind === "plan" ? ProductKind.PLAN : ProductKind.PACK,
          name: product.name,
          priceMinor: BigInt(product.priceMinor),
          currency: product.currency,
          creditsMillicredits: BigInt(product.creditsMillicredits),
          interval: product.interval,
          validDays: product.validDays,
        })),
      };
    },
    async createCheckout(request, context) {
      const owner = await accountManagerOf(apiKeys, billing, context.requestHeader, "buy for the account");
      return { url: await payments.checkout(owner.accountId, { productCode: request.productCode, successUrl: request.successUrl, cancelUrl: request.cancelUrl }) };
    },
    async createPortalSession(request, context) {
      const owner = await accountManagerOf(apiKeys, billing, context.requestHeader, "open the account's billing portal");
      return { url: await payments.portal(owner.accountId, request.returnUrl) };
    },
  };
}
