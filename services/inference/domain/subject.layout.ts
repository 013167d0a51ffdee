import { aspectRatioOf, cropMarginProblem } from "../../common/images/crop-options.ts";
import { InferenceError } from "./inference.errors.ts";
import { regionWhere, type Region } from "./pixel-region.ts";

export type Rectangle = Region;

export interface LayoutOptions {
  cropToSubject: boolean;
  /** Margin around the subject's box when cropping to it, as a percent of the box's size. */
  cropMarginPercent: number;
  /** "16:9", "1:1", "4x5" or ""; see `layoutSubject`. */
  aspectRatio: string;
  /** 0 keeps the subject's size; 1–100 makes its box fill that percent of the canvas. */
  subjectScalePercent: number;
  /** "", "center", "top", "bottom", "left", "right" or "<x>% <y>%". */
  subjectPosition: string;
}

/**
 * Where the output's pixels come from: the `source` rectangle of the processed image (always
 * inside it) is scaled into `destination` on a `canvas`; canvas pixels outside `destination`
 * are transparent (or the chosen background).
 */
export interface Layout {
  canvasWidth: number;
  canvasHeight: number;
  source: Rectangle;
  destination: Rectangle;
  /** The subject's tight box in the processed image; undefined when the mask is empty. */
  subject?: Rectangle;
}

/** Alpha at or above this (of 255) counts as subject for boxes and crops. */
const subjectAlphaMin = 13;

/** The tight box around the subject, or undefined when the mask is empty. */
export function subjectBox(alpha: Uint8Array, width: number, height: number): Rectangle | undefined {
  return regionWhere(width, height, 0, (pixel) => alpha[pixel]! >= subjectAlphaMin);
}

export function parseAspectRatio(text: string): number | undefined {
  const parsed = aspectRatioOf(text);
  if (!parsed.ok) throw new InferenceError("invalid_option", parsed.message);
  return parsed.ratio;
}

export function parsePosition(text: string): { x: number; y: number } | undefined {
  const named: Record<string, { x: number; y: number }> = {
    center: { x: 0.5, y: 0.5 },
    centre: { x: 0.5, y: 0.5 },
    top: { x: 0.5, y: 0 },
    bottom: { x: 0.5, y: 1 },
    left: { x: 0, y: 0.5 },
    right: { x: 1, y: 0.5 },
  };
  const trimmed = text.trim().toLowerCase();
  if (trimmed === "" || trimmed === "original") return undefined;
  if (named[trimmed] !== undefined) return named[trimmed];
  const match = /^(\d{1,3}(?:\.\d+)?)%\s+(\d{1,3}(?:\.\d+)?)%$/.exec(trimmed);
  if (match !== null && Number(match[1]) <= 100 && Number(match[2]) <= 100) {
    return { x: Number(match[1]) / 100, y: Number(match[2]) / 100 };
  }
  throw new InferenceError(
    "invalid_option",
    `subject_position "${text}" is not one of center, top, bottom, left, right or "<x>% <y>%" (0–100 each)`,
  );
}

/** Largest subject_scale_percent: the subject's box fills the canvas. */
export const subjectScalePercentMax = 100;

type Point = { x: number; y: number };
type Size = { width: number; height: number };

/** The layout options checked, ratio and position parsed; throws invalid_option naming the first bad one. */
export function parseLayoutOptions(options: LayoutOptions): { ratio: number | undefined; position: Point | undefined } {
  const ratio = parseAspectRatio(options.aspectRatio);
  const position = parsePosition(options.subjectPosition);
  if (options.subjectScalePercent > subjectScalePercentMax) {
    throw new InferenceError("invalid_option", `subject_scale_percent ${options.subjectScalePercent} is above ${subjectScalePercentMax}`);
  }
  const marginProblem = cropMarginProblem(options.cropMarginPercent);
  if (marginProblem !== undefined) throw new InferenceError("invalid_option", marginProblem);
  return { ratio, position };
}

/**
 * Crop and placement from the mask.
 *
 * - `cropToSubject`: the canvas is the subject's box plus the margin (it may reach past the
 *   image's edges; that part is transparent).
 * - `aspectRatio` with `cropToSubject`: the box grows along one side to the ratio, centred on
 *   the subject. Without it, a smart crop: the image shrinks along one side to the ratio, the
 *   window centred on the subject and kept inside the image, so no padding is invented.
 * - `subjectScalePercent` / `subjectPosition`: the subject's box is scaled to that share of the
 *   canvas and placed at that point of the free space (remove.bg's `scale` and `position`).
 */
export function layoutSubject(alpha: Uint8Array, width: number, height: number, options: LayoutOptions): Layout {
  const { ratio, position } = parseLayoutOptions(options);
  const full: Rectangle = { left: 0, top: 0, width, height };
  const subject = subjectBox(alpha, width, height);
  const box = subject ?? full;
  // The canvas as a rectangle in image coordinates (may extend past the image).
  let region: Rectangle = full;
  if (options.cropToSubject) region = cropAroundSubject(box, options.cropMarginPercent, ratio);
  else if (ratio !== undefined) region = smartCrop(box, full, ratio);
  const canvas = { width: Math.max(1, Math.round(region.width)), height: Math.max(1, Math.round(region.height)) };
  const layout = options.subjectScalePercent > 0 || position !== undefined ? placeSubject(box, canvas, options.subjectScalePercent, position) : cropImage(region, canvas, full);
  return subject === undefined ? layout : { ...layout, subject };
}

/**
 * Where `box` (a rectangle of the processed image) lands on the output: the layout's source ->
 * destination mapping, clipped to what is drawn (the destination, on the canvas); undefined when
 * none of it is visible. Used for the subject's box in the result (remove.bg's foreground_*).
 */
export function boxOnCanvas(box: Rectangle, source: Rectangle, destination: Rectangle, canvas: Size): Rectangle | undefined {
  const scaleX = destination.width / source.width;
  const scaleY = destination.height / source.height;
  const x = (value: number) => destination.left + (value - source.left) * scaleX;
  const y = (value: number) => destination.top + (value - source.top) * scaleY;
  const right = Math.min(canvas.width, destination.left + destination.width);
  const bottom = Math.min(canvas.height, destination.top + destination.height);
  const left = clamp(Math.round(x(box.left)), Math.max(0, destination.left), right);
  const top = clamp(Math.round(y(box.top)), Math.max(0, destination.top), bottom);
  const boxRight = clamp(Math.round(x(box.left + box.width)), left, right);
  const boxBottom = clamp(Math.round(y(box.top + box.height)), top, bottom);
  if (boxRight <= left || boxBottom <= top) return undefined;
  return { left, top, width: boxRight - left, height: boxBottom - top };
}

export interface SmartCropOptions {
  /** Room around the subject's box on each side, in percent of the box's size. */
  cropMarginPercent: number;
  /** "16:9", "1:1", "4x5" or "" (the box plus the margin as it is). */
  aspectRatio: string;
}

/**
 * Smart Crop: the window of the image around the subject's box plus the margin, grown to the
 * ratio, then shrunk (keeping the ratio) until it fits the image and moved inside it, centred on
 * the subject as far as the image allows. Every output pixel is one of the image's own: no
 * padding is invented, so a margin or ratio the image cannot give is given as far as it can. An
 * empty mask keeps the whole image (at the ratio, centred).
 */
export function smartCropLayout(alpha: Uint8Array, width: number, height: number, options: SmartCropOptions): Layout {
  const ratio = parseAspectRatio(options.aspectRatio);
  const marginProblem = cropMarginProblem(options.cropMarginPercent);
  if (marginProblem !== undefined) throw new InferenceError("invalid_option", marginProblem);
  const box = subjectBox(alpha, width, height) ?? { left: 0, top: 0, width, height };
  const wanted = cropAroundSubject(box, options.cropMarginPercent, ratio);
  const centreX = wanted.left + wanted.width / 2;
  const centreY = wanted.top + wanted.height / 2;
  let cropWidth: number;
  let cropHeight: number;
  if (ratio === undefined) {
    cropWidth = clamp(Math.round(Math.min(wanted.width, width)), 1, width);
    cropHeight = clamp(Math.round(Math.min(wanted.height, height)), 1, height);
  } else {
    const fit = Math.min(1, width / wanted.width, height / wanted.height);
    cropWidth = clamp(Math.round(wanted.width * fit), 1, width);
    // The height from the rounded width, so the ratio holds to the pixel.
    cropHeight = clamp(Math.round(cropWidth / ratio), 1, height);
  }
  const source: Rectangle = {
    left: Math.round(clamp(centreX - cropWidth / 2, 0, width - cropWidth)),
    top: Math.round(clamp(centreY - cropHeight / 2, 0, height - cropHeight)),
    width: cropWidth,
    height: cropHeight,
  };
  return { canvasWidth: cropWidth, canvasHeight: cropHeight, source, destination: { left: 0, top: 0, width: cropWidth, height: cropHeight } };
}

/** The subject's box plus the margin, grown along one side to `ratio` when given. */
function cropAroundSubject(box: Rectangle, marginPercent: number, ratio: number | undefined): Rectangle {
  const marginX = (box.width * marginPercent) / 100;
  const marginY = (box.height * marginPercent) / 100;
  const region = { left: box.left - marginX, top: box.top - marginY, width: box.width + 2 * marginX, height: box.height + 2 * marginY };
  if (ratio === undefined) return region;
  if (region.width / region.height < ratio) {
    const grown = region.height * ratio;
    return { ...region, left: box.left + box.width / 2 - grown / 2, width: grown };
  }
  const grown = region.width / ratio;
  return { ...region, top: box.top + box.height / 2 - grown / 2, height: grown };
}

/** The largest window of the image at `ratio`, centred on the subject as far as the image allows. */
function smartCrop(box: Rectangle, image: Rectangle, ratio: number): Rectangle {
  const { width, height } = image;
  if (width / height > ratio) {
    const cropWidth = height * ratio;
    return { left: clamp(box.left + box.width / 2 - cropWidth / 2, 0, width - cropWidth), top: 0, width: cropWidth, height };
  }
  const cropHeight = width / ratio;
  return { left: 0, top: clamp(box.top + box.height / 2 - cropHeight / 2, 0, height - cropHeight), width, height: cropHeight };
}

/** The subject's box alone, scaled to `scalePercent` of the canvas (0: as it is) and placed at `position` (default: centre). */
function placeSubject(box: Rectangle, canvas: Size, scalePercent: number, position: Point | undefined): Layout {
  const scale =
    scalePercent > 0 ? Math.min((canvas.width * scalePercent) / 100 / box.width, (canvas.height * scalePercent) / 100 / box.height) : 1;
  const destinationWidth = Math.max(1, Math.round(box.width * scale));
  const destinationHeight = Math.max(1, Math.round(box.height * scale));
  const place = position ?? { x: 0.5, y: 0.5 };
  return {
    canvasWidth: canvas.width,
    canvasHeight: canvas.height,
    source: box,
    destination: {
      left: Math.round(place.x * (canvas.width - destinationWidth)),
      top: Math.round(place.y * (canvas.height - destinationHeight)),
      width: destinationWidth,
      height: destinationHeight,
    },
  };
}

/** The image as seen through `region`, unscaled: the part inside the image, at its place on the canvas. */
function cropImage(region: Rectangle, canvas: Size, image: Size): Layout {
  const left = Math.round(region.left);
  const top = Math.round(region.top);
  const sourceLeft = clamp(left, 0, image.width - 1);
  const sourceTop = clamp(top, 0, image.height - 1);
  const source: Rectangle = {
    left: sourceLeft,
    top: sourceTop,
    width: Math.max(1, Math.min(left + canvas.width, image.width) - sourceLeft),
    height: Math.max(1, Math.min(top + canvas.height, image.height) - sourceTop),
  };
  return {
    canvasWidth: canvas.width,
    canvasHeight: canvas.height,
    source,
    destination: { left: sourceLeft - left, top: sourceTop - top, width: source.width, height: source.height },
  };
}

function clamp(value: number, low: number, high: number): number {
  return Math.min(Math.max(value, low), Math.max(low, high));
}
