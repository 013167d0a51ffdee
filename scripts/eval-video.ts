// Video mask quality and temporal stability against per-frame ground truth:
//
//   npm run eval:video -- <dir> [--frames N]
//
// <dir> holds clips `<name>.mp4` (or .mov/.webm) with ground truth in `<name>.masks/NNNNN.png`
// (8-bit, 255 = foreground, NNNNN the 0-based decoded frame index; see ../shared/eval/SOURCES.md).
// Each frame runs through the engine once (the same resize, batcher and model as the pipeline);
// its mask is then refined twice, as the pipeline does, with and without temporal smoothing.
// Figures: mean IoU over frames (alpha ≥ 128 against mask ≥ 128), and flicker, the mean absolute
// change of alpha (0–1) between consecutive frames over the pixels whose ground truth did not
// change between them. --frames N takes the first N frames of each clip (the model is slow on a CPU).
// The LAST line is one JSON object with the figures.
import { existsSync, readdirSync } from "node:fs";
import { join, resolve } from "node:path";
import { parseArgs } from "node:util";
import sharp from "sharp";
import { FfmpegProcess } from "../services/common/video/ffmpeg.process.ts";
import { mediaBinaries } from "../services/common/video/ffmpeg-binaries.ts";
import { probeVideo } from "../services/common/video/video-probe.ts";
import { createSegmentationEngine, loadInferenceConfig } from "../services/inference/index.ts";
import { defaultTemporalSmoothing, lumaOf, TemporalMaskSmoother } from "../services/inference/domain/mask.smoother.ts";
import { processedVideoSize } from "../services/common/video/video-size.ts";
import { decoderArgs, framesOf } from "../services/inference/runtime/video/video.pipeline.ts";

const { values, positionals } = parseArgs({ allowPositionals: true, options: { frames: { type: "string" } } });
const directory = resolve(positionals[0] ?? join(import.meta.dirname, "..", "..", "shared", "eval", "video"));
const framesMax = values.frames === undefined ? Number.POSITIVE_INFINITY : Number(values.frames);
const round = (value: number, digits = 4) => Number(value.toFixed(digits));

const clips = readdirSync(directory)
  .filter((name) => /\.(mp4|mov|webm)$/.test(name) && existsSync(join(directory, name.replace(/\.\w+$/, ".masks"))))
  .sort();
if (clips.length === 0) {
  console.error(`no clip with a <name>.masks folder in ${directory}`);
  process.exit(1);
}

const engine = await createSegmentationEngine(loadInferenceConfig());
await engine.ready;
const binaries = mediaBinaries();

interface Variant {
  ious: number[];
  flicker: { sum: number; pixels: number };
  previous?: Uint8Array;
}

async function truthOf(masks: string, index: number): Promise<Uint8Array | undefined> {
  const path = join(masks, `${String(index).padStart(5, "0")}.png`);
  return existsSync(path) ? new Uint8Array(await sharp(path).greyscale().raw().toBuffer()) : undefined;
}

function score(variant: Variant, alpha: Uint8Array, truth: Uint8Array, previousTruth: Uint8Array | undefined): void {
  let intersection = 0;
  let union = 0;
  for (let pixel = 0; pixel < alpha.length; pixel++) {
    const predicted = alpha[pixel]! >= 128;
    const actual = truth[pixel]! >= 128;
    if (predicted && actual) intersection++;
    if (predicted || actual) union++;
  }
  variant.ious.push(union === 0 ? 1 : intersection / union);
  if (variant.previous !== undefined && previousTruth !== undefined) {
    for (let pixel = 0; pixel < alpha.length; pixel++) {
      if (previousTruth[pixel]! >= 128 !== truth[pixel]! >= 128) continue;
      variant.flicker.sum += Math.abs(alpha[pixel]! - variant.previous[pixel]!) / 255;
      variant.flicker.pixels++;
    }
  }
  variant.previous = alpha;
}

interface ClipFigures {
  clip: string;
  frames: number;
  meanIoU: number;
  meanIoUSmoothed: number;
  flicker: number;
  flickerSmoothed: number;
}
const results: ClipFigures[] = [];
const started = performance.now();
for (const name of clips) {
  const path = join(directory, name);
  const masks = join(directory, name.replace(/\.\w+$/, ".masks"));
  const probe = await probeVideo(path, { binaries });
  const { width, height } = processedVideoSize(probe, 0);
  const decoder = new FfmpegProcess(binaries.ffmpeg.path, decoderArgs({ inputPath: path, rate: `${probe.frameRate.numerator}/${probe.frameRate.denominator}`, width, height, cap: undefined }));
  const smoother = new TemporalMaskSmoother(engine.maskSize, defaultTemporalSmoothing);
  const raw: Variant = { ious: [], flicker: { sum: 0, pixels: 0 } };
  const smoothed: Variant = { ious: [], flicker: { sum: 0, pixels: 0 } };
  let previousTruth: Uint8Array | undefined;
  let index = 0;
  for await (const rgba of framesOf(decoder.child.stdout, width * height * 4)) {
    if (index >= framesMax) break;
    const truth = await truthOf(masks, index);
    if (truth === undefined || truth.length !== width * height) throw new Error(`${masks}: no ${width}×${height} mask for frame ${index}`);
    const modelInput = await engine.modelInputOfFrame({ rgba, width, height });
    const luma = lumaOf(modelInput);
    const mask = await engine.segmentTensor(modelInput, { highPriority: true });
    const plain = await engine.refineFrame({ rgba: rgba.slice(), width, height }, mask.slice());
    const steady = await engine.refineFrame({ rgba, width, height }, smoother.smooth(mask, luma));
    score(raw, plain.alpha, truth, previousTruth);
    score(smoothed, steady.alpha, truth, previousTruth);
    previousTruth = truth;
    index++;
  }
  decoder.kill();
  await decoder.closed;
  const mean = (list: number[]) => list.reduce((sum, value) => sum + value, 0) / list.length;
  const figures: ClipFigures = {
    clip: name,
    frames: index,
    meanIoU: round(mean(raw.ious)),
    meanIoUSmoothed: round(mean(smoothed.ious)),
    flicker: round(raw.flicker.sum / raw.flicker.pixels, 5),
    flickerSmoothed: round(smoothed.flicker.sum / smoothed.flicker.pixels, 5),
  };
  console.log(`${name}: ${index} frames, IoU ${figures.meanIoU} (smoothed ${figures.meanIoUSmoothed}), flicker ${figures.flicker} (smoothed ${figures.flickerSmoothed})`);
  results.push(figures);
}
await engine.close();
const frames = results.reduce((sum, clip) => sum + clip.frames, 0);
const weighted = (key: "meanIoU" | "meanIoUSmoothed" | "flicker" | "flickerSmoothed") => round(results.reduce((sum, clip) => sum + clip[key] * clip.frames, 0) / frames, 5);
console.log(
  JSON.stringify({
    model: engine.modelName,
    executionProvider: engine.executionProvider,
    frames,
    meanIoU: weighted("meanIoU"),
    meanIoUSmoothed: weighted("meanIoUSmoothed"),
    flicker: weighted("flicker"),
    flickerSmoothed: weighted("flickerSmoothed"),
    seconds: round((performance.now() - started) / 1000, 1),
    clips: results,
  }),
);
