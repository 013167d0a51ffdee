import sharp, { type OverlayOptions, type Sharp } from "sharp";
import { OutputFormat, OutputSize, type ImageOptions } from "../../common/gen/cutline/inference/v1/image_options_pb.ts";
import { insertExifIntoJpeg, insertExifIntoPng, insertExifIntoWebp } from "../domain/exif.writer.ts";
import { InferenceError } from "../domain/inference.errors.ts";
import { boxOnCanvas, type Layout, type Rectangle } from "../domain/subject.layout.ts";
import { decodeImage, type ImageLimits } from "./image.decoder.ts";

export interface RenderInput {
  /** The cut-out at the processed image's size: foreground colours and final alpha, RGBA. */
  subject: Uint8Array;
  width: number;
  height: number;
  layout: Layout;
  options: ImageOptions;
  /** Most pixels of a preview output (IMAGE_PREVIEW_PIXELS_MAX). */
  previewPixelsMax: number;
  /** The canvas's longest side is capped here too: margins and ratios can enlarge it. */
  longestSideMax: number;
  hadIccProfile: boolean;
  exif?: Uint8Array;
  limits: ImageLimits;
  /** Every canvas pixel is opaque (a smart crop of an opaque input): encoded without an alpha channel. */
  opaque?: boolean;
}

export interface RenderedImage {
  image: Uint8Array;
  contentType: string;
  width: number;
  height: number;
  /** The subject's box in the result, in pixels; undefined when the mask found no subject. */
  foreground?: Rectangle;
}

export function parseHexColour(text: string): { r: number; g: number; b: number } | undefined {
  const trimmed = text.trim();
  if (trimmed === "") return undefined;
  const match = /^#?([0-9a-f]{3}|[0-9a-f]{6})$/i.exec(trimmed);
  if (match === null) {
    throw new InferenceError("invalid_option", `background_color "${text}" is not a hex colour like "#ffffff" or "#fff"`);
  }
  const hex = match[1]!.length === 3 ? [...match[1]!].map((digit) => digit + digit).join("") : match[1]!;
  return { r: parseInt(hex.slice(0, 2), 16), g: parseInt(hex.slice(2, 4), 16), b: parseInt(hex.slice(4, 6), 16) };
}

/**
 * Output canvas scale after the longest-side cap, then one pixel budget: the smaller of the
 * preview's (size PREVIEW) and the options' `output_pixels_max` (0: none).
 */
export function outputScale(layout: Layout, options: Pick<ImageOptions, "size" | "outputPixelsMax">, previewPixelsMax: number, longestSideMax: number): number {
  let scale = Math.min(1, longestSideMax / Math.max(layout.canvasWidth, layout.canvasHeight));
  const budgets = [options.size === OutputSize.PREVIEW ? previewPixelsMax : 0, options.outputPixelsMax].filter((budget) => budget > 0);
  if (budgets.length > 0) {
    const pixelsMax = Math.min(...budgets);
    const pixels = layout.canvasWidth * layout.canvasHeight * scale * scale;
    if (pixels > pixelsMax) scale *= Math.sqrt(pixelsMax / pixels);
  }
  return scale;
}

/** The output canvas and the subject's place on it, in output pixels. */
interface CanvasPlan {
  width: number;
  height: number;
  destination: Rectangle;
}

/** Raw RGBA pixels as sharp returns them. */
interface RawImage {
  data: Buffer;
  info: { width: number; height: number };
}

const rgbaChannels = 4 as const;
const transparent = { r: 0, g: 0, b: 0, alpha: 0 };
const white = { r: 255, g: 255, b: 255 };
/** JPEG and WebP quality (of 100). */
const lossyQuality = 90;
// Added before flooring canvas sizes: a scale meant to give a whole number of pixels may land a
// hair below it in floating point.
const floorTolerance = 1e-6;

/** Places the subject on its canvas, applies the background, and encodes. */
export async function renderOutput(input: RenderInput): Promise<RenderedImage> {
  const { layout, options } = input;
  const background = parseHexColour(options.backgroundColor);
  const plan = planCanvas(layout, outputScale(layout, options, input.previewPixelsMax, input.longestSideMax));
  let canvas = await onCanvas(await placeSubject(input, plan), plan);
  const foreground = layout.subject && boxOnCanvas(layout.subject, layout.source, plan.destination, plan);
  const placed = { width: plan.width, height: plan.height, ...(foreground ? { foreground } : {}) };
  if (options.format === OutputFormat.MASK) {
    const mask = await canvas.extractChannel(3).png().toBuffer();
    return { image: new Uint8Array(mask), contentType: "image/png", ...placed };
  }
  if (options.backgroundImage.length > 0) canvas = await overBackgroundImage(canvas, options.backgroundImage, input.limits, plan);
  const solid = options.format === OutputFormat.JPEG ? (background ?? white) : background;
  if (solid !== undefined) canvas = canvas.flatten({ background: solid });
  else if (input.opaque === true) canvas = canvas.removeAlpha();
  if (input.hadIccProfile) canvas = canvas.withIccProfile("srgb");
  const { encoded, contentType } = await encode(canvas, options, options.keepExif ? input.exif : undefined, plan);
  return { image: new Uint8Array(encoded.buffer, encoded.byteOffset, encoded.byteLength), contentType, ...placed };
}

function planCanvas(layout: Layout, scale: number): CanvasPlan {
  return {
    // Floor, so a preview or output_pixels_max never exceeds its pixel budget by a rounding.
    width: Math.max(1, Math.floor(layout.canvasWidth * scale + floorTolerance)),
    height: Math.max(1, Math.floor(layout.canvasHeight * scale + floorTolerance)),
    destination: {
      left: Math.round(layout.destination.left * scale),
      top: Math.round(layout.destination.top * scale),
      width: Math.max(1, Math.round(layout.destination.width * scale)),
      height: Math.max(1, Math.round(layout.destination.height * scale)),
    },
  };
}

/** The layout's source rectangle of the subject, at its destination size. */
async function placeSubject(input: RenderInput, plan: CanvasPlan): Promise<RawImage> {
  const { source } = input.layout;
  const { destination } = plan;
  const wholeImage = source.left === 0 && source.top === 0 && source.width === input.width && source.height === input.height;
  const resized = destination.width !== source.width || destination.height !== source.height;
  if (wholeImage && !resized) {
    // The common case (no crop, no scaling) skips a copy of the whole image through libvips.
    const data = Buffer.from(input.subject.buffer, input.subject.byteOffset, input.subject.byteLength);
    return { data, info: { width: input.width, height: input.height } };
  }
  let subject = sharp(input.subject, { raw: { width: input.width, height: input.height, channels: rgbaChannels } }).extract(source);
  if (resized) subject = subject.resize({ width: destination.width, height: destination.height, fit: "fill" });
  return subject.raw().toBuffer({ resolveWithObject: true });
}

/** The placed subject on a transparent canvas of the plan's size. */
async function onCanvas(placed: RawImage, plan: CanvasPlan): Promise<Sharp> {
  const { width, height, destination } = plan;
  const raw = { width, height, channels: rgbaChannels };
  const isIdentity = destination.left === 0 && destination.top === 0 && placed.info.width === width && placed.info.height === height;
  if (isIdentity) return sharp(placed.data, { raw });
  // Only the visible part: after rounding a destination may reach past the canvas.
  const clipped = await clipToCanvas(placed, destination, plan);
  let canvas = sharp({ create: { width, height, channels: rgbaChannels, background: transparent } });
  if (clipped !== undefined) canvas = canvas.composite([clipped]);
  return sharp(await canvas.raw().toBuffer(), { raw });
}

/** The canvas composited over the background image, which covers the canvas (cropped, not stretched). */
async function overBackgroundImage(canvas: Sharp, backgroundImage: Uint8Array, limits: ImageLimits, plan: CanvasPlan): Promise<Sharp> {
  const { width, height } = plan;
  const backdrop = await decodeImage(backgroundImage, limits, Math.max(width, height) * 2);
  const subjectLayer = await canvas.png({ compressionLevel: 0 }).toBuffer();
  const composed = await sharp(backdrop.rgba, { raw: { width: backdrop.width, height: backdrop.height, channels: rgbaChannels } })
    .resize({ width, height, fit: "cover" })
    .composite([{ input: subjectLayer }])
    .raw()
    .toBuffer();
  return sharp(composed, { raw: { width, height, channels: rgbaChannels } });
}

/** The canvas in the requested format, with `exif` inserted when given. */
async function encode(
  canvas: Sharp,
  options: ImageOptions,
  exif: Uint8Array | undefined,
  size: { width: number; height: number },
): Promise<{ encoded: Uint8Array; contentType: string }> {
  switch (options.format) {
    case OutputFormat.JPEG: {
      const encoded = await canvas.jpeg({ quality: lossyQuality, chromaSubsampling: "4:4:4" }).toBuffer();
      return { encoded: exif === undefined ? encoded : insertExifIntoJpeg(encoded, exif), contentType: "image/jpeg" };
    }
    case OutputFormat.WEBP: {
      const encoded = await canvas.webp({ quality: lossyQuality, alphaQuality: 100 }).toBuffer();
      return { encoded: exif === undefined ? encoded : insertExifIntoWebp(encoded, exif, size.width, size.height), contentType: "image/webp" };
    }
    case OutputFormat.PNG:
    case OutputFormat.UNSPECIFIED: {
      const encoded = await canvas.png({ compressionLevel: 6 }).toBuffer();
      return { encoded: exif === undefined ? encoded : insertExifIntoPng(encoded, exif), contentType: "image/png" };
    }
    default:
      throw new InferenceError("invalid_option", `output format ${String(options.format)} is not one of PNG, WEBP, JPEG, MASK`);
  }
}

/** The part of `placed` that falls on the canvas at `at`, as a composite layer; undefined when none does. */
async function clipToCanvas(placed: RawImage, at: { left: number; top: number }, canvas: { width: number; height: number }): Promise<OverlayOptions | undefined> {
  const { left, top } = at;
  const visibleLeft = Math.max(0, left);
  const visibleTop = Math.max(0, top);
  const visibleRight = Math.min(canvas.width, left + placed.info.width);
  const visibleBottom = Math.min(canvas.height, top + placed.info.height);
  if (visibleRight <= visibleLeft || visibleBottom <= visibleTop) return undefined;
  const raw = { width: placed.info.width, height: placed.info.height, channels: rgbaChannels };
  let data = placed.data;
  let width = placed.info.width;
  let height = placed.info.height;
  if (visibleLeft !== left || visibleTop !== top || visibleRight - left !== width || visibleBottom - top !== height) {
    data = await sharp(placed.data, { raw })
      .extract({ left: visibleLeft - left, top: visibleTop - top, width: visibleRight - visibleLeft, height: visibleBottom - visibleTop })
      .raw()
      .toBuffer();
    width = visibleRight - visibleLeft;
    height = visibleBottom - visibleTop;
  }
  return { input: data, raw: { width, height, channels: rgbaChannels }, left: visibleLeft, top: visibleTop };
}
