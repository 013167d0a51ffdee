// The payment provider's webhook on the gateway's public port. Stripe signs the raw body, so it is
// read as bytes (never parsed and re-serialised) and handed to the port to verify.
import { Code, ConnectError } from "@connectrpc/connect";
import { reasonError } from "../../common/errors.ts";
import type { HttpRequest } from "../../common/server.ts";
import type { Payments } from "../payments.ts";
import { ClientGone, writeJson, type RestRoute } from "./route-table.ts";

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

/**
 * POST /v1/payments/stripe/webhook: 200 for an event applied, replayed or ignored (unknown types);
 * 400 `invalid_signature` moves nothing; a server fault answers 5xx, and Stripe retries.
 */
export function paymentRoutes(payments: Payments): RestRoute[] {
  return [
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
