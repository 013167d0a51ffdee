import type { Quality } from "../../common/gen/cutline/inference/v1/quality_pb.ts";
import { qualityNameOf, qualityProblem, type QualityName } from "../../common/images/quality.ts";
import { INPUT_SIDE_MULTIPLE } from "./onnx-graph.editor.ts";
import { InferenceError } from "./inference.errors.ts";

/** One model run's shape: the square input side (pixels) and whether the mirror image's mask is averaged in. */
export interface ModelPass {
  side: number;
  mirrored: boolean;
}

/**
 * What each setting runs: model passes whose masks are fused (fuseMasks; a mirrored pass gives two
 * views, the image's and its mirror image's), the first pass the one a video frame runs. Measured
 * on ../shared/eval/dev (47 photos, `npm run eval`, edge refinement on), IoU / boundary F against
 * the imgly peer's 0.897 / 0.820: one pass at 768² 0.873 / 0.819, 832² 0.881 / 0.820, 864² 0.885
 * / 0.805, 896² 0.898 / 0.824, 1024² 0.899 / 0.832, 1152² 0.840, 1280² 0.801; averaged: 1024²
 * mirrored 0.896 / 0.844; 896² + 1024² 0.903 / 0.837; 896² + 1024² mirrored 0.908 / 0.857; 896²,
 * 1024² and 1152², each mirrored, 0.905 averaged and **0.913 / 0.864 fused** (0.912–0.913 with
 * the agreement's power at 1, 2 or 4); the mirrored 1024² and plain 896² passes fused 0.908.
 * A per-pixel median of passes and aspect-preserving inputs were worse (the model was trained on
 * squares: 1024 on the longest side 0.845). So fast is 896² (77 % of balanced's model time, the
 * smallest side within 0.015 IoU of the peer with its edges), balanced 1024², and best the six
 * views (about 6× balanced's model time; on CUDA each flip rides in its pass's batch). The held-out
 * photos of the issue had 768² nearly free in quality; on this set 768² and 832² fall short of
 * the peer.
 */
export const QUALITY_PASSES: Readonly<Record<QualityName, readonly ModelPass[]>> = {
  fast: [{ side: 896, mirrored: false }],
  balanced: [{ side: 1024, mirrored: false }],
  best: [
    { side: 1024, mirrored: true },
    { side: 896, mirrored: true },
    { side: 1152, mirrored: true },
  ],
};

/** The passes a setting names, before any cap by the output's size; an unknown value is invalid_option. */
export function qualityPassesOf(quality: Quality): readonly ModelPass[] {
  const name = qualityNameOf(quality);
  if (name === undefined) throw new InferenceError("invalid_option", qualityProblem(quality)!);
  return QUALITY_PASSES[name];
}

/** A setting's first pass: what one video frame runs, where a second pass per frame would halve the frame rate. */
export function qualityPassOf(quality: Quality): ModelPass {
  return qualityPassesOf(quality)[0]!;
}

/** The side under which no pass runs: fast's, where the model's own accuracy starts to fall. */
const sideMin = QUALITY_PASSES.fast[0]!.side;

/**
 * The model runs for `quality` and an output whose longest side is `outputLongestSide` pixels
 * (undefined: a full-size output). A mask finer than a downscaled output (a preview) buys
 * nothing, so no pass runs above the smallest multiple of 32 covering it, nor below the fast
 * side; never above what the setting says. Passes capped to one side become one (mirrored where
 * any was).
 */
export function modelPassesFor(quality: Quality, outputLongestSide?: number): ModelPass[] {
  const passes = qualityPassesOf(quality);
  if (outputLongestSide === undefined || !(outputLongestSide > 0)) return [...passes];
  const covering = Math.ceil(outputLongestSide / INPUT_SIDE_MULTIPLE) * INPUT_SIDE_MULTIPLE;
  const bySide = new Map<number, ModelPass>();
  for (const pass of passes) {
    const side = Math.min(pass.side, Math.max(sideMin, covering));
    bySide.set(side, { side, mirrored: pass.mirrored || (bySide.get(side)?.mirrored ?? false) });
  }
  return [...bySide.values()];
}

/**
 * The passes of one warm-up batch of `pass`'s shape: the largest tensor it will see (`rowsMax`
 * rows, or the two rows of one mirrored image), built as the settings build it, so onnxruntime
 * plans that memory before the first customer's batch; smaller batches fit in it. Each batch size
 * is not warmed on its own, as that would be `rowsMax` runs per shape at every start; nor are the
 * sides between the settings' that previews may run at (modelPassFor).
 */
export function warmupPassesFor(pass: ModelPass, rowsMax: number): ModelPass[] {
  const rows = Math.max(rowsMax, pass.mirrored ? 2 : 1);
  const mirrored = pass.mirrored ? Math.floor(rows / 2) : 0;
  const { side } = pass;
  return [...Array.from({ length: mirrored }, () => ({ side, mirrored: true })), ...Array.from({ length: rows - 2 * mirrored }, () => ({ side, mirrored: false }))];
}

/** Every model shape the settings run, each once (side and mirroring). */
export function settingPasses(): ModelPass[] {
  const passes = new Map(Object.values(QUALITY_PASSES).flatMap((setting) => setting.map((pass) => [`${pass.side}:${pass.mirrored}`, pass] as const)));
  return [...passes.values()];
}
