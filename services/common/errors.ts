import { Code, ConnectError } from "@connectrpc/connect";

/** Metadata key carrying the stable machine-readable reason of an error (`insufficient_credits`). */
export const REASON_HEADER = "cutline-reason";

/** A ConnectError with one gRPC code and a stable reason; `cause` stays in the server's log. */
export function reasonError(
  code: Code,
  reason: string,
  message: string,
  options: { cause?: unknown; metadata?: Record<string, string> } = {},
): ConnectError {
  const metadata = new Headers(options.metadata);
  metadata.set(REASON_HEADER, reason);
  return new ConnectError(message, code, metadata, undefined, options.cause);
}

export function reasonOf(error: ConnectError): string | undefined {
  return error.metadata.get(REASON_HEADER) ?? undefined;
}

/** HTTP status for a gRPC code, as the Connect protocol maps them, plus 402 for payment and 422 for a reused idempotency key. */
export function httpStatusOf(error: ConnectError): number {
  if (reasonOf(error) === "insufficient_credits") return 402;
  // The request is well-formed but its key already stands for another request (the IETF Idempotency-Key draft's 422).
  if (reasonOf(error) === "idempotency_key_reused") return 422;
  const statuses: Partial<Record<Code, number>> = {
    [Code.InvalidArgument]: 400,
    [Code.Unauthenticated]: 401,
    [Code.PermissionDenied]: 403,
    [Code.NotFound]: 404,
    [Code.AlreadyExists]: 409,
    [Code.FailedPrecondition]: 400,
    [Code.ResourceExhausted]: 429,
    [Code.Canceled]: 499,
    [Code.DeadlineExceeded]: 504,
    [Code.Unavailable]: 503,
    [Code.Unimplemented]: 501,
  };
  return statuses[error.code] ?? 500;
}
