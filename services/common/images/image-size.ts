/**
 * The size an image is processed at: unchanged when its longest side fits, else scaled down
 * to `longestSideMax` keeping its aspect ratio. The gateway prices the same size inference runs.
 */
export function processedSize(width: number, height: number, longestSideMax: number): { width: number; height: number } {
  const longest = Math.max(width, height);
  if (longest <= longestSideMax) return { width, height };
  const scale = longestSideMax / longest;
  return { width: Math.max(1, Math.round(width * scale)), height: Math.max(1, Math.round(height * scale)) };
}

/**
 * The longest side for a request. The plan sets it (4096 px standard-class, 8192 px pro-class),
 * whether or not HD is asked for; IMAGE_LONGEST_SIDE_PRO is the ceiling no plan passes. Without a
 * plan (0), the operator's limit for the size preset.
 */
export function longestSideFor(hd: boolean, limits: { standard: number; pro: number }, planSide: number): number {
  if (planSide > 0) return Math.min(planSide, limits.pro);
  return hd ? limits.pro : limits.standard;
}
