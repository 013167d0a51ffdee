// The image limits the gateway (pricing, refusing before any hold) and inference (refusing before
// any decode) both enforce: one spec, so both read the same variables and an operator who lowers a
// limit lowers it everywhere (k8s/base/image-limits.env feeds both pods).
import { integer, type Variable } from "../config.loader.ts";

export const imageLimitsConfigSpec = {
  IMAGE_BYTES_MAX: integer("Largest accepted input or background image (bytes).", 25 * 1024 * 1024, {
    min: 1024,
    max: 1024 * 1024 * 1024,
  }),
  IMAGE_PIXELS_MAX: integer(
    "Most pixels (width × height from the header, before any decoding) an input may have; larger ones are rejected as possible decompression bombs (pixels).",
    100_000_000,
    { min: 1, max: 2_000_000_000 },
  ),
  IMAGE_UNSTREAMED_PIXELS_MAX: integer(
    "Most pixels of a BMP or HEIF input, whose decoders hold the whole picture in memory at once instead of streaming it (pixels); checked on the header before decoding. 50 MP keeps 48 MP phone HEIFs.",
    50_000_000,
    { min: 1, max: 2_000_000_000 },
  ),
  IMAGE_LONGEST_SIDE_STANDARD: integer(
    "Longest side of the processed image for standard and full-size output when no plan sets one (pixels); larger inputs are downscaled, not rejected.",
    4096,
    { min: 64, max: 65_535 },
  ),
  IMAGE_LONGEST_SIDE_PRO: integer("Ceiling on any plan's longest side, and the HD side when no plan sets one (pixels); larger inputs are downscaled.", 8192, {
    min: 64,
    max: 65_535,
  }),
} satisfies Record<string, Variable<number>>;

export interface ImageLimits {
  /** IMAGE_BYTES_MAX (bytes). */
  bytesMax: number;
  /** IMAGE_PIXELS_MAX, checked on the header before any pixel is decoded (pixels). */
  pixelsMax: number;
  /** IMAGE_UNSTREAMED_PIXELS_MAX, for BMP and HEIF (pixels). */
  unstreamedPixelsMax: number;
}

/** The longest side per size preset (IMAGE_LONGEST_SIDE_*), before any plan's cap. */
export interface LongestSideLimits {
  standard: number;
  pro: number;
}

type ImageLimitsConfig = { [Name in keyof typeof imageLimitsConfigSpec]: number };

export function imageLimitsOf(config: ImageLimitsConfig): ImageLimits {
  return { bytesMax: config.IMAGE_BYTES_MAX, pixelsMax: config.IMAGE_PIXELS_MAX, unstreamedPixelsMax: config.IMAGE_UNSTREAMED_PIXELS_MAX };
}

export function longestSideLimitsOf(config: ImageLimitsConfig): LongestSideLimits {
  return { standard: config.IMAGE_LONGEST_SIDE_STANDARD, pro: config.IMAGE_LONGEST_SIDE_PRO };
}
