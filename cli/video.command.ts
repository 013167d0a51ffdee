// `cutline video <file> --out <file>`: VideoService.SubmitVideo, then JobService.WatchJob with a
// progress bar on frames done (ETA from the worker), then the result from GetJob, written whole.
// The idempotency key is a hash of the video and the options: submitting again after a crash
// replays the first job instead of charging a second one; a job the server failed on its side is
// submitted once more under its follow-up key (follow-up-keys.ts).
import { create } from "@bufbuild/protobuf";
import { Code, ConnectError } from "@connectrpc/connect";
import { createHash } from "node:crypto";
import { readFile } from "node:fs/promises";
import { extname } from "node:path";
import cliProgress from "cli-progress";
import { creditsNumber, formatCredits } from "../services/common/credits.ts";
import { JobService, JobStatus, type Job } from "../services/common/gen/cutline/gateway/v1/job_service_pb.ts";
import { VideoService } from "../services/common/gen/cutline/gateway/v1/video_service_pb.ts";
import { Quality } from "../services/common/gen/cutline/inference/v1/quality_pb.ts";
import { VideoOptionsSchema } from "../services/common/gen/cutline/inference/v1/video_options_pb.ts";
import { isFinishedJobStatus } from "../services/common/finished-job-statuses.ts";
import { VIDEO_OUTPUTS, videoOutputNamed, type VideoFormatName } from "../services/common/video/video-formats.ts";
import { choice, colourOf, EXIT_FAILED, EXIT_OK, flag, requiredText, text, type Command } from "./command.ts";
import { CliError, describeError, withRetries } from "./connection.ts";
import { followUpKeyOf, worthAFollowUp, type JobEnd } from "./follow-up-keys.ts";
import { isDone, writeAtomically } from "./output-files.ts";

/** How long the upload call may take, in milliseconds (the gateway probes the video before answering). */
const SUBMIT_TIMEOUT_MS = 600_000;
const IDEMPOTENCY_KEY_VERSION = "v1";

const FORMATS: readonly VideoFormatName[] = VIDEO_OUTPUTS.map((output) => output.name);
const QUALITIES = ["fast", "balanced", "best"] as const;
const QUALITY_OF: Record<(typeof QUALITIES)[number], Quality> = { fast: Quality.FAST, balanced: Quality.BALANCED, best: Quality.BEST };

/** The format --out's extension names (.webm, .mov, .mp4), else WebM. */
function defaultFormatOf(out: string): VideoFormatName {
  return videoOutputNamed(extname(out).slice(1))?.name ?? "webm";
}

export const videoCommand: Command = {
  summary: "video <file> --out <file>                cut out a video, watching its progress",
  help: `Usage: cutline video <file> --out <file> [options]

Submits the video (MP4, MOV or WebM), watches the job (frames done, ETA) and writes the result to
--out once it succeeded. An --out that already exists is left alone (exit 0, nothing sent).
A job the server failed on its own side (internal, job_stuck, job_timeout, queue_full,
model_unavailable, hold_expired: nothing charged) is submitted once more under the key
<key>:after:<failed job id>, which a rerun derives again (never two charges).

Options:
  --out <file>         where the result goes                                       required
  --format <f>         webm (VP9 with alpha) | mov (ProRes 4444) | mp4 | mask     default: --out's extension, else webm
  --quality <q>        fast | balanced | best (best bills at the top rate)        default balanced
  --bg-color <#hex>    a solid background (MP4 only)
  --no-audio           drop the audio track
  --json               print {"jobId","status","creditsCharged","out","frames"} as the last line
  --grpc               talk gRPC instead of Connect`,
  options: { out: text, format: text, quality: text, "bg-color": text, "no-audio": flag, json: flag },
  async run(context) {
    if (context.positionals.length !== 1) throw new CliError("name one video file", 2);
    const input = context.positionals[0]!;
    const out = requiredText(context.values, "out");
    const format = choice(context.values, "format", FORMATS, defaultFormatOf(out));
    const quality = choice(context.values, "quality", QUALITIES, "balanced");
    const backgroundColor = colourOf(context.values, "bg-color") ?? "";
    const keepAudio = context.values["no-audio"] !== true;
    if (isDone(out)) {
      context.warn(`${out} already exists; nothing sent`);
      if (context.json) context.print(JSON.stringify({ jobId: null, status: "skipped", creditsCharged: 0, out }));
      return EXIT_OK;
    }
    const video = new Uint8Array(await readFile(input).catch((error: NodeJS.ErrnoException) => {
      throw new CliError(`${input}: ${error.code === "ENOENT" ? "no such file" : error.message}`);
    }));
    const options = create(VideoOptionsSchema, { format: videoOutputNamed(format)!.format, quality: QUALITY_OF[quality], backgroundColor, keepAudio });
    const baseKey = `cutline-cli-video-${IDEMPOTENCY_KEY_VERSION}-${createHash("sha256")
      .update(`${video.byteLength}:`)
      .update(video)
      .update(JSON.stringify([format, quality, backgroundColor, keepAudio]))
      .digest("hex")}`;
    const connection = context.connection();
    const jobs = connection.client(JobService);
    const submitAndWatch = async (idempotencyKey: string): Promise<Job> => {
      const submitted = await withRetries(() => connection.client(VideoService).submitVideo({ video, options, idempotencyKey }, { timeoutMs: SUBMIT_TIMEOUT_MS })).catch((error: unknown) => {
        if (error instanceof ConnectError && error.code === Code.Unimplemented) {
          throw new CliError(`this server has no video support (VideoService.SubmitVideo is not implemented at ${connection.url})`);
        }
        throw error;
      });
      return watch(submitted.job!, (jobId) => jobs.watchJob({ jobId }));
    };
    // A job the server failed on its side is replayed as failed under the same key: once more under
    // its follow-up key (follow-up-keys.ts), which a rerun derives again, so nothing is charged twice.
    let ended = await submitAndWatch(baseKey);
    for (let followUps = 0; worthAFollowUp(endOf(ended), followUps); followUps += 1) {
      context.warn(`job ${ended.id} failed on the server (${ended.errorReason}), nothing charged; submitting again`);
      ended = await submitAndWatch(followUpKeyOf(baseKey, ended.id));
    }
    if (ended.status !== JobStatus.SUCCEEDED) {
      const { reason, message } = ended.errorReason ? { reason: ended.errorReason, message: ended.errorMessage } : describeError(new Error(JobStatus[ended.status]));
      context.warn(`job ${ended.id} ${JobStatus[ended.status].toLowerCase()}: ${message} (${reason}); nothing charged`);
      if (context.json) context.print(JSON.stringify({ jobId: ended.id, status: JobStatus[ended.status].toLowerCase(), creditsCharged: 0, out: null }));
      return EXIT_FAILED;
    }
    const result = await withRetries(() => jobs.getJob({ jobId: ended.id, includeResult: true }));
    await writeAtomically(out, result.result);
    const charged = result.job?.creditsChargedMillicredits ?? ended.creditsChargedMillicredits;
    if (context.json) context.print(JSON.stringify({ jobId: ended.id, status: "succeeded", creditsCharged: creditsNumber(charged), out, frames: ended.framesTotal }));
    else context.print(`wrote ${out} (job ${ended.id}); ${formatCredits(charged)} credits charged`);
    return EXIT_OK;
  },
};

/** A video job's end, for the follow-up rule. */
export function endOf(job: Pick<Job, "id" | "status" | "errorReason">): JobEnd {
  return { jobId: job.id, failed: job.status === JobStatus.FAILED, reason: job.errorReason };
}

/** Watches the job to its end with a bar on frames done; a broken stream is opened again. */
async function watch(job: Job, open: (jobId: string) => AsyncIterable<{ job?: Job }>): Promise<Job> {
  const bar = new cliProgress.SingleBar(
    { format: " {bar} {percentage}% | {value}/{total} frames | ETA {eta}s | {status}", stream: process.stderr, hideCursor: true },
    cliProgress.Presets.shades_classic,
  );
  // Frames once the worker reports them; until then the job's progress, in percent.
  const show = (current: Job) => {
    const frames = current.framesTotal > 0;
    bar.setTotal(frames ? current.framesTotal : 100);
    bar.update(frames ? current.framesDone : Math.round(current.progress * 100), {
      eta: current.etaSeconds > 0 ? String(current.etaSeconds) : "?",
      status: JobStatus[current.status].toLowerCase(),
    });
  };
  bar.start(100, 0, { eta: "?", status: "" });
  show(job);
  let latest = job;
  try {
    while (!isFinishedJobStatus(latest.status)) {
      latest = await withRetries(async () => {
        let last = latest;
        for await (const update of open(latest.id)) {
          if (!update.job) continue;
          last = update.job;
          show(last);
        }
        return last;
      });
    }
  } finally {
    bar.stop();
  }
  return latest;
}
