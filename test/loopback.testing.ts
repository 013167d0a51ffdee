// Real HTTP servers on 127.0.0.1 for what the services fetch or post to: images for image_url and
// bg_image_url, and a webhook receiver. The services reach them only with
// CUTLINE_OUTBOUND_ALLOW_LOOPBACK=true (or allowLoopback on a fetcher).
import { createHmac } from "node:crypto";
import { createServer, type Server, type ServerResponse } from "node:http";
import type { AddressInfo } from "node:net";
import { after, before } from "node:test";
import sharp from "sharp";

/** Writes one answer to a path the image server knows. */
export type LoopbackRoute = (response: ServerResponse) => void;

/** 200 with `body` as `type`, its Content-Length declared. */
export const sendBytes =
  (type: string, body: Uint8Array): LoopbackRoute =>
  (response) =>
    void response.writeHead(200, { "content-type": type, "content-length": String(body.byteLength) }).end(body);

/** 302 to `location` (e.g. a private address the fetcher must refuse). */
export const redirectTo =
  (location: string): LoopbackRoute =>
  (response) =>
    void response.writeHead(302, { location }).end();

/** A 64x64 opaque green PNG, the background the URL specs fetch and upload. */
export async function greenBackgroundPng(): Promise<Uint8Array<ArrayBuffer>> {
  return new Uint8Array(await sharp({ create: { width: 64, height: 64, channels: 3, background: "#20a040" } }).png().toBuffer());
}

async function listenOnLoopback(server: Server): Promise<string> {
  await new Promise<void>((resolve) => server.listen(0, "127.0.0.1", resolve));
  return `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
}

async function closeServer(server: Server | undefined): Promise<void> {
  server?.closeAllConnections();
  await new Promise((resolve) => (server ? server.close(resolve) : resolve(undefined)));
}

/**
 * An image server for the enclosing describe: started in its before hook with the routes `routes()`
 * builds then (so they may await images), closed in its after hook. Any other path answers 404.
 * `origin` is set once started; `requests` lists every path asked for, in order.
 */
export function loopbackImageServer(routes: () => Promise<Record<string, LoopbackRoute>>): { origin: string; readonly requests: string[] } {
  const images = { origin: "", requests: [] as string[] };
  let server: Server | undefined;
  before(async () => {
    const table = await routes();
    server = createServer((request, response) => {
      const path = new URL(request.url ?? "/", "http://x").pathname;
      images.requests.push(path);
      const route = table[path];
      if (route) return route(response);
      response.writeHead(404, { "content-type": "text/plain" }).end("no such image");
    });
    images.origin = await listenOnLoopback(server);
  });
  after(() => closeServer(server));
  return images;
}

/** One POST the webhook receiver took, and the status it answered. */
export interface WebhookDelivery {
  body: string;
  signature: string;
  eventId: string;
  status: number;
}

export interface WebhookReceiver {
  /** Where to send webhooks: `<origin>/hook`. */
  url: string;
  deliveries: WebhookDelivery[];
  close(): Promise<void>;
}

/**
 * A webhook receiver on 127.0.0.1 that records every delivery (raw body, Cutline-Signature,
 * Cutline-Event-Id). `statusFor` picks each answer from the event id and the deliveries before
 * it (default: 200), e.g. to fail a first attempt and see the retry.
 */
export async function startWebhookReceiver(statusFor: (eventId: string, earlier: readonly WebhookDelivery[]) => number = () => 200): Promise<WebhookReceiver> {
  const deliveries: WebhookDelivery[] = [];
  const server = createServer((request, response) => {
    const chunks: Buffer[] = [];
    request.on("data", (chunk: Buffer) => chunks.push(chunk));
    request.on("end", () => {
      const eventId = String(request.headers["cutline-event-id"]);
      const status = statusFor(eventId, deliveries);
      deliveries.push({ body: Buffer.concat(chunks).toString("utf8"), signature: String(request.headers["cutline-signature"]), eventId, status });
      response.writeHead(status).end();
    });
  });
  const url = `${await listenOnLoopback(server)}/hook`;
  return { url, deliveries, close: () => closeServer(server) };
}

/** The v1 HMAC-SHA256 a Cutline-Signature carries for timestamp `t` and the raw body. */
export function webhookSignatureV1(secret: string, t: string, body: string): string {
  return createHmac("sha256", Buffer.from(secret, "utf8")).update(`${t}.${body}`, "utf8").digest("hex");
}
