// The orchestrator's metrics: jobs by final status, the wait from submission to a worker's claim,
// and each work queue's backlog (images, videos) per lane, polled (never read per request).
import { fromBinary } from "@bufbuild/protobuf";
import { Counter, Gauge, Histogram, register } from "prom-client";
import { ImageOperation, ImageOptionsSchema } from "../common/gen/cutline/inference/v1/image_options_pb.ts";
import type { WorkQueue } from "../common/ports/work-queue.ts";
import type { JobRow } from "./store/job.store.ts";

// Registered once per process: tests start several orchestrators, which share the series.
function existing<T>(name: string): T | undefined {
  return register.getSingleMetric(name) as T | undefined;
}

const jobsTotal =
  existing<Counter<string>>("cutline_jobs_total") ??
  new Counter({
    name: "cutline_jobs_total",
    help: "Jobs that reached a final status, by operation (remove_background, smart_crop, video) and status (succeeded, failed, cancelled).",
    labelNames: ["operation", "status"],
  });

const queueWaitSeconds =
  existing<Histogram<string>>("cutline_job_queue_wait_seconds") ??
  new Histogram({
    name: "cutline_job_queue_wait_seconds",
    help: "Time from a job's submission until a worker claimed it (its first job.started), by lane (high, normal), in seconds.",
    labelNames: ["lane"],
    buckets: [0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 120, 300, 600],
  });

const workQueuePending =
  existing<Gauge<string>>("cutline_work_queue_pending") ??
  new Gauge({
    name: "cutline_work_queue_pending",
    help: "Work-queue messages not yet settled, by queue (image, video) and lane (high, normal): waiting plus delivered and unacknowledged (JetStream's num_pending + num_ack_pending, the lag KEDA scales on); polled.",
    labelNames: ["queue", "lane"],
  });

function operationOf(job: Pick<JobRow, "kind" | "options">): string {
  if (job.kind === "video") return "video";
  try {
    return fromBinary(ImageOptionsSchema, job.options).operation === ImageOperation.SMART_CROP ? "smart_crop" : "remove_background";
  } catch {
    return "remove_background";
  }
}

export function countJobEnd(job: Pick<JobRow, "kind" | "options" | "status">): void {
  jobsTotal.inc({ operation: operationOf(job), status: job.status });
}

export function observeQueueWait(job: Pick<JobRow, "created_at" | "high_priority">, claimedAt = Date.now()): void {
  // The database's clock stamped created_at: a skew that would make the wait negative reads 0.
  queueWaitSeconds.observe({ lane: job.high_priority ? "high" : "normal" }, Math.max(0, claimedAt - job.created_at.getTime()) / 1000);
}

/** The queues whose backlog the gauge reports, by its `queue` label. */
export interface PolledWorkQueues {
  image: Pick<WorkQueue, "pending">;
  /** Absent when videos share the image queue: its backlog is counted once, as `image`. */
  video?: Pick<WorkQueue, "pending"> | undefined;
}

/** One poll of each work queue's backlog into the gauge; a queue that cannot be read keeps its last value and fails the poll. */
export async function pollWorkQueuePending(queues: PolledWorkQueues): Promise<void> {
  const polled = Object.entries(queues).filter((entry): entry is [string, Pick<WorkQueue, "pending">] => entry[1] !== undefined);
  const polls = polled.map(async ([queue, workQueue]) => {
    const pending = await workQueue.pending();
    for (const [lane, count] of Object.entries(pending)) workQueuePending.set({ queue, lane }, count);
  });
  const failed = (await Promise.allSettled(polls)).find((result) => result.status === "rejected");
  if (failed) throw failed.reason;
}
