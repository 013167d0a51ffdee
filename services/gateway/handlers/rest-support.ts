// What every REST route family of the gateway shares: reading a bounded body, the one error body
// shape, JSON answers, credits as decimal numbers, and mounting the families on one server.
import { Code, ConnectError, type Client } from "@connectrpc/connect";
import { httpStatusOf, reasonError, reasonOf } from "../../common/errors.ts";
import { BillingErrorDetailSchema, type BillingErrorDetail } from "../../common/gen/cutline/billing/v1/billing_service_pb.ts";
import { formatCredits } from "../../common/credits.ts";
import { nativeErrorOf } from "./route-table.ts";
import type { Logger } from "../../common/logging.ts";
import type { OrchestratorService } from "../../common/gen/cutline/orchestrator/v1/orchestrator_service_pb.ts";
import type { BlobStore } from "../../common/ports/blob-store.ts";
import type { HttpRequest, HttpResponse } from "../../common/server.ts";
import type { ImageJobs } from "../image-jobs.ts";
import type { ImageUrls } from "../image-urls.ts";
import type { ResultLinks } from "../result-links.ts";
import type { ApiKeyStore } from "../store/api-key.store.ts";
import type { JobBatches } from "../job-batches.ts";
import type { JobReads } from "../job-reads.ts";

/** The client closed or reset the connection before its body ended: there is no one to answer. */
export class ClientGone extends Error {}

/**
 * The body, up to `bytesMax`. Read from the stream's events rather than `for await`, which
 * destroys the socket when it stops early, so a refusal past the limit still reaches the client.
 */
export function readBody(request: HttpRequest, bytesMax: number, limitName: string): Promise<Buffer> {
  return new Promise((resolve, reject) => {
    // Gone while the call was being authenticated and admitted: its 'close' has already passed.
    if (request.destroyed) {
      reject(new ClientGone("the client went away before its body was read"));
      return;
    }
    const chunks: Buffer[] = [];
    let total = 0;
    const stop = () => {
      request.off("data", onData).off("end", onEnd).off("error", onGone).off("close", onGone);
      request.pause();
    };
    const onData = (chunk: Buffer) => {
      total += chunk.byteLength;
      if (total <= bytesMax) {
        chunks.push(chunk);
        return;
      }
      stop();
      reject(reasonError(Code.InvalidArgument, "too_many_bytes", `the request body exceeds ${bytesMax} bytes (${limitName})`));
    };
    const onEnd = () => {
      stop();
      resolve(Buffer.concat(chunks));
    };
    const onGone = (error?: unknown) => {
      stop();
      reject(new ClientGone(`the client went away after ${total} bytes of the body`, { cause: error }));
    };
    // A client that reset while the call was admitted is gone already: its close event has fired.
    if (request.destroyed) {
      reject(new ClientGone("the client went away before its body was read"));
      return;
    }
    request.on("data", onData).on("end", onEnd).on("error", onGone).on("close", onGone);
  });
}

/** Refuses a body whose declared Content-Length is past `bytesMax`, before a byte of it is read. */
export function refuseDeclaredLength(headers: Headers, bytesMax: number, limitName: string): void {
  const declared = headers.get("content-length");
  if (declared !== null && Number(declared) > bytesMax) {
    throw reasonError(Code.InvalidArgument, "too_many_bytes", `the request declares ${declared} bytes; the limit is ${bytesMax} bytes (${limitName})`);
  }
}

/** The form's fields; a body that does not parse as multipart/form-data is the client's mistake, named. */
export async function parseForm(body: Buffer, contentType: string): Promise<FormData> {
  try {
    return await new Response(body, { headers: { "content-type": contentType } }).formData();
  } catch (error) {
    throw reasonError(
      Code.InvalidArgument,
      "malformed_multipart",
      `the ${body.byteLength}-byte body does not parse as multipart/form-data with the boundary its Content-Type names: check the boundary lines and that the body was sent whole`,
      { cause: error },
    );
  }
}

/** Checks a multipart/form-data Content-Type carries its boundary. */
export function requireBoundary(contentType: string): void {
  if (!/;\s*boundary=/i.test(contentType)) {
    throw reasonError(Code.InvalidArgument, "malformed_multipart", "the Content-Type multipart/form-data has no boundary parameter");
  }
}

export function isMultipart(contentType: string): boolean {
  return /^multipart\/form-data\s*(;|$)/i.test(contentType);
}

/** A JSON answer. */
export function sendJson(response: HttpResponse, status: number, body: unknown, headers: Record<string, string> = {}): void {
  const text = JSON.stringify(body);
  response.writeHead(status, { "content-type": "application/json", "content-length": String(Buffer.byteLength(text)), ...headers });
  response.end(text);
}

/** The one error body, `{"errors":[{"title","code"}]}`, for a route's method that is not allowed. */
export function sendMethodNotAllowed(response: HttpResponse, allowed: string, hint: string): void {
  sendJson(response, 405, { errors: [{ title: hint, code: "method_not_allowed", detail: hint }] }, { allow: allowed });
}

/** The caller's error, or ours, as `{"errors":[{"title","code"}]}` with the reason's HTTP status. */
export function sendError(request: HttpRequest, response: HttpResponse, error: unknown, log: Logger): void {
  if (error instanceof ClientGone) {
    // Not a fault of ours and no one to tell: one line, and nothing was held past this point.
    log.info({ url: request.url }, error.message);
    return;
  }
  const connectError = ConnectError.from(error);
  const status = httpStatusOf(connectError);
  if (status >= 500) log.error({ err: connectError.cause ?? error }, "REST request failed");
  else log.info({ url: request.url, code: reasonOf(connectError) }, connectError.rawMessage);
  if (response.headersSent || response.destroyed) return;
  const native = nativeErrorOf(error);
  // Retry-After and X-RateLimit-* where the refusal carries them.
  const headers: Record<string, string> = { "content-type": "application/json", ...native.headers };
  // Refused before the body ended: close rather than let Node read (and discard) the rest of it.
  if (!request.complete) headers.connection = "close";
  const jobId = connectError.metadata.get("cutline-job-id");
  if (jobId) headers["x-job-id"] = jobId;
  response.writeHead(status, headers);
  // The one native error shape (title, code, detail); a server fault's own message never leaves.
  const body: Record<string, unknown> = { ...native.body };
  // Out of credits (402): say what the balance is, what the call costs, how to top up, and the
  // caller's options: upgrade, or continue in overage.
  const billing = connectError.findDetails(BillingErrorDetailSchema)[0];
  if (billing?.reason === "insufficient_credits") Object.assign(body, exhaustedBody(billing));
  response.end(JSON.stringify({ errors: [body] }));
}

/** How a caller turns overage on (the account setting billing enforces at reserve). */
export const OVERAGE_HOW = 'PUT /v1/account/settings {"on_exhausted": "overage"}';

/**
 * The 402 body's extra fields: the balance and the cost in decimal credits, how to top up, the
 * account's choice in force (`on_exhausted`) and its `options`: always upgrade (with the
 * deployment's hint or link), and continuing in overage at the plan's standard rate where the
 * plan offers it and its cap for this cycle is not already reached.
 */
export function exhaustedBody(billing: BillingErrorDetail): Record<string, unknown> {
  const options: Record<string, unknown>[] = [{ option: "upgrade", hint: billing.upgradeHint }];
  if (billing.overageOffered && !billing.overageCapReached) {
    options.push({ option: "overage", rate_cents_per_credit: Number(billing.overageRateCentsPerCredit), how: OVERAGE_HOW });
  }
  return {
    available_credits: formatCredits(billing.availableMillicredits),
    cost_credits: formatCredits(billing.costMillicredits),
    top_up: billing.topUpHint,
    on_exhausted: billing.onExhausted,
    overage_cap_reached: billing.overageCapReached,
    options,
  };
}

/** The path and query of a request. */
export function urlOf(request: HttpRequest): URL {
  return new URL(request.url ?? "/", "http://gateway.invalid");
}

/** What the REST route families are built from. */
export interface RestDependencies {
  apiKeys: ApiKeyStore;
  imageJobs: ImageJobs;
  /** Fetches image_url and bg_image_url through the outbound guard. */
  imageUrls: ImageUrls;
  orchestrator: Client<typeof OrchestratorService>;
  blobs: BlobStore;
  resultLinks: ResultLinks;
  jobReads: JobReads;
  jobBatches: JobBatches;
  log: Logger;
  limits: RestLimits;
}

export interface RestLimits {
  /** Largest image, in bytes (UPLOAD_BYTES_MAX). */
  uploadBytesMax: number;
  /** Largest batch body, in bytes (BATCH_BYTES_MAX). @default 64 MiB */
  batchBytesMax: number;
}
