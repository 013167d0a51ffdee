// Payments over REST: the products on sale, checkout and portal sessions for the caller's account
// (the REST face of PaymentService), and the payment provider's webhook on the gateway's public
// port. Stripe signs the raw body, so the webhook reads it as bytes (never parsed and
// re-serialised) and hands it to the port to verify.
import { Code, ConnectError, type Client } from "@connectrpc/connect";
import { creditsNumber } from "../../common/credits.ts";
import { reasonError } from "../../common/errors.ts";
import type { BillingService } from "../../common/gen/cutline/billing/v1/billing_service_pb.ts";
import type { PaymentProduct } from "../../common/ports/payment-provider.ts";
import type { HttpRequest } from "../../common/server.ts";
import { authenticate } from "../authentication.ts";
import { accountManagerOf } from "../caller-roles.ts";
import type { Payments } from "../payments.ts";
import type { ApiKeyStore } from "../store/api-key.store.ts";
import { ClientGone, readJson, writeJson, type RestRoute } from "./route-table.ts";
import { headersOf } from "./upload.admission.ts";

/** Largest checkout or portal body, in bytes: a code and two URLs. */
const PAYMENT_BODY_BYTES_MAX = 16 * 1024;

/** Largest webhook body accepted, in bytes: Stripe's events are a few KiB, with expanded objects tens. */
export const PAYMENT_WEBHOOK_BYTES_MAX = 1024 * 1024;

async function rawBodyOf(request: HttpRequest, bytesMax: number): Promise<Buffer> {
  const declared = Number(request.headers["content-length"] ?? 0);
  if (declared > bytesMax) throw reasonError(Code.InvalidArgument, "too_many_bytes", `the webhook declares ${declared} bytes; PAYMENT_WEBHOOK_BYTES_MAX is ${bytesMax} bytes`);
  const chunks: Buffer[] = [];
  let total = 0;
  try {
    for await (const chunk of request as AsyncIterable<Buffer>) {
      total += chunk.byteLength;
      if (total > bytesMax) throw reasonError(Code.InvalidArgument, "too_many_bytes", `the webhook body exceeds PAYMENT_WEBHOOK_BYTES_MAX (${bytesMax} bytes)`);
      chunks.push(chunk);
    }
  } catch (error) {
    if (error instanceof ConnectError) throw error;
    throw new ClientGone("the provider went away during the webhook body", { cause: error });
  }
  return Buffer.concat(chunks);
}

/** A field of a JSON object body that must be a string; anything else is named. */
function textField(body: unknown, name: string, required: boolean): string {
  if (typeof body !== "object" || body === null || Array.isArray(body)) throw reasonError(Code.InvalidArgument, "invalid_request", "send a JSON object");
  const value = (body as Record<string, unknown>)[name];
  if (value === undefined && !required) return "";
  if (typeof value !== "string" || value === "") throw reasonError(Code.InvalidArgument, "invalid_argument", `${name} is required and must be a string`);
  return value;
}

const productJson = (product: PaymentProduct) => ({
  code: product.code,
  kind: product.kind,
  name: product.name,
  price_minor: product.priceMinor,
  currency: product.currency,
  credits: creditsNumber(product.creditsMillicredits),
  interval: product.interval === "" ? null : product.interval,
  valid_days: product.validDays,
});

/**
 * GET /v1/payments/products, POST /v1/payments/checkout, POST /v1/payments/portal (the caller's
 * account, by an owner's or admin's API key; a member's answers 403 `role_forbidden`), and POST /v1/payments/stripe/webhook: 200 for an event applied,
 * replayed or ignored (unknown types); 400 `invalid_signature` moves nothing; a server fault
 * answers 5xx, and Stripe retries.
 */
export function paymentRoutes(apiKeys: ApiKeyStore, billing: Client<typeof BillingService>, payments: Payments): RestRoute[] {
  return [
    {
      method: "GET",
      path: "/v1/payments/products",
      async handle(request, response) {
        await authenticate(apiKeys, headersOf(request));
        const products = await payments.products();
        writeJson(response, 200, { provider: payments.providerName, checkout_available: payments.checkoutAvailable, products: products.map(productJson) });
      },
    },
    {
      method: "POST",
      path: "/v1/payments/checkout",
      async handle(request, response) {
        const owner = await accountManagerOf(apiKeys, billing, headersOf(request), "buy for the account");
        const body = await readJson(request, PAYMENT_BODY_BYTES_MAX);
        const input = { productCode: textField(body, "product_code", true), successUrl: textField(body, "success_url", true), cancelUrl: textField(body, "cancel_url", true) };
        writeJson(response, 200, { url: await payments.checkout(owner.accountId, input) });
      },
    },
    {
      method: "POST",
      path: "/v1/payments/portal",
      async handle(request, response) {
        const owner = await accountManagerOf(apiKeys, billing, headersOf(request), "open the account's billing portal");
        const body = await readJson(request, PAYMENT_BODY_BYTES_MAX);
        writeJson(response, 200, { url: await payments.portal(owner.accountId, textField(body, "return_url", true)) });
      },
    },
    {
      method: "POST",
      path: "/v1/payments/stripe/webhook",
      async handle(request, response) {
        const body = await rawBodyOf(request, PAYMENT_WEBHOOK_BYTES_MAX);
        const signature = request.headers["stripe-signature"];
        const answer = await payments.webhook(body, Array.isArray(signature) ? signature[0] : signature, new Date());
        writeJson(response, 200, { received: true, applied: answer.applied, replayed: answer.replayed });
      },
    },
  ];
}
