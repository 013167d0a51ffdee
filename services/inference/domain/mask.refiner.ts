// Mask post-processing on plain typed arrays (no I/O), so the refine thread, the eval script
// and the tests run the very same code.

import { regionWhere, type Region } from "./pixel-region.ts";

export type { Region };

/** A single-channel float image, row by row. */
export interface Plane {
  data: Float32Array;
  width: number;
  height: number;
}

/** An 8-bit image, `channels` interleaved bytes per pixel; only the first three (RGB) are read. */
export interface InterleavedImage {
  pixels: Uint8Array;
  channels: number;
  width: number;
  height: number;
}

// A model value strictly between these is one the model is unsure of: the edge band that the
// guided filter refines. Outside it the model is sure, and the filter could only leak
// colour-similar background into the mask.
const uncertainAbove = 0.02;
const uncertainBelow = 0.98;

function isUncertain(value: number): boolean {
  return value > uncertainAbove && value < uncertainBelow;
}

/**
 * Bilinear resize of a single-channel float image (half-pixel centres, as sharp and OpenCV).
 * With `region`, only that part of the width×height result is computed and returned; with `only`
 * (pixels of the region, as y·region.width + x), only at those, the rest left 0: the refinement
 * needs most of its full-resolution planes along the subject's edge alone.
 */
export function resizeBilinear(source: Plane, width: number, height: number, region: Region = { left: 0, top: 0, width, height }, only?: Int32Array): Float32Array {
  const { data, width: sourceWidth, height: sourceHeight } = source;
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
  const row0s = new Int32Array(region.height);
  const row1s = new Int32Array(region.height);
  const fys = new Float64Array(region.height);
  for (let y = 0; y < region.height; y++) {
    const sourceY = Math.min(Math.max((y + region.top + 0.5) * scaleY - 0.5, 0), sourceHeight - 1);
    const y0 = Math.floor(sourceY);
    row0s[y] = y0 * sourceWidth;
    row1s[y] = Math.min(y0 + 1, sourceHeight - 1) * sourceWidth;
    fys[y] = sourceY - y0;
  }
  const sample = (x: number, y: number) => {
    const fx = fxs[x]!;
    const fy = fys[y]!;
    const row0 = row0s[y]!;
    const row1 = row1s[y]!;
    const top = data[row0 + x0s[x]!]! * (1 - fx) + data[row0 + x1s[x]!]! * fx;
    const bottom = data[row1 + x0s[x]!]! * (1 - fx) + data[row1 + x1s[x]!]! * fx;
    return top * (1 - fy) + bottom * fy;
  };
  if (only !== undefined) {
    for (const local of only) {
      const x = local % region.width;
      target[local] = sample(x, (local - x) / region.width);
    }
    return target;
  }
  // The whole plane inlines `sample`: a call per pixel made the mask's upscale ~10 % slower.
  for (let y = 0; y < region.height; y++) {
    const fy = fys[y]!;
    const row0 = row0s[y]!;
    const row1 = row1s[y]!;
    for (let x = 0; x < region.width; x++) {
      const fx = fxs[x]!;
      const top = data[row0 + x0s[x]!]! * (1 - fx) + data[row0 + x1s[x]!]! * fx;
      const bottom = data[row1 + x0s[x]!]! * (1 - fx) + data[row1 + x1s[x]!]! * fx;
      target[y * region.width + x] = top * (1 - fy) + bottom * fy;
    }
  }
  return target;
}

/** The indices where `flags` is non-zero, ascending. */
function indicesWhere(flags: Uint8Array): Int32Array {
  let count = 0;
  for (let index = 0; index < flags.length; index++) if (flags[index] !== 0) count += 1;
  const indices = new Int32Array(count);
  for (let index = 0, next = 0; index < flags.length; index++) if (flags[index] !== 0) indices[next++] = index;
  return indices;
}

/** A model mask and its weight in an average (a mirrored pass's mask, itself the mean of two, weighs 2). */
export interface WeightedPlane {
  plane: Plane;
  weight: number;
}

/**
 * The weighted mean of masks of one image at different model sides, at the largest one's size
 * (the others upscaled bilinearly, as the mean is upscaled to the image after). One mask comes
 * back as it is.
 */
export function averageMasks(masks: readonly WeightedPlane[]): Plane {
  if (masks.length === 0) throw new Error("averageMasks needs at least one mask");
  if (masks.length === 1) return masks[0]!.plane;
  const largest = masks.reduce((best, mask) => (mask.plane.width * mask.plane.height > best.plane.width * best.plane.height ? mask : best)).plane;
  const { width, height } = largest;
  const totalWeight = masks.reduce((total, mask) => total + mask.weight, 0);
  const mean = new Float32Array(width * height);
  for (const { plane, weight } of masks) {
    const data = plane.width === width && plane.height === height ? plane.data : resizeBilinear(plane, width, height);
    const share = weight / totalWeight;
    for (let pixel = 0; pixel < mean.length; pixel++) mean[pixel]! += data[pixel]! * share;
  }
  return { data: mean, width, height };
}

function cropPlane(plane: Float32Array, width: number, region: Region): Float32Array {
  const result = new Float32Array(region.width * region.height);
  for (let y = 0; y < region.height; y++) {
    const start = (region.top + y) * width + region.left;
    result.set(plane.subarray(start, start + region.width), y * region.width);
  }
  return result;
}

function cropPixels(image: InterleavedImage, region: Region): InterleavedImage {
  const { channels } = image;
  const pixels = new Uint8Array(region.width * region.height * channels);
  for (let y = 0; y < region.height; y++) {
    const start = ((region.top + y) * image.width + region.left) * channels;
    pixels.set(image.pixels.subarray(start, start + region.width * channels), y * region.width * channels);
  }
  return { pixels, channels, width: region.width, height: region.height };
}

/** Area-average downscale by an integer factor (edge cells average what they cover). */
function downscale(source: Plane, factor: number): Plane {
  const { data, width, height } = source;
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
      sums[cell]! += data[sourceRow + x]!;
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

/** Three colour planes, red, green and blue, 0–1. */
type ColourPlanes = [red: Float32Array, green: Float32Array, blue: Float32Array];

/** The per-pixel linear model of the guided filter: output = aRed·R + aGreen·G + aBlue·B + bias. */
type Coefficients = [aRed: Float32Array, aGreen: Float32Array, aBlue: Float32Array, bias: Float32Array];

export interface GuidedFilterOptions {
  /** Window radius at the guide's resolution (pixels). */
  radius: number;
  /** Regulariser: larger follows the input, smaller the guide's edges. */
  epsilon: number;
  /** The coefficients are computed on a grid this many times coarser (1: full resolution). */
  subsample: number;
  /** Guide pixels (y·width + x) the output is computed at, ascending; 0 elsewhere. */
  only?: Int32Array;
}

/**
 * He, Sun & Tang's guided filter with a colour guide (TPAMI 2013), optionally "fast" (the
 * linear coefficients are computed on a grid `subsample` times coarser, then upsampled). The
 * output follows the guide's edges where the input mask is uncertain, which is what restores
 * hair and fine edges lost when the model saw a 1024² copy of the image.
 *
 * `input` is 0–1, at the guide's size.
 */
export function guidedFilter(guide: InterleavedImage, input: Float32Array, options: GuidedFilterOptions): Float32Array {
  const { width, height } = guide;
  const planes = colourPlanes(guide);
  const factor = Math.max(1, Math.floor(options.subsample));
  const coarse = (data: Float32Array): Plane => (factor === 1 ? { data, width, height } : downscale({ data, width, height }, factor));
  const coarseInput = coarse(input);
  const radius = Math.max(1, Math.round(options.radius / factor));
  const coefficients = solveCoefficients(
    windowMoments(planes.map((plane) => coarse(plane).data) as ColourPlanes, coarseInput, radius),
    options.epsilon,
  );
  // Each pixel's model is the mean of the models of the windows that cover it.
  let smoothed = coefficients.map((plane) => boxMean(plane, coarseInput.width, coarseInput.height, radius)) as Coefficients;
  if (factor > 1) {
    const full = { left: 0, top: 0, width, height };
    smoothed = smoothed.map((plane) => resizeBilinear({ data: plane, width: coarseInput.width, height: coarseInput.height }, width, height, full, options.only)) as Coefficients;
  }
  return applyCoefficients(smoothed, planes, options.only);
}

function colourPlanes(guide: InterleavedImage): ColourPlanes {
  const { pixels: bytes, channels } = guide;
  const pixels = guide.width * guide.height;
  const planes: ColourPlanes = [new Float32Array(pixels), new Float32Array(pixels), new Float32Array(pixels)];
  for (let pixel = 0; pixel < pixels; pixel++) {
    planes[0][pixel] = bytes[pixel * channels]! / 255;
    planes[1][pixel] = bytes[pixel * channels + 1]! / 255;
    planes[2][pixel] = bytes[pixel * channels + 2]! / 255;
  }
  return planes;
}

/** Window means of the guide, the input, their products and the guide's second moments. */
interface Moments {
  meanR: Float32Array;
  meanG: Float32Array;
  meanB: Float32Array;
  meanP: Float32Array;
  meanRP: Float32Array;
  meanGP: Float32Array;
  meanBP: Float32Array;
  varRR: Float32Array;
  varRG: Float32Array;
  varRB: Float32Array;
  varGG: Float32Array;
  varGB: Float32Array;
  varBB: Float32Array;
}

function windowMoments([red, green, blue]: ColourPlanes, input: Plane, radius: number): Moments {
  const { data: p, width, height } = input;
  const n = width * height;
  const mean = (data: Float32Array) => boxMean(data, width, height, radius);
  const product = (a: Float32Array, b: Float32Array) => {
    const out = new Float32Array(n);
    for (let index = 0; index < n; index++) out[index] = a[index]! * b[index]!;
    return out;
  };
  return {
    meanR: mean(red),
    meanG: mean(green),
    meanB: mean(blue),
    meanP: mean(p),
    meanRP: mean(product(red, p)),
    meanGP: mean(product(green, p)),
    meanBP: mean(product(blue, p)),
    varRR: mean(product(red, red)),
    varRG: mean(product(red, green)),
    varRB: mean(product(red, blue)),
    varGG: mean(product(green, green)),
    varGB: mean(product(green, blue)),
    varBB: mean(product(blue, blue)),
  };
}

/** Each window's least-squares linear model of the input on the guide's colours, regularised by ε. */
function solveCoefficients(moments: Moments, epsilon: number): Coefficients {
  const { meanR, meanG, meanB, meanP, meanRP, meanGP, meanBP, varRR, varRG, varRB, varGG, varGB, varBB } = moments;
  const n = meanP.length;
  const aR = new Float32Array(n);
  const aG = new Float32Array(n);
  const aB = new Float32Array(n);
  const b = new Float32Array(n);
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
  return [aR, aG, aB, b];
}

function applyCoefficients([aR, aG, aB, bias]: Coefficients, [red, green, blue]: ColourPlanes, only: Int32Array | undefined): Float32Array {
  const output = new Float32Array(red.length);
  const apply = (pixel: number) => {
    output[pixel] = aR[pixel]! * red[pixel]! + aG[pixel]! * green[pixel]! + aB[pixel]! * blue[pixel]! + bias[pixel]!;
  };
  if (only === undefined) for (let pixel = 0; pixel < output.length; pixel++) apply(pixel);
  else for (const pixel of only) apply(pixel);
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
export const defaultRefineOptions: RefineOptions = { radiusFraction: 0.006, epsilon: 3e-4, gain: 2, subsampleLongestSide: 512 };

/** Smallest guided filter radius at full resolution (pixels). */
const refineRadiusMin = 2;

// A pixel whose filter window is a quarter or more uncertain takes the filtered value in full;
// the weight falls off linearly to the model's own value outside the band.
const bandWeightGain = 4;

/**
 * The model's low-resolution mask as full-resolution alpha (0–255), at the image's size. With
 * `refine`, the bilinear upscale is sharpened against the image by a guided filter, and only
 * inside the uncertain band along the subject's edge; without it, plain bilinear upscaling.
 */
export function maskToAlpha(mask: Plane, image: InterleavedImage, refine?: RefineOptions): Uint8Array {
  const upscaled = resizeBilinear(mask, image.width, image.height);
  const alpha = upscaled.slice();
  if (refine !== undefined) sharpenUncertainBand(alpha, upscaled, image, refine);
  const result = new Uint8Array(image.width * image.height);
  for (let pixel = 0; pixel < result.length; pixel++) result[pixel] = Math.round(Math.min(1, Math.max(0, alpha[pixel]!)) * 255);
  return result;
}

/** Writes the guided filter's sharpened values into `alpha` inside the band where `upscaled` is uncertain. */
function sharpenUncertainBand(alpha: Float32Array, upscaled: Float32Array, image: InterleavedImage, options: RefineOptions): void {
  const { width, height } = image;
  const longest = Math.max(width, height);
  const radius = Math.max(refineRadiusMin, Math.round(longest * options.radiusFraction));
  // Only the band where the model is unsure changes; a pixel's filtered value depends on pixels
  // up to twice the radius away, and the band reaches one radius further, so the work is done on
  // the band's box grown by three radii, with the same result as on the whole image.
  const region = regionWhere(width, height, 3 * radius + 2, (pixel) => isUncertain(upscaled[pixel]!));
  if (region === undefined) return;
  // The "fast guided filter": coefficients on a coarser grid (they vary smoothly), the
  // output at full resolution against the full-resolution guide.
  const subsample = Math.max(1, Math.round(longest / options.subsampleLongestSide));
  const input = cropPlane(upscaled, width, region);
  const uncertainty = new Float32Array(input.length);
  for (let pixel = 0; pixel < input.length; pixel++) uncertainty[pixel] = isUncertain(input[pixel]!) ? 1 : 0;
  // The band where the model is unsure, widened by the filter radius: the only pixels whose
  // filtered value is used, so the only ones the filter's output is computed at.
  const band = boxMean(uncertainty, region.width, region.height, radius);
  const inBand = new Uint8Array(band.length);
  for (let pixel = 0; pixel < band.length; pixel++) inBand[pixel] = band[pixel] === 0 ? 0 : 1;
  const bandPixels = indicesWhere(inBand);
  const filtered = guidedFilter(cropPixels(image, region), input, { radius, epsilon: options.epsilon, subsample, only: bandPixels });
  for (const local of bandPixels) {
    const x = local % region.width;
    const y = (local - x) / region.width;
    const weight = Math.min(1, band[local]! * bandWeightGain);
    const sharpened = (filtered[local]! - 0.5) * options.gain + 0.5;
    alpha[(region.top + y) * width + region.left + x] = weight * sharpened + (1 - weight) * input[local]!;
  }
}

// Blur-fusion radii as the longest side over these: about the paper's 90 and 6 pixels on a
// 1000-pixel image, so a larger image gets the same estimate at its own scale.
const wideRadiusDivisor = 11;
const narrowRadiusDivisor = 170;
const wideRadiusMin = 3;
/** The wide pass's coarse grid has about this many cells across its radius. */
const wideRadiusCells = 6;
/** Keeps the weighted means finite where a window holds no foreground (or no background). */
const weightFloor = 1e-5;

/**
 * Foreground colours for semi-transparent pixels, by blur fusion (Forte & Pitié, "Approximate
 * Fast Foreground Colour Estimation", ICIP 2021): where alpha is fractional the observed colour
 * mixes the subject with the old background, and compositing it unchanged on a new background
 * leaves a halo of the old one. Returns RGB, 3 bytes per pixel; opaque pixels keep their colour.
 */
export function estimateForeground(image: InterleavedImage, alpha: Uint8Array): Uint8Array {
  const { width, height } = image;
  const result = rgbOf(image);
  const longest = Math.max(width, height);
  const wideRadius = Math.max(wideRadiusMin, Math.round(longest / wideRadiusDivisor));
  const narrowRadius = Math.max(1, Math.round(longest / narrowRadiusDivisor));
  // Only mixed pixels get an estimate; the narrow pass needs their neighbours one radius out.
  const region = regionWhere(width, height, narrowRadius + 1, (pixel) => alpha[pixel]! > 0 && alpha[pixel]! < 255);
  if (region === undefined) return result;
  const weights = regionWeights(alpha, width, region);
  // Where α is fractional: the only pixels that get an estimate, so the only ones the passes are sampled at.
  const mixed = new Uint8Array(weights.alpha.length);
  for (let local = 0; local < mixed.length; local++) mixed[local] = weights.alpha[local]! > 0 && weights.alpha[local]! < 1 ? 1 : 0;
  const mixedPixels = indicesWhere(mixed);
  const wide = wideBlur(image, alpha, wideRadius, region, mixedPixels);
  // The narrow pass's window means are read at the mixed pixels only (a thin band along the
  // edge): from summed-area tables, one sweep each, rather than blurring the whole region.
  const windows = new WindowMeans(region.width, region.height, narrowRadius);
  // The weights' window means are the same for the three colours: read once per mixed pixel.
  const alphaSums = windows.table(weights.alpha);
  const inverseSums = windows.table(weights.inverse);
  const narrowAlpha = Float64Array.from(mixedPixels, (local) => windows.meanAt(alphaSums, local) + weightFloor);
  const narrowInverse = Float64Array.from(mixedPixels, (local) => windows.meanAt(inverseSums, local) + weightFloor);
  const foregroundWeighted = new Float32Array(weights.alpha.length);
  const backgroundWeighted = new Float32Array(weights.alpha.length);
  for (let channel = 0; channel < 3; channel++) {
    const observed = regionChannel(image, region, channel);
    // Pass 1 (wide): F and B start as the observed colour, and only mixed pixels move.
    for (let local = 0; local < observed.length; local++) {
      foregroundWeighted[local] = observed[local]! * weights.alpha[local]!;
      backgroundWeighted[local] = observed[local]! * weights.inverse[local]!;
    }
    const wideForeground = wide.colours[channel]!;
    const wideBackground = wide.colours[channel + 3]!;
    for (const local of mixedPixels) {
      const alphaValue = weights.alpha[local]!;
      const { foreground, background } = fused(observed[local]!, alphaValue, wideForeground[local]! / (wide.alpha[local]! + weightFloor), wideBackground[local]! / (wide.inverse[local]! + weightFloor));
      foregroundWeighted[local] = foreground * alphaValue;
      backgroundWeighted[local] = background * (1 - alphaValue);
    }
    // Pass 2 (narrow), at full resolution.
    const foregroundSums = windows.table(foregroundWeighted);
    const backgroundSums = windows.table(backgroundWeighted);
    for (let index = 0; index < mixedPixels.length; index++) {
      const local = mixedPixels[index]!;
      const fMean = windows.meanAt(foregroundSums, local) / narrowAlpha[index]!;
      const bMean = windows.meanAt(backgroundSums, local) / narrowInverse[index]!;
      const { foreground } = fused(observed[local]!, weights.alpha[local]!, fMean, bMean);
      const x = local % region.width;
      const y = (local - x) / region.width;
      result[((region.top + y) * width + region.left + x) * 3 + channel] = Math.round(foreground * 255);
    }
  }
  return result;
}

/** Blur fusion's step at one pixel: the window means of F and B corrected by the observed colour's residual. */
function fused(observed: number, alphaValue: number, fMean: number, bMean: number): { foreground: number; background: number } {
  const residual = observed - alphaValue * fMean - (1 - alphaValue) * bMean;
  return {
    foreground: Math.min(1, Math.max(0, fMean + alphaValue * residual)),
    background: Math.min(1, Math.max(0, bMean + (1 - alphaValue) * residual)),
  };
}

/**
 * Means over (2r+1)² windows clipped at a plane's borders, as boxMean gives, read at single
 * pixels from a summed-area table (O(1) per read after one sweep).
 */
export class WindowMeans {
  private readonly stride: number;

  constructor(
    private readonly width: number,
    private readonly height: number,
    private readonly radius: number,
  ) {
    this.stride = width + 1;
  }

  /** The plane's summed-area table: entry (x, y) of a (width+1)×(height+1) grid sums the plane above and left of it. */
  table(plane: Float32Array): Float64Array {
    const { width, height, stride } = this;
    const sums = new Float64Array(stride * (height + 1));
    for (let y = 0; y < height; y++) {
      let rowSum = 0;
      const above = y * stride;
      const row = above + stride;
      for (let x = 0; x < width; x++) {
        rowSum += plane[y * width + x]!;
        sums[row + x + 1] = sums[above + x + 1]! + rowSum;
      }
    }
    return sums;
  }

  /** The mean of the window around the plane's pixel `local` (y·width + x). */
  meanAt(sums: Float64Array, local: number): number {
    const { width, height, radius, stride } = this;
    const x = local % width;
    const y = (local - x) / width;
    const left = Math.max(0, x - radius);
    const right = Math.min(width - 1, x + radius) + 1;
    const top = Math.max(0, y - radius) * stride;
    const bottom = (Math.min(height - 1, y + radius) + 1) * stride;
    const total = sums[bottom + right]! - sums[top + right]! - sums[bottom + left]! + sums[top + left]!;
    return total / ((right - left) * ((bottom - top) / stride));
  }
}

function rgbOf(image: InterleavedImage): Uint8Array {
  const { pixels: bytes, channels } = image;
  const pixels = image.width * image.height;
  const result = new Uint8Array(pixels * 3);
  for (let pixel = 0; pixel < pixels; pixel++) {
    result[pixel * 3] = bytes[pixel * channels]!;
    result[pixel * 3 + 1] = bytes[pixel * channels + 1]!;
    result[pixel * 3 + 2] = bytes[pixel * channels + 2]!;
  }
  return result;
}

/**
 * The wide pass's sums, blurred over the whole image and sampled back in `region`: α, 1−α, then
 * I·α for red, green, blue and I·(1−α) for red, green, blue. The blur runs on a grid `factor`
 * times coarser: one sweep sums them per cell, then the cells' means are blurred.
 */
function wideBlur(
  image: InterleavedImage,
  alpha: Uint8Array,
  radius: number,
  region: Region,
  only: Int32Array,
): { alpha: Float32Array; inverse: Float32Array; colours: Float32Array[] } {
  const factor = Math.max(1, Math.floor(radius / wideRadiusCells));
  const cells = cellMeans(image, alpha, factor);
  const coarseRadius = Math.max(1, Math.round(radius / factor));
  const [wideAlpha, wideInverse, ...colours] = cells.map((plane) => {
    const blurred = boxMean(plane.data, plane.width, plane.height, coarseRadius);
    return resizeBilinear({ data: blurred, width: plane.width, height: plane.height }, image.width, image.height, region, only);
  }) as [Float32Array, Float32Array, ...Float32Array[]];
  return { alpha: wideAlpha, inverse: wideInverse, colours };
}

/** Per cell of `factor`² pixels, the means of α, 1−α, I·α and I·(1−α) (0–1 units), as eight planes. */
function cellMeans(image: InterleavedImage, alpha: Uint8Array, factor: number): Plane[] {
  const { pixels: bytes, channels, width, height } = image;
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
      const red = bytes[offset]!;
      const green = bytes[offset + 1]!;
      const blue = bytes[offset + 2]!;
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
  return coarse.map((data) => ({ data, width: coarseWidth, height: coarseHeight }));
}

/** The region's own α and 1−α, 0–1. */
function regionWeights(alpha: Uint8Array, width: number, region: Region): { alpha: Float32Array; inverse: Float32Array } {
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
  return { alpha: regionAlpha, inverse: regionInverse };
}

function regionChannel(image: InterleavedImage, region: Region, channel: number): Float32Array {
  const observed = new Float32Array(region.width * region.height);
  for (let y = 0; y < region.height; y++) {
    for (let x = 0; x < region.width; x++) {
      observed[y * region.width + x] = image.pixels[((region.top + y) * image.width + region.left + x) * image.channels + channel]! / 255;
    }
  }
  return observed;
}
