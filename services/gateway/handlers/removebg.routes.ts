// remove.bg's API as a drop-in: `POST /v1.0/removebg` and `GET /v1.0/account`, so a remove.bg
// client works with only its base URL changed. The image runs on the one job path (admission,
// billing, limits and idempotency exactly as POST /v1/matting); parameters are mapped by
// domain/removebg-params.ts; image_url and bg_image_url are fetched as on /v1/matting (ImageUrls);
// every refusal on /v1.0/ answers in remove.bg's shape
// {"errors":[{"title","code","detail"}]} with its codes and statuses (400, 402, 403, 429).
import { timestampDate } from "@bufbuild/protobuf/wkt";
import { Code, ConnectError } from "@connectrpc/connect";
import { zipSync, type ZipOptions } from "fflate";
import sharp from "sharp";
import { creditsNumber, formatCredits } from "../../common/credits.ts";
import { reasonError, reasonOf } from "../../common/errors.ts";
import type { Logger } from "../../common/logging.ts";
import type { HttpRequest, HttpResponse, HttpRoutes } from "../../common/server.ts";
import type { AccountReads } from "../account-reads.ts";
import { authenticate } from "../authentication.ts";
import { splitCreditBuckets } from "../domain/credit-buckets.ts";
import { removeBgRequestOf, type RemoveBgError, type RemoveBgFields } from "../domain/removebg-params.ts";
import type { Admission, ImageResult } from "../image-jobs.ts";
import { IMAGE_URL_CODE_BY_REASON, type ImageUrlReason } from "../image-urls.ts";
import { admitImageCall, rateLimitHeaders, removeBackgroundWhileWaiting, type AdmittedCall } from "./image-call.ts";
import { FORM_OVERHEAD_BYTES } from "./matting.routes.ts";
import { ClientGone, isMultipart, parseForm, readBody, refuseDeclaredLength, requireBoundary, type RestDependencies } from "./rest-support.ts";
import { ClientGone as RouteClientGone, nativeErrorOf, writeJson, type ErrorWriter, type RestRoute } from "./route-table.ts";
import { headersOf } from "./upload.admission.ts";
import type { ApiKeyStore } from "../store/api-key.store.ts";

/** The paths remove.bg's API lives under: refusals there, 404 included, are in its shape. */
export const REMOVEBG_PATH_PREFIX = "/v1.0/";

/** Metadata that carries remove.bg's own code and title on a refusal raised by these routes. */
const VENDOR_CODE = "removebg-code";
const VENDOR_TITLE = "removebg-title";

/** Bytes of the base64 text that encodes `bytes` bytes (padding included). */
export function base64LengthOf(bytes: number): number {
  return 4 * Math.ceil(bytes / 3);
}

/**
 * Largest remove.bg request body, in bytes: the image at UPLOAD_BYTES_MAX as base64 (its larger
 * encoding), one bg_image_file of UPLOAD_BYTES_MAX, and the form's own overhead.
 */
export function removeBgBodyBytesMax(uploadBytesMax: number): number {
  return base64LengthOf(uploadBytesMax) + uploadBytesMax + FORM_OVERHEAD_BYTES;
}

/** A refusal with remove.bg's code and title; `reason` is ours (test/failure-codes.spec.ts). */
function vendorRefusal(error: RemoveBgError, reason: "invalid_option" | "missing_image" | "invalid_request" | ImageUrlReason = "invalid_option", cause?: unknown): ConnectError {
  return reasonError(Code.InvalidArgument, reason, error.detail, { cause, metadata: { [VENDOR_CODE]: error.code, [VENDOR_TITLE]: error.title } });
}

interface VendorShape {
  status: number;
  code: string;
  title: string;
}

const AUTH_FAILED: VendorShape = { status: 403, code: "auth_failed", title: "API Key invalid" };
const RATE_LIMITED: VendorShape = { status: 429, code: "rate_limit_exceeded", title: "Rate limit exceeded" };
const UNREADABLE: VendorShape = { status: 400, code: "failed_to_read_image", title: "There was an error reading the image." };
const WRONG_TYPE: VendorShape = { status: 400, code: "invalid_file_type", title: "Invalid file type" };
const TOO_LARGE: VendorShape = { status: 400, code: "resolution_too_high", title: "Image resolution too high" };

/** Our reasons as remove.bg answers them (its OpenAPI 1.0.0 codes and titles); others keep ours. */
const VENDOR_BY_REASON: Readonly<Record<string, VendorShape>> = {
  missing_api_key: AUTH_FAILED,
  invalid_api_key: AUTH_FAILED,
  insufficient_credits: { status: 402, code: "insufficient_credits", title: "Insufficient credits" },
  rate_limited: RATE_LIMITED,
  concurrency_limited: RATE_LIMITED,
  monthly_quota_exceeded: RATE_LIMITED,
  read_rate_limited: RATE_LIMITED,
  queue_full: RATE_LIMITED,
  too_many_bytes: { status: 400, code: "file_too_large", title: "File too large" },
  unsupported_format: WRONG_TYPE,
  animated_gif: WRONG_TYPE,
  corrupt_image: UNREADABLE,
  empty_image: UNREADABLE,
  too_many_pixels: TOO_LARGE,
  resolution_too_large: TOO_LARGE,
  missing_image: { status: 400, code: "missing_source", title: "No image given" },
};

/** The remove.bg body of any error: status, `{title, code, detail}` and headers (Retry-After on 429). */
export function removeBgErrorOf(error: unknown): { status: number; body: { title: string; code: string; detail?: string }; headers: Record<string, string> } {
  const native = nativeErrorOf(error);
  if (!(error instanceof ConnectError)) return native;
  const vendorCode = error.metadata.get(VENDOR_CODE);
  if (vendorCode) return { status: 400, body: { title: error.metadata.get(VENDOR_TITLE) ?? native.body.title, code: vendorCode, detail: error.rawMessage }, headers: native.headers };
  const shape = VENDOR_BY_REASON[reasonOf(error) ?? ""];
  if (!shape) return native;
  // remove.bg's 403 body is exactly this, and its clients compare it whole.
  if (shape === AUTH_FAILED) return { status: 403, body: { title: shape.title, code: shape.code }, headers: native.headers };
  return { status: shape.status, body: { title: shape.title, code: shape.code, detail: error.rawMessage }, headers: native.headers };
}

/** The remove.bg family's error writer: its shape and statuses; a server fault's cause stays in the log. */
export const writeRemoveBgError: ErrorWriter = (request, response, error, log) => {
  if (error instanceof ClientGone || error instanceof RouteClientGone) {
    log.info({ url: request.url }, error.message);
    return;
  }
  const { status, body, headers } = removeBgErrorOf(error);
  if (status >= 500) log.error({ err: error instanceof ConnectError ? (error.cause ?? error) : error, url: request.url }, "remove.bg route failed");
  else log.info({ url: request.url, code: body.code }, body.detail ?? body.title);
  if (response.headersSent || response.destroyed) {
    if (!response.writableEnded) response.destroy();
    return;
  }
  if (!request.complete) headers.connection = "close";
  writeJson(response, status, { errors: [body] }, headers);
};

interface RemoveBgBody extends RemoveBgFields {
  imageFile?: Uint8Array;
  backgroundFile?: Uint8Array;
}

/** The fields of a JSON object: scalars as remove.bg's form values would read ("true", "50%"). */
function jsonFields(text: string): Record<string, string> {
  let parsed: unknown;
  try {
    parsed = JSON.parse(text);
  } catch {
    throw reasonError(Code.InvalidArgument, "invalid_request", "the body is not valid JSON; send a JSON object with Content-Type: application/json");
  }
  if (typeof parsed !== "object" || parsed === null || Array.isArray(parsed)) throw reasonError(Code.InvalidArgument, "invalid_request", "send a JSON object of remove.bg parameters");
  const fields: Record<string, string> = {};
  for (const [name, value] of Object.entries(parsed)) {
    if (value === null || value === undefined) continue;
    if (typeof value === "object") throw reasonError(Code.InvalidArgument, "invalid_request", `the JSON field ${name} must be a string, number or boolean`);
    fields[name] = String(value);
  }
  return fields;
}

/** The body in any of remove.bg's three encodings, bounded by removeBgBodyBytesMax before it is read whole. */
async function readRemoveBgBody(request: HttpRequest, headers: Headers, uploadBytesMax: number): Promise<RemoveBgBody> {
  const contentType = headers.get("content-type") ?? "";
  const bytesMax = removeBgBodyBytesMax(uploadBytesMax);
  const limitName = `UPLOAD_BYTES_MAX ${uploadBytesMax} as base64, one bg_image_file and ${FORM_OVERHEAD_BYTES} bytes of form overhead`;
  const json = /^application\/json\s*(;|$)/i.test(contentType);
  const urlencoded = /^application\/x-www-form-urlencoded\s*(;|$)/i.test(contentType);
  if (!isMultipart(contentType) && !json && !urlencoded) {
    throw reasonError(Code.InvalidArgument, "invalid_request", "send the parameters as multipart/form-data, application/json or application/x-www-form-urlencoded");
  }
  if (isMultipart(contentType)) requireBoundary(contentType);
  refuseDeclaredLength(headers, bytesMax, limitName);
  const body = await readBody(request, bytesMax, limitName);
  if (json) return { fields: jsonFields(body.toString("utf8")), files: new Set() };
  if (urlencoded) return { fields: Object.fromEntries(new URLSearchParams(body.toString("utf8"))), files: new Set() };
  const form = await parseForm(body, contentType);
  const fields: Record<string, string> = {};
  const files = new Set<"image_file" | "bg_image_file">();
  const result: RemoveBgBody = { fields, files };
  for (const [name, value] of form) {
    if (typeof value === "string") fields[name] = value;
    else if (name === "image_file") (files.add("image_file"), (result.imageFile = new Uint8Array(await value.arrayBuffer())));
    else if (name === "bg_image_file") (files.add("bg_image_file"), (result.backgroundFile = new Uint8Array(await value.arrayBuffer())));
  }
  return result;
}

/** image_file_b64, checked against UPLOAD_BYTES_MAX as base64 before a byte of it is decoded. */
export function decodeImageBase64(text: string, uploadBytesMax: number): Uint8Array {
  const compact = text.replace(/\s+/g, "");
  const lengthMax = base64LengthOf(uploadBytesMax);
  if (compact.length > lengthMax) {
    throw vendorRefusal({ code: "file_too_large", title: "File too large", detail: `image_file_b64 is ${compact.length} characters; at most ${lengthMax} (UPLOAD_BYTES_MAX ${uploadBytesMax} bytes as base64)` });
  }
  if (!/^[A-Za-z0-9+/]*={0,2}$/.test(compact) || compact.length % 4 === 1) {
    throw vendorRefusal({ code: "failed_to_read_image", title: "There was an error reading the image.", detail: "image_file_b64 is not base64 text (A-Z, a-z, 0-9, + and /, with = padding)" });
  }
  return new Uint8Array(Buffer.from(compact, "base64"));
}

type UrlField = "image_url" | "bg_image_url";

function isImageUrlReason(reason: string | undefined): reason is ImageUrlReason {
  return reason !== undefined && reason in IMAGE_URL_CODE_BY_REASON;
}

/**
 * A failed fetch of image_url or bg_image_url in remove.bg's codes: a malformed URL is
 * invalid_(bg_)image_url, one past the byte limit file_too_large (as an upload), anything else
 * (refused address, unreachable, not 2xx) failed_image_download / failed_bg_download. Our
 * image_url_* reason stays on the refusal.
 */
export function removeBgUrlError(error: unknown, field: UrlField, url: string): unknown {
  const reason = error instanceof ConnectError ? reasonOf(error) : undefined;
  if (!(error instanceof ConnectError) || !isImageUrlReason(reason)) return error;
  const image = field === "image_url";
  const detail = error.rawMessage;
  if (reason === "image_url_invalid") {
    return vendorRefusal({ code: image ? "invalid_image_url" : "invalid_bg_image_url", title: `Invalid ${field}: Please provide a valid URL.`, detail }, reason, error);
  }
  if (reason === "image_url_too_large") return vendorRefusal({ code: "file_too_large", title: "File too large", detail }, reason, error);
  const title = `Failed to download ${image ? "image" : "background image"} from given ${field}: ${url}`;
  return vendorRefusal({ code: image ? "failed_image_download" : "failed_bg_download", title, detail }, reason, error);
}

/**
 * The bytes at a URL field, fetched through the outbound guard under the caller's plan (after
 * admission, before any hold); they then take an upload's path (sniffing, byte and pixel limits).
 */
async function fetchUrlInput(deps: RestDependencies, call: AdmittedCall, body: RemoveBgBody, field: UrlField): Promise<Uint8Array> {
  const url = body.fields[field]!.trim();
  try {
    return await deps.imageUrls.fetch(url, { field, plan: call.admission.plan, signal: call.signal });
  } catch (error) {
    throw removeBgUrlError(error, field, url);
  }
}

/**
 * The input image and its options from the request, or remove.bg's refusal. Every parameter (and
 * image_file_b64's text) is checked before a URL is fetched: a bad request costs no download.
 */
async function imageAndOptionsOf(deps: RestDependencies, call: AdmittedCall, body: RemoveBgBody) {
  const outcome = removeBgRequestOf(body);
  if (!outcome.ok) throw vendorRefusal(outcome.error, outcome.error.code === "missing_source" ? "missing_image" : "invalid_option");
  const { source, backgroundSource, zip, options } = outcome.request;
  const sent = source === "image_file" ? body.imageFile! : source === "image_file_b64" ? decodeImageBase64(body.fields.image_file_b64!, deps.limits.uploadBytesMax) : undefined;
  const image = sent ?? (await fetchUrlInput(deps, call, body, "image_url"));
  if (backgroundSource === "bg_image_file") options.backgroundImage = body.backgroundFile!;
  if (backgroundSource === "bg_image_url") options.backgroundImage = await fetchUrlInput(deps, call, body, "bg_image_url");
  return { image, options, zip };
}

/** JPEG quality (of 100) of the zip's color.jpg: inference's own for JPEG results. */
const ZIP_COLOR_JPEG_QUALITY = 90;

/**
 * remove.bg's format=zip from the job's PNG: color.jpg (its RGB, at the result's size) and
 * alpha.png (its alpha as a grayscale matte, opaque everywhere behind a background), so a client
 * that composites them (the Ruby client's copy-opacity) gets the PNG back. Both entries are
 * already compressed: stored, not deflated again. Dated at the job's end, so a replay is byte-identical.
 */
export async function removeBgZipOf(png: Uint8Array, finishedAt: Date): Promise<Uint8Array> {
  const [color, alpha] = await Promise.all([
    sharp(png).removeAlpha().jpeg({ quality: ZIP_COLOR_JPEG_QUALITY, chromaSubsampling: "4:4:4" }).toBuffer(),
    sharp(png).ensureAlpha().extractChannel(3).toColourspace("b-w").png().toBuffer(),
  ]);
  const entry = (bytes: Buffer): [Uint8Array, ZipOptions] => [new Uint8Array(bytes.buffer, bytes.byteOffset, bytes.byteLength), { level: 0, mtime: finishedAt }];
  return zipSync({ "color.jpg": entry(color), "alpha.png": entry(alpha) });
}

/** The result's size: as inference measured it, or read from the image's header for a job that did not keep it. */
async function resultSize(deps: RestDependencies, result: ImageResult): Promise<{ width: number; height: number }> {
  if (result.job.resultWidth > 0 && result.job.resultHeight > 0) return { width: result.job.resultWidth, height: result.job.resultHeight };
  return deps.imageJobs.measure(result.image);
}

/**
 * Binary by default; with `Accept: application/json`, `{"data":{"result_b64","foreground_*"}}`.
 * Headers as remove.bg sends them; the subject's box only when the mask found one. No X-Type:
 * this server does not classify the subject.
 */
async function sendResult(deps: RestDependencies, request: HttpRequest, response: HttpResponse, admission: Admission, result: ImageResult, zip: boolean): Promise<void> {
  const size = await resultSize(deps, result);
  if (zip) {
    const finishedAt = result.job.updatedAt ? timestampDate(result.job.updatedAt) : new Date(0);
    result = { ...result, image: await removeBgZipOf(result.image, finishedAt), contentType: "application/zip" };
  }
  const box = result.job.foreground;
  const headers = {
    "x-credits-charged": formatCredits(result.job.chargedMillicredits),
    "x-width": String(size.width),
    "x-height": String(size.height),
    ...(box ? { "x-foreground-top": String(box.top), "x-foreground-left": String(box.left), "x-foreground-width": String(box.width), "x-foreground-height": String(box.height) } : {}),
    "x-job-id": result.job.id,
    ...rateLimitHeaders(admission),
  };
  if (/\bapplication\/json\b/i.test(request.headers.accept ?? "")) {
    const foreground = box ? { foreground_top: box.top, foreground_left: box.left, foreground_width: box.width, foreground_height: box.height } : {};
    writeJson(response, 200, { data: { result_b64: Buffer.from(result.image).toString("base64"), ...foreground } }, headers);
    return;
  }
  response.writeHead(200, { "content-type": result.contentType, "content-length": String(result.image.byteLength), ...headers });
  response.end(result.image);
}

// remove.bg's account buckets (domain/credit-buckets.ts). No bucket here is an enterprise contract's.
async function accountJson(apiKeys: ApiKeyStore, reads: AccountReads, request: HttpRequest) {
  const balance = await reads.balance(await authenticate(apiKeys, headersOf(request)));
  const { subscriptionMillicredits: subscription, paygMillicredits: payg } = splitCreditBuckets(balance.buckets, balance.availableMillicredits);
  const enterprise = 0n;
  return {
    data: {
      attributes: {
        credits: { total: creditsNumber(subscription + payg + enterprise), subscription: creditsNumber(subscription), payg: creditsNumber(payg), enterprise: creditsNumber(enterprise) },
        // remove.bg's free preview calls per month: every call here is priced in credits, so none; "sizes" is always "all".
        api: { free_calls: 0, sizes: "all" },
      },
    },
  };
}

/** The remove.bg routes, answering in remove.bg's error shape. */
export function removeBgRoutes(deps: RestDependencies, reads: AccountReads): RestRoute[] {
  return [
    {
      method: "POST",
      path: "/v1.0/removebg",
      writeError: writeRemoveBgError,
      async handle(request, response) {
        let admission: Admission | undefined;
        try {
          // Refused on the headers (key, rate, concurrency) before any body byte is read.
          const call = await admitImageCall(deps, request, response, () => true);
          admission = call.admission;
          const body = await readRemoveBgBody(request, call.headers, deps.limits.uploadBytesMax);
          const { image, options, zip } = await imageAndOptionsOf(deps, call, body);
          const result = await removeBackgroundWhileWaiting(deps, call, image, options);
          await sendResult(deps, request, response, admission, result, zip);
        } finally {
          admission?.release();
        }
      },
    },
    {
      method: "GET",
      path: "/v1.0/account",
      writeError: writeRemoveBgError,
      async handle(request, response) {
        writeJson(response, 200, await accountJson(deps.apiKeys, reads, request));
      },
    },
  ];
}

/** Any other path under /v1.0/: remove.bg's shape for the 404 the server would answer in ours. */
export function removeBgNotFound(log: Logger): HttpRoutes {
  return async (request, response) => {
    const path = (request.url ?? "/").split("?")[0]!;
    if (!path.startsWith(REMOVEBG_PATH_PREFIX)) return false;
    writeRemoveBgError(request, response, reasonError(Code.NotFound, "not_found", `no route for ${request.method} ${path}; remove.bg's routes here are POST /v1.0/removebg and GET /v1.0/account`), log);
    return true;
  };
}
