import { clone, create, fromBinary, toBinary } from "@bufbuild/protobuf";
import type { Logger } from "pino";
import { ImageOptionsSchema, type ImageOptions } from "../../common/gen/cutline/inference/v1/image_options_pb.ts";
import { SegmentTaskSchema, TaskEventSchema, type SegmentTask, type TaskEvent } from "../../common/gen/cutline/inference/v1/task_pb.ts";
import type { BlobStore } from "../../common/ports/blob-store.ts";
import type { EventBus } from "../../common/ports/event-bus.ts";
import type { WorkMessage, WorkQueue } from "../../common/ports/work-queue.ts";
import { InferenceError, inferenceErrorOf } from "../domain/inference.errors.ts";
import type { SegmentationEngine } from "../runtime/segmentation.engine.ts";

export const JOB_SUCCEEDED_SUBJECT = "job.succeeded";
export const JOB_FAILED_SUBJECT = "job.failed";
export const JOB_STARTED_SUBJECT = "job.started";
export const JOB_PROGRESS_SUBJECT = "job.progress";

export interface SegmentConsumerOptions {
  engine: Pick<SegmentationEngine, "ready" | "process" | "capacity">;
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
  /** Tasks taken at once. @default the engine's capacity (queue + running batches), so the batcher never refuses one */
  inFlightMax?: number;
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

/**
 * The JetStream work consumer: `SegmentTask` in, result blob and `TaskEvent` out. Events are
 * published before the message is settled, so a crash in between repeats the event (the
 * orchestrator dedups by job) rather than losing it. User errors are final (`term`); server
 * faults are retried with a growing delay until the delivery limit, then reported as failed.
 * Consuming starts once the engine is ready, so no delivery is spent on a loading model.
 */
export async function startSegmentConsumer(options: SegmentConsumerOptions): Promise<SegmentConsumer> {
  const deliveryCountMax = options.deliveryCountMax ?? 5;
  const retryDelayMs = options.retryDelayMs ?? 1000;
  const retryDelayMsMax = options.retryDelayMsMax ?? 30_000;
  const workingIntervalMs = options.workingIntervalMs ?? 10_000;
  const progressIntervalMs = options.progressIntervalMs ?? 60_000;
  const { engine, blobStore, eventBus, log } = options;
  await engine.ready;

  async function publish(event: TaskEvent, subject: string): Promise<void> {
    await eventBus.publish(subject, toBinary(TaskEventSchema, event), { id: `${event.jobId}:${subject}` });
  }

  async function failed(task: SegmentTask, failure: InferenceError): Promise<void> {
    await publish(
      create(TaskEventSchema, {
        jobId: task.jobId,
        outcome: { case: "failed", value: { userError: failure.userError, reason: failure.reason, message: failure.message } },
      }),
      JOB_FAILED_SUBJECT,
    );
  }

  async function handle(message: WorkMessage): Promise<void> {
    let task: SegmentTask;
    try {
      task = fromBinary(SegmentTaskSchema, message.payload);
    } catch (error) {
      log.error({ err: error, messageId: message.id }, "segment task is not a SegmentTask; dropped");
      await message.term("malformed SegmentTask payload");
      return;
    }
    const started = performance.now();
    // Lets the job show "running". Only informative: a lost one must not fail the task.
    await eventBus
      .publish(
        JOB_STARTED_SUBJECT,
        toBinary(TaskEventSchema, create(TaskEventSchema, { jobId: task.jobId, outcome: { case: "started", value: { deliveryCount: message.deliveryCount } } })),
        { id: `${task.jobId}:${JOB_STARTED_SUBJECT}:${message.deliveryCount}` },
      )
      .catch((error: unknown) => log.warn({ err: error, jobId: task.jobId }, "could not publish job.started"));
    const heartbeat = setInterval(() => void message.working().catch(() => {}), workingIntervalMs);
    let progressCount = 0;
    const progress = setInterval(() => {
      progressCount += 1;
      const event = create(TaskEventSchema, { jobId: task.jobId, outcome: { case: "progress", value: { elapsedMs: Math.round(performance.now() - started) } } });
      void eventBus
        .publish(JOB_PROGRESS_SUBJECT, toBinary(TaskEventSchema, event), { id: `${task.jobId}:${JOB_PROGRESS_SUBJECT}:${message.deliveryCount}:${progressCount}` })
        .catch((error: unknown) => log.warn({ err: error, jobId: task.jobId }, "could not publish job.progress"));
    }, progressIntervalMs);
    try {
      const input = await blobStore.get(task.inputBlobKey);
      if (input === undefined) {
        // Gone (expired or deleted) blobs do not come back; retrying would only delay the answer.
        await failed(task, new InferenceError("internal", "the input image is no longer stored; submit the job again"));
        await message.term("input blob missing");
        return;
      }
      const options = await optionsWithBackground(task, blobStore);
      if (options === undefined) {
        await failed(task, new InferenceError("internal", "the background image is no longer stored; submit the job again"));
        await message.term("background image blob missing");
        return;
      }
      const result = await engine.process(input.data, options, { highPriority: task.highPriority, longestSideMax: task.longestSideMax });
      await blobStore.put(task.resultBlobKey, result.image, { contentType: result.contentType });
      await publish(
        create(TaskEventSchema, {
          jobId: task.jobId,
          outcome: {
            case: "succeeded",
            value: {
              resultBlobKey: task.resultBlobKey,
              contentType: result.contentType,
              width: result.width,
              height: result.height,
              processingTimeMs: Math.round(performance.now() - started),
            },
          },
        }),
        JOB_SUCCEEDED_SUBJECT,
      );
      await message.ack();
    } catch (error) {
      const failure = inferenceErrorOf(error);
      if (failure.userError) {
        await failed(task, failure);
        await message.term(failure.reason);
        return;
      }
      if (message.deliveryCount < deliveryCountMax) {
        const delayMs = Math.min(retryDelayMsMax, failure.retryAfterMs ?? retryDelayMs * 2 ** (message.deliveryCount - 1));
        log.warn({ err: error, jobId: task.jobId, deliveryCount: message.deliveryCount, delayMs }, "segment task failed; will retry");
        await message.nak(delayMs);
        return;
      }
      log.error({ err: error, jobId: task.jobId, deliveryCount: message.deliveryCount }, "segment task failed on its last delivery");
      await failed(task, failure);
      await message.term(failure.reason);
    } finally {
      clearInterval(heartbeat);
      clearInterval(progress);
    }
  }

  const subscription = options.workQueue.consume(handle, { inFlightMax: options.inFlightMax ?? engine.capacity });
  return { drain: () => subscription.drain() };
}
