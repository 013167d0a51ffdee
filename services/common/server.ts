import type { ConnectRouter, Interceptor } from "@connectrpc/connect";
import { Code, ConnectError, cors as connectCors } from "@connectrpc/connect";
import { connectNodeAdapter } from "@connectrpc/connect-node";
import http from "node:http";
import http2 from "node:http2";
import net from "node:net";
import { createHealthHandlers, Health, type HealthRegistry } from "./health.ts";
import type { Logger } from "./logging.ts";
import { metricsInterceptor, processMetrics } from "./metrics.ts";
import { registerReflection } from "./reflection.ts";

type NodeHandler = NonNullable<Parameters<typeof connectNodeAdapter>[0]["fallback"]>;
export type HttpRequest = Parameters<NodeHandler>[0];
export type HttpResponse = Parameters<NodeHandler>[1];

/** Plain HTTP routes beside the RPCs (the gateway's REST API); returns false when not its path. */
export type HttpRoutes = (request: HttpRequest, response: HttpResponse) => Promise<boolean>;

export interface ServiceServerOptions {
  name: string;
  host: string;
  /** 0 picks a free port. */
  port: number;
  log: Logger;
  health: HealthRegistry;
  /** Registers the service implementations (and nothing else) on the router. */
  routes: (router: ConnectRouter) => void;
  httpRoutes?: HttpRoutes;
  /** Largest request message accepted, in bytes. @default 33554432 (32 MiB) */
  readBytesMax?: number;
  /** After SIGTERM, time given to in-flight requests before connections are cut. @default 10000 */
  shutdownTimeoutMs?: number;
  interceptors?: Interceptor[];
  /** Browser origins allowed to call (Connect-Web, REST); "*" allows any. @default none (no CORS headers) */
  corsAllowedOrigins?: string[];
}

/** Headers our API adds to Connect's own CORS lists: the API key, idempotency and billing results. */
const CORS_ALLOWED_HEADERS = [...connectCors.allowedHeaders, "X-Api-Key", "Authorization", "Idempotency-Key"];
const CORS_EXPOSED_HEADERS = [...connectCors.exposedHeaders, "Cutline-Reason", "Cutline-Job-Id", "X-Job-Id", "X-Credits-Charged", "X-Credits-Remaining", "Retry-After"];

// Answers preflights and marks responses for allowed origins; returns true when the request is done.
function applyCors(allowedOrigins: string[], request: HttpRequest, response: HttpResponse): boolean {
  const origin = request.headers.origin;
  if (!origin || (!allowedOrigins.includes("*") && !allowedOrigins.includes(origin))) return false;
  response.setHeader("access-control-allow-origin", allowedOrigins.includes("*") ? "*" : origin);
  response.setHeader("vary", "origin");
  if (request.method !== "OPTIONS") {
    response.setHeader("access-control-expose-headers", CORS_EXPOSED_HEADERS.join(", "));
    return false;
  }
  response.writeHead(204, {
    "access-control-allow-methods": [...connectCors.allowedMethods, "OPTIONS"].join(", "),
    "access-control-allow-headers": CORS_ALLOWED_HEADERS.join(", "),
    "access-control-max-age": "7200",
  });
  response.end();
  return true;
}

export interface ServiceServer {
  readonly port: number;
  readonly url: string;
  /** Stops intake at once, lets in-flight requests finish within the shutdown timeout. */
  close(): Promise<void>;
}

const SERVER_FAULTS = new Set([Code.Internal, Code.Unknown, Code.DataLoss, Code.Unavailable, Code.DeadlineExceeded]);

// Server faults are logged with their cause (Connect never sends `cause` to the caller); the
// caller's own mistakes (bad input, no key, no credits) are one short line, not a stack trace.
function errorLogInterceptor(log: Logger): Interceptor {
  return (next) => async (request) => {
    try {
      return await next(request);
    } catch (error) {
      const connectError = ConnectError.from(error);
      const fields = { rpc: `${request.service.typeName}/${request.method.name}`, code: Code[connectError.code] };
      if (SERVER_FAULTS.has(connectError.code)) log.error({ ...fields, err: connectError.cause ?? error }, connectError.rawMessage);
      else log.info({ ...fields, reason: connectError.metadata.get("cutline-reason") ?? undefined }, connectError.rawMessage);
      throw error;
    }
  };
}

/**
 * One port serves Connect, gRPC and gRPC-Web: HTTP/2 in cleartext (h2c, as gRPC clients and
 * Kubernetes' gRPC probes speak it) and HTTP/1.1 (browsers, curl) are told apart by the
 * connection preface, because Node's HTTP/2 server cannot fall back to HTTP/1 without TLS.
 */
export async function startServiceServer(options: ServiceServerOptions): Promise<ServiceServer> {
  const { log, health } = options;
  const metrics = processMetrics();
  const handler = connectNodeAdapter({
    readMaxBytes: options.readBytesMax ?? 32 * 1024 * 1024,
    interceptors: [errorLogInterceptor(log), metricsInterceptor(), ...(options.interceptors ?? [])],
    routes(router) {
      options.routes(router);
      for (const registered of router.handlers) health.register(registered.service.typeName);
      router.service(Health, createHealthHandlers(health));
      registerReflection(router);
    },
    async fallback(request, response) {
      try {
        if (request.method === "GET" && request.url === "/metrics") {
          response.writeHead(200, { "content-type": metrics.contentType });
          response.end(await metrics.metrics());
          return;
        }
        if (options.httpRoutes && (await options.httpRoutes(request, response))) return;
        response.writeHead(404, { "content-type": "application/json" });
        response.end(JSON.stringify({ error: { code: "not_found", message: `no route for ${request.method} ${request.url}` } }));
      } catch (error) {
        log.error({ err: error, url: request.url }, "http route failed");
        if (!response.headersSent) response.writeHead(500, { "content-type": "application/json" });
        response.end(JSON.stringify({ error: { code: "internal", message: "internal error" } }));
      }
    },
  });

  const allowedOrigins = options.corsAllowedOrigins ?? [];
  const withCors = (request: HttpRequest, response: HttpResponse) => {
    if (allowedOrigins.length > 0 && applyCors(allowedOrigins, request, response)) return;
    handler(request, response);
  };
  const http1Server = http.createServer(withCors);
  const http2Server = http2.createServer(withCors);
  const sockets = new Set<net.Socket>();
  const sessions = new Set<http2.Http2Session>();
  http2Server.on("session", (session) => {
    sessions.add(session);
    session.once("close", () => sessions.delete(session));
  });

  const server = net.createServer((socket) => {
    sockets.add(socket);
    socket.once("close", () => sockets.delete(socket));
    socket.once("readable", function route() {
      const head: Buffer | null = socket.read();
      if (head === null) {
        socket.once("readable", route);
        return;
      }
      socket.unshift(head);
      const target = head.subarray(0, 3).toString("latin1") === "PRI" ? http2Server : http1Server;
      target.emit("connection", socket);
    });
  });

  await new Promise<void>((resolve, reject) => {
    server.once("error", reject);
    server.listen(options.port, options.host, () => resolve());
  });
  const address = server.address() as net.AddressInfo;
  const host = address.family === "IPv6" ? `[${address.address}]` : address.address;
  const url = `http://${host}:${address.port}`;
  log.info({ url }, `${options.name} listening (Connect, gRPC, gRPC-Web; HTTP/1.1 and h2c)`);

  return {
    port: address.port,
    url,
    async close() {
      health.setAllNotServing();
      const closed = new Promise<void>((resolve) => server.close(() => resolve()));
      for (const session of sessions) session.close(); // GOAWAY: in-flight streams finish
      http1Server.closeIdleConnections();
      const timeoutMs = options.shutdownTimeoutMs ?? 10_000;
      const timer = setTimeout(() => {
        log.warn({ open: sockets.size }, `shutdown timeout of ${timeoutMs} ms reached: closing open connections`);
        for (const socket of sockets) socket.destroy();
      }, timeoutMs);
      timer.unref();
      // HTTP/1.1 keep-alive connections become idle as their last response ends.
      const idleSweep = setInterval(() => http1Server.closeIdleConnections(), 100);
      await closed;
      clearInterval(idleSweep);
      clearTimeout(timer);
    },
  };
}
