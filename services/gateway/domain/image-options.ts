// The options of an image job checked in the gateway, before any hold: whatever passes here,
// inference accepts, so a caller's mistake never costs credits or a queue slot. The crop rules
// come from services/common/images/crop-options.ts, which inference checks with too.
import { ImageOperation, OutputFormat, type ImageOptions } from "../../common/gen/cutline/inference/v1/image_options_pb.ts";
import { aspectRatioOf, cropMarginProblem, outputPixelsMaxProblem } from "../../common/images/crop-options.ts";
import { qualityProblem } from "../../common/images/quality.ts";

/** Undefined when inference will accept the options; else the first problem, naming the option. */
export function imageOptionsProblem(options: ImageOptions): string | undefined {
  if (!(options.operation in ImageOperation)) return `operation ${options.operation} is not one of remove background, smart crop`;
  const ratio = aspectRatioOf(options.aspectRatio);
  if (!ratio.ok) return ratio.message;
  const margin = cropMarginProblem(options.cropMarginPercent);
  if (margin !== undefined) return margin;
  const pixelsMax = outputPixelsMaxProblem(options.outputPixelsMax);
  if (pixelsMax !== undefined) return pixelsMax;
  const quality = qualityProblem(options.quality);
  if (quality !== undefined) return quality;
  if (options.operation !== ImageOperation.SMART_CROP) return undefined;
  // Smart crop returns the input's own pixels: what makes or places a cut-out has nothing to act on.
  if (options.format === OutputFormat.MASK) return "output_format mask is not available for smart crop; use png, webp or jpg";
  if (options.backgroundImage.byteLength > 0) return "bg_image_file is not available for smart crop: the crop keeps the input's background";
  if (options.subjectScalePercent > 0 || options.subjectPosition !== "") return "subject_scale_percent and subject_position are not available for smart crop: the crop keeps the subject where it is";
  return undefined;
}

/** The operation an image job is billed as, by its options. */
export function isSmartCrop(options: ImageOptions | undefined): boolean {
  return options?.operation === ImageOperation.SMART_CROP;
}
