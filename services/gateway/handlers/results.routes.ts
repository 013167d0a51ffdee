// `GET /v1/results/{jobId}?expires&signature`: a succeeded job's result from the blob store. The
// signature is the credential (no API key), so the link can go to a browser or a CDN.
import { Code, ConnectError } from "@connectrpc/connect";
import { reasonError } from "../../common/errors.ts";
import { JobStatus } from "../../common/gen/cutline/orchestrator/v1/orchestrator_service_pb.ts";
import type { HttpRoutes } from "../../common/server.ts";
import { formatCredits } from "../../common/credits.ts";
import { rateLimitHeadersOf } from "../image-jobs.ts";
import { timingHeaders } from "./image-call.ts";
import { sendError, sendMethodNotAllowed, urlOf, type RestDependencies } from "./rest-support.ts";
import { pipeline } from "node:stream/promises";
import type { Job } from "../../common/gen/cutline/orchestrator/v1/orchestrator_service_pb.ts";
import { TaskKind } from "../../common/gen/cutline/inference/v1/task_pb.ts";
import { videoExtensionOf } from "../../common/video/video-formats.ts";

/** Image file extensions by result content type, for the download's name (Content-Disposition); videos' come from video-formats.ts. */
const IMAGE_EXTENSIONS: Readonly<Record<string, string>> = { "image/png": "png", "image/webp": "webp", "image/jpeg": "jpg" };

/** The headers every result answer carries. */
function resultHeaders(job: Job, contentType: string, bytes: number, rate: ReturnType<typeof rateLimitHeadersOf>): Record<string, string> {
  const extension = IMAGE_EXTENSIONS[contentType.split(";")[0]!.trim()] ?? videoExtensionOf(contentType);
  return {
    "content-type": contentType,
    "content-length": String(bytes),
    "cache-control": "private, no-transform",
    // Saved under the job's id with its format's extension (a browser or `curl -OJ`).
    ...(extension ? { "content-disposition": `inline; filename="${job.id}.${extension}"` } : {}),
    "x-job-id": job.id,
    "x-credits-charged": formatCredits(job.chargedMillicredits),
    // The balance right after this job was charged: the link carries no key to read today's with.
    "x-credits-remaining": formatCredits(job.availableMillicredits),
    ...timingHeaders(job),
    ...rate,
  };
}

const RESULT_URL_REFUSALS = {
  result_url_invalid: "the result URL's signature does not match: use the result_url exactly as the API gave it",
  result_url_expired: "the result URL has expired: read the job again (GET /v1/jobs/{id}) for a fresh result_url",
} as const;

function resultGone(jobId: string, why: string): ConnectError {
  return reasonError(Code.NotFound, "result_expired", `the result of job ${jobId} is gone: ${why}`);
}

export function createResultsRoutes(deps: RestDependencies): HttpRoutes {
  return async (request, response) => {
    const url = urlOf(request);
    const match = /^\/v1\/results\/([^/]+)$/.exec(url.pathname);
    if (!match) return false;
    if (request.method !== "GET" && request.method !== "HEAD") {
      sendMethodNotAllowed(response, "GET, HEAD", "use GET with the result_url as the API gave it");
      return true;
    }
    const jobId = decodeURIComponent(match[1]!);
    try {
      const check = deps.resultLinks.signer(request.headers.host).verify(jobId, url.searchParams.get("expires"), url.searchParams.get("signature"));
      if (!check.ok) throw reasonError(Code.PermissionDenied, check.reason, RESULT_URL_REFUSALS[check.reason]);
      // Signed URLs are only made for succeeded (captured) jobs; anything else has nothing to serve.
      const { job } = await deps.orchestrator.getJob({ jobId }).catch((error: unknown) => {
        if (error instanceof ConnectError && error.code === Code.NotFound) return { job: undefined };
        throw error;
      });
      if (!job || job.status !== JobStatus.SUCCEEDED) throw resultGone(jobId, "the job has no result");
      // The link carries no API key: its fetches count against the job's account's read budget
      // (READ_REQUESTS_PER_MINUTE), which the X-RateLimit-* headers report.
      const rate = deps.imageJobs.takeReadToken({ accountId: job.accountId });
      if (job.filesDeleted) throw resultGone(jobId, job.filesExpired ? "it is past its account's retention and was deleted" : "its files were deleted on request");
      if (job.kind === TaskKind.VIDEO) {
        // A video result may be gigabytes: streamed from the blob store to the response, never
        // whole in memory nor copied to disk; a HEAD reads only its size and type.
        if (request.method === "HEAD") {
          const stored = await deps.blobs.stat(job.resultBlobKey);
          if (!stored) throw resultGone(jobId, "it is past its retention and was deleted");
          response.writeHead(200, resultHeaders(job, job.resultContentType || stored.contentType, stored.bytes, rateLimitHeadersOf(rate)));
          response.end();
          return true;
        }
        const stored = await deps.blobs.getStream(job.resultBlobKey);
        if (!stored) throw resultGone(jobId, "it is past its retention and was deleted");
        response.writeHead(200, resultHeaders(job, job.resultContentType || stored.contentType, stored.bytes, rateLimitHeadersOf(rate)));
        // A client that goes away part-way ends the pipeline (and the blob's read) with it; the headers are sent, so nothing more is said.
        await pipeline(stored.stream, response).catch((error: unknown) => deps.log.warn({ err: error, jobId }, "a video result's download ended early"));
        return true;
      }
      const blob = await deps.blobs.get(job.resultBlobKey);
      if (!blob) throw resultGone(jobId, "it is past its retention and was deleted");
      response.writeHead(200, resultHeaders(job, job.resultContentType || blob.contentType, blob.data.byteLength, rateLimitHeadersOf(rate)));
      if (request.method === "HEAD") response.end();
      else response.end(blob.data);
    } catch (error) {
      sendError(request, response, error, deps.log);
    }
    return true;
  };
}
