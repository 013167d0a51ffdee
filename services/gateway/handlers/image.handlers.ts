import { create } from "@bufbuild/protobuf";
import { Code, type HandlerContext, type ServiceImpl } from "@connectrpc/connect";
import { reasonError } from "../../common/errors.ts";
import type { ImageService } from "../../common/gen/cutline/gateway/v1/image_service_pb.ts";
import { ImageOperation, ImageOptionsSchema, type ImageOptions } from "../../common/gen/cutline/inference/v1/image_options_pb.ts";
import { checkedIdempotencyKey, type ImageJobs, type ImageResult } from "../image-jobs.ts";
import type { ImageUrls } from "../image-urls.ts";
import type { UploadAdmissions } from "./upload.admission.ts";

interface TypedInput {
  image: Uint8Array;
  imageUrl: string;
  options?: ImageOptions;
  backgroundImageUrl: string;
  idempotencyKey: string;
}

export function createImageHandlers(admissions: UploadAdmissions, imageJobs: ImageJobs, imageUrls: ImageUrls): ServiceImpl<typeof ImageService> {
  /** One synchronous job: admitted on the headers (the server's admit hook), its slot held until the answer. */
  async function run(request: TypedInput, context: HandlerContext): Promise<ImageResult> {
    const idempotencyKey = checkedIdempotencyKey(request.idempotencyKey || context.requestHeader.get("idempotency-key"));
    const admission = await admissions.take(context.requestHeader, { slot: true });
    try {
      // Any image_url is fetched now: after admission, before any hold.
      const input = await imageUrls.resolveTyped(request, { plan: admission.plan, signal: context.signal });
      return await imageJobs.removeBackground(admission, input.image, input.options, idempotencyKey, context.signal);
    } finally {
      admission.release();
    }
  }
  const answer = (result: ImageResult) => ({
    image: result.image,
    contentType: result.contentType,
    jobId: result.job.id,
    creditsChargedMillicredits: result.job.chargedMillicredits,
    creditsRemainingMillicredits: result.job.availableMillicredits,
    width: result.job.resultWidth,
    height: result.job.resultHeight,
  });
  return {
    async removeBackground(request, context) {
      if (request.options?.operation === ImageOperation.SMART_CROP) {
        throw reasonError(Code.InvalidArgument, "invalid_option", "options.operation: RemoveBackground makes the cut-out; call ImageService.SmartCrop for a smart crop");
      }
      return answer(await run(request, context));
    },
    async smartCrop(request, context) {
      const options = create(ImageOptionsSchema, {
        operation: ImageOperation.SMART_CROP,
        aspectRatio: request.aspectRatio,
        cropMarginPercent: request.marginPercent,
        format: request.format,
        size: request.size,
        keepExif: request.keepExif,
        quality: request.quality,
      });
      return answer(await run({ ...request, options, backgroundImageUrl: "" }, context));
    },
  };
}
