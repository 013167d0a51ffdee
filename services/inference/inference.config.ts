import { availableParallelism } from "node:os";
import { commonConfigSpec } from "../common/common.config.ts";
import { boolean, ConfigError, integer, listOf, loadConfig, oneOf, optionalText, port } from "../common/config.loader.ts";
import { imageLimitsConfigSpec } from "../common/images/image-limits.ts";
import { mediaBinariesConfigSpec } from "../common/video/ffmpeg-binaries.ts";

// Two specs: the engine's variables (`inferenceConfigSpec`, all the scripts and tests need) and the
// inference process's (`inferenceServiceConfigSpec`: those plus the common ones and PORT).

// The CPU default is batch 1: on CPU a batch of N takes N times as long as one image (measured
// by scripts/bench-inference.ts), so waiting to fill a batch only adds queue delay. On CUDA the
// engine raises the default to INFERENCE_BATCH_SIZE_MAX_GPU, where batching does pay.
/** The onnxruntime providers the engine knows: cpu runs at INFERENCE_BATCH_SIZE_MAX, cuda at INFERENCE_BATCH_SIZE_MAX_GPU. */
export const EXECUTION_PROVIDERS = ["cuda", "cpu"] as const;

export const inferenceConfigSpec = {
  ...mediaBinariesConfigSpec,
  INFERENCE_MODEL: oneOf(
    "Model to serve, from services/inference/models/*.model.json (isnet-medium: fp32 IS-Net; isnet-small: 8-bit quantised IS-Net, half the size, slower on most CPUs).",
    ["isnet-medium", "isnet-small"] as const,
    "isnet-medium",
  ),
  // The engine keeps its edited model under it (INFERENCE_MODEL_CACHE_DIRECTORY's default).
  CUTLINE_DATA_DIR: commonConfigSpec.CUTLINE_DATA_DIR,
  INFERENCE_MODEL_CACHE_DIRECTORY: optionalText(
    "Directory where the model as edited at load is kept, with its sha256, for the next start to read instead of editing again; it must belong to this user and be writable by no one else (else each start edits again); unset means model-cache under CUTLINE_DATA_DIR.",
  ),
  INFERENCE_MODEL_DIRECTORY: optionalText(
    "Directory holding the model's bytes (the chunk files named by their sha256, or one file named after the model); unset means the @imgly/background-removal-data npm package.",
  ),
  INFERENCE_EXECUTION_PROVIDERS: listOf(
    "onnxruntime execution providers in order of preference, each cuda or cpu (the ones the engine sizes batches for). A provider that cannot load is skipped with one log line; without cpu in the list there is no fallback.",
    EXECUTION_PROVIDERS,
    ["cuda", "cpu"],
  ),
  INFERENCE_SESSION_WORKERS: integer(
    "Worker threads, each with its own model session; batches run on them in parallel. 1 keeps all CPU cores on one batch.",
    1,
    { min: 1, max: 16 },
  ),
  INFERENCE_THREADS_PER_SESSION: integer(
    "onnxruntime intra-op threads per session; 0 means the machine's cores divided by INFERENCE_SESSION_WORKERS.",
    0,
    { min: 0, max: 256 },
  ),
  INFERENCE_MODEL_NICENESS: integer(
    "CPU priority of the model's threads (Linux niceness, 0–19; 0 leaves them at the process's). Above 0 the service's own thread (HTTP, gRPC, queue, health) and the decode, refine and encode threads run first when the cores are short. Only for a machine the inference process has to itself: any other process then takes the model's cores first. ffmpeg (video) runs at 10, so keep this under 10.",
    0,
    { min: 0, max: 19 },
  ),
  INFERENCE_REFINE_WORKERS: integer(
    "Worker threads for mask refinement (guided filter, foreground colours), so large images never block the event loop.",
    1,
    { min: 1, max: 16 },
  ),
  INFERENCE_REFINE_THREADS: integer(
    "Threads each refine worker splits one image's refinement across, in stripes of rows (itself and helpers beside it); 0 means the machine's cores. With one image in flight the model's cores are otherwise idle while it is refined.",
    0,
    { min: 0, max: 16 },
  ),
  INFERENCE_BATCH_SIZE_MAX: integer(
    "Most rows in one model run on CPU (images; a quality=best image is two, its mirror image beside it, and runs alone at 1). 1 because CPU throughput does not grow with the batch.",
    1,
    { min: 1, max: 64 },
  ),
  INFERENCE_BATCH_SIZE_MAX_GPU: integer("Most rows in one model run when the CUDA provider is in use (images; a quality=best image is two, its mirror image beside it).", 8, {
    min: 1,
    max: 64,
  }),
  INFERENCE_QUEUE_DELAY_MS_MAX: integer(
    "Longest time the first image of a batch waits for more images before the batch runs anyway (milliseconds).",
    5,
    { min: 0, max: 10_000 },
  ),
  INFERENCE_QUEUE_LENGTH_MAX: integer(
    "Images waiting for the model across both priority lanes (images); past it callers get queue_full with a retry hint. Each waiting image holds its decoded pixels in memory.",
    32,
    { min: 1, max: 100_000 },
  ),
  INFERENCE_WARMUP_RUNS: integer("Warm-up runs of the default setting's model shape once serving, then one of every other setting's shape, the refinement's loops and the image decode threads' start (0: none of it) (runs).", 1, { min: 0, max: 10 }),
  INFERENCE_STAGE_PROGRESS_MS_MIN: integer(
    "Least time between two progress reports of one task as its stages end (decode, model, refine), in milliseconds; a stage ending sooner is not reported, so quick images cost no extra job writes. 0 reports every stage.",
    500,
    { min: 0, max: 60_000 },
  ),
  VIDEO_CONCURRENCY: integer(
    "Video tasks one inference process runs at once (videos), taken from the video queue apart from images: images keep their own slots while videos run. Each video holds two ffmpeg processes and a window of frames.",
    1,
    { min: 1, max: 16 },
  ),
  ...imageLimitsConfigSpec,
  IMAGE_THREADS: integer(
    "libvips threads per sharp operation (resizing to the model's input, encoding); 0 means the machine's cores. sharp's own default on glibc Linux is 1, to limit memory fragmentation; with one image in flight that doubles its resize time on two cores. Set MALLOC_ARENA_MAX=2 in the environment where resident memory grows.",
    0,
    { min: 0, max: 64 },
  ),
  IMAGE_DECODE_WORKERS: integer(
    "Worker threads that decode images, so no decoder (BMP and HEIF are plain JavaScript and WebAssembly) blocks the event loop.",
    2,
    { min: 1, max: 16 },
  ),
  IMAGE_DECODE_TIME_MS_MAX: integer(
    "Longest time one image may take to decode before its worker thread is stopped and the image refused as corrupt (milliseconds).",
    30_000,
    { min: 100, max: 600_000 },
  ),
  IMAGE_DECODE_HEAP_MB_MAX: integer(
    "JavaScript heap of each decode worker thread (megabytes, V8 old generation); past it the worker is stopped and the image refused. Pixel buffers are bounded by the pixel limits instead.",
    256,
    { min: 32, max: 16_384 },
  ),
  IMAGE_PREVIEW_PIXELS_MAX: integer("Most pixels of a preview-size output (pixels).", 250_000, { min: 1024, max: 10_000_000 }),
  IMAGE_REFINE_EDGES: boolean(
    "Refine the mask at full resolution with an edge-aware guided filter and estimate foreground colours at the edges; false gives plain bilinear upscaling.",
    true,
  ),
};

export type InferenceConfig = ReturnType<typeof loadInferenceConfig>;

export function loadInferenceConfig(environment: NodeJS.ProcessEnv = process.env) {
  return loadConfig(inferenceConfigSpec, environment);
}

/** Threads per session when the config leaves it to the machine. */
export function threadsPerSession(config: InferenceConfig): number {
  if (config.INFERENCE_THREADS_PER_SESSION > 0) return config.INFERENCE_THREADS_PER_SESSION;
  return Math.max(1, Math.floor(availableParallelism() / config.INFERENCE_SESSION_WORKERS));
}

/** Threads per refine worker when the config leaves it to the machine. */
export function refineThreadsOf(config: InferenceConfig): number {
  return config.INFERENCE_REFINE_THREADS > 0 ? config.INFERENCE_REFINE_THREADS : Math.max(1, availableParallelism());
}

/** The inference process: the engine's variables plus the server's. */
export const inferenceServiceConfigSpec = {
  ...commonConfigSpec,
  PORT: port("Inference port (Connect, gRPC, gRPC-Web).", 8083),
  JOB_RETRY_DELAY_MS_MIN: integer("Delay before a task's first retry after a server fault, doubling on each later one, in milliseconds.", 1000, { min: 10, max: 600_000 }),
  JOB_RETRY_DELAY_MS_MAX: integer("Longest delay between two attempts of a task after server faults, in milliseconds.", 30_000, { min: 10, max: 3_600_000 }),
  INFERENCE_TASKS_IN_FLIGHT_MAX: integer(
    "Work-queue tasks one inference process holds at once (pulled, not yet settled), at most INFERENCE_QUEUE_LENGTH_MAX; 0 means two batches' worth (session workers × batch size × 2: 2 on CPU, 16 on one CUDA worker at batch 8). KEDA's scaling formula divides the image lag by it (k8s).",
    0,
    { min: 0, max: 100_000 },
  ),
  ...inferenceConfigSpec,
} as const;

/** The work consumer's retry limits: as many deliveries as the queue makes (JOB_RETRY_MAX + 1), with a doubling delay. */
export function consumerRetryOptionsOf(config: { JOB_RETRY_MAX: number; JOB_RETRY_DELAY_MS_MIN: number; JOB_RETRY_DELAY_MS_MAX: number }) {
  return { deliveryCountMax: config.JOB_RETRY_MAX + 1, retryDelayMs: config.JOB_RETRY_DELAY_MS_MIN, retryDelayMsMax: Math.max(config.JOB_RETRY_DELAY_MS_MIN, config.JOB_RETRY_DELAY_MS_MAX) };
}

export function loadInferenceServiceConfig(environment: NodeJS.ProcessEnv = process.env) {
  const config = loadConfig(inferenceServiceConfigSpec, environment);
  // More tasks than the engine's queue holds would be pulled only to be refused with queue_full.
  if (config.INFERENCE_TASKS_IN_FLIGHT_MAX > config.INFERENCE_QUEUE_LENGTH_MAX) {
    throw new ConfigError([
      `INFERENCE_TASKS_IN_FLIGHT_MAX=${config.INFERENCE_TASKS_IN_FLIGHT_MAX} must be at most INFERENCE_QUEUE_LENGTH_MAX=${config.INFERENCE_QUEUE_LENGTH_MAX}, the images the engine holds`,
    ]);
  }
  return config;
}

/** The consumer's in-flight cap: INFERENCE_TASKS_IN_FLIGHT_MAX, or undefined for the consumer's default (two batches' worth). */
export function tasksInFlightMaxOf(config: { INFERENCE_TASKS_IN_FLIGHT_MAX: number }): number | undefined {
  return config.INFERENCE_TASKS_IN_FLIGHT_MAX > 0 ? config.INFERENCE_TASKS_IN_FLIGHT_MAX : undefined;
}
