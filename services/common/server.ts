import type { ConnectRouter, Interceptor } from "@connectrpc/connect";
import { Code, ConnectError, cors as connectCors } from "@connectrpc/connect";
import { connectNodeAdapter } from "@connectrpc/connect-node";
import http from "node:http";
import http2 from "node:http2";
import net from "node:net";
import type { Duplex } from "node:stream";
import { admissionFault, isAdmissionExempt, pathOf, writeRefusal } from "./admission.ts";
import { createHealthHandlers, Health, type HealthRegistry } from "./health.ts";
import type { Logger } from "./logging.ts";
import { countRpc, httpRouteOf, metricsInterceptor } from "./metrics.ts";
import { startMetricsServer, type MetricsServer } from "./metrics.server.ts";
import { registerReflection } from "./reflection.ts";
import { serverTracingInterceptor, traceHttpExchange } from "./tracing.ts";
import { answerUnaryParseFailures, MALFORMED_MESSAGE_REASON, requestParseInterceptor } from "./request-parse.ts";

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
  /**
   * Runs before any body byte is read; a ConnectError refuses the request with that error. The
   * refusal is written in the caller's protocol (gRPC, gRPC-Web, Connect, or REST JSON) and the
   * body is never read. Health and reflection are never subject to it, and CORS preflights are
   * answered before it. A hook that throws refuses the request as an internal error.
   * @default none (every request is admitted)
   */
  admit?: (request: HttpRequest, response: HttpResponse) => Promise<ConnectError | undefined>;
  /**
   * Time a client has to send a request's headers, in milliseconds: from connecting (a connection
   * that never sends a byte is closed after it) or, on a kept-alive HTTP/1.1 connection, from the
   * request's first byte. Past it HTTP/1.1 answers 408 and closes. @default 20000
   */
  headersTimeoutMs?: number;
  /**
   * Time a client has to send a whole request, headers and body, in milliseconds; past it
   * HTTP/1.1 answers 408 and closes and HTTP/2 resets the stream. It ends when the request's last
   * byte arrives, not when the response does, so a long server stream (WatchJob) is never cut by
   * it; what it must allow is the largest upload on a slow link. @default 600000
   */
  requestTimeoutMs?: number;
  /** Time an idle HTTP/1.1 keep-alive connection is kept open after a response, in milliseconds. @default 65000 */
  keepAliveTimeoutMs?: number;
  /**
   * Time an HTTP/2 connection with no open stream and no traffic is kept, in milliseconds; then it
   * is closed with GOAWAY (clients reconnect transparently). A connection with an open stream, such
   * as a quiet WatchJob, is never closed by it. @default 120000
   */
  http2IdleTimeoutMs?: number;
  /** Largest request header block, in bytes; past it HTTP/1.1 answers 431 and HTTP/2 resets the stream. @default 16384 */
  headerBytesMax?: number;
  /** Port of the separate Prometheus `GET /metrics` server on `host`; 0 picks a free one. @default none (no metrics server) */
  metricsPort?: number;
}

/** The defaults of the limits above, for config specs and tests. */
export const SERVER_LIMIT_DEFAULTS = {
  headersTimeoutMs: 20_000,
  // 25 MiB (UPLOAD_BYTES_MAX's default) over a 0.5 Mbit/s uplink takes about 7 minutes.
  requestTimeoutMs: 600_000,
  // Longer than the 60 s idle timeout of common proxies and load balancers (nginx, AWS ALB): if
  // the server closed first, a proxy could send a request on a connection being closed and answer 502.
  keepAliveTimeoutMs: 65_000,
  http2IdleTimeoutMs: 120_000,
  headerBytesMax: 16_384,
} as const;

/** The common variables (commonConfigSpec) that set the server's limits and metrics port. */
export interface ServerConfig {
  METRICS_PORT: number | undefined;
  HTTP_HEADERS_TIMEOUT_MS: number;
  HTTP_REQUEST_TIMEOUT_MS: number;
  HTTP_KEEP_ALIVE_TIMEOUT_MS: number;
  HTTP2_IDLE_TIMEOUT_MS: number;
  HTTP_HEADER_BYTES_MAX: number;
}

/** The ServiceServerOptions that the common config sets, for the mains to spread in. */
export function serverOptionsOf(config: ServerConfig) {
  return {
    metricsPort: config.METRICS_PORT,
    headersTimeoutMs: config.HTTP_HEADERS_TIMEOUT_MS,
    requestTimeoutMs: config.HTTP_REQUEST_TIMEOUT_MS,
    keepAliveTimeoutMs: config.HTTP_KEEP_ALIVE_TIMEOUT_MS,
    http2IdleTimeoutMs: config.HTTP2_IDLE_TIMEOUT_MS,
    headerBytesMax: config.HTTP_HEADER_BYTES_MAX,
  } satisfies Partial<ServiceServerOptions>;
}

/** Largest request message when `readBytesMax` is not given: 32 MiB. */
const READ_BYTES_MAX_DEFAULT = 32 * 1024 * 1024;
/** Time in-flight requests get after SIGTERM when `shutdownTimeoutMs` is not given. */
const SHUTDOWN_TIMEOUT_MS_DEFAULT = 10_000;
/** How long a browser may reuse a preflight answer (2 h, Chromium's ceiling). */
const CORS_PREFLIGHT_MAX_AGE_SECONDS = 7_200;
// Node checks the HTTP/1.1 headers and request timeouts on a period (30 s by default), so a short
// limit would be enforced up to 30 s late: check a few times per headers timeout, within bounds.
const CONNECTIONS_CHECKS_PER_HEADERS_TIMEOUT = 4;
const CONNECTIONS_CHECKING_INTERVAL_MS_MIN = 50;
const CONNECTIONS_CHECKING_INTERVAL_MS_MAX = 1_000;
/** During shutdown, how often HTTP/1.1 keep-alive connections that went idle are closed. */
const IDLE_CONNECTIONS_SWEEP_INTERVAL_MS = 100;

/** Headers our API adds to Connect's own CORS lists: the API key, idempotency and billing results. */
const CORS_ALLOWED_HEADERS = [...connectCors.allowedHeaders, "X-Api-Key", "Authorization", "Idempotency-Key"];
const CORS_EXPOSED_HEADERS = [
  ...connectCors.exposedHeaders,
  "Cutline-Reason",
  "Cutline-Job-Id",
  "X-Job-Id",
  "X-Credits-Charged",
  "X-Credits-Remaining",
  "Retry-After",
  "X-RateLimit-Limit",
  "X-RateLimit-Remaining",
  "X-RateLimit-Reset",
  // remove.bg's result headers, so its browser clients read them too.
  "X-Width",
  "X-Height",
  "X-Type",
  "X-Foreground-Top",
  "X-Foreground-Left",
  "X-Foreground-Width",
  "X-Foreground-Height",
];

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
    "access-control-max-age": String(CORS_PREFLIGHT_MAX_AGE_SECONDS),
  });
  response.end();
  return true;
}

export interface ServiceServer {
  readonly port: number;
  readonly url: string;
  /** `http://host:port/metrics` of the metrics server; undefined when none was asked for. */
  readonly metricsUrl: string | undefined;
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

type ServerLimits = Required<Pick<ServiceServerOptions, keyof typeof SERVER_LIMIT_DEFAULTS>>;

function serverLimitsOf(options: ServiceServerOptions): ServerLimits {
  const limits: ServerLimits = {
    headersTimeoutMs: options.headersTimeoutMs ?? SERVER_LIMIT_DEFAULTS.headersTimeoutMs,
    requestTimeoutMs: options.requestTimeoutMs ?? SERVER_LIMIT_DEFAULTS.requestTimeoutMs,
    keepAliveTimeoutMs: options.keepAliveTimeoutMs ?? SERVER_LIMIT_DEFAULTS.keepAliveTimeoutMs,
    http2IdleTimeoutMs: options.http2IdleTimeoutMs ?? SERVER_LIMIT_DEFAULTS.http2IdleTimeoutMs,
    headerBytesMax: options.headerBytesMax ?? SERVER_LIMIT_DEFAULTS.headerBytesMax,
  };
  for (const [name, value] of Object.entries(limits)) {
    if (!Number.isSafeInteger(value) || value < 1) throw new Error(`startServiceServer: ${name} must be a positive integer, got ${value}`);
  }
  // Node refuses a headers timeout longer than the request timeout; say which options clash.
  if (limits.headersTimeoutMs > limits.requestTimeoutMs) {
    throw new Error(`startServiceServer: headersTimeoutMs (${limits.headersTimeoutMs}) must not exceed requestTimeoutMs (${limits.requestTimeoutMs})`);
  }
  return limits;
}

function clientGone(request: HttpRequest, error: unknown): boolean {
  const code = (error as NodeJS.ErrnoException | undefined)?.code;
  return code === "ECONNRESET" || code === "ERR_STREAM_PREMATURE_CLOSE" || (request.destroyed && !request.complete);
}

const STATUS_BY_PARSER_ERROR: Record<string, number> = { HPE_HEADER_OVERFLOW: 431, ERR_HTTP_REQUEST_TIMEOUT: 408, HPE_CHUNK_EXTENSIONS_OVERFLOW: 413 };

// Malformed HTTP/1.1, oversized headers and timeouts: answer 4xx where the connection can still
// carry it, then close. With a 'clientError' listener Node leaves the socket to us, so every
// branch ends it.
function answerClientError(log: Logger, error: NodeJS.ErrnoException, socket: Duplex): void {
  log.debug({ err: error }, "bad HTTP/1.1 request from a client");
  const response = (socket as Duplex & { _httpMessage?: http.ServerResponse })._httpMessage;
  if (error.code === "ECONNRESET" || !socket.writable || response?.headersSent) {
    socket.destroy();
    return;
  }
  const status = STATUS_BY_PARSER_ERROR[error.code ?? ""] ?? 400;
  socket.end(`HTTP/1.1 ${status} ${http.STATUS_CODES[status]}\r\nconnection: close\r\ncontent-length: 0\r\n\r\n`, () => socket.destroy());
}

/**
 * One port serves Connect, gRPC and gRPC-Web: HTTP/2 in cleartext (h2c, as gRPC clients and
 * Kubernetes' gRPC probes speak it) and HTTP/1.1 (browsers, curl) are told apart by the
 * connection preface, because Node's HTTP/2 server cannot fall back to HTTP/1 without TLS.
 *
 * No client can crash the process: every socket, session and parser error is the client's
 * problem, logged at debug and answered 4xx or by closing, and every phase of a connection
 * (first byte, headers, body, idle) has a time limit.
 */
export async function startServiceServer(options: ServiceServerOptions): Promise<ServiceServer> {
  const { log, health } = options;
  const limits = serverLimitsOf(options);
  const rpcPaths = new Set<string>();
  const listeners = createRequestListeners({
    handler: createRpcHandler(options, rpcPaths),
    rpcPaths,
    allowedOrigins: options.corsAllowedOrigins ?? [],
    admit: options.admit,
    service: options.name,
    log,
  });
  const connections: Connections = { sockets: new Set(), sessions: new Set() };
  const http1Server = createHttp1Server({ limits, listeners, log });
  const http2Server = createHttp2Server({ limits, listeners, sessions: connections.sessions, log });
  const listener = createPrefaceRouter({ headersTimeoutMs: limits.headersTimeoutMs, sockets: connections.sockets, http1Server, http2Server, log });
  const address = await listen(listener, { port: options.port, host: options.host, log });
  const host = address.family === "IPv6" ? `[${address.address}]` : address.address;
  const url = `http://${host}:${address.port}`;
  const metricsServer = await startMetricsBeside(listener, { host: options.host, port: options.metricsPort, log });
  log.info({ url, metrics: metricsServer?.url }, `${options.name} listening (Connect, gRPC, gRPC-Web; HTTP/1.1 and h2c)`);

  return {
    port: address.port,
    url,
    metricsUrl: metricsServer?.url,
    close: () =>
      shutDown({
        listener,
        http1Server,
        connections,
        metricsServer,
        health,
        shutdownTimeoutMs: options.shutdownTimeoutMs ?? SHUTDOWN_TIMEOUT_MS_DEFAULT,
        log,
      }),
  };
}

type RpcHandler = ReturnType<typeof connectNodeAdapter>;

// Connect's handler: the service's RPCs plus health and reflection; other paths go to the plain
// HTTP routes. Fills `rpcPaths` as the routes are registered.
function createRpcHandler(options: ServiceServerOptions, rpcPaths: Set<string>): RpcHandler {
  return connectNodeAdapter({
    readMaxBytes: options.readBytesMax ?? READ_BYTES_MAX_DEFAULT,
    // requestParseInterceptor comes first: the interceptors after it, the log and the metrics
    // included, see a streamed request message that does not parse as the caller's error.
    interceptors: [requestParseInterceptor(), serverTracingInterceptor(), errorLogInterceptor(options.log), metricsInterceptor(), ...(options.interceptors ?? [])],
    routes: (router) => registerRoutes(router, options, rpcPaths),
    fallback: httpRoutesFallback(options.httpRoutes, options.log),
  });
}

function registerRoutes(router: ConnectRouter, { routes, health, log }: ServiceServerOptions, rpcPaths: Set<string>): void {
  routes(router);
  for (const registered of router.handlers) health.register(registered.service.typeName);
  router.service(Health, createHealthHandlers(health));
  registerReflection(router);
  // A unary request message is parsed before any interceptor runs; see request-parse.ts.
  router.handlers.forEach((registered, index) => {
    router.handlers[index] = answerUnaryParseFailures(registered, (error) => {
      const labels = { service: registered.service.typeName, method: registered.method.name };
      log.info({ rpc: `${labels.service}/${labels.method}`, code: Code[error.code], reason: MALFORMED_MESSAGE_REASON }, error.rawMessage);
      countRpc(labels, error.code);
    });
  });
  for (const registered of router.handlers) rpcPaths.add(registered.requestPath);
}

// Plain-HTTP paths no route claims, and routes that throw, answer in the native REST shape
// ({"errors":[{"title","code","detail"}]}); a route family with another shape (a vendor's) claims
// its own paths and answers its own refusals.
function writeHttpError(response: HttpResponse, status: number, error: { title: string; code: string; detail: string }): void {
  const body = JSON.stringify({ errors: [error] });
  if (!response.headersSent) response.writeHead(status, { "content-type": "application/json", "content-length": String(Buffer.byteLength(body)) });
  response.end(body);
}

function httpRoutesFallback(httpRoutes: HttpRoutes | undefined, log: Logger): NodeHandler {
  return async (request, response) => {
    try {
      if (httpRoutes && (await httpRoutes(request, response))) return;
      const path = (request.url ?? "/").split("?")[0];
      writeHttpError(response, 404, { title: "not found", code: "not_found", detail: `no route for ${request.method} ${path}; the routes are listed at /openapi.json` });
    } catch (error) {
      // A client that hangs up mid-upload makes the route's body read throw: its doing, not a fault.
      if (clientGone(request, error)) {
        log.debug({ err: error, url: request.url }, "client left during an http route");
        if (!response.destroyed) response.destroy();
        return;
      }
      log.error({ err: error, url: request.url }, "http route failed");
      writeHttpError(response, 500, { title: "internal error", code: "internal", detail: "the server failed to answer this request; it was logged, retry later" });
    }
  };
}

/** What both HTTP servers call with each request. */
interface RequestListeners {
  onRequest(request: HttpRequest, response: HttpResponse): void;
  /** A request whose client waits for "100 Continue" before sending its body. */
  onCheckContinue(request: HttpRequest, response: HttpResponse): void;
}

interface DispatchOptions {
  handler: RpcHandler;
  rpcPaths: ReadonlySet<string>;
  allowedOrigins: string[];
  admit: ServiceServerOptions["admit"];
  /** The service's name on its spans. */
  service: string;
  log: Logger;
}

function createRequestListeners(options: DispatchOptions): RequestListeners {
  // A rejection here would be unhandled, and Node exits on one: log it and drop the request instead.
  const dispatch = (request: HttpRequest, response: HttpResponse, expectsContinue: boolean) =>
    void traceHttpExchange(options.service, request, response, { rpcPaths: options.rpcPaths, routeOf: httpRouteOf }, () => serve(options, request, response, expectsContinue)).catch((error: unknown) => {
      options.log.error({ err: error, url: request.url }, "request could not be dispatched");
      response.destroy();
    });
  return {
    onRequest: (request, response) => dispatch(request, response, false),
    onCheckContinue: (request, response) => dispatch(request, response, true),
  };
}

// CORS, then admission, then the RPC or HTTP route. "100 Continue" (curl waits for it before an
// upload's body) is sent only once the request is admitted, so a refused upload never leaves the client.
async function serve(options: DispatchOptions, request: HttpRequest, response: HttpResponse, expectsContinue: boolean): Promise<void> {
  const { allowedOrigins, admit } = options;
  if (allowedOrigins.length > 0 && applyCors(allowedOrigins, request, response)) return;
  if (admit && !isAdmissionExempt(pathOf(request))) {
    const refusal = await admissionRefusal(admit, request, response, options.log);
    if (refusal) {
      writeRefusal(request, response, refusal, options.rpcPaths);
      return;
    }
  }
  if (expectsContinue) response.writeContinue();
  options.handler(request, response);
}

type Admit = NonNullable<ServiceServerOptions["admit"]>;

async function admissionRefusal(admit: Admit, request: HttpRequest, response: HttpResponse, log: Logger): Promise<ConnectError | undefined> {
  try {
    return await admit(request, response);
  } catch (error) {
    const refusal = admissionFault(error);
    log.error({ err: error, url: request.url }, "admission hook failed");
    return refusal;
  }
}

/** Open connections, for the shutdown to close. */
interface Connections {
  readonly sockets: Set<net.Socket>;
  readonly sessions: Set<http2.Http2Session>;
}

interface ProtocolServerOptions {
  limits: ServerLimits;
  listeners: RequestListeners;
  log: Logger;
}

function createHttp1Server({ limits, listeners, log }: ProtocolServerOptions): http.Server {
  const server = http.createServer(
    {
      headersTimeout: limits.headersTimeoutMs,
      requestTimeout: limits.requestTimeoutMs,
      keepAliveTimeout: limits.keepAliveTimeoutMs,
      maxHeaderSize: limits.headerBytesMax,
      connectionsCheckingInterval: Math.max(
        CONNECTIONS_CHECKING_INTERVAL_MS_MIN,
        Math.min(CONNECTIONS_CHECKING_INTERVAL_MS_MAX, Math.floor(limits.headersTimeoutMs / CONNECTIONS_CHECKS_PER_HEADERS_TIMEOUT)),
      ),
    },
    listeners.onRequest,
  );
  // The HTTP/1.1 server never listens itself (the preface router hands it sockets), but Node starts
  // its connection tracking, which enforces the timeouts and lets closeIdleConnections() find idle
  // connections, on 'listening'. Without this, neither worked.
  server.emit("listening");
  server.on("checkContinue", listeners.onCheckContinue);
  server.on("clientError", (error: NodeJS.ErrnoException, socket: Duplex) => answerClientError(log, error, socket));
  return server;
}

function createHttp2Server({ limits, listeners, sessions, log }: ProtocolServerOptions & { sessions: Set<http2.Http2Session> }): http2.Http2Server {
  const server = http2.createServer({ settings: { maxHeaderListSize: limits.headerBytesMax } }, listeners.onRequest);
  server.on("checkContinue", listeners.onCheckContinue);
  const openStreams: OpenStreams = new Map();
  server.on("session", (session) => watchSession(session, { sessions, openStreams, idleTimeoutMs: limits.http2IdleTimeoutMs, log }));
  server.on("sessionError", () => {}); // already logged by the session's own listener
  server.on("stream", (stream) => watchStream(stream, { openStreams, requestTimeoutMs: limits.requestTimeoutMs, log }));
  return server;
}

/** Streams open on each session, so that the idle timeout spares a session with a quiet WatchJob. */
type OpenStreams = Map<http2.Http2Session, number>;

// A session idle for `idleTimeoutMs` is closed unless a stream is open on it.
function watchSession(
  session: http2.Http2Session,
  { sessions, openStreams, idleTimeoutMs, log }: { sessions: Set<http2.Http2Session>; openStreams: OpenStreams; idleTimeoutMs: number; log: Logger },
): void {
  sessions.add(session);
  openStreams.set(session, 0);
  session.once("close", () => {
    sessions.delete(session);
    openStreams.delete(session);
  });
  // Garbage after the preface, bad frames, resets: the peer's fault, and the session is destroyed.
  session.on("error", (error) => log.debug({ err: error }, "HTTP/2 session error from a client"));
  session.setTimeout(idleTimeoutMs, () => {
    if ((openStreams.get(session) ?? 0) === 0) session.close();
  });
}

function watchStream(
  stream: http2.ServerHttp2Stream,
  { openStreams, requestTimeoutMs, log }: { openStreams: OpenStreams; requestTimeoutMs: number; log: Logger },
): void {
  const session = stream.session;
  if (session) openStreams.set(session, (openStreams.get(session) ?? 0) + 1);
  // HTTP/2's counterpart of requestTimeout: the request's body must be complete in time. A
  // request without a body (END_STREAM on its headers) is complete at once.
  const requestTimer = stream.endAfterHeaders ? undefined : setTimeout(() => stream.close(http2.constants.NGHTTP2_CANCEL), requestTimeoutMs).unref();
  stream.once("end", () => clearTimeout(requestTimer));
  stream.once("close", () => {
    clearTimeout(requestTimer);
    if (session && openStreams.has(session)) openStreams.set(session, openStreams.get(session)! - 1);
  });
  stream.on("error", (error) => log.debug({ err: error }, "HTTP/2 stream error"));
}

const H2_PREFACE_START = Buffer.from("PRI", "latin1");

interface PrefaceRouterOptions {
  /** Time a connection has to send its first bytes. */
  headersTimeoutMs: number;
  sockets: Set<net.Socket>;
  http1Server: http.Server;
  http2Server: http2.Http2Server;
  log: Logger;
}

function createPrefaceRouter(options: PrefaceRouterOptions): net.Server {
  const { sockets, log } = options;
  return net.createServer((socket) => {
    sockets.add(socket);
    socket.once("close", () => sockets.delete(socket));
    // A reset (ECONNRESET, EPIPE) at any point is the peer leaving; unhandled, it would be thrown.
    socket.on("error", (error) => log.debug({ err: error }, "connection error"));
    routeByPreface(socket, options);
  });
}

// Hands the socket to the HTTP/2 server when its first bytes start the h2c preface, else to the
// HTTP/1.1 server. Until the first byte decides the protocol, neither server's timeouts apply.
function routeByPreface(socket: net.Socket, { headersTimeoutMs, http1Server, http2Server }: PrefaceRouterOptions): void {
  const silent = () => socket.destroy();
  socket.setTimeout(headersTimeoutMs, silent);
  socket.once("readable", function route() {
    const head: Buffer | null = socket.read();
    if (head === null) {
      if (!socket.destroyed) socket.once("readable", route);
      return;
    }
    socket.unshift(head);
    // "P" or "PR" alone could still become the h2c preface: wait for the third byte.
    if (head.length < H2_PREFACE_START.length && H2_PREFACE_START.subarray(0, head.length).equals(head)) {
      socket.once("readable", route);
      return;
    }
    socket.setTimeout(0);
    socket.off("timeout", silent);
    const target = head.subarray(0, 3).equals(H2_PREFACE_START) ? http2Server : http1Server;
    target.emit("connection", socket);
  });
}

async function listen(server: net.Server, { port, host, log }: { port: number; host: string; log: Logger }): Promise<net.AddressInfo> {
  await new Promise<void>((resolve, reject) => {
    server.once("error", reject);
    server.listen(port, host, () => {
      server.off("error", reject);
      resolve();
    });
  });
  // Accept failures (EMFILE when out of file descriptors) must not end the process either.
  server.on("error", (error) => log.error({ err: error }, "listening socket error"));
  return server.address() as net.AddressInfo;
}

// The metrics server, when a port is given; if it cannot start, the service's listener is closed
// again so that the failed start leaves nothing open.
async function startMetricsBeside(
  listener: net.Server,
  { host, port, log }: { host: string; port: number | undefined; log: Logger },
): Promise<MetricsServer | undefined> {
  if (port === undefined) return undefined;
  try {
    return await startMetricsServer({ host, port, log });
  } catch (error) {
    listener.close();
    throw error;
  }
}

interface ShutdownOptions {
  listener: net.Server;
  http1Server: http.Server;
  connections: Connections;
  metricsServer: MetricsServer | undefined;
  health: HealthRegistry;
  shutdownTimeoutMs: number;
  log: Logger;
}

// Stops intake at once, lets in-flight requests finish, and cuts what is still open after the timeout.
async function shutDown({ listener, http1Server, connections, metricsServer, health, shutdownTimeoutMs, log }: ShutdownOptions): Promise<void> {
  health.setAllNotServing();
  const closed = new Promise<void>((resolve) => listener.close(() => resolve()));
  for (const session of connections.sessions) session.close(); // GOAWAY: in-flight streams finish
  http1Server.closeIdleConnections();
  const timer = setTimeout(() => {
    log.warn({ open: connections.sockets.size }, `shutdown timeout of ${shutdownTimeoutMs} ms reached: closing open connections`);
    for (const socket of connections.sockets) socket.destroy();
  }, shutdownTimeoutMs);
  timer.unref();
  // HTTP/1.1 keep-alive connections become idle as their last response ends.
  const idleSweep = setInterval(() => http1Server.closeIdleConnections(), IDLE_CONNECTIONS_SWEEP_INTERVAL_MS);
  await closed;
  clearInterval(idleSweep);
  clearTimeout(timer);
  http1Server.close(); // stops its connection-checking timer
  // Last, so that a scrape during the drain still sees it.
  await metricsServer?.close();
}
