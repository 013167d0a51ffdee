// Masks of consecutive video frames, smoothed over time so edges do not flicker. The model sees
// each frame alone, and its mask wavers from frame to frame where nothing changed; an exponential
// average removes that. Where the subject moves, averaging would drag a ghost of the old mask
// behind it, so the average is gated per pixel: a small change of the mask (wavering) is averaged,
// a large one (the subject's edge passing) is taken as the model gives it, and in blocks where the
// picture itself moved the gate opens at half the change. A cut (the mask changed on average by
// more than cutMaskChangeMin) drops the history. Gating on the picture alone was tried first: on
// a panning camera (DAVIS blackswan) every block moves, and it smoothed nothing (flicker 0.00667
// with and without, over 30 frames).

export interface TemporalSmoothingOptions {
  /** Weight of the previous smoothed mask where the mask barely changed, 0–1 (0: smoothing off). Default 0.6. */
  retention: number;
  /** Change of a mask pixel (0–1) up to which it counts as wavering and is fully averaged. Default 0.15. */
  waverChangeMax: number;
  /** Change of a mask pixel (0–1) from which it counts as motion and is taken as it is (linear between). Default 0.5. */
  motionChangeMin: number;
  /** Mean change of the whole mask (0–1) past which the frame is a cut. Default 0.2. */
  cutMaskChangeMin: number;
  /** Mean absolute luma change of a block (0–255) past which the block is moving. Default 10. */
  motionLumaThreshold: number;
  /** Side of the square blocks motion is measured on (mask pixels). Default 16. */
  blockSize: number;
}

export const defaultTemporalSmoothing: TemporalSmoothingOptions = {
  retention: 0.6,
  waverChangeMax: 0.15,
  motionChangeMin: 0.5,
  cutMaskChangeMin: 0.2,
  motionLumaThreshold: 10,
  blockSize: 16,
};

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
    const { moving, blocksPerSide } = movingBlocks(previousLuma, luma, this.size, this.options);
    let maskChange = 0;
    for (let pixel = 0; pixel < mask.length; pixel++) maskChange += Math.abs(mask[pixel]! - previousMask[pixel]!);
    if (maskChange / mask.length <= this.options.cutMaskChangeMin) this.blend(mask, previousMask, moving, blocksPerSide);
    this.previousMask = mask.slice();
    return mask;
  }
  /** Writes into `mask` the gated average of it and `previous`. */
  private blend(mask: Float32Array, previous: Float32Array, moving: Uint8Array, blocksPerSide: number): void {
    const { retention, waverChangeMax, motionChangeMin, blockSize } = this.options;
    const { size } = this;
    for (let y = 0; y < size; y++) {
      const row = Math.floor(y / blockSize) * blocksPerSide;
      for (let x = 0; x < size; x++) {
        const halved = moving[row + Math.floor(x / blockSize)] === 1 ? 0.5 : 1;
        const pixel = y * size + x;
        const change = Math.abs(mask[pixel]! - previous[pixel]!);
        const low = waverChangeMax * halved;
        const high = motionChangeMin * halved;
        const gate = change <= low ? 1 : change >= high ? 0 : (high - change) / (high - low);
        const keep = retention * gate;
        mask[pixel] = keep * previous[pixel]! + (1 - keep) * mask[pixel]!;
      }
    }
  }
}
