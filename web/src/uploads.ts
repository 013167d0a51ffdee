// One image's way through the API: JobService.Submit with its bytes, WatchJob for live progress
// until a terminal state, then GetJob(include_result) for the cut-out. Every step reports to
// `update`; a refusal or a failed job ends as a Problem, never as an exception.
import type { Api } from "./api.ts";
import { jobProblem, problemOf, type Problem } from "./errors.ts";
import { isFinishedJobStatus } from "../../services/common/finished-job-statuses.ts";
import { JobStatus, type Job } from "../../services/common/gen/cutline/gateway/v1/job_service_pb.ts";
import { OutputFormat, type OutputSize } from "../../services/common/gen/cutline/inference/v1/image_options_pb.ts";

export type Phase = "waiting" | "uploading" | "queued" | "running" | "succeeded" | "failed" | "cancelled";

export interface Upload {
  id: string;
  /** Retries so far: each attempt is its own idempotency key; a network retry of one attempt reuses it. */
  attempt: number;
  file: File;
  /** The original as the browser shows it (undefined until made; HEIC may not display). */
  originalUrl: string;
  phase: Phase;
  /** 0 to 1, from the job's own progress. */
  progress: number;
  jobId?: string;
  chargedMillicredits?: bigint;
  processingMs?: number;
  resultUrl?: string;
  problem?: Problem;
}

/** An id that needs no secure context (crypto.randomUUID does, and a gateway may be plain http on a LAN). */
export function randomId(): string {
  const bytes = crypto.getRandomValues(new Uint8Array(16));
  return Array.from(bytes, (byte) => byte.toString(16).padStart(2, "0")).join("");
}

const PHASE_OF: Partial<Record<JobStatus, Phase>> = {
  [JobStatus.QUEUED]: "queued",
  [JobStatus.RUNNING]: "running",
  [JobStatus.SUCCEEDED]: "succeeded",
  [JobStatus.FAILED]: "failed",
  [JobStatus.CANCELLED]: "cancelled",
};


function fromJob(job: Job): Partial<Upload> {
  return {
    jobId: job.id,
    phase: PHASE_OF[job.status] ?? "queued",
    progress: job.status === JobStatus.SUCCEEDED ? 1 : job.progress,
    chargedMillicredits: job.creditsChargedMillicredits,
    processingMs: job.processingTimeMs,
  };
}

export async function runUpload(api: Api, upload: Upload, options: { size: OutputSize }, update: (change: Partial<Upload>) => void): Promise<void> {
  try {
    update({ phase: "uploading", progress: 0 });
    const image = new Uint8Array(await upload.file.arrayBuffer());
    // A retry of this very upload (same key) can never be charged twice.
    const { job: submitted } = await api.jobs.submit({ image, options: { format: OutputFormat.PNG, size: options.size }, idempotencyKey: `web-${upload.id}-${upload.attempt}` });
    if (!submitted) throw new Error("the server answered Submit without a job");
    let last = submitted;
    update(fromJob(submitted));
    if (!isFinishedJobStatus(submitted.status)) {
      for await (const { job } of api.jobs.watchJob({ jobId: submitted.id })) {
        if (!job) continue;
        last = job;
        update(fromJob(job));
        if (isFinishedJobStatus(job.status)) break;
      }
    }
    if (last.status === JobStatus.FAILED) {
      update({ phase: "failed", problem: jobProblem(last.errorReason, last.errorMessage) });
      return;
    }
    if (last.status !== JobStatus.SUCCEEDED) return;
    const { job, result } = await api.jobs.getJob({ jobId: last.id, includeResult: true });
    const blob = new Blob([result as Uint8Array<ArrayBuffer>], { type: job?.resultContentType || "image/png" });
    update({ ...(job ? fromJob(job) : {}), resultUrl: URL.createObjectURL(blob) });
  } catch (error) {
    update({ phase: "failed", problem: problemOf(error) });
  }
}
