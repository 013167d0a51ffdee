// Inference speed on this machine, in one run on the same images:
//
//   npm run bench:inference [-- [--images N] [<dir>]]
//
// 1. the floor: raw `session.run` of one tensor at every side a setting runs (and 768², 640² and
//    512²), and of the mirrored pair (batch 2) best runs, on a session in this thread built as the
//    workers build theirs;
// 2. the whole pipeline per image (decode → model → refine → encode, PNG) at each quality setting,
//    one image in flight, alternating with the raw runs image by image so load from other
//    processes weighs on both alike;
// 3. the peer, `@imgly/background-removal-node` with the same IS-Net model, in a child process on
//    the same image files (scripts/peer/imgly-peer.ts), warmed up first.
// Images: the photos under <dir> (default ../shared/eval/dev) that have masks, `--images N` of
// them spread over the set; without the directory, generated ones. The LAST line is one JSON
// object: rawRunMs by side, pipelineMs by setting, overheadRatio (pipeline over the raw runs of the
// setting's passes; the largest of the settings'), overheadInCall (each pipeline call over the
// model's own run inside it, as its session thread timed it: the same ratio with the model's time
// from the same call, which on a VM whose speed drifts from one run to the next is far steadier),
// speedupVsPeer by setting and the load average.
import { create } from "@bufbuild/protobuf";
import { spawn } from "node:child_process";
import { existsSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { loadavg, tmpdir } from "node:os";
import { join, resolve } from "node:path";
import ort from "onnxruntime-node";
import sharp from "sharp";
import { ImageOptionsSchema, OutputFormat } from "../services/common/gen/cutline/inference/v1/image_options_pb.ts";
import { Quality } from "../services/common/gen/cutline/inference/v1/quality_pb.ts";
import { threadsPerSession } from "../services/inference/inference.config.ts";
import { editSegmentationModel } from "../services/inference/domain/onnx-graph.editor.ts";
import { QUALITY_PASSES, settingPasses, type ModelPass } from "../services/inference/domain/quality.plan.ts";
import { createSegmentationEngine, loadInferenceConfig } from "../services/inference/index.ts";
import { describeModel, loadModelBytes } from "../services/inference/store/model.store.ts";
import { DEV_EVAL_DIRECTORY, evalPairs, parseEvalArguments, spread } from "./peer/eval-images.ts";

// The engine's probe for CUDA would print onnxruntime's own multi-line error; the engine logs one line.
ort.env.logLevel = "fatal";
const { directory: directoryArgument, imagesMax } = parseEvalArguments(process.argv.slice(2));
const config = loadInferenceConfig();
const median = (values: number[]) => [...values].sort((a, b) => a - b)[Math.floor(values.length / 2)]!;
const sum = (values: number[]) => values.reduce((total, value) => total + value, 0);
const round = (value: number, digits = 1) => Number(value.toFixed(digits));
const loadAverage = () => loadavg().map((value) => round(value, 2));
const loadAtStart = loadAverage();

/** Image files: the eval photos when present, else generated textured JPEGs written to a temp folder. */
function benchImages(): { paths: string[]; label: string; cleanup: () => void } {
  const directory = resolve(directoryArgument ?? DEV_EVAL_DIRECTORY);
  if (existsSync(directory)) {
    const paths = spread([...evalPairs(directory)], imagesMax ?? 8).map((pair) => pair.image);
    if (paths.length > 0) return { paths, label: `${paths.length} photos from ${directory}`, cleanup: () => undefined };
  }
  const folder = mkdtempSync(join(tmpdir(), "cutline-bench-"));
  const count = imagesMax ?? 4;
  return { paths: Array.from({ length: count }, (_, index) => join(folder, `${index}.jpg`)), label: `${count} generated 854×480 JPEGs`, cleanup: () => rmSync(folder, { recursive: true, force: true }) };
}

const images = benchImages();
for (const [index, path] of images.paths.entries()) {
  if (existsSync(path)) continue;
  const noise = Buffer.alloc(854 * 480 * 3);
  for (let byte = 0; byte < noise.length; byte++) noise[byte] = ((byte + index * 7919) * 2654435761) >>> 24;
  writeFileSync(path, await sharp(noise, { raw: { width: 854, height: 480, channels: 3 } }).blur(2).jpeg({ quality: 90 }).toBuffer());
}

// 1. The floor, on a session in this thread built as the workers build theirs.
const model = await describeModel(config.INFERENCE_MODEL);
const edited = editSegmentationModel(await loadModelBytes(model, config.INFERENCE_MODEL_DIRECTORY), [model.output.name]);
const threads = threadsPerSession(config);
const session = await ort.InferenceSession.create(edited, {
  executionProviders: ["cpu"],
  intraOpNumThreads: threads,
  interOpNumThreads: 1,
  graphOptimizationLevel: "all",
  extra: { session: { intra_op: { allow_spinning: "0" } } },
});
async function rawRun(side: number, batch = 1): Promise<number> {
  const input = new Float32Array(batch * 3 * side * side).map((_, index) => Math.sin(index * 0.001) * 0.4);
  const started = performance.now();
  await session.run({ [model.input.name]: new ort.Tensor("float32", input, [batch, 3, side, side]) });
  return performance.now() - started;
}

const engine = await createSegmentationEngine(config);
await engine.ready;
await engine.warm; // its warm-up runs would otherwise overlap the first timings
console.log(`${images.label}; engine ${engine.modelName} on ${engine.executionProvider}, batch size ${engine.batchSizeMax}, ${threads} threads per session; load ${loadAtStart.join(" ")}`);
const settings = { fast: Quality.FAST, balanced: Quality.BALANCED, best: Quality.BEST } as const;
type Setting = keyof typeof settings;
const optionsOf = (setting: Setting) => create(ImageOptionsSchema, { format: OutputFormat.PNG, quality: settings[setting] });
// A pass's raw shape: "<side>" for one image, "<side>x2" for a mirrored pair (batch 2).
const shapeOf = (pass: ModelPass) => (pass.mirrored ? `${pass.side}x2` : String(pass.side));
// Every shape a setting runs, and 768² (the issue's fast side, for the record).
const rawShapes: Record<string, [number, number]> = { "768": [768, 1] };
for (const pass of settingPasses()) rawShapes[shapeOf(pass)] = [pass.side, pass.mirrored ? 2 : 1];

// Warm-up: the first images also pay for JIT compilation of the refinement in its worker.
const bytes = images.paths.map((path) => readFileSync(path));
for (const [side, batch] of Object.values(rawShapes)) await rawRun(side, batch);
for (const setting of Object.keys(settings) as Setting[]) await engine.process(bytes[0]!, optionsOf(setting), { highPriority: false });

const raw: Record<string, number[]> = Object.fromEntries(Object.keys(rawShapes).map((shape) => [shape, []]));
const pipeline: Record<Setting, number[]> = { fast: [], balanced: [], best: [] };
const modelInCall: Record<Setting, number[]> = { fast: [], balanced: [], best: [] };
for (const [index, image] of bytes.entries()) {
  for (const [shape, [side, batch]] of Object.entries(rawShapes)) raw[shape]!.push(await rawRun(side, batch));
  for (const setting of Object.keys(settings) as Setting[]) {
    const started = performance.now();
    const { modelRunMs } = await engine.process(image, optionsOf(setting), { highPriority: false });
    pipeline[setting].push(performance.now() - started);
    modelInCall[setting].push(modelRunMs);
  }
  console.log(
    `${images.paths[index]}: raw ${Object.entries(raw).map(([shape, runs]) => `${shape} ${runs.at(-1)!.toFixed(0)}`).join(", ")} ms; pipeline ${Object.entries(pipeline).map(([setting, runs]) => `${setting} ${runs.at(-1)!.toFixed(0)}`).join(", ")} ms`,
  );
}
// The smaller sides once each after a warm-up run, to show where the time goes (no setting uses them).
for (const side of [640, 512]) {
  await rawRun(side);
  raw[String(side)] = [await rawRun(side), await rawRun(side)];
}
await engine.close();
await session.release();
const peakRssMb = round(process.resourceUsage().maxRSS / 1024, 0);
const loadAfterOurs = loadAverage();

// 3. The peer in its own process, on the same files.
async function runPeer(paths: string[]): Promise<number[]> {
  const child = spawn(process.execPath, ["--import", "tsx", join(import.meta.dirname, "peer", "imgly-peer.ts"), ...paths], { stdio: ["ignore", "pipe", "inherit"] });
  let output = "";
  child.stdout.on("data", (chunk: Buffer) => (output += chunk.toString("utf8")));
  const code = await new Promise<number | null>((done) => child.on("close", done));
  if (code !== 0) throw new Error(`the peer exited ${code}`);
  return output
    .split("\n")
    .filter((line) => line.startsWith("{"))
    .map((line) => (JSON.parse(line) as { ms: number }).ms);
}
const peerMs = await runPeer(images.paths);
for (const [index, ms] of peerMs.entries()) console.log(`peer ${images.paths[index]}: ${ms.toFixed(0)} ms`);
images.cleanup();

const rawRunMs = Object.fromEntries(Object.entries(raw).map(([shape, runs]) => [shape, round(median(runs))]));
const pipelineMs = Object.fromEntries(Object.entries(pipeline).map(([setting, runs]) => [setting, round(median(runs))])) as Record<Setting, number>;
// Each setting's pipeline over the raw runs of its passes, from the per-image sums (same images, alternating).
const rawOfSetting = (setting: Setting) => sum(QUALITY_PASSES[setting].map((pass) => sum(raw[shapeOf(pass)]!)));
const overheadBySetting = Object.fromEntries((Object.keys(settings) as Setting[]).map((setting) => [setting, round(sum(pipeline[setting]) / rawOfSetting(setting), 3)])) as Record<Setting, number>;
const overheadInCallBySetting = Object.fromEntries((Object.keys(settings) as Setting[]).map((setting) => [setting, round(sum(pipeline[setting]) / sum(modelInCall[setting]), 3)])) as Record<Setting, number>;
const speedupVsPeer = Object.fromEntries((Object.keys(pipeline) as Setting[]).map((setting) => [setting, round(sum(peerMs) / sum(pipeline[setting]), 2)])) as Record<Setting, number>;
console.log(`speed-up against the peer (its total time over ours on the same ${peerMs.length} images): ${JSON.stringify(speedupVsPeer)}`);
console.log(
  JSON.stringify({
    device: engine.executionProvider,
    model: engine.modelName,
    images: bytes.length,
    threads,
    rawRunMs,
    pipelineMs,
    peerMs: round(median(peerMs)),
    overheadRatio: Math.max(...Object.values(overheadBySetting)),
    overheadBySetting,
    overheadInCall: Math.max(...Object.values(overheadInCallBySetting)),
    overheadInCallBySetting,
    speedupVsPeer,
    timeVsBalanced: { fast: round(sum(pipeline.fast) / sum(pipeline.balanced), 3), best: round(sum(pipeline.best) / sum(pipeline.balanced), 3) },
    peakRssMb,
    loadAverage: { start: loadAtStart, afterOurs: loadAfterOurs, end: loadAverage() },
  }),
);
