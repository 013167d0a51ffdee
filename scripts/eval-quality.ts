// Mask quality of the full pipeline at each quality setting, and of the open-source peer, on a
// directory of photos with ground-truth masks:
//
//   npm run eval -- [--images N] [<dir>]        (default ../shared/eval/dev)
//
// Every `<name>.jpg|png` with a `<name>.mask.png` beside it (recursively; `--images N` of them
// spread over the set) goes through the engine as configured at fast, balanced and best, and
// through `@imgly/background-removal-node` (same IS-Net model, in a child process:
// scripts/peer/imgly-peer.ts). Every row is scored by the same code (mask.metrics.ts: IoU, MAE,
// boundary F) against the same mask. Per-image scores are printed; the LAST line is one JSON
// object with the means per row. The ground-truth convention (unknown band, boundary tolerance)
// comes from the image's folder name (alphamatting, grabcut, davis2016).
import { create } from "@bufbuild/protobuf";
import { spawn } from "node:child_process";
import { existsSync, mkdtempSync, readFileSync, rmSync } from "node:fs";
import { loadavg, tmpdir } from "node:os";
import { basename, dirname, join, relative, resolve } from "node:path";
import sharp from "sharp";
import { ImageOptionsSchema, OutputFormat } from "../services/common/gen/cutline/inference/v1/image_options_pb.ts";
import { Quality } from "../services/common/gen/cutline/inference/v1/quality_pb.ts";
import { conventionOf, scoreMask, type MaskScores } from "../services/inference/domain/mask.metrics.ts";
import { createSegmentationEngine, loadInferenceConfig } from "../services/inference/index.ts";
import { DEV_EVAL_DIRECTORY, evalPairs, parseEvalArguments, spread } from "./peer/eval-images.ts";

const { directory: directoryArgument, imagesMax } = parseEvalArguments(process.argv.slice(2));
const directory = resolve(directoryArgument ?? DEV_EVAL_DIRECTORY);
if (!existsSync(directory)) {
  console.error(`no such directory: ${directory} (usage: npm run eval -- [--images N] <dir>)`);
  process.exit(2);
}
const found = spread([...evalPairs(directory)], imagesMax);
if (found.length === 0) {
  console.error(`no <name>.jpg|png with <name>.mask.png under ${directory}`);
  process.exit(2);
}

const rows = { fast: Quality.FAST, balanced: Quality.BALANCED, best: Quality.BEST } as const;
type Row = keyof typeof rows | "peer";
const engine = await createSegmentationEngine(loadInferenceConfig());
await engine.ready;

interface Alpha {
  alpha: Uint8Array;
  width: number;
  height: number;
}

async function alphaOfPng(png: Uint8Array | string): Promise<Alpha> {
  const { data, info } = await sharp(png).extractChannel(0).raw().toBuffer({ resolveWithObject: true });
  return { alpha: new Uint8Array(data), width: info.width, height: info.height };
}

// The peer first, all images in one child process: its alpha for image i lands in <dir>/i.png.
const peerDirectory = mkdtempSync(join(tmpdir(), "cutline-eval-peer-"));
const peer = spawn(process.execPath, ["--import", "tsx", join(import.meta.dirname, "peer", "imgly-peer.ts"), "--alpha-dir", peerDirectory, ...found.map((pair) => pair.image)], {
  stdio: ["ignore", "ignore", "inherit"],
});
const peerExit = await new Promise<number | null>((done) => peer.on("close", done));
if (peerExit !== 0) throw new Error(`the peer exited ${peerExit}`);

const totals = Object.fromEntries((["fast", "balanced", "best", "peer"] as Row[]).map((row) => [row, { iou: 0, mae: 0, boundaryF: 0 }])) as Record<Row, MaskScores>;
const format = (scores: MaskScores) => `iou=${scores.iou.toFixed(4)} bf=${scores.boundaryF.toFixed(4)}`;
for (const [index, pair] of found.entries()) {
  const image = readFileSync(pair.image);
  const truth = await alphaOfPng(pair.mask);
  const convention = conventionOf(basename(dirname(pair.image)));
  const predictions: [Row, Alpha][] = [];
  for (const [row, quality] of Object.entries(rows) as [Row, Quality][]) {
    const result = await engine.process(image, create(ImageOptionsSchema, { format: OutputFormat.MASK, quality }), { highPriority: false });
    predictions.push([row, await alphaOfPng(result.image)]);
  }
  predictions.push(["peer", await alphaOfPng(join(peerDirectory, `${index}.png`))]);
  const line: string[] = [];
  for (const [row, predicted] of predictions) {
    if (predicted.width !== truth.width || predicted.height !== truth.height) {
      throw new Error(`${pair.image}: ${row} output ${predicted.width}×${predicted.height} but mask ${truth.width}×${truth.height}`);
    }
    const scores = scoreMask(predicted.alpha, truth.alpha, truth.width, truth.height, convention);
    totals[row].iou += scores.iou;
    totals[row].mae += scores.mae;
    totals[row].boundaryF += scores.boundaryF;
    line.push(`${row} ${format(scores)}`);
  }
  console.log(`${relative(directory, pair.image)}  ${line.join("  |  ")}`);
}
await engine.close();
rmSync(peerDirectory, { recursive: true, force: true });

const n = found.length;
const mean = (sum: MaskScores) => ({ iou: Number((sum.iou / n).toFixed(4)), mae: Number((sum.mae / n).toFixed(4)), boundaryF: Number((sum.boundaryF / n).toFixed(4)) });
const means = Object.fromEntries(Object.entries(totals).map(([row, sum]) => [row, mean(sum)])) as Record<Row, ReturnType<typeof mean>>;
console.log(
  JSON.stringify({
    images: n,
    ...means,
    fastVsPeer: { iou: Number((means.fast.iou - means.peer.iou).toFixed(4)), boundaryF: Number((means.fast.boundaryF - means.peer.boundaryF).toFixed(4)) },
    bestVsBalanced: { iou: Number((means.best.iou - means.balanced.iou).toFixed(4)), boundaryF: Number((means.best.boundaryF - means.balanced.boundaryF).toFixed(4)) },
    loadAverage: loadavg().map((value) => Number(value.toFixed(2))),
  }),
);
