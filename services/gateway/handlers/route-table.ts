// The gateway's REST routes as one enumerable table (method + path template), and the native
// error body every native route answers with: {"errors":[{"title","code","detail"}]}. The
// OpenAPI document is checked against this table (test/public-api.spec.ts), so a route exists
// in the document exactly when it exists here.
//
// Error bodies are per route family: each route names the writer of its family's shape, so the
// drop-in vendor routes can answer in their vendors' shapes while native routes keep ours.
import { Code, ConnectError } from "@connectrpc/connect";
import { httpStatusOf, reasonError, reasonOf } from "../../common/errors.ts";
import type { Logger } from "../../common/logging.ts";
import { markHttpRoute } from "../../common/metrics.ts";
import type { HttpRequest, HttpResponse, HttpRoutes } from "../../common/server.ts";

export type HttpMethod = "GET" | "POST" | "PUT" | "PATCH" | "DELETE";

/** One REST route: `path` is a template whose `{name}` segments match one path segment each. */
export interface RestRoute {
  method: HttpMethod;
  path: string;
  handle(request: HttpRequest, response: HttpResponse, params: Record<string, string>): Promise<void>;
  /** Writes a refusal in the route's family shape. @default writeNativeError */
  writeError?: ErrorWriter;
}

/** The method and path of a route, as the OpenAPI document lists it. */
export interface RouteKey {
  method: HttpMethod;
  path: string;
}

export interface NativeError {
  /** What went wrong, in a sentence a person reads. */
  title: string;
  /** Stable and machine-readable: `not_found`, `monthly_quota_exceeded`, ... */
  code: string;
  /** The specifics: the limit, the value, what to do. */
  detail: string;
}

export type ErrorWriter = (request: HttpRequest, response: HttpResponse, error: unknown, log: Logger) => void;

/** The client closed the connection before its body ended: there is no one to answer. */
export class ClientGone extends Error {}

/** A JSON body of at most `bytesMax` bytes, parsed; a body that is not JSON is the client's mistake, named. */
export async function readJson(request: HttpRequest, bytesMax: number): Promise<unknown> {
  // Refused on the header where it is declared: the refusal then reaches the client whole.
  const declared = Number(request.headers["content-length"] ?? 0);
  if (declared > bytesMax) throw reasonError(Code.InvalidArgument, "too_many_bytes", `the request declares ${declared} bytes; a JSON body is limited to ${bytesMax} bytes`);
  const chunks: Buffer[] = [];
  let total = 0;
  try {
    for await (const chunk of request as AsyncIterable<Buffer>) {
      total += chunk.byteLength;
      if (total > bytesMax) throw reasonError(Code.InvalidArgument, "too_many_bytes", `the JSON body exceeds ${bytesMax} bytes`);
      chunks.push(chunk);
    }
  } catch (error) {
    if (error instanceof ConnectError) throw error;
    throw new ClientGone("the client went away during the body", { cause: error });
  }
  try {
    return JSON.parse(Buffer.concat(chunks).toString("utf8"));
  } catch {
    throw reasonError(Code.InvalidArgument, "invalid_request", "the body is not valid JSON; send a JSON object with Content-Type: application/json");
  }
}

/** Headers a refusal's metadata may carry that REST answers send on. */
const LIMIT_HEADERS = ["retry-after", "x-ratelimit-limit", "x-ratelimit-remaining", "x-ratelimit-reset"] as const;

/** The native body of a ConnectError; anything else is a server fault whose message stays in the log. */
export function nativeErrorOf(error: unknown): { status: number; body: NativeError; headers: Record<string, string> } {
  if (!(error instanceof ConnectError)) {
    return { status: 500, body: { title: "internal error", code: "internal", detail: "the server failed to answer this request; it was logged, retry later" }, headers: {} };
  }
  const status = httpStatusOf(error);
  const headers: Record<string, string> = {};
  // A limit's refusal says when to retry and where the budget stands (X-RateLimit-*).
  for (const name of LIMIT_HEADERS) {
    const value = error.metadata.get(name);
    if (value) headers[name] = value;
  }
  const code = reasonOf(error) ?? (status >= 500 ? "internal" : Code[error.code].replace(/([a-z])([A-Z])/g, "$1_$2").toLowerCase());
  const title = status >= 500 && reasonOf(error) === undefined ? "internal error" : error.rawMessage;
  return { status, body: { title, code, detail: title }, headers };
}

export function writeJson(response: HttpResponse, status: number, body: unknown, headers: Record<string, string> = {}): void {
  const text = JSON.stringify(body);
  response.writeHead(status, { "content-type": "application/json", "content-length": String(Buffer.byteLength(text)), ...headers });
  response.end(text);
}

/** Writes `{"errors":[...]}` with the error's status; server faults are logged with their cause, never sent. */
export const writeNativeError: ErrorWriter = (request, response, error, log) => {
  if (error instanceof ClientGone) {
    log.info({ url: request.url }, error.message);
    return;
  }
  const { status, body, headers } = nativeErrorOf(error);
  if (status >= 500) log.error({ err: error instanceof ConnectError ? (error.cause ?? error) : error, url: request.url }, "REST request failed");
  else log.info({ url: request.url, code: body.code }, body.title);
  if (response.headersSent || response.destroyed) {
    if (!response.writableEnded) response.destroy();
    return;
  }
  if (!request.complete) headers.connection = "close";
  writeJson(response, status, { errors: [body] }, headers);
};

/** A refusal written directly: `nativeError(404, "not_found", ...)`. */
export function writeNativeBody(response: HttpResponse, status: number, error: NativeError, headers: Record<string, string> = {}): void {
  writeJson(response, status, { errors: [error] }, headers);
}

interface CompiledRoute {
  route: RestRoute;
  pattern: RegExp;
  names: string[];
}

function compile(route: RestRoute): CompiledRoute {
  const names: string[] = [];
  const source = route.path
    .split("/")
    .map((segment) => {
      const parameter = /^\{(\w+)\}$/.exec(segment);
      if (!parameter) return segment.replace(/[.*+?^$()|[\]\\]/g, "\\$&");
      names.push(parameter[1]!);
      return "([^/]+)";
    })
    .join("/");
  return { route, pattern: new RegExp(`^${source}$`), names };
}

/**
 * The routes as the server's `httpRoutes`: the matching route answers; a known path with another
 * method answers 405 `method_not_allowed` with `Allow`; an unknown path is left to the server's
 * own 404 (`not_found`, the native shape). A route that throws answers through its family's
 * error writer. Two routes with the same method and path are a programming error.
 */
export function createRouteTable(routes: readonly RestRoute[], log: Logger): HttpRoutes {
  const seen = new Set<string>();
  for (const route of routes) {
    const key = `${route.method} ${route.path}`;
    if (seen.has(key)) throw new Error(`REST route ${key} is registered twice`);
    seen.add(key);
  }
  const compiled = routes.map(compile);
  return async (request, response) => {
    const path = (request.url ?? "/").split("?")[0]!;
    const matching = compiled.filter((candidate) => candidate.pattern.test(path));
    if (matching.length === 0) return false;
    markHttpRoute(request, matching[0]!.route.path);
    const method = request.method === "HEAD" ? "GET" : request.method;
    const found = matching.find((candidate) => candidate.route.method === method);
    if (!found) {
      const allowed = [...new Set(matching.map((candidate) => candidate.route.method))].join(", ");
      const writeError = matching[0]!.route.writeError ?? writeNativeError;
      const refusal = reasonError(Code.Unimplemented, "method_not_allowed", `${request.method} is not allowed on ${path}; use ${allowed}`);
      response.setHeader("allow", allowed);
      writeError(request, response, refusal, log);
      return true;
    }
    markHttpRoute(request, found.route.path);
    const values = found.pattern.exec(path)!.slice(1);
    const params = Object.fromEntries(found.names.map((name, index) => [name, decodeURIComponent(values[index]!)]));
    try {
      await found.route.handle(request, response, params);
    } catch (error) {
      (found.route.writeError ?? writeNativeError)(request, response, error, log);
    }
    return true;
  };
}

/** The method and path of every route, for the OpenAPI document's sync test. */
export function routeKeys(routes: readonly RestRoute[]): RouteKey[] {
  return routes.map(({ method, path }) => ({ method, path }));
}
