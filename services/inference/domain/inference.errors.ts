import { Code } from "@connectrpc/connect";
import { ImageError, type ImageErrorReason } from "../../common/images/image.errors.ts";
import { VideoError, type VideoErrorReason } from "../../common/video/video.errors.ts";

/** Stable, machine-readable reasons; callers and tests switch on these, never on messages. */
export type InferenceErrorReason =
  | ImageErrorReason
  | VideoErrorReason
  | "invalid_option"
  | "queue_full"
  | "cancelled"
  | "model_unavailable"
  | "internal";

const userErrors = new Set<InferenceErrorReason>([
  "unsupported_format",
  "animated_gif",
  "corrupt_image",
  "too_many_bytes",
  "too_many_pixels",
  "invalid_option",
  "video_corrupt",
  "video_no_stream",
  "video_codec_unsupported",
  "video_frame_rate_too_high",
]);

/**
 * An operating error of the engine. User errors (bad input) are final and never charged; the
 * others are server-side and may be retried. `message` is safe to show to the caller; `cause`
 * is for the log only.
 */
export class InferenceError extends Error {
  readonly userError: boolean;

  constructor(
    readonly reason: InferenceErrorReason,
    message: string,
    options: { cause?: unknown; retryAfterMs?: number } = {},
  ) {
    super(message, { cause: options.cause });
    this.name = "InferenceError";
    this.userError = userErrors.has(reason);
    this.retryAfterMs = options.retryAfterMs;
  }

  /** Only for queue_full: when a retry is likely to find room (milliseconds). */
  readonly retryAfterMs: number | undefined;
}

/** Any thrown value as an InferenceError: a refused image keeps its reason, unknown failures become `internal`. */
export function inferenceErrorOf(error: unknown): InferenceError {
  if (error instanceof InferenceError) return error;
  if (error instanceof ImageError) return new InferenceError(error.reason, error.message, { cause: error.cause });
  if (error instanceof VideoError) return new InferenceError(error.reason, error.message, { cause: error.cause });
  return new InferenceError("internal", "internal error while processing the image", { cause: error });
}

const codes: Record<InferenceErrorReason, Code> = {
  unsupported_format: Code.InvalidArgument,
  animated_gif: Code.InvalidArgument,
  corrupt_image: Code.InvalidArgument,
  too_many_bytes: Code.InvalidArgument,
  too_many_pixels: Code.InvalidArgument,
  invalid_option: Code.InvalidArgument,
  video_corrupt: Code.InvalidArgument,
  video_no_stream: Code.InvalidArgument,
  video_codec_unsupported: Code.InvalidArgument,
  video_frame_rate_too_high: Code.InvalidArgument,
  queue_full: Code.ResourceExhausted,
  cancelled: Code.Canceled,
  model_unavailable: Code.Unavailable,
  internal: Code.Internal,
};

/** The one Connect code for an error; anything that is not an InferenceError is Internal. */
export function connectCodeOf(error: unknown): Code {
  if (error instanceof ImageError || error instanceof VideoError) return Code.InvalidArgument;
  return error instanceof InferenceError ? codes[error.reason] : Code.Internal;
}
