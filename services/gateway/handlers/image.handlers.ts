import type { ServiceImpl } from "@connectrpc/connect";
import type { ImageService } from "../../common/gen/cutline/gateway/v1/image_service_pb.ts";
import { checkedIdempotencyKey, type ImageJobs } from "../image-jobs.ts";
import type { ImageUrls } from "../image-urls.ts";
import type { UploadAdmissions } from "./upload.admission.ts";

export function createImageHandlers(admissions: UploadAdmissions, imageJobs: ImageJobs, imageUrls: ImageUrls): ServiceImpl<typeof ImageService> {
  return {
    async removeBackground(request, context) {
      // Authenticated and let in on the headers (the server's admit hook); the slot is held until the answer.
      const idempotencyKey = checkedIdempotencyKey(request.idempotencyKey || context.requestHeader.get("idempotency-key"));
      const admission = await admissions.take(context.requestHeader, { slot: true });
      let result;
      try {
        // Any image_url is fetched now: after admission, before any hold.
        const input = await imageUrls.resolveTyped(request, { plan: admission.plan, signal: context.signal });
        result = await imageJobs.removeBackground(admission, input.image, input.options, idempotencyKey, context.signal);
      } finally {
        admission.release();
      }
      return {
        image: result.image,
        contentType: result.contentType,
        jobId: result.job.id,
        creditsChargedMillicredits: result.job.chargedMillicredits,
        creditsRemainingMillicredits: result.job.availableMillicredits,
      };
    },
  };
}
