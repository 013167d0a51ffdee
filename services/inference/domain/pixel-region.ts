/** A rectangle of pixels: left and top of its first pixel, and its size. */
export interface Region {
  left: number;
  top: number;
  width: number;
  height: number;
}

/** The box of pixels where `inside` holds, grown by `margin` and kept in the image; undefined when none. */
export function regionWhere(width: number, height: number, margin: number, inside: (pixel: number) => boolean): Region | undefined {
  let left = width;
  let right = -1;
  let top = height;
  let bottom = -1;
  for (let y = 0; y < height; y++) {
    const row = y * width;
    for (let x = 0; x < width; x++) {
      if (!inside(row + x)) continue;
      if (x < left) left = x;
      if (x > right) right = x;
      if (y < top) top = y;
      bottom = y;
    }
  }
  if (right < 0) return undefined;
  left = Math.max(0, left - margin);
  top = Math.max(0, top - margin);
  right = Math.min(width - 1, right + margin);
  bottom = Math.min(height - 1, bottom + margin);
  return { left, top, width: right - left + 1, height: bottom - top + 1 };
}
