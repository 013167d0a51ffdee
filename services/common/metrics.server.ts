// Prometheus metrics on their own port, never on the public one: process and RPC figures
// (memory, event-loop delay, error rates per method) tell an attacker when a service is
// struggling, and a scrape must not compete with API traffic for the same connection limits.
import http from "node:http";
import type net from "node:net";
import type { Logger } from "./logging.ts";
import { processMetrics } from "./metrics.ts";

export interface MetricsServerOptions {
  host: string;
  /** 0 picks a free port. */
  port: number;
  log: Logger;
  /** Time a scraper has to send its request headers, in milliseconds. @default 10000 */
  headersTimeoutMs?: number;
}

export interface MetricsServer {
  readonly port: number;
  readonly url: string;
  close(): Promise<void>;
}

/** Serves `GET /metrics` (and nothing else) from the process-wide registry. */
export async function startMetricsServer(options: MetricsServerOptions): Promise<MetricsServer> {
  const metrics = processMetrics();
  const headersTimeoutMs = options.headersTimeoutMs ?? 10_000;
  const server = http.createServer(
    { headersTimeout: headersTimeoutMs, requestTimeout: headersTimeoutMs * 2, keepAliveTimeout: 5_000, maxHeaderSize: 8_192 },
    (request, response) => {
      if (request.method !== "GET" || (request.url ?? "").split("?")[0] !== "/metrics") {
        response.writeHead(404, { "content-type": "text/plain" });
        response.end("metrics only: GET /metrics\n");
        return;
      }
      metrics.metrics().then(
        (text) => {
          response.writeHead(200, { "content-type": metrics.contentType });
          response.end(text);
        },
        (error: unknown) => {
          options.log.error({ err: error }, "metrics could not be collected");
          response.writeHead(500, { "content-type": "text/plain" });
          response.end("metrics could not be collected\n");
        },
      );
    },
  );
  server.on("clientError", (_error, socket) => socket.destroy());
  server.on("connection", (socket: net.Socket) => socket.on("error", () => {}));
  await new Promise<void>((resolve, reject) => {
    server.once("error", reject);
    server.listen(options.port, options.host, () => {
      server.off("error", reject);
      resolve();
    });
  });
  server.on("error", (error) => options.log.error({ err: error }, "metrics server error"));
  const address = server.address() as net.AddressInfo;
  const host = address.family === "IPv6" ? `[${address.address}]` : address.address;
  const url = `http://${host}:${address.port}/metrics`;
  options.log.info({ url }, "metrics listening");
  return {
    port: address.port,
    url,
    close: () =>
      new Promise<void>((resolve) => {
        server.close(() => resolve());
        server.closeAllConnections();
      }),
  };
}
