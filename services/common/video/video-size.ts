// The frame size a video is processed at: the one function the gateway prices by and inference
// decodes and encodes at, so the price is always for the size processed.

/** The largest output: 1080p, longest side (pixels). Larger inputs are downscaled to it. */
export const VIDEO_LONGEST_SIDE_MAX = 1920;

const evenFloor = (side: number) => Math.max(2, Math.floor(side / 2) * 2);

/**
 * The displayed size (after rotation) with each side rounded down to even (the encoders' 4:2:0
 * chroma needs it), then scaled down, aspect kept, so the longest side is at most `longestSideMax`
 * (capped at VIDEO_LONGEST_SIDE_MAX; 0: that cap alone), and rounded down to even again; never up.
 * Rounding first makes a 1281×720 clip 1280×720 (the 720p tier), not a scaled 1280×718, and makes
 * the function idempotent: the size it gives, asked again with its own longest side as the cap,
 * is unchanged, which is how inference gets the gateway's size back from the task's longest side.
 */
export function processedVideoSize(size: { width: number; height: number }, longestSideMax: number): { width: number; height: number } {
  const cap = longestSideMax > 0 ? Math.min(longestSideMax, VIDEO_LONGEST_SIDE_MAX) : VIDEO_LONGEST_SIDE_MAX;
  const width = evenFloor(size.width);
  const height = evenFloor(size.height);
  const scale = Math.min(1, cap / Math.max(width, height));
  // The epsilon keeps 1366 × (1280 / 1366), 1279.9999…, from flooring to 1278.
  const scaled = (side: number) => evenFloor(side * scale + 1e-6);
  return scale === 1 ? { width, height } : { width: scaled(width), height: scaled(height) };
}
