// Photoroom's API as a drop-in: `POST /v1/segment`, `GET /v1/account`, `GET /v2/account` and
// `GET|POST /v2/edit`, so a Photoroom client works with only its base URL changed. The image runs
// on the one job path (admission, billing, limits and idempotency exactly as POST /v1/matting and
// remove.bg's route: image-call.ts); parameters are mapped by domain/photoroom-params.ts;
// imageUrl and background.imageUrl are fetched through ImageUrls after admission and before any
// hold, then checked as uploads. Refusals answer in Photoroom's shape for the route: v1/segment
// `{detail,status_code,type}`, the others `{error:{message}}` (402 adds `detail`, as its
// payment-error schema has it).
import { create } from "@bufbuild/protobuf";
import { Code, ConnectError } from "@connectrpc/connect";
import { creditsNumber, formatCredits } from "../../common/credits.ts";
import { reasonError, reasonOf } from "../../common/errors.ts";
import { QuoteOperation, QuoteRequestSchema, QuoteSize } from "../../common/gen/cutline/gateway/v1/account_service_pb.ts";
import type { ImageOptions } from "../../common/gen/cutline/inference/v1/image_options_pb.ts";
import type { Logger } from "../../common/logging.ts";
import type { HttpRequest, HttpResponse, HttpRoutes } from "../../common/server.ts";
import type { AccountReads } from "../account-reads.ts";
import { authenticate } from "../authentication.ts";
import { splitCreditBuckets } from "../domain/credit-buckets.ts";
import { editRequestOf, segmentOptionsOf, type PhotoroomError, type PhotoroomFields } from "../domain/photoroom-params.ts";
import type { Admission, ImageResult } from "../image-jobs.ts";
import { admitImageCall, rateLimitHeaders, removeBackgroundWhileWaiting, type AdmittedCall } from "./image-call.ts";
import { FORM_OVERHEAD_BYTES } from "./matting.routes.ts";
import { ClientGone, isMultipart, parseForm, readBody, refuseDeclaredLength, requireBoundary, urlOf, type RestDependencies } from "./rest-support.ts";
import { ClientGone as RouteClientGone, nativeErrorOf, writeJson, type ErrorWriter, type RestRoute } from "./route-table.ts";
import { headersOf } from "./upload.admission.ts";

/** Metadata that carries the Photoroom parameter a refusal names. */
const PARAMETER = "photoroom-parameter";

function refusal(error: PhotoroomError): ConnectError {
  return reasonError(Code.InvalidArgument, error.reason, error.message, { metadata: { [PARAMETER]: error.parameter } });
}

/** Photoroom answers 400, 402, 403 and 429 (and 500); our finer 4xx statuses for the caller's input read as its 400. */
const STATUS_BY_REASON: Readonly<Record<string, number>> = { missing_api_key: 403, invalid_api_key: 403 };
const PHOTOROOM_STATUSES = new Set([400, 402, 403, 404, 405, 409, 429]);
const SERVER_FAULT = "An unexpected error occurred. Please try again later or contact support.";

/** Status, our reason (v1's `type`), the message and headers (Retry-After on 429) of any error. */
export function photoroomErrorOf(error: unknown): { status: number; type: string; message: string; headers: Record<string, string> } {
  const native = nativeErrorOf(error);
  if (native.status >= 500) return { status: native.status, type: native.body.code, message: SERVER_FAULT, headers: native.headers };
  const reason = error instanceof ConnectError ? reasonOf(error) : undefined;
  const status = STATUS_BY_REASON[reason ?? ""] ?? (PHOTOROOM_STATUSES.has(native.status) ? native.status : 400);
  return { status, type: native.body.code, message: native.body.title, headers: native.headers };
}

function photoroomWriter(body: (shape: ReturnType<typeof photoroomErrorOf>) => unknown): ErrorWriter {
  return (request, response, error, log) => {
    if (error instanceof ClientGone || error instanceof RouteClientGone) {
      log.info({ url: request.url }, error.message);
      return;
    }
    const shape = photoroomErrorOf(error);
    if (shape.status >= 500) log.error({ err: error instanceof ConnectError ? (error.cause ?? error) : error, url: request.url }, "Photoroom route failed");
    else log.info({ url: request.url, code: shape.type }, shape.message);
    if (response.headersSent || response.destroyed) {
      if (!response.writableEnded) response.destroy();
      return;
    }
    if (!request.complete) shape.headers.connection = "close";
    writeJson(response, shape.status, body(shape), shape.headers);
  };
}

/** `/v1/segment`'s error body: `{"detail","status_code","type"}` (type: our reason, e.g. missing_image). */
export const writeSegmentError = photoroomWriter(({ status, type, message }) => ({ detail: message, status_code: status, type }));
/** The v2 error body `{"error":{"message"}}`; 402 also carries `detail` (Photoroom's payment-error). */
export const writeEditError = photoroomWriter(({ status, message }) => ({ error: status === 402 ? { message, detail: message } : { message } }));

/** A multipart body of at most `bytesMax`, as text fields and file parts (the mapper refuses a file part it does not take, by name). */
async function readMultipart(request: HttpRequest, headers: Headers, bytesMax: number, limitName: string) {
  const contentType = headers.get("content-type") ?? "";
  if (!isMultipart(contentType)) throw reasonError(Code.InvalidArgument, "invalid_request", "send the parameters as multipart/form-data");
  requireBoundary(contentType);
  refuseDeclaredLength(headers, bytesMax, limitName);
  const form = await parseForm(await readBody(request, bytesMax, limitName), contentType);
  const fields: Record<string, string> = {};
  const files = new Map<string, Uint8Array>();
  for (const [name, value] of form) {
    if (typeof value === "string") fields[name] = value;
    else files.set(name, new Uint8Array(await value.arrayBuffer()));
  }
  return { fields, files, names: { fields, files: new Set(files.keys()) } satisfies PhotoroomFields };
}

/** The bytes at a URL field, fetched through the outbound guard under the caller's plan; refusals name the field. */
function fetchUrl(deps: RestDependencies, call: AdmittedCall, field: string, url: string): Promise<Uint8Array> {
  return deps.imageUrls.fetch(url.trim(), { field, plan: call.admission.plan, signal: call.signal });
}

/** The image, binary (or `{"base64img"}` to Accept: application/json on /v1/segment), with our billing headers. */
function sendResult(request: HttpRequest, response: HttpResponse, admission: Admission, result: ImageResult, json: boolean): void {
  // No x-uncertainty-score: this server's model gives no calibrated uncertainty, and none is invented.
  const headers = { "x-credits-charged": formatCredits(result.job.chargedMillicredits), "x-job-id": result.job.id, ...rateLimitHeaders(admission) };
  if (json && /\bapplication\/json\b/i.test(request.headers.accept ?? "")) {
    writeJson(response, 200, { base64img: Buffer.from(result.image).toString("base64") }, headers);
    return;
  }
  response.writeHead(200, { "content-type": result.contentType, "content-length": String(result.image.byteLength), ...headers });
  response.end(result.image);
}

/** Runs one image call: admitted on the headers, `prepare` reads and maps the request, the job runs, the result is sent. */
async function imageCall(deps: RestDependencies, request: HttpRequest, response: HttpResponse, prepare: (call: AdmittedCall) => Promise<{ image: Uint8Array; options: ImageOptions; json: boolean }>) {
  let admission: Admission | undefined;
  try {
    // Refused on the headers (key, rate, concurrency) before any body byte is read.
    const call = await admitImageCall(deps, request, response, () => true);
    admission = call.admission;
    const { image, options, json } = await prepare(call);
    const result = await removeBackgroundWhileWaiting(deps, call, image, options);
    sendResult(request, response, admission, result, json);
  } finally {
    admission?.release();
  }
}

async function segment(deps: RestDependencies, call: AdmittedCall, request: HttpRequest) {
  const uploadBytesMax = deps.limits.uploadBytesMax;
  const body = await readMultipart(request, call.headers, uploadBytesMax + FORM_OVERHEAD_BYTES, `UPLOAD_BYTES_MAX ${uploadBytesMax} and ${FORM_OVERHEAD_BYTES} bytes of form overhead`);
  const outcome = segmentOptionsOf(body.names);
  if (!outcome.ok) throw refusal(outcome.error);
  return { image: body.files.get("image_file")!, options: outcome.options, json: true };
}

/** /v2/edit: GET reads the query (imageUrl), POST the multipart form; every parameter is checked before a URL is fetched. */
async function edit(deps: RestDependencies, call: AdmittedCall, request: HttpRequest, method: "GET" | "POST") {
  const uploadBytesMax = deps.limits.uploadBytesMax;
  const limitName = `UPLOAD_BYTES_MAX ${uploadBytesMax} for imageFile and background.imageFile each and ${FORM_OVERHEAD_BYTES} bytes of form overhead`;
  const body =
    method === "GET"
      ? { fields: Object.fromEntries(urlOf(request).searchParams), files: new Map<string, Uint8Array>() }
      : await readMultipart(request, call.headers, 2 * uploadBytesMax + FORM_OVERHEAD_BYTES, limitName);
  const outcome = editRequestOf({ fields: body.fields, files: new Set(body.files.keys()) }, method);
  if (!outcome.ok) throw refusal(outcome.error);
  const { source, backgroundSource, options } = outcome.request;
  const image = source === "imageFile" ? body.files.get("imageFile")! : await fetchUrl(deps, call, "imageUrl", body.fields.imageUrl!);
  if (backgroundSource === "background.imageFile") options.backgroundImage = body.files.get("background.imageFile")!;
  if (backgroundSource === "background.imageUrl") options.backgroundImage = await fetchUrl(deps, call, "background.imageUrl", body.fields["background.imageUrl"]!);
  return { image, options, json: false };
}

/** The spendable balance and its subscription part (at most the balance), from the billing buckets. */
async function accountCredits(deps: RestDependencies, reads: AccountReads, request: HttpRequest) {
  const owner = await authenticate(deps.apiKeys, headersOf(request));
  const balance = await reads.balance(owner);
  const { subscriptionMillicredits } = splitCreditBuckets(balance.buckets, balance.availableMillicredits);
  return { owner, available: balance.availableMillicredits, subscription: subscriptionMillicredits };
}

/** /v2/account counts images: how many of the cheapest image (as POST /v1/quote prices it) the credits buy. */
async function accountImages(deps: RestDependencies, reads: AccountReads, request: HttpRequest) {
  const { owner, available, subscription } = await accountCredits(deps, reads, request);
  const quote = await reads.quote(owner, create(QuoteRequestSchema, { operation: QuoteOperation.MATTING, width: 1, height: 1, size: QuoteSize.FULL }));
  const images = (millicredits: bigint) => (quote.costMillicredits > 0n ? Number(millicredits / quote.costMillicredits) : 0);
  return { images: { available: images(available), subscription: images(subscription) }, plan: await reads.planCode(owner) };
}

/** The Photoroom routes, each answering in its route's Photoroom error shape. */
export function photoroomRoutes(deps: RestDependencies, reads: AccountReads): RestRoute[] {
  return [
    {
      method: "POST",
      path: "/v1/segment",
      writeError: writeSegmentError,
      handle: (request, response) => imageCall(deps, request, response, (call) => segment(deps, call, request)),
    },
    {
      method: "GET",
      path: "/v2/edit",
      writeError: writeEditError,
      handle: (request, response) => imageCall(deps, request, response, (call) => edit(deps, call, request, "GET")),
    },
    {
      method: "POST",
      path: "/v2/edit",
      writeError: writeEditError,
      handle: (request, response) => imageCall(deps, request, response, (call) => edit(deps, call, request, "POST")),
    },
    {
      method: "GET",
      path: "/v1/account",
      writeError: writeEditError,
      async handle(request, response) {
        const { available, subscription } = await accountCredits(deps, reads, request);
        writeJson(response, 200, { credits: { available: creditsNumber(available), subscription: creditsNumber(subscription) } });
      },
    },
    {
      method: "GET",
      path: "/v2/account",
      writeError: writeEditError,
      async handle(request, response) {
        writeJson(response, 200, await accountImages(deps, reads, request));
      },
    },
  ];
}

/** The path under which only Photoroom's routes live here (/v1/ is shared with the native API, so its 404s stay native). */
export const PHOTOROOM_PATH_PREFIX = "/v2/";

/** Any other path under /v2/: Photoroom's `{error:{message}}` for the 404 the server would answer in ours. */
export function photoroomNotFound(log: Logger): HttpRoutes {
  return async (request, response) => {
    const path = (request.url ?? "/").split("?")[0]!;
    if (!path.startsWith(PHOTOROOM_PATH_PREFIX)) return false;
    writeEditError(request, response, reasonError(Code.NotFound, "not_found", `no route for ${request.method} ${path}; Photoroom's routes here are POST /v1/segment, GET /v1/account, GET /v2/account and GET|POST /v2/edit`), log);
    return true;
  };
}
