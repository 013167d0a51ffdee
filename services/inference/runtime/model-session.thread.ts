// One onnxruntime session in its own thread: `session.run` is synchronous native work that
// would otherwise stall the event loop for seconds per batch. The thread also reads, verifies
// and edits the model itself: at start that work (seconds on a CPU) overlaps the process's own
// start on the main thread instead of waiting for it, and 88 MB never cross between threads.
import { createHash } from "node:crypto";
import { readFileSync } from "node:fs";
import { getPriority, setPriority } from "node:os";
import { parentPort, workerData } from "node:worker_threads";
import ort from "onnxruntime-node";
import { editSegmentationModel } from "../domain/onnx-graph.editor.ts";
import { loadEditedModel, type EditedModel, type ModelDescription } from "../store/model.store.ts";
import { serveThread } from "./thread.pool.ts";

export interface ModelSessionSetup {
  model: ModelDescription;
  /** INFERENCE_MODEL_DIRECTORY: where the model's bytes are, instead of its npm package. */
  modelDirectory: string | undefined;
  /** INFERENCE_MODEL_CACHE_DIRECTORY (resolved): where the edited model is kept between starts. */
  modelCacheDirectory: string;
  executionProviders: string[];
  threads: number;
  /** INFERENCE_MODEL_NICENESS: this thread's and onnxruntime's threads' niceness (0: unchanged). */
  niceness: number;
  inputName: string;
  outputName: string;
  mean: readonly number[];
  std: readonly number[];
}

export interface ModelSessionInfo {
  provider: string;
  /** Providers tried before `provider` and why each failed to load. */
  skipped: { provider: string; reason: string }[];
  /** The niceness the model's threads run at, or why it could not be set. */
  niceness: number | { unchanged: string };
  /** Whether the edited model came from the cache, and why a cached one was replaced. */
  modelCache: Pick<EditedModel, "cache" | "replaced">;
}

/**
 * RGB images, `side`² × 3 bytes each, interleaved. A `mirrored` image also runs left–right
 * flipped in the same batch (on a GPU the second pass rides along), and the flipped run's mask,
 * flipped back, is its second view (test-time augmentation).
 */
export interface ModelSessionRequest {
  side: number;
  images: Uint8Array[];
  mirrored: boolean[];
}

/** Each image's views: `side`² masks, values 0–1, the plain run's first and, for a mirrored image, the flipped run's. */
export interface ModelSessionResponse {
  views: Float32Array[][];
  runMs: number;
}

const setup = workerData as ModelSessionSetup;
let session: ort.InferenceSession | undefined;

/**
 * Lowers this thread's CPU priority before the session exists, so onnxruntime's intra-op threads,
 * created by it at load and running every batch beside it, inherit the niceness. On Linux the nice
 * value is a per-thread attribute (setpriority(2), "Bugs"), and who = 0 names the calling thread;
 * elsewhere it is per process and would slow the whole service, so nothing changes there.
 */
function lowerPriority(niceness: number): ModelSessionInfo["niceness"] {
  if (niceness === 0) return getPriority();
  if (process.platform !== "linux") return { unchanged: `thread priorities are per process on ${process.platform}` };
  try {
    setPriority(Math.max(getPriority(), niceness));
    return getPriority();
  } catch (error) {
    return { unchanged: error instanceof Error ? error.message : String(error) };
  }
}

async function createSession(model: Uint8Array): Promise<Pick<ModelSessionInfo, "provider" | "skipped">> {
  const skipped: ModelSessionInfo["skipped"] = [];
  // onnxruntime prints a multi-line error of its own when a provider's library is missing; the
  // engine logs one clear line instead. Failures of `run` still surface as exceptions.
  if (setup.executionProviders.some((provider) => provider !== "cpu")) ort.env.logLevel = "fatal";
  for (const provider of setup.executionProviders) {
    try {
      session = await ort.InferenceSession.create(model, {
        // Listing cpu after an accelerator lets the rare unsupported node fall back instead of
        // failing the whole session.
        executionProviders: provider === "cpu" ? ["cpu"] : [provider, "cpu"],
        intraOpNumThreads: setup.threads,
        interOpNumThreads: 1,
        graphOptimizationLevel: "all",
        // Idle intra-op threads otherwise spin for a while after each run, taking the cores the
        // refinement and encoding of that very image need next.
        extra: { session: { intra_op: { allow_spinning: "0" } } },
      });
      return { provider, skipped };
    } catch (error) {
      skipped.push({ provider, reason: error instanceof Error ? error.message.split("\n")[0]! : String(error) });
    }
  }
  // Without cpu in the list the operator asked for an accelerator only (a GPU node): say so,
  // rather than let the pod run on the CPU while holding a GPU.
  const hint = setup.executionProviders.includes("cpu") ? "" : "; cpu is not in the list, so there is no fallback (check the node's GPU driver and CUDA libraries, or add cpu to run on the CPU)";
  throw new Error(
    `no execution provider of INFERENCE_EXECUTION_PROVIDERS=${setup.executionProviders.join(",")} could load: ${skipped.map((skip) => `${skip.provider}: ${skip.reason}`).join("; ")}${hint}`,
  );
}

/** Each channel's normalised value per byte: a lookup instead of a division per sample. */
const normalised = [0, 1, 2].map((channel) => Float32Array.from({ length: 256 }, (_, value) => (value - setup.mean[channel]!) / setup.std[channel]!));

/** Writes `rgb` normalised into planes at `base`, left–right flipped when `flip`. */
function normalise(input: Float32Array, base: number, rgb: Uint8Array, side: number, flip: boolean): void {
  const plane = side * side;
  const [red, green, blue] = normalised as [Float32Array, Float32Array, Float32Array];
  for (let row = 0, pixel = 0; row < side; row++) {
    for (let column = 0; column < side; column++, pixel++) {
      const offset = (row * side + (flip ? side - 1 - column : column)) * 3;
      input[base + pixel] = red[rgb[offset]!]!;
      input[base + plane + pixel] = green[rgb[offset + 1]!]!;
      input[base + 2 * plane + pixel] = blue[rgb[offset + 2]!]!;
    }
  }
}

/**
 * The input tensor's memory, kept between runs and grown to the largest batch seen: a fresh one
 * (10–25 MB at one image) is mapped and zeroed page by page as it is first written, 5–10 ms per
 * run on a small VM. Runs in this thread are one at a time, so one buffer serves them all; a
 * batch larger than `inputBytesKept` (a GPU's) gets memory of its own instead.
 */
let inputMemory = new Float32Array(0);
const inputBytesKept = 64 << 20;
function inputOfLength(length: number): Float32Array {
  if (length * Float32Array.BYTES_PER_ELEMENT > inputBytesKept) return new Float32Array(length);
  if (inputMemory.length < length) inputMemory = new Float32Array(length);
  return inputMemory.subarray(0, length);
}

async function run(request: ModelSessionRequest) {
  const { side, images, mirrored } = request;
  const plane = side * side;
  // Tensor slots: every image, then the flipped copy of each mirrored one.
  const flippedSlot = new Map<number, number>();
  images.forEach((_, image) => mirrored[image] && flippedSlot.set(image, images.length + flippedSlot.size));
  const batch = images.length + flippedSlot.size;
  const input = inputOfLength(batch * 3 * plane);
  images.forEach((rgb, image) => normalise(input, image * 3 * plane, rgb, side, false));
  for (const [image, slot] of flippedSlot) normalise(input, slot * 3 * plane, images[image]!, side, true);
  const started = performance.now();
  const outputs = await session!.run({ [setup.inputName]: new ort.Tensor("float32", input, [batch, 3, side, side]) });
  const runMs = performance.now() - started;
  const data = outputs[setup.outputName]!.data as Float32Array;
  // One plain image: its output is its mask, in memory of its own that can move on as it is.
  if (batch === 1 && data.byteOffset === 0 && data.buffer.byteLength === plane * Float32Array.BYTES_PER_ELEMENT) {
    return { response: { views: [[data as Float32Array<ArrayBuffer>]], runMs }, transfer: [data.buffer as ArrayBuffer] };
  }
  const views = images.map((_, image) => {
    const own = [data.slice(image * plane, (image + 1) * plane)];
    const slot = flippedSlot.get(image);
    if (slot === undefined) return own;
    const flipped = new Float32Array(plane);
    for (let row = 0, pixel = slot * plane; row < side; row++) {
      for (let column = side - 1; column >= 0; column--, pixel++) flipped[row * side + column] = data[pixel]!;
    }
    return [...own, flipped];
  });
  return { response: { views, runMs }, transfer: views.flat().map((mask) => mask.buffer as ArrayBuffer) };
}

await serveThread<ModelSessionRequest, ModelSessionResponse>(
  parentPort!,
  async () => {
    const niceness = lowerPriority(setup.niceness);
    // A cached edit is reused only by the same editor code keeping the same outputs.
    const editKey = createHash("sha256").update(readFileSync(new URL("../domain/onnx-graph.editor.ts", import.meta.url))).update(setup.outputName).digest("hex");
    const edited = await loadEditedModel(setup.model, { directory: setup.modelDirectory, cacheDirectory: setup.modelCacheDirectory }, editKey, (bytes) =>
      editSegmentationModel(bytes, [setup.outputName]),
    );
    return { ...(await createSession(edited.bytes)), niceness, modelCache: { cache: edited.cache, replaced: edited.replaced } };
  },
  run,
);
