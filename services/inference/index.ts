// The inference service's public surface, for main.ts, single-node mode and scripts.
export { inferenceConfigSpec, loadInferenceConfig, type InferenceConfig } from "./inference.config.ts";
export {
  connectCodeOf,
  InferenceError,
  inferenceErrorOf,
  type InferenceErrorReason,
} from "./domain/inference.errors.ts";
export {
  createSegmentationEngine,
  validateImageOptions,
  type ImageInspection,
  type SegmentationEngine,
  type SegmentCall,
} from "./runtime/segmentation.engine.ts";
export type { RenderedImage } from "./runtime/image.encoder.ts";
export { connectErrorOf, createInferenceHandlers, RETRY_AFTER_MS_HEADER } from "./handlers/inference.handlers.ts";
export {
  JOB_FAILED_SUBJECT,
  JOB_SUCCEEDED_SUBJECT,
  startSegmentConsumer,
  type SegmentConsumer,
  type SegmentConsumerOptions,
} from "./store/segment.consumer.ts";
export { videoMattingRunnerOf, type VideoMattingRunner, type VideoTaskOptions } from "./store/video-task.consumer.ts";
export { processedVideoSize, VIDEO_LONGEST_SIDE_MAX } from "../common/video/video-size.ts";
export {
  runVideoMatting,
  type VideoMattingInput,
  type VideoMattingResult,
  type VideoProgress,
} from "./runtime/video/video.pipeline.ts";
