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

/** Reasons whose HTTP status is more precise than their gRPC code's: one status per reason. */
const HTTP_STATUS_BY_REASON: Readonly<Record<string, number>> = {
  insufficient_credits: 402,
  method_not_allowed: 405,
  // The request is well-formed but its key already stands for another request (the IETF Idempotency-Key draft's 422).
  idempotency_key_reused: 422,
  too_many_bytes: 413,
  // An image_url past the image byte limit is as large as an upload past it.
  image_url_too_large: 413,
  // A well-formed image_url whose target could not be fetched (DNS, refused, timeout, non-2xx).
  image_url_unreachable: 422,
  // A readable video the service cannot work on: no video stream in it, or a codec ffmpeg cannot decode.
  video_no_stream: 422,
  video_codec_unsupported: 422,
  // A readable video past VIDEO_FRAME_RATE_MAX: refused like a codec the service cannot work on.
  video_frame_rate_too_high: 422,
};

/** HTTP status for a gRPC code, as the Connect protocol maps them, plus the reasons above (402, 405, 413, 422). */
export function httpStatusOf(error: ConnectError): number {
  const byReason = HTTP_STATUS_BY_REASON[reasonOf(error) ?? ""];
  if (byReason !== undefined) return byReason;
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
