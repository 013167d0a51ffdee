// Service-to-service authentication for the mesh. Billing, orchestrator and inference are not
// public, but in a cluster any pod can open a connection to them; without a check, a compromised
// or merely misconfigured pod could call billing's Grant or ChangePlan, read or cancel any job, or
// run inference for free. Every internal call therefore carries a shared secret,
// CUTLINE_SERVICE_TOKEN, which the callee's interceptor compares in constant time. Single-node mode
// wires the services in memory and needs none. NetworkPolicies (k8s/base/network-policies.yaml)
// are the second wall: a pod that may not connect never gets to present a token.
import type { ConnectError, Interceptor } from "@connectrpc/connect";
import { Code } from "@connectrpc/connect";
import { createHash, timingSafeEqual } from "node:crypto";
import { ConfigError, type Variable } from "./config.loader.ts";
import { reasonError } from "./errors.ts";
import * as reflectionV1 from "./gen/grpc/reflection/v1/reflection_pb.ts";
import * as reflectionV1alpha from "./gen/grpc/reflection/v1alpha/reflection_pb.ts";
import { Health } from "./health.ts";
import type { HttpRequest } from "./server.ts";

/** Request header that carries the token on internal calls (gRPC metadata key). */
export const SERVICE_TOKEN_HEADER = "cutline-service-token";

/** Shortest token accepted, in characters: 32 hex characters are 128 bits, beyond guessing. */
export const SERVICE_TOKEN_LENGTH_MIN = 32;

/** The environment variable, named in config errors and the README. */
export const SERVICE_TOKEN_VARIABLE = "CUTLINE_SERVICE_TOKEN";

/**
 * Services anyone may call without the token: Kubernetes' native gRPC probes (and load
 * balancers' health checks) cannot send custom metadata, and reflection only describes the
 * public protos.
 */
export const UNAUTHENTICATED_SERVICES: ReadonlySet<string> = new Set([
  Health.typeName,
  reflectionV1.ServerReflection.typeName,
  reflectionV1alpha.ServerReflection.typeName,
]);

/** Stable reasons (metadata `cutline-reason`) of a refused internal call. */
export type ServiceTokenReason = "service_token_missing" | "service_token_invalid";

/** The config variable: unset is allowed by the parser (single-node mode), a short token is not. */
export function serviceTokenVariable(description: string): Variable<string | undefined> {
  return {
    description,
    defaultValue: undefined,
    secret: true,
    parse(raw) {
      if (raw.length < SERVICE_TOKEN_LENGTH_MIN) {
        throw new Error(`expected at least ${SERVICE_TOKEN_LENGTH_MIN} characters (e.g. \`openssl rand -hex 32\`), got ${raw.length}`);
      }
      return raw;
    },
  };
}

/**
 * The token a process started on its own (mesh mode) must have; its absence is a configuration
 * error naming the variable, reported like every other bad variable, so a mesh never starts open.
 */
export function requireServiceToken(token: string | undefined): string {
  if (token === undefined || token === "") {
    throw new ConfigError([
      `${SERVICE_TOKEN_VARIABLE} is not set: every service of a mesh needs the same shared secret of at least ${SERVICE_TOKEN_LENGTH_MIN} characters (e.g. \`openssl rand -hex 32\`); single-node mode (npm start) needs none`,
    ]);
  }
  return token;
}

// Hashing first gives both sides one fixed length, so timingSafeEqual neither throws on a length
// mismatch nor leaks the token's length through an early return.
function digest(value: string): Buffer {
  return createHash("sha256").update(value, "utf8").digest();
}

/** The refusal for a presented header value, or undefined when it is the token. */
function refusalOf(presented: string | null | undefined, expected: Buffer): ConnectError | undefined {
  if (presented === null || presented === undefined || presented === "") {
    return reasonError(Code.Unauthenticated, "service_token_missing", `internal service: the ${SERVICE_TOKEN_HEADER} header is missing`);
  }
  if (!timingSafeEqual(digest(presented), expected)) {
    return reasonError(Code.Unauthenticated, "service_token_invalid", `internal service: the ${SERVICE_TOKEN_HEADER} header does not match ${SERVICE_TOKEN_VARIABLE}`);
  }
  return undefined;
}

/**
 * Server side, first wall: the server's admission hook (`admit`), which decides on the headers
 * before any body byte is read, so a caller without the token cannot make an internal service
 * read a 32 MiB request. Health and reflection are exempt there (services/common/admission.ts).
 */
export function serviceTokenAdmission(token: string): (request: HttpRequest) => Promise<ConnectError | undefined> {
  const expected = digest(requireServiceToken(token));
  return async (request) => {
    const presented = request.headers[SERVICE_TOKEN_HEADER];
    return refusalOf(Array.isArray(presented) ? presented[0] : presented, expected);
  };
}

/**
 * Server side: refuses every call to a service not in `UNAUTHENTICATED_SERVICES` whose
 * `cutline-service-token` header is missing (`service_token_missing`) or differs from `token`
 * (`service_token_invalid`), with UNAUTHENTICATED, before the handler runs. It holds on every
 * route the router serves, whatever the transport in front of it; the admission hook only spares
 * the body read.
 */
export function serviceAuthInterceptor(token: string): Interceptor {
  const expected = digest(requireServiceToken(token));
  return (next) => async (request) => {
    if (UNAUTHENTICATED_SERVICES.has(request.service.typeName)) return await next(request);
    const refusal = refusalOf(request.header.get(SERVICE_TOKEN_HEADER), expected);
    if (refusal !== undefined) throw refusal;
    return await next(request);
  };
}

/** Client side: sends the token on every call made through the transport. */
export function serviceTokenInterceptor(token: string): Interceptor {
  return (next) => async (request) => {
    request.header.set(SERVICE_TOKEN_HEADER, token);
    return await next(request);
  };
}
