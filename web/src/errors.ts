// What each refusal means to the person using the app. The server's message already names the
// limit and the figures (the balance and the cost, the byte limit, the wait); this adds a title a
// person recognises, the one thing to do next, and for some reasons a link (top up, sign in again).
import { Code, ConnectError } from "@connectrpc/connect";
import { bytes } from "./format.ts";

export interface Problem {
  /** One short line: what happened. */
  title: string;
  /** The server's own words: the limit, the figures, what to do. */
  detail: string;
  /** The stable reason (`insufficient_credits`), or the code's name when the server sent none. */
  reason: string;
  /** Where to go about it: the top-up page, the sign-in page. */
  action?: { href: string; label: string };
  /** Rate limits: seconds to wait before retrying (Retry-After). */
  retryAfterSeconds?: number;
  /** The feature's service is not served here (Unimplemented), or not configured (FailedPrecondition). */
  unavailable?: boolean;
  /** Whether trying the same again can succeed (after a wait, a top-up, a server recovering). */
  retryable: boolean;
}

/** Codes of refusals that the same request will meet again: the input or the caller is the matter. */
const FINAL_CODES = new Set<Code>([Code.InvalidArgument, Code.PermissionDenied, Code.NotFound, Code.AlreadyExists, Code.Unimplemented, Code.Unauthenticated]);
/** Job failures caused by the input itself (the rest are the server's and worth a retry). */
const INPUT_REASONS = new Set(["unsupported_format", "animated_gif", "corrupt_image", "empty_image", "too_many_bytes", "too_many_pixels", "resolution_too_large", "video_too_long", "invalid_option", "invalid_argument", "cancelled"]);

const TOP_UP = { href: "/balance#buy", label: "Buy credits" };
const SIGN_IN = { href: "/sign-in", label: "Sign in again" };

/** Titles by reason; the detail is always the server's message. */
const TITLES: Readonly<Record<string, string>> = {
  insufficient_credits: "Out of credits",
  too_many_bytes: "File too large",
  too_many_pixels: "Image too large",
  resolution_too_large: "Resolution too large",
  video_too_long: "Video too long",
  unsupported_format: "Unsupported file type",
  animated_gif: "Animated GIFs are not supported",
  corrupt_image: "The file could not be read",
  empty_image: "The file is empty",
  missing_image: "No image was sent",
  invalid_option: "An option is not valid",
  invalid_argument: "Something in the request is not valid",
  invalid_request: "The request is not valid",
  too_many_items: "Too many files at once",
  idempotency_key_reused: "This upload was already sent with other content",
  zero_retention_async: "Zero retention is on",
  missing_api_key: "Not signed in",
  invalid_api_key: "The API key is unknown or revoked",
  role_forbidden: "Your role does not allow this",
  key_not_found: "No such key",
  member_not_found: "No such team member",
  key_limit_reached: "Too many keys",
  job_not_found: "No such job",
  result_expired: "The result was deleted",
  monthly_quota_exceeded: "Monthly call quota reached",
  rate_limited: "Too many requests",
  concurrency_limited: "Too many uploads at once",
  read_rate_limited: "Too many requests",
  watch_streams_limited: "Too many progress streams open",
  queue_full: "The server is busy",
  cancelled: "Cancelled",
  sync_timeout: "The server took too long",
  job_timeout: "The job took too long",
  model_unavailable: "The model is not available right now",
  storage_unavailable: "Storage is not available right now",
  job_stuck: "The job got stuck",
  internal: "The server failed",
};

/** Titles by code, for reasons the table above does not know. */
const TITLES_BY_CODE: Partial<Record<Code, string>> = {
  [Code.InvalidArgument]: "The request is not valid",
  [Code.Unauthenticated]: "Not signed in",
  [Code.PermissionDenied]: "Not allowed",
  [Code.NotFound]: "Not found",
  [Code.AlreadyExists]: "Already exists",
  [Code.FailedPrecondition]: "Not possible right now",
  [Code.ResourceExhausted]: "A limit was reached",
  [Code.Unimplemented]: "Not available on this server",
  [Code.Unavailable]: "The server is not reachable",
  [Code.DeadlineExceeded]: "The server took too long",
  [Code.Canceled]: "Cancelled",
  [Code.Internal]: "The server failed",
};

/**
 * The server's message as a person reads it: without a leading "reason: " (billing prefixes its
 * messages so logs stay greppable), millicredits shown as credits (the unit people buy) and byte
 * counts in KB or MB; the limit's name (UPLOAD_BYTES_MAX) stays, for the operator.
 */
export function readable(message: string, reason: string): string {
  const credits = (amount: string) => (Number(amount) / 1000).toLocaleString(undefined, { maximumFractionDigits: 3 });
  const text = message
    .replace(new RegExp(`^${reason}:\\s*`), "")
    .replace(/(\d+) millicredits available, (\d+) needed/, (_, available: string, needed: string) => `${needed} millicredits needed, ${available} millicredits available`)
    .replace(/(\d+) millicredits/g, (_, amount: string) => `${credits(amount)} credits`)
    .replace(/(\d{4,}) bytes/g, (_, count: string) => bytes(Number(count)));
  return text.charAt(0).toUpperCase() + text.slice(1);
}

function retryAfterOf(error: ConnectError): number | undefined {
  const value = Number(error.metadata.get("retry-after") ?? "");
  return Number.isFinite(value) && value > 0 ? Math.ceil(value) : undefined;
}

/** A problem a person can act on, from anything an RPC threw. */
export function problemOf(thrown: unknown): Problem {
  const error = ConnectError.from(thrown);
  const reason = error.metadata.get("cutline-reason") ?? Code[error.code].replace(/([a-z])([A-Z])/g, "$1_$2").toLowerCase();
  const title = TITLES[reason] ?? TITLES_BY_CODE[error.code] ?? "Something went wrong";
  const detail = error.code === Code.Unavailable && !error.metadata.get("cutline-reason") ? "The server could not be reached; check your connection and retry." : readable(error.rawMessage, reason);
  const problem: Problem = { title, detail, reason, retryable: !FINAL_CODES.has(error.code) };
  if (reason === "insufficient_credits") problem.action = TOP_UP;
  if (error.code === Code.Unauthenticated) problem.action = SIGN_IN;
  if (error.code === Code.ResourceExhausted) problem.retryAfterSeconds = retryAfterOf(error);
  if (error.code === Code.Unimplemented) problem.unavailable = true;
  return problem;
}

/** A job's own failure (error_reason, error_message on the Job) as a problem. */
export function jobProblem(reason: string, message: string): Problem {
  const problem: Problem = { title: TITLES[reason] ?? "The job failed", detail: readable(message || reason, reason), reason, retryable: !INPUT_REASONS.has(reason) };
  if (reason === "insufficient_credits") problem.action = TOP_UP;
  return problem;
}

/** Unimplemented, or FailedPrecondition from a service that exists but is not configured here. */
export function isUnavailable(thrown: unknown): boolean {
  const error = ConnectError.from(thrown);
  if (error.code === Code.Unimplemented) return true;
  return error.code === Code.FailedPrecondition && !["insufficient_credits", "key_limit_reached", "job_finished", "zero_retention_async"].includes(error.metadata.get("cutline-reason") ?? "");
}
