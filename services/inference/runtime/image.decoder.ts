import { createRequire } from "node:module";
import { Worker } from "node:worker_threads";
import { decode as decodeBmp } from "bmp-ts";
import sharp, { type Metadata, type OutputInfo, type Sharp } from "sharp";
import type { AcceptedFormat } from "../../common/images/image-format.sniffer.ts";
import {
  checkImageBytes,
  corruptImage,
  readBmpHeader,
  readImageHeader as readHeader,
  sniffAcceptedFormat,
  type ImageHeader,
} from "../../common/images/image-header.reader.ts";
import { imageLimitsOf as sharedImageLimitsOf, type ImageLimits as SharedImageLimits } from "../../common/images/image-limits.ts";
import { processedSize } from "../../common/images/image-size.ts";
import { inferenceConfigSpec, type InferenceConfig } from "../inference.config.ts";
import { InferenceError, inferenceErrorOf, type InferenceErrorReason } from "../domain/inference.errors.ts";

export type { ImageHeader };

/** The shared limits plus the decode threads' own. */
export interface ImageLimits extends Omit<SharedImageLimits, "unstreamedPixelsMax"> {
  /** IMAGE_UNSTREAMED_PIXELS_MAX, for BMP and HEIF (pixels). @default 50_000_000 */
  unstreamedPixelsMax?: number;
  /** IMAGE_DECODE_WORKERS (threads); the first call's value sizes the process's decode threads. @default 2 */
  decodeWorkers?: number;
  /** IMAGE_DECODE_TIME_MS_MAX (milliseconds). @default 30_000 */
  decodeTimeMsMax?: number;
  /** IMAGE_DECODE_HEAP_MB_MAX (megabytes of V8 heap per decode thread). @default 256 */
  decodeHeapMbMax?: number;
}

type ResolvedLimits = Required<ImageLimits>;

/** The decoder's limits from the inference config. */
export function imageLimitsOf(
  config: Pick<
    InferenceConfig,
    | "IMAGE_BYTES_MAX"
    | "IMAGE_PIXELS_MAX"
    | "IMAGE_UNSTREAMED_PIXELS_MAX"
    | "IMAGE_LONGEST_SIDE_STANDARD"
    | "IMAGE_LONGEST_SIDE_PRO"
    | "IMAGE_DECODE_WORKERS"
    | "IMAGE_DECODE_TIME_MS_MAX"
    | "IMAGE_DECODE_HEAP_MB_MAX"
  >,
): ResolvedLimits {
  return {
    ...sharedImageLimitsOf(config),
    decodeWorkers: config.IMAGE_DECODE_WORKERS,
    decodeTimeMsMax: config.IMAGE_DECODE_TIME_MS_MAX,
    decodeHeapMbMax: config.IMAGE_DECODE_HEAP_MB_MAX,
  };
}

function resolved(limits: ImageLimits): ResolvedLimits {
  const defaults = inferenceConfigSpec;
  return {
    bytesMax: limits.bytesMax,
    pixelsMax: limits.pixelsMax,
    unstreamedPixelsMax: limits.unstreamedPixelsMax ?? defaults.IMAGE_UNSTREAMED_PIXELS_MAX.defaultValue,
    decodeWorkers: limits.decodeWorkers ?? defaults.IMAGE_DECODE_WORKERS.defaultValue,
    decodeTimeMsMax: limits.decodeTimeMsMax ?? defaults.IMAGE_DECODE_TIME_MS_MAX.defaultValue,
    decodeHeapMbMax: limits.decodeHeapMbMax ?? defaults.IMAGE_DECODE_HEAP_MB_MAX.defaultValue,
  };
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
// sharp's prebuilt libvips has no HEVC decoder (patent licensing), only AV1. It is loaded in the
// decode threads only: loading it takes ~55 ms and decoding is synchronous WebAssembly.
type HeifImage = {
  get_width(): number;
  get_height(): number;
  is_primary(): boolean;
  free(): void;
  display(target: { data: Uint8ClampedArray; width: number; height: number }, done: (result: unknown) => void): void;
};
type LibHeif = { HeifDecoder: new () => { decode(bytes: Uint8Array): HeifImage[] }; HEAPU8: Uint8Array };
let libheif: LibHeif | undefined;
let heifDecoder: { decode(bytes: Uint8Array): HeifImage[] } | undefined;
function heif() {
  if (heifDecoder === undefined) {
    libheif = createRequire(import.meta.url)("libheif-js/wasm-bundle") as LibHeif;
    heifDecoder = new libheif.HeifDecoder();
  }
  return heifDecoder;
}

// WebAssembly memory grows to the largest image decoded and never shrinks; a decode thread whose
// libheif heap grew past this is retired after its task, so one large HEIF does not pin its
// memory for the life of the process.
const heifHeapBytesKept = 128 * 1024 * 1024;

function primaryHeifImage(bytes: Uint8Array): HeifImage {
  let images: HeifImage[];
  try {
    images = heif().decode(bytes);
  } catch (error) {
    throw corruptImage("heif", error);
  }
  const primary = images.find((image) => image.is_primary()) ?? images[0];
  if (primary === undefined) throw corruptImage("heif", new Error("no image in the HEIF container"));
  for (const image of images) if (image !== primary) image.free();
  return primary;
}

async function decodeBmpPixels(bytes: Uint8Array, width: number, height: number): Promise<Uint8Array> {
  const layout = readBmpHeader(bytes);
  // bmp-ts reads the pixels right after the palette and ignores bfOffBits; a file with a gap
  // before its pixels (allowed, and written by some editors) is closed up first.
  const source =
    layout.declaredPixelsAt > layout.pixelsAt
      ? Buffer.concat([bytes.subarray(0, layout.pixelsAt), bytes.subarray(layout.declaredPixelsAt)])
      : Buffer.from(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  let image: { data: Uint8Array; width: number; height: number; bitPP?: number };
  try {
    image = decodeBmp(source, { toRGBA: true });
  } catch (error) {
    throw corruptImage("bmp", error);
  }
  if (image.width !== width || image.height !== height || image.data.length !== width * height * 4) {
    throw corruptImage("bmp", new Error(`BMP pixel data does not match its ${width}×${height} header`));
  }
  const rgba = image.data;
  // Only 32-bit BMPs carry alpha; the decoder leaves the fourth byte of the others undefined.
  if ((image.bitPP ?? 24) < 32) for (let offset = 3; offset < rgba.length; offset += 4) rgba[offset] = 255;
  return rgba;
}

async function heifSizeHere(bytes: Uint8Array): Promise<{ width: number; height: number }> {
  const image = primaryHeifImage(bytes);
  try {
    return { width: image.get_width(), height: image.get_height() };
  } finally {
    image.free();
  }
}

/** For the decode thread: the header read where libheif may run. */
export function readImageHeaderInThread(bytes: Uint8Array, limits: ImageLimits): Promise<ImageHeader> {
  return readHeader(bytes, resolved(limits), heifSizeHere);
}

/**
 * Format and upright size from the header alone, with every limit checked; no pixel decoded.
 * The HEIF container is read by libheif on a decode thread, the reader whose size the decode uses.
 */
export async function readImageHeader(bytes: Uint8Array, limits: ImageLimits): Promise<ImageHeader> {
  const all = resolved(limits);
  return asInferenceError(() =>
    readHeader(bytes, all, async (heifBytes) => {
      const reply = await decodeThreads(all).run({ kind: "header", bytes: heifBytes, limits: all, longestSideMax: 0 }, all.decodeTimeMsMax);
      return reply.header!;
    }),
  );
}

// The shared checks throw ImageErrors; inference's callers see InferenceErrors with the same reason.
async function asInferenceError<T>(run: () => Promise<T>): Promise<T> {
  try {
    return await run();
  } catch (error) {
    throw inferenceErrorOf(error);
  }
}

/**
 * Decoded, upright (EXIF orientation applied), converted to sRGB from any embedded profile or
 * CMYK, 8 bits per channel whatever the input depth, RGBA whatever the input channels, and
 * downscaled to `longestSideMax` when larger (never rejected for size once under the pixel
 * limit). Runs on a decode thread: BMP and HEIF decode synchronously, and even sharp's output
 * needs a full pass for transparency, which on 67 MP takes longer than the event loop can wait.
 */
export async function decodeImage(bytes: Uint8Array, limits: ImageLimits, longestSideMax: number): Promise<DecodedImage> {
  const all = resolved(limits);
  // Cheap refusals (size, format, BMP and PNG headers) answer without a thread hop.
  await asInferenceError(async () => {
    const format = sniffAcceptedFormat(bytes);
    if (format !== "heif") await readHeader(bytes, all, heifSizeHere);
    else checkImageBytes(bytes, all);
  });
  const reply = await decodeThreads(all).run({ kind: "decode", bytes, limits: all, longestSideMax }, all.decodeTimeMsMax);
  return reply.image!;
}

/** For the decode thread: the whole decode, where blocking is harmless. */
export async function decodeImageInThread(bytes: Uint8Array, limits: ImageLimits, longestSideMax: number): Promise<DecodedImage> {
  const all = resolved(limits);
  const header = await readHeader(bytes, all, heifSizeHere);
  const opened = await openImage(bytes, header, all.pixelsMax);
  let input = opened.input;
  const size = processedSize(header.width, header.height, longestSideMax);
  if (size.width !== header.width || size.height !== header.height) input = input.resize({ ...size, fit: "fill" });
  const { data, info } = await srgbRgba(input, header.format);
  return {
    format: header.format,
    // A copy in an ArrayBuffer of its own, so it can be transferred between threads.
    rgba: new Uint8Array(data),
    width: info.width,
    height: info.height,
    originalWidth: header.width,
    originalHeight: header.height,
    hasTransparency: opened.hasAlphaChannel && hasTransparentPixel(data),
    hadIccProfile: opened.hadIccProfile,
    exif: opened.exif === undefined ? undefined : new Uint8Array(opened.exif),
  };
}

/** The image as a sharp pipeline, upright, plus what the output keeps from the file. */
interface OpenedImage {
  input: Sharp;
  hasAlphaChannel: boolean;
  hadIccProfile: boolean;
  exif?: Uint8Array;
}

async function openImage(bytes: Uint8Array, header: ImageHeader, pixelsMax: number): Promise<OpenedImage> {
  const raw = { width: header.width, height: header.height, channels: 4 as const };
  if (header.format === "bmp") {
    return { input: sharp(await decodeBmpPixels(bytes, header.width, header.height), { raw }), hasAlphaChannel: true, hadIccProfile: false };
  }
  if (header.format === "heif") return { input: sharp(await decodeHeifPixels(bytes, header), { raw }), hasAlphaChannel: true, hadIccProfile: false };
  const source = sharp(bytes, { limitInputPixels: pixelsMax, page: 0, failOn: "error" });
  let metadata: Metadata;
  try {
    metadata = await source.metadata();
  } catch (error) {
    throw corruptImage(header.format, error);
  }
  return { input: source.autoOrient(), hasAlphaChannel: metadata.hasAlpha, hadIccProfile: metadata.icc !== undefined, exif: metadata.exif };
}

async function decodeHeifPixels(bytes: Uint8Array, header: ImageHeader): Promise<Uint8ClampedArray> {
  const image = primaryHeifImage(bytes);
  const data = new Uint8ClampedArray(header.width * header.height * 4);
  try {
    // libheif applies the container's rotation and mirror (irot/imir) while decoding; HEIF
    // ignores EXIF orientation by specification.
    const result = await new Promise<unknown>((resolve) => image.display({ data, width: header.width, height: header.height }, resolve));
    if (!result) throw new Error("libheif could not decode the image");
  } catch (error) {
    throw corruptImage("heif", error);
  } finally {
    image.free();
  }
  return data;
}

/** sRGB, 8 bits, 4 channels, whatever the input's profile, depth and channels. */
async function srgbRgba(input: Sharp, format: AcceptedFormat): Promise<{ data: Buffer; info: OutputInfo }> {
  let decoded: { data: Buffer; info: OutputInfo };
  try {
    decoded = await input.toColourspace("srgb").ensureAlpha().raw({ depth: "uchar" }).toBuffer({ resolveWithObject: true });
  } catch (error) {
    throw corruptImage(format, error);
  }
  if (decoded.info.channels !== 4) throw new Error(`decoder produced ${decoded.info.channels} channels, expected 4`);
  return decoded;
}

function hasTransparentPixel(rgba: Uint8Array): boolean {
  for (let offset = 3; offset < rgba.length; offset += 4) if (rgba[offset]! < 255) return true;
  return false;
}

/** A decode thread's task, as posted to image-decode.thread.ts. */
export interface DecodeTask {
  kind: "header" | "decode";
  bytes: Uint8Array;
  limits: ResolvedLimits;
  longestSideMax: number;
}

export type DecodeReply =
  | { ok: true; header?: ImageHeader; image?: DecodedImage; retire: boolean }
  | { ok: false; reason: InferenceErrorReason; message: string; detail: string; retire: boolean };

/** The thread's side of one task: every failure becomes a reply, never a thrown error. */
export async function runDecodeTask(task: DecodeTask): Promise<{ reply: DecodeReply; transfer: ArrayBuffer[] }> {
  const retire = () => (libheif?.HEAPU8.byteLength ?? 0) > heifHeapBytesKept;
  try {
    if (task.kind === "header") return { reply: { ok: true, header: await readImageHeaderInThread(task.bytes, task.limits), retire: retire() }, transfer: [] };
    const image = await decodeImageInThread(task.bytes, task.limits, task.longestSideMax);
    return { reply: { ok: true, image, retire: retire() }, transfer: [image.rgba.buffer as ArrayBuffer] };
  } catch (error) {
    const failure = inferenceErrorOf(error);
    const cause = failure.cause ?? failure;
    const detail = cause instanceof Error ? (cause.stack ?? cause.message) : String(cause);
    return { reply: { ok: false, reason: failure.reason, message: failure.message, detail, retire: retire() }, transfer: [] };
  }
}

const threadScript = new URL("./image-decode.thread.ts", import.meta.url);

/** libvips threads per sharp operation, as set by `useImageThreads`; sharp's own default until then. */
let imageThreads: number | undefined;

/**
 * Sets libvips threads per sharp operation for the process (IMAGE_THREADS). sharp sets 1 each time
 * it loads on glibc Linux, and every decode thread loads it anew, so each thread sets it back once
 * loaded (workerData.imageThreads).
 */
export function useImageThreads(threads: number): void {
  imageThreads = threads;
  sharp.concurrency(threads);
}
const tsxApi = import.meta.resolve("tsx/esm/api");

interface PendingTask {
  task: DecodeTask;
  timeMsMax: number;
  resolve(reply: DecodeReply & { ok: true }): void;
  reject(error: unknown): void;
}

interface DecodeThread {
  worker: Worker;
  ready: boolean;
  task?: PendingTask;
  timer?: NodeJS.Timeout;
  /** Why the thread was stopped while busy, for the task's error. */
  stopped?: InferenceError;
  lastError?: Error;
}

/**
 * Threads that decode, each one task at a time, tasks beyond them waiting in order. A thread
 * past IMAGE_DECODE_TIME_MS_MAX is terminated, one that runs out of heap dies; either way its
 * image is refused as corrupt and a fresh thread takes its place. Idle threads do not keep the
 * process alive.
 */
class DecodeThreads {
  private readonly threads: DecodeThread[] = [];
  private readonly waiting: PendingTask[] = [];

  constructor(
    private readonly size: number,
    private readonly heapMbMax: number,
  ) {}

  get readyCount(): number {
    return this.threads.filter((thread) => thread.ready).length;
  }

  run(task: DecodeTask, timeMsMax: number): Promise<DecodeReply & { ok: true }> {
    return new Promise((resolve, reject) => {
      this.waiting.push({ task, timeMsMax, resolve, reject });
      while (this.threads.length < this.size) this.threads.push(this.spawn());
      this.dispatch();
    });
  }

  async close(): Promise<void> {
    for (const pending of this.waiting.splice(0)) pending.reject(new Error("image decode threads are closed"));
    await Promise.all(this.threads.splice(0).map((thread) => thread.worker.terminate()));
  }

  private spawn(): DecodeThread {
    // Node 20's workers do not inherit the parent's `--import tsx`; the script loads through tsx's API.
    const bootstrap = `import(${JSON.stringify(tsxApi)}).then(({ tsImport }) => tsImport(${JSON.stringify(threadScript.href)}, ${JSON.stringify(threadScript.href)}))`;
    const worker = new Worker(bootstrap, {
      eval: true,
      workerData: { imageThreads },
      resourceLimits: { maxOldGenerationSizeMb: this.heapMbMax, maxYoungGenerationSizeMb: 32, stackSizeMb: 4 },
    });
    const thread: DecodeThread = { worker, ready: false };
    worker.on("message", (message: { kind: "ready" } | { kind: "reply"; reply: DecodeReply }) => {
      if (message.kind === "ready") {
        thread.ready = true;
        this.dispatch();
        return;
      }
      const pending = this.finish(thread);
      const reply = message.reply;
      if (reply.retire) this.replace(thread);
      if (pending !== undefined && reply.ok) pending.resolve(reply);
      else if (pending !== undefined && !reply.ok) pending.reject(new InferenceError(reply.reason, reply.message, { cause: new Error(reply.detail) }));
      this.dispatch();
    });
    worker.on("error", (error) => {
      thread.lastError = error;
    });
    worker.on("exit", (code) => {
      const pending = this.finish(thread);
      const position = this.threads.indexOf(thread);
      if (position >= 0) this.threads.splice(position, 1);
      if (pending !== undefined) pending.reject(this.failureOf(thread, code));
      if (!thread.ready) {
        // A thread that never started would fail again at once: a server fault, not the image's.
        for (const waiting of this.waiting.splice(0)) waiting.reject(this.failureOf(thread, code));
        return;
      }
      if (this.waiting.length > 0) {
        while (this.threads.length < this.size) this.threads.push(this.spawn());
      }
      this.dispatch();
    });
    // After the listeners: adding a 'message' listener refs the worker's port again.
    worker.unref();
    return thread;
  }

  private failureOf(thread: DecodeThread, code: number): InferenceError {
    if (thread.stopped !== undefined) return thread.stopped;
    const error = thread.lastError;
    if (!thread.ready) {
      return new InferenceError("internal", "the image decode thread could not start", { cause: error ?? new Error(`exit code ${code}`) });
    }
    if ((error as { code?: string } | undefined)?.code === "ERR_WORKER_OUT_OF_MEMORY") {
      return new InferenceError(
        "corrupt_image",
        `decoding the image needed more than IMAGE_DECODE_HEAP_MB_MAX=${this.heapMbMax} MB of heap; the file is malformed or too complex`,
        { cause: error },
      );
    }
    return new InferenceError("corrupt_image", "the image decoder stopped on this file (corrupt file)", { cause: error ?? new Error(`exit code ${code}`) });
  }

  private finish(thread: DecodeThread): PendingTask | undefined {
    const pending = thread.task;
    thread.task = undefined;
    if (thread.timer !== undefined) clearTimeout(thread.timer);
    thread.timer = undefined;
    return pending;
  }

  /** Retires a thread (its exit is not a failure of any task) and starts another in its place. */
  private replace(thread: DecodeThread): void {
    const position = this.threads.indexOf(thread);
    if (position < 0) return;
    this.threads.splice(position, 1);
    void thread.worker.terminate();
    this.threads.push(this.spawn());
  }

  private dispatch(): void {
    for (const thread of this.threads) {
      if (!thread.ready || thread.task !== undefined) continue;
      const pending = this.waiting.shift();
      if (pending === undefined) break;
      thread.task = pending;
      thread.timer = setTimeout(() => {
        thread.stopped = new InferenceError(
          "corrupt_image",
          `decoding the image took longer than IMAGE_DECODE_TIME_MS_MAX=${pending.timeMsMax} ms; the file is malformed or too complex`,
        );
        void thread.worker.terminate();
      }, pending.timeMsMax);
      // The caller keeps its bytes (the gateway stores them after the check): copied, not moved.
      thread.worker.postMessage(pending.task);
    }
    // Threads keep the process alive only while there is work for them, starting ones included.
    for (const thread of this.threads) {
      if (thread.task !== undefined || this.waiting.length > 0) thread.worker.ref();
      else thread.worker.unref();
    }
  }
}

let threads: DecodeThreads | undefined;
function decodeThreads(limits: ResolvedLimits): DecodeThreads {
  threads ??= new DecodeThreads(limits.decodeWorkers, limits.decodeHeapMbMax);
  return threads;
}

/** How many decode threads are up and ready for work. */
export function imageDecodeThreadsReady(): number {
  return threads?.readyCount ?? 0;
}

/** Stops the decode threads (tests, shutdown); the next decode starts new ones. */
export async function closeImageDecodeThreads(): Promise<void> {
  const current = threads;
  threads = undefined;
  await current?.close();
}
