// Header checks that need no decoder: a file's declared size must agree with the bytes it
// carries. A 1 KB BMP that declares 10000×10000 pixels cannot hold them; refusing it here, before
// any decoder allocates 400 MB for its pixels, also keeps it from being priced as 100 MP.
import sharp, { type Metadata } from "sharp";
import { sniffImageFormat, type AcceptedFormat } from "./image-format.sniffer.ts";
import type { ImageLimits } from "./image-limits.ts";
import { ImageError } from "./image.errors.ts";

export interface BmpHeader {
  width: number;
  height: number;
  bitsPerPixel: number;
  /** 0 uncompressed, 1 RLE8, 2 RLE4, 3 bit fields, 6 alpha bit fields. */
  compression: number;
  /** Rows stored top-down (negative height in the header). */
  topDown: boolean;
  /** Where the BMP decoder starts reading pixels: right after header, masks and palette. */
  pixelsAt: number;
  /** Where the file header says the pixels are (bfOffBits). */
  declaredPixelsAt: number;
}

// Header sizes bmp-ts reads: BITMAPINFOHEADER and its V2 to V5 successors.
const infoHeaderSizes = new Set([40, 52, 56, 108, 124]);
const bitDepthsByCompression: Record<number, readonly number[]> = {
  0: [1, 4, 8, 16, 24, 32],
  1: [8],
  2: [4],
  3: [16, 32],
  6: [16, 32],
};
// An RLE pair of 2 bytes expands to at most 255 pixels. Files that skip most of the picture with
// delta escapes could claim more, but no encoder writes them and no honest image needs them.
const rlePixelsPerByteMax = 127.5;
// Deflate emits at most 258 bytes per 2 bits (a length-258 match): 1032 bytes out per byte in.
const deflateRatioMax = 1032;

function invalid(format: string, message: string): ImageError {
  return new ImageError("corrupt_image", `the ${format} image is invalid: ${message}`);
}

/**
 * The BMP's size and layout from its headers, refused as corrupt when a field is out of range or
 * the file is shorter than the pixels its header declares.
 */
export function readBmpHeader(bytes: Uint8Array): BmpHeader {
  if (bytes.length < 54) throw invalid("BMP", `the file has ${bytes.length} bytes, fewer than the 54 of its headers (truncated)`);
  const view = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  const declaredPixelsAt = view.getUint32(10, true);
  const headerSize = view.getUint32(14, true);
  if (!infoHeaderSizes.has(headerSize)) {
    throw new ImageError(
      "unsupported_format",
      `BMP with a ${headerSize}-byte info header (OS/2 or unknown variant) is not supported; convert it to PNG and upload again`,
    );
  }
  const width = view.getInt32(18, true);
  const storedHeight = view.getInt32(22, true);
  const bitsPerPixel = view.getUint16(28, true);
  const compression = view.getUint32(30, true);
  const coloursUsed = view.getUint32(46, true);
  if (width <= 0 || storedHeight === 0 || storedHeight === -0x80000000) {
    throw invalid("BMP", `its header declares ${width}×${storedHeight} pixels`);
  }
  const allowedDepths = bitDepthsByCompression[compression];
  if (allowedDepths === undefined) {
    throw new ImageError("unsupported_format", `BMP compression ${compression} (embedded JPEG/PNG or CMYK) is not supported; convert it to PNG and upload again`);
  }
  if (!allowedDepths.includes(bitsPerPixel)) throw invalid("BMP", `${bitsPerPixel} bits per pixel do not go with compression ${compression}`);
  const paletteEntriesMax = 2 ** Math.min(bitsPerPixel, 8);
  if (coloursUsed > paletteEntriesMax) throw invalid("BMP", `its palette claims ${coloursUsed} colours, more than ${paletteEntriesMax}`);
  const height = Math.abs(storedHeight);

  // The decoder reads the masks and palette right after the info header, then the pixels.
  let pixelsAt = 14 + 40;
  if (headerSize > 40 || compression === 3 || compression === 6) pixelsAt += 12;
  if (headerSize > 52 || compression === 6) pixelsAt += 4;
  pixelsAt = Math.max(pixelsAt, 14 + headerSize);
  if (bitsPerPixel <= 8 || coloursUsed > 0) pixelsAt += 4 * (coloursUsed || 2 ** bitsPerPixel);
  const start = Math.max(pixelsAt, declaredPixelsAt);
  if (start >= bytes.length) throw invalid("BMP", `its pixels would start at byte ${start}, past the end of the ${bytes.length}-byte file (truncated)`);
  const available = bytes.length - start;

  if (compression === 1 || compression === 2) {
    if (width * height > available * rlePixelsPerByteMax) {
      throw invalid(
        "BMP",
        `its header declares ${width}×${height} pixels, but ${available} bytes of run-length data hold at most ${Math.floor(available * rlePixelsPerByteMax)} (truncated)`,
      );
    }
  } else {
    const stride = Math.ceil((width * bitsPerPixel) / 32) * 4;
    const needed = stride * (height - 1) + Math.ceil((width * bitsPerPixel) / 8);
    if (needed > available) {
      throw invalid("BMP", `its header declares ${width}×${height} pixels at ${bitsPerPixel} bits, which need ${needed} bytes, but the file has ${available} (truncated)`);
    }
  }
  return { width, height, bitsPerPixel, compression, topDown: storedHeight < 0, pixelsAt, declaredPixelsAt };
}

const pngChannels: Record<number, number> = { 0: 1, 2: 3, 3: 1, 4: 2, 6: 4 };

/**
 * Refuses a PNG whose IDAT chunks are too short to inflate to the rows its IHDR declares, even
 * at deflate's best ratio: it is truncated, or a header edited to claim a larger picture.
 * Decoders would stop at the missing data anyway, but only after the upload was priced by its
 * header. Other problems are left to the decoder, which reports them as corrupt.
 */
export function checkPngDataLength(bytes: Uint8Array): void {
  if (bytes.length < 33) throw invalid("PNG", "the file ends inside its header (truncated)");
  const view = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  const width = view.getUint32(16, false);
  const height = view.getUint32(20, false);
  const bitDepth = bytes[24]!;
  const channels = pngChannels[bytes[25]!];
  if (channels === undefined || width === 0 || height === 0) return;
  const rawBytes = height * (1 + Math.ceil((width * channels * bitDepth) / 8));
  let compressed = 0;
  // Each chunk is at least 12 bytes, so the walk ends after bytes/12 steps at most.
  for (let offset = 8; offset + 8 <= bytes.length; ) {
    const length = view.getUint32(offset, false);
    const type = view.getUint32(offset + 4, false);
    const end = Math.min(bytes.length, offset + 8 + length);
    if (type === 0x49444154 /* IDAT */) compressed += end - (offset + 8);
    if (compressed * deflateRatioMax >= rawBytes) return;
    if (type === 0x49454e44 /* IEND */) break;
    offset = offset + 12 + length;
  }
  throw invalid(
    "PNG",
    `its header declares ${width}×${height} pixels, ${rawBytes} bytes once inflated, but its ${compressed} bytes of image data inflate to at most ${compressed * deflateRatioMax} (truncated)`,
  );
}

export interface ImageHeader {
  format: AcceptedFormat;
  /** Upright size, after EXIF orientation. */
  width: number;
  height: number;
  pixels: number;
}

/** The image's format, or unsupported_format naming what it is and what to do instead. */
export function sniffAcceptedFormat(bytes: Uint8Array): AcceptedFormat {
  const sniffed = sniffImageFormat(bytes);
  if (!sniffed.accepted) {
    throw new ImageError("unsupported_format", `${sniffed.format} is not a supported image format; ${sniffed.advice}`);
  }
  return sniffed.format;
}

/** A decoder's failure as corrupt_image; the decoder's own words go to the log only. */
export function corruptImage(format: AcceptedFormat, error: unknown): ImageError {
  return new ImageError("corrupt_image", `the ${format.toUpperCase()} image could not be decoded (truncated or corrupt file)`, { cause: error });
}

export function checkImageBytes(bytes: Uint8Array, limits: ImageLimits): void {
  if (bytes.length > limits.bytesMax) {
    throw new ImageError(
      "too_many_bytes",
      `the image has ${bytes.length} bytes, more than IMAGE_BYTES_MAX=${limits.bytesMax} (${(limits.bytesMax / 1024 / 1024).toFixed(0)} MB); upload a smaller or more compressed file`,
    );
  }
}

export function checkImagePixels(format: AcceptedFormat, width: number, height: number, limits: ImageLimits): void {
  if (width * height > limits.pixelsMax) {
    throw new ImageError(
      "too_many_pixels",
      `the image is ${width}×${height} = ${width * height} pixels, more than IMAGE_PIXELS_MAX=${limits.pixelsMax}; downscale it before uploading`,
    );
  }
  // These decoders hold the whole picture (and libheif its planes too) in memory at once.
  if ((format === "bmp" || format === "heif") && width * height > limits.unstreamedPixelsMax) {
    throw new ImageError(
      "too_many_pixels",
      `the ${format.toUpperCase()} image is ${width}×${height} = ${width * height} pixels, more than IMAGE_UNSTREAMED_PIXELS_MAX=${limits.unstreamedPixelsMax} for ${format.toUpperCase()}; downscale it or convert it to JPEG or PNG`,
    );
  }
}

/** A HEIF's upright size; the default reads libvips' header, which parses the container without decoding. */
export type HeifSizeReader = (bytes: Uint8Array) => Promise<{ width: number; height: number }>;

async function heifSizeFromSharp(bytes: Uint8Array): Promise<{ width: number; height: number }> {
  let metadata: Metadata;
  try {
    metadata = await sharp(bytes, { limitInputPixels: false }).metadata();
  } catch (error) {
    throw corruptImage("heif", error);
  }
  if (!(metadata.width > 0 && metadata.height > 0)) throw corruptImage("heif", new Error(`no size in the header: ${metadata.width}×${metadata.height}`));
  return { width: metadata.width, height: metadata.height };
}

/**
 * Format and upright size from the header alone, with every limit checked and no pixel decoded:
 * what the gateway prices and refuses before any hold, and what inference checks before any
 * decode. BMPs and PNGs whose header claims more pixels than their bytes can hold are refused.
 */
export async function readImageHeader(bytes: Uint8Array, limits: ImageLimits, heifSize: HeifSizeReader = heifSizeFromSharp): Promise<ImageHeader> {
  checkImageBytes(bytes, limits);
  const format = sniffAcceptedFormat(bytes);
  if (format === "bmp") {
    const { width, height } = readBmpHeader(bytes);
    checkImagePixels(format, width, height, limits);
    return { format, width, height, pixels: width * height };
  }
  if (format === "heif") {
    const { width, height } = await heifSize(bytes);
    checkImagePixels(format, width, height, limits);
    return { format, width, height, pixels: width * height };
  }
  let metadata: Metadata;
  try {
    metadata = await sharp(bytes, { limitInputPixels: false }).metadata();
  } catch (error) {
    throw corruptImage(format, error);
  }
  if (format === "gif" && (metadata.pages ?? 1) > 1) {
    throw new ImageError(
      "animated_gif",
      `animated GIFs (${metadata.pages} frames) are not supported; upload one frame as PNG, or send the animation to the video endpoint as MP4`,
    );
  }
  if (!(metadata.width > 0 && metadata.height > 0)) throw corruptImage(format, new Error(`no size in the header: ${metadata.width}×${metadata.height}`));
  const rotated = (metadata.orientation ?? 1) >= 5;
  const width = rotated ? metadata.height : metadata.width;
  const height = rotated ? metadata.width : metadata.height;
  checkImagePixels(format, width, height, limits);
  if (format === "png") checkPngDataLength(bytes);
  return { format, width, height, pixels: width * height };
}
