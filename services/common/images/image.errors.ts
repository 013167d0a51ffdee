/** Why an image was refused: always the caller's mistake, final, never retried, never charged. */
export type ImageErrorReason = "unsupported_format" | "animated_gif" | "corrupt_image" | "too_many_bytes" | "too_many_pixels";

/**
 * A refused image. Thrown by the checks both the gateway (before any hold) and inference (before
 * any decode) run; `message` is safe to show to the caller and names the limit, `cause` is for
 * the log only.
 */
export class ImageError extends Error {
  constructor(
    readonly reason: ImageErrorReason,
    message: string,
    options: { cause?: unknown } = {},
  ) {
    super(message, { cause: options.cause });
    this.name = "ImageError";
  }
}
