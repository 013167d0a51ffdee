// `POST /v1/video/matting`: a video in (multipart `video_file`, or the raw body as video/* with
// options in the query), options as form fields or query parameters (format=webm|mov|mp4|mask,
// bg_color, bg_image_file, quality=fast|balanced|best, webhook_url), Idempotency-Key; 202 with
// the job, the same JSON as an asynchronous image job. Video jobs are asynchronous only.
import { Code } from "@connectrpc/connect";
import { reasonError } from "../../common/errors.ts";
import { qualityOf } from "../../common/images/quality.ts";
import type { Job } from "../../common/gen/cutline/orchestrator/v1/orchestrator_service_pb.ts";
import type { HttpRequest, HttpResponse, HttpRoutes } from "../../common/server.ts";
import { VIDEO_OUTPUTS } from "../../common/video/video-formats.ts";
import type { Admission } from "../image-jobs.ts";
import type { ApiKeyOwner } from "../store/api-key.store.ts";
import { HEX_COLOUR, videoOptionsOf, type VideoJobs } from "../video-jobs.ts";
import { admitImageCall, rateLimitHeaders } from "./image-call.ts";
import { jobJson } from "./jobs.routes.ts";
import { optionSource, type OptionSource } from "./matting.routes.ts";
import { sendError, sendJson, sendMethodNotAllowed, urlOf, type RestDependencies } from "./rest-support.ts";
import { headersOf } from "./upload.admission.ts";
import { readVideoUpload } from "./video-upload.ts";

export const VIDEO_MATTING_PATH = "/v1/video/matting";

const FORMATS = Object.fromEntries(VIDEO_OUTPUTS.map((output) => [output.name, output.format]));
const BOOLEANS: Record<string, boolean> = { true: true, "1": true, yes: true, false: false, "0": false, no: false };

function choice<T>(table: Record<string, T>, raw: string | undefined, name: string): T | undefined {
  if (raw === undefined || raw === "") return undefined;
  const value = table[raw.toLowerCase()];
  if (value === undefined) throw reasonError(Code.InvalidArgument, "invalid_option", `${name} must be one of ${Object.keys(table).join(", ")}; got "${raw}"`);
  return value;
}

/** The video options named in the form or the query, checked before anything is held. */
export function videoOptionsFrom(source: OptionSource) {
  const colour = source("bg_color") ?? source("background_color");
  if (colour !== undefined && !HEX_COLOUR.test(colour)) throw reasonError(Code.InvalidArgument, "invalid_option", `bg_color "${colour}" is not a hex colour like "ffffff" or "#fff"`);
  const quality = qualityOf(source("quality") ?? "");
  if (!quality.ok) throw reasonError(Code.InvalidArgument, "invalid_option", quality.message);
  return videoOptionsOf({
    format: choice(FORMATS, source("format") ?? source("output_format"), "format"),
    backgroundColor: colour === undefined ? "" : colour.startsWith("#") ? colour : `#${colour}`,
    quality: quality.quality,
    keepAudio: choice(BOOLEANS, source("keep_audio"), "keep_audio"),
  });
}

/** The operation name POST /v1/quote takes for a video (`?operation=video_matting`), as its JSON body does. */
export const VIDEO_QUOTE_OPERATION = "video_matting";

/** A POST /v1/quote whose body is a video: `?operation=video_matting` (a form or a raw body), or a raw video/* body. */
export function isVideoQuote(request: HttpRequest): boolean {
  const operation = urlOf(request).searchParams.get("operation");
  return operation === VIDEO_QUOTE_OPERATION || (operation === null && /^video\//i.test(request.headers["content-type"] ?? ""));
}

/**
 * `POST /v1/quote` with the body POST /v1/video/matting takes (multipart `video_file`, or the raw
 * video) and its options: the exact credits that call would hold, by the same checks and the same
 * pricing (VideoJobs.quote). The upload goes to a temporary file, probed, and removed before the
 * answer; nothing is held or stored.
 */
export async function quoteVideoUpload(deps: RestDependencies & { videoJobs: VideoJobs }, request: HttpRequest, response: HttpResponse, owner: ApiKeyOwner): Promise<{ costMillicredits: bigint; priceBookVersion: string }> {
  const url = urlOf(request);
  const admission = await deps.imageJobs.admit(owner, { slot: false, calls: 0 });
  const aborted = new AbortController();
  // The response's close, not the request's: a request closes once its body is read.
  response.once("close", () => aborted.abort());
  let cleanUp: (() => Promise<void>) | undefined;
  try {
    videoOptionsFrom(optionSource(undefined, url.searchParams));
    const { bytesMax, limitName } = deps.videoJobs.bytesLimitOf(admission);
    const upload = await readVideoUpload(request, headersOf(request), { videoBytesMax: bytesMax, videoLimitName: limitName, backgroundBytesMax: deps.limits.uploadBytesMax });
    cleanUp = upload.cleanUp;
    const form = new Map(upload.fields);
    const source: OptionSource = (name) => {
      const value = form.get(name);
      return value !== undefined && value !== "" ? value : (url.searchParams.get(name) ?? undefined);
    };
    const quote = await deps.videoJobs.quote(admission, upload.video, { options: videoOptionsFrom(source), backgroundImage: upload.backgroundImage }, aborted.signal);
    return { costMillicredits: quote.costMillicredits, priceBookVersion: quote.priceBookVersion };
  } finally {
    admission.release();
    await cleanUp?.();
  }
}

export function createVideoRoutes(deps: RestDependencies & { videoJobs: VideoJobs }): HttpRoutes {
  return async (request, response) => {
    const url = urlOf(request);
    if (url.pathname !== VIDEO_MATTING_PATH) return false;
    if (request.method !== "POST") {
      sendMethodNotAllowed(response, "POST", "use POST with a multipart/form-data body (video_file) or a raw video body");
      return true;
    }
    let admission: Admission | undefined;
    let cleanUp: (() => Promise<void>) | undefined;
    let answer: { job: Job } | { error: unknown };
    try {
      // Asynchronous only: no concurrency slot, as for async image submits.
      const call = await admitImageCall(deps, request, response, () => false);
      admission = call.admission;
      // The query's options are checked before a byte of the video is read.
      videoOptionsFrom(optionSource(undefined, url.searchParams));
      if (["false", "0", "no"].includes((url.searchParams.get("async") ?? "").toLowerCase())) {
        throw reasonError(Code.InvalidArgument, "invalid_option", "video jobs are asynchronous only: drop async=false, and watch the job (GET /v1/jobs/{id}, JobService.WatchJob) or pass webhook_url");
      }
      const { bytesMax, limitName } = deps.videoJobs.bytesLimitOf(admission);
      const upload = await readVideoUpload(request, call.headers, { videoBytesMax: bytesMax, videoLimitName: limitName, backgroundBytesMax: deps.limits.uploadBytesMax });
      cleanUp = upload.cleanUp;
      const form = new Map(upload.fields);
      const source: OptionSource = (name) => {
        const value = form.get(name);
        return value !== undefined && value !== "" ? value : (url.searchParams.get(name) ?? undefined);
      };
      const job = await deps.videoJobs.submit(
        admission,
        upload.video,
        { options: videoOptionsFrom(source), idempotencyKey: call.idempotencyKey, webhookUrl: source("webhook_url"), backgroundImage: upload.backgroundImage },
        call.signal,
      );
      answer = { job };
    } catch (error) {
      answer = { error };
    } finally {
      admission?.release();
      // Before the answer: a client that reads it finds nothing of its upload left on disk.
      await cleanUp?.();
    }
    if ("error" in answer) sendError(request, response, answer.error, deps.log);
    else sendJson(response, 202, jobJson(answer.job, deps.resultLinks, request), { "x-job-id": answer.job.id, location: `/v1/jobs/${answer.job.id}`, ...rateLimitHeaders(admission!) });
    return true;
  };
}
