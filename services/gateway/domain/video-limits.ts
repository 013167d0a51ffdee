// A plan's video limits, and the size a video is processed (and priced) at.
import type { Plan } from "../../common/gen/cutline/billing/v1/billing_service_pb.ts";

/** What a plan allows of one video. */
export interface VideoLimits {
  /** "standard" or "pro": which defaults apply where the plan sets no limit of its own. */
  planClass: "standard" | "pro";
  /** Longest video accepted (seconds). */
  secondsMax: number;
  /** Largest video upload (bytes). */
  bytesMax: number;
  /** Longest side the frames are processed at (pixels); larger videos are downscaled. 1920: 1080p. */
  longestSidePixels: number;
}

/** Standard-class defaults: 60 s, 200 MiB, 1080p. */
export const STANDARD_VIDEO_LIMITS: VideoLimits = { planClass: "standard", secondsMax: 60, bytesMax: 200 * 1024 * 1024, longestSidePixels: 1920 };
/** Pro-class defaults: 5 minutes, 1 GiB, 1080p. */
export const PRO_VIDEO_LIMITS: VideoLimits = { planClass: "pro", secondsMax: 300, bytesMax: 1024 * 1024 * 1024, longestSidePixels: 1920 };

/** Pro-class plans process images up to this longest side (pixels) and more; standard ones less. */
const PRO_IMAGE_LONGEST_SIDE_PIXELS = 8192;

/**
 * The plan's video fields as the catalogue's Plan carries them (plan_class, video_seconds_max,
 * video_bytes_max, video_longest_side_pixels); optional here, so plans without them fall back
 * to their class's defaults.
 */
type PlanVideoFields = Partial<{ planClass: string; videoSecondsMax: number; videoBytesMax: bigint; videoLongestSidePixels: number }>;

/**
 * The one place the gateway reads a plan's video limits: the plan's own where it sets them (> 0),
 * else its class's defaults. A plan that names no class is pro-class when its images go to
 * 8192 px (the pro plans' longest side), standard-class otherwise; no plan at all is standard.
 */
export function videoLimitsOf(plan: Plan | undefined): VideoLimits {
  const fields = (plan ?? {}) as PlanVideoFields & { longestSidePixels?: number };
  const pro = fields.planClass ? fields.planClass === "pro" : (fields.longestSidePixels ?? 0) >= PRO_IMAGE_LONGEST_SIDE_PIXELS;
  const defaults = pro ? PRO_VIDEO_LIMITS : STANDARD_VIDEO_LIMITS;
  const positive = (value: number | bigint | undefined, fallback: number) => (value !== undefined && value > 0 ? Number(value) : fallback);
  return {
    planClass: defaults.planClass,
    secondsMax: positive(fields.videoSecondsMax, defaults.secondsMax),
    bytesMax: positive(fields.videoBytesMax, defaults.bytesMax),
    longestSidePixels: positive(fields.videoLongestSidePixels, defaults.longestSidePixels),
  };
}
