// Mask quality of the full pipeline on a directory of photos with ground-truth masks.
//
//   npm run eval -- ../shared/eval/dev
//
// Every `<name>.jpg|png` with a `<name>.mask.png` beside it (recursively) goes through the
// engine twice: as configured (edge refinement on) and as the baseline, the same model with
// plain bilinear mask upscaling and no refinement. Per-image IoU, MAE and boundary F are
// printed; the LAST line is one JSON object with the means. The ground-truth convention (unknown
// band, boundary tolerance) comes from the image's folder name (alphamatting, grabcut, davis2016).
import { create } from "@bufbuild/protobuf";
import { existsSync, readdirSync, readFileSync, statSync } from "node:fs";
import { basename, dirname, join, relative, resolve } from "node:path";
import sharp from "sharp";
import { ImageOptionsSchema, OutputFormat } from "../services/common/gen/cutline/inference/v1/image_options_pb.ts";
import { conventionOf, scoreMask, type MaskScores } from "../services/inference/domain/mask.metrics.ts";
import { createSegmentationEngine, loadInferenceConfig } from "../services/inference/index.ts";

const directory = resolve(process.argv[2] ?? join(import.meta.dirname, "..", "..", "shared", "eval", "dev"));
if (!existsSync(directory)) {
  console.error(`no such directory: ${directory} (usage: npm run eval -- <dir>)`);
  process.exit(2);
}

function* pairs(folder: string): Generator<{ image: string; mask: string }> {
  for (const entry of readdirSync(folder).sort()) {
    const path = join(folder, entry);
    if (statSync(path).isDirectory()) {
      yield* pairs(path);
      continue;
    }
    const match = /^(.*)\.(jpg|png)$/i.exec(entry);
    if (match === null || entry.endsWith(".mask.png")) continue;
    const mask = join(folder, `${match[1]}.mask.png`);
    if (existsSync(mask)) yield { image: path, mask };
  }
}

const found = [...pairs(directory)];
if (found.length === 0) {
  console.error(`no <name>.jpg|png with <name>.mask.png under ${directory}`);
  process.exit(2);
}

const base = loadInferenceConfig();
const refined = await createSegmentationEngine(base);
const baseline = await createSegmentationEngine({ ...base, IMAGE_REFINE_EDGES: false });
await Promise.all([refined.ready, baseline.ready]);
const maskOnly = create(ImageOptionsSchema, { format: OutputFormat.MASK });

async function alphaOf(engine: typeof refined, image: Uint8Array): Promise<{ alpha: Uint8Array; width: number; height: number }> {
  const result = await engine.process(image, maskOnly, { highPriority: false });
  const { data, info } = await sharp(result.image).extractChannel(0).raw().toBuffer({ resolveWithObject: true });
  return { alpha: new Uint8Array(data), width: info.width, height: info.height };
}

const totals = { refined: { iou: 0, mae: 0, boundaryF: 0 }, baseline: { iou: 0, mae: 0, boundaryF: 0 } };
const add = (sum: MaskScores, scores: MaskScores) => {
  sum.iou += scores.iou;
  sum.mae += scores.mae;
  sum.boundaryF += scores.boundaryF;
};
const format = (scores: MaskScores) => `iou=${scores.iou.toFixed(4)} mae=${scores.mae.toFixed(4)} boundaryF=${scores.boundaryF.toFixed(4)}`;
for (const pair of found) {
  const image = readFileSync(pair.image);
  const truth = await sharp(pair.mask).extractChannel(0).raw().toBuffer({ resolveWithObject: true });
  const convention = conventionOf(basename(dirname(pair.image)));
  const scores: MaskScores[] = [];
  for (const engine of [refined, baseline]) {
    const predicted = await alphaOf(engine, image);
    if (predicted.width !== truth.info.width || predicted.height !== truth.info.height) {
      throw new Error(`${pair.image}: output ${predicted.width}×${predicted.height} but mask ${truth.info.width}×${truth.info.height}`);
    }
    scores.push(scoreMask(predicted.alpha, new Uint8Array(truth.data), predicted.width, predicted.height, convention));
  }
  add(totals.refined, scores[0]!);
  add(totals.baseline, scores[1]!);
  console.log(`${relative(directory, pair.image)}  ${format(scores[0]!)}  | baseline ${format(scores[1]!)}`);
}
await Promise.all([refined.close(), baseline.close()]);

const n = found.length;
const mean = (sum: MaskScores) => ({
  iou: Number((sum.iou / n).toFixed(4)),
  mae: Number((sum.mae / n).toFixed(4)),
  boundaryF: Number((sum.boundaryF / n).toFixed(4)),
});
console.log(JSON.stringify({ images: n, ...mean(totals.refined), baseline: mean(totals.baseline) }));
