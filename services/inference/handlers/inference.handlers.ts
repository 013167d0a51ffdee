import { create } from "@bufbuild/protobuf";
import type { ConnectError, ServiceImpl } from "@connectrpc/connect";
import { reasonError } from "../../common/errors.ts";
import { ImageOptionsSchema } from "../../common/gen/cutline/inference/v1/image_options_pb.ts";
import type { InferenceService } from "../../common/gen/cutline/inference/v1/inference_service_pb.ts";
import { connectCodeOf, inferenceErrorOf } from "../domain/inference.errors.ts";
import type { SegmentationEngine } from "../runtime/segmentation.engine.ts";

/** Metadata key with the queue's retry hint on RESOURCE_EXHAUSTED (milliseconds). */
export const RETRY_AFTER_MS_HEADER = "cutline-retry-after-ms";

/**
 * One Connect code and a stable reason (in the `cutline-reason` metadata) per engine error.
 * The message is the engine's caller-safe text; the original error rides along as `cause`
 * for the server's log and is never sent.
 */
export function connectErrorOf(error: unknown): ConnectError {
  const failure = inferenceErrorOf(error);
  const metadata: Record<string, string> = {};
  if (failure.retryAfterMs !== undefined) metadata[RETRY_AFTER_MS_HEADER] = String(failure.retryAfterMs);
  return reasonError(connectCodeOf(failure), failure.reason, failure.message, { cause: failure.cause ?? failure, metadata });
}

export function createInferenceHandlers(engine: SegmentationEngine): ServiceImpl<typeof InferenceService> {
  return {
    async segment(request, context) {
      try {
        const result = await engine.process(request.image, request.options ?? create(ImageOptionsSchema), {
          highPriority: request.highPriority,
          signal: context.signal,
        });
        return {
          image: result.image,
          contentType: result.contentType,
          width: result.width,
          height: result.height,
          model: engine.modelName,
        };
      } catch (error) {
        throw connectErrorOf(error);
      }
    },
  };
}
