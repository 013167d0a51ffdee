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
 * What each setting runs. Measured on held-out ~800 px photos (plain Lanczos upsampling; issue 14):
 * 1024² IoU 0.846, boundary F 0.814 at 100 % time; 768² 0.836 / 0.819 at 57 %; 768² mirrored
 * 0.859 / 0.824 at 114 %; 1024² mirrored 0.862 / 0.838 at 200 %; below 768² IoU falls fast
 * (640²: 0.776). So fast is 768² once, balanced today's 1024² once, and best 768² mirrored: most
 * of the mirrored gain for a seventh more time than balanced. On 12 of the dev photos
 * (`npm run eval -- --images 12`, edge refinement on) IoU / boundary F were fast 0.869 / 0.805,
 * balanced 0.861 / 0.782, best 0.866 / 0.797 and the imgly peer 0.872 / 0.779; such a sample is
 * swayed by single photos where one side fails outright (alphamatting GT06: 0.48 at 768², 0.99 at
 * 1024²), so measure the whole set before moving a default.
 */
export const QUALITY_PASSES: Readonly<Record<QualityName, ModelPass>> = {
  fast: { side: 768, mirrored: false },
  balanced: { side: 1024, mirrored: false },
  best: { side: 768, mirrored: true },
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
 * The passes of one warm-up batch at `side`: the largest tensor that side will see (`rowsMax`
 * rows, or two where a setting mirrors there), built as the settings build it, so onnxruntime
 * plans that memory before the first customer's batch; smaller batches fit in it. Each batch size
 * is not warmed on its own, as that would be `rowsMax` runs per side at every start; nor are the
 * sides between the settings' that previews may run at (modelPassFor).
 */
export function warmupPassesFor(side: number, rowsMax: number): ModelPass[] {
  const mirrors = Object.values(QUALITY_PASSES).some((pass) => pass.side === side && pass.mirrored);
  const rows = Math.max(rowsMax, mirrors ? 2 : 1);
  const mirrored = mirrors ? Math.floor(rows / 2) : 0;
  return [...Array.from({ length: mirrored }, () => ({ side, mirrored: true })), ...Array.from({ length: rows - 2 * mirrored }, () => ({ side, mirrored: false }))];
}
