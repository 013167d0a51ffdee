// One onnxruntime session in its own thread: `session.run` is synchronous native work that
// would otherwise stall the event loop for seconds per batch.
import { parentPort, workerData } from "node:worker_threads";
import ort from "onnxruntime-node";
import { serveThread } from "./thread.pool.ts";

export interface ModelSessionSetup {
  model: Uint8Array;
  executionProviders: string[];
  threads: number;
  inputName: string;
  outputName: string;
  /** Height and width of the model input (pixels). */
  inputSize: number;
  mean: readonly number[];
  std: readonly number[];
}

export interface ModelSessionInfo {
  provider: string;
  /** Providers tried before `provider` and why each failed to load. */
  skipped: { provider: string; reason: string }[];
}

/** RGB images, `inputSize`² × 3 bytes each, interleaved. */
export interface ModelSessionRequest {
  images: Uint8Array[];
}

/** One `inputSize`² mask per image, values 0–1. */
export interface ModelSessionResponse {
  masks: Float32Array[];
  runMs: number;
}

const setup = workerData as ModelSessionSetup;
let session: ort.InferenceSession | undefined;

async function createSession(): Promise<ModelSessionInfo> {
  const skipped: ModelSessionInfo["skipped"] = [];
  // onnxruntime prints a multi-line error of its own when a provider's library is missing; the
  // engine logs one clear line instead. Failures of `run` still surface as exceptions.
  if (setup.executionProviders.some((provider) => provider !== "cpu")) ort.env.logLevel = "fatal";
  for (const provider of setup.executionProviders) {
    try {
      session = await ort.InferenceSession.create(setup.model, {
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

async function run(request: ModelSessionRequest) {
  const size = setup.inputSize;
  const plane = size * size;
  const batch = request.images.length;
  const input = new Float32Array(batch * 3 * plane);
  const [meanR, meanG, meanB] = setup.mean as [number, number, number];
  const [stdR, stdG, stdB] = setup.std as [number, number, number];
  for (let image = 0; image < batch; image++) {
    const rgb = request.images[image]!;
    const base = image * 3 * plane;
    for (let pixel = 0, offset = 0; pixel < plane; pixel++, offset += 3) {
      input[base + pixel] = (rgb[offset]! - meanR) / stdR;
      input[base + plane + pixel] = (rgb[offset + 1]! - meanG) / stdG;
      input[base + 2 * plane + pixel] = (rgb[offset + 2]! - meanB) / stdB;
    }
  }
  const started = performance.now();
  const outputs = await session!.run({ [setup.inputName]: new ort.Tensor("float32", input, [batch, 3, size, size]) });
  const runMs = performance.now() - started;
  const data = outputs[setup.outputName]!.data as Float32Array;
  const masks: Float32Array<ArrayBuffer>[] = [];
  for (let image = 0; image < batch; image++) masks.push(data.slice(image * plane, (image + 1) * plane));
  return { response: { masks, runMs }, transfer: masks.map((mask) => mask.buffer as ArrayBuffer) };
}

await serveThread<ModelSessionRequest, ModelSessionResponse>(parentPort!, createSession, run);
