import { Counter, Gauge, Histogram, register } from "prom-client";
import type { BatcherObserver } from "../domain/request.batcher.ts";

// Registered once per process on prom-client's default registry: every engine in the process
// (tests start several) shares the series, as Prometheus expects one per name.
function histogram(name: string, help: string, buckets: number[], labelNames: string[] = []) {
  return (register.getSingleMetric(name) as Histogram<string> | undefined) ?? new Histogram({ name, help, buckets, labelNames });
}

const batchSize = histogram("cutline_inference_batch_size", "Images per model run (images).", [1, 2, 4, 8, 16, 32, 64]);
const queueWaitSeconds = histogram(
  "cutline_inference_queue_wait_seconds",
  "Time an image waited in the batcher's queue before its batch started, by lane (seconds).",
  [0.001, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30],
  ["lane"],
);
const runSeconds = histogram(
  "cutline_inference_run_seconds",
  "Wall time of one model run (one batch) (seconds).",
  [0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2, 4, 8, 16],
);
const pipelineSeconds = histogram(
  "cutline_inference_pipeline_seconds",
  "Whole time of one image from bytes in to bytes out: decode, queue, model, refine, encode (seconds).",
  [0.05, 0.1, 0.25, 0.5, 1, 2, 4, 8, 16, 32],
);
const queueDepth =
  (register.getSingleMetric("cutline_inference_queue_depth") as Gauge<string> | undefined) ??
  new Gauge({ name: "cutline_inference_queue_depth", help: "Images waiting in the batcher's queue (images)." });

function gauge(name: string, help: string, labelNames: string[] = []) {
  return (register.getSingleMetric(name) as Gauge<string> | undefined) ?? new Gauge({ name, help, labelNames });
}

const executionProvider = gauge(
  "cutline_inference_execution_provider",
  "1 for the onnxruntime execution provider in use (provider: cuda or cpu), labelled with the configured list (requested); provider=\"cpu\" with cuda requested is a CPU fallback.",
  ["provider", "requested"],
);
const tasksInFlight = gauge("cutline_inference_tasks_in_flight", "Work-queue tasks this process holds: pulled and not yet settled (tasks).");
const tasksTotal =
  (register.getSingleMetric("cutline_inference_tasks_total") as Counter<string> | undefined) ??
  new Counter({ name: "cutline_inference_tasks_total", help: "Work-queue tasks that reached a final outcome here, by kind (image, video) and outcome (succeeded, failed); retried faults are not counted until their last delivery.", labelNames: ["kind", "outcome"] });

/** The provider the model session runs on, and the list INFERENCE_EXECUTION_PROVIDERS asked for. */
export function observeExecutionProvider(provider: string, requested: readonly string[]): void {
  executionProvider.reset();
  executionProvider.set({ provider, requested: requested.join(",") }, 1);
}

export function taskTaken(): void {
  tasksInFlight.inc();
}

export function taskReleased(): void {
  tasksInFlight.dec();
}

export function countTask(kind: "image" | "video", outcome: "succeeded" | "failed"): void {
  tasksTotal.inc({ kind, outcome });
}

export const batcherMetrics: BatcherObserver = {
  batchStarted: (size) => batchSize.observe(size),
  batchFinished: (_size, runMs) => runSeconds.observe(runMs / 1000),
  dequeued: (waitMs, highPriority) => queueWaitSeconds.observe({ lane: highPriority ? "high" : "normal" }, waitMs / 1000),
  depthChanged: (depth) => queueDepth.set(depth),
};

export function observePipeline(milliseconds: number): void {
  pipelineSeconds.observe(milliseconds / 1000);
}
