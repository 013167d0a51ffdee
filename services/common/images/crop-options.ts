// The crop and output-size options both the gateway (before any hold) and inference (before any model time)
// check, from one definition, so that whatever the gateway lets through inference accepts.

/** Narrowest and widest aspect ratio accepted (width / height): 1:100 to 100:1. */
export const ASPECT_RATIO_MIN = 0.01;
export const ASPECT_RATIO_MAX = 100;
/** Largest crop margin, in percent of the subject box's size on each side. */
export const CROP_MARGIN_PERCENT_MAX = 1000;

export type AspectRatioParse = { ok: true; ratio: number | undefined } | { ok: false; message: string };

/** `"16:9"`, `"4x5"` or `"3/2"` as width / height; `""` is no ratio; anything else names the problem. */
export function aspectRatioOf(text: string): AspectRatioParse {
  if (text.trim() === "") return { ok: true, ratio: undefined };
  const match = /^\s*(\d{1,6}(?:\.\d{1,6})?)\s*[:x/]\s*(\d{1,6}(?:\.\d{1,6})?)\s*$/.exec(text);
  const ratio = match === null ? Number.NaN : Number(match[1]) / Number(match[2]);
  if (!Number.isFinite(ratio) || ratio < ASPECT_RATIO_MIN || ratio > ASPECT_RATIO_MAX) {
    return { ok: false, message: `aspect_ratio "${text}" is not a ratio like "16:9" or "1:1" between 1:100 and 100:1` };
  }
  return { ok: true, ratio };
}

/** Undefined when `percent` is a whole number from 0 to CROP_MARGIN_PERCENT_MAX; else the problem. */
export function cropMarginProblem(percent: number): string | undefined {
  if (Number.isInteger(percent) && percent >= 0 && percent <= CROP_MARGIN_PERCENT_MAX) return undefined;
  return `crop_margin_percent ${percent} is not a whole number of percent from 0 to ${CROP_MARGIN_PERCENT_MAX}`;
}

/** Smallest and largest `output_pixels_max` when set (0 is no cap): 32×32 to 100 megapixels. */
export const OUTPUT_PIXELS_MAX_MIN = 1_024;
export const OUTPUT_PIXELS_MAX_LIMIT = 100_000_000;

/** Undefined when `pixels` is 0 (no cap) or a whole number from OUTPUT_PIXELS_MAX_MIN to OUTPUT_PIXELS_MAX_LIMIT; else the problem. */
export function outputPixelsMaxProblem(pixels: number): string | undefined {
  if (pixels === 0 || (Number.isInteger(pixels) && pixels >= OUTPUT_PIXELS_MAX_MIN && pixels <= OUTPUT_PIXELS_MAX_LIMIT)) return undefined;
  return `output_pixels_max ${pixels} is not 0 (no cap) or a whole number of pixels from ${OUTPUT_PIXELS_MAX_MIN} to ${OUTPUT_PIXELS_MAX_LIMIT} (100 MP)`;
}
