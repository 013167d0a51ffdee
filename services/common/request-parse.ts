// A request message that does not parse is the caller's mistake, answered INVALID_ARGUMENT in every
// protocol (Connect unary: HTTP 400), as connect-go answers it, and never counted or logged as a
// server fault.
//
// Why this file exists: @connectrpc/connect 2.1.2 (pinned exactly in package.json; upstream main is
// unchanged) throws `ConnectError("parse binary: ...", Code.Internal)` when a protobuf binary
// message does not parse (protocol/serialization.js, createBinarySerialization). Clients and
// servers share that code, and Internal is right for a client reading a bad *response* (the
// conformance suite wants it, connect-es #1063 changed it from InvalidArgument), but a server
// answering a bad *request* with Internal (HTTP 500, grpc-status 13) blames itself for the client's
// bytes. JSON that does not parse already gets InvalidArgument. The library offers no option to
// change the request's serialization, so:
//
// - Streaming RPCs (Connect streaming, and every stream over gRPC and gRPC-Web) hand the
//   interceptors the request as an iterable that the library parses as it is read. The interceptor
//   below wraps that iterable, so a parse failure becomes InvalidArgument before the log and
//   metrics interceptors, or the implementation, ever see it. That is the library's supported seam.
// - Unary RPCs are parsed before any interceptor runs, and the library turns the error into its
//   response itself. There, and only there, the response is rewritten: by a wrapper around the
//   router's handler of each unary method, only when no interceptor ran for the request (so an
//   implementation's own error is never touched, even one quoting "parse binary" from a
//   downstream client), and only when the answer is exactly the library's parse failure.
//
// services/common/server.spec.ts checks the library's behaviour directly: when an upgrade answers
// InvalidArgument itself, that test fails and says to delete this file.
import type { Interceptor } from "@connectrpc/connect";
import { Code, ConnectError, createContextKey, createContextValues } from "@connectrpc/connect";
import { createAsyncIterable, encodeEnvelope, type UniversalHandler, type UniversalServerRequest, type UniversalServerResponse } from "@connectrpc/connect/protocol";
import { codeToHttpStatus, errorFromJsonBytes, errorToJsonBytes } from "@connectrpc/connect/protocol-connect";
import { findTrailerError, contentTypeRegExp as grpcContentType, setTrailerStatus } from "@connectrpc/connect/protocol-grpc";
import { contentTypeRegExp as grpcWebContentType, trailerFlag, trailerParse, trailerSerialize } from "@connectrpc/connect/protocol-grpc-web";
import { reasonError } from "./errors.ts";

/** The message @connectrpc/connect 2.1.2 gives a binary message that does not parse starts with this. */
export const LIBRARY_PARSE_FAILURE_PREFIX = "parse binary: ";

/** The reason (cutline-reason) a request message that does not parse is refused with. */
export const MALFORMED_MESSAGE_REASON = "malformed_message";

/** True for the library's error for a protobuf binary message that does not parse. */
export function isLibraryParseFailure(error: ConnectError): boolean {
  return error.code === Code.Internal && error.rawMessage.startsWith(LIBRARY_PARSE_FAILURE_PREFIX);
}

/** The caller's error for a request message of type `typeName` that did not parse. */
export function malformedMessageError(typeName: string, failure: ConnectError): ConnectError {
  const detail = failure.rawMessage.slice(LIBRARY_PARSE_FAILURE_PREFIX.length);
  return reasonError(Code.InvalidArgument, MALFORMED_MESSAGE_REASON, `the request is not a valid ${typeName} in protobuf binary: ${detail}`, {
    cause: failure,
  });
}

// Set by the interceptor: the request reached the interceptors, so its message (for a unary RPC)
// parsed, and whatever the response says came from the implementation or an interceptor.
const interceptorsReached = createContextKey(false, { description: "cutline.interceptorsReached" });

/**
 * Must be given to the router with answerUnaryParseFailures (startServiceServer does both). For
 * streaming RPCs it turns a request message that does not parse into InvalidArgument; for unary
 * RPCs it records that the message parsed.
 */
export function requestParseInterceptor(): Interceptor {
  return (next) => async (request) => {
    request.contextValues.set(interceptorsReached, true);
    if (!request.stream) return next(request);
    return next({ ...request, message: translateParseFailures(request.message, request.method.input.typeName) });
  };
}

// Errors thrown while reading the request stream come from reading and parsing the client's
// bytes only, never from the implementation.
async function* translateParseFailures<T>(messages: AsyncIterable<T>, typeName: string): AsyncGenerator<T> {
  try {
    yield* messages;
  } catch (error) {
    if (error instanceof ConnectError && isLibraryParseFailure(error)) throw malformedMessageError(typeName, error);
    throw error;
  }
}

/**
 * Wraps the router's handler of a unary method so that the library's answer to a request message
 * that does not parse says InvalidArgument; `onRefused` is told of each such request (the
 * interceptors never see it). Any other handler is returned as it is.
 */
export function answerUnaryParseFailures(handler: UniversalHandler, onRefused: (error: ConnectError) => void): UniversalHandler {
  if (handler.method.methodKind !== "unary") return handler;
  const typeName = handler.method.input.typeName;
  const answer = async (request: UniversalServerRequest): Promise<UniversalServerResponse> => {
    const contextValues = request.contextValues ?? createContextValues();
    const response = await handler({ ...request, contextValues });
    // For a unary RPC the response has been decided by now: the library parses, runs the
    // interceptors and the implementation, before it resolves.
    if (contextValues.get(interceptorsReached)) return response;
    return rewriteParseFailure(response, (failure) => {
      const error = malformedMessageError(typeName, failure);
      onRefused(error);
      return error;
    });
  };
  return Object.assign(answer, {
    service: handler.service,
    method: handler.method,
    requestPath: handler.requestPath,
    protocolNames: handler.protocolNames,
    allowedMethods: handler.allowedMethods,
    supportedContentType: handler.supportedContentType,
  });
}

// Bounds the error body read back; the library's answer is a few hundred bytes.
const ERROR_BODY_BYTES_MAX = 64 * 1024;

/**
 * Reads a response body of up to ERROR_BODY_BYTES_MAX bytes (`bytes` is undefined past it);
 * `replay` hands the adapter the same bytes, and any rest, as if nothing had been read.
 */
async function readBody(body: AsyncIterable<Uint8Array> | undefined): Promise<{ bytes: Uint8Array | undefined; replay: AsyncIterable<Uint8Array> }> {
  const iterator = body?.[Symbol.asyncIterator]();
  const chunks: Uint8Array[] = [];
  let byteCount = 0;
  let complete = true;
  while (iterator) {
    const next = await iterator.next();
    if (next.done) break;
    chunks.push(next.value);
    byteCount += next.value.byteLength;
    if (byteCount > ERROR_BODY_BYTES_MAX) {
      complete = false;
      break;
    }
  }
  async function* replay(): AsyncGenerator<Uint8Array> {
    yield* chunks;
    if (!complete && iterator) yield* { [Symbol.asyncIterator]: () => iterator };
  }
  return { bytes: complete ? Buffer.concat(chunks) : undefined, replay: replay() };
}

// The library's response to a unary call that failed before its interceptors, in the protocol it
// was written in. Only a parse failure is rewritten; anything else is passed on byte for byte.
async function rewriteParseFailure(
  response: UniversalServerResponse,
  translate: (failure: ConnectError) => ConnectError,
): Promise<UniversalServerResponse> {
  const contentType = response.header?.get("content-type") ?? "";
  if (grpcWebContentType.test(contentType)) {
    // gRPC-Web: no message was sent, so the body is one uncompressed trailer envelope.
    const { bytes, replay } = await readBody(response.body);
    const unchanged = { ...response, body: replay };
    if (bytes === undefined || bytes.byteLength < 5 || bytes[0] !== trailerFlag || new DataView(bytes.buffer, bytes.byteOffset).getUint32(1) !== bytes.byteLength - 5) return unchanged;
    const trailer = trailerParse(bytes.subarray(5));
    const failure = findTrailerError(trailer);
    if (!failure || !isLibraryParseFailure(failure)) return unchanged;
    trailer.delete("grpc-status-details-bin");
    const body = encodeEnvelope(trailerFlag, trailerSerialize(setTrailerStatus(trailer, translate(failure))));
    return { ...response, body: createAsyncIterable([body]) };
  }
  if (grpcContentType.test(contentType)) {
    // gRPC: the status is in the trailers, which the adapter writes after the (empty) body.
    const failure = response.trailer && findTrailerError(response.trailer);
    if (failure && isLibraryParseFailure(failure)) setTrailerStatus(response.trailer!, translate(failure));
    return response;
  }
  // Connect unary: a JSON error body with the HTTP status of its code. A compressed body is
  // never the library's parse failure (errors under compressMinBytes, 1 KiB, are sent plain).
  if (response.status !== codeToHttpStatus(Code.Internal) || response.header?.has("content-encoding")) return response;
  const { bytes, replay } = await readBody(response.body);
  const unchanged = { ...response, body: replay };
  if (bytes === undefined) return unchanged;
  let failure: ConnectError;
  try {
    failure = errorFromJsonBytes(bytes, undefined, new ConnectError("not a Connect error", Code.Unknown));
  } catch {
    return unchanged;
  }
  if (!isLibraryParseFailure(failure)) return unchanged;
  const error = translate(failure);
  const header = new Headers(response.header);
  error.metadata.forEach((value, key) => header.set(key, value));
  const body = errorToJsonBytes(error, undefined);
  header.set("content-length", String(body.byteLength));
  return { ...response, status: codeToHttpStatus(error.code), header, body: createAsyncIterable([body]) };
}
