// `POST /v1/matting` and `POST /v1/smart-crop`: an image in (multipart `image_file`/`image`, the
// raw body as image/*, or its URL in `image_url`: a form field, the query, or a JSON body), options
// as form fields, JSON fields or query parameters; the image back, or with `async=true` the job
// (202). The two differ only in the operation their options name.
import { create } from "@bufbuild/protobuf";
import { Code } from "@connectrpc/connect";
import { reasonError } from "../../common/errors.ts";
import { ImageOperation, ImageOptionsSchema, OutputFormat, OutputSize, type ImageOptions } from "../../common/gen/cutline/inference/v1/image_options_pb.ts";
import { aspectRatioOf, CROP_MARGIN_PERCENT_MAX } from "../../common/images/crop-options.ts";
import { qualityOf } from "../../common/images/quality.ts";
import type { Job } from "../../common/gen/cutline/orchestrator/v1/orchestrator_service_pb.ts";
import type { HttpRequest, HttpResponse, HttpRoutes } from "../../common/server.ts";
import type { Admission } from "../image-jobs.ts";
import type { ApiKeyOwner } from "../store/api-key.store.ts";
import type { ImageUrls } from "../image-urls.ts";
import { admitImageCall, rateLimitHeaders, removeBackgroundWhileWaiting, timingHeaders } from "./image-call.ts";
import { jobJson } from "./jobs.routes.ts";
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
// remove.bg's crop_margin in its relative form: a percent of the subject's size, "10" or "10%".
const CROP_MARGIN = /^(\d{1,4})%?$/;

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

/** The crop margin in percent, or invalid_option naming crop_margin and its bounds. */
function cropMarginPercentOf(raw: string | undefined): number {
  if (raw === undefined) return 0;
  const match = CROP_MARGIN.exec(raw.trim());
  if (match === null || Number(match[1]) > CROP_MARGIN_PERCENT_MAX) {
    throw reasonError(Code.InvalidArgument, "invalid_option", `crop_margin "${raw}" is not a percent of the subject's size from 0 to ${CROP_MARGIN_PERCENT_MAX}, like "10" or "10%"`);
  }
  return Number(match[1]);
}

/**
 * remove.bg-style options (`format`/`output_format`, `size`, `bg_color`, `crop`, `crop_margin`,
 * `aspect_ratio`) and `quality` (fast, balanced, best) -> ImageOptions for `operation`. A smart crop's format defaults to JPEG: it
 * keeps the input's background, so it needs no alpha.
 */
export function imageOptionsFrom(source: OptionSource, operation = ImageOperation.REMOVE_BACKGROUND): ImageOptions {
  const colour = first(source, "bg_color", "background_color");
  if (colour !== undefined && colour.toLowerCase() !== "transparent" && !HEX_COLOUR.test(colour)) {
    throw reasonError(Code.InvalidArgument, "invalid_option", `bg_color "${colour}" is not a hex colour like "ffffff", "#fff", or "transparent"`);
  }
  const aspectRatio = first(source, "aspect_ratio");
  const ratio = aspectRatioOf(aspectRatio ?? "");
  if (!ratio.ok) throw reasonError(Code.InvalidArgument, "invalid_option", ratio.message);
  const quality = qualityOf(first(source, "quality") ?? "");
  if (!quality.ok) throw reasonError(Code.InvalidArgument, "invalid_option", quality.message);
  const smartCrop = operation === ImageOperation.SMART_CROP;
  return create(ImageOptionsSchema, {
    // Matting leaves the operation unspecified (remove background), as it always has: its request fingerprints stay the same.
    operation: smartCrop ? operation : ImageOperation.UNSPECIFIED,
    format: choice(FORMATS, first(source, "output_format", "format"), "output_format") ?? (smartCrop ? OutputFormat.JPEG : OutputFormat.PNG),
    size: choice(SIZES, first(source, "size"), "size") ?? OutputSize.FULL,
    backgroundColor: colour === undefined || colour.toLowerCase() === "transparent" ? "" : colour.startsWith("#") ? colour : `#${colour}`,
    cropToSubject: choice(BOOLEANS, first(source, "crop"), "crop") ?? false,
    cropMarginPercent: cropMarginPercentOf(first(source, "crop_margin")),
    aspectRatio: aspectRatio ?? "",
    quality: quality.quality,
  });
}

/** Whether the call asks for the job rather than the image: `async=true` in the query or the form. */
export function asyncRequested(source: OptionSource): boolean {
  return choice(BOOLEANS, first(source, "async"), "async") ?? false;
}

const RETENTIONS: Record<string, boolean> = { none: true, account: false };

/** Whether the call asks to keep nothing: `retention=none` (the default, `account`, follows the account's setting). */
export function zeroRetentionRequested(source: OptionSource): boolean {
  return choice(RETENTIONS, first(source, "retention"), "retention") ?? false;
}

/** Form fields first, then the query string. */
export function optionSource(form: FormData | undefined, query: URLSearchParams): OptionSource {
  return (name) => {
    const value = form?.get(name);
    if (typeof value === "string" && value !== "") return value;
    return query.get(name) ?? undefined;
  };
}

/** One image as the caller gave it: its bytes, or a URL the gateway fetches them from. */
export type ImageInput = { bytes: Uint8Array } | { url: string; field: string };

/** What a call asks for, before any URL in it is fetched. */
export interface UploadRequest {
  image: ImageInput;
  background: ImageInput | undefined;
  /** The options' values: the body's fields first, then the query. */
  source: OptionSource;
}

export interface Upload {
  image: Uint8Array;
  options: ImageOptions;
  async: boolean;
  zeroRetention: boolean;
  /** Async: where the job's outcome is POSTed (`webhook_url`); checked by the submit before any hold. */
  webhookUrl: string | undefined;
}

/** Largest JSON body of POST /v1/matting, in bytes: the URLs (OUTBOUND_URL_LENGTH_MAX each) and a handful of options. */
export const JSON_UPLOAD_BODY_BYTES_MAX = 16 * 1024;

/**
 * Exactly one of a file and a URL for one image: neither (when required) or both is refused,
 * naming both fields.
 */
export function oneImageInput(
  file: Uint8Array | undefined,
  url: string | undefined,
  fields: { file: string; url: string; required: boolean },
): ImageInput | undefined {
  if (file !== undefined && url !== undefined) {
    throw reasonError(Code.InvalidArgument, "conflicting_image_inputs", `send either ${fields.file} or ${fields.url}, not both`);
  }
  if (file !== undefined) return { bytes: file };
  if (url !== undefined) return { url, field: fields.url };
  if (fields.required) throw reasonError(Code.InvalidArgument, "missing_image", `the request has neither ${fields.file} nor ${fields.url}: send the image in one of them`);
  return undefined;
}

/** A JSON object's fields as an option source: strings, numbers and booleans; the query after them. */
export function jsonSource(body: Record<string, unknown>, query: URLSearchParams): OptionSource {
  return (name) => {
    const value = body[name];
    if (value === undefined || value === null || value === "") return query.get(name) ?? undefined;
    if (typeof value === "string") return value;
    if (typeof value === "number" || typeof value === "boolean") return String(value);
    throw reasonError(Code.InvalidArgument, "invalid_option", `${name} must be a string, number or boolean, not ${Array.isArray(value) ? "an array" : "an object"}`);
  };
}

/** A JSON object body of at most `bytesMax` bytes, or invalid_request naming what to send. */
export async function readJsonObject(request: HttpRequest, headers: Headers, bytesMax: number, example: string): Promise<Record<string, unknown>> {
  const limitName = `a JSON body is limited to ${bytesMax} bytes`;
  refuseDeclaredLength(headers, bytesMax, limitName);
  const text = (await readBody(request, bytesMax, limitName)).toString("utf8");
  let body: unknown;
  try {
    body = JSON.parse(text);
  } catch {
    body = undefined;
  }
  if (typeof body !== "object" || body === null || Array.isArray(body)) {
    throw reasonError(Code.InvalidArgument, "invalid_request", `the body is not a JSON object; send one like ${example}`);
  }
  return body as Record<string, unknown>;
}

const RAW_IMAGE = /^(image\/[\w.+-]+|application\/octet-stream)\s*(;|$)/i;
const URL_ENCODED = /^application\/x-www-form-urlencoded\s*(;|$)/i;
const JSON_BODY = /^application\/json\s*(;|$)/i;

/** A body with no bytes: declared empty, or neither declared nor chunked. */
function hasNoBody(headers: Headers): boolean {
  const declared = headers.get("content-length");
  return declared === null ? headers.get("transfer-encoding") === null : Number(declared) === 0;
}

/** Reads what the call asks for from its body and query; no URL is fetched yet. */
async function readUploadRequest(request: HttpRequest, headers: Headers, query: URLSearchParams, uploadBytesMax: number, operation: ImageOperation): Promise<UploadRequest> {
  const contentType = headers.get("content-type") ?? "";
  if (isMultipart(contentType) || URL_ENCODED.test(contentType)) {
    if (isMultipart(contentType)) requireBoundary(contentType);
    const bodyBytesMax = uploadBytesMax + FORM_OVERHEAD_BYTES;
    const limitName = `UPLOAD_BYTES_MAX ${uploadBytesMax} plus ${FORM_OVERHEAD_BYTES} bytes of form overhead`;
    refuseDeclaredLength(headers, bodyBytesMax, limitName);
    const form = await parseForm(await readBody(request, bodyBytesMax, limitName), contentType);
    const source = optionSource(form, query);
    const fileOf = async (...names: string[]) => {
      const file = names.map((name) => form.get(name)).find((value) => value instanceof Blob);
      return file ? new Uint8Array(await file.arrayBuffer()) : undefined;
    };
    const image = oneImageInput(await fileOf("image_file", "image"), first(source, "image_url"), { file: "image_file", url: "image_url", required: true })!;
    const background = oneImageInput(await fileOf("bg_image_file"), first(source, "bg_image_url"), { file: "bg_image_file", url: "bg_image_url", required: false });
    return { image, background, source };
  }
  if (JSON_BODY.test(contentType)) {
    const body = await readJsonObject(request, headers, JSON_UPLOAD_BODY_BYTES_MAX, '{"image_url":"https://…","size":"full"}');
    const source = jsonSource(body, query);
    const image = oneImageInput(undefined, first(source, "image_url"), { file: "image_file", url: "image_url", required: true })!;
    const background = oneImageInput(undefined, first(source, "bg_image_url"), { file: "bg_image_file", url: "bg_image_url", required: false });
    return { image, background, source };
  }
  const source = optionSource(undefined, query);
  if (RAW_IMAGE.test(contentType)) {
    // A URL in the query conflicts with the body before a byte of it is read.
    oneImageInput(new Uint8Array(), first(source, "image_url"), { file: "the raw image body", url: "image_url", required: true });
    // Options come from the query alone: checked before the body is read.
    imageOptionsFrom(source, operation);
    zeroRetentionRequested(source);
    const limitName = "UPLOAD_BYTES_MAX";
    refuseDeclaredLength(headers, uploadBytesMax, limitName);
    const image = new Uint8Array(await readBody(request, uploadBytesMax, limitName));
    return { image: { bytes: image }, background: oneImageInput(undefined, first(source, "bg_image_url"), { file: "bg_image_file", url: "bg_image_url", required: false }), source };
  }
  const url = first(source, "image_url");
  if (url !== undefined && hasNoBody(headers)) {
    return { image: { url, field: "image_url" }, background: oneImageInput(undefined, first(source, "bg_image_url"), { file: "bg_image_file", url: "bg_image_url", required: false }), source };
  }
  throw reasonError(
    Code.InvalidArgument,
    "invalid_request",
    "send the image as multipart/form-data in the field image_file, as the raw body with Content-Type image/* (options in the query), or its URL in image_url (a form field, the query, or JSON {\"image_url\":..})",
  );
}

/** The bytes of one image: as sent, or fetched from its URL under the caller's plan's limit. */
export async function resolveImageInput(input: ImageInput, imageUrls: ImageUrls, admission: Admission, signal?: AbortSignal): Promise<Uint8Array> {
  if ("bytes" in input) return input.bytes;
  return imageUrls.fetch(input.url, { field: input.field, plan: admission.plan, signal });
}

/**
 * The image, its options and its background, from a multipart or URL-encoded form, a JSON body, a
 * raw image body or the query alone. Options are checked first; then any image_url and
 * bg_image_url are fetched: after the call was authenticated and admitted, before any hold. What
 * a URL brings is then checked exactly as an uploaded file is (ImageJobs).
 */
export async function readUpload(
  request: HttpRequest,
  headers: Headers,
  query: URLSearchParams,
  context: { limits: { uploadBytesMax: number }; imageUrls: ImageUrls; admission: Admission; signal?: AbortSignal; operation: ImageOperation },
): Promise<Upload> {
  const asked = await readUploadRequest(request, headers, query, context.limits.uploadBytesMax, context.operation);
  const options = imageOptionsFrom(asked.source, context.operation);
  const async = asyncRequested(asked.source);
  const zeroRetention = zeroRetentionRequested(asked.source);
  const webhookUrl = first(asked.source, "webhook_url");
  const image = await resolveImageInput(asked.image, context.imageUrls, context.admission, context.signal);
  if (asked.background) options.backgroundImage = await resolveImageInput(asked.background, context.imageUrls, context.admission, context.signal);
  return { image, options, async, zeroRetention, webhookUrl };
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

const QUOTED_OPERATIONS: Record<string, ImageOperation> = { matting: ImageOperation.REMOVE_BACKGROUND, smart_crop: ImageOperation.SMART_CROP };

/**
 * `POST /v1/quote` with the operation's own body (a form, a raw image, or `image_url` in the query
 * and no body) and `operation=matting|smart_crop` (default matting): the exact credits that call
 * would be charged, priced by the same code that prices it. Nothing is held and no job is made;
 * it takes a rate token but counts no call against the monthly quota.
 */
export async function quoteUpload(deps: RestDependencies, request: HttpRequest, response: HttpResponse, owner: ApiKeyOwner): Promise<{ costMillicredits: bigint; priceBookVersion: string }> {
  const headers = headersOf(request);
  const query = urlOf(request).searchParams;
  const fromQuery = choice(QUOTED_OPERATIONS, first(optionSource(undefined, query), "operation"), "operation");
  const admission = await deps.imageJobs.admit(owner, { slot: false, calls: 0 });
  const aborted = new AbortController();
  // The response's close, not the request's: a request closes once its body is read.
  response.once("close", () => aborted.abort());
  const asked = await readUploadRequest(request, headers, query, deps.limits.uploadBytesMax, fromQuery ?? ImageOperation.REMOVE_BACKGROUND);
  const operation = choice(QUOTED_OPERATIONS, first(asked.source, "operation"), "operation") ?? ImageOperation.REMOVE_BACKGROUND;
  const options = imageOptionsFrom(asked.source, operation);
  try {
    const image = await resolveImageInput(asked.image, deps.imageUrls, admission, aborted.signal);
    if (asked.background) options.backgroundImage = await resolveImageInput(asked.background, deps.imageUrls, admission, aborted.signal);
    return await deps.imageJobs.quote(admission, image, options);
  } finally {
    admission.release();
  }
}

/** One image operation's route: its path, and the operation its options name. */
export interface ImageRoute {
  path: string;
  operation: ImageOperation;
}

export const MATTING_ROUTE: ImageRoute = { path: "/v1/matting", operation: ImageOperation.REMOVE_BACKGROUND };
export const SMART_CROP_ROUTE: ImageRoute = { path: "/v1/smart-crop", operation: ImageOperation.SMART_CROP };

export function createMattingRoutes(deps: RestDependencies): HttpRoutes {
  return createImageRoutes(deps, MATTING_ROUTE);
}

export function createSmartCropRoutes(deps: RestDependencies): HttpRoutes {
  return createImageRoutes(deps, SMART_CROP_ROUTE);
}

function createImageRoutes(deps: RestDependencies, route: ImageRoute): HttpRoutes {
  return async (request, response) => {
    const url = urlOf(request);
    if (url.pathname !== route.path) return false;
    if (request.method !== "POST") {
      sendMethodNotAllowed(response, "POST", "use POST with a multipart/form-data body or a raw image body");
      return true;
    }
    let admission: Admission | undefined;
    try {
      // Everything that can refuse the call is decided on the headers, before any body byte is read.
      // `async=true` in the query takes no concurrency slot; in the form it is known only after the body.
      const call = await admitImageCall(deps, request, response, () => !asyncRequested(optionSource(undefined, url.searchParams)));
      admission = call.admission;
      const upload = await readUpload(request, call.headers, url.searchParams, { limits: deps.limits, imageUrls: deps.imageUrls, admission, signal: call.signal, operation: route.operation });
      if (upload.async) {
        const job = await deps.imageJobs.submit(admission, upload.image, upload.options, call.idempotencyKey, { zeroRetention: upload.zeroRetention, webhookUrl: upload.webhookUrl });
        sendJson(response, 202, jobJson(job, deps.resultLinks, request), { "x-job-id": job.id, location: `/v1/jobs/${job.id}`, ...rateLimitHeaders(admission) });
        return true;
      }
      const result = await removeBackgroundWhileWaiting(deps, call, upload.image, upload.options, { zeroRetention: upload.zeroRetention });
      sendImage(response, admission, result.job, result.image, result.contentType);
    } catch (error) {
      sendError(request, response, error, deps.log);
    } finally {
      admission?.release();
    }
    return true;
  };
}
