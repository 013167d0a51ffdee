import { create } from "@bufbuild/protobuf";
import { Code, type HandlerContext, type ServiceImpl } from "@connectrpc/connect";
import { reasonError } from "../../common/errors.ts";
import type { ImageService } from "../../common/gen/cutline/gateway/v1/image_service_pb.ts";
import { ImageOperation, ImageOptionsSchema, type ImageOptions } from "../../common/gen/cutline/inference/v1/image_options_pb.ts";
import { checkedIdempotencyKey, type ImageJobs, type ImageResult } from "../image-jobs.ts";
import type { UploadAdmissions } from "./upload.admission.ts";

export function createImageHandlers(admissions: UploadAdmissions, imageJobs: ImageJobs): ServiceImpl<typeof ImageService> {
  /** One synchronous job: admitted on the headers (the server's admit hook), its slot held until the answer. */
  async function run(image: Uint8Array, options: ImageOptions | undefined, requestKey: string, context: HandlerContext): Promise<ImageResult> {
    const idempotencyKey = checkedIdempotencyKey(requestKey || context.requestHeader.get("idempotency-key"));
    const admission = await admissions.take(context.requestHeader, { slot: true });
    try {
      return await imageJobs.removeBackground(admission, image, options, idempotencyKey, context.signal);
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
  });
  return {
    async removeBackground(request, context) {
      if (request.options?.operation === ImageOperation.SMART_CROP) {
        throw reasonError(Code.InvalidArgument, "invalid_option", "options.operation: RemoveBackground makes the cut-out; call ImageService.SmartCrop for a smart crop");
      }
      return answer(await run(request.image, request.options, request.idempotencyKey, context));
    },
    async smartCrop(request, context) {
      const options = create(ImageOptionsSchema, {
        operation: ImageOperation.SMART_CROP,
        aspectRatio: request.aspectRatio,
        cropMarginPercent: request.marginPercent,
        format: request.format,
        size: request.size,
        keepExif: request.keepExif,
      });
      return answer(await run(request.image, options, request.idempotencyKey, context));
    },
  };
}
