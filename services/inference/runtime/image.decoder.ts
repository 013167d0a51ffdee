import { createRequire } from "node:module";
import { decode as decodeBmp } from "bmp-ts";
import sharp, { type Metadata, type OutputInfo, type Sharp } from "sharp";
import { InferenceError } from "../domain/inference.errors.ts";
import { sniffImageFormat, type AcceptedFormat } from "../domain/image-format.sniffer.ts";
import { processedSize } from "../domain/image-size.ts";

export interface ImageLimits {
  /** IMAGE_BYTES_MAX (bytes). */
  bytesMax: number;
  /** IMAGE_PIXELS_MAX, checked on the header before any pixel is decoded (pixels). */
  pixelsMax: number;
}

export interface ImageHeader {
  format: AcceptedFormat;
  /** Upright size, after EXIF orientation. */
  width: number;
  height: number;
  pixels: number;
}

/** Upright sRGB pixels, 4 channels, 8 bits. */
export interface DecodedImage {
  format: AcceptedFormat;
  rgba: Uint8Array;
  width: number;
  height: number;
  /** Size before any downscale to the longest-side limit. */
  originalWidth: number;
  originalHeight: number;
  /** The input had an alpha channel with at least one pixel not fully opaque. */
  hasTransparency: boolean;
  hadIccProfile: boolean;
  /** Raw EXIF block ("Exif\0\0" + TIFF), when the input had one, for `keep_exif`. */
  exif?: Uint8Array;
}

// The wasm bundle embeds its binary, so nothing is read from disk or fetched at run time;
// sharp's prebuilt libvips has no HEVC decoder (patent licensing), only AV1.
type HeifImage = {
  get_width(): number;
  get_height(): number;
  is_primary(): boolean;
  free(): void;
  display(target: { data: Uint8ClampedArray; width: number; height: number }, done: (result: unknown) => void): void;
};
let heifDecoder: { decode(bytes: Uint8Array): HeifImage[] } | undefined;
function heif() {
  if (heifDecoder === undefined) {
    const libheif = createRequire(import.meta.url)("libheif-js/wasm-bundle") as { HeifDecoder: new () => typeof heifDecoder };
    heifDecoder = new libheif.HeifDecoder();
  }
  return heifDecoder!;
}

function checkBytes(bytes: Uint8Array, limits: ImageLimits): void {
  if (bytes.length > limits.bytesMax) {
    throw new InferenceError(
      "too_many_bytes",
      `the image has ${bytes.length} bytes, more than IMAGE_BYTES_MAX=${limits.bytesMax} (${(limits.bytesMax / 1024 / 1024).toFixed(0)} MB); upload a smaller or more compressed file`,
    );
  }
}

function checkPixels(width: number, height: number, limits: ImageLimits): void {
  if (width * height > limits.pixelsMax) {
    throw new InferenceError(
      "too_many_pixels",
      `the image is ${width}×${height} = ${width * height} pixels, more than IMAGE_PIXELS_MAX=${limits.pixelsMax}; downscale it before uploading`,
    );
  }
}

function sniff(bytes: Uint8Array): AcceptedFormat {
  const sniffed = sniffImageFormat(bytes);
  if (!sniffed.accepted) {
    throw new InferenceError("unsupported_format", `${sniffed.format} is not a supported image format; ${sniffed.advice}`);
  }
  return sniffed.format;
}

function corrupt(format: AcceptedFormat, error: unknown): InferenceError {
  return new InferenceError("corrupt_image", `the ${format.toUpperCase()} image could not be decoded (truncated or corrupt file)`, {
    cause: error,
  });
}

function primaryHeifImage(bytes: Uint8Array): HeifImage {
  let images: HeifImage[];
  try {
    images = heif().decode(bytes);
  } catch (error) {
    throw corrupt("heif", error);
  }
  const primary = images.find((image) => image.is_primary()) ?? images[0];
  if (primary === undefined) throw corrupt("heif", new Error("no image in the HEIF container"));
  for (const image of images) if (image !== primary) image.free();
  return primary;
}

/** BMP's size from its info header; libvips (as prebuilt for sharp) has no BMP loader. */
function bmpSize(bytes: Uint8Array): { width: number; height: number } {
  if (bytes.length < 26) throw corrupt("bmp", new Error("truncated BMP header"));
  const view = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  const headerSize = view.getUint32(14, true);
  if (headerSize === 12) return { width: view.getUint16(18, true), height: view.getUint16(20, true) };
  // A negative height means rows are stored top-down.
  return { width: Math.abs(view.getInt32(18, true)), height: Math.abs(view.getInt32(22, true)) };
}

async function decodeBmpPixels(bytes: Uint8Array, width: number, height: number): Promise<Uint8Array> {
  let image: { data: Uint8Array; width: number; height: number; bitPP?: number };
  try {
    image = decodeBmp(Buffer.from(bytes.buffer, bytes.byteOffset, bytes.byteLength), { toRGBA: true });
  } catch (error) {
    throw corrupt("bmp", error);
  }
  if (image.width !== width || image.height !== height || image.data.length < width * height * 4) {
    throw corrupt("bmp", new Error(`BMP pixel data does not match its ${width}×${height} header`));
  }
  const rgba = new Uint8Array(image.data.subarray(0, width * height * 4));
  // Only 32-bit BMPs carry alpha; the decoder leaves the fourth byte of the others undefined.
  if ((image.bitPP ?? 24) < 32) for (let offset = 3; offset < rgba.length; offset += 4) rgba[offset] = 255;
  return rgba;
}

/** Format and upright size from the header alone, with every limit checked; no pixel decoded. */
export async function readImageHeader(bytes: Uint8Array, limits: ImageLimits): Promise<ImageHeader> {
  checkBytes(bytes, limits);
  const format = sniff(bytes);
  if (format === "bmp") {
    const { width, height } = bmpSize(bytes);
    checkPixels(width, height, limits);
    return { format, width, height, pixels: width * height };
  }
  if (format === "heif") {
    const image = primaryHeifImage(bytes);
    const width = image.get_width();
    const height = image.get_height();
    image.free();
    checkPixels(width, height, limits);
    return { format, width, height, pixels: width * height };
  }
  let metadata: Metadata;
  try {
    metadata = await sharp(bytes, { limitInputPixels: false }).metadata();
  } catch (error) {
    throw corrupt(format, error);
  }
  if (format === "gif" && (metadata.pages ?? 1) > 1) {
    throw new InferenceError(
      "animated_gif",
      `animated GIFs (${metadata.pages} frames) are not supported; upload one frame as PNG, or send the animation to the video endpoint as MP4`,
    );
  }
  const rotated = (metadata.orientation ?? 1) >= 5;
  const width = rotated ? metadata.height : metadata.width;
  const height = rotated ? metadata.width : metadata.height;
  checkPixels(width, height, limits);
  return { format, width, height, pixels: width * height };
}

/**
 * Decoded, upright (EXIF orientation applied), converted to sRGB from any embedded profile or
 * CMYK, 8 bits per channel whatever the input depth, RGBA whatever the input channels, and
 * downscaled to `longestSideMax` when larger (never rejected for size once under the pixel
 * limit).
 */
export async function decodeImage(bytes: Uint8Array, limits: ImageLimits, longestSideMax: number): Promise<DecodedImage> {
  const header = await readImageHeader(bytes, limits);
  let input: Sharp;
  let hadIccProfile = false;
  let exif: Uint8Array | undefined;
  let hasAlphaChannel: boolean;
  if (header.format === "bmp") {
    const data = await decodeBmpPixels(bytes, header.width, header.height);
    input = sharp(data, { raw: { width: header.width, height: header.height, channels: 4 } });
    hasAlphaChannel = true;
  } else if (header.format === "heif") {
    const image = primaryHeifImage(bytes);
    const data = new Uint8ClampedArray(header.width * header.height * 4);
    try {
      // libheif applies the container's rotation and mirror (irot/imir) while decoding; HEIF
      // ignores EXIF orientation by specification.
      const result = await new Promise<unknown>((resolve) => image.display({ data, width: header.width, height: header.height }, resolve));
      if (!result) throw new Error("libheif could not decode the image");
    } catch (error) {
      throw corrupt("heif", error);
    } finally {
      image.free();
    }
    input = sharp(data, { raw: { width: header.width, height: header.height, channels: 4 } });
    hasAlphaChannel = true;
  } else {
    const source = sharp(bytes, { limitInputPixels: limits.pixelsMax, page: 0, failOn: "error" });
    const metadata = await source.metadata();
    hadIccProfile = metadata.icc !== undefined;
    exif = metadata.exif;
    hasAlphaChannel = metadata.hasAlpha;
    input = source.autoOrient();
  }
  const size = processedSize(header.width, header.height, longestSideMax);
  if (size.width !== header.width || size.height !== header.height) input = input.resize({ ...size, fit: "fill" });
  let decoded: { data: Buffer; info: OutputInfo };
  try {
    decoded = await input.toColourspace("srgb").ensureAlpha().raw({ depth: "uchar" }).toBuffer({ resolveWithObject: true });
  } catch (error) {
    throw corrupt(header.format, error);
  }
  const { data, info } = decoded;
  if (info.channels !== 4) throw new Error(`decoder produced ${info.channels} channels, expected 4`);
  let hasTransparency = false;
  if (hasAlphaChannel) {
    for (let offset = 3; offset < data.length; offset += 4) {
      if (data[offset]! < 255) {
        hasTransparency = true;
        break;
      }
    }
  }
  return {
    format: header.format,
    // A copy in an ArrayBuffer of its own, so it can be transferred to worker threads.
    rgba: new Uint8Array(data),
    width: info.width,
    height: info.height,
    originalWidth: header.width,
    originalHeight: header.height,
    hasTransparency,
    hadIccProfile,
    exif,
  };
}
