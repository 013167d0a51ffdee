// `POST /v1/matting/batch` (repeated `image_file` or `image_url` fields, or JSON
// `{"image_urls":[..]}`) and `GET /v1/batches/{id}`: the REST face of JobBatches (job-batches.ts),
// which JobService.SubmitBatch and GetBatch share.
import { Code } from "@connectrpc/connect";
import { reasonError } from "../../common/errors.ts";
import type { HttpRequest, HttpRoutes } from "../../common/server.ts";
import { authenticate } from "../authentication.ts";
import { checkedIdempotencyKey, type Admission } from "../image-jobs.ts";
import type { BatchImage, BatchView } from "../job-batches.ts";
import { jobJson, type JobJson } from "./jobs.routes.ts";
import { rateLimitHeaders } from "./image-call.ts";
import { imageOptionsFrom, jsonSource, optionSource, readJsonObject } from "./matting.routes.ts";
import { OUTBOUND_URL_LENGTH_MAX } from "../../common/outbound.ts";
import type { ImageOptions } from "../../common/gen/cutline/inference/v1/image_options_pb.ts";
import { headersOf } from "./upload.admission.ts";
import {
  isMultipart,
  parseForm,
  readBody,
  refuseDeclaredLength,
  requireBoundary,
  sendError,
  sendJson,
  sendMethodNotAllowed,
  urlOf,
  type RestDependencies,
} from "./rest-support.ts";

interface BatchItemJson {
  index: number;
  job: JobJson | null;
  error: { code: string; title: string } | null;
}

function batchJson(view: BatchView, deps: RestDependencies, request: HttpRequest): { batch_id: string; items: BatchItemJson[] } {
  return {
    batch_id: view.batch.id,
    items: view.items.map((item) => ({
      index: item.index,
      job: item.job ? jobJson(item.job, deps.resultLinks, request) : null,
      error: item.error ?? null,
    })),
  };
}

/** Room in a JSON batch body for its options, on top of the URLs. */
const JSON_BATCH_OVERHEAD_BYTES = 16 * 1024;

/**
 * The items, in the order sent (multipart `image_file`/`image` files and `image_url` fields, or
 * JSON `{"image_urls":[..]}`), and the one set of options for all, checked before any hold. A URL
 * is an item like a file: one that cannot be fetched is that item's error, not the call's.
 */
async function readBatchRequest(request: HttpRequest, headers: Headers, query: URLSearchParams, deps: RestDependencies): Promise<{ items: BatchImage[]; options: ImageOptions }> {
  const contentType = headers.get("content-type") ?? "";
  const { batchBytesMax } = deps.limits;
  const batchItemsMax = deps.jobBatches.itemsMax;
  let items: BatchImage[];
  let options: ImageOptions;
  if (/^application\/json\s*(;|$)/i.test(contentType)) {
    const body = await readJsonObject(request, headers, Math.min(batchBytesMax, batchItemsMax * (OUTBOUND_URL_LENGTH_MAX + 8) + JSON_BATCH_OVERHEAD_BYTES), '{"image_urls":["https://…"],"size":"full"}');
    const urls = body.image_urls;
    if (urls !== undefined && !Array.isArray(urls)) throw reasonError(Code.InvalidArgument, "invalid_request", "image_urls must be an array of URLs");
    const bad = (urls ?? []).findIndex((url: unknown) => typeof url !== "string");
    if (bad >= 0) throw reasonError(Code.InvalidArgument, "invalid_request", `image_urls[${bad}] must be a string (a URL)`);
    items = ((urls ?? []) as string[]).map((url, index) => ({ url, field: `image_urls[${index}]` }));
    options = imageOptionsFrom(jsonSource(body, query));
  } else if (isMultipart(contentType)) {
    requireBoundary(contentType);
    refuseDeclaredLength(headers, batchBytesMax, "BATCH_BYTES_MAX");
    const form = await parseForm(await readBody(request, batchBytesMax, "BATCH_BYTES_MAX"), contentType);
    items = [];
    for (const [name, value] of form.entries()) {
      if ((name === "image_file" || name === "image") && value instanceof Blob) items.push({ bytes: new Uint8Array(await value.arrayBuffer()) });
      else if (name === "image_url" && typeof value === "string" && value !== "") items.push({ url: value, field: `image_url (item ${items.length})` });
    }
    options = imageOptionsFrom(optionSource(form, query));
  } else {
    throw reasonError(Code.InvalidArgument, "invalid_request", 'send the images as multipart/form-data (one image_file or image_url field each) or their URLs as JSON {"image_urls":[..]}');
  }
  deps.jobBatches.checkItemCount(items.length, "add one image_file or image_url field per image, or list them in image_urls");
  return { items, options };
}

export function createBatchesRoutes(deps: RestDependencies): HttpRoutes {
  async function submitBatch(request: HttpRequest, admission: Admission, headers: Headers, query: URLSearchParams): Promise<BatchView> {
    const { items, options } = await readBatchRequest(request, headers, query, deps);
    return deps.jobBatches.submit(admission, items, options, checkedIdempotencyKey(headers.get("idempotency-key")));
  }

  return async (request, response) => {
    const url = urlOf(request);
    const isSubmit = url.pathname === "/v1/matting/batch";
    const read = /^\/v1\/batches\/([^/]+)$/.exec(url.pathname);
    if (!isSubmit && !read) return false;
    const method = isSubmit ? "POST" : "GET";
    if (request.method !== method) {
      sendMethodNotAllowed(response, method, isSubmit ? "use POST with a multipart/form-data body, one image_file field per image, or JSON {\"image_urls\":[..]}" : "use GET to read the batch");
      return true;
    }
    let admission: Admission | undefined;
    try {
      const headers = headersOf(request);
      const owner = await authenticate(deps.apiKeys, headers);
      if (read) {
        deps.imageJobs.takeReadToken(owner);
        sendJson(response, 200, batchJson(await deps.jobBatches.get(owner, decodeURIComponent(read[1]!)), deps, request));
        return true;
      }
      checkedIdempotencyKey(headers.get("idempotency-key"));
      // One request of the plan's per minute; the items are asynchronous and take no concurrency slot.
      admission = await deps.imageJobs.admit(owner, { slot: false });
      const view = await submitBatch(request, admission, headers, url.searchParams);
      sendJson(response, 202, batchJson(view, deps, request), { location: `/v1/batches/${view.batch.id}`, ...rateLimitHeaders(admission) });
    } catch (error) {
      sendError(request, response, error, deps.log);
    } finally {
      admission?.release();
    }
    return true;
  };
}
