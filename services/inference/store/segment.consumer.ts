import { clone, create, fromBinary, toBinary } from "@bufbuild/protobuf";
import { timestampMs } from "@bufbuild/protobuf/wkt";
import type { Logger } from "pino";
import { ImageOptionsSchema, type ImageOptions } from "../../common/gen/cutline/inference/v1/image_options_pb.ts";
import { SegmentTaskSchema, TaskEventSchema, TaskKind, type SegmentTask, type TaskEvent } from "../../common/gen/cutline/inference/v1/task_pb.ts";
import type { BlobStore } from "../../common/ports/blob-store.ts";
import type { EventBus } from "../../common/ports/event-bus.ts";
import type { WorkMessage, WorkQueue } from "../../common/ports/work-queue.ts";
import { InferenceError, inferenceErrorOf } from "../domain/inference.errors.ts";
import { countTask, taskReleased, taskTaken } from "../runtime/inference.metrics.ts";
import type { EngineStage, SegmentationEngine } from "../runtime/segmentation.engine.ts";
import { runVideoTask, VideoTaskStopped, type VideoProgress, type VideoTaskOptions } from "./video-task.consumer.ts";

export const JOB_SUCCEEDED_SUBJECT = "job.succeeded";
export const JOB_FAILED_SUBJECT = "job.failed";
export const JOB_STARTED_SUBJECT = "job.started";
export const JOB_PROGRESS_SUBJECT = "job.progress";

export interface SegmentConsumerOptions {
  engine: Pick<SegmentationEngine, "ready" | "process" | "capacity" | "runningCapacity">;
  workQueue: WorkQueue;
  eventBus: EventBus;
  blobStore: BlobStore;
  log: Logger;
  /** Deliveries of one task, the first included, before a server fault is final; match the queue's. @default 5 deliveries */
  deliveryCountMax?: number;
  /** Redelivery delay after the first server fault, doubled on each later one. @default 1000 ms */
  retryDelayMs?: number;
  /** Longest redelivery delay. @default 30000 ms */
  retryDelayMsMax?: number;
  /** How often a task in progress tells the queue it is still alive; below the queue's ack wait. @default 10000 ms */
  workingIntervalMs?: number;
  /**
   * How often a task in progress tells the orchestrator it is still at work (job.progress), which
   * extends the job's credit hold; below the hold lifetime and the orchestrator's JOB_QUIET_MS_MAX.
   * @default 60000 ms
   */
  progressIntervalMs?: number;
  /**
   * Least time between two stage reports of one task (job.progress with its fraction); a stage
   * that ends sooner is not reported, so quick images cost the orchestrator no extra writes.
   * 0 reports every stage. @default 500 ms
   */
  stageProgressMsMin?: number;
  /**
   * Tasks taken at once. @default twice the engine's running capacity (a batch at work and the
   * next one decoded and waiting), at most its capacity, so the batcher never refuses one. Taking
   * more only moves the wait from the queue (shared with other workers, in priority order) into
   * this process, where every image taken is decoded at once: with 33 taken on 2 CPU cores the
   * decodes filled libuv's thread pool and the node's own file reads and writes waited seconds
   * behind them.
   */
  inFlightMax?: number;
  /** Runs video tasks (kind VIDEO); unset, a video task fails as a server fault (this worker cannot take it). */
  video?: VideoTaskOptions;
  /**
   * The queue video tasks arrive on (the ports' videoQueue), consumed under `videoConcurrency`
   * apart from `workQueue`, so a video never takes an image's slot. Unset (or workQueue itself),
   * videos come on workQueue among the images. A video found on workQueue (enqueued by an older
   * orchestrator) is still run there.
   */
  videoQueue?: WorkQueue;
  /** Video tasks taken at once from `videoQueue` (VIDEO_CONCURRENCY). @default 1 video */
  videoConcurrency?: number;
}

/**
 * The task's options with the background image loaded from its blob (the queue message carries
 * only the key); undefined when that blob is gone. Bytes already in the options are dropped:
 * only the gateway's checked blob may be composited.
 */
export async function optionsWithBackground(task: SegmentTask, blobStore: Pick<BlobStore, "get">): Promise<ImageOptions | undefined> {
  const options = task.options ? clone(ImageOptionsSchema, task.options) : create(ImageOptionsSchema);
  options.backgroundImage = new Uint8Array();
  if (task.backgroundImageBlobKey === "") return options;
  const background = await blobStore.get(task.backgroundImageBlobKey);
  if (background === undefined) return undefined;
  options.backgroundImage = background.data;
  return options;
}

export interface SegmentConsumer {
  /** Stops taking tasks and waits for those in progress. */
  drain(): Promise<void>;
}

/** Two batches' worth of tasks (one at work, one waiting), within what the engine holds. */
export function defaultInFlightMax(engine: Pick<SegmentationEngine, "capacity" | "runningCapacity">): number {
  return Math.max(1, Math.min(engine.capacity, 2 * engine.runningCapacity));
}

/** The defaults of the consumer's optional limits, as documented on `SegmentConsumerOptions`. */
const defaultLimits = {
  deliveryCountMax: 5,
  retryDelayMs: 1000,
  retryDelayMsMax: 30_000,
  workingIntervalMs: 10_000,
  progressIntervalMs: 60_000,
  // Half a second: a job that ends sooner needs no progress bar, and each report is a job write
  // and a wake-up of every watcher (the synchronous caller's included).
  stageProgressMsMin: 500,
};

/**
 * The fraction of a task done when each stage ends: estimated shares (not measured) of a 1 MP photo on CPU,
 * where the model dominates (decode and resize tens of ms, the model hundreds, refine and encode
 * tens each); the last stretch, encoding and storing the result, ends with job.succeeded (1).
 */
export const STAGE_FRACTIONS: Readonly<Record<EngineStage, number>> = { decoded: 0.1, segmented: 0.8, refined: 0.9 };

/** What one delivery of a task has reported so far. */
interface TaskProgressState {
  started: number;
  fraction: number;
  reportedAt: number;
  /** Video tasks: the engine's last frame report. */
  frames?: VideoProgress;
}

/** The share of a video task the engine's frames stand for; the rest is storing the result. */
const VIDEO_FRAMES_FRACTION = 0.95;

type Limits = typeof defaultLimits;

/**
 * The JetStream work consumer: `SegmentTask` in, result blob and `TaskEvent` out. Events are
 * published before the message is settled, so a crash in between repeats the event (the
 * orchestrator dedups by job) rather than losing it. User errors are final (`term`); server
 * faults are retried with a growing delay until the delivery limit, then reported as failed.
 * Consuming starts once the engine is ready, so no delivery is spent on a loading model.
 */
export async function startSegmentConsumer(options: SegmentConsumerOptions): Promise<SegmentConsumer> {
  await options.engine.ready;
  const tasks = new TaskHandler(options);
  const subscriptions = [options.workQueue.consume((message) => tasks.handle(message), { inFlightMax: options.inFlightMax ?? defaultInFlightMax(options.engine) })];
  if (options.video && options.videoQueue && options.videoQueue !== options.workQueue) {
    subscriptions.push(options.videoQueue.consume((message) => tasks.handle(message), { inFlightMax: options.videoConcurrency ?? 1 }));
  }
  return {
    drain: async () => {
      // A video may run for minutes: stopped now, it is redelivered to another worker instead of holding the shutdown.
      tasks.stop();
      await Promise.all(subscriptions.map((subscription) => subscription.drain()));
    },
  };
}

/** One delivery of a task, from its payload to the settled message. */
class TaskHandler {
  private readonly limits: Limits;
  private readonly log: Logger;
  private readonly stopping = new AbortController();

  constructor(private readonly options: SegmentConsumerOptions) {
    this.limits = {
      deliveryCountMax: options.deliveryCountMax ?? defaultLimits.deliveryCountMax,
      retryDelayMs: options.retryDelayMs ?? defaultLimits.retryDelayMs,
      retryDelayMsMax: options.retryDelayMsMax ?? defaultLimits.retryDelayMsMax,
      workingIntervalMs: options.workingIntervalMs ?? defaultLimits.workingIntervalMs,
      progressIntervalMs: options.progressIntervalMs ?? defaultLimits.progressIntervalMs,
      stageProgressMsMin: options.stageProgressMsMin ?? defaultLimits.stageProgressMsMin,
    };
    this.log = options.log;
  }

  /** The worker is draining: video tasks in progress stop (and are retried elsewhere). */
  stop(): void {
    this.stopping.abort(new Error("the inference worker is shutting down"));
  }

  async handle(message: WorkMessage): Promise<void> {
    taskTaken();
    try {
      await this.handleTaken(message);
    } finally {
      taskReleased();
    }
  }

  private async handleTaken(message: WorkMessage): Promise<void> {
    const takenAtMs = Date.now();
    const task = await this.taskOf(message);
    if (task === undefined) return;
    const started = performance.now();
    // Wall clocks of two processes in the mesh: a skew that would make the wait negative reads 0.
    const workQueueWaitMs = task.enqueuedAt ? Math.max(0, takenAtMs - timestampMs(task.enqueuedAt)) : 0;
    // Published alongside the work, not before it: on a busy node the event's write and its
    // delivery took up to a second, which every call waited for. The bus keeps publish order, so
    // the orchestrator still sees "started" before the outcome.
    const announced = this.announceStart(task, message);
    const progress: TaskProgressState = { started, fraction: 0, reportedAt: started };
    const stopSignals = this.signalAlive(task, message, progress);
    try {
      if (task.kind === TaskKind.VIDEO) await this.runVideo(task, message, progress, workQueueWaitMs);
      else await this.run(task, message, progress, workQueueWaitMs);
    } catch (error) {
      if (error instanceof VideoTaskStopped) {
        // The job already ended (cancelled, timed out) and its hold with it: nothing to report.
        await message.term("job ended while at work");
        return;
      }
      await this.settleFailure(task, message, error);
    } finally {
      stopSignals();
      await announced;
    }
  }

  /** The message's task; a payload that is not one is dropped for good. */
  private async taskOf(message: WorkMessage): Promise<SegmentTask | undefined> {
    try {
      return fromBinary(SegmentTaskSchema, message.payload);
    } catch (error) {
      this.log.error({ err: error, messageId: message.id }, "segment task is not a SegmentTask; dropped");
      await message.term("malformed SegmentTask payload");
      return undefined;
    }
  }

  /** Lets the job show "running". Only informative: a lost one must not fail the task. */
  private async announceStart(task: SegmentTask, message: WorkMessage): Promise<void> {
    const event = create(TaskEventSchema, { jobId: task.jobId, outcome: { case: "started", value: { deliveryCount: message.deliveryCount } } });
    await this.options.eventBus
      .publish(JOB_STARTED_SUBJECT, toBinary(TaskEventSchema, event), { id: `${task.jobId}:${JOB_STARTED_SUBJECT}:${message.deliveryCount}` })
      .catch((error: unknown) => this.log.warn({ err: error, jobId: task.jobId }, "could not publish job.started"));
  }

  /**
   * Tells the queue (so it does not redeliver) and the orchestrator (so the job's hold is
   * extended) that the task is still at work, until the returned function is called.
   */
  private signalAlive(task: SegmentTask, message: WorkMessage, state: TaskProgressState): () => void {
    const heartbeat = setInterval(() => void message.working().catch(() => {}), this.limits.workingIntervalMs);
    let progressCount = 0;
    const progress = setInterval(() => {
      progressCount += 1;
      this.publishProgress(task, state, "", `${message.deliveryCount}:${progressCount}`);
    }, this.limits.progressIntervalMs);
    return () => {
      clearInterval(heartbeat);
      clearInterval(progress);
    };
  }

  /** A stage of the engine ended: reported with its fraction, unless the last report was under stageProgressMsMin ago. */
  private stageEnded(task: SegmentTask, message: WorkMessage, state: TaskProgressState, stage: EngineStage): void {
    state.fraction = Math.max(state.fraction, STAGE_FRACTIONS[stage]);
    if (performance.now() - state.reportedAt < this.limits.stageProgressMsMin) return;
    this.publishProgress(task, state, stage, `${message.deliveryCount}:${stage}`);
  }

  /** Only informative, like job.started: a lost one must not fail the task. */
  private publishProgress(task: SegmentTask, state: TaskProgressState, stage: EngineStage | "frames" | "", idSuffix: string): void {
    state.reportedAt = performance.now();
    const value = { elapsedMs: Math.round(state.reportedAt - state.started), fraction: state.fraction, stage, ...state.frames };
    const event = create(TaskEventSchema, { jobId: task.jobId, outcome: { case: "progress", value } });
    void this.options.eventBus
      .publish(JOB_PROGRESS_SUBJECT, toBinary(TaskEventSchema, event), { id: `${task.jobId}:${JOB_PROGRESS_SUBJECT}:${idSuffix}` })
      .catch((error: unknown) => this.log.warn({ err: error, jobId: task.jobId }, "could not publish job.progress"));
  }

  /** Loads the inputs, runs the engine, stores the result, publishes job.succeeded and acks. */
  private async run(task: SegmentTask, message: WorkMessage, progress: TaskProgressState, workQueueWaitMs: number): Promise<void> {
    const { blobStore, engine } = this.options;
    const input = await blobStore.get(task.inputBlobKey);
    if (input === undefined) {
      // Gone (expired or deleted) blobs do not come back; retrying would only delay the answer.
      await this.failed(task, new InferenceError("internal", "the input image is no longer stored; submit the job again"));
      await message.term("input blob missing");
      return;
    }
    const options = await optionsWithBackground(task, blobStore);
    if (options === undefined) {
      await this.failed(task, new InferenceError("internal", "the background image is no longer stored; submit the job again"));
      await message.term("background image blob missing");
      return;
    }
    const result = await engine.process(input.data, options, {
      highPriority: task.highPriority,
      longestSideMax: task.longestSideMax,
      onStage: (stage) => this.stageEnded(task, message, progress, stage),
    });
    await blobStore.put(task.resultBlobKey, result.image, { contentType: result.contentType });
    const succeeded = {
      resultBlobKey: task.resultBlobKey,
      contentType: result.contentType,
      width: result.width,
      height: result.height,
      foreground: result.foreground,
      processingTimeMs: Math.round(performance.now() - progress.started),
      queueWaitMs: Math.round(workQueueWaitMs + result.modelQueueWaitMs),
      inferenceMs: Math.round(result.workMs),
    };
    await this.publish(create(TaskEventSchema, { jobId: task.jobId, outcome: { case: "succeeded", value: succeeded } }), JOB_SUCCEEDED_SUBJECT);
    countTask("image", "succeeded");
    await message.ack();
  }

  /** A video task: the engine on temporary files, frame progress reported, the result stored, job.succeeded, ack. */
  private async runVideo(task: SegmentTask, message: WorkMessage, progress: TaskProgressState, workQueueWaitMs: number): Promise<void> {
    const video = this.options.video;
    if (!video) throw new InferenceError("internal", "this inference worker is not set up for video");
    const result = await runVideoTask({
      task,
      blobStore: this.options.blobStore,
      video,
      log: this.log,
      stop: this.stopping.signal,
      onProgress: (frames) => this.framesDone(task, message, progress, frames),
    });
    const succeeded = {
      resultBlobKey: task.resultBlobKey,
      contentType: result.contentType,
      width: result.width,
      height: result.height,
      processingTimeMs: Math.round(performance.now() - progress.started),
      queueWaitMs: Math.round(workQueueWaitMs),
      inferenceMs: Math.round(result.workMs),
    };
    await this.publish(create(TaskEventSchema, { jobId: task.jobId, outcome: { case: "succeeded", value: succeeded } }), JOB_SUCCEEDED_SUBJECT);
    countTask("video", "succeeded");
    await message.ack();
  }

  /** The video engine's frame report: kept for the heartbeat, published at most every stageProgressMsMin. */
  private framesDone(task: SegmentTask, message: WorkMessage, state: TaskProgressState, frames: VideoProgress): void {
    state.frames = { framesDone: frames.framesDone, framesTotal: frames.framesTotal, etaSeconds: Math.max(0, Math.round(frames.etaSeconds)) };
    if (frames.framesTotal > 0) state.fraction = Math.max(state.fraction, Math.min(1, frames.framesDone / frames.framesTotal) * VIDEO_FRAMES_FRACTION);
    if (performance.now() - state.reportedAt < this.limits.stageProgressMsMin) return;
    this.publishProgress(task, state, "frames", `${message.deliveryCount}:frames:${frames.framesDone}`);
  }

  /** User errors are final; server faults are retried with a growing delay until the delivery limit. */
  private async settleFailure(task: SegmentTask, message: WorkMessage, error: unknown): Promise<void> {
    const failure = inferenceErrorOf(error);
    if (failure.userError) {
      await this.failed(task, failure);
      await message.term(failure.reason);
      return;
    }
    const { deliveryCountMax, retryDelayMs, retryDelayMsMax } = this.limits;
    if (message.deliveryCount < deliveryCountMax) {
      const delayMs = Math.min(retryDelayMsMax, failure.retryAfterMs ?? retryDelayMs * 2 ** (message.deliveryCount - 1));
      this.log.warn({ err: error, jobId: task.jobId, deliveryCount: message.deliveryCount, delayMs }, "segment task failed; will retry");
      await message.nak(delayMs);
      return;
    }
    this.log.error({ err: error, jobId: task.jobId, deliveryCount: message.deliveryCount }, "segment task failed on its last delivery");
    // The fault's own reason stays (one code per reason); the message says the retries ran out.
    const attempts = `; it failed ${message.deliveryCount} times, the last retry JOB_RETRY_MAX allows, and its credits were returned`;
    await this.failed(task, new InferenceError(failure.reason, `${failure.message}${attempts}`, { cause: error }));
    await message.term(failure.reason);
  }

  private async failed(task: SegmentTask, failure: InferenceError): Promise<void> {
    const value = { userError: failure.userError, reason: failure.reason, message: failure.message };
    await this.publish(create(TaskEventSchema, { jobId: task.jobId, outcome: { case: "failed", value } }), JOB_FAILED_SUBJECT);
    countTask(task.kind === TaskKind.VIDEO ? "video" : "image", "failed");
  }

  private async publish(event: TaskEvent, subject: string): Promise<void> {
    await this.options.eventBus.publish(subject, toBinary(TaskEventSchema, event), { id: `${event.jobId}:${subject}` });
  }
}
