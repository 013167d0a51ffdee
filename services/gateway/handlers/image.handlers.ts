import type { ServiceImpl } from "@connectrpc/connect";
import type { ImageService } from "../../common/gen/cutline/gateway/v1/image_service_pb.ts";
import { authenticate } from "../authentication.ts";
import type { ImageJobs } from "../image-jobs.ts";
import type { ApiKeyStore } from "../store/api-key.store.ts";

export function createImageHandlers(apiKeys: ApiKeyStore, imageJobs: ImageJobs): ServiceImpl<typeof ImageService> {
  return {
    async removeBackground(request, context) {
      const owner = await authenticate(apiKeys, context.requestHeader);
      const idempotencyKey = request.idempotencyKey || context.requestHeader.get("idempotency-key") || "";
      const result = await imageJobs.removeBackground(owner, request.image, request.options, idempotencyKey, context.signal);
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
