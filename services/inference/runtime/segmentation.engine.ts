import { availableParallelism } from "node:os";
import { join } from "node:path";
import { pino, type Logger } from "pino";
import sharp from "sharp";
import { ImageOperation, OutputFormat, OutputSize, type ImageOptions } from "../../common/gen/cutline/inference/v1/image_options_pb.ts";
import { refineThreadsOf, threadsPerSession, type InferenceConfig } from "../inference.config.ts";
import { InferenceError, inferenceErrorOf } from "../domain/inference.errors.ts";
import { modelPassesFor, qualityPassesOf, settingPasses, warmupPassesFor, type ModelPass } from "../domain/quality.plan.ts";
import { DynamicBatcher } from "../domain/request.batcher.ts";
import { layoutSubject, parseLayoutOptions, smartCropLayout } from "../domain/subject.layout.ts";
import { describeModel, type ModelDescription } from "../store/model.store.ts";
import { decodeImage, imageLimitsOf, readImageHeader, useImageThreads, type DecodedImage, type ImageLimits } from "./image.decoder.ts";
import { parseHexColour, renderOutput, type RenderedImage } from "./image.encoder.ts";
import { batcherMetrics, observeExecutionProvider, observePipeline } from "./inference.metrics.ts";
import type { MaskRefineRequest, MaskRefineResponse, MaskRefineSetup } from "./mask-refine.thread.ts";
import type { ModelSessionInfo, ModelSessionRequest, ModelSessionResponse, ModelSessionSetup } from "./model-session.thread.ts";
import { ThreadPool } from "./thread.pool.ts";
import { longestSideFor } from "../../common/images/image-size.ts";
import { outputPixelsMaxProblem } from "../../common/images/crop-options.ts";

export interface SegmentCall {
  /** Paid traffic: batched ahead of free traffic. */
  highPriority: boolean;
  /** Aborting removes the image from the queue, or drops the result once the model ran. */
  signal?: AbortSignal;
  /** The plan's longest side (pixels), capping IMAGE_LONGEST_SIDE_PRO for HD, else STANDARD; unset or 0: no plan cap. */
  longestSideMax?: number;
  /** Told as each stage of `process` ends (the last, encoding, ends with the result). Must not throw. */
  onStage?: (stage: EngineStage) => void;
}

/** The stages of `process` that end before the result: decoding, the model, the mask's refinement. */
export type EngineStage = "decoded" | "segmented" | "refined";

/** The rendered image and where its time went, so a worker can report queueing apart from work. */
export interface ProcessedImage extends RenderedImage {
  /** Time the image waited in the dynamic batcher for the model (milliseconds). */
  modelQueueWaitMs: number;
  /** The rest of `process`: decode, model run, refinement and encoding (milliseconds). */
  workMs: number;
  /** The model's own run time for this image's passes, as its session thread measured it (milliseconds; a shared batch's whole run). */
  modelRunMs: number;
}

/** One decoded video frame, RGBA, row after row. */
export interface RawFrame {
  rgba: Uint8Array;
  width: number;
  height: number;
}

export interface ImageInspection {
  format: string;
  width: number;
  height: number;
  pixels: number;
}

export interface SegmentationEngine {
  /** Resolves once the model is loaded, hash-checked and serving; rejects when it cannot serve. */
  readonly ready: Promise<void>;
  /** Resolves once the warm-up runs after `ready` are done (never rejects; pending while loading), for benchmarks that time the model. */
  readonly warm: Promise<void>;
  /** `<name>@<version>`, e.g. "isnet-medium@1.4.5". */
  readonly modelName: string;
  /** The execution provider in use once ready ("cuda", "cpu"). */
  readonly executionProvider: string | undefined;
  /** The niceness the model's threads run at once ready (INFERENCE_MODEL_NICENESS); undefined where it could not be set. */
  readonly modelNiceness: number | undefined;
  /** The batch size in use once ready (images). */
  readonly batchSizeMax: number | undefined;
  /** Images waiting for the model. */
  readonly queueDepth: number;
  /** Images the engine can hold at once (queue + running batches); bounds consumers' in-flight count. */
  readonly capacity: number;
  /** Images in the batches that can run at once (session workers × batch size, once ready). */
  readonly runningCapacity: number;
  process(image: Uint8Array, options: ImageOptions, call: SegmentCall): Promise<ProcessedImage>;
  /** Sniff and header-only limit checks, for a quote before any hold; decodes no pixel. */
  inspect(image: Uint8Array): Promise<ImageInspection>;
  /**
   * The model's raw mask for RGB bytes already at `pass.side`² (video frames, benchmarks, tests);
   * `rgb`'s buffer moves to the model thread. `pass` defaults to balanced's (`maskSize`², one pass).
   */
  segmentTensor(rgb: Uint8Array, call: SegmentCall, pass?: ModelPass): Promise<Float32Array>;
  /** Height and width of the model's input and of its masks at the default (balanced) setting (pixels), e.g. 1024. */
  readonly maskSize: number;
  /** A raw RGBA frame (video) at `side`² (default `maskSize`), RGB, resized exactly as images are. */
  modelInputOfFrame(frame: RawFrame, side?: number): Promise<Uint8Array>;
  /**
   * A frame's mask (`maskSide`², default `maskSize`) at full resolution with the same edge refinement as
   * images (IMAGE_REFINE_EDGES), on a refine thread: `frame.rgba` and `mask` move there; `subject` comes
   * back in `frame.rgba`'s place.
   */
  refineFrame(frame: RawFrame, mask: Float32Array, maskSide?: number): Promise<MaskRefineResponse>;
  close(): Promise<void>;
}

const refineScript = new URL("./mask-refine.thread.ts", import.meta.url);
const sessionScript = new URL("./model-session.thread.ts", import.meta.url);

/** Rejects option values the caller got wrong before any model time is spent on the image. */
export function validateImageOptions(options: ImageOptions): void {
  if (!(options.operation in ImageOperation)) throw new InferenceError("invalid_option", `operation ${options.operation} is unknown`);
  if (!(options.format in OutputFormat)) throw new InferenceError("invalid_option", `output format ${options.format} is unknown`);
  if (!(options.size in OutputSize)) throw new InferenceError("invalid_option", `output size ${options.size} is unknown`);
  qualityPassesOf(options.quality);
  parseHexColour(options.backgroundColor);
  const pixelsMax = outputPixelsMaxProblem(options.outputPixelsMax);
  if (pixelsMax !== undefined) throw new InferenceError("invalid_option", pixelsMax);
  parseLayoutOptions(options);
  if (options.operation === ImageOperation.SMART_CROP) {
    // The crop keeps the input's own pixels: options that make a cut-out have nothing to act on.
    if (options.format === OutputFormat.MASK) throw new InferenceError("invalid_option", "output format mask is not available for smart crop; use png, webp or jpeg");
    if (options.backgroundImage.length > 0) throw new InferenceError("invalid_option", "a background image is not available for smart crop: the crop keeps the input's background");
    if (options.subjectScalePercent > 0 || options.subjectPosition !== "") {
      throw new InferenceError("invalid_option", "subject_scale_percent and subject_position are not available for smart crop: the crop keeps the subject where it is");
    }
  }
}

/** The format of a smart crop left unspecified: JPEG, as the crop keeps the input's background and needs no alpha. */
export const SMART_CROP_DEFAULT_FORMAT = OutputFormat.JPEG;

/** How long a caller is told to wait while the model is still loading (milliseconds). */
const loadingRetryAfterMs = 5000;
/** The warm-up runs' input: every pixel mid-grey. */
const warmupPixelValue = 128;

/** Refinements of a made-up image each refine thread runs after the model's warm-up. */
const refineWarmupRounds = 4;

/**
 * A made-up photo for the refinement's warm-up: textured colours, and a soft-edged disc as the
 * model's mask, so every phase has an edge band and mixed pixels to work on.
 */
function refineWarmupRequest(): MaskRefineRequest {
  const [width, height, side] = [512, 384, 128];
  const rgba = new Uint8Array(width * height * 4);
  for (let pixel = 0; pixel < width * height; pixel++) {
    const [x, y] = [pixel % width, Math.floor(pixel / width)];
    rgba.set([(x * 3 + y) & 255, (x ^ y) & 255, (y * 5) & 255, 255], pixel * 4);
  }
  const mask = Float32Array.from({ length: side * side }, (_, index) => 1 / (1 + Math.exp(Math.hypot((index % side) - side / 2, Math.floor(index / side) - side / 2) - side / 3)));
  return { rgba, width, height, masks: [{ data: mask, side }], refine: true, useInputAlpha: false };
}

/** What the batcher gives back for an image: its views (ModelSessionResponse) and its batch's run time in the session thread (milliseconds). */
interface ModelResult {
  views: Float32Array[];
  runMs: number;
}

/** What the batcher holds for the model: RGB at `pass.side`². */
interface ModelItem {
  rgb: Uint8Array;
  pass: ModelPass;
}

/** Milliseconds spent in each named stage of one image, for the debug log. */
class StageTimer {
  readonly stages: Record<string, number> = {};
  private readonly started = performance.now();
  private last = this.started;

  mark(stage: string): void {
    const now = performance.now();
    this.stages[stage] = Math.round(now - this.last);
    this.last = now;
  }

  /** From the start to the last mark (milliseconds, unrounded). */
  get totalMs(): number {
    return this.last - this.started;
  }
}

class Engine implements SegmentationEngine {
  readonly ready: Promise<void>;
  warm: Promise<void> = new Promise(() => {});
  readonly modelName: string;
  executionProvider: string | undefined;
  batchSizeMax: number | undefined;
  modelNiceness: number | undefined;
  private batcher: DynamicBatcher<ModelItem, ModelResult> | undefined;
  private sessions: ThreadPool<ModelSessionRequest, ModelSessionResponse> | undefined;
  private readonly refiners: ThreadPool<MaskRefineRequest, MaskRefineResponse>;
  private readonly limits: ImageLimits;
  private readonly inputSize: number;
  private failure: InferenceError | undefined;
  private closing = false;

  constructor(
    private readonly config: InferenceConfig,
    private readonly model: ModelDescription,
    private readonly log: Logger,
  ) {
    this.modelName = `${model.name}@${model.version}`;
    this.inputSize = model.input.shape[2];
    this.limits = imageLimitsOf(config);
    const refineSetup: MaskRefineSetup = { threads: refineThreadsOf(config) };
    this.refiners = new ThreadPool(refineScript, config.INFERENCE_REFINE_WORKERS, () => ({ data: refineSetup }));
    this.ready = this.start();
    this.ready.catch((error: unknown) => {
      this.failure = new InferenceError("model_unavailable", `model ${this.modelName} could not be loaded`, { cause: error });
      this.log.error({ err: error, model: this.modelName }, "inference model failed to load");
    });
  }

  get queueDepth(): number {
    return this.batcher?.depth ?? 0;
  }

  get capacity(): number {
    return this.batcher?.capacity ?? this.config.INFERENCE_QUEUE_LENGTH_MAX;
  }

  get maskSize(): number {
    return this.inputSize;
  }

  get runningCapacity(): number {
    return this.config.INFERENCE_SESSION_WORKERS * (this.batchSizeMax ?? 1);
  }

  private async start(): Promise<void> {
    const started = performance.now();
    const sessions = this.startSessions();
    const info = ((await sessions.ready) as ModelSessionInfo[])[0]!;
    for (const skipped of info.skipped) {
      this.log.warn(`execution provider ${skipped.provider} cannot load (${skipped.reason}); using ${info.provider}`);
    }
    if (typeof info.niceness !== "number") this.log.warn(`the model's threads keep the service's CPU priority: ${info.niceness.unchanged}`);
    const { cache, replaced } = info.modelCache;
    if (replaced !== undefined) this.log.warn(`${replaced}; the model was edited again from its verified source`);
    if (typeof cache !== "string") this.log.warn(`the edited model is not cached (each start edits it again): ${cache.unused}`);
    this.modelNiceness = typeof info.niceness === "number" ? info.niceness : undefined;
    this.executionProvider = info.provider;
    // The gauge names both what runs and what was asked for, so an alert sees a CPU fallback.
    observeExecutionProvider(info.provider, this.config.INFERENCE_EXECUTION_PROVIDERS);
    const batchSizeMax = info.provider === "cpu" ? this.config.INFERENCE_BATCH_SIZE_MAX : this.config.INFERENCE_BATCH_SIZE_MAX_GPU;
    this.batchSizeMax = batchSizeMax;
    const batcher = new DynamicBatcher<ModelItem, ModelResult>(
      {
        batchSizeMax,
        queueDelayMsMax: this.config.INFERENCE_QUEUE_DELAY_MS_MAX,
        queueLengthMax: this.config.INFERENCE_QUEUE_LENGTH_MAX,
        concurrency: this.config.INFERENCE_SESSION_WORKERS,
      },
      async (items) => {
        const images = items.map((item) => item.rgb);
        const request = { side: items[0]!.pass.side, images, mirrored: items.map((item) => item.pass.mirrored) };
        const { views, runMs } = await sessions.run(request, images.map((image) => image.buffer as ArrayBuffer));
        return views.map((own) => ({ views: own, runMs }));
      },
      batcherMetrics,
      // One tensor per run: only images of one input side share a batch, and a mirrored image
      // takes two of its rows (the session runs its flipped copy beside it).
      { groupOf: (item) => item.pass.side, rowsOf: (item) => (item.pass.mirrored ? 2 : 1) },
    );
    this.batcher = batcher;
    await this.refiners.ready;
    this.log.info(
      {
        model: this.modelName,
        sha256: this.model.sha256,
        executionProvider: info.provider,
        batchSizeMax,
        sessionWorkers: this.config.INFERENCE_SESSION_WORKERS,
        threadsPerSession: threadsPerSession(this.config),
        modelNiceness: this.modelNiceness,
        modelCache: typeof cache === "string" ? cache : "unused",
        startMs: Math.round(performance.now() - started),
      },
      "inference model loaded",
    );
    this.warmUp(batcher, batchSizeMax);
  }

  /**
   * The warm-up runs, once serving: onnxruntime plans its memory for each new shape on its first
   * run, which the first image of each setting would otherwise pay. Holding health at NOT_SERVING
   * for them added a full-size model run or more to every start (about 2 s on a CPU); an image
   * that arrives meanwhile waits for at most the run in progress, as warm-ups go in one at a time
   * and at normal priority.
   */
  private warmUp(batcher: DynamicBatcher<ModelItem, ModelResult>, batchSizeMax: number): void {
    const servingPass: ModelPass = { side: this.inputSize, mirrored: false };
    const otherPasses = settingPasses().filter((pass) => pass.side !== servingPass.side || pass.mirrored !== servingPass.mirrored);
    const runs = this.config.INFERENCE_WARMUP_RUNS;
    const passes = runs === 0 ? [] : [...Array.from({ length: runs }, () => servingPass), ...otherPasses];
    const started = performance.now();
    const warmed = (async () => {
      // The decode threads otherwise start with the first image, which paid ~0.9 s for their boot
      // here. Handled at once: awaited only after the model's runs, a failure would go unhandled.
      const decoderStarted = runs > 0 ? this.startDecoder().catch((error: unknown) => this.closing || this.log.warn({ err: error }, "the image decode threads did not start in the warm-up; the first image starts them")) : undefined;
      for (const pass of passes) {
        const items = warmupPassesFor(pass, batchSizeMax);
        await Promise.all(items.map((item) => batcher.submit({ rgb: new Uint8Array(item.side * item.side * 3).fill(warmupPixelValue), pass: item }, { highPriority: false })));
      }
      // The refinement's loops are JavaScript, compiled to fast code only once they have run a
      // while in each refine thread and helper: the first images would otherwise pay for it.
      if (runs > 0 && this.config.IMAGE_REFINE_EDGES) {
        for (let round = 0; round < refineWarmupRounds; round++) {
          await Promise.all(Array.from({ length: this.refiners.size }, () => this.refiners.run(refineWarmupRequest(), [])));
        }
      }
      await decoderStarted;
    })();
    this.warm = warmed.then(
      () => {
        if (passes.length > 0) this.log.info({ passes: passes.length, warmUpMs: Math.round(performance.now() - started) }, "inference model warmed up");
      },
      (error: unknown) => {
        if (!this.closing) this.log.warn({ err: error }, "the model's warm-up failed; the first image of each setting pays for it");
      },
    );
  }

  /** Starts the decode threads by decoding a small made-up image. */
  private async startDecoder(): Promise<void> {
    const image = await sharp({ create: { width: 16, height: 16, channels: 3, background: { r: warmupPixelValue, g: warmupPixelValue, b: warmupPixelValue } } }).png().toBuffer();
    await decodeImage(image, this.limits, this.config.IMAGE_LONGEST_SIDE_STANDARD);
  }

  /** The session threads, each loading, checking and editing the model before its session starts. */
  private startSessions(): ThreadPool<ModelSessionRequest, ModelSessionResponse> {
    const setup: ModelSessionSetup = {
      model: this.model,
      modelDirectory: this.config.INFERENCE_MODEL_DIRECTORY,
      modelCacheDirectory: this.config.INFERENCE_MODEL_CACHE_DIRECTORY ?? join(this.config.CUTLINE_DATA_DIR, "model-cache"),
      executionProviders: this.config.INFERENCE_EXECUTION_PROVIDERS,
      threads: threadsPerSession(this.config),
      niceness: this.config.INFERENCE_MODEL_NICENESS,
      inputName: this.model.input.name,
      outputName: this.model.output.name,
      mean: this.model.input.normalisation.mean,
      std: this.model.input.normalisation.std,
    };
    this.sessions = new ThreadPool(
      sessionScript,
      this.config.INFERENCE_SESSION_WORKERS,
      () => ({ data: setup }),
      (error) => this.log.error({ err: error }, "inference session worker died; starting a new one"),
    );
    return this.sessions;
  }

  private available(): DynamicBatcher<ModelItem, ModelResult> {
    if (this.failure !== undefined) throw this.failure;
    if (this.batcher === undefined) {
      throw new InferenceError("model_unavailable", `model ${this.modelName} is still loading; retry in a few seconds`, {
        retryAfterMs: loadingRetryAfterMs,
      });
    }
    return this.batcher;
  }

  async inspect(image: Uint8Array): Promise<ImageInspection> {
    const header = await readImageHeader(image, this.limits);
    return { format: header.format, width: header.width, height: header.height, pixels: header.pixels };
  }

  async segmentTensor(rgb: Uint8Array, call: SegmentCall, pass: ModelPass = { side: this.inputSize, mirrored: false }): Promise<Float32Array> {
    if (rgb.length !== pass.side * pass.side * 3) throw new InferenceError("invalid_option", `the model input has ${rgb.length} bytes, not ${pass.side}² RGB`);
    return meanOfViews((await this.available().submit({ rgb, pass }, call)).views);
  }

  async process(image: Uint8Array, options: ImageOptions, call: SegmentCall): Promise<ProcessedImage> {
    const timer = new StageTimer();
    let modelQueueWaitMs = 0;
    try {
      const batcher = this.available();
      validateImageOptions(options);
      // The plan's side (sent by the gateway) applies, under IMAGE_LONGEST_SIDE_PRO; without one, the size preset's.
      const longestSideMax = longestSideFor(
        options.size === OutputSize.HD,
        { standard: this.config.IMAGE_LONGEST_SIDE_STANDARD, pro: this.config.IMAGE_LONGEST_SIDE_PRO },
        call.longestSideMax ?? 0,
      );
      const decoded = await decodeImage(image, this.limits, longestSideMax);
      timer.mark("decodeMs");
      call.onStage?.("decoded");
      throwIfAborted(call.signal);
      const passes = modelPassesFor(options.quality, this.outputLongestSide(decoded, options));
      const modelInputs = await Promise.all(passes.map((pass) => this.modelInputOfFrame(decoded, pass.side)));
      timer.mark("prepareMs");
      // A setting's passes go to the batcher together; the image's queue wait is until the first starts.
      const waits: number[] = [];
      const results = await Promise.all(
        passes.map((pass, index) => batcher.submit({ rgb: modelInputs[index]!, pass }, { ...call, onDequeued: (waitMs) => waits.push(waitMs) })),
      );
      const modelRunMs = results.reduce((total, result) => total + result.runMs, 0);
      modelQueueWaitMs = Math.min(...waits);
      timer.mark("queueAndModelMs");
      call.onStage?.("segmented");
      throwIfAborted(call.signal);
      const smartCrop = options.operation === ImageOperation.SMART_CROP;
      const refined = await this.refine(
        decoded,
        results.flatMap((result, index) => result.views.map((data) => ({ data, side: passes[index]!.side }))),
        smartCrop,
      );
      timer.mark("refineMs");
      call.onStage?.("refined");
      const rendered = smartCrop ? await this.renderSmartCrop(decoded, refined, options, longestSideMax) : await this.render(decoded, refined, options, longestSideMax);
      timer.mark("encodeMs");
      observePipeline(timer.totalMs);
      this.log.debug({ width: decoded.width, height: decoded.height, passes, modelQueueWaitMs: Math.round(modelQueueWaitMs), ...timer.stages }, "image processed");
      return { ...rendered, modelQueueWaitMs, workMs: Math.max(0, timer.totalMs - modelQueueWaitMs), modelRunMs };
    } catch (error) {
      throw inferenceErrorOf(error);
    }
  }

  /**
   * The longest side of a downscaled output (preview or output_pixels_max), from the whole image's
   * scale: the layout (crop, padding) is known only after the mask. Undefined for a full-size output.
   */
  private outputLongestSide(decoded: DecodedImage, options: ImageOptions): number | undefined {
    const budgets = [options.size === OutputSize.PREVIEW ? this.config.IMAGE_PREVIEW_PIXELS_MAX : 0, options.outputPixelsMax].filter((budget) => budget > 0);
    if (budgets.length === 0) return undefined;
    const scale = Math.min(1, Math.sqrt(Math.min(...budgets) / (decoded.width * decoded.height)));
    return Math.ceil(Math.max(decoded.width, decoded.height) * scale);
  }

  async modelInputOfFrame(frame: RawFrame, side = this.inputSize): Promise<Uint8Array> {
    const resized = await sharp(frame.rgba, { raw: { width: frame.width, height: frame.height, channels: 4 } })
      .removeAlpha()
      // sharp's default kernel, not bilinear: bilinear saves ~15 ms per image but lowered the
      // model's IoU on the eval set (0.8961 against 0.8989). Shrinking is Lanczos-3; enlarging is
      // libvips' bicubic interpolator whatever the kernel (lanczos3, cubic, mitchell: same bytes).
      .resize({ width: side, height: side, fit: "fill" })
      .raw()
      .toBuffer();
    return new Uint8Array(resized);
  }

  /**
   * The mask at full resolution and the cut-out's colours, on a refine thread (the buffers move
   * there). With `alphaOnly` (Smart Crop) the colours come back untouched.
   */
  private refine(decoded: DecodedImage, masks: MaskRefineRequest["masks"], alphaOnly: boolean): Promise<MaskRefineResponse> {
    return this.refiners.run(
      {
        rgba: decoded.rgba,
        width: decoded.width,
        height: decoded.height,
        masks,
        refine: this.config.IMAGE_REFINE_EDGES,
        useInputAlpha: decoded.hasTransparency,
        alphaOnly,
      },
      [decoded.rgba.buffer as ArrayBuffer, ...masks.map((mask) => mask.data.buffer as ArrayBuffer)],
    );
  }

  async refineFrame(frame: RawFrame, mask: Float32Array, maskSide = this.inputSize): Promise<MaskRefineResponse> {
    this.available();
    return this.refiners.run(
      { rgba: frame.rgba, width: frame.width, height: frame.height, masks: [{ data: mask, side: maskSide }], refine: this.config.IMAGE_REFINE_EDGES, useInputAlpha: false },
      [frame.rgba.buffer as ArrayBuffer, mask.buffer as ArrayBuffer],
    );
  }

  private async render(decoded: DecodedImage, refined: MaskRefineResponse, options: ImageOptions, longestSideMax: number): Promise<RenderedImage> {
    const layout = layoutSubject(refined.alpha, decoded.width, decoded.height, {
      cropToSubject: options.cropToSubject,
      cropMarginPercent: options.cropMarginPercent,
      aspectRatio: options.aspectRatio,
      subjectScalePercent: options.subjectScalePercent,
      subjectPosition: options.subjectPosition,
    });
    return renderOutput({
      subject: refined.subject,
      width: decoded.width,
      height: decoded.height,
      layout,
      options,
      previewPixelsMax: this.config.IMAGE_PREVIEW_PIXELS_MAX,
      longestSideMax,
      hadIccProfile: decoded.hadIccProfile,
      exif: decoded.exif,
      limits: this.limits,
    });
  }

  /** The original pixels inside the subject's crop window: background kept, no alpha unless the input had transparency. */
  private async renderSmartCrop(decoded: DecodedImage, refined: MaskRefineResponse, options: ImageOptions, longestSideMax: number): Promise<RenderedImage> {
    const layout = smartCropLayout(refined.alpha, decoded.width, decoded.height, { cropMarginPercent: options.cropMarginPercent, aspectRatio: options.aspectRatio });
    const format = options.format === OutputFormat.UNSPECIFIED ? SMART_CROP_DEFAULT_FORMAT : options.format;
    return renderOutput({
      subject: refined.subject,
      width: decoded.width,
      height: decoded.height,
      layout,
      options: { ...options, format },
      previewPixelsMax: this.config.IMAGE_PREVIEW_PIXELS_MAX,
      longestSideMax,
      hadIccProfile: decoded.hadIccProfile,
      exif: decoded.exif,
      limits: this.limits,
      opaque: !decoded.hasTransparency,
    });
  }

  async close(): Promise<void> {
    this.closing = true;
    this.batcher?.close();
    await Promise.allSettled([this.ready]);
    await Promise.all([this.sessions?.close(), this.refiners.close()]);
  }
}

/** One mask from an image's views (a mirrored pass's two), their mean written over the first. */
function meanOfViews(views: Float32Array[]): Float32Array {
  const [mean, ...others] = views as [Float32Array, ...Float32Array[]];
  if (others.length === 0) return mean;
  const share = 1 / views.length;
  for (let pixel = 0; pixel < mean.length; pixel++) {
    let total = mean[pixel]!;
    for (const other of others) total += other[pixel]!;
    mean[pixel] = total * share;
  }
  return mean;
}

function throwIfAborted(signal: AbortSignal | undefined): void {
  if (signal?.aborted) throw new InferenceError("cancelled", "the request was cancelled");
}

/**
 * Starts loading the configured model and returns at once; `ready` settles when the engine can
 * serve (health stays NOT_SERVING until then). Errors of `process` are InferenceErrors.
 */
export async function createSegmentationEngine(config: InferenceConfig, log?: Logger): Promise<SegmentationEngine> {
  // Process-wide: every sharp operation of this process, whichever engine set it last.
  useImageThreads(config.IMAGE_THREADS > 0 ? config.IMAGE_THREADS : availableParallelism());
  const model = await describeModel(config.INFERENCE_MODEL);
  return new Engine(config, model, log ?? pino({ level: "silent" }));
}
