import { Code, type ServiceImpl } from "@connectrpc/connect";
import { reasonError } from "../../common/errors.ts";
import type { VideoService } from "../../common/gen/cutline/gateway/v1/video_service_pb.ts";
import { checkedIdempotencyKey } from "../image-jobs.ts";
import { videoOptionsOf, type VideoJobs } from "../video-jobs.ts";
import { publicJob } from "./job.handlers.ts";
import type { UploadAdmissions } from "./upload.admission.ts";
import { videoFileOf } from "./video-upload.ts";

/**
 * VideoService: SubmitVideo on the one video job path (VideoJobs), as POST /v1/video/matting.
 * The message arrives whole (Connect reads it before the handler runs, up to VIDEO_BYTES_MAX);
 * it is written to a temporary file so the probe and the blob store stream it like an upload.
 */
export function createVideoHandlers(admissions: UploadAdmissions, videoJobs: VideoJobs): ServiceImpl<typeof VideoService> {
  return {
    async submitVideo(request, context) {
      const admission = await admissions.take(context.requestHeader, { slot: false });
      try {
        if (request.video.byteLength === 0) throw reasonError(Code.InvalidArgument, "empty_video", "the video is empty");
        const { bytesMax, limitName } = videoJobs.bytesLimitOf(admission);
        if (request.video.byteLength > bytesMax) throw reasonError(Code.InvalidArgument, "too_many_bytes", `the video is ${request.video.byteLength} bytes; ${limitName}`);
        const idempotencyKey = checkedIdempotencyKey(request.idempotencyKey || context.requestHeader.get("idempotency-key"));
        const { options } = request;
        const background = options?.backgroundImage;
        const file = await videoFileOf(request.video);
        try {
          const job = await videoJobs.submit(
            admission,
            file.video,
            { options: options ?? videoOptionsOf({}), idempotencyKey, webhookUrl: request.webhookUrl, backgroundImage: background },
            context.signal,
          );
          return { job: publicJob(job) };
        } finally {
          await file.cleanUp();
        }
      } finally {
        admission.release();
      }
    },
  };
}
