// `POST /v1/matting`: an image in (multipart `image_file`/`image`, or the raw body as image/*),
// options as form fields or query parameters; the image back, or with `async=true` the job (202).
import { create } from "@bufbuild/protobuf";
import { Code } from "@connectrpc/connect";
import { reasonError } from "../../common/errors.ts";
import { ImageOptionsSchema, OutputFormat, OutputSize, type ImageOptions } from "../../common/gen/cutline/inference/v1/image_options_pb.ts";
import type { Job } from "../../common/gen/cutline/orchestrator/v1/orchestrator_service_pb.ts";
import type { HttpRequest, HttpResponse, HttpRoutes } from "../../common/server.ts";
import { authenticate } from "../authentication.ts";
import { checkedIdempotencyKey, type Admission } from "../image-jobs.ts";
import { jobJson, timingHeaders } from "./jobs.routes.ts";
import { headersOf } from "./upload.admission.ts";
import { formatCredits } from "../../common/credits.ts";
import { isMultipart, parseForm, readBody, refuseDeclaredLength, requireBoundary, sendError, sendJson, sendMethodNotAllowed, urlOf, type RestDependencies } from "./rest-support.ts";

// Room for multipart boundaries and option fields on top of the image itself.
export const FORM_OVERHEAD_BYTES = 64 * 1024;

const FORMATS: Record<string, OutputFormat> = {
  png: OutputFormat.PNG,
  webp: OutputFormat.WEBP,
  jpg: OutputFormat.JPEG,
  jpeg: OutputFormat.JPEG,
  mask: OutputFormat.MASK,
};
const SIZES: Record<string, OutputSize> = {
  preview: OutputSize.PREVIEW,
  small: OutputSize.PREVIEW,
  full: OutputSize.FULL,
  auto: OutputSize.FULL,
  hd: OutputSize.HD,
};
const BOOLEANS: Record<string, boolean> = { true: true, "1": true, yes: true, false: false, "0": false, no: false };
// What inference accepts (its parseHexColour), checked here so a typo is refused before any hold.
const HEX_COLOUR = /^#?([0-9a-f]{3}|[0-9a-f]{6})$/i;
const ASPECT_RATIO = /^\d{1,3}:\d{1,3}$/;

/** An option's value by name: a form field first, then the query parameter. */
export type OptionSource = (name: string) => string | undefined;

function choice<T>(table: Record<string, T>, raw: string | undefined, name: string): T | undefined {
  if (raw === undefined) return undefined;
  const value = table[raw.toLowerCase()];
  if (value === undefined) throw reasonError(Code.InvalidArgument, "invalid_option", `${name} must be one of ${Object.keys(table).join(", ")}; got "${raw}"`);
  return value;
}

function first(source: OptionSource, ...names: string[]): string | undefined {
  for (const name of names) {
    const value = source(name);
    if (value !== undefined && value !== "") return value;
  }
  return undefined;
}

/** remove.bg-style options (`format`/`output_format`, `size`, `bg_color`, `crop`, `aspect_ratio`) -> ImageOptions. */
export function imageOptionsFrom(source: OptionSource): ImageOptions {
  const colour = first(source, "bg_color", "background_color");
  if (colour !== undefined && colour.toLowerCase() !== "transparent" && !HEX_COLOUR.test(colour)) {
    throw reasonError(Code.InvalidArgument, "invalid_option", `bg_color "${colour}" is not a hex colour like "ffffff", "#fff", or "transparent"`);
  }
  const aspectRatio = first(source, "aspect_ratio");
  if (aspectRatio !== undefined && !ASPECT_RATIO.test(aspectRatio)) {
    throw reasonError(Code.InvalidArgument, "invalid_option", `aspect_ratio "${aspectRatio}" is not a ratio like "16:9" or "1:1"`);
  }
  return create(ImageOptionsSchema, {
    format: choice(FORMATS, first(source, "output_format", "format"), "output_format") ?? OutputFormat.PNG,
    size: choice(SIZES, first(source, "size"), "size") ?? OutputSize.FULL,
    backgroundColor: colour === undefined || colour.toLowerCase() === "transparent" ? "" : colour.startsWith("#") ? colour : `#${colour}`,
    cropToSubject: choice(BOOLEANS, first(source, "crop"), "crop") ?? false,
    aspectRatio: aspectRatio ?? "",
  });
}

/** Whether the call asks for the job rather than the image: `async=true` in the query or the form. */
export function asyncRequested(source: OptionSource): boolean {
  return choice(BOOLEANS, first(source, "async"), "async") ?? false;
}

/** Form fields first, then the query string. */
export function optionSource(form: FormData | undefined, query: URLSearchParams): OptionSource {
  return (name) => {
    const value = form?.get(name);
    if (typeof value === "string" && value !== "") return value;
    return query.get(name) ?? undefined;
  };
}

/** The X-RateLimit-* headers from the admission: the per-minute budget after this call. */
export function rateLimitHeaders(admission: Admission): Record<string, string> {
  if (!admission.rate) return {};
  return {
    "x-ratelimit-limit": String(admission.rate.limit),
    "x-ratelimit-remaining": String(admission.rate.remaining),
    "x-ratelimit-reset": String(admission.rate.resetAtSeconds),
  };
}

interface Upload {
  image: Uint8Array;
  options: ImageOptions;
  async: boolean;
}

/** The image and options from a multipart form or a raw image body. */
async function readUpload(request: HttpRequest, headers: Headers, query: URLSearchParams, uploadBytesMax: number): Promise<Upload> {
  const contentType = headers.get("content-type") ?? "";
  if (isMultipart(contentType)) {
    requireBoundary(contentType);
    const bodyBytesMax = uploadBytesMax + FORM_OVERHEAD_BYTES;
    const limitName = `UPLOAD_BYTES_MAX ${uploadBytesMax} plus ${FORM_OVERHEAD_BYTES} bytes of form overhead`;
    refuseDeclaredLength(headers, bodyBytesMax, limitName);
    const form = await parseForm(await readBody(request, bodyBytesMax, limitName), contentType);
    const file = form.get("image_file") ?? form.get("image");
    if (!(file instanceof Blob)) throw reasonError(Code.InvalidArgument, "missing_image", "the form has no image_file field");
    const source = optionSource(form, query);
    const options = imageOptionsFrom(source);
    const backgroundFile = form.get("bg_image_file");
    if (backgroundFile instanceof Blob) options.backgroundImage = new Uint8Array(await backgroundFile.arrayBuffer());
    return { image: new Uint8Array(await file.arrayBuffer()), options, async: asyncRequested(source) };
  }
  if (/^(image\/[\w.+-]+|application\/octet-stream)\s*(;|$)/i.test(contentType)) {
    const source = optionSource(undefined, query);
    // Options come from the query alone: checked before the body is read.
    const options = imageOptionsFrom(source);
    const limitName = "UPLOAD_BYTES_MAX";
    refuseDeclaredLength(headers, uploadBytesMax, limitName);
    const image = new Uint8Array(await readBody(request, uploadBytesMax, limitName));
    return { image, options, async: asyncRequested(source) };
  }
  throw reasonError(
    Code.InvalidArgument,
    "invalid_request",
    "send the image as multipart/form-data in the field image_file, or as the raw body with Content-Type image/* (options in the query)",
  );
}

function sendImage(response: HttpResponse, admission: Admission, job: Job, image: Uint8Array, contentType: string): void {
  response.writeHead(200, {
    "content-type": contentType,
    "content-length": String(image.byteLength),
    "x-job-id": job.id,
    "x-credits-charged": formatCredits(job.chargedMillicredits),
    "x-credits-remaining": formatCredits(job.availableMillicredits),
    ...timingHeaders(job),
    ...rateLimitHeaders(admission),
  });
  response.end(image);
}

export function createMattingRoutes(deps: RestDependencies): HttpRoutes {
  return async (request, response) => {
    const url = urlOf(request);
    if (url.pathname !== "/v1/matting") return false;
    if (request.method !== "POST") {
      sendMethodNotAllowed(response, "POST", "use POST with a multipart/form-data body or a raw image body");
      return true;
    }
    let admission: Admission | undefined;
    try {
      // Everything that can refuse the call is decided on the headers, before any body byte is read.
      const headers = headersOf(request);
      const owner = await authenticate(deps.apiKeys, headers);
      const idempotencyKey = checkedIdempotencyKey(headers.get("idempotency-key"));
      // `async=true` in the query takes no concurrency slot; in the form it is known only after the body.
      const asyncFromQuery = asyncRequested(optionSource(undefined, url.searchParams));
      admission = await deps.imageJobs.admit(owner, { slot: !asyncFromQuery });
      const upload = await readUpload(request, headers, url.searchParams, deps.limits.uploadBytesMax);
      if (upload.async) {
        const job = await deps.imageJobs.submit(admission, upload.image, upload.options, idempotencyKey);
        sendJson(response, 202, jobJson(job, deps.resultLinks, request), { "x-job-id": job.id, location: `/v1/jobs/${job.id}`, ...rateLimitHeaders(admission) });
        return true;
      }
      const aborted = new AbortController();
      response.once("close", () => aborted.abort());
      const result = await deps.imageJobs.removeBackground(admission, upload.image, upload.options, idempotencyKey, aborted.signal);
      sendImage(response, admission, result.job, result.image, result.contentType);
    } catch (error) {
      sendError(request, response, error, deps.log);
    } finally {
      admission?.release();
    }
    return true;
  };
}
