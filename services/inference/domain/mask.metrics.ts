// Mask quality against ground truth: IoU, MAE and boundary F-measure (Perazzi et al., DAVIS
// 2016), with the eval set's conventions (see shared/eval/SOURCES.md).
import { boxMean } from "./mask.refiner.ts";

export interface MaskScores {
  iou: number;
  mae: number;
  boundaryF: number;
}

export interface GroundTruthConvention {
  /** A ground-truth value meaning "unknown" (grabcut's 128 band), left out of IoU and boundary F. */
  unknownValue?: number;
  /** Boundary match tolerance (pixels, Chebyshev distance). */
  boundaryTolerance: number;
}

/** The convention for a pair from `dev/<source>/`. */
export function conventionOf(source: string): GroundTruthConvention {
  if (source === "grabcut") return { unknownValue: 128, boundaryTolerance: 3 };
  // Hand-drawn polygons: a few pixels off the true edge even when right.
  if (source === "davis2016") return { boundaryTolerance: 4 };
  return { boundaryTolerance: 2 };
}

function boundaryOf(binary: Uint8Array, width: number, height: number): Uint8Array {
  const edge = new Uint8Array(width * height);
  for (let y = 0; y < height; y++) {
    for (let x = 0; x < width; x++) {
      const index = y * width + x;
      const value = binary[index]!;
      if (
        (x + 1 < width && binary[index + 1] !== value) ||
        (y + 1 < height && binary[index + width] !== value) ||
        (x > 0 && binary[index - 1] !== value) ||
        (y > 0 && binary[index - width] !== value)
      ) {
        edge[index] = 1;
      }
    }
  }
  return edge;
}

function dilate(set: Uint8Array, width: number, height: number, radius: number): Float32Array {
  const values = new Float32Array(set.length);
  for (let index = 0; index < set.length; index++) values[index] = set[index]!;
  return boxMean(values, width, height, radius);
}

/** Alpha at or above this (of 255) is foreground once binarised. */
const binaryThreshold = 128;

/**
 * `predicted` and `truth` are 0–255 alpha, same size. IoU and boundary F use both binarised at
 * half; MAE uses the soft values (unknown pixels count as alpha 0.5).
 */
export function scoreMask(predicted: Uint8Array, truth: Uint8Array, width: number, height: number, convention: GroundTruthConvention): MaskScores {
  const regions = compareRegions(predicted, truth, width * height, convention);
  const truthEdges = truthEdgesOf(regions, width, height, convention);
  const predictedEdges = boundaryOf(regions.predictedBinary, width, height);
  const boundaryF = boundaryFMeasure({ predictedEdges, truthEdges, unknown: regions.unknown, width, height, tolerance: convention.boundaryTolerance });
  return { iou: regions.iou, mae: regions.mae, boundaryF };
}

/** Both masks binarised, the truth's unknown pixels, and the region scores. */
interface RegionComparison {
  unknown: Uint8Array;
  truthBinary: Uint8Array;
  predictedBinary: Uint8Array;
  iou: number;
  mae: number;
}

function compareRegions(predicted: Uint8Array, truth: Uint8Array, pixels: number, convention: GroundTruthConvention): RegionComparison {
  const unknown = new Uint8Array(pixels);
  const truthBinary = new Uint8Array(pixels);
  const predictedBinary = new Uint8Array(pixels);
  let intersection = 0;
  let union = 0;
  let absoluteError = 0;
  for (let index = 0; index < pixels; index++) {
    const t = truth[index]!;
    const p = predicted[index]!;
    absoluteError += Math.abs(p - t) / 255;
    predictedBinary[index] = p >= binaryThreshold ? 1 : 0;
    if (convention.unknownValue !== undefined && t === convention.unknownValue) {
      unknown[index] = 1;
      continue;
    }
    truthBinary[index] = t >= binaryThreshold ? 1 : 0;
    if (truthBinary[index] && predictedBinary[index]) intersection++;
    if (truthBinary[index] || predictedBinary[index]) union++;
  }
  return { unknown, truthBinary, predictedBinary, iou: union === 0 ? 1 : intersection / union, mae: absoluteError / pixels };
}

/**
 * With an unknown band, the truth's edges are the band's two sides (the boundaries of the
 * sure-foreground and sure-background regions); predicted edges inside the band are neither
 * right nor wrong, so they only count when matching the truth's edges.
 */
function truthEdgesOf({ unknown, truthBinary }: RegionComparison, width: number, height: number, convention: GroundTruthConvention): Uint8Array {
  if (convention.unknownValue === undefined) return boundaryOf(truthBinary, width, height);
  const pixels = width * height;
  const sureForeground = new Uint8Array(pixels);
  const sureBackground = new Uint8Array(pixels);
  for (let index = 0; index < pixels; index++) {
    sureForeground[index] = !unknown[index] && truthBinary[index] ? 1 : 0;
    sureBackground[index] = !unknown[index] && !truthBinary[index] ? 1 : 0;
  }
  const foregroundEdge = boundaryOf(sureForeground, width, height);
  const backgroundEdge = boundaryOf(sureBackground, width, height);
  const truthEdges = new Uint8Array(pixels);
  for (let index = 0; index < pixels; index++) {
    truthEdges[index] = (foregroundEdge[index]! && sureForeground[index]!) || (backgroundEdge[index]! && sureBackground[index]!) ? 1 : 0;
  }
  return truthEdges;
}

/** Harmonic mean of edge precision and recall, an edge matching when one of the other's lies within `tolerance`. */
function boundaryFMeasure(edges: {
  predictedEdges: Uint8Array;
  truthEdges: Uint8Array;
  unknown: Uint8Array;
  width: number;
  height: number;
  tolerance: number;
}): number {
  const { predictedEdges, truthEdges, unknown, width, height, tolerance } = edges;
  const nearTruth = dilate(truthEdges, width, height, tolerance);
  const nearPredicted = dilate(predictedEdges, width, height, tolerance);
  let predictedCount = 0;
  let predictedHits = 0;
  let truthCount = 0;
  let truthHits = 0;
  for (let index = 0; index < width * height; index++) {
    if (predictedEdges[index] && !unknown[index]) {
      predictedCount++;
      if (nearTruth[index]! > 0) predictedHits++;
    }
    if (truthEdges[index]) {
      truthCount++;
      if (nearPredicted[index]! > 0) truthHits++;
    }
  }
  if (truthCount === 0 && predictedCount === 0) return 1;
  if (truthCount === 0 || predictedCount === 0) return 0;
  const precision = predictedHits / predictedCount;
  const recall = truthHits / truthCount;
  return precision + recall === 0 ? 0 : (2 * precision * recall) / (precision + recall);
}
