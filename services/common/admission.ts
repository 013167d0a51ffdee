// Refusing a request before its body is read, in the protocol the caller speaks. An admission
// hook (the gateway's API-key check) decides on the headers alone; this file only writes the
// answer, so that a gRPC client sees a status, a Connect client a JSON error, and a REST client
// the same `{"errors": [...]}` body the REST routes send.
import { Code, ConnectError } from "@connectrpc/connect";
import { encodeEnvelope } from "@connectrpc/connect/protocol";
import { codeToHttpStatus, contentTypeStreamRegExp, endStreamFlag, endStreamToJson, errorToJsonBytes } from "@connectrpc/connect/protocol-connect";
import { contentTypeRegExp as grpcContentType, setTrailerStatus } from "@connectrpc/connect/protocol-grpc";
import { contentTypeRegExp as grpcWebContentType } from "@connectrpc/connect/protocol-grpc-web";
import type http from "node:http";
import http2 from "node:http2";
import { httpStatusOf, reasonOf } from "./errors.ts";
import type { HttpRequest, HttpResponse } from "./server.ts";

/** Paths never subject to admission: probes and tooling must reach them without credentials. */
const EXEMPT_PREFIXES = ["/grpc.health.v1.Health/", "/grpc.reflection.v1.ServerReflection/", "/grpc.reflection.v1alpha.ServerReflection/"];

export function pathOf(request: HttpRequest): string {
  const url = request.url ?? "/";
  const query = url.indexOf("?");
  return query === -1 ? url : url.slice(0, query);
}

export function isAdmissionExempt(path: string): boolean {
  return EXEMPT_PREFIXES.some((prefix) => path.startsWith(prefix));
}

export type Protocol = "grpc" | "grpc-web" | "connect-stream" | "connect-unary" | "http";

/** The protocol of a request, told from its path (an RPC or not) and its content type. */
export function protocolOf(request: HttpRequest, rpcPaths: ReadonlySet<string>): Protocol {
  if (!rpcPaths.has(pathOf(request))) return "http";
  const contentType = (request.headers["content-type"] ?? "").split(";")[0]!.trim();
  if (grpcWebContentType.test(contentType)) return "grpc-web";
  if (grpcContentType.test(contentType)) return "grpc";
  if (contentTypeStreamRegExp.test(contentType)) return "connect-stream";
  return "connect-unary";
}

function headersOf(metadata: Headers): Record<string, string> {
  const headers: Record<string, string> = {};
  metadata.forEach((value, key) => {
    headers[key] = value;
  });
  return headers;
}

function bodyUnfinished(request: HttpRequest): boolean {
  if (request.complete) return false;
  const length = request.headers["content-length"];
  return request.headers["transfer-encoding"] !== undefined || (length !== undefined && length !== "0") || request.httpVersionMajor === 2;
}

/**
 * Answers `request` with `error` and nothing else. The unread body is never read: HTTP/1.1 closes
 * the connection after the answer (else Node would drain the body to reuse it), HTTP/2 resets the
 * stream with NO_ERROR after the answer, which RFC 9113 (8.1) defines as "stop sending, the
 * response is complete".
 */
export function writeRefusal(request: HttpRequest, response: HttpResponse, error: ConnectError, rpcPaths: ReadonlySet<string>): void {
  const protocol = protocolOf(request, rpcPaths);
  const requestContentType = request.headers["content-type"] ?? "";
  let status: number;
  let headers: Record<string, string>;
  let body: Uint8Array | string | undefined;
  switch (protocol) {
    case "grpc":
    case "grpc-web":
      // Trailers-only: HTTP 200 with the status in the headers, as both gRPC and gRPC-Web allow.
      status = 200;
      headers = { ...headersOf(setTrailerStatus(new Headers(), error)), "content-type": requestContentType };
      break;
    case "connect-stream":
      status = 200;
      headers = { ...headersOf(error.metadata), "content-type": requestContentType };
      body = encodeEnvelope(endStreamFlag, new TextEncoder().encode(JSON.stringify(endStreamToJson(error.metadata, error, undefined))));
      break;
    case "connect-unary":
      status = codeToHttpStatus(error.code);
      headers = { ...headersOf(error.metadata), "content-type": "application/json" };
      body = errorToJsonBytes(error, undefined);
      break;
    case "http":
      status = httpStatusOf(error);
      headers = { ...headersOf(error.metadata), "content-type": "application/json" };
      body = JSON.stringify({ errors: [{ title: error.rawMessage, code: reasonOf(error) ?? Code[error.code], detail: error.rawMessage }] });
      break;
  }
  const unfinished = bodyUnfinished(request);
  if (request.httpVersionMajor === 2 && "stream" in response) {
    const stream = (response as unknown as http2.Http2ServerResponse).stream;
    if (stream.destroyed || stream.headersSent) return;
    const outgoing = { ...(response.getHeaders() as Record<string, string>), ...headers, ":status": status };
    if (body === undefined) stream.respond(outgoing, { endStream: true });
    else {
      stream.respond(outgoing);
      stream.end(body);
    }
    if (unfinished) stream.once("finish", () => stream.close(http2.constants.NGHTTP2_NO_ERROR));
    return;
  }
  const http1Response = response as http.ServerResponse;
  if (http1Response.headersSent) return;
  if (unfinished) headers.connection = "close";
  http1Response.writeHead(status, headers);
  http1Response.end(body);
}

/** The error a hook that throws becomes: a server fault, its cause kept for the log only. */
export function admissionFault(cause: unknown): ConnectError {
  return new ConnectError("internal error", Code.Internal, undefined, undefined, cause);
}
