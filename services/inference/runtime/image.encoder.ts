import sharp, { type OverlayOptions, type Sharp } from "sharp";
import { OutputFormat, OutputSize, type ImageOptions } from "../../common/gen/cutline/inference/v1/image_options_pb.ts";
import { insertExifIntoJpeg, insertExifIntoPng, insertExifIntoWebp } from "../domain/exif.writer.ts";
import { InferenceError } from "../domain/inference.errors.ts";
import type { Layout } from "../domain/subject.layout.ts";
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
}

export interface RenderedImage {
  image: Uint8Array;
  contentType: string;
  width: number;
  height: number;
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

/** Output canvas size after the size preset and the longest-side cap. */
export function outputScale(layout: Layout, size: OutputSize, previewPixelsMax: number, longestSideMax: number): number {
  let scale = Math.min(1, longestSideMax / Math.max(layout.canvasWidth, layout.canvasHeight));
  if (size === OutputSize.PREVIEW) {
    const pixels = layout.canvasWidth * layout.canvasHeight * scale * scale;
    if (pixels > previewPixelsMax) scale *= Math.sqrt(previewPixelsMax / pixels);
  }
  return scale;
}

/** Places the subject on its canvas, applies the background, and encodes. */
export async function renderOutput(input: RenderInput): Promise<RenderedImage> {
  const { layout, options } = input;
  const background = parseHexColour(options.backgroundColor);
  const scale = outputScale(layout, options.size, input.previewPixelsMax, input.longestSideMax);
  // Floor, so a preview never exceeds its pixel budget by a rounding.
  const canvasWidth = Math.max(1, Math.floor(layout.canvasWidth * scale + 1e-6));
  const canvasHeight = Math.max(1, Math.floor(layout.canvasHeight * scale + 1e-6));
  const destinationLeft = Math.round(layout.destination.left * scale);
  const destinationTop = Math.round(layout.destination.top * scale);
  const destinationWidth = Math.max(1, Math.round(layout.destination.width * scale));
  const destinationHeight = Math.max(1, Math.round(layout.destination.height * scale));

  const raw = { width: input.width, height: input.height, channels: 4 as const };
  const wholeImage = layout.source.left === 0 && layout.source.top === 0 && layout.source.width === input.width && layout.source.height === input.height;
  const resized = destinationWidth !== layout.source.width || destinationHeight !== layout.source.height;
  let placed: { data: Buffer; info: { width: number; height: number } };
  if (wholeImage && !resized) {
    // The common case (no crop, no scaling) skips a copy of the whole image through libvips.
    placed = { data: Buffer.from(input.subject.buffer, input.subject.byteOffset, input.subject.byteLength), info: { width: input.width, height: input.height } };
  } else {
    let subject = sharp(input.subject, { raw }).extract(layout.source);
    if (resized) subject = subject.resize({ width: destinationWidth, height: destinationHeight, fit: "fill" });
    placed = await subject.raw().toBuffer({ resolveWithObject: true });
  }

  const isIdentity =
    destinationLeft === 0 && destinationTop === 0 && placed.info.width === canvasWidth && placed.info.height === canvasHeight;
  let canvas: Sharp;
  if (isIdentity) {
    canvas = sharp(placed.data, { raw: { width: canvasWidth, height: canvasHeight, channels: 4 } });
  } else {
    // Only the visible part: after rounding a destination may reach past the canvas.
    const clipped = await clipToCanvas(placed, destinationLeft, destinationTop, canvasWidth, canvasHeight);
    canvas = sharp({ create: { width: canvasWidth, height: canvasHeight, channels: 4, background: { r: 0, g: 0, b: 0, alpha: 0 } } });
    if (clipped !== undefined) canvas = canvas.composite([clipped]);
    canvas = sharp(await canvas.raw().toBuffer(), { raw: { width: canvasWidth, height: canvasHeight, channels: 4 } });
  }

  if (options.format === OutputFormat.MASK) {
    const mask = await canvas.extractChannel(3).png().toBuffer();
    return { image: new Uint8Array(mask), contentType: "image/png", width: canvasWidth, height: canvasHeight };
  }

  if (options.backgroundImage.length > 0) {
    const backdrop = await decodeImage(options.backgroundImage, input.limits, Math.max(canvasWidth, canvasHeight) * 2);
    const subjectLayer = await canvas.png({ compressionLevel: 0 }).toBuffer();
    const composed = await sharp(backdrop.rgba, { raw: { width: backdrop.width, height: backdrop.height, channels: 4 } })
      .resize({ width: canvasWidth, height: canvasHeight, fit: "cover" })
      .composite([{ input: subjectLayer }])
      .raw()
      .toBuffer();
    canvas = sharp(composed, { raw: { width: canvasWidth, height: canvasHeight, channels: 4 } });
  }

  const solid = options.format === OutputFormat.JPEG ? (background ?? { r: 255, g: 255, b: 255 }) : background;
  if (solid !== undefined) canvas = canvas.flatten({ background: solid });
  if (input.hadIccProfile) canvas = canvas.withIccProfile("srgb");

  let encoded: Uint8Array;
  let contentType: string;
  switch (options.format) {
    case OutputFormat.JPEG:
      encoded = await canvas.jpeg({ quality: 90, chromaSubsampling: "4:4:4" }).toBuffer();
      contentType = "image/jpeg";
      if (options.keepExif && input.exif !== undefined) encoded = insertExifIntoJpeg(encoded, input.exif);
      break;
    case OutputFormat.WEBP:
      encoded = await canvas.webp({ quality: 90, alphaQuality: 100 }).toBuffer();
      contentType = "image/webp";
      if (options.keepExif && input.exif !== undefined) encoded = insertExifIntoWebp(encoded, input.exif, canvasWidth, canvasHeight);
      break;
    case OutputFormat.PNG:
    case OutputFormat.UNSPECIFIED:
      encoded = await canvas.png({ compressionLevel: 6 }).toBuffer();
      contentType = "image/png";
      if (options.keepExif && input.exif !== undefined) encoded = insertExifIntoPng(encoded, input.exif);
      break;
    default:
      throw new InferenceError("invalid_option", `output format ${String(options.format)} is not one of PNG, WEBP, JPEG, MASK`);
  }
  return { image: new Uint8Array(encoded.buffer, encoded.byteOffset, encoded.byteLength), contentType, width: canvasWidth, height: canvasHeight };
}

async function clipToCanvas(
  placed: { data: Buffer; info: { width: number; height: number } },
  left: number,
  top: number,
  canvasWidth: number,
  canvasHeight: number,
): Promise<OverlayOptions | undefined> {
  const visibleLeft = Math.max(0, left);
  const visibleTop = Math.max(0, top);
  const visibleRight = Math.min(canvasWidth, left + placed.info.width);
  const visibleBottom = Math.min(canvasHeight, top + placed.info.height);
  if (visibleRight <= visibleLeft || visibleBottom <= visibleTop) return undefined;
  const raw = { width: placed.info.width, height: placed.info.height, channels: 4 as const };
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
  return { input: data, raw: { width, height, channels: 4 }, left: visibleLeft, top: visibleTop };
}
