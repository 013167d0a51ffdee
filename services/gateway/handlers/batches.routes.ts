// `POST /v1/matting/batch` (repeated `image_file` fields) and `GET /v1/batches/{id}`: the REST face
// of JobBatches (job-batches.ts), which JobService.SubmitBatch and GetBatch share.
import { Code } from "@connectrpc/connect";
import { reasonError } from "../../common/errors.ts";
import type { HttpRequest, HttpRoutes } from "../../common/server.ts";
import { authenticate } from "../authentication.ts";
import { checkedIdempotencyKey, type Admission } from "../image-jobs.ts";
import type { BatchView } from "../job-batches.ts";
import { jobJson, type JobJson } from "./jobs.routes.ts";
import { imageOptionsFrom, optionSource, rateLimitHeaders } from "./matting.routes.ts";
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

export function createBatchesRoutes(deps: RestDependencies): HttpRoutes {
  async function submitBatch(request: HttpRequest, admission: Admission, headers: Headers, query: URLSearchParams): Promise<BatchView> {
    const contentType = headers.get("content-type") ?? "";
    if (!isMultipart(contentType)) {
      throw reasonError(Code.InvalidArgument, "invalid_request", "send the images as multipart/form-data, one image_file field each");
    }
    requireBoundary(contentType);
    const { batchBytesMax } = deps.limits;
    refuseDeclaredLength(headers, batchBytesMax, "BATCH_BYTES_MAX");
    const form = await parseForm(await readBody(request, batchBytesMax, "BATCH_BYTES_MAX"), contentType);
    const files = [...form.getAll("image_file"), ...form.getAll("image")].filter((value) => value instanceof Blob);
    deps.jobBatches.checkItemCount(files.length, "image_file field");
    // One set of options for every item, checked before any hold.
    const options = imageOptionsFrom(optionSource(form, query));
    const images = await Promise.all(files.map(async (file) => new Uint8Array(await (file as Blob).arrayBuffer())));
    return deps.jobBatches.submit(admission, images, options, checkedIdempotencyKey(headers.get("idempotency-key")));
  }

  return async (request, response) => {
    const url = urlOf(request);
    const isSubmit = url.pathname === "/v1/matting/batch";
    const read = /^\/v1\/batches\/([^/]+)$/.exec(url.pathname);
    if (!isSubmit && !read) return false;
    const method = isSubmit ? "POST" : "GET";
    if (request.method !== method) {
      sendMethodNotAllowed(response, method, isSubmit ? "use POST with a multipart/form-data body, one image_file field per image" : "use GET to read the batch");
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
