// One video task of the work queue, as the segment consumer hands it over: the input blob is
// streamed to a temporary file, the video engine (ffmpeg and the model) writes the result to
// another, which is streamed back to the blob store. The temporary files are always removed.
// While the engine works, frame progress goes out as job.progress, and the job's cancel marker
// is watched: a cancelled or timed-out job stops ffmpeg at once through the engine's signal.
import { mkdtemp, rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import type { Logger } from "pino";
import type { SegmentTask } from "../../common/gen/cutline/inference/v1/task_pb.ts";
import type { VideoOptions } from "../../common/gen/cutline/inference/v1/video_options_pb.ts";
import { cancelMarkerKeyOf } from "../../common/job-cancel-marker.ts";
import type { BlobStore } from "../../common/ports/blob-store.ts";
import { InferenceError } from "../domain/inference.errors.ts";
import type { MediaBinaries } from "../../common/video/ffmpeg-binaries.ts";
import { videoOutputOf } from "../../common/video/video-formats.ts";
import type { SegmentationEngine } from "../runtime/segmentation.engine.ts";
import { runVideoMatting, type VideoMattingResult, type VideoProgress } from "../runtime/video/video.pipeline.ts";

export type { VideoMattingResult, VideoProgress };

/** What the video engine (services/inference/runtime/video) is asked to do. */
export interface VideoMattingRequest {
  inputPath: string;
  outputPath: string;
  options: VideoOptions;
  /** The background image's bytes (MP4 output), checked by the gateway; undefined: none. */
  backgroundImage?: Uint8Array;
  /** Longest side the frames are processed at (pixels); 0: the engine's own limit. */
  longestSideMax: number;
  /** The duration billed (the task's video_duration_ms, ms): decoding stops there; 0: the file's own. */
  durationMsMax: number;
  /** Aborted when the job ends under the worker (cancel, timeout) or the worker stops: ffmpeg is killed at once. */
  signal: AbortSignal;
  onProgress(progress: VideoProgress): void;
}

/** The video engine with its segmentation engine bound (wired by the service's index). */
export type VideoMattingRunner = (request: VideoMattingRequest) => Promise<VideoMattingResult>;

/** The video engine on `engine`, with the service's ffmpeg: what the consumer's `video.run` takes. */
export function videoMattingRunnerOf(engine: SegmentationEngine, binaries: () => MediaBinaries): VideoMattingRunner {
  return (request) =>
    runVideoMatting(
      {
        ...request,
        binaries: binaries(),
        // The engine has no estimate before its first frame: 0 says "unknown" on the job.
        onProgress: (progress) => request.onProgress({ framesDone: progress.framesDone, framesTotal: progress.framesTotal, etaSeconds: progress.etaSeconds ?? 0 }),
      },
      engine,
    );
}

export interface VideoTaskOptions {
  run: VideoMattingRunner;
  /** Where the temporary input and output files go, one folder per task. @default the OS temporary directory */
  temporaryDirectory?: string;
  /** How often a running task looks for its job's cancel marker (ms); the longest a cancel waits to stop ffmpeg. @default 500 ms */
  cancelPollMs?: number;
}

/** The job ended under the worker (its cancel marker appeared): nothing to report, the message is done. */
export class VideoTaskStopped extends Error {}

export interface VideoTaskResult extends VideoMattingResult {
  /** The engine's own work, from the input on disk to the output on disk (ms). */
  workMs: number;
}

/**
 * Runs one video task to its stored result. Throws InferenceError (user errors final, faults
 * retried by the caller), VideoTaskStopped when the job was cancelled meanwhile, or what the
 * engine threw. `stop` (the consumer draining) aborts the engine too; the task is then retried.
 */
export async function runVideoTask(context: {
  task: SegmentTask;
  blobStore: BlobStore;
  video: VideoTaskOptions;
  log: Logger;
  stop: AbortSignal;
  onProgress(progress: VideoProgress): void;
}): Promise<VideoTaskResult> {
  const { task, blobStore, video } = context;
  const options = task.videoOptions;
  if (!options) throw new InferenceError("invalid_option", "the video task carries no video options");
  // A job cancelled or timed out while it waited in the queue: not even its input is fetched.
  if ((await blobStore.get(cancelMarkerKeyOf(task.jobId))) !== undefined) throw new VideoTaskStopped(`job ${task.jobId} ended before its video was started`);
  const directory = await mkdtemp(join(video.temporaryDirectory ?? tmpdir(), "cutline-video-"));
  const cancelled = new AbortController();
  const watch = watchCancelMarker(blobStore, task.jobId, cancelled, video.cancelPollMs ?? 500, context.log);
  try {
    const inputPath = join(directory, "input");
    const stored = await blobStore.getToFile(task.inputBlobKey, inputPath);
    if (stored === undefined) throw new InferenceError("internal", "the input video is no longer stored; submit the job again");
    let backgroundImage: Uint8Array | undefined;
    if (task.backgroundImageBlobKey !== "") {
      backgroundImage = (await blobStore.get(task.backgroundImageBlobKey))?.data;
      if (backgroundImage === undefined) throw new InferenceError("internal", "the background image is no longer stored; submit the job again");
    }
    const outputPath = join(directory, `output.${videoOutputOf(options.format).extension}`);
    const started = performance.now();
    const signal = AbortSignal.any([cancelled.signal, context.stop]);
    let result: VideoMattingResult;
    try {
      result = await video.run({ inputPath, outputPath, options, backgroundImage, longestSideMax: task.longestSideMax, durationMsMax: task.videoDurationMs, signal, onProgress: context.onProgress });
    } catch (error) {
      if (cancelled.signal.aborted) throw new VideoTaskStopped(`job ${task.jobId} ended while its video was processed`, { cause: error });
      throw error;
    }
    const workMs = performance.now() - started;
    await blobStore.putFile(task.resultBlobKey, outputPath, { contentType: result.contentType });
    return { ...result, workMs };
  } finally {
    watch.stop();
    await rm(directory, { recursive: true, force: true });
  }
}

/** Looks for the job's cancel marker every `pollMs` and aborts `controller` once it is there. */
function watchCancelMarker(blobStore: BlobStore, jobId: string, controller: AbortController, pollMs: number, log: Logger): { stop(): void } {
  let polling = false;
  const timer = setInterval(() => {
    if (polling || controller.signal.aborted) return;
    polling = true;
    blobStore
      .get(cancelMarkerKeyOf(jobId))
      .then((marker) => {
        if (marker === undefined) return;
        log.info({ jobId }, "the job ended under its worker (cancelled or timed out): stopping its video");
        controller.abort(new VideoTaskStopped(`job ${jobId} was cancelled`));
      })
      // A blob store hiccup only delays the stop; the next poll looks again.
      .catch((error: unknown) => log.warn({ err: error, jobId }, "could not look for the job's cancel marker"))
      .finally(() => {
        polling = false;
      });
  }, pollMs);
  return { stop: () => clearInterval(timer) };
}
