// Mask post-processing on plain typed arrays (no I/O), so the worker thread, the eval script
// and the tests run the very same code.

/** Bilinear resize of a single-channel float image (half-pixel centres, as sharp and OpenCV). */
export function resizeBilinear(source: Float32Array, sourceWidth: number, sourceHeight: number, width: number, height: number): Float32Array {
  const target = new Float32Array(width * height);
  const scaleX = sourceWidth / width;
  const scaleY = sourceHeight / height;
  const x0s = new Int32Array(width);
  const x1s = new Int32Array(width);
  const fxs = new Float32Array(width);
  for (let x = 0; x < width; x++) {
    const sourceX = Math.min(Math.max((x + 0.5) * scaleX - 0.5, 0), sourceWidth - 1);
    x0s[x] = Math.floor(sourceX);
    x1s[x] = Math.min(x0s[x]! + 1, sourceWidth - 1);
    fxs[x] = sourceX - x0s[x]!;
  }
  for (let y = 0; y < height; y++) {
    const sourceY = Math.min(Math.max((y + 0.5) * scaleY - 0.5, 0), sourceHeight - 1);
    const y0 = Math.floor(sourceY);
    const y1 = Math.min(y0 + 1, sourceHeight - 1);
    const fy = sourceY - y0;
    const row0 = y0 * sourceWidth;
    const row1 = y1 * sourceWidth;
    for (let x = 0; x < width; x++) {
      const fx = fxs[x]!;
      const top = source[row0 + x0s[x]!]! * (1 - fx) + source[row0 + x1s[x]!]! * fx;
      const bottom = source[row1 + x0s[x]!]! * (1 - fx) + source[row1 + x1s[x]!]! * fx;
      target[y * width + x] = top * (1 - fy) + bottom * fy;
    }
  }
  return target;
}

/** Area-average downscale by an integer factor (edge cells average what they cover). */
function downscale(source: Float32Array, width: number, height: number, factor: number): { data: Float32Array; width: number; height: number } {
  const smallWidth = Math.ceil(width / factor);
  const smallHeight = Math.ceil(height / factor);
  const sums = new Float32Array(smallWidth * smallHeight);
  const counts = new Float32Array(smallWidth * smallHeight);
  for (let y = 0; y < height; y++) {
    const row = Math.floor(y / factor) * smallWidth;
    for (let x = 0; x < width; x++) {
      const cell = row + Math.floor(x / factor);
      sums[cell]! += source[y * width + x]!;
      counts[cell]! += 1;
    }
  }
  for (let index = 0; index < sums.length; index++) sums[index]! /= counts[index]!;
  return { data: sums, width: smallWidth, height: smallHeight };
}

/** Mean over a (2r+1)² window clipped at the borders; O(pixels) whatever the radius. */
export function boxMean(source: Float32Array, width: number, height: number, radius: number): Float32Array {
  const horizontal = new Float32Array(width * height);
  for (let y = 0; y < height; y++) {
    const row = y * width;
    let sum = 0;
    for (let x = 0; x <= Math.min(radius, width - 1); x++) sum += source[row + x]!;
    for (let x = 0; x < width; x++) {
      const count = Math.min(x + radius, width - 1) - Math.max(x - radius, 0) + 1;
      horizontal[row + x] = sum / count;
      const entering = x + radius + 1;
      const leaving = x - radius;
      if (entering < width) sum += source[row + entering]!;
      if (leaving >= 0) sum -= source[row + leaving]!;
    }
  }
  const result = new Float32Array(width * height);
  const sums = new Float64Array(width);
  for (let y = 0; y <= Math.min(radius, height - 1); y++) {
    for (let x = 0; x < width; x++) sums[x]! += horizontal[y * width + x]!;
  }
  for (let y = 0; y < height; y++) {
    const count = Math.min(y + radius, height - 1) - Math.max(y - radius, 0) + 1;
    const row = y * width;
    for (let x = 0; x < width; x++) result[row + x] = sums[x]! / count;
    const entering = y + radius + 1;
    const leaving = y - radius;
    if (entering < height) for (let x = 0; x < width; x++) sums[x]! += horizontal[entering * width + x]!;
    if (leaving >= 0) for (let x = 0; x < width; x++) sums[x]! -= horizontal[leaving * width + x]!;
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
  /** Contrast of the filtered alpha around one half: the filter softens edges the eye sees as hard. */
  gain: number;
}

// Tuned on shared/eval/dev (npm run eval): the smallest radius and ε that still lift boundary F
// without costing IoU; the gain of 2 undoes the softening the filter and the model add to hard edges.
export const defaultRefineOptions: RefineOptions = { radiusFraction: 0.006, epsilon: 3e-4, gain: 2 };

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
  let alpha = upscaled;
  if (refine) {
    const longest = Math.max(width, height);
    const radius = Math.max(2, Math.round(longest * options.radiusFraction));
    const subsample = Math.max(1, Math.floor(longest / 1536));
    const filtered = guidedFilter(image, channels, upscaled, width, height, { radius, epsilon: options.epsilon, subsample });
    // The band where either the model or the filter is unsure, widened by the filter radius.
    const uncertainty = new Float32Array(upscaled.length);
    for (let pixel = 0; pixel < upscaled.length; pixel++) {
      const value = upscaled[pixel]!;
      uncertainty[pixel] = value > 0.02 && value < 0.98 ? 1 : 0;
    }
    const band = boxMean(uncertainty, width, height, radius);
    alpha = new Float32Array(upscaled.length);
    for (let pixel = 0; pixel < upscaled.length; pixel++) {
      const weight = Math.min(1, band[pixel]! * 4);
      const sharpened = (filtered[pixel]! - 0.5) * options.gain + 0.5;
      alpha[pixel] = weight * sharpened + (1 - weight) * upscaled[pixel]!;
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
  const a = new Float32Array(pixels);
  for (let pixel = 0; pixel < pixels; pixel++) a[pixel] = alpha[pixel]! / 255;
  const colour = [0, 1, 2].map((channel) => {
    const plane = new Float32Array(pixels);
    for (let pixel = 0; pixel < pixels; pixel++) plane[pixel] = image[pixel * channels + channel]! / 255;
    return plane;
  });
  let foreground: Float32Array[] = colour.map((plane) => plane.slice());
  let background: Float32Array[] = colour.map((plane) => plane.slice());
  const longest = Math.max(width, height);
  for (const radius of [Math.max(3, Math.round(longest / 11)), Math.max(1, Math.round(longest / 170))]) {
    const blurredAlpha = boxMean(a, width, height, radius);
    const inverse = new Float32Array(pixels);
    for (let pixel = 0; pixel < pixels; pixel++) inverse[pixel] = 1 - a[pixel]!;
    const blurredInverse = boxMean(inverse, width, height, radius);
    const nextForeground: Float32Array[] = [];
    const nextBackground: Float32Array[] = [];
    for (let channel = 0; channel < 3; channel++) {
      const weightedF = new Float32Array(pixels);
      const weightedB = new Float32Array(pixels);
      for (let pixel = 0; pixel < pixels; pixel++) {
        weightedF[pixel] = foreground[channel]![pixel]! * a[pixel]!;
        weightedB[pixel] = background[channel]![pixel]! * inverse[pixel]!;
      }
      const blurF = boxMean(weightedF, width, height, radius);
      const blurB = boxMean(weightedB, width, height, radius);
      const f = new Float32Array(pixels);
      const b = new Float32Array(pixels);
      for (let pixel = 0; pixel < pixels; pixel++) {
        const fMean = blurF[pixel]! / (blurredAlpha[pixel]! + 1e-5);
        const bMean = blurB[pixel]! / (blurredInverse[pixel]! + 1e-5);
        const alphaValue = a[pixel]!;
        const residual = colour[channel]![pixel]! - alphaValue * fMean - (1 - alphaValue) * bMean;
        f[pixel] = Math.min(1, Math.max(0, fMean + alphaValue * residual));
        b[pixel] = Math.min(1, Math.max(0, bMean + (1 - alphaValue) * residual));
      }
      nextForeground.push(f);
      nextBackground.push(b);
    }
    foreground = nextForeground;
    background = nextBackground;
  }
  const result = new Uint8Array(pixels * 3);
  for (let pixel = 0; pixel < pixels; pixel++) {
    const alphaValue = alpha[pixel]!;
    for (let channel = 0; channel < 3; channel++) {
      // Opaque pixels are the subject itself; only mixed ones need an estimate.
      result[pixel * 3 + channel] =
        alphaValue === 255 ? image[pixel * channels + channel]! : Math.round(foreground[channel]![pixel]! * 255);
    }
  }
  return result;
}
