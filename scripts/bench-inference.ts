// Inference cost on this machine, in one run:
//
//   npm run bench:inference [-- <image>]
//
// 1. the floor: raw `session.run` of one 1024² tensor (and of batches of 2 and 4, to show
//    whether batching raises throughput on this device);
// 2. the whole pipeline per image (decode → model → refine → encode) at 1, 4 and 16 images
//    in flight, images/s, and the process's peak RSS (worker threads included).
// The LAST line is one JSON object with the figures.
import { create } from "@bufbuild/protobuf";
import { existsSync, readFileSync } from "node:fs";
import { join } from "node:path";
import ort from "onnxruntime-node";
import sharp from "sharp";
import { ImageOptionsSchema, OutputFormat } from "../services/common/gen/cutline/inference/v1/image_options_pb.ts";
import { threadsPerSession } from "../services/inference/inference.config.ts";
import { withDynamicBatch } from "../services/inference/domain/onnx-graph.editor.ts";
import { createSegmentationEngine, loadInferenceConfig } from "../services/inference/index.ts";
import { describeModel, loadModelBytes } from "../services/inference/store/model.store.ts";

// The probe for CUDA below would print onnxruntime's own multi-line error; the engine logs one line.
ort.env.logLevel = "fatal";
const config = loadInferenceConfig();
const median = (values: number[]) => [...values].sort((a, b) => a - b)[Math.floor(values.length / 2)]!;
const round = (value: number, digits = 1) => Number(value.toFixed(digits));

async function sampleImage(): Promise<{ bytes: Uint8Array; label: string }> {
  const candidates = [process.argv[2], join(import.meta.dirname, "..", "..", "shared", "eval", "dev", "davis2016", "dog_00030.jpg")];
  for (const path of candidates) if (path !== undefined && existsSync(path)) return { bytes: readFileSync(path), label: path };
  // No photo at hand: a textured 854×480 JPEG, so decode and encode still do real work.
  const noise = Buffer.alloc(854 * 480 * 3);
  for (let index = 0; index < noise.length; index++) noise[index] = (index * 2654435761) >>> 24;
  const bytes = await sharp(noise, { raw: { width: 854, height: 480, channels: 3 } }).blur(2).jpeg({ quality: 90 }).toBuffer();
  return { bytes, label: "synthetic 854×480 JPEG" };
}

// 1. The floor, measured on a session in this thread built as the workers build theirs.
const model = await describeModel(config.INFERENCE_MODEL);
const edited = withDynamicBatch(await loadModelBytes(model, config.INFERENCE_MODEL_DIRECTORY), [model.output.name]);
const threads = threadsPerSession(config);
const session = await ort.InferenceSession.create(edited, {
  executionProviders: ["cpu"],
  intraOpNumThreads: threads,
  interOpNumThreads: 1,
  graphOptimizationLevel: "all",
  extra: { session: { intra_op: { allow_spinning: "0" } } },
});
const size = model.input.shape[2];
async function rawRun(batch: number): Promise<number> {
  const input = new Float32Array(batch * 3 * size * size).map((_, index) => Math.sin(index * 0.001) * 0.4);
  const started = performance.now();
  await session.run({ [model.input.name]: new ort.Tensor("float32", input, [batch, 3, size, size]) });
  return performance.now() - started;
}
// The floor and the pipeline at one image in flight are measured in alternation, so load from
// other processes on the machine weighs on both alike.
const sample = await sampleImage();
const engine = await createSegmentationEngine(config);
await engine.ready;
const options = create(ImageOptionsSchema, { format: OutputFormat.PNG });
console.log(`pipeline on ${sample.label}; engine ${engine.modelName} on ${engine.executionProvider}, batch size ${engine.batchSizeMax}`);
// Warm-up: the first images also pay for JIT compilation of the refinement in its worker.
await rawRun(1);
for (let run = 0; run < 3; run++) await engine.process(sample.bytes, options, { highPriority: false });
const rawRuns: number[] = [];
const singleLatencies: number[] = [];
for (let run = 0; run < 5; run++) {
  rawRuns.push(await rawRun(1));
  const begun = performance.now();
  await engine.process(sample.bytes, options, { highPriority: false });
  singleLatencies.push(performance.now() - begun);
}
const rawRunMs = median(rawRuns);
const total = (values: number[]) => values.reduce((sum, value) => sum + value, 0);
console.log(`raw session.run, batch 1: median ${rawRunMs.toFixed(0)} ms of ${rawRuns.map((ms) => ms.toFixed(0)).join(", ")} (${threads} threads)`);
console.log(`pipeline, 1 in flight: median ${median(singleLatencies).toFixed(0)} ms of ${singleLatencies.map((ms) => ms.toFixed(0)).join(", ")}`);

// 2. The whole pipeline through the engine (worker threads, batcher, refinement, encoding).
const concurrency: Record<string, { p50Ms: number; perImageMs: number; imagesPerSecond: number }> = {
  "1": {
    p50Ms: round(median(singleLatencies)),
    perImageMs: round(total(singleLatencies) / singleLatencies.length),
    imagesPerSecond: round((singleLatencies.length * 1000) / total(singleLatencies), 3),
  },
};
for (const inFlight of [4, 16]) {
  const latencies: number[] = [];
  const started = performance.now();
  await Promise.all(
    Array.from({ length: inFlight }, async () => {
      const begun = performance.now();
      await engine.process(sample.bytes, options, { highPriority: false });
      latencies.push(performance.now() - begun);
    }),
  );
  const wallMs = performance.now() - started;
  concurrency[String(inFlight)] = {
    p50Ms: round(median(latencies)),
    perImageMs: round(wallMs / inFlight),
    imagesPerSecond: round((inFlight * 1000) / wallMs, 3),
  };
  console.log(
    `pipeline, ${inFlight} in flight: p50 latency ${median(latencies).toFixed(0)} ms, ${(wallMs / inFlight).toFixed(0)} ms per image, ${((inFlight * 1000) / wallMs).toFixed(2)} images/s`,
  );
}
await engine.close();
// Taken before the batch tests below, whose larger tensors are not what the service runs on
// CPU; it includes the extra batch-1 session used for the floor.
const peakRssMb = round(process.resourceUsage().maxRSS / 1024, 0);

// 3. Does batching raise throughput on this device? (Raw runs; batch 1 is the floor above.)
const batching: Record<string, number> = { "1": round(1000 / rawRunMs, 3) };
for (const batch of [2, 4]) {
  const runs = [await rawRun(batch), await rawRun(batch)];
  const perImageMs = median(runs) / batch;
  batching[String(batch)] = round(1000 / perImageMs, 3);
  console.log(`raw session.run, batch ${batch}: ${median(runs).toFixed(0)} ms, ${perImageMs.toFixed(0)} ms per image, ${(1000 / perImageMs).toFixed(2)} images/s`);
}
await session.release();

const pipelineP50Ms = concurrency["1"]!.p50Ms;
console.log(
  JSON.stringify({
    device: engine.executionProvider,
    model: engine.modelName,
    threads,
    rawRunMs: round(rawRunMs),
    pipelineP50Ms,
    overheadRatio: round(pipelineP50Ms / rawRunMs, 3),
    imagesPerSecond: Math.max(...Object.values(concurrency).map((figures) => figures.imagesPerSecond)),
    peakRssMb,
    concurrency,
    rawImagesPerSecondByBatch: batching,
  }),
);
