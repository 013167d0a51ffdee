// A local HTTP server (node:http) answering the few Stripe API calls the Stripe payment adapter
// makes, with the response shapes Stripe documents (docs.stripe.com/api: customers, checkout
// sessions, billing portal sessions, billing meter events, invoice payments). The tests have no network; the Stripe
// client is pointed here by host, port and protocol, and every request is recorded as Stripe
// received it (form-encoded body, Idempotency-Key, Authorization).
import http from "node:http";
import type { AddressInfo } from "node:net";

export interface RecordedStripeRequest {
  method: string;
  path: string;
  /** The form-encoded body as Stripe reads it: `metadata[account_id]` → value. */
  form: Record<string, string>;
  idempotencyKey: string | undefined;
  authorization: string | undefined;
}

export interface StripeApiServer {
  readonly api: { host: string; port: number; protocol: "http" };
  readonly requests: RecordedStripeRequest[];
  /** Requests to `path` (e.g. "/v1/checkout/sessions"). */
  requestsTo(path: string): RecordedStripeRequest[];
  close(): Promise<void>;
}

const created = () => Math.floor(Date.now() / 1000);

function answer(request: RecordedStripeRequest, sequence: number): { status: number; body: unknown } {
  const id = (prefix: string) => `${prefix}_test_${sequence.toString().padStart(6, "0")}`;
  switch (`${request.method} ${request.path}`) {
    case "POST /v1/customers":
      return {
        status: 200,
        body: { id: id("cus"), object: "customer", created: created(), description: request.form.description ?? null, email: null, livemode: false, metadata: metadataOf(request.form, "metadata") },
      };
    case "POST /v1/checkout/sessions": {
      const sessionId = id("cs");
      return {
        status: 200,
        body: {
          id: sessionId,
          object: "checkout.session",
          mode: request.form.mode,
          status: "open",
          payment_status: "unpaid",
          customer: request.form.customer ?? null,
          client_reference_id: request.form.client_reference_id ?? null,
          metadata: metadataOf(request.form, "metadata"),
          success_url: request.form.success_url,
          cancel_url: request.form.cancel_url,
          url: `https://checkout.stripe.com/c/pay/${sessionId}`,
          livemode: false,
          created: created(),
        },
      };
    }
    case "POST /v1/billing_portal/sessions":
      return {
        status: 200,
        body: { id: id("bps"), object: "billing_portal.session", customer: request.form.customer, return_url: request.form.return_url, url: `https://billing.stripe.com/p/session/${id("live")}`, livemode: false, created: created() },
      };
    case "POST /v1/billing/meter_events":
      return {
        status: 200,
        body: {
          object: "billing.meter_event",
          created: created(),
          event_name: request.form.event_name,
          identifier: request.form.identifier,
          livemode: false,
          payload: metadataOf(request.form, "payload"),
          timestamp: Number(request.form.timestamp),
        },
      };
    case "GET /v1/invoice_payments": {
      // Every invoice here was paid by one PaymentIntent, named after it.
      const invoice = request.form.invoice ?? "";
      return {
        status: 200,
        body: {
          object: "list",
          url: "/v1/invoice_payments",
          has_more: false,
          data: [{ id: id("inpay"), object: "invoice_payment", invoice, is_default: true, status: "paid", amount_paid: null, amount_requested: 0, currency: "usd", livemode: false, created: created(), payment: { type: "payment_intent", payment_intent: `pi_for_${invoice}` } }],
        },
      };
    }
    default:
      return { status: 404, body: { error: { type: "invalid_request_error", message: `Unrecognized request URL (${request.method}: ${request.path}).` } } };
  }
}

function metadataOf(form: Record<string, string>, name: string): Record<string, string> {
  const prefix = `${name}[`;
  return Object.fromEntries(Object.entries(form).filter(([key]) => key.startsWith(prefix) && key.endsWith("]") && !key.slice(prefix.length).includes("[")).map(([key, value]) => [key.slice(prefix.length, -1), value]));
}

export async function startStripeApiServer(): Promise<StripeApiServer> {
  const requests: RecordedStripeRequest[] = [];
  const server = http.createServer((incoming, response) => {
    const chunks: Buffer[] = [];
    incoming.on("data", (chunk: Buffer) => chunks.push(chunk));
    incoming.on("end", () => {
      const header = (name: string) => {
        const value = incoming.headers[name];
        return Array.isArray(value) ? value[0] : value;
      };
      const recorded: RecordedStripeRequest = {
        method: incoming.method ?? "GET",
        path: (incoming.url ?? "/").split("?")[0]!,
        // A GET carries its parameters in the query string, anything else in the body.
        form: Object.fromEntries(new URLSearchParams(incoming.method === "GET" ? ((incoming.url ?? "").split("?")[1] ?? "") : Buffer.concat(chunks).toString("utf8"))),
        idempotencyKey: header("idempotency-key"),
        authorization: header("authorization"),
      };
      requests.push(recorded);
      const { status, body } = answer(recorded, requests.length);
      const text = JSON.stringify(body);
      response.writeHead(status, { "content-type": "application/json", "request-id": `req_test_${requests.length}` });
      response.end(text);
    });
  });
  await new Promise<void>((resolve) => server.listen(0, "127.0.0.1", resolve));
  const { port } = server.address() as AddressInfo;
  return {
    api: { host: "127.0.0.1", port, protocol: "http" },
    requests,
    requestsTo: (path) => requests.filter((request) => request.path === path),
    close: () => new Promise((resolve) => server.close(() => resolve())),
  };
}

/** A Stripe event body and its `Stripe-Signature` header, signed by Stripe's own library. */
export async function signedStripeEvent(secret: string, event: { id: string; type: string; object: unknown }): Promise<{ body: string; signature: string }> {
  const { default: Stripe } = await import("stripe");
  const body = JSON.stringify({ id: event.id, object: "event", api_version: "2026-10-28.endive", created: created(), livemode: false, pending_webhooks: 1, type: event.type, data: { object: event.object } });
  const signature = new Stripe("sk_test_signing_only").webhooks.generateTestHeaderString({ payload: body, secret });
  return { body, signature };
}
