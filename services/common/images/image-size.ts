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

/** The longest side for a request: the operator's limit for the size preset, lowered by the plan's cap (0: none). */
export function longestSideFor(hd: boolean, limits: { standard: number; pro: number }, planCap: number): number {
  return Math.min(planCap || Number.POSITIVE_INFINITY, hd ? limits.pro : limits.standard);
}
