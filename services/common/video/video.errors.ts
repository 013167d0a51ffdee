/** Why a video was refused: always the caller's mistake, final, never retried, never charged. */
export type VideoErrorReason = "unsupported_format" | "video_corrupt" | "video_no_stream" | "video_codec_unsupported" | "video_frame_rate_too_high";

/**
 * A refused video, thrown by the probe the gateway runs before any hold and inference runs again
 * before decoding. `message` is safe to show to the caller; `cause` is for the log only.
 */
export class VideoError extends Error {
  constructor(
    readonly reason: VideoErrorReason,
    message: string,
    options: { cause?: unknown } = {},
  ) {
    super(message, { cause: options.cause });
    this.name = "VideoError";
  }
}
