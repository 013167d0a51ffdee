// `POST /v1/matting/batch` (repeated `image_file` or `image_url` fields, or JSON
// `{"image_urls":[..]}`) and `GET /v1/batches/{id}`. Each item
// is its own job, with its own hold and an idempotency key derived from the batch's key and its
// index: one item's refusal or failure never charges or fails the others, and a replayed batch
// replays each item (charged once) rather than submitting it again.
import { Code, ConnectError } from "@connectrpc/connect";
import { createHash, randomUUID } from "node:crypto";
import { reasonError, reasonOf } from "../../common/errors.ts";
import type { Job } from "../../common/gen/cutline/orchestrator/v1/orchestrator_service_pb.ts";
import type { HttpRequest, HttpRoutes } from "../../common/server.ts";
import { authenticate } from "../authentication.ts";
import { checkedIdempotencyKey, requestFingerprint, type Admission } from "../image-jobs.ts";
import type { BatchItemOutcome, BatchItemRow, BatchRow } from "../store/batch.store.ts";
import { jobJson, type JobJson } from "./jobs.routes.ts";
import { rateLimitHeaders } from "./image-call.ts";
import { imageOptionsFrom, jsonSource, optionSource, readJsonObject, resolveImageInput, type ImageInput } from "./matting.routes.ts";
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
  type RestLimits,
} from "./rest-support.ts";

/** Items of one batch submitted at once: enough to overlap the hold and blob round trips, few enough to leave room for others. */
const ITEM_SUBMITS_CONCURRENT = 4;

interface BatchItemJson {
  index: number;
  job: JobJson | null;
  error: { code: string; title: string } | null;
}

function batchNotFound(batchId: string): ConnectError {
  return reasonError(Code.NotFound, "batch_not_found", `batch ${batchId} not found`);
}

/** The item's refusal as the batch reports it: its stable reason and its message. */
function itemError(error: unknown): { code: string; title: string } {
  const connectError = ConnectError.from(error);
  return { code: reasonOf(connectError) ?? Code[connectError.code].toLowerCase(), title: connectError.rawMessage };
}

/** SHA-256 over every item's fingerprint, in order: the content of the whole call. */
function batchFingerprint(itemFingerprints: string[]): string {
  return createHash("sha256").update(itemFingerprints.join("\n")).digest("hex");
}

async function runInPool(count: number, concurrency: number, work: (index: number) => Promise<void>): Promise<void> {
  let next = 0;
  const worker = async () => {
    while (next < count) await work(next++);
  };
  await Promise.all(Array.from({ length: Math.min(concurrency, count) }, worker));
}

/** An item's part of the batch fingerprint: its bytes, or (not fetched yet) its URL, with the options. */
function itemFingerprint(item: ImageInput, options: ImageOptions): string {
  return "bytes" in item ? requestFingerprint(item.bytes, options) : `url:${requestFingerprint(new TextEncoder().encode(item.url), options)}`;
}

/** Room in a JSON batch body for its options, on top of the URLs. */
const JSON_BATCH_OVERHEAD_BYTES = 16 * 1024;

/**
 * The items, in the order sent (multipart `image_file`/`image` files and `image_url` fields, or
 * JSON `{"image_urls":[..]}`), and the one set of options for all, checked before any hold. A URL
 * is an item like a file: one that cannot be fetched is that item's error, not the call's.
 */
async function readBatchRequest(request: HttpRequest, headers: Headers, query: URLSearchParams, limits: RestLimits): Promise<{ items: ImageInput[]; options: ImageOptions }> {
  const contentType = headers.get("content-type") ?? "";
  const { batchItemsMax, batchBytesMax } = limits;
  let items: ImageInput[];
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
  if (items.length === 0) throw reasonError(Code.InvalidArgument, "missing_image", "the batch has no image: add one image_file or image_url field per image, or list them in image_urls");
  if (items.length > batchItemsMax) {
    throw reasonError(Code.InvalidArgument, "too_many_items", `the batch has ${items.length} images; at most ${batchItemsMax} per call (BATCH_ITEMS_MAX): split it`);
  }
  return { items, options };
}

export function createBatchesRoutes(deps: RestDependencies): HttpRoutes {
  async function answer(request: HttpRequest, batch: BatchRow, items: BatchItemRow[]): Promise<{ batch_id: string; items: BatchItemJson[] }> {
    const jobIds = items.flatMap((item) => (item.job_id ? [item.job_id] : []));
    const jobs = new Map<string, Job>();
    if (jobIds.length > 0) {
      const listed = await deps.orchestrator.listJobs({ accountId: batch.account_id, jobIds });
      for (const job of listed.jobs) jobs.set(job.id, job);
    }
    return {
      batch_id: batch.id,
      items: items.map((item) => {
        const job = item.job_id ? jobs.get(item.job_id) : undefined;
        return {
          index: item.item_index,
          job: job ? jobJson(job, deps.resultLinks, request) : null,
          error: item.error_code ? { code: item.error_code, title: item.error_title ?? "" } : null,
        };
      }),
    };
  }

  async function submitBatch(request: HttpRequest, admission: Admission, headers: Headers, query: URLSearchParams) {
    const { items, options } = await readBatchRequest(request, headers, query, deps.limits);
    const idempotencyKey = checkedIdempotencyKey(headers.get("idempotency-key"));
    const batchKey = idempotencyKey || randomUUID();
    const fingerprint = batchFingerprint(items.map((item) => itemFingerprint(item, options)));
    const { batch, created } = await deps.batches.insertOrGet({
      id: randomUUID(),
      account_id: admission.owner.accountId,
      idempotency_key: batchKey,
      request_fingerprint: fingerprint,
      item_count: items.length,
    });
    if (!created && batch.request_fingerprint !== fingerprint) {
      throw reasonError(
        Code.InvalidArgument,
        "idempotency_key_reused",
        `the idempotency key ${idempotencyKey} was first used for batch ${batch.id} with different images or options; use a new key for a new request`,
      );
    }
    const recorded = created ? [] : await deps.batches.items(batch.id);
    if (recorded.length < batch.item_count) {
      // New, or a replay of one cut short: every item again, each idempotent on its derived key.
      // A URL is fetched in its item's turn: at most ITEM_SUBMITS_CONCURRENT images are in memory at once.
      await runInPool(items.length, ITEM_SUBMITS_CONCURRENT, async (index) => {
        let outcome: BatchItemOutcome;
        try {
          const image = await resolveImageInput(items[index]!, deps.imageUrls, admission);
          const job = await deps.imageJobs.submit(admission, image, options, `${batchKey}:${index}`);
          outcome = { jobId: job.id };
        } catch (error) {
          if (!(error instanceof ConnectError)) deps.log.error({ err: error, batchId: batch.id, index }, "a batch item failed");
          outcome = { error: itemError(error) };
        }
        await deps.batches.recordItem(batch.id, index, outcome);
      });
    }
    return answer(request, batch, await deps.batches.items(batch.id));
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
        const batchId = decodeURIComponent(read[1]!);
        const batch = await deps.batches.get(owner.accountId, batchId);
        if (!batch) throw batchNotFound(batchId);
        sendJson(response, 200, await answer(request, batch, await deps.batches.items(batch.id)));
        return true;
      }
      checkedIdempotencyKey(headers.get("idempotency-key"));
      // One request of the plan's per minute; the items are asynchronous and take no concurrency slot.
      admission = await deps.imageJobs.admit(owner, { slot: false });
      const body = await submitBatch(request, admission, headers, url.searchParams);
      sendJson(response, 202, body, { location: `/v1/batches/${body.batch_id}`, ...rateLimitHeaders(admission) });
    } catch (error) {
      sendError(request, response, error, deps.log);
    } finally {
      admission?.release();
    }
    return true;
  };
}
