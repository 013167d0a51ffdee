// Mask post-processing on plain typed arrays (no I/O), so the worker thread, the eval script
// and the tests run the very same code.

import { regionWhere, type Region } from "./pixel-region.ts";

export type { Region };

/**
 * Bilinear resize of a single-channel float image (half-pixel centres, as sharp and OpenCV).
 * With `region`, only that part of the width×height result is computed and returned.
 */
export function resizeBilinear(
  source: Float32Array,
  sourceWidth: number,
  sourceHeight: number,
  width: number,
  height: number,
  region: Region = { left: 0, top: 0, width, height },
): Float32Array {
  const target = new Float32Array(region.width * region.height);
  const scaleX = sourceWidth / width;
  const scaleY = sourceHeight / height;
  const x0s = new Int32Array(region.width);
  const x1s = new Int32Array(region.width);
  const fxs = new Float32Array(region.width);
  for (let x = 0; x < region.width; x++) {
    const sourceX = Math.min(Math.max((x + region.left + 0.5) * scaleX - 0.5, 0), sourceWidth - 1);
    x0s[x] = Math.floor(sourceX);
    x1s[x] = Math.min(x0s[x]! + 1, sourceWidth - 1);
    fxs[x] = sourceX - x0s[x]!;
  }
  for (let y = 0; y < region.height; y++) {
    const sourceY = Math.min(Math.max((y + region.top + 0.5) * scaleY - 0.5, 0), sourceHeight - 1);
    const y0 = Math.floor(sourceY);
    const y1 = Math.min(y0 + 1, sourceHeight - 1);
    const fy = sourceY - y0;
    const row0 = y0 * sourceWidth;
    const row1 = y1 * sourceWidth;
    for (let x = 0; x < region.width; x++) {
      const fx = fxs[x]!;
      const top = source[row0 + x0s[x]!]! * (1 - fx) + source[row0 + x1s[x]!]! * fx;
      const bottom = source[row1 + x0s[x]!]! * (1 - fx) + source[row1 + x1s[x]!]! * fx;
      target[y * region.width + x] = top * (1 - fy) + bottom * fy;
    }
  }
  return target;
}

function cropPlane(plane: Float32Array, width: number, region: Region): Float32Array {
  const result = new Float32Array(region.width * region.height);
  for (let y = 0; y < region.height; y++) {
    const start = (region.top + y) * width + region.left;
    result.set(plane.subarray(start, start + region.width), y * region.width);
  }
  return result;
}

function cropPixels(image: Uint8Array, channels: number, width: number, region: Region): Uint8Array {
  const result = new Uint8Array(region.width * region.height * channels);
  for (let y = 0; y < region.height; y++) {
    const start = ((region.top + y) * width + region.left) * channels;
    result.set(image.subarray(start, start + region.width * channels), y * region.width * channels);
  }
  return result;
}

/** Area-average downscale by an integer factor (edge cells average what they cover). */
function downscale(source: Float32Array, width: number, height: number, factor: number): { data: Float32Array; width: number; height: number } {
  const smallWidth = Math.ceil(width / factor);
  const smallHeight = Math.ceil(height / factor);
  const sums = new Float32Array(smallWidth * smallHeight);
  const counts = new Float32Array(smallWidth * smallHeight);
  const cellOfColumn = new Int32Array(width);
  for (let x = 0; x < width; x++) cellOfColumn[x] = (x / factor) | 0;
  for (let y = 0; y < height; y++) {
    const row = ((y / factor) | 0) * smallWidth;
    const sourceRow = y * width;
    for (let x = 0; x < width; x++) {
      const cell = row + cellOfColumn[x]!;
      sums[cell]! += source[sourceRow + x]!;
      counts[cell]! += 1;
    }
  }
  for (let index = 0; index < sums.length; index++) sums[index]! /= counts[index]!;
  return { data: sums, width: smallWidth, height: smallHeight };
}

/** Mean over a (2r+1)² window clipped at the borders; O(pixels) whatever the radius. */
export function boxMean(source: Float32Array, width: number, height: number, radius: number): Float32Array {
  // Reciprocal window sizes per column and row, so the inner loops carry no min/max or division.
  const inverseWidth = new Float64Array(width);
  for (let x = 0; x < width; x++) inverseWidth[x] = 1 / (Math.min(x + radius, width - 1) - Math.max(x - radius, 0) + 1);
  const horizontal = new Float32Array(width * height);
  for (let y = 0; y < height; y++) {
    const row = y * width;
    let sum = 0;
    for (let x = 0; x <= Math.min(radius, width - 1); x++) sum += source[row + x]!;
    for (let x = 0; x < width; x++) {
      horizontal[row + x] = sum * inverseWidth[x]!;
      const entering = x + radius + 1;
      const leaving = x - radius;
      if (entering < width) sum += source[row + entering]!;
      if (leaving >= 0) sum -= source[row + leaving]!;
    }
  }
  const result = new Float32Array(width * height);
  const sums = new Float64Array(width);
  for (let y = 0; y <= Math.min(radius, height - 1); y++) {
    const row = y * width;
    for (let x = 0; x < width; x++) sums[x]! += horizontal[row + x]!;
  }
  for (let y = 0; y < height; y++) {
    const inverse = 1 / (Math.min(y + radius, height - 1) - Math.max(y - radius, 0) + 1);
    const row = y * width;
    const entering = (y + radius + 1) * width;
    const leaving = (y - radius) * width;
    const enters = y + radius + 1 < height;
    const leaves = y - radius >= 0;
    if (enters && leaves) {
      for (let x = 0; x < width; x++) {
        const sum = sums[x]!;
        result[row + x] = sum * inverse;
        sums[x] = sum + horizontal[entering + x]! - horizontal[leaving + x]!;
      }
    } else {
      for (let x = 0; x < width; x++) {
        let sum = sums[x]!;
        result[row + x] = sum * inverse;
        if (enters) sum += horizontal[entering + x]!;
        if (leaves) sum -= horizontal[leaving + x]!;
        sums[x] = sum;
      }
    }
  }
  return result;
}

/**
 * He, Sun & Tang's guided filter with a colour guide (TPAMI 2013), optionally "fast" (the
 * linear coefficients are computed on a grid `subsample` times coarser, then upsampled). The
 * output follows the guide's edges where the input mask is uncertain, which is what restores
 * hair and fine edges lost when the model saw a 1024² copy of the image.
 *
 * `guide` is RGB(A) 0–255 interleaved with `channels` per pixel; `input` is 0–1.
 */
export function guidedFilter(
  guide: Uint8Array,
  channels: number,
  input: Float32Array,
  width: number,
  height: number,
  options: { radius: number; epsilon: number; subsample: number },
): Float32Array {
  const pixels = width * height;
  const planes = [new Float32Array(pixels), new Float32Array(pixels), new Float32Array(pixels)];
  for (let pixel = 0; pixel < pixels; pixel++) {
    planes[0]![pixel] = guide[pixel * channels]! / 255;
    planes[1]![pixel] = guide[pixel * channels + 1]! / 255;
    planes[2]![pixel] = guide[pixel * channels + 2]! / 255;
  }
  const factor = Math.max(1, Math.floor(options.subsample));
  const small = (plane: Float32Array) => (factor === 1 ? { data: plane, width, height } : downscale(plane, width, height, factor));
  const [red, green, blue] = planes.map((plane) => small(plane).data) as [Float32Array, Float32Array, Float32Array];
  const p = small(input);
  const w = p.width;
  const h = p.height;
  const n = w * h;
  const r = Math.max(1, Math.round(options.radius / factor));
  const mean = (data: Float32Array) => boxMean(data, w, h, r);
  const product = (a: Float32Array, b: Float32Array) => {
    const out = new Float32Array(n);
    for (let index = 0; index < n; index++) out[index] = a[index]! * b[index]!;
    return out;
  };
  const meanR = mean(red);
  const meanG = mean(green);
  const meanB = mean(blue);
  const meanP = mean(p.data);
  const meanRP = mean(product(red, p.data));
  const meanGP = mean(product(green, p.data));
  const meanBP = mean(product(blue, p.data));
  const varRR = mean(product(red, red));
  const varRG = mean(product(red, green));
  const varRB = mean(product(red, blue));
  const varGG = mean(product(green, green));
  const varGB = mean(product(green, blue));
  const varBB = mean(product(blue, blue));
  const aR = new Float32Array(n);
  const aG = new Float32Array(n);
  const aB = new Float32Array(n);
  const b = new Float32Array(n);
  const epsilon = options.epsilon;
  for (let index = 0; index < n; index++) {
    const mr = meanR[index]!;
    const mg = meanG[index]!;
    const mb = meanB[index]!;
    const mp = meanP[index]!;
    const covR = meanRP[index]! - mr * mp;
    const covG = meanGP[index]! - mg * mp;
    const covB = meanBP[index]! - mb * mp;
    const rr = varRR[index]! - mr * mr + epsilon;
    const rg = varRG[index]! - mr * mg;
    const rb = varRB[index]! - mr * mb;
    const gg = varGG[index]! - mg * mg + epsilon;
    const gb = varGB[index]! - mg * mb;
    const bb = varBB[index]! - mb * mb + epsilon;
    // Inverse of the symmetric 3×3 covariance (+ε I) by cofactors.
    const i11 = gg * bb - gb * gb;
    const i12 = rb * gb - rg * bb;
    const i13 = rg * gb - rb * gg;
    const i22 = rr * bb - rb * rb;
    const i23 = rb * rg - rr * gb;
    const i33 = rr * gg - rg * rg;
    const determinant = rr * i11 + rg * i12 + rb * i13;
    const ar = (i11 * covR + i12 * covG + i13 * covB) / determinant;
    const ag = (i12 * covR + i22 * covG + i23 * covB) / determinant;
    const ab = (i13 * covR + i23 * covG + i33 * covB) / determinant;
    aR[index] = ar;
    aG[index] = ag;
    aB[index] = ab;
    b[index] = mp - ar * mr - ag * mg - ab * mb;
  }
  let meanAR = mean(aR);
  let meanAG = mean(aG);
  let meanAB = mean(aB);
  let meanBias = mean(b);
  if (factor > 1) {
    meanAR = resizeBilinear(meanAR, w, h, width, height);
    meanAG = resizeBilinear(meanAG, w, h, width, height);
    meanAB = resizeBilinear(meanAB, w, h, width, height);
    meanBias = resizeBilinear(meanBias, w, h, width, height);
  }
  const output = new Float32Array(pixels);
  for (let pixel = 0; pixel < pixels; pixel++) {
    output[pixel] =
      meanAR[pixel]! * planes[0]![pixel]! + meanAG[pixel]! * planes[1]![pixel]! + meanAB[pixel]! * planes[2]![pixel]! + meanBias[pixel]!;
  }
  return output;
}

export interface RefineOptions {
  /** Guided filter window radius at full resolution, as a fraction of the longest side. */
  radiusFraction: number;
  /** Guided filter regulariser: larger follows the model's mask, smaller the image's edges. */
  epsilon: number;
  /** The guided filter's coefficients are computed on a grid whose longest side is about this (pixels). */
  subsampleLongestSide: number;
  /** Contrast of the filtered alpha around one half: the filter softens edges the eye sees as hard. */
  gain: number;
}

// Tuned on shared/eval/dev (npm run eval): the smallest radius and ε that still lift boundary F
// without costing IoU; the gain of 2 undoes the softening the filter and the model add to hard edges.
export const defaultRefineOptions: RefineOptions = { radiusFraction: 0.006, epsilon: 3e-4, gain: 2, subsampleLongestSide: 1536 };

/**
 * The model's low-resolution mask as full-resolution alpha (0–255). With `refine`, the
 * bilinear upscale is sharpened against the image by a guided filter, and only inside the
 * uncertain band along the subject's edge: far from the edge the model is sure and the filter
 * could only leak colour-similar background into the mask.
 */
export function maskToAlpha(
  mask: Float32Array,
  maskWidth: number,
  maskHeight: number,
  image: Uint8Array,
  channels: number,
  width: number,
  height: number,
  refine: boolean,
  options: RefineOptions = defaultRefineOptions,
): Uint8Array {
  const upscaled = resizeBilinear(mask, maskWidth, maskHeight, width, height);
  const alpha = upscaled.slice();
  const uncertain = (pixel: number) => upscaled[pixel]! > 0.02 && upscaled[pixel]! < 0.98;
  const longest = Math.max(width, height);
  const radius = Math.max(2, Math.round(longest * options.radiusFraction));
  // Only the band where the model is unsure changes; a pixel's filtered value depends on pixels
  // up to twice the radius away, and the band reaches one radius further, so the work is done on
  // the band's box grown by three radii, with the same result as on the whole image.
  const region = refine ? regionWhere(width, height, 3 * radius + 2, uncertain) : undefined;
  if (region !== undefined) {
    // The "fast guided filter": coefficients on a coarser grid (they vary smoothly), the
    // output at full resolution against the full-resolution guide.
    const subsample = Math.max(1, Math.round(longest / options.subsampleLongestSide));
    const input = cropPlane(upscaled, width, region);
    const filtered = guidedFilter(cropPixels(image, channels, width, region), channels, input, region.width, region.height, {
      radius,
      epsilon: options.epsilon,
      subsample,
    });
    const uncertainty = new Float32Array(input.length);
    for (let pixel = 0; pixel < input.length; pixel++) uncertainty[pixel] = input[pixel]! > 0.02 && input[pixel]! < 0.98 ? 1 : 0;
    // The band where the model is unsure, widened by the filter radius.
    const band = boxMean(uncertainty, region.width, region.height, radius);
    for (let y = 0; y < region.height; y++) {
      for (let x = 0; x < region.width; x++) {
        const local = y * region.width + x;
        const weight = Math.min(1, band[local]! * 4);
        if (weight === 0) continue;
        const sharpened = (filtered[local]! - 0.5) * options.gain + 0.5;
        alpha[(region.top + y) * width + region.left + x] = weight * sharpened + (1 - weight) * input[local]!;
      }
    }
  }
  const result = new Uint8Array(width * height);
  for (let pixel = 0; pixel < result.length; pixel++) result[pixel] = Math.round(Math.min(1, Math.max(0, alpha[pixel]!)) * 255);
  return result;
}

/**
 * Foreground colours for semi-transparent pixels, by blur fusion (Forte & Pitié, "Approximate
 * Fast Foreground Colour Estimation", ICIP 2021): where alpha is fractional the observed colour
 * mixes the subject with the old background, and compositing it unchanged on a new background
 * leaves a halo of the old one. Returns RGB, 3 bytes per pixel; opaque pixels keep their colour.
 */
export function estimateForeground(image: Uint8Array, channels: number, alpha: Uint8Array, width: number, height: number): Uint8Array {
  const pixels = width * height;
  const result = new Uint8Array(pixels * 3);
  for (let pixel = 0; pixel < pixels; pixel++) {
    result[pixel * 3] = image[pixel * channels]!;
    result[pixel * 3 + 1] = image[pixel * channels + 1]!;
    result[pixel * 3 + 2] = image[pixel * channels + 2]!;
  }
  const longest = Math.max(width, height);
  const wideRadius = Math.max(3, Math.round(longest / 11));
  const narrowRadius = Math.max(1, Math.round(longest / 170));
  // Only mixed pixels get an estimate; the narrow pass needs their neighbours one radius out.
  const mixed = new Uint8Array(pixels);
  for (let pixel = 0; pixel < pixels; pixel++) mixed[pixel] = alpha[pixel]! > 0 && alpha[pixel]! < 255 ? 1 : 0;
  const region = regionWhere(width, height, narrowRadius + 1, (pixel) => mixed[pixel] === 1);
  if (region === undefined) return result;

  // The wide pass blurs over the whole image, on a grid `factor` times coarser: one sweep sums
  // α, 1−α, I·α and I·(1−α) per cell, then the blurred planes are sampled back in the region.
  const factor = Math.max(1, Math.floor(wideRadius / 6));
  const coarseWidth = Math.ceil(width / factor);
  const coarseHeight = Math.ceil(height / factor);
  const cells = coarseWidth * coarseHeight;
  const coarse = Array.from({ length: 8 }, () => new Float32Array(cells));
  const [sumAlpha, sumInverse, sumR, sumG, sumB, sumInverseR, sumInverseG, sumInverseB] = coarse as [
    Float32Array, Float32Array, Float32Array, Float32Array, Float32Array, Float32Array, Float32Array, Float32Array,
  ];
  const counts = new Float32Array(cells);
  const cellOfColumn = new Int32Array(width);
  for (let x = 0; x < width; x++) cellOfColumn[x] = (x / factor) | 0;
  // Sums in 0–255 units (α·255·I), scaled once per cell below.
  for (let y = 0; y < height; y++) {
    const cellRow = ((y / factor) | 0) * coarseWidth;
    for (let x = 0, pixel = y * width, offset = pixel * channels; x < width; x++, pixel++, offset += channels) {
      const cell = cellRow + cellOfColumn[x]!;
      const alphaValue = alpha[pixel]!;
      const inverseValue = 255 - alphaValue;
      const red = image[offset]!;
      const green = image[offset + 1]!;
      const blue = image[offset + 2]!;
      sumAlpha[cell]! += alphaValue;
      sumInverse[cell]! += inverseValue;
      sumR[cell]! += red * alphaValue;
      sumG[cell]! += green * alphaValue;
      sumB[cell]! += blue * alphaValue;
      sumInverseR[cell]! += red * inverseValue;
      sumInverseG[cell]! += green * inverseValue;
      sumInverseB[cell]! += blue * inverseValue;
      counts[cell]! += 1;
    }
  }
  for (let cell = 0; cell < cells; cell++) {
    const perPixel = 1 / counts[cell]!;
    sumAlpha[cell]! *= perPixel / 255;
    sumInverse[cell]! *= perPixel / 255;
    for (const plane of [sumR, sumG, sumB, sumInverseR, sumInverseG, sumInverseB]) plane[cell]! *= perPixel / 65025;
  }
  const coarseRadius = Math.max(1, Math.round(wideRadius / factor));
  const [wideAlpha, wideInverse, ...wideColours] = coarse.map((plane) => {
    const blurred = boxMean(plane, coarseWidth, coarseHeight, coarseRadius);
    return resizeBilinear(blurred, coarseWidth, coarseHeight, width, height, region);
  }) as [Float32Array, Float32Array, ...Float32Array[]];

  const count = region.width * region.height;
  const regionAlpha = new Float32Array(count);
  const regionInverse = new Float32Array(count);
  for (let y = 0; y < region.height; y++) {
    for (let x = 0; x < region.width; x++) {
      const value = alpha[(region.top + y) * width + region.left + x]! / 255;
      regionAlpha[y * region.width + x] = value;
      regionInverse[y * region.width + x] = 1 - value;
    }
  }
  const narrowAlpha = boxMean(regionAlpha, region.width, region.height, narrowRadius);
  const narrowInverse = boxMean(regionInverse, region.width, region.height, narrowRadius);

  for (let channel = 0; channel < 3; channel++) {
    const wideF = wideColours[channel]!;
    const wideB = wideColours[channel + 3]!;
    const regionObserved = new Float32Array(count);
    for (let y = 0; y < region.height; y++) {
      for (let x = 0; x < region.width; x++) {
        regionObserved[y * region.width + x] = image[((region.top + y) * width + region.left + x) * channels + channel]! / 255;
      }
    }
    // Pass 1 (wide) in the region: F and B start as the observed colour.
    const foreground = regionObserved.slice();
    const background = regionObserved.slice();
    for (let local = 0; local < count; local++) {
      const alphaValue = regionAlpha[local]!;
      if (alphaValue === 0 || alphaValue === 1) continue;
      const fMean = wideF[local]! / (wideAlpha[local]! + 1e-5);
      const bMean = wideB[local]! / (wideInverse[local]! + 1e-5);
      const residual = regionObserved[local]! - alphaValue * fMean - (1 - alphaValue) * bMean;
      foreground[local] = Math.min(1, Math.max(0, fMean + alphaValue * residual));
      background[local] = Math.min(1, Math.max(0, bMean + (1 - alphaValue) * residual));
    }
    // Pass 2 (narrow), at full resolution in the region.
    for (let local = 0; local < count; local++) {
      foreground[local]! *= regionAlpha[local]!;
      background[local]! *= regionInverse[local]!;
    }
    const narrowF = boxMean(foreground, region.width, region.height, narrowRadius);
    const narrowB = boxMean(background, region.width, region.height, narrowRadius);
    for (let y = 0; y < region.height; y++) {
      for (let x = 0; x < region.width; x++) {
        const local = y * region.width + x;
        const alphaValue = regionAlpha[local]!;
        // Opaque pixels are the subject itself and transparent ones are never seen.
        if (alphaValue === 0 || alphaValue === 1) continue;
        const fMean = narrowF[local]! / (narrowAlpha[local]! + 1e-5);
        const bMean = narrowB[local]! / (narrowInverse[local]! + 1e-5);
        const residual = regionObserved[local]! - alphaValue * fMean - (1 - alphaValue) * bMean;
        const estimate = Math.min(1, Math.max(0, fMean + alphaValue * residual));
        result[((region.top + y) * width + region.left + x) * 3 + channel] = Math.round(estimate * 255);
      }
    }
  }
  return result;
}
