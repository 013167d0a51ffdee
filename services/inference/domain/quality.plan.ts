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
 * What each setting runs. Issue 14 measured on held-out ~800 px photos (plain Lanczos upsampling):
 * 1024² IoU 0.846, boundary F 0.814 at 100 % time; 768² 0.836 / 0.819 at 57 %; 768² mirrored
 * 0.859 / 0.824 at 114 %; 1024² mirrored 0.862 / 0.838 at 200 %. On the whole dev set (47 photos,
 * `npm run eval`, edge refinement on) IoU / boundary F were: 768² 0.873 / 0.819, 1024² 0.899 /
 * 0.832, 768² mirrored 0.883 / 0.833, 1024² mirrored 0.896 / 0.844, the imgly peer 0.897 / 0.820.
 * There 768² mirrored was worse than 1024² once, so best is 1024² mirrored: the best edges of
 * any setting (+0.012 boundary F over balanced, IoU within 0.003) for twice the model time (on
 * CUDA the flipped copy rides in the same batch). Fast is 768² once; balanced 1024² once.
 */
export const QUALITY_PASSES: Readonly<Record<QualityName, ModelPass>> = {
  fast: { side: 768, mirrored: false },
  balanced: { side: 1024, mirrored: false },
  best: { side: 1024, mirrored: true },
};

/** The pass a setting names, before any cap by the output's size; an unknown value is invalid_option. */
export function qualityPassOf(quality: Quality): ModelPass {
  const name = qualityNameOf(quality);
  if (name === undefined) throw new InferenceError("invalid_option", qualityProblem(quality)!);
  return QUALITY_PASSES[name];
}

/**
 * The model run for `quality` and an output whose longest side is `outputLongestSide` pixels
 * (undefined: a full-size output). A mask finer than a downscaled output (a preview) buys
 * nothing, so one is never run above the smallest multiple of 32 covering it, nor below the fast
 * side, under which the model's own accuracy falls; never above what the setting says.
 */
export function modelPassFor(quality: Quality, outputLongestSide?: number): ModelPass {
  const pass = qualityPassOf(quality);
  if (outputLongestSide === undefined || !(outputLongestSide > 0)) return pass;
  const covering = Math.ceil(outputLongestSide / INPUT_SIDE_MULTIPLE) * INPUT_SIDE_MULTIPLE;
  return { ...pass, side: Math.min(pass.side, Math.max(QUALITY_PASSES.fast.side, covering)) };
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
  const passes = new Map(Object.values(QUALITY_PASSES).map((pass) => [`${pass.side}:${pass.mirrored}`, pass]));
  return [...passes.values()];
}
