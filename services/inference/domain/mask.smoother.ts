// Masks of consecutive video frames, smoothed over time so edges do not flicker. The model sees
// each frame alone, and on a still background its mask still wavers by a few levels from frame
// to frame; an exponential average removes that. Where the picture moves, averaging would drag a
// ghost of the old mask behind the subject, so there the model's new mask is taken as it is.

export interface TemporalSmoothingOptions {
  /** Weight of the previous smoothed mask where the picture is still, 0–1 (0: smoothing off). Default 0.6. */
  retention: number;
  /** Mean absolute luma change of a block (0–255) past which the block is moving. Default 10. */
  motionLumaThreshold: number;
  /** Side of the square blocks motion is measured on (mask pixels). Default 16. */
  blockSize: number;
  /** Share of moving blocks past which the frame is a cut and the history is dropped, 0–1. Default 0.5. */
  sceneCutFraction: number;
}

export const defaultTemporalSmoothing: TemporalSmoothingOptions = { retention: 0.6, motionLumaThreshold: 10, blockSize: 16, sceneCutFraction: 0.5 };

/** Rec. 601 luma of interleaved RGB. */
export function lumaOf(rgb: Uint8Array): Uint8Array {
  const luma = new Uint8Array(rgb.length / 3);
  for (let pixel = 0, offset = 0; pixel < luma.length; pixel++, offset += 3) {
    luma[pixel] = (rgb[offset]! * 77 + rgb[offset + 1]! * 150 + rgb[offset + 2]! * 29) >> 8;
  }
  return luma;
}

/**
 * Which blocks moved between two luma planes (`size`² each), widened by one block on every side
 * so the subject's edge, which moves in the blocks around it, counts as moving too.
 */
export function movingBlocks(previous: Uint8Array, current: Uint8Array, size: number, options: TemporalSmoothingOptions): { moving: Uint8Array; blocksPerSide: number; movingFraction: number } {
  const blocksPerSide = Math.ceil(size / options.blockSize);
  const change = new Float64Array(blocksPerSide * blocksPerSide);
  const count = new Uint32Array(blocksPerSide * blocksPerSide);
  for (let y = 0; y < size; y++) {
    const row = Math.floor(y / options.blockSize) * blocksPerSide;
    for (let x = 0; x < size; x++) {
      const block = row + Math.floor(x / options.blockSize);
      change[block]! += Math.abs(current[y * size + x]! - previous[y * size + x]!);
      count[block]!++;
    }
  }
  const moved = new Uint8Array(blocksPerSide * blocksPerSide);
  let movedCount = 0;
  for (let block = 0; block < moved.length; block++) {
    if (change[block]! / count[block]! > options.motionLumaThreshold) {
      moved[block] = 1;
      movedCount++;
    }
  }
  const moving = new Uint8Array(moved.length);
  for (let by = 0; by < blocksPerSide; by++) {
    for (let bx = 0; bx < blocksPerSide; bx++) {
      if (!moved[by * blocksPerSide + bx]) continue;
      for (let dy = -1; dy <= 1; dy++) {
        for (let dx = -1; dx <= 1; dx++) {
          const ny = by + dy;
          const nx = bx + dx;
          if (ny >= 0 && nx >= 0 && ny < blocksPerSide && nx < blocksPerSide) moving[ny * blocksPerSide + nx] = 1;
        }
      }
    }
  }
  return { moving, blocksPerSide, movingFraction: movedCount / moved.length };
}

/** One video's masks in display order: each call gets the next frame's mask and luma (`size`² each). */
export class TemporalMaskSmoother {
  private previousMask: Float32Array | undefined;
  private previousLuma: Uint8Array | undefined;

  constructor(
    private readonly size: number,
    private readonly options: TemporalSmoothingOptions = defaultTemporalSmoothing,
  ) {}

  /** The smoothed mask, written over `mask` and returned; `mask` must not be used by the caller afterwards. */
  smooth(mask: Float32Array, luma: Uint8Array): Float32Array {
    const { previousMask, previousLuma } = this;
    this.previousLuma = luma;
    if (previousMask === undefined || previousLuma === undefined || this.options.retention <= 0) {
      this.previousMask = mask.slice();
      return mask;
    }
    const { moving, blocksPerSide, movingFraction } = movingBlocks(previousLuma, luma, this.size, this.options);
    if (movingFraction <= this.options.sceneCutFraction) {
      const keep = this.options.retention;
      const { size } = this;
      const { blockSize } = this.options;
      for (let y = 0; y < size; y++) {
        const row = Math.floor(y / blockSize) * blocksPerSide;
        for (let x = 0; x < size; x++) {
          if (moving[row + Math.floor(x / blockSize)]) continue;
          const pixel = y * size + x;
          mask[pixel] = keep * previousMask[pixel]! + (1 - keep) * mask[pixel]!;
        }
      }
    }
    this.previousMask = mask.slice();
    return mask;
  }
}
